"""upstreams: RTT smoothing, down after repeated timeouts, probing with backoff, hedge order."""

import pytest

from bootres.core import upstreams
from bootres.core.effects import INFO, WARNING, Log
from bootres.core.report import to_json
from bootres.core.upstreams import Upstream, UpstreamPool, Upstreams
from resolver_helpers import A, B, C, routing


def make(*labels):
    return Upstreams([Upstream((label, 53), f"{label}:53") for label in labels])


def test_rtt_is_smoothed_like_rfc_6298():
    u = Upstream(("198.18.0.10", 53), "198.18.0.10:53")
    assert u.rto() == upstreams.INITIAL_RTO
    u.answered(0.010, 0.0)
    assert (u.srtt, u.rttvar) == (0.010, 0.005)
    u.answered(0.020, 0.0)
    assert u.srtt == pytest.approx(0.01125)
    assert u.rttvar == pytest.approx(0.00625)
    assert u.rto() == upstreams.MIN_RTO  # DNS floor, not TCP's one second
    assert u.auto_hedge_delay() == pytest.approx(0.01125 + 4 * 0.00625)


def test_down_after_three_timeouts_in_a_row_and_up_at_the_first_reply():
    u = Upstream(("198.18.0.10", 53), "198.18.0.10:53")
    assert u.timed_out(10.0) == [] and u.timed_out(10.1) == []
    u.answered(0.001, 10.2)  # a reply resets the count
    assert u.timed_out(11.0) == [] and u.timed_out(11.1) == []
    assert u.timed_out(11.2) == [Log(WARNING, "upstream 198.18.0.10:53 is down (3 queries in a row timed out)")]
    assert u.state == "down" and u.timeouts == 5
    assert u.answered(0.002, 11.3) == [Log(INFO, "upstream 198.18.0.10:53 is up again (answered in 2.0 ms)")]
    assert u.state == "up"


def test_unreachable_is_down_at_once_then_probed_and_up_at_the_first_reply():
    group = make("a", "b")
    a, b = group.all
    a.answered(0.001, 5.0)
    assert a.unreachable(10.0, "refused") == [Log(WARNING, "upstream a:53 is down (refused)")]
    assert a.state == "down" and a.timeouts == 1
    assert a.unreachable(10.1, "refused") == []  # already down: one log line
    assert group.plan(10.5) == ([b], [])
    assert group.plan(11.0) == ([b], [a])  # probed as any down upstream, PROBE_FIRST later
    assert a.answered(0.002, 11.001) == [Log(INFO, "upstream a:53 is up again (answered in 2.0 ms)")]
    a.unreachable(12.0, "unreachable (no route to the host)")
    b.unreachable(12.0, "unreachable (no route to the host)")
    assert group.silent_from(0.4) == float("-inf")  # all down: stale answers at once


def test_a_route_change_ends_down_by_unreachable_only():
    """Boot before DHCP (issue 19): no route yet marks every upstream down; the route arriving ends that at once."""
    group = make("a", "b")
    a, b = group.all
    a.unreachable(1.0, "unreachable (no route to its network)")
    for t in (1.0, 1.5, 2.0):
        b.timed_out(t)
    assert a.state == b.state == "down"
    assert a.routes_changed() == [Log(INFO, "upstream a:53: the routes changed, asking it again")]
    assert b.routes_changed() == []  # silence is not about routes
    assert (a.state, b.state) == ("unknown", "down")
    assert group.plan(2.1) == ([a], [])  # asked at once, not at its next probe
    assert a.routes_changed() == []  # once: not down any more
    a.unreachable(2.2, "unreachable (no route to its network)")  # still no route: down again at its next query
    a.answered(0.001, 3.0)
    assert a.routes_changed() == []  # up: nothing to do


def test_down_upstreams_are_left_out_except_for_probes_with_backoff():
    group = make("a", "b")
    a, b = group.all
    for t in (0.0, 0.1, 0.2):
        a.timed_out(t)
    assert group.plan(0.5) == ([b], [])
    assert group.plan(1.2) == ([b], [a])  # PROBE_FIRST after it went down
    assert group.plan(2.0) == ([b], [])
    assert a.next_probe_at == pytest.approx(1.2 + 2 * upstreams.PROBE_FIRST)  # doubling
    for _ in range(10):
        group.plan(a.next_probe_at)
    assert a.probe_interval == upstreams.PROBE_MAX


def test_when_everything_is_down_one_probe_at_a_time_each_upstream_once_a_second_or_so():
    group = make("a", "b")
    a, b = group.all
    for u in group.all:
        for t in (0.0, 0.1, 0.2):
            u.timed_out(t)
    assert not group.healthy() and group.silent_from(0.4) == float("-inf")
    assert not group.probe_due(1.1)  # the timeouts that made them down count as their last probes
    assert group.probe_due(1.2) and group.plan(1.2, jitter=0.0) == ([], [a])
    a.asked(1.2)  # the probe is out: nothing more for the group until it is done
    assert not group.probe_due(1.3) and group.plan(1.3) == ([], [])
    a.closed()
    assert group.plan(1.4, jitter=0.5) == ([], [b])  # the other one, the one waiting longest
    b.asked(1.4)
    b.closed()
    assert group.plan(2.1) == ([], [])  # a is due at 1.2 + 1.0 only
    assert group.plan(2.2) == ([], [a])
    assert b.all_down_probe_at == pytest.approx(1.4 + upstreams.ALL_DOWN_PROBE_INTERVAL * (1 + 0.5 * upstreams.PROBE_JITTER))


def test_silent_from_counts_unanswered_open_queries_only():
    group = make("a", "b")
    a, b = group.all
    assert group.silent_from(0.4) is None  # nothing asked: nothing known
    a.asked(10.0)
    assert group.silent_from(0.4) is None  # b has nothing open
    b.asked(10.1)
    assert group.silent_from(0.4) == pytest.approx(10.5)
    a.closed()
    a.timed_out(10.2)
    a.asked(10.0)  # the retry of the same question keeps its first time
    assert group.silent_from(0.4) == pytest.approx(10.5)
    b.closed()
    b.answered(0.3, 10.4)  # one valid reply clears it
    assert group.silent_from(0.4) is None
    b.asked(10.3)  # a retry of a question first asked before that reply: counted from the reply
    assert group.silent_from(0.4) == pytest.approx(10.8)
    a.closed()  # a query lost and closed long ago says nothing about a new one
    a.asked(20.0)
    assert group.silent_from(0.4) == pytest.approx(20.4)
    for t in (20.5, 20.6, 20.7):
        b.timed_out(t)
    assert group.silent_from(0.4) == pytest.approx(20.4)  # a down one no longer counts
    for t in (20.5, 20.6, 20.7):
        a.timed_out(t)
    assert group.silent_from(0.4) == float("-inf")  # all down: stale at once, as before


def test_order_is_best_rtt_first_then_unmeasured_in_config_order():
    group = make("a", "b", "c", "d")
    a, b, c, d = group.all
    c.answered(0.002, 0.0)
    b.answered(0.050, 0.0)
    # Both strategies: hedge asks in this order, race sends in it (whose query leaves first).
    assert group.plan(0.0) == ([c, b, a, d], [])


def test_auto_hedge_delay_stays_within_bounds():
    u = Upstream(("a", 53), "a")
    assert u.auto_hedge_delay() == upstreams.HEDGE_UNKNOWN
    u.answered(0.0001, 0.0)
    assert u.auto_hedge_delay() == upstreams.HEDGE_MIN
    u.answered(5.0, 0.0)
    assert u.auto_hedge_delay() == upstreams.HEDGE_MAX


def test_status_says_where_an_upstream_came_from_and_what_it_serves():
    u = Upstream(("198.18.0.12", 53), "198.18.0.12:53", "networkd vpn0", ("corp.test",))
    u.answered(0.002, 0.0)
    assert to_json(u.status()) == {"address": "198.18.0.12:53", "source": "networkd vpn0", "domains": ["corp.test"],
                          "state": "up", "srtt_ms": 2.0, "queries": 0, "wins": 0, "timeouts": 0, "bad_replies": 0}


def test_the_pool_keeps_what_it_measured_of_every_upstream_that_stays():
    pool = UpstreamPool(routing((A, B), {"corp.test": (C,)}))
    a, c = pool.all.all[0], pool.all.all[2]
    a.answered(0.02, 1.0)
    default, corp = pool.group_of(b"\x03www\x07example\x04test\x00"), pool.group_of(b"\x03git\x04corp\x04test\x00")
    assert [u.address for u in default.all] == [A, B] and [u.address for u in corp.all] == [C]
    assert to_json(pool.routes_status()) == [{"domain": "corp.test", "upstreams": ["198.18.0.12:53"]}]

    pool.use(routing((A, B), {"corp.test": (A,)}))  # a new lease: C is gone, corp.test moves to A
    assert pool.all.all[0] is a and a.status().srtt_ms == 20.0 and c not in pool.all.all
    assert pool.group_of(b"\x03www\x07example\x04test\x00") is default  # the same addresses: the same group
    assert [u.address for u in pool.group_of(b"\x03git\x04corp\x04test\x00").all] == [A]


def test_only_queries_sent_after_its_last_reply_count_towards_down():
    u = Upstream(("198.18.0.10", 53), "198.18.0.10:53")
    u.answered(0.001, 5.0)  # alive at 5.0
    for sent in (4.0, 4.5, 4.9):  # a burst that left before: lost, or overran it, while it answered
        assert u.timed_out(6.0, sent_at=sent) == []
    assert u.state == "up" and u.timeouts == 3
    for t, sent in ((7.0, 5.5), (7.1, 5.6)):
        u.timed_out(t, sent_at=sent)
    assert u.state == "up"
    assert u.timed_out(7.2, sent_at=5.7)[0].level == WARNING and u.state == "down"  # three since its last reply
