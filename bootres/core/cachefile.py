"""The cache file: last run's answers; a damaged byte costs its record; an age judged without trusting the clock.

Format 3, written by ``Snapshot``, read by ``read``::

    MAGIC          name and version (15 bytes)
    stamp          the clock at the save (``ClockReading``) and a CRC-32 of it
    record ...     SYNC, entry length, CRC-32 of the entry, entry

An entry is one cached answer (``_ENTRY``'s fields, the key, the records'
bytes, the TTL offsets).  Each record carries its own checksum and starts
with ``SYNC``, so a reader that meets a damaged record (a flipped byte, a
cut, a torn write) looks for the next ``SYNC`` and goes on: the damage
costs the records it touches, not the file.  A damaged stamp costs only the
age judgement (the entries are kept as if saved at load).  A record whose
checksum holds is still untrusted input (``_entry``): one that is not what
bootres writes is refused alone.

Format 2 (one checksum for the whole file, no stamp), the previous
release's, is still read, all or nothing as it always was: the upgrade
path.  Its age is the file's mtime, which nothing vouches for.

``judge_age`` decides how old the file is from what can be trusted now
(docs/resolver.md, "The cache file"); when nothing can, the entries are
kept as stale answers with the stale life they had left at the save.
"""

import math
import struct
import zlib
from typing import TYPE_CHECKING, NamedTuple

from bootres.core.dnswire import AD, AXFR, IXFR, MAILA, MAILB, NOERROR, NXDOMAIN, OPT, QR, RA, RD, TKEY, TSIG, Answer
from bootres.core.upstreamwire import read_reply

if TYPE_CHECKING:
    from bootres.core.cache import Cache

MAGIC = b"bootres-cache\n\x03"
MAGIC_V2 = b"bootres-cache\n\x02"  # the previous release's: read once, never written
_STAMP = struct.Struct(">dB16sd")  # wall time, synchronised, boot ID, CLOCK_BOOTTIME at the save
_CRC = struct.Struct(">I")
SYNC = b"\xbc\x5e\xc0\x0d"  # each record's first bytes: where a reader starts again after damage
_FRAME = struct.Struct(">II")  # entry length, CRC-32 of the entry
_ENTRY = struct.Struct(">HBBHHHIHf")  # key len, rcode, ad, an, ns, ar, body len, TTL count, stale seconds left
_TTL = struct.Struct(">HI")
_V2_HEADER = struct.Struct(">II")  # entry count, CRC-32 of everything after the header
_NEVER_ASKED = frozenset({OPT, TSIG, TKEY, IXFR, AXFR, MAILB, MAILA})  # parse_query answers these itself
NO_BOOT_ID = bytes(16)
# An age beyond this is a wrong clock (at the save or now), not a host that was off.
ABSURD_AGE = 366 * 86400.0


class CacheFileError(ValueError):
    """The cache file is not ours (or another version); the message says which, for the log."""


class ClockReading(NamedTuple):
    """What the clocks say at one moment; saved with the file, read again at load."""

    wall: float  # time.time()
    synchronized: bool  # known synchronised: timesyncd's flag file, or adjtimex's maximum error under 16 s
    boot_id: bytes  # /proc/sys/kernel/random/boot_id, 16 bytes; NO_BOOT_ID when unknown
    boottime: float  # CLOCK_BOOTTIME: monotonic within one boot, counting suspend


class AgeVerdict(NamedTuple):
    age: float  # seconds; 0 when not trusted
    trusted: bool
    reason: str  # for the log line and status
    warning: bool  # the clock or the file is certainly wrong, not merely unconfirmed


class Contents(NamedTuple):
    """What ``read`` found."""

    version: int
    saved: ClockReading | None  # None: the stamp is damaged
    records: list[tuple[bytes, Answer, float]]  # key, answer, stale seconds left at the save
    damaged: int  # regions of the file lost to damage (a run of unreadable bytes counts once)
    refused: int  # records whose checksum held but that are not what bootres writes


def judge_age(saved: ClockReading | None, now: ClockReading) -> AgeVerdict:
    """How old the file is, or that its age cannot be trusted and why.

    Trusted: a save in this boot (the boot-time clock, whatever the wall
    clock did), or a wall-clock age with the clock synchronised both at the
    save and now.  Anything else is not: a save in the future or more than
    a year ago (``warning``: a clock is wrong), or a clock nobody has
    confirmed yet (the usual boot before NTP has answered: not a warning).
    """
    if saved is None:
        return AgeVerdict(0.0, False, "the clock reading saved with it is damaged", True)
    if saved.boot_id != NO_BOOT_ID and saved.boot_id == now.boot_id and now.boottime >= saved.boottime:
        return AgeVerdict(now.boottime - saved.boottime, True, "saved during this boot", False)
    age = now.wall - saved.wall
    if not math.isfinite(age) or age < 0:
        return AgeVerdict(0.0, False, f"saved at {_iso(saved.wall)}, later than the clock reads now ({_iso(now.wall)})",
                          True)
    if age > ABSURD_AGE:
        return AgeVerdict(0.0, False, f"saved at {_iso(saved.wall)}, {age / 86400:.0f} days before the clock reads now"
                                      f" ({_iso(now.wall)}): a wrong clock", True)
    if not saved.synchronized:
        why = "written by an earlier release, with no clock reading" if saved.boot_id == NO_BOOT_ID else \
            "the clock was not synchronised when it was saved"
        return AgeVerdict(0.0, False, why, False)
    if not now.synchronized:
        return AgeVerdict(0.0, False, "the clock is not synchronised yet", False)
    return AgeVerdict(age, True, "saved and loaded with a synchronised clock", False)


def _iso(wall: float) -> str:
    import datetime  # here: only for a line about an untrusted age, never before the first answer otherwise

    try:
        return datetime.datetime.fromtimestamp(wall, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):  # NaN, or beyond what gmtime takes: a hostile or wrong stamp
        return repr(wall)


def stamp(reading: ClockReading) -> bytes:
    """The stamp's bytes: ``reading`` and its checksum."""
    packed = _STAMP.pack(reading.wall, reading.synchronized, reading.boot_id, reading.boottime)
    return packed + _CRC.pack(zlib.crc32(packed))


# --- writing


class Snapshot:
    """The cache file's bytes, made a bounded number of entries per ``step``.

    The entries are the cache's keys when the snapshot began, in the order
    they were first cached (the dict's own order, not least recently used
    first: walking OrderedDict's recency links for 10,000 entries took
    1.4-2.5 ms of the loop in one go, measured by bench/loop_stall.py, and the
    plain dict order 0.2 ms; ``Cache.load`` ranks every restored entry below
    the live ones anyway, so the order only decides which of last boot's
    answers go first when the cache overflows).  Each is serialized as it
    is at its step: one evicted or dropped meanwhile is left out, one
    refreshed is written as refreshed, one whose stale life has ended is
    skipped, and entries added after the start wait for the next snapshot.
    Each step's records are joined into one bytes object, so a snapshot in
    progress holds one object per step, not four per entry.
    """

    def __init__(self, cache: "Cache", clock: ClockReading):
        self._entries = cache._entries
        self._keys = list(dict.keys(cache._entries))  # insertion order, see above
        self._next = 0
        self._chunks: list[bytes] = [MAGIC, stamp(clock)]
        self.count = 0  # entries written so far

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
            self.count += 1
            entry = b"".join([
                _ENTRY.pack(len(key), answer.rcode, answer.ad, answer.an, answer.ns, answer.ar,
                            len(answer.body), len(answer.ttl_offsets), left),
                key, answer.body,
                *[_TTL.pack(offset, ttl) for offset, ttl in zip(answer.ttl_offsets, answer.ttls)]])
            parts += (SYNC, _FRAME.pack(len(entry), zlib.crc32(entry)), entry)
        self._next = end
        self._chunks.append(b"".join(parts))
        return self._next == len(self._keys)

    def finish(self) -> bytes:
        """The whole file, once ``step`` has said it is done."""
        return b"".join(self._chunks)


# --- reading


def read(blob: bytes, mtime: float) -> Contents:
    """Every record of the file that can be read; CacheFileError only when the file is not ours at all.

    ``mtime``: the file's, the only age a format 2 file has.  Never any
    other exception, whatever ``blob`` holds.
    """
    if blob.startswith(MAGIC):
        return _read_v3(blob)
    if blob.startswith(MAGIC_V2):
        return _read_v2(blob, mtime)
    raise CacheFileError("not a bootres cache file (or another version)")


def _read_v3(blob: bytes) -> Contents:
    view, end = memoryview(blob), len(blob)
    pos, damaged, refused, records = len(MAGIC), 0, 0, []
    saved = None
    if pos + _STAMP.size + _CRC.size <= end:
        packed = view[pos:pos + _STAMP.size]
        if zlib.crc32(packed) == _CRC.unpack_from(blob, pos + _STAMP.size)[0]:
            wall, synchronized, boot_id, boottime = _STAMP.unpack(packed)
            saved = ClockReading(wall, synchronized == 1, boot_id, boottime)
    if saved is None:
        damaged += 1
    pos += _STAMP.size + _CRC.size
    in_damage = saved is None
    while pos < end:
        start = pos + len(SYNC) + _FRAME.size
        if blob.startswith(SYNC, pos) and start <= end:
            length, crc = _FRAME.unpack_from(blob, pos + len(SYNC))
            if start + length <= end and zlib.crc32(view[start:start + length]) == crc:
                try:
                    records.append(_record(bytes(view[start:start + length])))
                except CacheFileError:
                    refused += 1
                pos, in_damage = start + length, False
                continue
        if not in_damage:
            damaged += 1
            in_damage = True
        found = blob.find(SYNC, pos + 1)
        pos = end if found < 0 else found
    return Contents(3, saved, records, damaged, refused)


def _record(entry: bytes) -> tuple[bytes, Answer, float]:
    """One entry's key, answer and stale life left; CacheFileError if any field is not what ``Snapshot`` writes."""
    if len(entry) < _ENTRY.size:
        raise CacheFileError("entry shorter than its fields")
    klen, rcode, ad, an, ns, ar, blen, nttl, left = _ENTRY.unpack_from(entry, 0)
    if _ENTRY.size + klen + blen + nttl * _TTL.size != len(entry):
        raise CacheFileError("entry lengths do not add up")
    if not (math.isfinite(left) and left > 0):
        raise CacheFileError(f"stale life left {left!r}")
    pos = _ENTRY.size
    key, body = entry[pos:pos + klen], entry[pos + klen:pos + klen + blen]
    pos += klen + blen
    pairs = [_TTL.unpack_from(entry, pos + i * _TTL.size) for i in range(nttl)]
    return key, _entry(key, rcode, ad, an, ns, ar, body, pairs), left


def _read_v2(blob: bytes, mtime: float) -> Contents:
    """The previous release's format: one checksum, a count, entries back to back; any fault refuses it whole."""
    try:
        count, crc = _V2_HEADER.unpack_from(blob, len(MAGIC_V2))
        payload = memoryview(blob)[len(MAGIC_V2) + _V2_HEADER.size:]
        if zlib.crc32(payload) != crc:
            raise CacheFileError("checksum mismatch (damaged file)")
        records, pos = [], 0
        for n in range(count):
            klen, _, _, _, _, _, blen, nttl, _ = _ENTRY.unpack_from(payload, pos)
            size = _ENTRY.size + klen + blen + nttl * _TTL.size
            if pos + size > len(payload):
                raise CacheFileError("truncated entry")
            try:
                records.append(_record(bytes(payload[pos:pos + size])))
            except CacheFileError as exc:
                raise CacheFileError(f"entry {n}: {exc}") from None
            pos += size
        if pos != len(payload):
            raise CacheFileError("trailing bytes after the last entry")
    except struct.error:
        raise CacheFileError("truncated file") from None
    return Contents(2, ClockReading(mtime, False, NO_BOOT_ID, math.nan), records, 0, 0)


def _entry(key: bytes, rcode: int, ad: int, an: int, ns: int, ar: int, body: bytes, pairs: list) -> Answer:
    """The answer a cache file entry stands for; CacheFileError if any field is not what ``Snapshot`` writes.

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
