"""upstreamwire: an upstream reply read from its bytes says exactly what dnspython reads in it.

For generated replies, ``read_reply`` keeps what dnspython parses (records,
TTLs, RCODE); malformed ones are not read; the lifetime follows RFC 2308;
a reply matches its query by ID, QR and question.  test_reply_validation.py
holds the hostile cases.
"""

import struct

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bootres.core import clientwire, dnswire, upstreamwire
from wire_helpers import build_upstream, client_queries, comparable, dnspython_key, reference_reply, upstream_recipes


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_reading_a_reply_from_bytes_equals_reading_it_with_dnspython(data):
    """The miss path's hand-written reader against dnspython's parse, its lifetime against RFC 2308's rule."""
    wire, query = data.draw(client_queries())
    upstream = build_upstream(query.question[0].name.canonicalize(), data.draw(upstream_recipes))
    if data.draw(st.booleans()):
        upstream.use_edns(0, dns.flags.DO if data.draw(st.booleans()) else 0, 1232)
    upstream_wire = upstream.to_wire()
    fast = upstreamwire.read_reply(upstream_wire)
    slow = upstreamwire.answer_from_response(dns.message.from_wire(upstream_wire))  # the same, uncompressed
    assert fast.rcode == upstream.rcode() and fast.tc is False
    assert fast.answer.lifetime == slow.lifetime == expected_lifetime(upstream)
    age = data.draw(st.integers(0, 100000))
    key, end, payload, do = clientwire.peek_query(wire)
    rendered = [
        comparable(dns.message.from_wire(clientwire.render(a, wire, wire[12:end], payload, do, a.body_at(age), True,
                                                       trust_ad=True)))
        for a in (fast.answer, slow)
    ]
    assert rendered[0] == rendered[1] == comparable(reference_reply(query, upstream, age, trust_ad=True))


def expected_lifetime(upstream: dns.message.Message) -> int:
    """How long the reply may be cached, said with dnspython: positive, negative (RFC 2308 section 5) or not."""
    rcode = upstream.rcode()
    if rcode == dns.rcode.NXDOMAIN or (rcode == dns.rcode.NOERROR and not upstream.answer):
        for rrset in upstream.authority:
            if rrset.rdtype == dns.rdatatype.SOA:
                return min(rrset.ttl, rrset[0].minimum, dnswire.MAX_NEGATIVE_TTL)
        return 0
    if rcode == dns.rcode.NOERROR:
        return min(min(rrset.ttl for rrset in upstream.answer), dnswire.MAX_TTL)
    return 0


def rr(name: bytes, rdtype: int, ttl: int, rdata: bytes) -> bytes:
    return name + struct.pack(">HHIH", rdtype, 1, ttl, len(rdata)) + rdata


QNAME = b"\x03www\x07example\x04test\x00"
REPLY_HEAD = struct.pack(">HHHHHH", 7, 0x8180, 1, 1, 0, 0) + QNAME + b"\x00\x01\x00\x01"


@pytest.mark.parametrize("wire", [
    REPLY_HEAD + rr(b"\xc0\x40", 1, 60, b"\x01\x02\x03\x04"),  # pointer forward
    REPLY_HEAD + rr(b"\xc0\x0c", 1, 60, b"\x01\x02\x03\x04")[:-1],  # record cut short
    REPLY_HEAD + rr(b"\xc0\x0c", 1, 60, b"\x01\x02\x03\x04") + b"junk",  # trailing bytes
    REPLY_HEAD + rr(b"\x00", 41, 0, b""),  # OPT in the answer section
    REPLY_HEAD + rr(b"\x80\x0c", 1, 60, b"\x01\x02\x03\x04"),  # reserved label type
    struct.pack(">HHHHHH", 7, 0x8180, 0, 0, 0, 0),  # no question
], ids=["forward pointer", "cut short", "trailing junk", "OPT in answer", "label type", "no question"])
def test_malformed_replies_do_not_read(wire):
    """A few shapes; ``test_reply_validation.py`` has the rest, against dnspython."""
    assert upstreamwire.read_reply(wire) is None


def test_an_opt_record_that_is_not_last_is_read_and_left_out():
    opt = rr(b"\x00", 41, 0, b"")[:3] + struct.pack(">HIH", 1232, 0, 0)
    extra = rr(b"\x02ns\xc0\x10", 1, 60, b"\xc6\x12\x00\x35")
    head = struct.pack(">HHHHHH", 7, 0x8180, 1, 1, 0, 2) + QNAME + b"\x00\x01\x00\x01"
    wire = head + rr(b"\xc0\x0c", 1, 60, b"\xc6\x12\x00\x01") + opt + extra
    reply = upstreamwire.read_reply(wire)
    assert reply.answer.an == 1 and reply.answer.ar == 1 and reply.answer.lifetime == 60
    query = dns.message.make_query("www.example.test", "A").to_wire()
    got = dns.message.from_wire(clientwire.render(reply.answer, query, query[12:-4] + query[-4:], 0, False,
                                              reply.answer.body_at(0), False))
    assert [r.to_text() for r in got.additional] == ["ns.example.test. 60 IN A 198.18.0.53"]


def test_negative_answer_lifetime_is_the_soa_minimum_capped_by_its_ttl():
    name = dns.name.from_text("no.example.test.")
    upstream = dns.message.make_response(dns.message.make_query(name, "A"))
    upstream.set_rcode(dns.rcode.NXDOMAIN)
    upstream.authority.append(dns.rrset.from_text("example.test.", 600, "IN", "SOA", "ns1. h. 1 2 3 4 60"))
    assert upstreamwire.answer_from_response(upstream).lifetime == 60
    upstream.authority[0].ttl = 30
    assert upstreamwire.answer_from_response(upstream).lifetime == 30
    upstream.authority.clear()  # no SOA: RFC 2308 section 5 says do not cache
    assert upstreamwire.answer_from_response(upstream).lifetime == 0


def test_servfail_is_never_cacheable():
    upstream = dns.message.make_response(dns.message.make_query("x.example.test", "A"))
    upstream.set_rcode(dns.rcode.SERVFAIL)
    assert upstreamwire.answer_from_response(upstream).lifetime == 0


def test_reply_matching_needs_id_qr_and_question():
    query = b"\xab\xcd" + upstreamwire.upstream_query(dnspython_key(dns.message.make_query("www.example.test", "A")))[2:]
    good = dns.message.make_response(dns.message.from_wire(query))
    good_wire = good.to_wire()
    assert upstreamwire.reply_header_matches(good_wire, query)
    assert upstreamwire.reply_header_matches(good_wire.replace(b"www", b"WWW"), query)  # case is not identity
    assert not upstreamwire.reply_header_matches(b"\xab\xce" + good_wire[2:], query)  # wrong ID
    assert not upstreamwire.reply_header_matches(query, query)  # QR clear: a query, not a reply
    other = dns.message.make_response(dns.message.make_query("www.example.test", "AAAA"))
    other.id = 0xABCD
    assert not upstreamwire.reply_header_matches(other.to_wire(), query)  # wrong question
