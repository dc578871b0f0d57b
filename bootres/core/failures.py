"""Resolution failures remembered per name (RFC 9520), so a client asking again and again costs no upstream query.

A question that got no answer (every upstream silent, unreachable or down)
is answered from here for ``FIRST`` second: the upstreams are not asked
again for it before then, whatever the clients do.  A question the
upstreams themselves answered with an error (SERVFAIL, REFUSED: a broken
zone, a lame delegation) is remembered twice as long each time it fails
again soon after (within as long again as it was kept), up to ``LONGEST``
(RFC 9520 section 3.2's backoff); an answer ends that.  A change of the
host's routes ends the failures nothing answered (``forget_unanswered``):
at boot the first lookups fail before DHCP gives a route, and the moment it
does they must work.  At most ``MAX_NAMES`` are remembered, the least
recently failed forgotten first.
"""

from __future__ import annotations

from collections import OrderedDict

FIRST = 1.0  # RFC 9520: at least one second
LONGEST = 300.0  # RFC 9520: at most five minutes
MAX_NAMES = 10_000


class Failures:
    def __init__(self, max_names: int = MAX_NAMES):
        self._max = max_names
        # key -> (until, how long the last one was kept, its reason, whether the upstreams said it)
        self._names: OrderedDict[bytes, tuple[float, float, str, bool]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._names)

    def failed(self, key: bytes, reason: str, now: float, *, upstreams_said: bool) -> None:
        """``key`` got no answer at ``now``; ``upstreams_said``: they answered with an error (the backoff grows)."""
        before = self._names.pop(key, None)
        kept = FIRST
        if upstreams_said and before is not None and before[2] == reason and now <= before[0] + before[1]:
            kept = min(before[1] * 2, LONGEST)
        self._names[key] = (now + kept, kept, reason, upstreams_said)
        if len(self._names) > self._max:
            self._names.popitem(last=False)

    def reason(self, key: bytes, now: float) -> str | None:
        """Why ``key`` failed, while that is still remembered; None when it may be asked again."""
        entry = self._names.get(key)
        if entry is None or entry[0] <= now:
            return None
        return entry[2]

    def answered(self, key: bytes) -> None:
        """An answer for ``key``: its failures are history."""
        self._names.pop(key, None)

    def forget_unanswered(self) -> None:
        """The network changed: what failed for want of a reply may get one now."""
        for key in [key for key, entry in self._names.items() if not entry[3]]:
            del self._names[key]
