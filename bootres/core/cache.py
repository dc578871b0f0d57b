"""The answer cache: TTLs, negative answers (RFC 2308), stale answers (RFC 8767), an LRU bound.

Keys and values come from ``clientwire`` and ``upstreamwire``: byte keys (name, type, class, DO) and
``Answer`` objects.  Time is an argument (monotonic seconds).  An entry is
*fresh* until ``expires_at``, then *stale* until ``stale_until`` (only
served when upstreams fail), then gone.

``snapshot``/``restore`` turn the cache into bytes for ``cache_file``;
``Snapshot`` makes the same bytes a bounded number of entries at a time, so
the loop that owns the cache answers queries between the steps (10,000
entries take ~16 ms to serialize).  Restored entries are stale-only: early
in boot the clock may be wrong, so their TTLs mean nothing until an
upstream refreshes them.  The file is
untrusted input like an upstream reply: a checksum only catches accidents,
so every entry is read again as a reply would be before any is used.
"""

from __future__ import annotations

import itertools
import math
import struct
import zlib
from collections import OrderedDict
from typing import Container

from bootres.core.dnswire import AD, AXFR, IXFR, MAILA, MAILB, NOERROR, NXDOMAIN, OPT, QR, RA, RD, TKEY, TSIG, Answer
from bootres.core.upstreamwire import read_reply

# Name, then format version 2 (version 1 held records as the upstream
# compressed them, with pointers anywhere into its reply).
MAGIC = b"bootres-cache\n\x02"
_FILE_HEADER = struct.Struct(">II")  # entry count, CRC-32 of everything after the header
_ENTRY = struct.Struct(">HBBHHHIHf")  # key len, rcode, ad, an, ns, ar, body len, TTL count, stale seconds left
_TTL = struct.Struct(">HI")
_NEVER_ASKED = frozenset({OPT, TSIG, TKEY, IXFR, AXFR, MAILB, MAILA})  # parse_query answers these itself


class CacheFileError(ValueError):
    """The cache file is not ours or is damaged; the message says which, for the log."""


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

    def snapshot(self, now: float) -> bytes:
        """Every entry still worth serving, oldest first (``Snapshot``), as bytes, in one go (tests, fuzzing)."""
        steps = Snapshot(self)
        steps.step(now, len(self._entries))
        return steps.finish()

    def restore(self, blob: bytes, now: float, age: float) -> int:
        """Load a snapshot taken ``age`` seconds ago as stale-only entries; return how many.

        Raises CacheFileError, and loads nothing, when the file is foreign or
        damaged or any field of any entry is not what ``snapshot`` writes
        (``_entry``); never any other exception.
        """
        if not blob.startswith(MAGIC):
            raise CacheFileError("not a bootres cache file (or another version)")
        try:
            count, crc = _FILE_HEADER.unpack_from(blob, len(MAGIC))
            payload = memoryview(blob)[len(MAGIC) + _FILE_HEADER.size:]
            if zlib.crc32(payload) != crc:
                raise CacheFileError("checksum mismatch (damaged file)")
            loaded = []
            pos = 0
            for n in range(count):
                klen, rcode, ad, an, ns, ar, blen, nttl, left = _ENTRY.unpack_from(payload, pos)
                pos += _ENTRY.size
                key = bytes(payload[pos:pos + klen])
                pos += klen
                body = bytes(payload[pos:pos + blen])
                pos += blen
                pairs = [_TTL.unpack_from(payload, pos + i * _TTL.size) for i in range(nttl)]
                pos += nttl * _TTL.size
                if len(key) != klen or len(body) != blen:
                    raise CacheFileError("truncated entry")
                if not (math.isfinite(left) and left > 0):
                    raise CacheFileError(f"entry {n}: stale life left {left!r}")
                try:
                    answer = _entry(key, rcode, ad, an, ns, ar, body, pairs)
                except CacheFileError as exc:
                    raise CacheFileError(f"entry {n}: {exc}") from None
                answer.stored_at = now
                answer.expires_at = now  # stale from the start
                answer.stale_until = now + min(self.stale_max_age, left - max(age, 0.0))
                if answer.stale_until > now:
                    loaded.append((key, answer))
            if pos != len(payload):
                raise CacheFileError("trailing bytes after the last entry")
        except struct.error:
            raise CacheFileError("truncated file") from None
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


class Snapshot:
    """The cache file's bytes, made a bounded number of entries per ``step``.

    The entries are the cache's keys when the snapshot began, in the order
    they were first cached (the dict's own order, not least recently used
    first: walking OrderedDict's recency links for 10,000 entries took
    1.4-2.5 ms of the loop in one go, measured by bench/loop_stall.py, and the
    plain dict order 0.2 ms; ``restore`` ranks every restored entry below the
    live ones anyway, so the order only decides which of last boot's answers
    go first when the cache overflows).  Each is serialized as it is at
    its step: one evicted or dropped meanwhile is left out, one refreshed is
    written as refreshed, one whose stale life has ended is skipped, and
    entries added after the start wait for the next snapshot.  Each step's
    entries are joined into one bytes object (and its CRC carried on), so a
    snapshot in progress holds one object per step, not four per entry.
    """

    def __init__(self, cache: Cache):
        self._entries = cache._entries
        self._keys = list(dict.keys(cache._entries))  # insertion order, see above
        self._next = 0
        self._chunks: list[bytes] = []
        self._count = 0
        self._crc = 0

    def step(self, now: float, limit: int) -> bool:
        """Serialize up to ``limit`` more entries; True once every entry has had its turn."""
        parts = []
        end = min(self._next + limit, len(self._keys))
        for key in self._keys[self._next:end]:
            answer = self._entries.get(key)
            if answer is None:
                continue
            left = answer.stale_until - now
            if left <= 0:
                continue
            self._count += 1
            parts.append(_ENTRY.pack(
                len(key), answer.rcode, answer.ad, answer.an, answer.ns, answer.ar,
                len(answer.body), len(answer.ttl_offsets), left,
            ))
            parts.append(key)
            parts.append(answer.body)
            parts.extend(_TTL.pack(offset, ttl) for offset, ttl in zip(answer.ttl_offsets, answer.ttls))
        self._next = end
        chunk = b"".join(parts)
        self._crc = zlib.crc32(chunk, self._crc)
        self._chunks.append(chunk)
        return self._next == len(self._keys)

    def finish(self) -> bytes:
        """The whole file, once ``step`` has said it is done."""
        return b"".join([MAGIC, _FILE_HEADER.pack(self._count, self._crc), *self._chunks])


def _entry(key: bytes, rcode: int, ad: int, an: int, ns: int, ar: int, body: bytes, pairs: list) -> Answer:
    """The answer a cache file entry stands for; CacheFileError if any field is not what ``snapshot`` writes.

    The key must be one the stub asks upstream for (a lower-case wire name
    without compression, a type a query may ask for, class IN, the flags
    byte DO + 2 * CD), the answer a NOERROR or NXDOMAIN that ``read_reply``
    would have cached: the body, given the key's question and the counts,
    must read back as an upstream reply to exactly itself (so counts, names,
    record data and capped TTLs are all as ``read_reply`` leaves them), its
    TTLs exactly at the offsets the file lists.
    """
    name_end = 0
    while name_end < len(key) - 6 and 0 < key[name_end] < 64:
        name_end += key[name_end] + 1
    if (name_end != len(key) - 6 or key[name_end] or name_end >= 255 or key[:name_end] != key[:name_end].lower()
            or (key[-5] << 8 | key[-4]) in _NEVER_ASKED or key[-3:-1] != b"\x00\x01" or key[-1] > 3):
        raise CacheFileError("not a question bootres asks")
    if rcode not in (NOERROR, NXDOMAIN) or ad > 1:
        raise CacheFileError(f"RCODE {rcode}, AD {ad}: not an answer bootres caches")
    if any(offset + 4 > len(body) for offset, _ in pairs):
        raise CacheFileError("TTL offset past the records")
    body = bytearray(body)
    for offset, ttl in pairs:  # the body holds the TTLs as cached
        struct.pack_into(">I", body, offset, ttl)
    flags = QR | RD | RA | (AD if ad else 0) | rcode
    reply = read_reply(b"\x00\x00" + struct.pack(">HHHHH", flags, 1, an, ns, ar) + key[:-1] + body)
    if (reply is None or reply.rcode != rcode or reply.answer.lifetime <= 0 or reply.answer.body != body
            or list(reply.answer.ttl_offsets) != [offset for offset, _ in pairs]):
        raise CacheFileError("records, counts or TTLs not as bootres caches them")
    return reply.answer
