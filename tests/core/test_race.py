"""race: who is asked when, which reply counts (RFC 5452), and who wins."""

import itertools

import dns.rcode

from bootres.core import clientwire, upstreams, upstreamwire
from bootres.core.effects import CloseUpstream, SendUpstream
from bootres.core.race import Race, RaceStep
from bootres.core.upstreams import Upstream, Upstreams
from resolver_helpers import A, B, C, reply_to, sends

KEY = clientwire.peek_query(clientwire.query_wire("www.example.test", "A"))[0]


class Run:
    """A race driven as the resolver drives it: every step's effects gathered in ``out``, its outcome kept."""

    def __init__(self, race: Race, now: float):
        self.race, self.out, self.outcome = race, [], None
        self._take(race.start(now))

    def _take(self, step: RaceStep) -> RaceStep:
        self.out.extend(step.effects)
        if step.outcome is not None:
            assert self.outcome is None, "a race decides once"
            self.outcome = step.outcome
        return step

    def reply(self, token, data, source, now) -> bool:
        return self._take(self.race.reply(token, data, source, now)).heard

    def failed(self, token, why, hard, now) -> None:
        self._take(self.race.failed(token, why, hard, now))

    def timer(self, now) -> None:
        self._take(self.race.timer(now))

    def abort(self) -> None:
        self._take(self.race.abort())

    def deadline(self):
        return self.race.deadline()


def start(strategy="race", hedge_delay=None, timeout=3.0, labels=(A, B), now=0.0, group=None):
    group = group or Upstreams([Upstream(a, f"{a[0]}:{a[1]}") for a in labels])
    ids = itertools.count(0x100)
    race = Run(Race(upstreamwire.upstream_query(KEY), group.plan(now), hedge=strategy == "hedge",
                    hedge_delay=hedge_delay, timeout=timeout, now=now, new_token=itertools.count(1).__next__,
                    random_id=ids.__next__), now)
    return race, race.out, group


def test_race_asks_everyone_at_once_with_distinct_ids():
    race, out, _ = start(labels=(A, B, C))
    assert [s.address for s in sends(out)] == [A, B, C]
    assert len({s.wire[:2] for s in sends(out)}) == 3
    assert race.deadline() == 0.5  # the first RTO, before any RTT sample


def test_first_good_reply_wins_and_the_loser_lingers_to_be_measured():
    race, out, group = start()
    to_a, to_b = sends(out)
    out.clear()
    assert race.reply(to_b.token, reply_to(to_b), B, 0.002)
    assert race.outcome.kind == "answer" and race.outcome.upstream is group.all[1]
    assert out == [CloseUpstream(to_b.token)]
    race.reply(to_a.token, reply_to(to_a, address="198.18.0.99"), A, 0.030)
    assert race.outcome.upstream is group.all[1]  # a later reply changes nothing...
    assert group.all[0].srtt == 0.030  # ...but the loser's RTT is measured
    assert race.deadline() is None


def test_servfail_waits_for_the_others_and_wins_only_when_all_fail():
    race, out, _ = start()
    to_a, to_b = sends(out)
    race.reply(to_a.token, reply_to(to_a, rcode=dns.rcode.SERVFAIL), A, 0.001)
    assert race.outcome is None
    race.reply(to_b.token, reply_to(to_b, rcode=dns.rcode.NXDOMAIN), B, 0.002)
    assert race.outcome.kind == "answer" and race.outcome.reply.rcode == dns.rcode.NXDOMAIN

    race, out, _ = start()
    to_a, to_b = sends(out)
    race.reply(to_a.token, reply_to(to_a, rcode=dns.rcode.SERVFAIL), A, 0.001)
    race.reply(to_b.token, reply_to(to_b, rcode=dns.rcode.REFUSED), B, 0.002)
    assert race.outcome.kind == "error" and race.outcome.reply.rcode == dns.rcode.SERVFAIL
    assert race.outcome.reason == "every upstream failed: 198.18.0.10:53 SERVFAIL, 198.18.0.11:53 REFUSED"


def test_the_reason_says_what_every_upstream_said():
    race, out, _ = start()
    for send in sends(out):
        race.reply(send.token, reply_to(send, rcode=dns.rcode.REFUSED), send.address, 0.001)
    assert race.outcome.reason == "every upstream answered REFUSED"

    race, out, _ = start()
    to_a, to_b = sends(out)
    race.failed(to_a.token, "refused", False, 0.001)
    race.failed(to_b.token, "failed (Network is unreachable)", False, 0.001)
    assert race.outcome.kind == "error" and race.outcome.reply is None
    assert race.outcome.reason == ("every upstream failed: 198.18.0.10:53 refused, "
                                   "198.18.0.11:53 failed (Network is unreachable)")


def test_bad_replies_are_counted_and_the_real_one_still_wins():
    race, out, group = start(labels=(A,))
    (to_a,) = sends(out)
    bad = [
        (reply_to(to_a), ("198.18.0.66", 53)),  # wrong source address
        (reply_to(to_a), (A[0], 5353)),  # wrong source port
        (reply_to(to_a, qid=(int.from_bytes(to_a.wire[:2], "big") + 1) % 65536), A),  # wrong ID
        (reply_to(SendUpstream(0, A, to_a.wire[:2] + upstreamwire.upstream_query(
            clientwire.peek_query(clientwire.query_wire("evil.example.test", "A"))[0])[2:])), A),  # wrong question
        (to_a.wire[:2] + b"\x81\x80\x00\x01\xff\xff\x00\x00\x00\x00garbage", A),  # matches ID, does not parse
        (to_a.wire, A),  # our own query reflected: QR clear
    ]
    for data, source in bad * 50:
        assert race.reply(to_a.token, data, source, 0.001) is False
    assert race.outcome is None and group.all[0].bad_replies == 300
    assert race.reply(to_a.token, reply_to(to_a), A, 0.002)
    assert race.outcome.kind == "answer"


def test_truncated_reply_is_asked_again_over_tcp():
    race, out, _ = start(labels=(A,))
    (to_a,) = sends(out)
    out.clear()
    race.reply(to_a.token, reply_to(to_a, tc=True), A, 0.001)
    (tcp,) = sends(out)
    assert tcp.tcp and tcp.address == A and race.outcome is None
    race.reply(tcp.token, reply_to(tcp), None, 0.003)
    assert race.outcome.kind == "answer"


def measured(*labels, srtt=0.005) -> Upstreams:
    group = Upstreams([Upstream(a, f"{a[0]}:{a[1]}") for a in labels])
    for upstream in group.all:
        upstream.answered(srtt, 0.0)
    return group


def test_hedge_asks_the_next_after_the_delay_or_at_once_on_failure():
    race, out, _ = start("hedge", hedge_delay=0.1, group=measured(A, B, C))
    assert [s.address for s in sends(out)] == [A]
    assert race.deadline() == 0.1
    out.clear()
    race.timer(0.1)
    (to_b,) = sends(out)
    assert to_b.address == B
    out.clear()
    race.failed(to_b.token, "refused", True, 0.12)
    assert [s.address for s in sends(out)] == [C]  # B refused: C at once, not at 0.2


def test_hedge_asks_everyone_at_once_while_no_round_trip_is_measured():
    # A fresh start or new upstreams: nothing says which one answers, and a dead first one would cost a delay.
    race, out, group = start("hedge", hedge_delay=0.1, labels=(A, B))
    assert [s.address for s in sends(out)] == [A, B] and race.deadline() == upstreams.INITIAL_RTO
    group.all[1].answered(0.004, 0.0)  # B measured (it won, say): from now on the best first, alone
    race, out, _ = start("hedge", hedge_delay=0.1, group=group)
    assert [s.address for s in sends(out)] == [B] and race.deadline() == 0.1


def test_a_probe_of_a_group_all_down_is_asked_once_and_ends_in_a_second():
    group = Upstreams([Upstream(a, f"{a[0]}:{a[1]}") for a in (A, B)])
    for upstream in group.all:
        upstream.unreachable(0.0, "no route")
    race, out, _ = start(group=group, now=5.0)
    (probe,) = sends(out)
    assert race.deadline() == 5.0 + upstreams.ALL_DOWN_PROBE_INTERVAL
    out.clear()
    race.timer(6.0)
    assert sends(out) == [] and race.outcome.kind == "timeout"  # not asked again: one packet per probe


def test_silent_upstream_is_asked_again_then_the_race_times_out():
    race, out, group = start(labels=(A,), timeout=1.0)
    out.clear()
    race.timer(0.5)  # first RTO: counted, and asked again with a fresh ID
    assert group.all[0].timeouts == 1
    assert [s.address for s in sends(out)] == [A]
    race.timer(1.0)
    assert race.outcome.kind == "timeout"


def test_lingering_queries_to_a_dead_upstream_mark_it_down():
    group = Upstreams([Upstream(A, "a"), Upstream(B, "b")])
    for i in range(3):
        race, out, _ = start(group=group, now=float(i))
        to_a, to_b = sends(out)
        race.reply(to_b.token, reply_to(to_b), B, i + 0.001)
        race.timer(i + 0.5)  # A's query times out after the race was won
    assert group.all[0].state == "down"
    race, out, _ = start(group=group, now=3.1)
    assert [s.address for s in sends(out)] == [B]  # no longer asked, costs nothing


def test_a_query_is_not_sent_again_to_an_upstream_that_went_down():
    group = Upstreams([Upstream(A, "a"), Upstream(B, "b")])
    race, out, _ = start(group=group, timeout=3.0)
    for t in (0.1, 0.2):
        group.all[0].timed_out(t)  # two timeouts of other questions: one more makes A down
    out.clear()
    race.timer(0.5)  # both queries time out: A goes down and is left alone, B is asked again
    assert group.all[0].state == "down" and [s.address for s in sends(out)] == [B]
    for t in (0.6, 0.7):
        group.all[1].timed_out(t)
    out.clear()
    race.timer(1.5)  # B's second query times out, B goes down too: nothing left to wait for
    assert sends(out) == [] and race.outcome.kind == "timeout" and race.deadline() is None


def test_abort_closes_every_open_query_and_ends_the_race():
    race, out, group = start(labels=(A, B))
    to_a, to_b = sends(out)
    out.clear()
    race.abort()
    assert out == [CloseUpstream(to_a.token), CloseUpstream(to_b.token)]
    assert race.outcome.kind == "error" and race.outcome.reason == "internal error"
    assert race.deadline() is None and all(u.status().queries == 1 for u in group.all)


def test_an_error_reply_without_the_question_counts_as_that_upstreams_error():
    race, out, _ = start(labels=(A,))
    (to_a,) = sends(out)
    refused = to_a.wire[:2] + b"\x81\x05" + b"\x00" * 8  # QR RD REFUSED, no question (nsd to class HS)
    assert race.reply(to_a.token, refused, A, 0.002)
    assert race.outcome.kind == "error" and race.outcome.reason == "every upstream answered REFUSED"


def test_a_hard_failure_marks_its_upstream_down_at_once_a_soft_one_counts_as_a_timeout():
    race, out, group = start()
    a, b = group.all
    to_a, to_b = sends(out)
    out.clear()
    race.failed(to_a.token, "unreachable (no route to its network)", True, 0.001)
    assert a.state == "down" and a.next_probe_at == 1.001
    assert [e.message for e in out if hasattr(e, "message")] == [
        "upstream 198.18.0.10:53 is down (unreachable (no route to its network))"]
    race.failed(to_b.token, "failed (No buffer space available)", False, 0.001)
    assert b.state == "unknown" and b.consecutive_timeouts == 1
    assert race.outcome.kind == "error"  # both failed: the race ends now, not at its timeout
