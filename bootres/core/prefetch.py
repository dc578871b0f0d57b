"""Refresh-ahead (``prefetch``, unbound's rule): which cached names are refreshed before they expire, and how many.

A cache hit in the last tenth of an answer's TTL, or its last second when
that is longer (but never more than half the TTL), asks for one background
refresh of it, so a name clients keep asking is fresh again before it
expires and they never wait for an upstream; a name nobody asks again is
never refreshed.  The hit itself is the name's second ask during this TTL
(the first filled the cache), which is what tells a name in use from one
asked once.  Refreshes start at most ``prefetch_rate`` a second (a bucket
of one second's worth, full at start) and only while fewer than half of
``max_inflight`` races are in flight, so client misses keep the other half.

The resolver (``core/resolver.py``) asks ``refresh_at`` on a hit, hands a
name in the window to ``want``, starts what ``take_due`` gives it
``DELAY`` later and asks ``admit`` before each refresh's race; whether
a name is already in flight or its upstreams are all silent is its to judge.
"""

from __future__ import annotations

from bootres.core.dnswire import Answer

# How long after the hit that asks for a refresh ahead the refresh starts.
# Not at once: our reply wakes its client, which the kernel often runs on our
# CPU, and setting up the race's sockets first made it wait for them (such
# hits took 0.27 ms at the median against 0.08 ms for other hits, 2 CPUs).
# And not just after it either: the refreshed answer's TTL starts when it
# lands, so for a client asking on a cadence equal to the window (once a
# second, TTL 10 s) its next hit in the window falls that long before expiry:
# 50 ms of slack for a client running late, rather than one.  The wait costs
# nothing: the answer being refreshed stays fresh until it expires.
DELAY = 0.05
# A hit in this last share of the TTL refreshes the name (unbound's prefetch
# uses the same tenth); refreshes keep this share of max_inflight free.
WINDOW = 0.1
# ...but the window is at least this long, up to half the TTL: with TTL 4 s
# the tenth is 0.4 s, and a client asking once a second hit it on fewer than
# half of the expiries and waited for an upstream after the others (3.6% of
# its asks).  One second holds at least one ask of anything asked once a
# second; the refresh then lands about a TTL after the last, so the cost stays
# one query per TTL (unbound keeps the tenth; it serves TTLs of minutes).
MIN_WINDOW = 1.0
INFLIGHT_SHARE = 0.5


class Prefetch:
    def __init__(self, rate: int):
        self._tokens = float(rate)  # the rate's bucket, full at start
        self._filled_at: float | None = None
        self._due: dict[bytes, None] = {}  # names whose hit asked for a refresh, in order
        self.refreshes = self.skipped = 0

    @staticmethod
    def refresh_at(answer: Answer, enabled: bool) -> float:
        """From when a hit on ``answer`` should refresh it (its expiry when ``prefetch`` is off).

        The window opens ``DELAY`` early, so a refresh asked for at its
        opening still starts within the last tenth: an answer fetched by a
        miss gets the same slack as a refreshed one (without it, a client
        asking once a tenth of the TTL hit the window's opening by a round
        trip or missed it by as much, a coin flip per name per TTL).
        """
        if not enabled:
            return answer.expires_at
        window = min(max(answer.lifetime * WINDOW, MIN_WINDOW), answer.lifetime / 2)
        return answer.expires_at - window - DELAY

    def want(self, key: bytes) -> bool:
        """A hit in ``key``'s window; True when it is the first of a new batch (the caller wakes up ``DELAY`` later)."""
        if key in self._due:
            return False
        first = not self._due
        self._due[key] = None
        return first

    def take_due(self) -> list[bytes]:
        """The names asked for since the last call, in order."""
        due, self._due = self._due, {}
        return list(due)

    def admit(self, now: float, rate: int, inflight: int, max_inflight: int) -> bool:
        """Whether one more refresh may start now; counted either way."""
        if self._filled_at is not None:
            self._tokens = min(rate, self._tokens + (now - self._filled_at) * rate)
        self._filled_at = now
        if self._tokens < 1 or inflight >= max_inflight * INFLIGHT_SHARE:
            self.skipped += 1
            return False
        self._tokens -= 1
        self.refreshes += 1
        return True
