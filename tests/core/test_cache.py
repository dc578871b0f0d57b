"""cache: TTL expiry, the LRU bound, the stale window, and loading a cache file's records (tests/core/test_cachefile.py: the file)."""

import dns.message
import dns.rrset

from bootres.core import clientwire, dnswire, upstreamwire
from bootres.core.cache import Cache


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
