"""stubfiles: the policy of the stub files with fixed ``now``: pins, router and self names, failures, writes."""

import dataclasses

from hypothesis import given
from hypothesis import strategies as st

from bootres.core import etcfiles, stubfiles
from bootres.core.effects import INFO, WARNING, Log
from bootres.core.etcfiles import BEGIN, END, HostsEntry, render_block
from bootres.core.report import to_json
from bootres.core.stubfiles import (
    FileText,
    StubFiles,
    LookUpPinned,
    Settings,
    WriteDefaultRouter,
    WriteHostsBlock,
)

HOSTS, ROUTER_FILE = "/etc/hosts", "/etc/defaultrouter"
NFS, MAIL = "nfs1.example.test", "mail.example.test"
SETTINGS = Settings(hosts_file=HOSTS, defaultrouter_file=ROUTER_FILE, self_entry=True, router_names=("site-router",),
                    pin=(NFS, MAIL), refresh_interval=300.0, retry_interval=30.0)
STAMP = "2026-11-24T09:00:00+00:00"
T0 = 100.0


def start(settings=SETTINGS, hosts="", defaultrouter="", hostname="web1", search=("example.test",), now=T0):
    """A started core and the effects of its start."""
    core = StubFiles(settings, spread=lambda: 0.0, hostname=hostname, search=search)
    core.start(now, FileText(hosts, STAMP if hosts else None), FileText(defaultrouter, STAMP if defaultrouter else None))
    return core, core.drain()


def of(effects, kind) -> list:
    return [e for e in effects if isinstance(e, kind)]


def logs(effects) -> list[tuple[int, str]]:
    return [(e.level, e.message) for e in of(effects, Log)]


def lines(write: WriteHostsBlock) -> list[str]:
    """The address lines of a block write."""
    return [line for line in write.block.splitlines() if line and not line.startswith("#")]


def written(core, effects, now, error=None) -> list:
    """Report every write among ``effects`` as done (or failed with ``error``); the effects that follow."""
    for write in of(effects, (WriteHostsBlock, WriteDefaultRouter)):
        core.write_done(write.path, error, now, written_at=None if error else STAMP, changed=True)
    return core.drain()


def all_written(core, effects, now) -> None:
    """Complete writes until none is left (a write's success may start the next with newer content)."""
    for _ in range(5):  # bounded: each round writes the latest content
        effects = written(core, effects, now)
        if not of(effects, (WriteHostsBlock, WriteDefaultRouter)):
            return
    raise AssertionError("writes never settle")


def settled(**kw):
    """A started core whose first writes and lookups (both pins answered) are done."""
    core, effects = start(**kw)
    all_written(core, effects, T0)
    core.lookup_done(NFS, ["198.18.0.20"], T0 + 1)
    core.lookup_done(MAIL, ["198.18.0.40", "2001:db8::40"], T0 + 1)
    all_written(core, core.drain(), T0 + 1)
    return core


# --- pinned names


def test_start_asks_every_pin_at_once_and_writes_the_block():
    core, effects = start()
    assert of(effects, LookUpPinned) == [LookUpPinned(NFS), LookUpPinned(MAIL)]
    (write,) = of(effects, WriteHostsBlock)
    assert write == WriteHostsBlock(HOSTS, render_block([]))
    assert of(effects, WriteDefaultRouter) == []  # no router known: the file is left as it is


def test_answers_go_into_the_block_ipv4_first_one_line_per_address():
    core, effects = start()
    written(core, effects, T0)
    core.lookup_done(MAIL, ["2001:db8::40", "198.18.0.40", "198.18.0.40"], T0 + 0.2)
    effects = core.drain()
    assert lines(of(effects, WriteHostsBlock)[0]) == [f"198.18.0.40\t{MAIL}", f"2001:db8::40\t{MAIL}"]
    assert logs(effects) == [(INFO, f"pinned name {MAIL} now 198.18.0.40 2001:db8::40")]


def test_pins_are_asked_again_every_refresh_interval_one_lookup_in_flight_per_name():
    core = settled()
    assert core.deadline() == T0 + 1 + 300
    core.timer_fired(T0 + 301)
    assert of(core.drain(), LookUpPinned) == [LookUpPinned(NFS), LookUpPinned(MAIL)]
    assert core.deadline() is None  # both in flight: nothing to wake up for
    core.timer_fired(T0 + 900)
    assert core.drain() == []  # no second lookup of a name while one is in flight
    core.lookup_done(NFS, ["198.18.0.21"], T0 + 902)
    effects = core.drain()
    assert f"198.18.0.21\t{NFS}" in lines(of(effects, WriteHostsBlock)[0])
    assert logs(effects) == [(INFO, f"pinned name {NFS} now 198.18.0.21 (was 198.18.0.20)")]
    assert core.deadline() == T0 + 902 + 300


def test_the_same_answer_again_writes_nothing():
    core = settled()
    core.timer_fired(T0 + 301)
    core.drain()
    core.lookup_done(NFS, ["198.18.0.20"], T0 + 302)
    assert core.drain() == []


def test_no_answer_keeps_the_last_addresses_says_so_once_and_asks_again_after_the_retry_interval():
    core = settled()
    core.timer_fired(T0 + 301)
    core.drain()
    core.lookup_done(NFS, None, T0 + 304)
    effects = core.drain()
    assert logs(effects) == [(INFO, f"pinned name {NFS}: no nameserver answered; keeping 198.18.0.20, "
                                    "asking again every 30 s")]
    assert of(effects, WriteHostsBlock) == []
    core.lookup_done(MAIL, ["198.18.0.40", "2001:db8::40"], T0 + 304)
    assert core.deadline() == T0 + 334
    core.timer_fired(T0 + 334)
    assert of(core.drain(), LookUpPinned) == [LookUpPinned(NFS)]
    core.lookup_done(NFS, None, T0 + 337)
    assert core.drain() == []  # still down: not logged again
    pinned = core.status(T0 + 340).hosts.pinned[0]
    assert to_json(pinned) == {"name": NFS, "addresses": ["198.18.0.20"], "source": "dns", "confirmed_s_ago": 339.0,
                      "last_lookup": "no answer", "next_lookup_in_s": 27.0}


def test_nxdomain_keeps_the_last_addresses_with_one_warning_until_dns_has_an_address_again():
    core = settled()
    core.timer_fired(T0 + 301)
    core.drain()
    core.lookup_done(NFS, [], T0 + 302)
    effects = core.drain()
    assert logs(effects) == [(WARNING, f"pinned name {NFS} has no address in DNS (NXDOMAIN or no A/AAAA record); "
                                       "keeping 198.18.0.20")]
    assert of(effects, WriteHostsBlock) == []
    status = core.status(T0 + 302).hosts.pinned[0]
    assert status.addresses == ("198.18.0.20",) and status.last_lookup == "no address"
    assert status.next_lookup_in_s == 300.0  # an answer, not an outage: the normal interval
    core.timer_fired(T0 + 602)
    core.drain()
    core.lookup_done(NFS, [], T0 + 603)
    assert core.drain() == []  # said once
    core.timer_fired(T0 + 903)
    core.drain()
    core.lookup_done(NFS, ["198.18.0.20"], T0 + 904)
    assert logs(core.drain()) == [(INFO, f"pinned name {NFS} has an address in DNS again: 198.18.0.20")]


def test_a_name_never_answered_stays_out_of_the_block():
    core, effects = start()
    written(core, effects, T0)
    core.lookup_done(NFS, None, T0 + 3)
    core.lookup_done(MAIL, [], T0 + 3)
    effects = core.drain()
    assert of(effects, WriteHostsBlock) == []
    assert [level for level, _ in logs(effects)] == [INFO, WARNING]
    assert "keeping nothing" in logs(effects)[0][1]


def test_junk_in_an_answer_is_dropped():
    core, effects = start()
    written(core, effects, T0)
    core.lookup_done(NFS, ["not an address", "198.18.0.20"], T0 + 1)
    assert lines(of(core.drain(), WriteHostsBlock)[0]) == [f"198.18.0.20\t{NFS}"]


# --- router names and /etc/defaultrouter


def test_router_names_name_the_first_router_and_defaultrouter_lists_them_all():
    core = settled()
    core.set_routers(["198.18.1.1", "198.18.1.2"], T0 + 5)
    effects = core.drain()
    assert lines(of(effects, WriteHostsBlock)[0])[0] == "198.18.1.1\tsite-router"
    assert of(effects, WriteDefaultRouter) == [WriteDefaultRouter(ROUTER_FILE, "198.18.1.1\n198.18.1.2\n")]
    written(core, effects, T0 + 5)
    assert to_json(core.status(T0 + 6).defaultrouter) == {"path": ROUTER_FILE, "written_at": STAMP,
                                                     "content": ["198.18.1.1", "198.18.1.2"]}


def test_with_no_router_known_both_files_keep_the_last_one():
    core = settled()
    core.set_routers(["198.18.1.1"], T0 + 5)
    written(core, core.drain(), T0 + 5)
    core.set_routers([], T0 + 6)
    assert core.drain() == []
    assert core.status(T0 + 6).defaultrouter.content == ("198.18.1.1",)
    assert HostsEntry("198.18.1.1", ("site-router",)) in core.entries()


def test_router_names_off():
    core, effects = start(settings=dataclasses.replace(SETTINGS, router_names=(), pin=()))
    written(core, effects, T0)
    core.set_routers(["198.18.1.1"], T0 + 1)
    assert of(core.drain(), WriteHostsBlock) == []


# --- self names


def test_self_names_get_the_ipv4_and_the_ipv6_address():
    core = settled()
    core.set_addresses("198.18.1.10", "2001:db8::10", T0 + 2)
    effects = core.drain()
    assert lines(of(effects, WriteHostsBlock)[0])[:2] == ["198.18.1.10\tweb1.example.test web1",
                                                          "2001:db8::10\tweb1.example.test web1"]
    written(core, effects, T0 + 2)
    assert to_json(core.status(T0 + 2).hosts.self) == {"names": ["web1.example.test", "web1"],
                                                    "addresses": ["198.18.1.10", "2001:db8::10"]}
    core.set_addresses("198.18.1.10", None, T0 + 3)  # the IPv6 address went away: so does its line
    assert lines(of(core.drain(), WriteHostsBlock)[0])[:2] == ["198.18.1.10\tweb1.example.test web1",
                                                               f"198.18.0.20\t{NFS}"]


def test_self_names_follow_the_hostname_and_search_domains():
    core, effects = start(hostname="web1", search=(), settings=dataclasses.replace(SETTINGS, pin=()))
    written(core, effects, T0)
    core.set_addresses("198.18.1.10", None, T0 + 1)
    assert lines(of(core.drain(), WriteHostsBlock)[0]) == ["198.18.1.10\tweb1"]
    core.write_done(HOSTS, None, T0 + 1)
    core.set_names("web1", ("corp.example.test", "example.test"), T0 + 2)
    assert lines(of(core.drain(), WriteHostsBlock)[0]) == ["198.18.1.10\tweb1.corp.example.test web1"]
    core.write_done(HOSTS, None, T0 + 2)
    core.set_names("db2.example.org", ("corp.example.test",), T0 + 3)  # a dotted hostname is its own FQDN
    assert lines(of(core.drain(), WriteHostsBlock)[0]) == ["198.18.1.10\tdb2.example.org db2"]


def test_self_off_or_no_hostname_gives_no_self_line():
    for settings, hostname in ((dataclasses.replace(SETTINGS, self_entry=False), "web1"), (SETTINGS, "localhost")):
        core, effects = start(settings=settings, hostname=hostname)
        written(core, effects, T0)
        core.set_addresses("198.18.1.10", "2001:db8::10", T0 + 1)
        assert of(core.drain(), WriteHostsBlock) == []
        assert core.status(T0 + 1).hosts.self.addresses == ()


# --- recovery at start


LAST_BLOCK = (
    f"{BEGIN}\n# Managed by bootres (an older header)\n"
    "198.18.1.10\tweb1.example.test web1\n2001:db8::10\tWEB1.Example.Test web1\n"
    "198.18.1.77\tsite-router\n"
    "198.18.0.20\tNFS1.Example.Test\n2001:db8::20\tnfs1.example.test # a comment\n"
    "198.18.0.30\tnot-pinned-any-more.example.test\n"
    f"{END}\n"
)


def test_last_runs_block_and_defaultrouter_seed_everything_until_told_otherwise():
    admin = "127.0.0.1\tlocalhost\n"
    core, effects = start(hosts=admin + LAST_BLOCK, defaultrouter="198.18.1.50\n198.18.1.51\n")
    assert core.entries() == [
        HostsEntry("198.18.1.10", ("web1.example.test", "web1")),
        HostsEntry("2001:db8::10", ("web1.example.test", "web1")),
        HostsEntry("198.18.1.50", ("site-router",)),  # /etc/defaultrouter wins over the block's router line
        HostsEntry("198.18.0.20", (NFS,)),
        HostsEntry("2001:db8::20", (NFS,)),
    ]
    # The block differs (older header, a dropped pin, another router): written; /etc/defaultrouter is as it was.
    assert [type(e) for e in effects if not isinstance(e, LookUpPinned)] == [WriteHostsBlock]
    status = core.status(T0)
    assert status.hosts.written_at == STAMP and status.defaultrouter.content == ("198.18.1.50", "198.18.1.51")
    assert to_json(status.hosts.pinned[0]) == {"name": NFS, "addresses": ["198.18.0.20", "2001:db8::20"],
                                            "source": "last block", "confirmed_s_ago": None,
                                            "last_lookup": "not asked yet", "next_lookup_in_s": None}
    # The kernel speaks: from then on the self lines are what it says.
    core.set_addresses("198.18.1.11", None, T0 + 1)
    assert core.entries()[0] == HostsEntry("198.18.1.11", ("web1.example.test", "web1"))
    assert len([e for e in core.entries() if e.names[-1] == "web1"]) == 1


def test_without_a_defaultrouter_file_the_blocks_router_line_is_the_guess():
    core, _ = start(hosts=LAST_BLOCK)
    assert HostsEntry("198.18.1.77", ("site-router",)) in core.entries()
    assert core.status(T0).defaultrouter.content == ()


def test_a_restart_with_nothing_changed_writes_nothing():
    core = settled()
    core.set_routers(["198.18.1.1"], T0 + 2)
    core.set_addresses("198.18.1.10", "2001:db8::10", T0 + 2)
    all_written(core, core.drain(), T0 + 2)
    block = render_block(core.entries())
    again, effects = start(hosts="127.0.0.1 localhost\n" + block, defaultrouter="198.18.1.1\n")
    assert of(effects, (WriteHostsBlock, WriteDefaultRouter)) == []
    assert again.entries() == core.entries()


def test_nothing_is_written_while_nothing_changes():
    core = settled()
    core.set_routers(["198.18.1.1"], T0 + 2)
    written(core, core.drain(), T0 + 2)
    core.set_routers(["198.18.1.1"], T0 + 3)
    core.set_names("web1", ("example.test",), T0 + 3)
    core.timer_fired(T0 + 4)
    assert core.drain() == []


# --- writes


def test_one_write_in_flight_per_file_then_the_latest_content():
    core = settled()
    core.set_routers(["198.18.1.1"], T0 + 2)
    first = of(core.drain(), WriteHostsBlock)
    core.set_routers(["198.18.1.2"], T0 + 2.1)
    core.set_routers(["198.18.1.3"], T0 + 2.2)
    assert of(core.drain(), WriteHostsBlock) == []  # the first is still being written
    core.write_done(HOSTS, None, T0 + 2.3, written_at=STAMP)
    (second,) = of(core.drain(), WriteHostsBlock)
    assert "198.18.1.3\tsite-router" in second.block and first[0].block != second.block


def test_a_failed_write_is_reported_retried_every_retry_interval_and_logged_once():
    core = settled()
    core.set_routers(["198.18.1.1"], T0 + 2)
    effects = written(core, core.drain(), T0 + 2, error="Read-only file system")
    assert logs(effects) == [
        (WARNING, "cannot write /etc/hosts: Read-only file system; retrying every 30 s"),
        (WARNING, "cannot write /etc/defaultrouter: Read-only file system; retrying every 30 s"),
    ]
    status = core.status(T0 + 2)
    assert status.hosts.error == "cannot write /etc/hosts: Read-only file system"
    assert status.defaultrouter.error == "cannot write /etc/defaultrouter: Read-only file system"
    assert core.deadline() == T0 + 32
    core.timer_fired(T0 + 20)
    assert core.drain() == []
    core.timer_fired(T0 + 32)
    retries = core.drain()
    assert len(of(retries, (WriteHostsBlock, WriteDefaultRouter))) == 2
    assert logs(written(core, retries, T0 + 32, error="Read-only file system")) == []  # not again
    core.timer_fired(T0 + 62)
    effects = written(core, core.drain(), T0 + 62)
    assert (INFO, "/etc/hosts writable again") in logs(effects)
    assert (INFO, "/etc/defaultrouter written: 198.18.1.1") in logs(effects)
    assert core.status(T0 + 62).hosts.error is None and core.status(T0 + 62).defaultrouter.error is None
    assert core.deadline() == T0 + 301  # only the pins' refresh is left


def test_new_content_is_tried_at_once_even_while_failing():
    core = settled()
    core.set_routers(["198.18.1.1"], T0 + 2)
    written(core, core.drain(), T0 + 2, error="No space left on device")
    core.set_routers(["198.18.1.2"], T0 + 3)
    assert len(of(core.drain(), (WriteHostsBlock, WriteDefaultRouter))) == 2


def test_the_log_line_of_a_write_says_what_it_wrote():
    core, effects = start(settings=dataclasses.replace(SETTINGS, pin=()))
    core.write_done(HOSTS, None, T0, written_at=STAMP)
    assert logs(core.drain()) == [(INFO, "/etc/hosts written: 0 entries in the block")]
    core.set_routers(["198.18.1.1"], T0 + 1)
    core.drain()
    core.write_done(HOSTS, None, T0 + 1, written_at=STAMP, changed=False)  # the file held it already
    assert logs(core.drain()) == []


# --- reconfigure


def test_reconfigure_asks_a_new_pin_at_once_and_a_dropped_pin_leaves_the_block():
    core = settled()
    new = "ldap.example.test"
    core.reconfigure(dataclasses.replace(SETTINGS, pin=(MAIL, new)), T0 + 10)
    effects = core.drain()
    assert of(effects, LookUpPinned) == [LookUpPinned(new)]
    assert NFS not in of(effects, WriteHostsBlock)[0].block
    written(core, effects, T0 + 10)
    core.lookup_done(new, ["198.18.0.50"], T0 + 10.1)
    assert f"198.18.0.50\t{new}" in lines(of(core.drain(), WriteHostsBlock)[0])


def test_a_pin_dropped_and_added_back_while_asked_is_not_asked_twice():
    core = settled()
    core.timer_fired(T0 + 301)
    core.drain()
    core.reconfigure(dataclasses.replace(SETTINGS, pin=(MAIL,)), T0 + 302)
    written(core, core.drain(), T0 + 302)
    core.reconfigure(SETTINGS, T0 + 303)
    assert of(core.drain(), LookUpPinned) == []  # its lookup is still in flight
    assert core.deadline() is None  # and its result, not a timer, decides what comes next
    core.lookup_done(NFS, ["198.18.0.22"], T0 + 304)
    assert f"198.18.0.22\t{NFS}" in lines(of(core.drain(), WriteHostsBlock)[0])


def test_an_answer_for_a_name_no_longer_pinned_is_dropped():
    core = settled()
    core.timer_fired(T0 + 301)
    core.drain()
    core.reconfigure(dataclasses.replace(SETTINGS, pin=(MAIL,)), T0 + 302)
    written(core, core.drain(), T0 + 302)
    core.lookup_done(NFS, ["198.18.0.99"], T0 + 303)
    assert core.drain() == [] and "198.18.0.99" not in str(core.entries())


def test_a_shorter_refresh_interval_applies_at_once_and_a_new_path_is_written():
    core = settled()
    core.reconfigure(dataclasses.replace(SETTINGS, refresh_interval=10.0, hosts_file="/etc/hosts.new",
                                         defaultrouter_file=None), T0 + 2)
    effects = core.drain()
    assert [e.path for e in of(effects, WriteHostsBlock)] == ["/etc/hosts.new"]
    assert core.deadline() == T0 + 12
    core.write_done(HOSTS, None, T0 + 3)  # a result for the old path is nobody's business now
    assert core.status(T0 + 3).defaultrouter is None


def test_before_start_nothing_happens():
    core = StubFiles(SETTINGS, spread=lambda: 0.0, hostname="web1")
    core.set_routers(["198.18.1.1"], T0)
    core.reconfigure(dataclasses.replace(SETTINGS, pin=("new.example.test",)), T0)
    core.timer_fired(T0 + 1)
    assert core.drain() == [] and core.deadline() is None
    core.start(T0 + 2, FileText(), FileText())
    effects = core.drain()
    assert of(effects, LookUpPinned) == [LookUpPinned("new.example.test")]
    assert of(effects, WriteDefaultRouter) == [WriteDefaultRouter(ROUTER_FILE, "198.18.1.1\n")]


# --- recovery never raises and never loses an admin's line (merge_block's contract)

block_line = st.one_of(
    st.sampled_from(["198.18.1.10 web1.example.test web1", "2001:db8::10\tweb1.example.test web1",
                     "198.18.1.77 site-router", "198.18.0.20 NFS1.example.test", "198.18.0.21\tnfs1.example.test#x",
                     "1.2.3 nfs1.example.test", "::1%eth0 nfs1.example.test", "198.18.0.22 nfs1.example.test\x00junk",
                     "198.18.0.23\x0bmail.example.test", "198.18.0.24\x1cmail.example.test", BEGIN, END, "#"]),
    st.text(max_size=30),
)


@given(st.lists(block_line, max_size=12), st.text(max_size=60), st.booleans())
def test_property_any_file_text_recovers_without_raising_and_keeps_every_admin_byte(lines_, defaultrouter, crlf):
    ending = "\r\n" if crlf else "\n"
    text = ending.join(lines_)
    core, effects = start(hosts=text, defaultrouter=defaultrouter)
    core.status(T0)
    block = etcfiles.render_block(core.entries())
    merged = etcfiles.merge_block(text, block)
    # Everything but the old block is still there, in order: the new block took its place or was appended.
    found = etcfiles._find_block(etcfiles._lines(text))
    if found is None:
        assert merged == text + ("" if not text or text.endswith("\n") else "\n") + block
    else:
        parts = etcfiles._lines(text)
        assert merged == "".join(parts[:found[0]]) + block + "".join(parts[found[1] + 1:])
    # A pinned name's addresses come from the block, and every one of them is kept.
    recovered = {e.address for e in etcfiles.parse_block(text) if {NFS, MAIL} & set(e.names)}
    kept = {e.address for e in core.entries() if e.names in ((NFS,), (MAIL,))}
    assert kept == recovered
    for write in of(effects, WriteHostsBlock):
        assert write.block == block


def test_lookups_are_spread_so_hosts_booted_together_do_not_ask_in_step():
    draws = iter([0.5, 0.25, 0.99])
    core = StubFiles(SETTINGS, spread=lambda: next(draws), hostname="web1", search=("example.test",))
    core.start(T0, FileText("", None), FileText("", None))
    assert of(core.drain(), LookUpPinned) == []  # not at the very start...
    assert core.deadline() == T0 + 0.25 * stubfiles.START_SPREAD  # ...but within START_SPREAD (the earliest pin)
    core.timer_fired(T0 + 0.5)
    asked = of(core.drain(), LookUpPinned)
    assert sorted(e.name for e in asked) == sorted([NFS, MAIL])
    core.lookup_done(NFS, ["198.18.0.20"], T0 + 0.6)
    core.drain()
    pin_due = core.status(T0 + 0.6).hosts.pinned[0].next_lookup_in_s
    assert pin_due == round(300.0 * (1 - stubfiles.SPREAD * 0.99), 1)  # up to a tenth early, never late
