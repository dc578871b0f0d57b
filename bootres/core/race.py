"""One question on its way to the upstreams: who to ask when, which reply counts, who won.

``race``: every upstream that is not down is asked at once.  ``hedge``: the
best one first, the next after its hedge delay, or at once when the previous
one fails (the semantics of CPython's ``asyncio.staggered``, as a timer
schedule), and like a race while no upstream of the group has a measured
round trip yet.  Down upstreams due for a probe are asked alongside in both.

A reply counts only if it comes from the address and port we asked, carries
the ID we chose and asks our question (RFC 5452 section 9.1), or is an error
without a question (``reply_header_matches``); anything else is counted
against the upstream and the question keeps waiting.  The first NOERROR or
NXDOMAIN reply wins.  SERVFAIL, REFUSED, FORMERR, extended RCODEs (BADVERS,
BADCOOKIE) and the like win only when every upstream asked has said so.  A truncated reply is asked
again over TCP.  An upstream silent for its RTO is asked again (fresh ID and
port) while time is left.

The race ends with an ``Outcome``: ``answer``, ``error`` (every upstream
refused or failed; ``reply`` is None when none replied at all, ``reason``
says what each said) or ``timeout``.  It then lingers until its last open
query answers or times out, so an upstream that lost still gets its RTT
measured, or its silence counted.

A race owns its state and is handed nothing to fill: each input returns a
``RaceStep`` (dnspython's ``_Resolution`` shape): the effects to carry out
(queries to send and close, upstream health lines), the outcome when it was
decided by this very input, and whether an upstream was heard from.  The
resolver keeps its own map of tokens to races from the effects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

from bootres.core.dnswire import NOERROR, NXDOMAIN
from bootres.core.effects import CloseUpstream, SendUpstream
from bootres.core.upstreams import ALL_DOWN_PROBE_INTERVAL, MAX_RTO, MIN_RTO, Upstream
from bootres.core.upstreamwire import UpstreamReply, read_reply, reply_header_matches

_RCODE_NAMES = {1: "FORMERR", 2: "SERVFAIL", 4: "NOTIMP", 5: "REFUSED", 6: "YXDOMAIN", 7: "YXRRSET",
                8: "NXRRSET", 9: "NOTAUTH", 10: "NOTZONE", 16: "BADVERS", 23: "BADCOOKIE"}


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: str  # "answer", "error" or "timeout"
    reply: UpstreamReply | None = None
    upstream: Upstream | None = None
    reason: str | None = None  # for "error": what the upstreams said, for ``bootres query``


class RaceStep(NamedTuple):
    """What one input to a ``Race`` decided."""

    effects: list  # SendUpstream, CloseUpstream, Log, in order
    outcome: Outcome | None  # decided by this input (None: not yet, or earlier)
    heard: bool = False  # a good reply from an upstream arrived (``reply`` only)


class _Attempt:
    __slots__ = ("token", "upstream", "wire", "sent_at", "deadline", "tcp")

    def __init__(self, token, upstream, wire, sent_at, deadline, tcp):
        self.token = token
        self.upstream = upstream
        self.wire = wire
        self.sent_at = sent_at
        self.deadline = deadline
        self.tcp = tcp


class Race:
    def __init__(
        self,
        query: bytes,
        plan: tuple[list[Upstream], list[Upstream]],
        *,
        hedge: bool,
        hedge_delay: float | None,
        timeout: float,
        now: float,
        new_token: Callable[[], int],
        random_id: Callable[[], int],
    ):
        """Nothing is asked until ``start``.

        A plan of probes alone (every upstream of the group down) is a probe:
        each asked once, never again, given ``ALL_DOWN_PROBE_INTERVAL`` to
        answer; the race ends then (the group's budget, ``upstreams``).
        """
        self.query = query
        self.hedge = hedge
        self.hedge_delay = hedge_delay  # None: each upstream's own auto delay
        self._probe_only = not plan[0] and bool(plan[1])
        self.ends_at = now + (ALL_DOWN_PROBE_INTERVAL if self._probe_only else timeout)
        self._plan = plan
        self._outcome: Outcome | None = None
        self._out: list = []  # effects not yet returned (all but an input a bug interrupted: ``abort``)
        self._new_token = new_token
        self._random_id = random_id
        self._attempts: dict[int, _Attempt] = {}
        self._asked: dict[Upstream, float] = {}  # upstream -> when first asked
        self._errors: dict[Upstream, UpstreamReply | str] = {}  # its error reply, or why it failed
        self._waiting: list[Upstream] = []
        self._next_start: float | None = None

    # --- inputs

    def start(self, now: float) -> RaceStep:
        """Ask the first upstreams (all of them for a race, the best for a hedge) and those due for a probe."""
        ordered, probes = self._plan
        # Hedge once something is measured; until then (a fresh start, new
        # upstreams) nothing says which one answers, so all are asked at once.
        hedge = self.hedge and ordered and ordered[0].srtt is not None
        self._waiting = list(ordered[1:]) if hedge else []
        first = ordered[:1] if hedge else ordered
        for upstream in first + probes:
            self._ask(upstream, now, span=ALL_DOWN_PROBE_INTERVAL if self._probe_only else None)
        if self._waiting:
            self._next_start = now + self._delay_after(ordered[0])
        if not self._asked:  # no upstream configured at all
            self._finish(Outcome("error"))
        return self._step(None)

    def reply(self, token: int, data: bytes, source: tuple | None, now: float) -> RaceStep:
        """A datagram (or TCP message) for one of our queries; ``heard`` unless it was bad."""
        decided = self._outcome
        attempt = self._attempts.get(token)
        if attempt is None:
            return self._step(decided, heard=True)  # a duplicate after we closed it; nothing to judge
        upstream = attempt.upstream
        if source is not None and tuple(source[:2]) != upstream.address:
            upstream.bad_replies += 1
            return self._step(decided)
        if not reply_header_matches(data, attempt.wire):
            upstream.bad_replies += 1
            return self._step(decided)
        if self._outcome is not None:  # a loser: only its RTT matters, no need to read it all
            self._close(attempt)
            self._out.extend(upstream.answered(now - attempt.sent_at, now))
            return self._step(decided, heard=True)
        reply = read_reply(data)
        if reply is None:
            upstream.bad_replies += 1
            return self._step(decided)
        self._close(attempt)
        self._out.extend(upstream.answered(now - attempt.sent_at, now))
        if reply.tc and not attempt.tcp:
            self._ask(upstream, now, tcp=True)
        elif reply.rcode in (NOERROR, NXDOMAIN):
            upstream.wins += 1
            self._finish(Outcome("answer", reply, upstream))
        else:
            self._errors.setdefault(upstream, reply)
            self._failed_over(now)
        return self._step(decided, heard=True)

    def failed(self, token: int, why: str, hard: bool, now: float) -> RaceStep:
        """The query could not be sent or got no reply that can come; ``hard``: the upstream is unreachable.

        ``hard`` failures (no route, ICMP port unreachable) mark it down at
        once (``Upstream.unreachable``); others count as a timeout.
        """
        decided = self._outcome
        attempt = self._attempts.get(token)
        if attempt is None:
            return self._step(decided)
        self._close(attempt)
        upstream = attempt.upstream
        self._out.extend(upstream.unreachable(now, why) if hard else upstream.timed_out(now, why, attempt.sent_at))
        if self._outcome is None:
            self._errors.setdefault(attempt.upstream, why)
            self._failed_over(now)
        return self._step(decided)

    def timer(self, now: float) -> RaceStep:
        decided = self._outcome
        if self._outcome is None and self._next_start is not None and self._next_start <= now:
            self._start_next(now)
        for attempt in [a for a in self._attempts.values() if a.deadline <= now]:
            self._close(attempt)
            upstream = attempt.upstream
            self._out.extend(upstream.timed_out(now, sent_at=attempt.sent_at))
            if self._outcome is not None or upstream in self._errors:
                continue
            if self._waiting:
                self._start_next(now)
            span = min(2 * (attempt.deadline - attempt.sent_at), MAX_RTO)
            # Not again to an upstream that is down now (this very timeout may have made it so): its probes do that.
            if now + MIN_RTO < self.ends_at and not attempt.tcp and not self._probe_only and upstream.state != "down":
                self._ask(upstream, now, span=span)
        # Nothing open and no one left to ask (every one went down): waiting longer would only make clients wait.
        if self._outcome is None and (now >= self.ends_at or not (self._attempts or self._waiting)):
            self._finish(Outcome("timeout"))
        return self._step(decided)

    def deadline(self) -> float | None:
        """When ``timer`` must run next; None once finished with nothing left open."""
        times = [a.deadline for a in self._attempts.values()]
        if self._outcome is None:
            times.append(self.ends_at)
            if self._next_start is not None:
                times.append(self._next_start)
        return min(times) if times else None

    def abort(self) -> RaceStep:
        """Stop now (the resolver hit a bug of its own on this race): close every open query, end unfinished.

        Only closes and forgets, so it works whatever state the bug left
        behind; the effects an interrupted input had not returned come too.
        """
        decided = self._outcome
        for attempt in list(self._attempts.values()):
            self._close(attempt)
        if self._outcome is None:
            self._finish(Outcome("error", reason="internal error"))
        return self._step(decided)

    # --- internals

    def _step(self, decided_before: Outcome | None, heard: bool = False) -> RaceStep:
        """The effects since the last step, and the outcome if it was decided since ``decided_before``."""
        out, self._out = self._out, []
        return RaceStep(out, self._outcome if decided_before is None else None, heard)

    def _ask(self, upstream: Upstream, now: float, tcp: bool = False, span: float | None = None) -> None:
        token = self._new_token()
        wire = self._random_id().to_bytes(2, "big") + self.query[2:]
        deadline = self.ends_at if tcp else now + (span or upstream.rto())
        self._attempts[token] = _Attempt(token, upstream, wire, now, deadline, tcp)
        upstream.asked(self._asked.setdefault(upstream, now))
        self._out.append(SendUpstream(token, upstream.address, wire, tcp))

    def _close(self, attempt: _Attempt) -> None:
        del self._attempts[attempt.token]
        attempt.upstream.closed()
        self._out.append(CloseUpstream(attempt.token))

    def _delay_after(self, upstream: Upstream) -> float:
        return self.hedge_delay if self.hedge_delay is not None else upstream.auto_hedge_delay()

    def _start_next(self, now: float) -> None:
        upstream = self._waiting.pop(0)
        self._ask(upstream, now)
        self._next_start = now + self._delay_after(upstream) if self._waiting else None

    def _failed_over(self, now: float) -> None:
        """An upstream said no or could not be reached: try the next, or give up if all said so."""
        if self._waiting:
            self._start_next(now)
            return
        if all(u in self._errors for u in self._asked):
            replies = [m for m in self._errors.values() if not isinstance(m, str)]
            said = [(u.label, m if isinstance(m, str) else _RCODE_NAMES.get(m.rcode, f"rcode {m.rcode}"))
                    for u, m in self._errors.items()]
            kinds = {what for _, what in said}
            if len(replies) == len(said) and len(kinds) == 1:
                reason = f"every upstream answered {kinds.pop()}"
            else:
                reason = "every upstream failed: " + ", ".join(f"{label} {what}" for label, what in said)
            self._finish(Outcome("error", replies[0] if replies else None, reason=reason))

    def _finish(self, outcome: Outcome) -> None:
        self._outcome = outcome
        self._waiting = []
        self._next_start = None
