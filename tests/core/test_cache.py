"""cache: TTL expiry, the LRU bound, the stale window, and the cache file format."""

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
from bootres.core.cache import MAGIC, Cache, CacheFileError, Snapshot


def answer(name="www.example.test.", ttl=60, address="198.18.0.1"):
    reply = dns.message.make_response(dns.message.make_query(name, "A"))
    reply.answer.append(dns.rrset.from_text(name, ttl, "IN", "A", address))
    return upstreamwire.answer_from_response(reply)


def key(name="www.example.test."):
    return clientwire.peek_query(dns.message.make_query(name, "A").to_wire())[0]


def test_fresh_until_the_smallest_ttl_then_stale_then_gone():
    cache = Cache(10, stale_max_age=100)
    cache.put(key(), answer(ttl=60), now=1000.0)
    assert cache.fresh(key(), 1059.9) is not None
    assert cache.fresh(key(), 1060.0) is None
    assert cache.stale(key(), 1060.0) is not None
    assert cache.stale(key(), 1159.9) is not None
    assert cache.stale(key(), 1160.0) is None
    assert len(cache) == 0  # dropped once past the stale window


def test_ttls_go_down_with_age_and_stale_ones_say_30():
    cache = Cache(10, 100)
    cache.put(key(), answer(ttl=60), now=1000.0)
    entry = cache.fresh(key(), 1000.0)
    wire = clientwire.render(entry, b"\x00\x01\x01\x00", upstreamwire.question_of(key()), 0, False, entry.body_at(25), False)
    assert dns.message.from_wire(wire).answer[0].ttl == 35
    stale = clientwire.render(entry, b"\x00\x01\x01\x00", upstreamwire.question_of(key()), 0, False, entry.body_stale(), False)
    assert dns.message.from_wire(stale).answer[0].ttl == dnswire.STALE_TTL


def test_least_recently_used_entry_goes_first():
    cache = Cache(2, 100)
    cache.put(key("a.test."), answer("a.test."), 0.0)
    cache.put(key("b.test."), answer("b.test."), 0.0)
    cache.fresh(key("a.test."), 1.0)  # a is now the most recent
    cache.put(key("c.test."), answer("c.test."), 2.0)
    assert cache.fresh(key("b.test."), 3.0) is None
    assert cache.fresh(key("a.test."), 3.0) is not None
    assert cache.fresh(key("c.test."), 3.0) is not None


def test_uncacheable_answers_are_not_kept():
    cache = Cache(10, 100)
    cache.put(key(), answer(ttl=0), 0.0)
    assert len(cache) == 0
    Cache(0, 100).put(key(), answer(), 0.0)  # cache_size = 0 keeps nothing


def test_names_moved_to_hosts_files_are_forgotten():
    cache = Cache(10, 100)
    cache.put(key("a.test."), answer("a.test."), 0.0)
    cache.put(key("b.test."), answer("b.test."), 0.0)
    assert cache.drop_names({upstreamwire.question_of(key("a.test."))[:-4]}) == 1
    assert cache.fresh(key("a.test."), 1.0) is None and cache.fresh(key("b.test."), 1.0) is not None


def test_a_restored_cache_is_stale_only_and_keeps_recency():
    cache = Cache(10, stale_max_age=3600)
    for i in range(5):
        cache.put(key(f"n{i}.test."), answer(f"n{i}.test.", ttl=600), now=100.0 + i)
    blob = cache.snapshot(now=200.0)

    restored = Cache(3, stale_max_age=3600)
    assert restored.restore(blob, now=5.0, age=60.0) == 3
    assert restored.fresh(key("n4.test."), 5.0) is None  # never fresh: the clock may be wrong at boot
    assert restored.stale(key("n4.test."), 5.0) is not None
    assert restored.stale(key("n0.test."), 5.0) is None  # the LRU bound kept the most recent three
    entry = restored.stale(key("n4.test."), 5.0)
    wire = clientwire.render(entry, b"\x00\x01\x01\x00", upstreamwire.question_of(key("n4.test.")), 0, False,
                         entry.body_stale(), False)
    assert dns.message.from_wire(wire).answer[0].to_text() == "n4.test. 30 IN A 198.18.0.1"


def test_a_cache_file_older_than_stale_max_age_restores_nothing():
    cache = Cache(10, stale_max_age=3600)
    cache.put(key(), answer(ttl=60), now=0.0)
    blob = cache.snapshot(now=0.0)
    assert Cache(10, 3600).restore(blob, now=0.0, age=2 * 86400) == 0


@pytest.mark.parametrize("blob, reason", [
    (b"", "not a bootres cache file"),
    (b"SQLite format 3\x00" + b"\x00" * 100, "not a bootres cache file"),
    (None, "checksum mismatch"),
    ("cut", "truncated"),
])
def test_foreign_or_damaged_files_are_refused_with_a_reason(blob, reason):
    cache = Cache(10, 3600)
    cache.put(key(), answer(), now=0.0)
    good = cache.snapshot(now=0.0)
    if blob is None:
        blob = good[:-1] + bytes([good[-1] ^ 1])
    elif blob == "cut":
        blob = good[:20]
    with pytest.raises(CacheFileError, match=reason):
        Cache(10, 3600).restore(blob, now=0.0, age=0.0)


# --- a cache file is untrusted input (issue 10): every field is checked, nothing half-loaded

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


def entries(blob: bytes) -> list[dict]:
    """A snapshot's entries as fields, to edit."""
    payload, pos, out = blob[len(MAGIC) + 8:], 0, []
    for _ in range(struct.unpack_from(">I", blob, len(MAGIC))[0]):
        klen, rcode, ad, an, ns, ar, blen, nttl, left = ENTRY.unpack_from(payload, pos)
        pos += ENTRY.size
        key_, body = payload[pos:pos + klen], payload[pos + klen:pos + klen + blen]
        pos += klen + blen
        pairs = [PAIR.unpack_from(payload, pos + i * PAIR.size) for i in range(nttl)]
        pos += nttl * PAIR.size
        out.append(dict(key=key_, rcode=rcode, ad=ad, an=an, ns=ns, ar=ar, body=body, pairs=pairs, left=left))
    return out


def blob_of(items: list[dict], count=None, trailing=b"") -> bytes:
    """A snapshot of ``items``, with a valid checksum whatever they hold."""
    payload = b"".join(
        ENTRY.pack(len(e["key"]), e["rcode"], e["ad"], e["an"], e["ns"], e["ar"], len(e["body"]), len(e["pairs"]),
                   e["left"]) + e["key"] + e["body"] + b"".join(PAIR.pack(*p) for p in e["pairs"])
        for e in items) + trailing
    return MAGIC + struct.pack(">II", len(items) if count is None else count, zlib.crc32(payload)) + payload


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
    lambda items: blob_of(items, count=len(items) + 1), lambda items: blob_of(items, trailing=b"\x00"),
], ids=[
    "SERVFAIL", "extended rcode", "AD 2", "an+1", "ns+1", "ar+1", "an 0", "body cut", "body longer",
    "A data short", "forward pointer", "CNAME loop", "TTL pair missing", "TTL pair extra", "TTL offset off by one",
    "TTL offset past end", "TTL offset far", "TTL over cap", "TTL top bit", "negative TTL over MINIMUM", "key upper",
    "key compressed", "key no root", "key name too long", "key type OPT", "key class CH", "key flags", "key longer",
    "left NaN", "left inf", "left negative", "left zero", "count too high", "trailing bytes",
])
def test_a_checksummed_file_with_any_field_out_of_range_is_refused_whole(edit):
    blob = edit(entries(snapshot()))
    cache = Cache(100, 3600)
    cache.put(key("kept.test."), answer("kept.test."), now=0.0)
    with pytest.raises(CacheFileError):
        cache.restore(blob, now=5.0, age=0.0)
    assert len(cache) == 1  # nothing loaded, nothing lost


def test_an_unedited_snapshot_round_trips_every_kind_of_answer():
    blob = snapshot()
    assert blob_of(entries(blob)) == blob
    restored = Cache(100, 3600)
    assert restored.restore(blob, now=5.0, age=0.0) == len(SAMPLES)
    for k, original in CACHED:
        entry = restored.stale(k, 5.0)
        assert (entry.body, entry.ttl_offsets, entry.an, entry.ns, entry.ar, entry.rcode) == \
               (original.body, original.ttl_offsets, original.an, original.ns, original.ar, original.rcode)


def test_a_version_1_file_is_another_version():
    with pytest.raises(CacheFileError, match="another version"):
        Cache(10, 3600).restore(b"bootres-cache\n\x01" + snapshot()[len(MAGIC):], now=0.0, age=0.0)


@settings(max_examples=600, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["set", "insert", "delete", "cut"]), st.integers(0, 1 << 16),
                          st.integers(0, 255)), min_size=1, max_size=3))
def test_mutated_snapshots_with_a_valid_checksum_load_only_answers_that_parse(steps):
    """Byte flips past the checksum: CacheFileError, or entries every one of which makes a reply dnspython reads."""
    base = snapshot()
    payload = bytearray(base[len(MAGIC) + 8:])
    header = bytearray(base[len(MAGIC):len(MAGIC) + 4])
    for kind, where, value in steps:
        target = header if where % 16 == 0 else payload  # now and then the entry count
        if not target:
            break
        i = where % len(target)
        if kind == "set":
            target[i] = value
        elif kind == "insert" and target is payload:
            target[i:i] = bytes([value])
        elif kind == "delete" and target is payload:
            del target[i]
        elif kind == "cut" and target is payload:
            del target[i:]
    blob = MAGIC + bytes(header) + struct.pack(">I", zlib.crc32(payload)) + bytes(payload)
    cache = Cache(100, 3600)
    try:
        cache.restore(blob, now=5.0, age=0.0)
    except CacheFileError:
        assert len(cache) == 0
        return
    for k in list(cache._entries):
        entry = cache.stale(k, 5.0)
        query = b"\x00\x01\x01\x00"
        for body in (entry.body_stale(), entry.body_at(0)):
            msg = dns.message.from_wire(clientwire.render(entry, query, upstreamwire.question_of(k), 1232, False, body, True))
            assert msg.rcode() in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.booleans())
def test_any_bytes_with_a_valid_checksum_raise_only_cache_file_error(payload, count_them):
    blob = MAGIC + struct.pack(">II", len(payload) // 20 if count_them else 1, zlib.crc32(payload)) + payload
    try:
        Cache(10, 3600).restore(blob, now=0.0, age=0.0)
    except CacheFileError:
        pass


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
    steps = Snapshot(cache)
    taken = 1
    while not steps.step(200.0, 128):
        taken += 1
    assert taken == 8  # 7 steps of 128, the last of 104
    assert steps.finish() == whole


def test_entries_that_change_between_steps_are_written_as_they_are_at_their_step():
    cache = filled(300)
    steps = Snapshot(cache)
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
    steps = Snapshot(cache)
    steps.step(now=500.0, limit=1)
    steps.step(now=1000.0, limit=1)
    assert Cache(10, 3600).restore(steps.finish(), now=5.0, age=0.0) == 2
    late = Snapshot(cache)
    late.step(now=900.0, limit=2)
    assert Cache(10, 3600).restore(late.finish(), now=5.0, age=0.0) == 1


def test_ten_thousand_entries_saved_in_steps_restore_exactly():
    cache = filled(10000)
    steps = Snapshot(cache)
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
