"""The RFC 1256 host core: schedule, table, lifetimes, choice, route effects. Fixed `now` values only."""

import dataclasses
import ipaddress
import struct

import pytest

from bootres import config
from bootres.core import router as core
from bootres.core.effects import INFO, WARNING, Log
from bootres.core.report import to_json
from bootres.core.rdisc import NOT_A_DEFAULT, Advertisement, RouterEntry, checksum
from bootres.core.router import (
    ClearDefaultRoute,
    Interface,
    KernelRoute,
    RouterDiscovery,
    RoutersChanged,
    SendSolicitation,
    SetDefaultRoute,
)
from bootres.settings import router_settings

A = ipaddress.IPv4Address
ETH0 = Interface(2, "eth0", (ipaddress.IPv4Interface("198.18.1.10/24"),))
ETH1 = Interface(3, "eth1", (ipaddress.IPv4Interface("198.19.0.10/24"),), multicast=False)
SOLICITATION = bytes.fromhex("0a00f5ff00000000")


def datagram(entries, lifetime=30, src=None, message=None, dst="224.0.0.1") -> bytes:
    """An IPv4 datagram carrying an advertisement (or ``message``) from ``src`` to ``dst``."""
    if message is None:
        message = bytes(Advertisement(lifetime, tuple(RouterEntry(A(a), p) for a, p in entries)))
    src = A(src or entries[0][0])
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(message), 0, 0, 1, 1, 0, src.packed, A(dst).packed)
    return header + message


def only(effects, kind):
    return [e for e in effects if isinstance(e, kind)]


def settings(**changes) -> core.Settings:
    """The shipped [router] defaults (config.SCHEMA) for the core, but for ``changes``."""
    return dataclasses.replace(router_settings(config.defaults().router), **changes)


def make(remembered=(), capacity=core.DEFAULT_CAPACITY, **changes) -> RouterDiscovery:
    return RouterDiscovery(settings(**changes), remembered=remembered, capacity=capacity)


def discovery(now=100.0, delay=0.5, kernel=(), **options) -> RouterDiscovery:
    rd = make(**options)
    rd.set_interface(ETH0, now, delay)
    if kernel is not None:
        rd.kernel_routes_observed(list(kernel))
    rd.drain()
    return rd


# --- solicitation schedule


def test_schedule_first_after_delay_then_three_seconds_apart_at_most_three():
    rd = discovery(now=100.0, delay=0.4)
    assert rd.deadline() == pytest.approx(100.4)
    timeline = []
    for now in (100.3, 100.4, 103.0, 103.4, 106.4, 109.4, 200.0):
        rd.timer_fired(now)
        sent = only(rd.drain(), SendSolicitation)
        timeline.append((now, len(sent), rd.schedules[ETH0.index].state, rd.deadline()))
        for effect in sent:
            assert effect == SendSolicitation(ETH0.index, A("224.0.0.2"), SOLICITATION)
    assert timeline == [
        (100.3, 0, "delaying", pytest.approx(100.4)),
        (100.4, 1, "soliciting", pytest.approx(103.4)),
        (103.0, 0, "soliciting", pytest.approx(103.4)),
        (103.4, 1, "soliciting", pytest.approx(106.4)),
        (106.4, 1, "listening", None),
        (109.4, 0, "listening", None),
        (200.0, 0, "listening", None),
    ]
    assert rd.schedules[ETH0.index].sent == 3


@pytest.mark.parametrize("delay", [0.0, 0.999])
def test_delay_is_taken_from_the_caller(delay):
    assert discovery(now=50.0, delay=delay).deadline() == pytest.approx(50.0 + delay)


def test_soliciting_stops_at_first_valid_advertisement():
    rd = discovery(now=100.0, delay=0.2)
    rd.timer_fired(100.2)
    assert len(only(rd.drain(), SendSolicitation)) == 1
    rd.datagram_received(datagram([("198.18.1.1", 0)], lifetime=1800), ETH0.index, 101.0)
    assert rd.schedules[ETH0.index].state == "listening"
    assert rd.deadline() == pytest.approx(1901.0)  # only the router's lifetime is left
    rd.timer_fired(103.2)
    assert only(rd.drain(), SendSolicitation) == []


def test_an_invalid_advertisement_does_not_stop_soliciting():
    rd = discovery(now=100.0, delay=0.2)
    rd.datagram_received(datagram([("198.18.1.1", 0)], message=b"\x09\x01" + b"\0" * 14), ETH0.index, 100.1)
    assert rd.schedules[ETH0.index].state == "delaying"


def test_interface_without_multicast_solicits_by_broadcast():
    rd = make()
    rd.set_interface(ETH1, 10.0, 0.0)
    rd.timer_fired(10.0)
    assert only(rd.drain(), SendSolicitation) == [SendSolicitation(ETH1.index, A("255.255.255.255"), SOLICITATION)]


def test_solicit_no_only_listens():
    rd = discovery(solicit=False)
    assert rd.deadline() is None
    assert rd.schedules[ETH0.index].state == "listening"


def test_transition_table_is_complete_and_closed():
    states = {s for s, _ in core.SOLICIT_TRANSITIONS} | set(core.SOLICIT_TRANSITIONS.values())
    assert states == {core.DELAYING, core.SOLICITING, core.LISTENING}
    # Listening never goes back to sending: a solicitation timer there is our bug.
    assert (core.LISTENING, core.SEND) not in core.SOLICIT_TRANSITIONS
    assert all(core.SOLICIT_TRANSITIONS[(s, core.ADVERTISED)] == core.LISTENING for s in states)


# --- router table and the default route


def test_first_advertisement_sets_route_and_router_list():
    rd = discovery()
    rd.datagram_received(datagram([("198.18.1.1", 0)], lifetime=1800), ETH0.index, 100.5)
    effects = rd.drain()
    assert only(effects, RoutersChanged) == [RoutersChanged((A("198.18.1.1"),), "rdisc")]
    assert only(effects, SetDefaultRoute) == [SetDefaultRoute(A("198.18.1.1"), ETH0.index)]
    assert only(effects, Log) == [Log(INFO, "router 198.18.1.1 learned on eth0, preference 0")]
    status = rd.status(160.5)
    assert status.default == "198.18.1.1" and status.source == "rdisc"
    assert to_json(status.routers) == [{"address": "198.18.1.1", "interface": "eth0", "preference": 0, "expires_in_s": 1740.0}]


def test_repeated_advertisement_restarts_lifetime_without_churn():
    rd = discovery()
    rd.datagram_received(datagram([("198.18.1.1", 0)], lifetime=4), ETH0.index, 100.0)
    rd.drain()
    rd.datagram_received(datagram([("198.18.1.1", 0)], lifetime=4), ETH0.index, 103.0)
    assert rd.drain() == []
    rd.timer_fired(104.5)  # would have expired at 104.0 without the second advertisement
    assert rd.default_routers == (A("198.18.1.1"),)
    assert rd.deadline() == pytest.approx(107.0)


def two_routers(rd, now):
    rd.datagram_received(datagram([("198.18.1.1", 10)], lifetime=3), ETH0.index, now)
    rd.datagram_received(datagram([("198.18.1.2", 5)], lifetime=30), ETH0.index, now)


def test_higher_preference_wins_and_the_other_takes_over_on_expiry():
    rd = discovery()
    two_routers(rd, 100.0)
    assert only(rd.drain(), SetDefaultRoute) == [SetDefaultRoute(A("198.18.1.1"), ETH0.index)]
    assert rd.default_routers == (A("198.18.1.1"), A("198.18.1.2"))
    assert rd.deadline() == pytest.approx(103.0)
    rd.timer_fired(103.0)
    effects = rd.drain()
    assert only(effects, SetDefaultRoute) == [SetDefaultRoute(A("198.18.1.2"), ETH0.index)]
    assert only(effects, RoutersChanged) == [RoutersChanged((A("198.18.1.2"),), "rdisc")]
    assert "198.18.1.1 on eth0 lost: lifetime ran out" in only(effects, Log)[0].message


def test_lifetime_zero_removes_at_once():
    rd = discovery()
    two_routers(rd, 100.0)
    rd.drain()
    rd.datagram_received(datagram([("198.18.1.1", 10)], lifetime=0), ETH0.index, 100.5)
    assert only(rd.drain(), SetDefaultRoute) == [SetDefaultRoute(A("198.18.1.2"), ETH0.index)]
    assert [r.address for r in rd.status(100.5).routers] == ["198.18.1.2"]


def test_lifetime_zero_for_an_unknown_router_changes_nothing():
    rd = discovery()
    rd.datagram_received(datagram([("198.18.1.1", 10)], lifetime=0), ETH0.index, 100.5)
    assert rd.drain() == []


def test_last_router_gone_clears_our_route():
    rd = discovery()
    rd.datagram_received(datagram([("198.18.1.1", 0)], lifetime=3), ETH0.index, 100.0)
    rd.drain()
    rd.timer_fired(103.0)
    effects = rd.drain()
    assert only(effects, ClearDefaultRoute) == [ClearDefaultRoute("no default router known")]
    assert only(effects, RoutersChanged) == [RoutersChanged((), None)]


def test_not_a_default_preference_is_never_used():
    rd = discovery()
    rd.datagram_received(datagram([("198.18.1.3", NOT_A_DEFAULT)], lifetime=30), ETH0.index, 100.0)
    effects = rd.drain()
    assert only(effects, SetDefaultRoute) == [] and only(effects, RoutersChanged) == []
    assert rd.default_routers == ()
    assert rd.status(100.0).routers[0].preference == NOT_A_DEFAULT
    # Even below the most negative usable preference, it stays unused.
    rd.datagram_received(datagram([("198.18.1.4", NOT_A_DEFAULT + 1)], lifetime=30), ETH0.index, 100.0)
    assert rd.default_routers == (A("198.18.1.4"),)


def test_one_advertisement_may_carry_several_routers():
    rd = discovery()
    rd.datagram_received(datagram([("198.18.1.1", 1), ("198.18.1.2", 2), ("203.0.113.9", 99)]), ETH0.index, 100.0)
    assert rd.default_routers == (A("198.18.1.2"), A("198.18.1.1"))  # the off-link entry is ignored


# --- rejected without effect


def raw_advert(code=0, count=1, size=2, good_checksum=True):
    """One entry for 198.18.1.1 with header fields as given."""
    message = struct.pack("!BBHBBH4si", 9, code, 0, count, size, 30, A("198.18.1.1").packed, 0)
    if good_checksum:
        message = message[:2] + struct.pack("!H", checksum(message)) + message[4:]
    return message


REJECTS = [
    ("bad checksum", datagram([("198.18.1.1", 0)], message=raw_advert(good_checksum=False)), ""),
    ("bad code", datagram([("198.18.1.1", 0)], message=raw_advert(code=1)), " (code 1)"),
    ("no addresses", datagram([("198.18.1.1", 0)], message=raw_advert(count=0)), ""),
    ("bad entry size", datagram([("198.18.1.1", 0)], message=raw_advert(size=1)), " (Addr Entry Size 1)"),
    ("short", datagram([("198.18.1.1", 0)])[:27], " (IP total length 36, 27 bytes received)"),
    ("off-link address", datagram([("203.0.113.1", 0)], src="198.18.1.1"), " (203.0.113.1 not on 198.18.1.0/24)"),
    ("not an advertisement", datagram([("198.18.1.1", 0)], message=SOLICITATION), " (ICMP type 10)"),
]


@pytest.mark.parametrize("reason, data, detail", REJECTS, ids=[r for r, _, _ in REJECTS])
def test_rejected_without_effect_but_one_log_line_naming_the_source(reason, data, detail):
    rd = discovery()
    rd.datagram_received(data, ETH0.index, 100.2)
    assert rd.drain() == [Log(WARNING, f"router advertisement from 198.18.1.1 on eth0 ignored: {reason}{detail}")]
    assert rd.routers == {}
    assert rd.schedules[ETH0.index].state == "delaying"
    assert rd.status(100.2).dropped == {reason: 1}


def test_the_source_must_be_on_link_or_frrs_byte_swapped_form_of_an_advertised_address():
    rd = discovery()
    rd.datagram_received(datagram([("198.18.1.1", 10)], src="198.19.7.7"), ETH0.index, 100.0)
    assert rd.drain() == [Log(WARNING, "router advertisement from 198.19.7.7 on eth0 ignored: off-link source "
                                       "(198.19.7.7 not on 198.18.1.0/24)")]
    # Swapped, 1.1.18.198 is 198.18.1.1: on-link, but not what this advertisement names.
    rd.datagram_received(datagram([("198.18.1.66", 10)], src="1.1.18.198"), ETH0.index, 100.0)
    assert rd.routers == {} and rd.dropped == {"off-link source": 2}
    # What FRR 8.4.4 sends for 198.18.1.1: the source byte-swapped, the router address right.
    rd.datagram_received(datagram([("198.18.1.1", 10)], src="1.1.18.198"), ETH0.index, 100.0)
    assert rd.default_routers == (A("198.18.1.1"),)
    assert only(rd.drain(), SetDefaultRoute) == [SetDefaultRoute(A("198.18.1.1"), ETH0.index)]
    # An on-link source does not save an advertisement whose every address is off-link.
    rd.datagram_received(datagram([("203.0.113.1", 50), ("198.19.0.1", 60)], src="198.18.1.7"), ETH0.index, 100.0)
    assert rd.drain() == [Log(WARNING, "router advertisement from 198.18.1.7 on eth0 ignored: off-link address "
                                       "(203.0.113.1, 198.19.0.1 not on 198.18.1.0/24)")]
    assert rd.default_routers == (A("198.18.1.1"),) and rd.dropped == {"off-link source": 2, "off-link address": 1}


@pytest.mark.parametrize("dst", ["224.0.0.1", "255.255.255.255"])
def test_to_all_systems_or_broadcast_always_counts(dst):
    rd = discovery(solicit=False)
    rd.datagram_received(datagram([("198.18.1.1", 0)], dst=dst), ETH0.index, 100.0)
    assert rd.default_routers == (A("198.18.1.1"),)


def test_unicast_counts_only_within_the_window_after_our_solicitation():
    rd = discovery(now=100.0, delay=0.5)
    unicast = datagram([("198.18.1.1", 0)], dst="198.18.1.10")
    rd.datagram_received(unicast, ETH0.index, 100.2)  # before any solicitation of ours
    assert rd.routers == {} and rd.dropped == {"unsolicited unicast": 1}
    rd.timer_fired(100.5)  # the first solicitation goes out
    rd.datagram_received(unicast, ETH0.index, 100.5 + core.SOLICITED_REPLY_WINDOW + 0.01)
    assert rd.routers == {} and rd.dropped == {"unsolicited unicast": 2}
    rd.datagram_received(unicast, ETH0.index, 100.5 + core.SOLICITED_REPLY_WINDOW)
    assert rd.default_routers == (A("198.18.1.1"),)


@pytest.mark.parametrize("dst", ["198.18.1.255", "224.0.0.2", "198.18.1.99"])
def test_any_other_destination_is_dropped(dst):
    rd = discovery()
    rd.timer_fired(100.5)  # solicited: still not to these
    rd.datagram_received(datagram([("198.18.1.1", 0)], dst=dst), ETH0.index, 100.6)
    assert rd.routers == {} and rd.dropped == {"wrong destination": 1}


def test_routers_allowlist_drops_others_and_forgets_what_it_now_refuses():
    rd = discovery(allowed=(ipaddress.IPv4Network("198.18.1.0/28"),), remembered=(A("198.18.1.200"),))
    assert rd.source is None  # last boot's router is outside the list: not even a first guess
    rd.datagram_received(datagram([("198.18.1.66", 1000), ("198.18.1.1", 0)]), ETH0.index, 100.0)
    assert rd.default_routers == (A("198.18.1.1"),)  # the entry outside is skipped
    rd.datagram_received(datagram([("198.18.1.66", 1000)]), ETH0.index, 100.0)
    assert rd.dropped == {"not in routers": 1}
    rd.reconfigure(settings(allowed=(ipaddress.IPv4Network("198.18.1.2/32"),)))
    assert rd.routers == {} and rd.default_routers == ()


# Debian 12's FRR 8.4.4 (zebra -M irdp) advertising 198.18.1.1, preference 10, holdtime 6, as
# tests/net/test_rdisc_frr.py captured it: TOS 0xc0, TTL 1, from 1.1.18.198 (198.18.1.1 byte-swapped) to 224.0.0.1.
FRR_ADVERT = bytes.fromhex(
    "45c000247ffc000001014555" "010112c6" "e0000001"  # IPv4 header; the source is the byte-swapped address
    "09002eda" "01020006" "c6120101" "0000000a"  # type 9; 1 addr, entry size 2, lifetime 6; 198.18.1.1 pref 10
)


def test_frr_advertisement_as_captured_on_the_wire_is_accepted():
    rd = discovery()
    rd.datagram_received(FRR_ADVERT, ETH0.index, 100.0)
    assert rd.dropped == {} and to_json(rd.status(100.0).routers) == [
        {"address": "198.18.1.1", "interface": "eth0", "preference": 10, "expires_in_s": 6.0}]


def test_each_source_and_reason_is_logged_once_and_the_lines_are_bounded():
    rd = discovery()
    bad = raw_advert(code=1)
    for _ in range(3):
        rd.datagram_received(datagram([("198.18.1.1", 0)], message=bad), ETH0.index, 100.0)
        rd.datagram_received(datagram([("203.0.113.1", 0)], src="198.18.1.1"), ETH0.index, 100.0)
        rd.datagram_received(datagram([("198.18.1.1", 0)], src="198.18.1.2", message=bad), ETH0.index, 100.0)
    assert [e.message.split(" ignored: ")[1] for e in only(rd.drain(), Log)] == [
        "bad code (code 1)", "off-link address (203.0.113.1 not on 198.18.1.0/24)", "bad code (code 1)"]
    assert rd.dropped == {"bad code": 6, "off-link address": 3}

    # A flood of forged sources: at most DROP_LOG_LIMIT lines, then one saying the rest are only counted.
    for n in range(1000):
        rd.datagram_received(datagram([("198.18.1.1", 0)], src=str(A("198.19.0.0") + n), message=bad),
                             ETH0.index, 100.0)
    lines = [e.message for e in only(rd.drain(), Log)]
    assert len(lines) == core.DROP_LOG_LIMIT - 3 + 1
    assert lines[-1] == (f"{core.DROP_LOG_LIMIT} kinds of dropped router advertisement logged; from now on they "
                         "are only counted (router.dropped in status)")
    assert len(rd._drop_logged) == core.DROP_LOG_LIMIT and rd.dropped["bad code"] == 1006


def test_datagram_on_an_unmanaged_interface_is_dropped():
    rd = discovery()
    rd.datagram_received(datagram([("198.18.1.1", 0)]), 99, 100.0)
    assert rd.drain() == [Log(WARNING, "router advertisement from 198.18.1.1 on interface 99 ignored: "
                                       "unknown interface")]
    assert rd.dropped == {"unknown interface": 1}


def test_flood_keeps_the_table_bounded_and_the_best_routers():
    rd = discovery(capacity=16)
    rd.datagram_received(datagram([("198.18.1.1", 1000)], lifetime=1800), ETH0.index, 100.0)
    for n in range(5000):
        address = A("198.18.1.0") + (n % 250) + 2
        rd.datagram_received(datagram([(str(address), n % 7)], lifetime=1800, src=str(address)), ETH0.index, 100.0)
    assert len(rd.routers) == 16
    assert rd.default_routers[0] == A("198.18.1.1")
    assert rd.dropped["router table full"] > 0
    assert all(r.preference >= 5 or r.address == A("198.18.1.1") for r in rd.routers.values())
    # A full table still admits a better router by evicting the worst one.
    rd.datagram_received(datagram([("198.18.1.253", 2000)]), ETH0.index, 100.0)
    assert rd.default_routers[0] == A("198.18.1.253") and len(rd.routers) == 16


# --- the kernel's routes: never fight, never remove what is not ours


def test_no_route_is_touched_before_the_kernel_was_read():
    rd = discovery(kernel=None)
    rd.datagram_received(datagram([("198.18.1.1", 0)]), ETH0.index, 100.0)
    assert only(rd.drain(), SetDefaultRoute) == []
    rd.kernel_routes_observed([])
    assert only(rd.drain(), SetDefaultRoute) == [SetDefaultRoute(A("198.18.1.1"), ETH0.index)]


DHCP_ROUTE = KernelRoute(A("198.18.1.254"), ETH0.index, proto=3)


def test_foreign_default_route_is_reported_and_not_replaced():
    rd = discovery(kernel=[DHCP_ROUTE], static=(A("198.18.1.99"),))
    rd.datagram_received(datagram([("198.18.1.1", 0)]), ETH0.index, 100.0)
    effects = rd.drain()
    assert only(effects, SetDefaultRoute) == [] and only(effects, ClearDefaultRoute) == []
    assert rd.source == "netlink"
    assert rd.default_routers == (A("198.18.1.254"), A("198.18.1.1"))


def test_foreign_route_appearing_makes_us_withdraw_ours():
    rd = discovery()
    rd.datagram_received(datagram([("198.18.1.1", 0)]), ETH0.index, 100.0)
    rd.drain()
    rd.kernel_routes_observed([KernelRoute(A("198.18.1.1"), ETH0.index, core.RTPROT_RA), DHCP_ROUTE])
    assert only(rd.drain(), ClearDefaultRoute) == [
        ClearDefaultRoute("a default route bootres did not install is in place")]
    rd.kernel_routes_observed([DHCP_ROUTE])  # ours is gone, theirs stays: nothing more to do
    assert only(rd.drain(), ClearDefaultRoute) == []
    rd.kernel_routes_observed([])  # theirs went away: ours comes back
    assert only(rd.drain(), SetDefaultRoute) == [SetDefaultRoute(A("198.18.1.1"), ETH0.index)]


def test_route_lost_or_changed_behind_our_back_is_put_back():
    rd = discovery()
    rd.datagram_received(datagram([("198.18.1.1", 0)]), ETH0.index, 100.0)
    rd.drain()
    rd.kernel_routes_observed([KernelRoute(A("198.18.1.1"), ETH0.index, core.RTPROT_RA)])
    assert rd.drain() == []
    rd.kernel_routes_observed([])  # e.g. the install failed, or someone deleted it
    assert only(rd.drain(), SetDefaultRoute) == [SetDefaultRoute(A("198.18.1.1"), ETH0.index)]


def test_leftover_route_of_ours_is_removed_when_nothing_is_wanted():
    rd = discovery(kernel=[KernelRoute(A("198.18.1.7"), ETH0.index, core.RTPROT_RA)])
    assert rd.kernel_routes == ()  # the clear was asked for
    rd2 = make()
    rd2.kernel_routes_observed([KernelRoute(A("198.18.1.7"), ETH0.index, core.RTPROT_RA)])
    assert only(rd2.drain(), ClearDefaultRoute) == [ClearDefaultRoute("no default router known")]


def test_install_route_no_only_records():
    rd = discovery(install_route=False)
    rd.datagram_received(datagram([("198.18.1.1", 0)]), ETH0.index, 100.0)
    effects = rd.drain()
    assert only(effects, SetDefaultRoute) == [] and only(effects, ClearDefaultRoute) == []
    assert rd.default_routers == (A("198.18.1.1",),) and rd.source == "rdisc"


OURS = KernelRoute(A("198.18.1.1"), ETH0.index, core.RTPROT_RA)


def test_install_route_turned_off_removes_our_route_and_back_on_installs_it():
    rd = discovery()
    rd.datagram_received(datagram([("198.18.1.1", 0)], lifetime=1800), ETH0.index, 100.0)
    rd.kernel_routes_observed([OURS])
    rd.drain()
    rd.reconfigure(settings(solicit=True, install_route=False, static=()))  # a reload
    assert rd.drain() == [ClearDefaultRoute("install_route = no")]
    rd.kernel_routes_observed([])
    assert rd.drain() == [] and (rd.source, rd.default_routers) == ("rdisc", (A("198.18.1.1"),))
    rd.reconfigure(settings(solicit=True, install_route=True, static=()))
    assert rd.drain() == [SetDefaultRoute(A("198.18.1.1"), ETH0.index)]


def test_restart_with_install_route_off_removes_the_route_left_from_before():
    rd = make(install_route=False, remembered=(A("198.18.1.1"),))
    rd.drain()
    rd.kernel_routes_observed([OURS])  # the first netlink read after the restart
    assert rd.drain() == [ClearDefaultRoute("install_route = no")]
    rd.kernel_routes_observed([])
    assert rd.drain() == []


def test_install_route_off_never_touches_another_programs_route():
    rd = make(install_route=False)
    rd.kernel_routes_observed([DHCP_ROUTE])
    rd.reconfigure(settings(solicit=True, install_route=True, static=()))
    rd.reconfigure(settings(solicit=True, install_route=False, static=()))
    assert only(rd.drain(), ClearDefaultRoute) == [] and only(rd.drain(), SetDefaultRoute) == []


# --- file and static fallbacks


def test_remembered_router_is_the_first_guess_until_an_advertisement_arrives():
    rd = make(remembered=(A("198.18.1.50"),), static=(A("198.18.1.99"),))
    assert only(rd.drain(), RoutersChanged) == [RoutersChanged((A("198.18.1.50"),), "file")]
    rd.set_interface(ETH0, 100.0, 0.5)
    rd.kernel_routes_observed([])
    assert only(rd.drain(), SetDefaultRoute) == [SetDefaultRoute(A("198.18.1.50"), None)]
    rd.datagram_received(datagram([("198.18.1.1", 0)], lifetime=3), ETH0.index, 101.0)
    assert rd.source == "rdisc"
    rd.timer_fired(104.0)  # the router is gone; last boot's guess is stale by now
    assert (rd.source, rd.default_routers) == ("static", (A("198.18.1.99"),))
    assert only(rd.drain(), SetDefaultRoute)[-1] == SetDefaultRoute(A("198.18.1.99"), None)


def test_foreign_route_beats_the_remembered_guess():
    rd = make(remembered=(A("198.18.1.50"),))
    rd.kernel_routes_observed([DHCP_ROUTE])
    assert (rd.source, rd.default_routers) == ("netlink", (A("198.18.1.254"),))
    assert only(rd.drain(), SetDefaultRoute) == []


def test_nothing_known_means_no_default():
    rd = make()
    rd.kernel_routes_observed([])
    assert rd.drain() == [] and rd.status(0.0).default is None and rd.source is None


# --- interfaces coming and going


def test_removed_interface_loses_its_routers():
    rd = discovery()
    rd.datagram_received(datagram([("198.18.1.1", 0)]), ETH0.index, 100.0)
    rd.drain()
    rd.remove_interface(ETH0.index)
    effects = rd.drain()
    assert only(effects, ClearDefaultRoute) == [ClearDefaultRoute("no default router known")]
    assert "eth0 is gone" in only(effects, Log)[0].message
    rd.remove_interface(ETH0.index)  # twice is harmless
    assert rd.drain() == []


def test_readdressed_interface_drops_routers_no_longer_on_link():
    rd = discovery()
    rd.datagram_received(datagram([("198.18.1.1", 0)]), ETH0.index, 100.0)
    rd.drain()
    moved = Interface(ETH0.index, "eth0", (ipaddress.IPv4Interface("198.18.7.10/24"),))
    rd.set_interface(moved, 101.0, 0.5)
    assert rd.routers == {}
    assert rd.schedules[ETH0.index].state == "listening"  # an update does not restart soliciting


def test_reconfigure_keeps_the_table_and_applies_new_fallbacks():
    rd = discovery()
    rd.reconfigure(settings(solicit=True, install_route=True, static=(A("198.18.1.99"),)))
    assert (rd.source, rd.default_routers) == ("static", (A("198.18.1.99"),))
    rd.datagram_received(datagram([("198.18.1.1", 0)]), ETH0.index, 100.0)
    rd.drain()
    rd.reconfigure(settings(solicit=False, install_route=True, static=()))
    assert rd.default_routers == (A("198.18.1.1"),) and rd.drain() == []


# --- the kernel's IPv6 default routes, shown read-only


def test_ipv6_default_routes_are_described_with_their_origin():
    from types import SimpleNamespace as Route6

    routes = [Route6(gateway=ipaddress.IPv6Address("fe80::1"), ifindex=2, proto=9, metric=1024),
              Route6(gateway=ipaddress.IPv6Address("2001:db8::1"), ifindex=3, proto=16, metric=100),
              Route6(gateway=None, ifindex=7, proto=186, metric=0)]
    assert to_json(core.describe_ipv6_defaults(routes, {2: "eth0", 3: "eth1"})) == [
        {"gateway": "fe80::1", "interface": "eth0", "origin": "ra", "metric": 1024},
        {"gateway": "2001:db8::1", "interface": "eth1", "origin": "dhcp", "metric": 100},
        {"gateway": None, "interface": None, "origin": "186", "metric": 0},
    ]
    assert [core.ROUTE_ORIGINS[p] for p in (2, 3, 4)] == ["kernel", "boot", "static"]


def test_docs_state_table_is_the_code_table():
    from pathlib import Path

    rows = "".join(f"| {state} | {event} | {after} |\n" for (state, event), after in core.SOLICIT_TRANSITIONS.items())
    table = "| state | input | next state |\n|---|---|---|\n" + rows
    doc = (Path(__file__).resolve().parents[2] / "docs" / "router.md").read_text()
    assert table in doc, "docs/router.md's state table drifted from SOLICIT_TRANSITIONS; paste:\n" + table


# --- which links discovery runs on by default


class L:
    def __init__(self, index, name, kind=None, master=None, up=True, loopback=False, addresses=("198.18.1.10/24",),
                 broadcast=True, multicast=True):
        self.index, self.name, self.kind, self.master = index, name, kind, master
        self.up, self.loopback, self.broadcast, self.multicast = up, loopback, broadcast, multicast
        self.addresses = tuple(ipaddress.IPv4Interface(a) for a in addresses)


def test_a_host_with_a_nic_runs_on_it_never_on_its_containers_or_vms():
    links = [
        L(1, "lo", loopback=True, addresses=("127.0.0.1/8",)),
        L(2, "eth0"),
        L(3, "docker0", kind="bridge", addresses=("198.18.100.1/24",)),
        L(4, "veth1a2b", kind="veth", master=3, addresses=()),
        L(5, "virbr0", kind="bridge", addresses=("198.18.122.1/24",)),
        L(6, "vnet0", kind="tun", master=5, addresses=()),
        L(7, "cali12", kind="veth", addresses=("198.18.130.1/32",)),  # a routed pod's host side
        L(8, "tun0", kind="tun", addresses=("198.18.140.2/24",)),
        L(9, "br0", kind="bridge", addresses=("198.18.150.1/24",)),  # a KVM host's uplink bridge, NIC inside
        L(10, "eno2", master=9, addresses=()),
        L(11, "eth1", up=False),
    ]
    assert core.discovery_links(links, set()) == {
        2: None, 3: core.CONTAINER_BRIDGE, 5: core.CONTAINER_BRIDGE, 7: core.CONTAINER_VETH, 8: core.TUN, 9: None}


def test_a_container_or_nspawn_guest_runs_on_its_veth_and_a_default_route_makes_an_uplink():
    guest = [L(2, "host0", kind="veth"), L(3, "docker0", kind="bridge", addresses=("198.18.100.1/24",))]
    assert core.discovery_links(guest, set()) == {2: None, 3: core.CONTAINER_BRIDGE}
    # docker0 as the default route's link (a strange host, but its own choice) and a veth beside a NIC as one.
    host = [L(2, "eth0"), L(3, "docker0", kind="bridge", addresses=("198.18.100.1/24",)), L(4, "up0", kind="veth")]
    assert core.discovery_links(host, {3, 4}) == {2: None, 3: None, 4: None}
