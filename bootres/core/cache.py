"""The answer cache: TTLs, negative answers (RFC 2308), stale answers (RFC 8767), an LRU bound.

Keys and values come from ``clientwire`` and ``upstreamwire``: byte keys (name, type, class, DO) and
``Answer`` objects.  Time is an argument (monotonic seconds).  An entry is
*fresh* until ``expires_at``, then *stale* until ``stale_until`` (only
served when upstreams fail), then gone.

The cache file's format is ``cachefile``'s; ``load`` takes what it read.
Restored entries are stale-only: early in boot the clock may be wrong, so
their TTLs mean nothing until an upstream refreshes them.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from typing import Container, Iterable

from bootres.core import cachefile
from bootres.core.dnswire import Answer


class Cache:
    def __init__(self, size: int, stale_max_age: float):
        self.size = size
        self.stale_max_age = stale_max_age
        self._entries: OrderedDict[bytes, Answer] = OrderedDict()
        # touch(key): mark ``key`` recently used.  The OrderedDict's own method,
        # bound once: a repeated query (Resolver.fast_answer) calls it without a
        # Python frame of ours in between (~40 ns of a ~500 ns hit).
        self.touch = self._entries.move_to_end

    def __len__(self) -> int:
        return len(self._entries)

    def fresh(self, key: bytes, now: float) -> Answer | None:
        """The entry if it has not expired.  Part of the measured hot path."""
        answer = self._entries.get(key)
        if answer is None or now >= answer.expires_at:
            return None
        self._entries.move_to_end(key)
        return answer

    def holds(self, key: bytes, answer: Answer) -> bool:
        """Whether ``answer`` is still the entry for ``key`` (not replaced or evicted)."""
        return self._entries.get(key) is answer

    def newest(self, limit: int) -> list[bytes]:
        """Up to ``limit`` keys, the most recently stored or used first."""
        return list(itertools.islice(reversed(self._entries), limit))

    def stale(self, key: bytes, now: float) -> Answer | None:
        """An expired entry still within ``stale_max_age``; older ones are dropped here."""
        answer = self._entries.get(key)
        if answer is None:
            return None
        if now >= answer.stale_until:
            del self._entries[key]
            return None
        return answer

    def put(self, key: bytes, answer: Answer, now: float) -> None:
        if answer.lifetime <= 0 or self.size == 0:
            return
        answer.stored_at = now
        answer.expires_at = now + answer.lifetime
        answer.stale_until = answer.expires_at + self.stale_max_age
        self._entries[key] = answer
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def drop_names(self, names: Container[bytes]) -> int:
        """Forget every type of record for these wire names (they moved to a hosts file, or under a new routing domain)."""
        doomed = [key for key in self._entries if key[: -5] in names]
        for key in doomed:
            del self._entries[key]
        return len(doomed)

    def resize(self, size: int, stale_max_age: float) -> None:
        self.size = size
        self.stale_max_age = stale_max_age
        while len(self._entries) > size:
            self._entries.popitem(last=False)

    def snapshot(self, now: float, clock: cachefile.ClockReading | None = None) -> bytes:
        """The cache file's bytes in one go (tests, fuzzing; the service saves in steps with ``cachefile.Snapshot``)."""
        steps = cachefile.Snapshot(self, clock or cachefile.ClockReading(0.0, False, cachefile.NO_BOOT_ID, 0.0))
        steps.step(now, len(self._entries))
        return steps.finish()

    def restore(self, blob: bytes, now: float, age: float) -> int:
        """``load`` what ``cachefile.read`` finds in ``blob``, saved ``age`` seconds ago (tests, fuzzing)."""
        return self.load(cachefile.read(blob, 0.0).records, now, age)

    def load(self, records: Iterable[tuple[bytes, Answer, float]], now: float, age: float) -> int:
        """Add a cache file's records, saved ``age`` seconds ago, as stale-only entries; return how many.

        Each keeps the stale life it had left at the save less ``age``, at
        most ``stale_max_age`` from now.  Restored entries rank below
        anything already cached, and never replace a live answer.
        """
        loaded = []
        for key, answer, left in records:
            answer.stored_at = now
            answer.expires_at = now  # stale from the start
            answer.stale_until = now + min(self.stale_max_age, left - max(age, 0.0))
            if answer.stale_until > now:
                loaded.append((key, answer))
        added = 0
        # Oldest last into the front: restored entries rank below anything already cached.
        for key, answer in reversed(loaded[-self.size:] if self.size else []):
            if key not in self._entries:  # never shadow an answer we already have
                self._entries[key] = answer
                self._entries.move_to_end(key, last=False)
                added += 1
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return added
