"""stub: the front door, end to end in the core: ACL, parse ladder, hosts, cache, dedupe, stale."""

import itertools
import ipaddress
import struct

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rcode
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bootres.core import clientwire, dnswire
from bootres.core.cache import Cache
from bootres.core.effects import CloseUpstream, Log, Respond
from bootres.core.hostsdb import HostsDB, parse_hosts
from bootres.core.race import Race
from bootres.core.report import to_json
from bootres.core.resolver import Resolver
from resolver_helpers import (A, B, C, D, addresses, label, parsed, query, reply_to, responses, routing, sends,
                              settings as shipped_settings)


def resolver_settings(**overrides):
    """The shipped defaults but ``strategy = race`` unless a test says otherwise: most tests here are about
    what each upstream's reply does, and a race asks every one at once (the default, hedge, has its own)."""
    return shipped_settings(**{"strategy": "race", **overrides})


def make_stub(strict: bool = True, **overrides) -> Resolver:
    """Strict: a bug of ours raises in the test (the tests of the bug guard itself pass strict=False)."""
    settings = resolver_settings(**{"routing": routing((A, B)), **overrides})
    ids = itertools.count(0x4000)
    return Resolver(settings, Cache(1000, 3600), lambda: next(ids) & 0xFFFF, strict=strict)


def ask(stub, wire, now, client="c", host="127.0.0.1", tcp=False):
    stub.query_received(wire, client, host, tcp, now)
    return stub.drain()


def resolve(stub, name, now, address="198.18.0.80", ttl=300):
    """Ask for ``name`` and let the first upstream asked (A in the default group) answer it."""
    out = ask(stub, query(name), now)
    first = sends(out)[0]
    stub.upstream_reply(first.token, reply_to(first, address=address, ttl=ttl), first.address, now)
    return responses(stub.drain())


def kill_both_upstreams(stub, now):
    stub.timer_fired(now)  # the losers' queries of earlier races time out first, as they would have
    stub.drain()
    for u in stub.upstreams.all:
        for _ in range(3):
            u.timed_out(now)


def test_a_miss_goes_upstream_then_hits_answer_from_the_byte_path():
    stub = make_stub()
    (first,) = resolve(stub, "www.example.test", 10.0)
    assert first.source == "upstream" and first.upstream == "198.18.0.10:53"
    assert addresses(first) == ["198.18.0.80"]
    hit = stub.fast_answer(query("WWW.example.TEST", qid=77), "127.0.0.1", 70.0)
    msg = dns.message.from_wire(hit)
    assert msg.id == 77 and msg.question[0].name.to_text() == "WWW.example.TEST."
    assert msg.answer[0].ttl == 240  # 300 - 60 s in the cache
    assert to_json(stub.status().cache) == {"entries": 1, "hits": 1, "misses": 1, "stale_served": 0, "refreshes": 0,
                                      "refreshes_skipped": 0}


def test_remembered_reply_shapes_follow_the_id_the_clock_and_the_cache():
    stub = make_stub()
    resolve(stub, "www.example.test", 0.0, ttl=300)
    first = stub.fast_answer(query(qid=1), "127.0.0.1", 10.2)
    again = stub.fast_answer(query(qid=2), "127.0.0.1", 10.7)  # same second: the remembered reply
    assert again == b"\x00\x02" + first[2:]
    later = dns.message.from_wire(stub.fast_answer(query(qid=3), "127.0.0.1", 11.0))
    assert later.id == 3 and later.answer[0].ttl == 289  # a new second: TTLs move on
    resolve(stub, "other.example.test", 11.0)
    stub.cache.drop_names({dns.name.from_text("www.example.test").canonicalize().to_wire()})
    assert stub.fast_answer(query(qid=4), "127.0.0.1", 11.0) is None  # evicted: not answered from memory
    assert stub.status().cache.hits == 3


def hit(stub, now, name="www.example.test"):
    """A client asks ``name`` as a plain UDP query, and the stub's timer runs if due within 50 ms, as the shell's
    would: (how it was answered, "fast" or the slow path's sources; the upstream queries that set off)."""
    wire = stub.fast_answer(query(name), "127.0.0.1", now)
    if wire is not None:
        how, out = "fast", stub.drain()
    else:
        out = ask(stub, query(name), now)
        how = [r.source for r in responses(out)]
    if stub.deadline() is not None and stub.deadline() <= now + 0.05:
        stub.timer_fired(now + 0.05)
        out += stub.drain()
    return how, sends(out)


def test_a_hit_in_the_last_tenth_of_the_ttl_refreshes_the_name_once_in_the_background():
    stub = make_stub()
    resolve(stub, "www.example.test", 0.0, ttl=10)
    assert hit(stub, 5.0) == ("fast", [])
    assert hit(stub, 8.94) == ("fast", [])  # not yet in the window [8.95, 10): the last tenth, 50 ms early
    out = ask(stub, query(), 9.0)
    assert [r.source for r in responses(out)] == ["cache"] and sends(out) == []  # the answer goes out first
    stub.timer_fired(9.049)
    assert sends(stub.drain()) == []  # the refresh starts from the timer, once the client has run
    stub.timer_fired(9.05)
    source, refresh = ["cache"], sends(stub.drain())
    assert source == ["cache"] and len(refresh) == 2  # answered at once; the race asks A and B behind it
    assert hit(stub, 9.1) == ("fast", [])  # one refresh at a time per name
    stub.upstream_reply(refresh[0].token, reply_to(refresh[0], address="198.18.0.81", ttl=10), A, 9.101)
    assert responses(stub.drain()) == []  # nobody waited for it
    assert hit(stub, 10.5) == ("fast", [])  # fresh again, before it would have expired: no client waits
    answer = dns.message.from_wire(stub.fast_answer(query(), "127.0.0.1", 10.6))
    assert answer.answer[0][0].to_text() == "198.18.0.81" and answer.answer[0].ttl == 9
    assert stub.status().cache.refreshes == 1 and stub.misses == 1  # only the first ask missed


def test_a_fast_hit_in_the_window_asks_for_the_refresh_too_and_is_not_remembered():
    stub = make_stub()
    resolve(stub, "www.example.test", 0.0, ttl=10)
    assert hit(stub, 1.0) == ("fast", [])
    wire = stub.fast_answer(query(), "127.0.0.1", 9.5)
    assert dns.message.from_wire(wire).answer[0].ttl == 1  # answered here, from the cache
    assert stub.deadline() == pytest.approx(9.55)  # the shell re-reads it after the batch
    assert stub.fast_answer(query(), "127.0.0.1", 9.51) is not None  # same second: still not remembered...
    stub.timer_fired(9.55)
    assert len(sends(stub.drain())) == 2 and stub.status().cache.refreshes == 1  # ...and one refresh for both hits


def test_a_name_asked_once_is_never_refreshed():
    stub = make_stub()
    resolve(stub, "www.example.test", 0.0, ttl=10)
    stub.timer_fired(9.5)
    stub.timer_fired(20.0)
    assert sends(stub.drain()) == [] and stub.status().cache.refreshes == 0


def test_refreshes_are_bounded_by_prefetch_rate_and_a_share_of_max_inflight():
    stub = make_stub(prefetch_rate=1, max_inflight=4)
    for name in ("a.example.test", "b.example.test", "c.example.test"):
        resolve(stub, name, 0.0, ttl=10)
    stub.timer_fired(5.0)  # B's lingering queries time out
    _, refresh = hit(stub, 9.0, "a.example.test")
    stub.upstream_reply(refresh[0].token, reply_to(refresh[0], ttl=10), A, 9.001)
    assert hit(stub, 9.0, "b.example.test") == ("fast", [])  # one per second at most
    assert stub.status().cache.refreshes_skipped == 1
    assert len(hit(stub, 9.5, "b.example.test")[1]) == 0  # half a token
    assert (stub.status().cache.refreshes, stub.status().cache.refreshes_skipped) == (1, 2)
    busy = make_stub(max_inflight=4)
    resolve(busy, "c.example.test", 0.0, ttl=10)
    busy.timer_fired(5.0)
    ask(busy, query("miss1.example.test"), 9.0)
    ask(busy, query("miss2.example.test"), 9.0)  # half of max_inflight in flight: the rest is the clients'
    assert hit(busy, 9.1, "c.example.test") == ("fast", [])
    assert (busy.status().cache.refreshes, busy.status().cache.refreshes_skipped) == (0, 1)


def test_no_refresh_ahead_when_prefetch_is_off_or_every_upstream_is_down():
    off = make_stub(prefetch=False)
    resolve(off, "www.example.test", 0.0, ttl=10)
    assert hit(off, 9.9) == ("fast", [])
    dead = make_stub()
    resolve(dead, "www.example.test", 0.0, ttl=10)
    kill_both_upstreams(dead, 5.0)
    assert hit(dead, 9.5) == ("fast", [])
    assert dead.status().cache.refreshes == dead.status().cache.refreshes_skipped == 0


def test_a_client_asking_after_expiry_while_the_refresh_is_out_waits_stale_answer_after_at_most():
    stub = make_stub(stale_answer_after=0.4)
    resolve(stub, "www.example.test", 0.0, ttl=10)
    _, refresh = hit(stub, 9.9)
    assert refresh
    assert hit(stub, 10.0) == ([], [])  # expired: joins the refresh in flight
    stub.timer_fired(10.4)
    assert [r.source for r in responses(stub.drain())] == ["stale"]


def test_the_do_bit_is_part_of_the_key():
    stub = make_stub()
    resolve(stub, "www.example.test", 0.0)
    assert stub.fast_answer(query(use_edns=0, want_dnssec=True), "127.0.0.1", 1.0) is None
    assert stub.fast_answer(query(use_edns=0), "127.0.0.1", 1.0) is not None


def test_identical_questions_in_flight_go_upstream_once():
    stub = make_stub()
    out = ask(stub, query(qid=1), 0.0, client="one")
    assert len(sends(out)) == 2
    assert sends(ask(stub, query("Www.Example.Test", qid=2), 0.001, client="two")) == []
    to_a = sends(out)[0]
    stub.upstream_reply(to_a.token, reply_to(to_a), A, 0.002)
    got = responses(stub.drain())
    assert [(r.client, parsed(r).id) for r in got] == [("one", 1), ("two", 2)]
    assert parsed(got[1]).question[0].name.to_text() == "Www.Example.Test."


def test_queries_from_outside_allow_are_refused():
    stub = make_stub(allow=(ipaddress.ip_network("127.0.0.0/8"),))
    (reply,) = responses(ask(stub, query(), 0.0, host="198.18.0.99"))
    assert parsed(reply).rcode() == dns.rcode.REFUSED
    assert stub.fast_answer(query(), "198.18.0.99", 0.0) is None
    assert stub.status().refused == 1


def test_hosts_files_answer_locally_and_win_over_the_cache():
    stub = make_stub()
    resolve(stub, "nfs1.example.test", 0.0, address="198.18.0.80")
    stub.set_hosts(HostsDB(parse_hosts("198.18.0.5 nfs1.example.test\n")))
    assert stub.fast_answer(query("nfs1.example.test"), "127.0.0.1", 1.0) is None  # dropped from the cache
    out = ask(stub, query("nfs1.example.test"), 1.0)
    assert sends(out) == []
    (reply,) = responses(out)
    assert reply.source == "hosts" and addresses(reply) == ["198.18.0.5"]
    (ptr,) = responses(ask(stub, query("5.0.18.198.in-addr.arpa", "PTR"), 1.0))
    assert addresses(ptr) == ["nfs1.example.test."]
    (nodata,) = responses(ask(stub, query("nfs1.example.test", "AAAA"), 1.0))
    assert parsed(nodata).rcode() == dns.rcode.NOERROR and not parsed(nodata).answer


def test_nxdomain_is_cached_for_the_soa_minimum():
    stub = make_stub(prefetch=False)  # a hit in the last tenth of the TTL would take the slow path to refresh
    out = ask(stub, query("nope.example.test"), 0.0)
    to_a = sends(out)[0]
    stub.upstream_reply(to_a.token, reply_to(to_a, rcode=dns.rcode.NXDOMAIN, soa_minimum=30), A, 0.0)
    stub.drain()
    hit = dns.message.from_wire(stub.fast_answer(query("nope.example.test"), "127.0.0.1", 29.0))
    assert hit.rcode() == dns.rcode.NXDOMAIN and hit.authority[0].ttl == 1
    assert stub.fast_answer(query("nope.example.test"), "127.0.0.1", 30.0) is None


def test_stale_answer_after_stale_answer_after_and_the_refresh_continues():
    stub = make_stub(stale_answer_after=0.1)
    resolve(stub, "www.example.test", 0.0, ttl=10)
    out = ask(stub, query(), 100.0)
    assert len(sends(out)) == 2 and not responses(out)
    stub.timer_fired(100.09)
    assert responses(stub.drain()) == []
    stub.timer_fired(100.1)
    (stale,) = responses(stub.drain())
    assert stale.source == "stale" and parsed(stale).answer[0].ttl == 30
    (late,) = responses(ask(stub, query(qid=9), 100.12))  # joins the refresh: stale at once
    assert late.source == "stale"
    to_a = sends(out)[0]
    stub.upstream_reply(to_a.token, reply_to(to_a, address="198.18.0.81", ttl=10), A, 100.15)
    assert responses(stub.drain()) == []  # everyone was answered already
    fresh = dns.message.from_wire(stub.fast_answer(query(), "127.0.0.1", 101.0))
    assert fresh.answer[0][0].to_text() == "198.18.0.81"  # the background refresh landed
    assert stub.status().cache.stale_served == 2


def test_stale_at_once_when_every_upstream_is_down():
    stub = make_stub()
    resolve(stub, "www.example.test", 0.0, ttl=10)
    resolve(stub, "other.example.test", 0.0, ttl=10)
    kill_both_upstreams(stub, 50.0)
    out = ask(stub, query(), 100.0)
    (stale,) = responses(out)
    assert stale.source == "stale"
    assert len(sends(out)) == 1  # the refresh is the group's one probe
    out = ask(stub, query("other.example.test"), 100.1)
    assert [r.source for r in responses(out)] == ["stale"]
    assert sends(out) == []  # no probe due yet: dead upstreams are not asked per stale hit


@pytest.mark.parametrize("why", ["refused", "unreachable (no route to its network)"])
def test_unreachable_upstreams_serve_stale_at_once_from_the_first_lookup(why):
    stub = make_stub()
    resolve(stub, "www.example.test", 0.0, ttl=10)
    resolve(stub, "other.example.test", 0.0, ttl=10)
    stub.timer_fired(50.0)  # the losers' queries time out
    stub.drain()
    out = ask(stub, query(), 100.0)
    assert responses(out) == []
    for send in sends(out):  # the kernel answers for them: ICMP port unreachable, or no route
        stub.upstream_failed(send.token, why, True, 100.0001)
    out = stub.drain()
    assert [r.source for r in responses(out)] == ["stale"]  # not after stale_answer_after
    assert sum(1 for e in out if isinstance(e, Log)) == 2  # each upstream down, one line each
    assert all(u.state == "down" for u in stub.upstreams.all)
    out = ask(stub, query("other.example.test"), 100.001)
    assert [r.source for r in responses(out)] == ["stale"] and sends(out) == []  # no probe due yet
    out = ask(stub, query("other.example.test"), 101.1)
    assert [r.source for r in responses(out)] == ["stale"] and len(sends(out)) == 1  # a probe, behind


def test_a_route_appearing_makes_unreachable_upstreams_usable_without_waiting_for_a_probe():
    stub = make_stub()
    out = ask(stub, query(), 10.0)
    for send in sends(out):  # before DHCP: no route to either
        stub.upstream_failed(send.token, "unreachable (no route to its network)", True, 10.0001)
    stub.drain()
    assert all(u.state == "down" for u in stub.upstreams.all)
    stub.routes_changed()
    assert sum(1 for e in stub.drain() if isinstance(e, Log)) == 2
    assert all(u.state == "unknown" for u in stub.upstreams.all)
    out = ask(stub, query("other.example.test"), 10.1)  # long before the first probe (PROBE_FIRST)
    assert len(sends(out)) == 2


def restarted_with_a_cache_file(**overrides):
    """A stub as after a restart: www and other from last run's cache file (stale-only), no upstream heard yet."""
    before = make_stub()
    resolve(before, "www.example.test", 0.0)
    resolve(before, "other.example.test", 0.0)
    stub = make_stub(**overrides)
    assert stub.cache.restore(before.cache.snapshot(10.0), 1000.0, 3600.0) == 2
    return stub


def test_until_an_upstream_answers_yesterdays_answers_wait_only_the_boot_timer():
    stub = restarted_with_a_cache_file(boot_stale_after=0.02, stale_answer_after=0.4)
    out = ask(stub, query(), 1000.0)
    assert responses(out) == [] and stub.deadline() == 1000.02
    stub.timer_fired(1000.02)
    assert [r.source for r in responses(stub.drain())] == ["stale"]
    # Both upstreams have now been silent for the boot timer: the next name at once.
    assert [r.source for r in responses(ask(stub, query("other.example.test"), 1000.03))] == ["stale"]


def test_a_nameserver_that_is_up_wins_within_the_boot_timer_and_ends_it():
    stub = restarted_with_a_cache_file(boot_stale_after=0.02, stale_answer_after=0.4)
    out = ask(stub, query(), 1000.0)
    to_a = sends(out)[0]
    stub.upstream_reply(to_a.token, reply_to(to_a, address="198.18.0.81"), A, 1000.001)
    (fresh,) = responses(stub.drain())
    assert fresh.source == "upstream"
    assert responses(ask(stub, query("other.example.test"), 1001.0)) == []
    stub.timer_fired(1001.39)
    assert responses(stub.drain()) == []  # stale_answer_after from now on, not the boot timer
    stub.timer_fired(1001.4)
    assert [r.source for r in responses(stub.drain())] == ["stale"]


def test_at_start_the_newest_cached_name_is_refreshed_and_a_nameserver_that_answers_settles_it():
    stub = restarted_with_a_cache_file()
    assert stub.settled_at(1000.0) is None  # nothing asked yet: nothing to wait for
    assert stub.refresh_at_start(1000.0) == 1  # one group: one name
    out = stub.drain()
    assert {s.address for s in sends(out)} == {A, B}  # every upstream of the group asked at once
    assert stub.settled_at(1000.001) == pytest.approx(1000.02)  # boot_stale_after after the ask
    first = sends(out)[0]
    stub.upstream_reply(first.token, reply_to(first, address="198.18.0.82"), first.address,
                        1000.002)
    assert responses(stub.drain()) == [] and stub.settled_at(1000.002) is None
    (hit,) = responses(ask(stub, query("other.example.test"), 1000.003))
    answer = dns.message.from_wire(hit.wire)
    assert hit.source == "cache" and answer.answer[0][0].to_text() == "198.18.0.82"  # the newest name: fresh
    assert stub.refresh_at_start(1001.0) == 0  # once an upstream has answered: never again


def test_at_start_silent_nameservers_settle_after_the_boot_timer_and_the_first_client_gets_stale_at_once():
    stub = restarted_with_a_cache_file(boot_stale_after=0.02)
    stub.refresh_at_start(1000.0)
    stub.drain()
    assert stub.settled_at(1000.019) == pytest.approx(1000.02)
    assert stub.settled_at(1000.02) is None
    assert [r.source for r in responses(ask(stub, query(), 1000.021))] == ["stale"]


def test_at_start_unreachable_nameservers_settle_at_once():
    stub = restarted_with_a_cache_file()
    stub.refresh_at_start(1000.0)
    for send in sends(stub.drain()):
        stub.upstream_failed(send.token, "unreachable (no route to its network)", True, 1000.0001)
    stub.drain()
    assert stub.settled_at(1000.0002) is None


def test_at_start_each_group_refreshes_its_own_newest_name_and_an_empty_cache_asks_nobody():
    stub = make_stub(routing=routing((A,), {"corp.test": (B,)}))
    resolve(stub, "www.example.test", 0.0)
    out = ask(stub, query("db.corp.test"), 0.0)
    (to_b,) = sends(out)
    stub.upstream_reply(to_b.token, reply_to(to_b), B, 0.0)
    stub.drain()
    restarted = make_stub(routing=routing((A,), {"corp.test": (B,)}))
    restarted.cache.restore(stub.cache.snapshot(10.0), 1000.0, 3600.0)
    assert restarted.refresh_at_start(1000.0) == 2
    asked = {(s.address, dns.message.from_wire(s.wire).question[0].name.to_text()) for s in sends(restarted.drain())}
    assert asked == {(A, "www.example.test."), (B, "db.corp.test.")}
    assert make_stub().refresh_at_start(0.0) == 0


def resolve_two_then_let_them_expire(stub):
    """www and other cached with TTL 10 at 0.0; the losers' queries closed, so nothing is left open."""
    resolve(stub, "www.example.test", 0.0, ttl=10)
    resolve(stub, "other.example.test", 0.0, ttl=10)
    stub.timer_fired(5.0)
    stub.drain()


def sent_to(effects, address):
    return [s for s in sends(effects) if s.address == address]


def test_once_every_upstream_is_silent_the_next_stale_hit_is_answered_at_once():
    stub = make_stub()  # stale_answer_after 0.4
    resolve_two_then_let_them_expire(stub)
    out = ask(stub, query(), 100.0, client="first")
    assert len(sends(out)) == 2 and not responses(out)
    stub.timer_fired(100.2)  # retransmissions: still the same silence, counted from 100.0
    assert responses(stub.drain()) == []
    stub.timer_fired(100.4)
    assert [(r.client, r.source) for r in responses(stub.drain())] == [("first", "stale")]
    out = ask(stub, query("other.example.test"), 100.41, client="second")
    assert [(r.client, r.source) for r in responses(out)] == [("second", "stale")]
    assert parsed(responses(out)[0]).answer[0].ttl == 30
    # Neither is down, so no probe is due: their open queries notice a return.
    assert sends(out) == []
    assert all(u.state != "down" for u in stub.upstreams.all)


def test_clients_waiting_when_the_last_upstream_falls_silent_are_answered_then():
    stub = make_stub()
    resolve_two_then_let_them_expire(stub)
    ask(stub, query("new.example.test"), 100.0, client="new")  # nothing cached: no stale answer to wait for
    out = ask(stub, query(), 100.3, client="www")  # its own stale_answer_after would end at 100.7
    assert not responses(out)
    assert stub.deadline() == pytest.approx(100.2)  # A's retransmission
    stub.timer_fired(100.2)
    stub.drain()
    assert stub.deadline() == pytest.approx(100.4)  # both silent since 100.0
    stub.timer_fired(100.4)
    assert [(r.client, r.source) for r in responses(stub.drain())] == [("www", "stale")]
    stub.timer_fired(100.7)
    # www is not answered twice; new, with nothing cached, gets its SERVFAIL once both are down (third timeouts).
    assert [(r.client, r.reason) for r in responses(stub.drain())] == [("new", "all upstreams down")]


def test_a_reply_from_one_upstream_ends_the_silence():
    stub = make_stub()
    resolve_two_then_let_them_expire(stub)
    ask(stub, query(), 100.0)
    stub.timer_fired(100.2)
    (retry_a,) = sent_to(stub.drain(), A)
    stub.timer_fired(100.4)
    assert [r.source for r in responses(stub.drain())] == ["stale"]
    stub.upstream_reply(retry_a.token, reply_to(retry_a, address="198.18.0.81", ttl=10), A, 100.5)
    assert responses(stub.drain()) == []  # the refresh landed in the cache
    out = ask(stub, query("other.example.test"), 100.6, client="other")
    assert responses(out) == []  # B is still silent, A is not: ask, do not serve stale
    (to_a,) = sent_to(out, A)
    stub.upstream_reply(to_a.token, reply_to(to_a, address="198.18.0.82", ttl=10), A, 100.61)
    (fresh,) = responses(stub.drain())
    assert fresh.source == "upstream" and addresses(fresh) == ["198.18.0.82"]
    assert stub.status().cache.stale_served == 1


def test_while_one_upstream_still_answers_stale_waits_its_full_time():
    stub = make_stub()
    resolve_two_then_let_them_expire(stub)
    out = ask(stub, query(), 100.0, client="www")
    (to_a,) = sent_to(out, A)
    stub.upstream_reply(to_a.token, reply_to(to_a, ttl=10), A, 100.35)  # slow, but an answer
    assert [r.source for r in responses(stub.drain())] == ["upstream"]
    out = ask(stub, query("other.example.test"), 100.5, client="other")  # B has been silent since 100.0
    assert responses(out) == []
    stub.timer_fired(100.7)
    assert responses(stub.drain()) == []  # A was asked at 100.5: not silent before 100.9
    stub.timer_fired(100.9)
    assert [(r.client, r.source) for r in responses(stub.drain())] == [("other", "stale")]
    assert stub.status().cache.stale_served == 1


def test_never_cached_name_gets_servfail_at_timeout():
    stub = make_stub(timeout=2.0)
    out = ask(stub, query("new.example.test"), 0.0)
    assert len(sends(out)) == 2
    when = stub.deadline()
    replies = []
    for _ in range(20):  # bounded: follow the core's own deadlines
        stub.timer_fired(when)
        replies += responses(stub.drain())
        if replies:
            break
        when = stub.deadline()
    assert when == pytest.approx(2.0)
    assert parsed(replies[0]).rcode() == dns.rcode.SERVFAIL
    assert replies[0].reason == "timeout"


def test_with_no_upstream_at_all_a_miss_gets_servfail_at_once():
    stub = Resolver(resolver_settings(), Cache(10, 3600), lambda: 1)
    (reply,) = responses(ask(stub, query("x.example.test"), 0.0))
    assert parsed(reply).rcode() == dns.rcode.SERVFAIL
    assert reply.reason == "no upstream configured"


def test_beyond_max_inflight_misses_get_servfail_at_once_and_hits_still_answer():
    stub = make_stub(max_inflight=1)
    resolve(stub, "cached.example.test", 0.0)
    ask(stub, query("one.example.test"), 1.0)
    (reply,) = responses(ask(stub, query("two.example.test"), 1.0))
    assert parsed(reply).rcode() == dns.rcode.SERVFAIL
    assert reply.reason == "too many queries in flight (max_inflight)"
    assert stub.fast_answer(query("cached.example.test"), "127.0.0.1", 1.0) is not None


def test_a_shed_query_gets_its_cached_answer_as_stale_or_servfail_and_asks_nobody():
    """Issue 24: beyond the listener's backlog of misses, answered at once from the cache, never queued."""
    stub = make_stub()
    resolve(stub, "cached.example.test", 0.0, ttl=300)
    stub.query_shed(query("cached.example.test", qid=5), "c", "127.0.0.1", 10.0)
    (stale,) = out = stub.drain()
    assert stale.source == "stale" and parsed(stale).id == 5 and addresses(stale) == ["198.18.0.80"]
    stub.query_shed(query("never.example.test"), "c", "127.0.0.1", 10.0)
    (failed,) = out = stub.drain()
    assert parsed(failed).rcode() == dns.rcode.SERVFAIL and failed.reason == "overloaded: too many queries waiting"
    stub.query_shed(query("never.example.test"), "c", "203.0.113.9", 10.0)  # outside allow: dropped
    assert stub.drain() == [] and not sends(out)
    assert stub.status().inflight == 0


def test_stopping_answers_every_waiting_client_stale_or_servfail():
    """Issue 24: SIGTERM with misses waiting: each client gets its stale answer, else SERVFAIL, at once."""
    stub = make_stub(stale_answer_after=5.0)
    resolve(stub, "www.example.test", 0.0, ttl=10)
    ask(stub, query("www.example.test", qid=1), 100.0, client="old")  # expired: waits for a refresh or its stale
    for i in range(3):
        ask(stub, query(f"new{i}.example.test", qid=10 + i), 100.0, client=f"new{i}")
    stub.shutdown(100.5)
    out = stub.drain()
    assert [e.message for e in out if isinstance(e, Log)] == ["stopping: 4 clients still waiting answered (stale or SERVFAIL)"]
    replies = {r.client: r for r in responses(out)}
    assert replies["old"].source == "stale" and addresses(replies["old"]) == ["198.18.0.80"]
    assert all(parsed(replies[f"new{i}"]).rcode() == dns.rcode.SERVFAIL for i in range(3))
    assert replies["new0"].reason == "shutting down"
    stub.shutdown(101.0)
    assert stub.status().inflight == 0 and stub.drain() == []  # nobody left: not even a log line


def test_truncated_upstream_reply_is_retried_over_tcp_and_tcp_clients_get_it_whole():
    stub = make_stub()
    out = ask(stub, query(), 0.0, tcp=True)
    to_a = sends(out)[0]
    stub.upstream_reply(to_a.token, reply_to(to_a, tc=True), A, 0.001)
    (tcp,) = sends(stub.drain())
    assert tcp.tcp
    stub.upstream_reply(tcp.token, reply_to(tcp), None, 0.003)
    (reply,) = responses(stub.drain())
    assert addresses(reply) == ["198.18.0.80"]


# --- split DNS: a question goes to its group only

CORP = {"corp.test": (C, D)}


def kill(stub, *addresses, now=50.0):
    for u in stub.upstreams.all:
        if u.address in addresses:
            for _ in range(3):
                u.timed_out(now)


@pytest.mark.parametrize("strategy", ["race", "hedge"])
def test_a_routed_name_is_raced_within_its_group_and_other_names_within_the_default(strategy):
    asked = []
    for name in ("www.corp.test", "www.example.test"):
        stub = make_stub(routing=routing((A, B), CORP), strategy=strategy, hedge_delay=0.01)
        asked.append([s.address for s in sends(ask(stub, query(name), 0.0))])
        stub.timer_fired(0.01)  # hedge: the second of the group
        asked[-1] += [s.address for s in sends(stub.drain())]
    assert asked == [[C, D], [A, B]]


def test_the_longest_routing_domain_wins():
    stub = make_stub(routing=routing((A,), {"corp.test": (C,), "lab.corp.test": (D,)}))
    assert [s.address for s in sends(ask(stub, query("db.lab.corp.test"), 0.0))] == [D]
    assert [s.address for s in sends(ask(stub, query("www.corp.test"), 0.0))] == [C]
    assert [s.address for s in sends(ask(stub, query("corp.test.example"), 0.0))] == [A]


def test_a_default_server_never_sees_a_routed_name_so_the_internal_answer_always_wins():
    # The lab's case: the default server would answer NXDOMAIN fast, the internal one 20 ms later.
    stub = make_stub(routing=routing((A,), {"corp.test": (C,)}))
    effects = []
    for i in range(20):
        now = float(i)
        out = ask(stub, query(f"host{i}.Corp.Test"), now, client=i)
        effects += out
        (to_c,) = sends(out)
        stub.upstream_reply(to_c.token, reply_to(to_c, address="10.1.0.5"), C, now + 0.020)
        (reply,) = responses(stub.drain())
        assert reply.client == i and reply.upstream == label(C) and addresses(reply) == ["10.1.0.5"]
    assert {s.address for s in sends(effects)} == {C}
    assert stub.status().upstreams[0].queries == 0  # A


def test_an_upstream_in_two_groups_is_one_upstream():
    stub = make_stub(routing=routing((A, C), {"corp.test": (C,)}))
    resolve(stub, "www.corp.test", 0.0)  # C answers a corp name...
    (c,) = [u for u in stub.upstreams.all if u.address == C]
    assert c.state == "up" and c.wins == 1
    out = ask(stub, query("www.example.test"), 1.0)
    assert [s.address for s in sends(out)] == [C, A]  # ...and is measured for the default group too
    assert len(stub.status().upstreams) == 2


def test_status_shows_each_upstreams_source_and_domains_and_the_routes():
    stub = make_stub(routing=routing((A,), {"corp.test": (C, D), "lab.test": ()}, source="networkd vpn0"))
    got = stub.status()
    assert [(u.address, u.source, u.domains) for u in got.upstreams] == [
        (label(A), "networkd vpn0", ()),
        (label(C), "networkd vpn0", ("corp.test",)),
        (label(D), "networkd vpn0", ("corp.test",)),
    ]
    assert to_json(got.routes) == [{"domain": "corp.test", "upstreams": [label(C), label(D)]},
                                   {"domain": "lab.test", "upstreams": []}]


def test_a_dead_group_serves_its_names_stale_at_once_while_the_other_group_is_asked():
    stub = make_stub(routing=routing((A,), {"corp.test": (C,)}))
    for name in ("www.example.test", "www.corp.test", "mail.corp.test"):
        resolve(stub, name, 0.0, ttl=10)
    kill(stub, C)
    out = ask(stub, query("www.corp.test"), 100.0)
    assert [r.source for r in responses(out)] == ["stale"]
    assert [s.address for s in sends(out)] == [C]  # the refresh: C's probe was due
    out = ask(stub, query("www.example.test"), 100.0)
    assert responses(out) == [] and [s.address for s in sends(out)] == [A]  # the public name is not stale
    kill(stub, A)
    (c,) = [u for u in stub.upstreams.all if u.address == C]
    c.answered(0.01, 100.1)  # the corp server is back, the default one is dead
    out = ask(stub, query("mail.corp.test"), 100.2)
    assert [s.address for s in sends(out)] == [C]  # not stale at once: its group is alive
    # The public client still waiting is answered stale now that its own group is all down.
    (public,) = responses(out)
    assert (parsed(public).question[0].name.to_text(), public.source) == ("www.example.test.", "stale")


def test_clients_wait_for_their_own_groups_silence_only():
    stub = make_stub(routing=routing((A,), {"corp.test": (C,)}))  # stale_answer_after 0.4
    resolve(stub, "www.example.test", 0.0, ttl=10)
    resolve(stub, "www.corp.test", 0.0, ttl=10)
    stub.timer_fired(5.0)
    stub.drain()
    ask(stub, query("new.example.test"), 100.0)  # A asked at 100.0; C idle (not silent)
    ask(stub, query("www.example.test"), 100.3, client="public")  # its own stale_answer_after ends at 100.7
    corp = ask(stub, query("www.corp.test"), 100.3, client="corp")
    stub.timer_fired(100.2)  # A's retransmission
    stub.drain()
    stub.timer_fired(100.4)  # A silent since 100.0: its group's waiter gets the stale answer, C's does not
    assert [(r.client, r.source) for r in responses(stub.drain())] == [("public", "stale")]
    (to_c,) = sends(corp)
    stub.upstream_reply(to_c.token, reply_to(to_c, address="10.1.0.9", ttl=10), C, 100.45)
    (fresh,) = responses(stub.drain())
    assert (fresh.client, fresh.source) == ("corp", "upstream") and addresses(fresh) == ["10.1.0.9"]


# --- reconfigure: stats, races in flight and the cache are kept


def test_reconfigure_keeps_upstreams_that_stay_races_in_flight_and_the_cache():
    stub = make_stub()
    resolve(stub, "cached.example.test", 0.0)
    out = ask(stub, query("inflight.example.test"), 1.0, client="old")
    (to_b,) = sent_to(out, B)
    a = stub.upstreams.all[0]
    before = a.status()
    stub.reconfigure(resolver_settings(routing=routing((A, C), source="dhclient eth0")))
    assert stub.upstreams.all[0] is a and a.srtt is not None
    assert a.status() == before._replace(source="dhclient eth0")
    assert [(u.address, u.state) for u in stub.status().upstreams] == [(label(A), "up"), (label(C), "unknown")]
    stub.upstream_reply(to_b.token, reply_to(to_b, address="198.18.0.81"), B, 1.01)  # B is gone, its race is not
    (old,) = responses(stub.drain())
    assert (old.client, old.upstream, addresses(old)) == ("old", label(B), ["198.18.0.81"])
    assert [s.address for s in sends(ask(stub, query("new.example.test"), 1.1))] == [A, C]
    assert stub.fast_answer(query("cached.example.test"), "127.0.0.1", 2.0) is not None


def test_a_routing_domain_that_appears_drops_what_the_old_view_said_about_its_names():
    stub = make_stub()
    out = ask(stub, query("www.corp.test"), 0.0)
    stub.upstream_reply(sends(out)[0].token, reply_to(sends(out)[0], rcode=dns.rcode.NXDOMAIN), A, 0.001)
    resolve(stub, "www.example.test", 0.0)
    out = ask(stub, query("db.corp.test"), 1.0, client="before")  # in flight to the default group
    (old_b,) = sent_to(out, B)
    stub.reconfigure(resolver_settings(routing=routing((A, B), {"corp.test": (C,)})))
    assert [r.source for r in responses(ask(stub, query("www.example.test"), 1.0))] == ["cache"]
    assert stub.fast_answer(query("www.corp.test"), "127.0.0.1", 1.0) is None  # the public NXDOMAIN is gone
    out = ask(stub, query("db.corp.test"), 1.1, client="after")
    (to_c,) = sends(out)  # a race of its own, in the new group, not the old race
    assert to_c.address == C
    stub.upstream_reply(to_c.token, reply_to(to_c, address="10.1.0.7"), C, 1.2)
    stub.upstream_reply(old_b.token, reply_to(old_b, rcode=dns.rcode.NXDOMAIN), B, 1.3)
    assert [(r.client, parsed(r).rcode()) for r in responses(stub.drain())] == [
        ("after", dns.rcode.NOERROR), ("before", dns.rcode.NXDOMAIN)]
    hit = dns.message.from_wire(stub.fast_answer(query("db.corp.test"), "127.0.0.1", 1.4))
    assert hit.answer[0][0].to_text() == "10.1.0.7"  # the old race's reply did not overwrite it


# --- why a SERVFAIL was answered (for bootres query; clients never see it)


def servfail_after_the_race(stub, name="new.example.test", now=0.0):
    got = responses(ask(stub, query(name), now))
    for _ in range(20):  # bounded: follow the core's own deadlines
        got = got or responses(stub.drain())
        if got:
            (reply,) = got
            assert parsed(reply).rcode() == dns.rcode.SERVFAIL
            return reply.reason
        stub.timer_fired(stub.deadline())
    raise AssertionError("no reply")


def test_servfail_reason_a_route_without_servers():
    stub = make_stub(routing=routing((A,), {"corp.test": ()}))
    out = ask(stub, query("www.corp.test"), 0.0)
    assert sends(out) == []
    (reply,) = responses(out)
    assert parsed(reply).rcode() == dns.rcode.SERVFAIL and reply.reason == "no upstream configured for corp.test"


def test_servfail_reason_all_upstreams_down():
    stub = make_stub(timeout=1.0)
    kill_both_upstreams(stub, 0.0)
    (reply,) = responses(ask(stub, query("new.example.test"), 0.5))  # at once: nobody waits for dead upstreams
    assert parsed(reply).rcode() == dns.rcode.SERVFAIL and reply.reason == "all upstreams down"


@pytest.mark.parametrize("rcodes, reason", [
    ((dns.rcode.SERVFAIL, dns.rcode.SERVFAIL), "every upstream answered SERVFAIL"),
    ((dns.rcode.REFUSED, dns.rcode.REFUSED), "every upstream answered REFUSED"),
    ((dns.rcode.SERVFAIL, None), "every upstream failed: 198.18.0.10:53 SERVFAIL, 198.18.0.11:53 refused"),
])
def test_servfail_reason_what_the_upstreams_said(rcodes, reason):
    stub = make_stub()
    out = ask(stub, query("new.example.test"), 0.0)
    for send, rcode in zip(sends(out), rcodes):
        if rcode is None:
            stub.upstream_failed(send.token, "refused", False, 0.002)
        else:
            stub.upstream_reply(send.token, reply_to(send, rcode=rcode), send.address, 0.001)
    (reply,) = responses(stub.drain())
    assert parsed(reply).rcode() == rcodes[0] and reply.reason == reason


def test_a_stale_answer_instead_of_a_failure_has_no_reason():
    stub = make_stub(stale_answer_after=5.0)
    resolve(stub, "www.example.test", 0.0, ttl=10)
    out = ask(stub, query(), 100.0)
    for send in sends(out):
        stub.upstream_reply(send.token, reply_to(send, rcode=dns.rcode.SERVFAIL), send.address, 100.001)
    (reply,) = responses(stub.drain())
    assert reply.source == "stale" and reply.reason is None


# --- a bug of ours: one guard per entry point, logged once, every waiting client answered


def boom(*args, **kwargs):
    raise RuntimeError("boom")


def servfails(effects):
    return [(r.client, r.reason) for r in responses(effects) if parsed(r).rcode() == dns.rcode.SERVFAIL]


def logs(effects):
    return [e for e in effects if isinstance(e, Log)]


INTERNAL = "internal error (see the log)"


def two_waiters(stub, now=0.0):
    """Clients "one" and "two" wait on one race for www.example.test; its queries to A and B."""
    out = ask(stub, query(qid=1), now, client="one")
    assert sends(ask(stub, query(qid=2), now, client="two")) == []
    return sends(out)


def test_a_bug_reading_an_upstream_reply_answers_every_waiter_and_stops_the_race(monkeypatch):
    stub = make_stub(strict=False)
    to_a, to_b = two_waiters(stub)
    monkeypatch.setattr(Race, "reply", boom)
    stub.upstream_reply(to_a.token, reply_to(to_a), A, 0.001)
    effects = stub.drain()
    assert servfails(effects) == [("one", INTERNAL), ("two", INTERNAL)]
    (log,) = logs(effects)
    assert log.message.startswith("internal error handling an upstream reply")
    assert "Traceback (most recent call last)" in log.message and "RuntimeError: boom" in log.message
    assert {CloseUpstream(to_a.token), CloseUpstream(to_b.token)} <= set(effects)  # nothing left open
    assert stub.status().internal_errors == 1 and stub.status().inflight == 0
    stub.upstream_reply(to_b.token, reply_to(to_b), B, 0.002)  # a late reply to the stopped race
    assert responses(stub.drain()) == []
    monkeypatch.undo()
    assert len(sends(ask(stub, query(qid=3), 0.1))) == 2  # the name is asked afresh


def test_a_bug_while_settling_still_answers_the_waiters(monkeypatch):
    # _after takes the pending off the race and the table before _settle runs.
    stub = make_stub(strict=False)
    to_a, _ = two_waiters(stub)
    monkeypatch.setattr(Cache, "put", boom)
    stub.upstream_reply(to_a.token, reply_to(to_a), A, 0.001)
    assert servfails(stub.drain()) == [("one", INTERNAL), ("two", INTERNAL)]


def test_a_bug_half_way_through_answering_the_waiters_answers_the_rest_once(monkeypatch):
    stub = make_stub(strict=False)
    to_a, _ = two_waiters(stub)
    render = clientwire.render
    calls = itertools.count()
    monkeypatch.setattr(clientwire, "render", lambda *a: render(*a) if next(calls) == 0 else boom())
    stub.upstream_reply(to_a.token, reply_to(to_a), A, 0.001)
    got = responses(stub.drain())
    assert [(r.client, parsed(r).rcode()) for r in got] == [("one", dns.rcode.NOERROR), ("two", dns.rcode.SERVFAIL)]


def test_a_bug_on_one_races_timer_leaves_the_other_timers_alone(monkeypatch):
    stub = make_stub(strict=False, timeout=1.0)
    ask(stub, query("one.example.test"), 0.0, client="one")
    ask(stub, query("two.example.test"), 0.0, client="two")
    timer = Race.timer
    monkeypatch.setattr(Race, "timer", lambda self, now: boom() if b"\x03one" in self.query else timer(self, now))
    stub.timer_fired(0.5)  # the first RTO of both races
    effects = stub.drain()
    assert servfails(effects) == [("one", INTERNAL)]
    assert len(sends(effects)) == 2  # two's race goes on: asked again
    stub.timer_fired(1.0)
    assert servfails(stub.drain()) == [("two", "timeout")]
    assert stub.internal_errors == 1


def test_a_bug_handling_an_upstream_failure_answers_servfail(monkeypatch):
    stub = make_stub(strict=False)
    to_a, _ = two_waiters(stub)
    monkeypatch.setattr(Race, "failed", boom)
    stub.upstream_failed(to_a.token, "refused", False, 0.001)
    assert servfails(stub.drain()) == [("one", INTERNAL), ("two", INTERNAL)]


def test_a_bug_serving_a_stale_answer_answers_servfail(monkeypatch):
    stub = make_stub(strict=False, stale_answer_after=0.1)
    resolve(stub, "www.example.test", 0.0, ttl=10)
    ask(stub, query(), 100.0, client="late")
    monkeypatch.setattr(Resolver, "_serve_stale_to_waiters", boom)
    stub.timer_fired(100.1)
    assert servfails(stub.drain()) == [("late", INTERNAL)]


def test_a_bug_starting_a_race_stops_it_so_later_askers_are_not_stuck_on_it(monkeypatch):
    stub = make_stub(strict=False)
    monkeypatch.setattr(Race, "deadline", boom)  # _start made the pending and sent the queries, then this
    effects = ask(stub, query(), 0.0, client="first")
    assert servfails(effects) == [("first", INTERNAL)]
    assert len([e for e in effects if isinstance(e, CloseUpstream)]) == 2
    assert stub.status().inflight == 0
    monkeypatch.undo()
    out = ask(stub, query(), 0.1, client="second")
    assert len(sends(out)) == 2  # a race of its own, not the broken one


def test_a_bug_reading_a_query_answers_servfail_from_its_header(monkeypatch):
    stub = make_stub(strict=False)
    monkeypatch.setattr(clientwire, "parse_query", boom)
    (reply,) = responses(ask(stub, query(qid=77), 0.0))
    assert parsed(reply).id == 77 and parsed(reply).rcode() == dns.rcode.SERVFAIL and reply.reason == INTERNAL


def test_a_bug_on_the_fast_path_falls_back_to_the_guarded_slow_path(monkeypatch):
    stub = make_stub(strict=False)
    resolve(stub, "www.example.test", 0.0)
    monkeypatch.setattr(stub, "_shapes", None)
    assert stub.fast_answer(query(qid=5), "127.0.0.1", 1.0) is None
    (log,) = logs(stub.drain())
    assert log.message.startswith("internal error answering from the cache")
    (reply,) = responses(ask(stub, query(qid=5), 1.0))
    assert reply.source == "cache" and addresses(reply) == ["198.18.0.80"]


def test_the_same_bug_is_logged_with_its_traceback_once_and_counted_every_time(monkeypatch):
    stub = make_stub(strict=False)
    monkeypatch.setattr(clientwire, "parse_query", boom)
    effects = ask(stub, query(qid=1), 0.0) + ask(stub, query(qid=2), 0.0)
    assert len(responses(effects)) == 2 and len(logs(effects)) == 1
    assert stub.status().internal_errors == 2


# --- hostile input never crashes the core


def header(**fields):
    values = {"id": 1, "flags": 0x0100, "qd": 1, "an": 0, "ns": 0, "ar": 0, **fields}
    return struct.pack(">6H", *values.values())


NAME = b"\x03www\x07example\x04test\x00"


@pytest.mark.parametrize("wire, rcode", [
    (b"\x00\x01\x01", None),  # truncated header: dropped
    (header(qd=2) + NAME + b"\x00\x01\x00\x01" + NAME + b"\x00\x01\x00\x01", dns.rcode.FORMERR),
    (header() + b"\x05ab\x00", dns.rcode.FORMERR),  # bad label lengths
    (header(flags=0x2100) + NAME + b"\x00\x01\x00\x01", dns.rcode.NOTIMP),  # UPDATE
    (header() + NAME + b"\x00\x01\x00\x01" + b"\x00" * 60000, dns.rcode.FORMERR),  # huge
])
def test_malformed_queries_get_formerr_notimp_or_nothing(wire, rcode):
    stub = make_stub()
    out = ask(stub, wire, 0.0)
    assert sends(out) == []
    if rcode is None:
        assert responses(out) == []
    else:
        (reply,) = responses(out)
        assert reply.wire[3] & 0x0F == rcode
    assert stub.status().malformed == 1


def mutations():
    base = query("www.example.test", use_edns=0)
    return st.one_of(
        st.binary(max_size=600),
        st.lists(st.tuples(st.integers(0, len(base) - 1), st.integers(0, 255)), max_size=6).map(
            lambda edits: bytes(_apply(base, edits))),
        st.binary(max_size=40).map(lambda tail: header() + tail),
    )


def _apply(base, edits):
    data = bytearray(base)
    for index, value in edits:
        data[index] = value
    return data


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations())
def test_fuzz_random_and_mutated_queries_never_crash(wire):
    stub = FUZZ_STUB
    fast = stub.fast_answer(wire, "127.0.0.1", 1.0)
    assert fast is None or fast[:2] == wire[:2]
    stub.query_received(wire, "c", "127.0.0.1", False, 1.0)
    for effect in stub.drain():
        if isinstance(effect, Respond):
            assert effect.wire[:2] == wire[:2] and effect.wire[2] & 0x80
    assert stub.internal_errors == 0


FUZZ_STUB = make_stub(max_inflight=10_000)
resolve(FUZZ_STUB, "www.example.test", 0.0)  # so mutated queries may hit the byte path too


# --- ask_upstreams: the service's own questions for pinned names (core/stubfiles.py)


def ask_upstreams(stub, name, now, client="pin", rdtype="A"):
    stub.ask_upstreams(query(name, rdtype), client, now)
    return stub.drain()


def test_a_pinned_question_skips_the_hosts_files_and_the_cache():
    stub = make_stub()
    stub.set_hosts(HostsDB(parse_hosts("198.18.0.5 nfs1.example.test\n")))  # bootres's own block, last boot's address
    resolve(stub, "www.example.test", 0.0, address="198.18.0.80", ttl=300)
    for name, new in (("nfs1.example.test", "198.18.0.6"), ("www.example.test", "198.18.0.81")):
        out = ask_upstreams(stub, name, 1.0)
        assert responses(out) == [] and len(sends(out)) == 2  # asked, though the file and a fresh entry know it
        first = sends(out)[0]
        stub.upstream_reply(first.token, reply_to(first, address=new), first.address, 1.01)
        (reply,) = responses(stub.drain())
        assert (reply.client, reply.source, addresses(reply)) == ("pin", "upstream", [new])
    assert addresses(responses(ask(stub, query("www.example.test"), 1.1))[0]) == ["198.18.0.81"]  # cached as usual
    assert stub.status().queries == 2  # clients' queries only


def test_a_pinned_question_never_takes_a_stale_answer_and_a_failed_race_is_a_failure():
    stub = make_stub(timeout=2.0)
    resolve_two_then_let_them_expire(stub)  # www is stale, as last boot's cache is after a restart
    out = ask_upstreams(stub, "www.example.test", 100.0)
    assert responses(out) == [] and len(sends(out)) == 2
    replies = []
    for _ in range(20):  # bounded: follow the core's deadlines past stale_answer_after to the timeout
        when = stub.deadline()
        stub.timer_fired(when)
        replies += responses(stub.drain())
        if replies:
            break
    (reply,) = replies
    # Once both are down (their third timeouts), before the 2 s timeout; never at stale_answer_after: a pin
    # takes no stale answer.
    assert 100.4 < when < 102.0
    assert parsed(reply).rcode() == dns.rcode.SERVFAIL and reply.reason == "all upstreams down"
    assert stub.status().cache.stale_served == 0


def test_a_pinned_question_joins_a_race_in_flight_and_waits_for_its_real_answer():
    stub = make_stub(stale_answer_after=0.1)
    resolve_two_then_let_them_expire(stub)
    out = ask(stub, query(), 100.0, client="client")
    assert ask_upstreams(stub, "www.example.test", 100.01) == []  # joined: nothing new sent
    stub.timer_fired(100.1)
    assert [(r.client, r.source) for r in responses(stub.drain())] == [("client", "stale")]
    to_a = sends(out)[0]
    stub.upstream_reply(to_a.token, reply_to(to_a, address="198.18.0.81", ttl=10), A, 100.2)
    (reply,) = responses(stub.drain())
    assert (reply.client, reply.source, addresses(reply)) == ("pin", "upstream", ["198.18.0.81"])


def test_clients_joining_a_race_a_pin_started_still_get_a_stale_answer_on_time():
    stub = make_stub(stale_answer_after=0.1)
    resolve_two_then_let_them_expire(stub)
    out = ask_upstreams(stub, "www.example.test", 100.0)
    assert responses(ask(stub, query(), 100.02, client="client")) == []
    stub.timer_fired(100.1)
    assert [(r.client, r.source) for r in responses(stub.drain())] == [("client", "stale")]
    to_b = sends(out)[1]
    stub.upstream_reply(to_b.token, reply_to(to_b, rcode=dns.rcode.SERVFAIL), B, 100.2)
    to_a = sends(out)[0]
    stub.upstream_reply(to_a.token, reply_to(to_a, rcode=dns.rcode.REFUSED), A, 100.3)
    (reply,) = responses(stub.drain())  # every upstream refused: the pin fails, it is not served stale
    assert reply.client == "pin" and parsed(reply).rcode() != dns.rcode.NOERROR
    assert reply.reason == "every upstream failed: 198.18.0.11:53 SERVFAIL, 198.18.0.10:53 REFUSED"


def test_a_pinned_question_beyond_max_inflight_fails_at_once():
    stub = make_stub(max_inflight=1)
    ask(stub, query("busy.example.test"), 0.0)
    (reply,) = responses(ask_upstreams(stub, "nfs1.example.test", 0.0))
    assert parsed(reply).rcode() == dns.rcode.SERVFAIL and reply.reason == "too many queries in flight (max_inflight)"


def test_a_bug_asking_for_a_pin_answers_servfail(monkeypatch):
    stub = make_stub(strict=False)
    monkeypatch.setattr(Resolver, "_start", boom)
    (reply,) = responses(ask_upstreams(stub, "nfs1.example.test", 0.0))
    assert parsed(reply).rcode() == dns.rcode.SERVFAIL and reply.reason == "internal error (see the log)"
    assert stub.internal_errors == 1


def test_a_question_of_our_own_that_does_not_parse_is_our_bug_answered_servfail():
    stub = make_stub(strict=False)
    stub.ask_upstreams(struct.pack("!6H", 7, 0x0100, 0, 0, 0, 0), "pin", 0.0)  # no question at all
    effects = stub.drain()
    (reply,) = responses(effects)
    assert parsed(reply).rcode() == dns.rcode.SERVFAIL and parsed(reply).id == 7 and reply.client == "pin"
    assert stub.internal_errors == 1 and "reading a question of our own" in logs(effects)[0].message


def test_the_daemons_readiness_probe_is_answered_but_not_counted():
    stub = make_stub()
    probe = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + clientwire.READINESS_QUESTION
    (reply,) = responses(ask(stub, probe, 0.0))
    assert reply.wire[:2] == b"\x12\x34" and parsed(reply).rcode() == dns.rcode.REFUSED  # as any CH question
    assert (stub.queries, stub.refused) == (0, 0)
    (reply,) = responses(ask(stub, probe, 0.0, host="198.18.0.99"))  # outside allow: refused and counted
    assert parsed(reply).rcode() == dns.rcode.REFUSED and (stub.queries, stub.refused) == (1, 1)
    other = dns.message.make_query("version.bind", "TXT", "CH").to_wire()
    (reply,) = responses(ask(stub, other, 0.0))
    assert parsed(reply).rcode() == dns.rcode.REFUSED and (stub.queries, stub.refused) == (2, 2)  # a client's CH


# --- Extended DNS Errors (RFC 8914)


def ede(respond: Respond) -> list[tuple[int, str]]:
    """The EDE options of a reply, as (code, text), read by dnspython."""
    return [(option.code, option.text or "") for option in parsed(respond).options
            if isinstance(option, dns.edns.EDEOption)]


def test_a_stale_answer_says_so_to_an_edns_client_and_a_fresh_one_does_not():
    stub = make_stub(stale_answer_after=0.1)
    fresh = resolve(stub, "www.example.test", 0.0, ttl=10)
    assert ede(fresh[0]) == []  # no EDNS asked: no OPT at all
    (fresh,) = responses(ask(stub, query(use_edns=0), 1.0))
    assert ede(fresh) == []
    ask(stub, query(use_edns=0), 100.0)
    stub.timer_fired(100.1)
    (stale,) = responses(stub.drain())
    assert stale.source == "stale" and ede(stale) == [(3, "")]  # Stale Answer
    (plain,) = responses(ask(stub, query(qid=2), 100.2))  # without EDNS: the same stale answer, no OPT
    assert plain.source == "stale" and parsed(plain).edns < 0


def test_a_stale_nxdomain_says_stale_nxdomain():
    stub = make_stub(stale_answer_after=0.1, prefetch=False)
    out = ask(stub, query("nope.example.test"), 0.0)
    to_a = sends(out)[0]
    stub.upstream_reply(to_a.token, reply_to(to_a, rcode=dns.rcode.NXDOMAIN, soa_minimum=30), A, 0.0)
    stub.drain()
    ask(stub, query("nope.example.test", use_edns=0), 100.0)
    stub.timer_fired(100.1)
    (stale,) = responses(stub.drain())
    assert parsed(stale).rcode() == dns.rcode.NXDOMAIN and ede(stale) == [(19, "")]


def test_a_servfail_says_why_with_the_code_that_fits():
    stub = make_stub()
    out = ask(stub, query("new.example.test", use_edns=0), 0.0)
    replies = []
    for _ in range(20):  # bounded: follow the core's deadlines to the timeout
        stub.timer_fired(stub.deadline())
        replies += responses(stub.drain())
        if replies:
            break
    assert len(sends(out)) == 2 and ede(replies[0]) == [(22, "timeout")]  # No Reachable Authority
    refused = make_stub()
    out = ask(refused, query("new.example.test", use_edns=0), 0.0)
    for send in sends(out):  # ICMP port unreachable from both: the network said no
        refused.upstream_failed(send.token, "refused", False, 0.001)
    (reply,) = responses(refused.drain())
    assert ede(reply) == [(23, "every upstream failed: 198.18.0.10:53 refused, 198.18.0.11:53 refused")]
    nobody = Resolver(resolver_settings(), Cache(10, 3600), lambda: 1)
    (reply,) = responses(ask(nobody, query("x.example.test", use_edns=0), 0.0))
    assert ede(reply) == [(22, "no upstream configured")]


def test_the_upstreams_own_error_and_a_refused_class_carry_their_reason():
    stub = make_stub()
    out = ask(stub, query("bad.example.test", use_edns=0), 0.0)
    for send in sends(out):
        stub.upstream_reply(send.token, reply_to(send, rcode=dns.rcode.SERVFAIL), send.address, 0.001)
    (reply,) = responses(stub.drain())
    assert parsed(reply).rcode() == dns.rcode.SERVFAIL and ede(reply) == [(0, "every upstream answered SERVFAIL")]
    (chaos,) = responses(ask(stub, query("version.bind", "TXT", rdclass="CH", use_edns=0), 1.0))
    assert parsed(chaos).rcode() == dns.rcode.REFUSED and ede(chaos) == [(21, "class CH is not served")]
    (outside,) = responses(ask(make_stub(allow=(ipaddress.ip_network("127.0.0.0/8"),)), query(use_edns=0), 1.0, host="198.18.9.9"))
    # A client outside allow gets a bare REFUSED: no larger than its query (no amplification), nothing said.
    assert parsed(outside).rcode() == dns.rcode.REFUSED and ede(outside) == []


def test_the_extra_text_is_cut_to_a_reason_not_a_log():
    option = dnswire.ede_option(dnswire.EDE_NETWORK_ERROR, "é" * 300)
    text = option[6:].decode()
    assert len(option[6:]) <= dnswire.EDE_TEXT_MAX and set(text) == {"é"}  # never half a character


# --- a good neighbour (issue 23): hedge by default, RFC 9520's failure cache and probe budget


def test_the_shipped_default_asks_one_upstream_per_miss_once_one_is_measured():
    stub = Resolver(shipped_settings(routing=routing((A, B))), Cache(1000, 3600), itertools.count(1).__next__,
                    strict=True)
    sent = []
    for i in range(100):  # each answered by the first asked, 5 ms later
        out = ask(stub, query(f"n{i}.example.test"), i * 0.1)
        sent += sends(out)
        first = sends(out)[0]
        stub.upstream_reply(first.token, reply_to(first), first.address, i * 0.1 + 0.005)
        sent += sends(stub.drain())
        stub.timer_fired(i * 0.1 + 0.05)
        sent += sends(stub.drain())
    assert len(sent) == 101  # 1.01 per miss: the first asked both, as nothing was measured yet


def test_a_name_that_failed_is_answered_from_the_failure_for_a_second():
    stub = make_stub(timeout=1.0)
    assert servfail_after_the_race(stub, now=0.0) == "timeout"
    out = ask(stub, query("new.example.test", use_edns=0), 1.5)  # failed at 1.0: remembered until 2.0
    (reply,) = responses(out)
    assert sends(out) == [] and parsed(reply).rcode() == dns.rcode.SERVFAIL
    assert ede(reply) == [(13, "timeout")]  # Cached Error
    out = ask(stub, query("new.example.test"), 2.0)
    assert responses(out) == [] and len(sends(out)) == 2  # asked again


def test_with_every_upstream_down_misses_fail_at_once_and_one_probe_at_a_time_goes_out():
    stub = make_stub()
    kill_both_upstreams(stub, 0.0)
    sent, replies = [], []
    for i in range(20):  # 10 never-seen names a second for 2 s: the probe budget, not the demand, decides
        out = ask(stub, query(f"new{i}.example.test"), 1.0 + i * 0.1)
        sent += sends(out)
        replies += responses(out)
        stub.timer_fired(1.0 + i * 0.1 + 0.05)
        stub.drain()
    assert [parsed(r).rcode() for r in replies] == [dns.rcode.SERVFAIL] * 20
    assert {r.reason for r in replies} == {"all upstreams down"}
    assert 1 <= len(sent) <= 2 and len({s.address for s in sent}) == len(sent)  # one each, a second apart
