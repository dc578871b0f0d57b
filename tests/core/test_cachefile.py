"""cachefile: the cache file's format, a damaged byte costing only its record, and the age rules.

Format 3's records each carry a checksum, so the tests that edit a field fix
the record's checksum (``blob_of``): they exercise the checks of every field
(a cache file is untrusted input, issue 10), not the checksum.
"""

import itertools
import math
import random
import struct
import zlib

import dns.message
import dns.name
import dns.rcode
import dns.rrset
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bootres.core import clientwire, dnswire, upstreamwire
from bootres.core.cache import Cache
from bootres.core.cachefile import (ABSURD_AGE, MAGIC, MAGIC_V2, NO_BOOT_ID, SYNC, CacheFileError, ClockReading,
                                    Snapshot, judge_age, read)

CLOCK = ClockReading(0.0, False, NO_BOOT_ID, 0.0)
HEAD = len(MAGIC) + 37  # magic, the clock reading and its checksum
ENTRY = struct.Struct(">HBBHHHIHf")
PAIR = struct.Struct(">HI")


def upstream_answer(name: str, rdtype: str, build) -> tuple[bytes, dnswire.Answer]:
    """(key, answer) as the stub caches them: the reply read by ``read_reply``, compression and all."""
    query = dns.message.make_query(name, rdtype, use_edns=0, want_dnssec=rdtype == "AAAA")
    reply = dns.message.make_response(query)
    build(reply, dns.name.from_text(name))
    return clientwire.peek_query(query.to_wire())[0], upstreamwire.read_reply(reply.to_wire()).answer


def add(section, name, ttl, rdtype, *texts):
    section.append(dns.rrset.from_text_list(name, ttl, "IN", rdtype, list(texts)))


def nxdomain(reply, name):
    reply.set_rcode(dns.rcode.NXDOMAIN)
    add(reply.authority, name.parent(), 600, "SOA", "ns1.example.test. host.example.test. 1 2 3 4 60")


SAMPLES = [
    ("www.example.test.", "A", lambda r, n: (add(r.answer, n, 300, "CNAME", "web.example.test."),
                                            add(r.answer, "web.example.test.", 60, "A", "198.18.0.1", "198.18.0.2"),
                                            add(r.authority, "example.test.", 3600, "NS", "ns1.example.test."),
                                            add(r.additional, "ns1.example.test.", 3600, "A", "198.18.0.53"))),
    ("no.example.test.", "A", nxdomain),
    ("www.example.test.", "AAAA", lambda r, n: add(r.answer, n, 120, "AAAA", "2001:db8::1")),
    ("example.test.", "MX", lambda r, n: add(r.answer, n, 300, "MX", "10 mail.example.test.", "20 mx.other.test.")),
    ("www.example.test.", "HTTPS", lambda r, n: add(r.answer, n, 300, "HTTPS", "1 . alpn=h2,h3 ipv4hint=198.18.0.1")),
    ("example.test.", "TXT", lambda r, n: add(r.answer, n, 300, "TXT", '"v=spf1 -all"', '"a" "b"')),
]


CACHED = [upstream_answer(*sample) for sample in SAMPLES]  # once: dnspython shuffles records as it writes


def snapshot() -> bytes:
    cache = Cache(100, 3600)
    for k, cached in CACHED:
        cache.put(k, cached, now=0.0)
    return cache.snapshot(now=10.0)


def records(blob: bytes) -> list[bytes]:
    """A format 3 file's entries, checksums dropped."""
    out, pos = [], HEAD
    while pos < len(blob):
        assert blob[pos:pos + 4] == SYNC
        length, _ = struct.unpack_from(">II", blob, pos + 4)
        out.append(blob[pos + 12:pos + 12 + length])
        pos += 12 + length
    return out


def entries(blob: bytes) -> list[dict]:
    """A snapshot's entries as fields, to edit."""
    out = []
    for entry in records(blob):
        klen, rcode, ad, an, ns, ar, blen, nttl, left = ENTRY.unpack_from(entry, 0)
        pos = ENTRY.size
        key_, body = entry[pos:pos + klen], entry[pos + klen:pos + klen + blen]
        pos += klen + blen
        pairs = [PAIR.unpack_from(entry, pos + i * PAIR.size) for i in range(nttl)]
        out.append(dict(key=key_, rcode=rcode, ad=ad, an=an, ns=ns, ar=ar, body=body, pairs=pairs, left=left))
    return out


def framed(entry: bytes) -> bytes:
    return SYNC + struct.pack(">II", len(entry), zlib.crc32(entry)) + entry


def blob_of(items: list[dict], head: bytes | None = None) -> bytes:
    """A file of ``items``, every record's checksum valid whatever it holds."""
    return (head or snapshot()[:HEAD]) + b"".join(framed(
        ENTRY.pack(len(e["key"]), e["rcode"], e["ad"], e["an"], e["ns"], e["ar"], len(e["body"]), len(e["pairs"]),
                   e["left"]) + e["key"] + e["body"] + b"".join(PAIR.pack(*p) for p in e["pairs"])) for e in items)


def v2_file(items: list[dict]) -> bytes:
    """The previous release's format: magic, count, one CRC-32, the entries back to back."""
    payload = b"".join(
        ENTRY.pack(len(e["key"]), e["rcode"], e["ad"], e["an"], e["ns"], e["ar"], len(e["body"]), len(e["pairs"]),
                   e["left"]) + e["key"] + e["body"] + b"".join(PAIR.pack(*p) for p in e["pairs"]) for e in items)
    return MAGIC_V2 + struct.pack(">II", len(items), zlib.crc32(payload)) + payload


# --- not ours at all: refused with a reason, nothing loaded


@pytest.mark.parametrize("blob, reason", [
    (b"", "not a bootres cache file"),
    (b"SQLite format 3\x00" + b"\x00" * 100, "not a bootres cache file"),
    (b"bootres-cache\n\x01" + b"\x00" * 40, "another version"),
    (b"bootres-cache\n\x04" + b"\x00" * 40, "another version"),
])
def test_a_file_that_is_not_ours_is_refused_with_a_reason(blob, reason):
    with pytest.raises(CacheFileError, match=reason):
        read(blob, 0.0)


# --- a cache file is untrusted input (issue 10): every field is checked; a bad record is refused alone


def edited(index=0, **fields):
    def edit(items):
        items[index].update({k: (v(items[index]) if callable(v) else v) for k, v in fields.items()})
        return blob_of(items)
    return edit


def cname_loop_body(e):
    """The issue's example, as an entry: a CNAME whose target points at itself."""
    return bytes.fromhex("c00c000500010000012c0002c02e")


@pytest.mark.parametrize("edit", [
    edited(rcode=dnswire.SERVFAIL), edited(rcode=16), edited(ad=2),
    edited(an=lambda e: e["an"] + 1), edited(ns=lambda e: e["ns"] + 1), edited(ar=lambda e: e["ar"] + 1),
    edited(an=0),
    edited(body=lambda e: e["body"][:-1]), edited(body=lambda e: e["body"] + b"\x00"),
    edited(body=lambda e: e["body"][:-4] + b"\x01\x02\x03"),  # the last A record's data one byte short
    edited(body=lambda e: e["body"].replace(b"\xc0\x0c", b"\xc0\xff", 1)),  # a pointer forward
    edited(body=cname_loop_body, an=1, ns=0, ar=0, pairs=[(6, 300)]),
    edited(pairs=lambda e: e["pairs"][:-1]), edited(pairs=lambda e: e["pairs"] + [(0, 60)]),
    edited(pairs=lambda e: [(e["pairs"][0][0] + 1, e["pairs"][0][1])] + e["pairs"][1:]),
    edited(pairs=lambda e: e["pairs"][:-1] + [(len(e["body"]) - 2, 60)]),  # past the body's end
    edited(pairs=lambda e: e["pairs"][:-1] + [(60000, 60)]),
    edited(pairs=lambda e: [(e["pairs"][0][0], dnswire.MAX_TTL + 1)] + e["pairs"][1:]),
    edited(pairs=lambda e: [(e["pairs"][0][0], 0x80000000)] + e["pairs"][1:]),
    edited(index=1, pairs=lambda e: [(e["pairs"][0][0], 3600)]),  # negative TTL above the SOA MINIMUM
    edited(key=lambda e: e["key"].upper()), edited(key=lambda e: b"\xc0\x0c" + e["key"][-5:]),
    edited(key=lambda e: e["key"][:-6] + e["key"][-5:]),  # no root label
    edited(key=lambda e: b"\x3f" + b"a" * 63 + e["key"] * 0 + b"\x3f" + b"b" * 63 + b"\x3f" + b"c" * 63
           + b"\x3f" + b"d" * 63 + e["key"][-6:]),  # name over 255 octets
    edited(key=lambda e: e["key"][:-5] + b"\x00\x29\x00\x01\x00"),  # type OPT
    edited(key=lambda e: e["key"][:-5] + b"\x00\x01\x00\x03\x00"),  # class CH
    edited(key=lambda e: e["key"][:-1] + b"\x04"),  # unknown flags
    edited(key=lambda e: e["key"] + b"\x00"),
    edited(left=float("nan")), edited(left=float("inf")), edited(left=-1.0), edited(left=0.0),
], ids=[
    "SERVFAIL", "extended rcode", "AD 2", "an+1", "ns+1", "ar+1", "an 0", "body cut", "body longer",
    "A data short", "forward pointer", "CNAME loop", "TTL pair missing", "TTL pair extra", "TTL offset off by one",
    "TTL offset past end", "TTL offset far", "TTL over cap", "TTL top bit", "negative TTL over MINIMUM", "key upper",
    "key compressed", "key no root", "key name too long", "key type OPT", "key class CH", "key flags", "key longer",
    "left NaN", "left inf", "left negative", "left zero",
])
def test_a_checksummed_record_with_any_field_out_of_range_is_refused_alone(edit):
    blob = edit(entries(snapshot()))
    contents = read(blob, 0.0)
    assert (contents.refused, contents.damaged, len(contents.records)) == (1, 0, len(SAMPLES) - 1)
    cache = Cache(100, 3600)
    cache.put(key("kept.test."), answer("kept.test."), now=0.0)
    assert cache.restore(blob, now=5.0, age=0.0) == len(SAMPLES) - 1  # the others load; nothing lost
    assert cache.stale(key("kept.test."), 5.0) is not None


def key(name):
    return clientwire.peek_query(dns.message.make_query(name, "A").to_wire())[0]


def answer(name):
    reply = dns.message.make_response(dns.message.make_query(name, "A"))
    reply.answer.append(dns.rrset.from_text(name, 60, "IN", "A", "198.18.0.1"))
    return upstreamwire.answer_from_response(reply)


def test_an_unedited_snapshot_round_trips_every_kind_of_answer():
    blob = snapshot()
    assert blob_of(entries(blob)) == blob
    restored = Cache(100, 3600)
    assert restored.restore(blob, now=5.0, age=0.0) == len(SAMPLES)
    for k, original in CACHED:
        entry = restored.stale(k, 5.0)
        assert (entry.body, entry.ttl_offsets, entry.an, entry.ns, entry.ar, entry.rcode) == \
               (original.body, original.ttl_offsets, original.an, original.ns, original.ar, original.rcode)


def test_the_previous_releases_format_is_read_once_with_its_mtime_as_an_untrusted_age():
    blob = v2_file(entries(snapshot()))
    contents = read(blob, 1_700_000_000.0)
    assert (contents.version, len(contents.records), contents.damaged) == (2, len(SAMPLES), 0)
    assert contents.saved.wall == 1_700_000_000.0
    verdict = judge_age(contents.saved, ClockReading(1_700_000_600.0, True, b"b" * 16, 50.0))
    assert (verdict.trusted, verdict.age, verdict.warning) == (False, 0.0, False)
    assert "earlier release" in verdict.reason
    # Format 2 stays all or nothing, as that release wrote it.
    with pytest.raises(CacheFileError, match="checksum"):
        read(blob[:-1] + bytes([blob[-1] ^ 1]), 0.0)
    with pytest.raises(CacheFileError):
        read(blob[:-3], 0.0)


@settings(max_examples=600, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["set", "insert", "delete", "cut"]), st.integers(0, 1 << 16),
                          st.integers(0, 255)), min_size=1, max_size=3), st.booleans())
def test_mutated_files_load_only_answers_that_parse(steps, fix_checksums):
    """Byte edits anywhere past the magic, with or without each record's checksum fixed: read returns, and
    every entry it loads makes a reply dnspython reads."""
    base = bytearray(snapshot())
    for kind, where, value in steps:
        if len(base) == len(MAGIC):
            break
        i = len(MAGIC) + where % (len(base) - len(MAGIC))
        if kind == "set":
            base[i] = value
        elif kind == "insert":
            base[i:i] = bytes([value])
        elif kind == "delete":
            del base[i]
        elif kind == "cut":
            del base[i:]
    blob = bytes(base)
    if fix_checksums:
        blob = refit(blob)
    cache = Cache(100, 3600)
    contents = read(blob, 0.0)
    assert len(contents.records) + contents.refused <= len(SAMPLES) + 3
    cache.load(contents.records, now=5.0, age=0.0)
    for k in list(cache._entries):
        entry = cache.stale(k, 5.0)
        query = b"\x00\x01\x01\x00"
        for body in (entry.body_stale(), entry.body_at(0)):
            msg = dns.message.from_wire(clientwire.render(entry, query, upstreamwire.question_of(k), 1232, False, body, True))
            assert msg.rcode() in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN)


def refit(blob: bytes) -> bytes:
    """``blob`` with the checksum of each record whose SYNC and length still fit recomputed."""
    out, pos = bytearray(blob), HEAD
    while True:
        pos = blob.find(SYNC, pos)
        if pos < 0 or pos + 12 > len(blob):
            return bytes(out)
        length = struct.unpack_from(">I", blob, pos + 4)[0]
        if pos + 12 + length <= len(blob):
            struct.pack_into(">I", out, pos + 8, zlib.crc32(blob[pos + 12:pos + 12 + length]))
        pos += 1


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=4), st.binary(max_size=40))
def test_any_bytes_as_records_or_as_a_stamp_raise_nothing(payloads, stamp):
    blob = MAGIC + stamp + b"".join(framed(p) for p in payloads)
    contents = read(blob, 0.0)
    assert len(contents.records) + contents.refused <= len(payloads)


# --- damage costs only what is damaged (issue 24)


def ten_thousand() -> bytes:
    return filled(10000).snapshot(now=200.0, clock=ClockReading(1_800_000_000.0, True, b"a" * 16, 900.0))


@pytest.mark.parametrize("damage", ["cut in half", "8 bytes overwritten mid-file", "last byte cut",
                                    "stamp overwritten"])
def test_a_damaged_file_loses_only_the_records_the_damage_touches(damage):
    blob = ten_thousand()
    undamaged = 10000
    if damage == "cut in half":
        ends = itertools.accumulate((12 + len(r) for r in records(blob)), initial=HEAD)
        blob = blob[:len(blob) // 2]
        undamaged = sum(1 for end in list(ends)[1:] if end <= len(blob))  # the records wholly before the cut
    elif damage == "8 bytes overwritten mid-file":
        middle = len(blob) // 2
        blob = blob[:middle] + b"\xff" * 8 + blob[middle + 8:]
        undamaged = 9999  # eight bytes touch at most two records; 9,999 when they sit inside one
    elif damage == "last byte cut":
        blob = blob[:-1]
        undamaged = 9999
    else:
        blob = blob[:len(MAGIC) + 3] + b"\x00" * 8 + blob[len(MAGIC) + 11:]
    contents = read(blob, 0.0)
    kept = len(contents.records)
    assert contents.damaged == 1 and contents.refused == 0
    assert kept >= 0.99 * undamaged and kept >= undamaged - 2, (kept, undamaged)
    if damage == "stamp overwritten":
        assert contents.saved is None and kept == 10000
        assert judge_age(None, CLOCK).trusted is False
    else:
        assert contents.saved == ClockReading(1_800_000_000.0, True, b"a" * 16, 900.0)


def test_random_damage_never_loses_more_than_the_records_it_touches():
    rng = random.Random(24)
    blob = filled(2000).snapshot(now=200.0)
    sizes = [12 + len(r) for r in records(blob)]
    for _ in range(50):
        start, length = rng.randrange(HEAD, len(blob) - 8), rng.randint(1, 64)
        damaged = blob[:start] + bytes(rng.randrange(256) for _ in range(length)) + blob[start + length:]
        touched, pos = 0, HEAD
        for size in sizes:
            touched += pos < start + length and start < pos + size
            pos += size
        kept = len(read(damaged, 0.0).records)
        assert kept >= 2000 - touched, (start, length, kept, touched)


# --- the age of the file: trusted only when something vouches for it (issue 24)

SAVED = ClockReading(1_800_000_000.0, True, b"a" * 16, 5000.0)
DAY = 86400.0


@pytest.mark.parametrize("now, trusted, age, warning, says", [
    (ClockReading(1_800_000_100.0, False, b"a" * 16, 5060.0), True, 60.0, False, "this boot"),  # the boot-time clock
    (ClockReading(1_000_000_000.0, False, b"a" * 16, 5060.0), True, 60.0, False, "this boot"),  # wall clock stepped
    (ClockReading(1_800_000_600.0, True, b"b" * 16, 30.0), True, 600.0, False, "synchronised"),
    (ClockReading(1_800_000_600.0, False, b"b" * 16, 30.0), False, 0.0, False, "not synchronised yet"),
    (ClockReading(1_800_000_000.0 - 30 * 365 * DAY, True, b"b" * 16, 30.0), False, 0.0, True, "later than"),
    (ClockReading(1_800_000_000.0 + 30 * 365 * DAY, False, b"b" * 16, 30.0), False, 0.0, True, "a wrong clock"),
    (ClockReading(1_800_000_000.0 + ABSURD_AGE + 1, True, b"b" * 16, 30.0), False, 0.0, True, "a wrong clock"),
    (ClockReading(math.nan, True, b"b" * 16, 30.0), False, 0.0, True, "later than"),
    (ClockReading(1_800_000_100.0, True, b"a" * 16, 10.0), True, 100.0, False, "synchronised"),  # boottime went back
    (ClockReading(1_800_000_100.0, True, NO_BOOT_ID, 5060.0), True, 100.0, False, "synchronised"),  # no boot ID now
])
def test_the_age_is_trusted_only_when_a_clock_vouches_for_it(now, trusted, age, warning, says):
    verdict = judge_age(SAVED, now)
    assert (verdict.trusted, verdict.age, verdict.warning) == (trusted, age, warning)
    assert says in verdict.reason


def test_a_save_with_an_unsynchronised_clock_is_not_trusted_in_the_next_boot():
    verdict = judge_age(SAVED._replace(synchronized=False), ClockReading(1_800_000_600.0, True, b"b" * 16, 30.0))
    assert (verdict.trusted, verdict.warning) == (False, False) and "when it was saved" in verdict.reason


def test_entries_of_an_untrusted_age_keep_the_stale_life_they_had_left_at_most_stale_max_age():
    cache = Cache(10, stale_max_age=3 * DAY)
    cache.put(key("a.test."), answer("a.test."), now=0.0)  # TTL 60: stale until 60 + 3 days
    contents = read(cache.snapshot(now=DAY), 0.0)  # left: 2 days and 60 s
    restored = Cache(10, stale_max_age=DAY)
    assert restored.load(contents.records, now=100.0, age=0.0) == 1
    assert restored._entries[key("a.test.")].stale_until == 100.0 + DAY  # stale_max_age from the load
    again = Cache(10, stale_max_age=3 * DAY)
    again.load(read(cache.snapshot(now=DAY), 0.0).records, now=100.0, age=0.0)
    assert again._entries[key("a.test.")].stale_until == pytest.approx(100.0 + 2 * DAY + 60, abs=0.01)


# --- the snapshot in steps (issue 11): the loop that owns the cache answers between them


def a_record(i: int) -> tuple[bytes, dnswire.Answer]:
    """(key, answer) for n<i>.example.test A, built from bytes: 10,000 of them in a blink."""
    qname = b"\x06n%05d\x07example\x04test\x00" % i
    question = qname + b"\x00\x01\x00\x01"
    query = struct.pack(">6H", i, 0x0100, 1, 0, 0, 0) + question
    record = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 600 + i % 7, 4) + bytes([198, 18, i >> 8, i & 255])
    reply = struct.pack(">6H", i, 0x8180, 1, 1, 0, 0) + question + record
    return clientwire.peek_query(query)[0], upstreamwire.read_reply(reply).answer


def filled(count: int, size: int = 20000) -> Cache:
    cache = Cache(size, 3600)
    for i in range(count):
        cache.put(*a_record(i), now=100.0 + i / count)
    return cache


def test_a_snapshot_in_steps_is_the_snapshot_in_one_go_a_bounded_number_of_entries_each():
    cache = filled(1000)
    whole = cache.snapshot(now=200.0)
    steps = Snapshot(cache, CLOCK)
    taken = 1
    while not steps.step(200.0, 128):
        taken += 1
    assert taken == 8  # 7 steps of 128, the last of 104
    assert steps.finish() == whole


def test_entries_that_change_between_steps_are_written_as_they_are_at_their_step():
    cache = filled(300)
    steps = Snapshot(cache, CLOCK)
    assert not steps.step(200.0, 100)  # n00000..n00099 written
    cache.drop_names({a_record(150)[0][:-5], a_record(10)[0][:-5]})  # one ahead of the snapshot, one behind it
    refreshed = a_record(250)[1]
    cache.put(a_record(250)[0], refreshed, now=150.0)  # refreshed: now the most recently used
    cache.put(*a_record(999), now=150.0)  # added after the start: the next snapshot's
    while not steps.step(200.0, 100):
        pass
    restored = Cache(1000, 3600)
    assert restored.restore(steps.finish(), now=5.0, age=0.0) == 299
    keys = list(restored._entries)
    assert a_record(150)[0] not in keys and a_record(999)[0] not in keys
    assert a_record(10)[0] in keys  # written before it was dropped
    assert keys.index(a_record(250)[0]) == 249  # its place when the snapshot began (n00150 left out before it)
    assert restored.stale(a_record(250)[0], 5.0).body == refreshed.body


def test_an_entry_whose_stale_life_ends_before_its_step_is_left_out():
    cache = Cache(10, stale_max_age=100)
    cache.put(*a_record(1), now=0.0)  # TTL 601: served stale until 701
    cache.put(*a_record(2), now=500.0)  # TTL 602: until 1202
    steps = Snapshot(cache, CLOCK)
    steps.step(now=500.0, limit=1)
    steps.step(now=1000.0, limit=1)
    assert Cache(10, 3600).restore(steps.finish(), now=5.0, age=0.0) == 2
    late = Snapshot(cache, CLOCK)
    late.step(now=900.0, limit=2)
    assert Cache(10, 3600).restore(late.finish(), now=5.0, age=0.0) == 1


def test_ten_thousand_entries_saved_in_steps_restore_exactly():
    cache = filled(10000)
    steps = Snapshot(cache, CLOCK)
    while not steps.step(200.0, 128):
        pass
    restored = Cache(20000, 3600)
    assert restored.restore(steps.finish(), now=5.0, age=0.0) == 10000
    # Same keys, in the order they were first cached (Snapshot's docstring says why not by recency).
    assert list(restored._entries) == list(dict.keys(cache._entries))
    for key, original in cache._entries.items():
        entry = restored._entries[key]
        assert (entry.body, entry.ttl_offsets, entry.an, entry.ns, entry.ar, entry.rcode, entry.ad) == \
               (original.body, original.ttl_offsets, original.an, original.ns, original.ar, original.rcode, original.ad)


def test_a_snapshot_counts_its_entries():
    steps = Snapshot(filled(300), CLOCK)
    while not steps.step(200.0, 64):
        pass
    assert steps.count == 300 and len(read(steps.finish(), 0.0).records) == 300
    empty = Snapshot(Cache(10, 3600), CLOCK)
    assert empty.step(0.0, 64) and empty.count == 0
