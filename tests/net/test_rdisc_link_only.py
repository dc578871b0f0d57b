"""Only the link moves the route (issue 21): advertisements from off the link, from a container, or for a
router outside ``routers`` change nothing, and each is logged once with its sender and the reason.

    far (198.18.2.66) ── gw (198.18.2.1 | 198.18.1.1, forwards) ── eth0: host (198.18.1.10/24)
                                                                    ctr0 (bridge, 198.18.105.1/24) ── box (a container)

The real router (gw's 198.18.1.1, the test router of rdisc_lab) is learned as before; the attacker's
choice is 198.18.1.66, on the host's subnet, so only the new rules can stop it.
"""

from __future__ import annotations

import socket
import struct
import time

import pytest

from rdisc_host import BootresHost
from rdisc_lab import TestRouter, icmp_advert

HOST, ROUTER, FAR, ATTACKERS_CHOICE = "198.18.1.10", "198.18.1.1", "198.18.2.66", "198.18.1.66"


def raw_send(ns, src: str, dst: str, icmp: bytes, ttl: int) -> None:
    """One IP datagram with a header written here (any source, any TTL), routed by ``ns``'s table."""
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), 0, 0, ttl, 1, 0,
                         socket.inet_aton(src), socket.inet_aton(dst))
    with ns.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.sendto(header + icmp, (dst, 0))


@pytest.fixture
def site(lab, tmp_path):
    host, gw, far, box = (lab.netns(name) for name in ("host", "gw", "far", "box"))
    _, gw_if = lab.link(host, f"{HOST}/24", gw, f"{ROUTER}/24")
    lab.link(gw, "198.18.2.1/24", far, f"{FAR}/24")
    gw.sysctl("net.ipv4.ip_forward", "1")
    far.run("ip", "route", "add", "default", "via", "198.18.2.1")
    # A container network on the host: a bridge of veths, as docker0 or podman0.
    lab.container_bridge(host, box)
    router = TestRouter(gw, gw_if, ROUTER, answer_solicitations=False)
    lab.cleanup.callback(router.close)
    return host, gw, far, box, router


def start(host, tmp_path, router_lines: str = "solicit = no") -> BootresHost:
    bootres = BootresHost(host, tmp_path, router=router_lines).start()
    bootres.wait(lambda: bootres.status().get("router", {}).get("interfaces"), timeout=5, what="the service")
    return bootres


def unchanged(bootres) -> None:
    """The attacker's router is nowhere: not the route, not /etc/defaultrouter, not the hosts block."""
    assert bootres.route_via(ATTACKERS_CHOICE) is None
    assert not bootres.defaultrouter.exists() or ATTACKERS_CHOICE not in bootres.defaultrouter.read_text()
    assert ATTACKERS_CHOICE not in (bootres.ns.etc / "hosts").read_text()
    assert [r["address"] for r in bootres.status()["router"]["routers"]] in ([], [ROUTER])


def test_advertisements_from_off_the_link_change_nothing(site, tmp_path):
    host, gw, far, box, router = site
    bootres = start(host, tmp_path)
    advert = icmp_advert([(ATTACKERS_CHOICE, 1000)])
    # Two hops away, unicast to the host, at TTLs that arrive with 63 and 1; then spoofing an on-link source.
    for ttl in (64, 2):
        raw_send(far, FAR, HOST, advert, ttl)
    raw_send(far, "198.18.1.5", HOST, advert, 64)
    # To 224.0.0.1 from the other link: gw never forwards link-local multicast, so it never arrives.
    raw_send(far, ROUTER, "224.0.0.1", advert, 64)
    # On the link, to 224.0.0.1 with a spoofed off-link source.
    router.send(advert, src=FAR)
    # And a lifetime-0 advertisement for the real router from far away: it must not remove the route.
    router.advertise()
    bootres.wait(lambda: bootres.route_via(ROUTER), timeout=2, what="the real router's route")
    raw_send(far, FAR, HOST, icmp_advert([(ROUTER, 0)], lifetime=0), 64)

    def counted():
        dropped = bootres.status()["router"]["dropped"]
        return dropped if sum(dropped.values()) >= 5 else None

    dropped = bootres.wait(counted, timeout=3, what="the drops counted")
    assert dropped == {"unsolicited unicast": 4, "off-link source": 1}, dropped
    time.sleep(0.3)
    unchanged(bootres)
    assert bootres.route_via(ROUTER) is not None  # the lifetime-0 forgery did not remove it
    log = bootres.log()
    assert log.count(f"router advertisement from {FAR} on eth0 ignored: unsolicited unicast (to {HOST}, "
                     "no solicitation of ours in the last 3 s)") == 1
    assert log.count("router advertisement from 198.18.1.5 on eth0 ignored: unsolicited unicast") == 1
    assert log.count(f"router advertisement from {FAR} on eth0 ignored: off-link source ({FAR} not on "
                     "198.18.1.0/24)") == 1


def test_a_solicited_unicast_reply_counts_only_from_the_link(site, tmp_path):
    """RFC 1256 lets a router answer a solicitation by unicast: from an on-link source, within the window."""
    host, gw, far, box, router = site
    bootres = start(host, tmp_path, "solicit = yes")
    bootres.wait(lambda: router.solicitations, timeout=3, what="a solicitation")
    raw_send(far, FAR, HOST, icmp_advert([(ATTACKERS_CHOICE, 1000)]), 64)  # guessed the moment: off-link source
    router.send(icmp_advert([(ROUTER, 0)]), dst=HOST)  # the real router's unicast reply
    bootres.wait(lambda: bootres.route_via(ROUTER), timeout=2, what="the route from the unicast reply")
    bootres.wait(lambda: bootres.status()["router"]["dropped"] == {"off-link source": 1}, timeout=2)
    unchanged(bootres)


def test_a_container_on_a_bridge_is_never_heard(site, tmp_path):
    """The bridge of veths is the container side: discovery does not run there, so its bytes are never read."""
    host, gw, far, box, router = site
    bootres = start(host, tmp_path)
    status = bootres.status()["router"]
    assert [i["name"] for i in status["interfaces"]] == ["eth0"]  # the uplink veth counts: no NIC here
    assert status["skipped_interfaces"] == {"ctr0": "a bridge of containers or VMs"}
    assert bootres.log().count("router discovery not on ctr0: a bridge of containers or VMs") == 1
    with box.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as sock:  # CAP_NET_RAW, Docker's default
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        for _ in range(3):
            sock.sendto(icmp_advert([("198.18.105.2", 1000)]), ("224.0.0.1", 0))
            sock.sendto(icmp_advert([("198.18.105.2", 1000)]), ("198.18.105.255", 0))
    raw_send(box, "198.18.105.2", "255.255.255.255", icmp_advert([("198.18.105.2", 1000)]), 1)
    time.sleep(0.5)
    assert bootres.status()["router"]["routers"] == [] and bootres.default_routes() == []
    assert bootres.status()["router"]["dropped"] == {}  # not even read
    assert not bootres.defaultrouter.exists()


def test_an_advertised_router_outside_routers_is_dropped(site, tmp_path):
    host, gw, far, box, router = site
    bootres = start(host, tmp_path, f"solicit = no\nrouters = {ROUTER}/32")
    router.send(icmp_advert([(ATTACKERS_CHOICE, 1000)]), src=ATTACKERS_CHOICE)  # an on-link rogue router
    router.send(icmp_advert([(ROUTER, 0)]))
    bootres.wait(lambda: bootres.route_via(ROUTER), timeout=2, what="the allowed router's route")
    bootres.wait(lambda: bootres.status()["router"]["dropped"] == {"not in routers": 1}, timeout=2,
                 what="the drop counted")
    assert bootres.log().count(f"router advertisement from {ATTACKERS_CHOICE} on eth0 ignored: not in routers "
                               f"({ATTACKERS_CHOICE} not in [router] routers)") == 1
    unchanged(bootres)
