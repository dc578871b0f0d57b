"""dnsmsg: the byte-level hot path must say exactly what dnspython would.

The property tests are the proof the issue asks for: for generated queries
and upstream replies, ``peek_query`` finds the same key as dnspython's parse,
and ``render`` of a cached ``Answer`` equals a reply built with dnspython
from the upstream reply (TTLs lowered by the age, the client's ID, case,
RD/CD bits and EDNS).
"""

import struct
import subprocess
import sys
from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bootres.core import dnsmsg

# --- generators

label = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", min_size=1, max_size=20)
names = st.lists(label, min_size=1, max_size=4).map(lambda labels: dns.name.from_text(".".join(labels) + "."))
rdtypes = st.sampled_from(["A", "AAAA", "TXT", "MX", "CNAME", "HTTPS", "SRV"])


def make_query(name, rdtype, qid=0, edns=-1, do=False, payload=1232, options=None):
    """dnspython's make_query without its random ID (hypothesis wants every draw reproducible)."""
    msg = dns.message.Message(id=qid)
    msg.flags = dns.flags.RD
    name = dns.name.from_text(name) if isinstance(name, str) else name
    msg.question.append(dns.rrset.RRset(name, dns.rdataclass.IN, dns.rdatatype.from_text(rdtype)))
    if edns >= 0:
        msg.use_edns(edns, dns.flags.DO if do else 0, payload, options=options)
    return msg


def random_case(name: dns.name.Name, flips: list[bool]) -> dns.name.Name:
    text = name.to_text()
    text = "".join(c.swapcase() if flip else c for c, flip in zip(text, flips + [False] * len(text)))
    return dns.name.from_text(text)


@st.composite
def client_queries(draw):
    """(wire, dnspython message) for a query a real client could send."""
    name = draw(names)
    name = random_case(name, draw(st.lists(st.booleans(), max_size=40)))
    rdtype = draw(st.sampled_from(["A", "AAAA", "TXT", "MX", "PTR", "HTTPS", "ANY", "SOA"]))
    edns = draw(st.sampled_from([-1, 0]))
    options = []
    if edns == 0 and draw(st.booleans()):
        options.append(dns.edns.GenericOption(10, draw(st.binary(min_size=8, max_size=8))))  # client cookie
    msg = make_query(name, rdtype, draw(st.integers(0, 65535)), edns, draw(st.booleans()) and edns == 0,
                     draw(st.integers(0, 65535)), options or None)
    msg.flags = draw(st.sampled_from([0, dns.flags.RD, dns.flags.RD | dns.flags.CD, dns.flags.RD | dns.flags.AD]))
    return msg.to_wire(), msg


def dnspython_key(msg: dns.message.Message) -> bytes:
    q = msg.question[0]
    do = bool(msg.ednsflags & dns.flags.DO) if msg.edns >= 0 else False
    cd = bool(msg.flags & dns.flags.CD)
    return q.name.canonicalize().to_wire() + struct.pack(">HH", q.rdtype, q.rdclass) + bytes([do | cd << 1])


RDATA = {
    "A": ["198.18.0.1", "198.18.0.2"],
    "AAAA": ["2001:db8::1"],
    "TXT": ['"hello world"', '"x"'],
    "MX": ["10 mail.example.test.", "20 mx2.example.test."],
    "CNAME": ["target.example.test."],
    "HTTPS": ["1 . alpn=h2"],
    "SRV": ["0 5 443 svc.example.test."],
}


# An upstream reply is drawn as plain data and built in the test body: building
# dnspython messages inside a strategy trips hypothesis's random-module check.
upstream_recipes = st.fixed_dictionaries({
    "kind": st.sampled_from(["positive", "nxdomain", "nodata"]),
    "rdtype": rdtypes,
    "ttls": st.lists(st.integers(0, 200000), min_size=3, max_size=3),
    "authority": st.booleans(),
    "additional": st.booleans(),
    "minimum": st.integers(0, 100000),
    "ad": st.booleans(),
})


def build_upstream(name: dns.name.Name, recipe: dict) -> dns.message.Message:
    """An upstream's reply to ``name``: positive with a few RRsets, or negative with an SOA."""
    rdtype, (ttl, ttl_ns, ttl_glue) = recipe["rdtype"], recipe["ttls"]
    reply = dns.message.make_response(make_query(name, rdtype))
    if recipe["kind"] == "positive":
        reply.answer.append(dns.rrset.from_text_list(name, ttl, "IN", rdtype, RDATA[rdtype]))
        if recipe["authority"]:
            reply.authority.append(dns.rrset.from_text(name.parent(), ttl_ns, "IN", "NS", "ns1.example.test."))
        if recipe["additional"]:
            reply.additional.append(dns.rrset.from_text("ns1.example.test.", ttl_glue, "IN", "A", "198.18.0.53"))
    else:
        if recipe["kind"] == "nxdomain":
            reply.set_rcode(dns.rcode.NXDOMAIN)
        soa = f"ns1.example.test. host.example.test. 1 3600 600 86400 {recipe['minimum']}"
        reply.authority.append(dns.rrset.from_text(name.parent(), ttl, "IN", "SOA", soa))
    if recipe["ad"]:
        reply.flags |= dns.flags.AD
    return dns.message.from_wire(reply.to_wire())


def reference_reply(query: dns.message.Message, upstream: dns.message.Message, age: int,
                    trust_ad: bool = False) -> dns.message.Message:
    """What the slow path means, said with dnspython: the upstream's records, aged, for this client.

    AD only when trusted, and then as RFC 6840 section 5.7 says (the client set AD or DO).
    """
    reply = dns.message.make_response(query)
    reply.flags = dns.flags.QR | dns.flags.RA | (query.flags & (dns.flags.RD | dns.flags.CD))
    if trust_ad and upstream.flags & dns.flags.AD and (query.flags & dns.flags.AD or query.ednsflags & dns.flags.DO):
        reply.flags |= dns.flags.AD
    reply.set_rcode(upstream.rcode())
    negative = upstream.rcode() == dns.rcode.NXDOMAIN or not upstream.answer
    for src, dst in ((upstream.answer, reply.answer), (upstream.authority, reply.authority),
                     (upstream.additional, reply.additional)):
        for rrset in src:
            ttl = min(rrset.ttl, dnsmsg.MAX_TTL)
            if negative and rrset.rdtype == dns.rdatatype.SOA:
                ttl = min(rrset.ttl, rrset[0].minimum, dnsmsg.MAX_NEGATIVE_TTL)
            copy = rrset.copy()
            copy.ttl = max(ttl - age, 0)
            dst.append(copy)
    if query.edns >= 0:
        reply.use_edns(0, query.ednsflags & dns.flags.DO, dnsmsg.PAYLOAD)
    return reply


def comparable(msg: dns.message.Message):
    sections = [
        # Names compare case-insensitively; the byte path spells them the client's way.
        sorted((r.name.to_text().lower(), r.rdtype, r.ttl, sorted(d.to_text() for d in r)) for r in section)
        for section in (msg.answer, msg.authority, msg.additional)
    ]
    q = msg.question[0]
    return (msg.id, msg.flags, msg.rcode(), q.name.to_text(), q.rdtype, q.rdclass, sections,
            msg.edns, msg.ednsflags, msg.payload if msg.edns >= 0 else None)


# --- properties


@settings(max_examples=400, deadline=None)
@given(client_queries())
def test_peek_query_reads_the_key_dnspython_reads(query):
    wire, msg = query
    peek = dnsmsg.peek_query(wire)
    assert peek is not None
    key, end, payload, do = peek
    assert key == dnspython_key(msg)
    assert wire[12:end] == msg.question[0].name.to_wire() + wire[end - 4:end]
    assert payload == (max(512, msg.payload) if msg.edns >= 0 else 0)
    parsed = dnsmsg.parse_query(wire)
    assert parsed.key == key and parsed.payload == payload and parsed.do == do


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_fast_render_equals_the_dnspython_reply(data):
    wire, query = data.draw(client_queries())
    upstream = build_upstream(query.question[0].name.canonicalize(), data.draw(upstream_recipes))
    age = data.draw(st.integers(0, 300000))
    trust_ad = data.draw(st.booleans())
    answer = dnsmsg.answer_from_response(upstream)
    key, end, payload, do = dnsmsg.peek_query(wire)
    fast = dnsmsg.render(answer, wire, wire[12:end], payload, do, answer.body_at(age), tcp=True, trust_ad=trust_ad)

    got = dns.message.from_wire(fast)
    want = reference_reply(query, upstream, age, trust_ad)
    assert comparable(got) == comparable(want)
    # The client's spelling of its question comes back exactly (0x20-style clients check it).
    assert fast[12:end] == wire[12:end]


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_slow_parse_of_the_same_query_renders_the_same_bytes(data):
    """A query that misses the byte path (an unknown EDNS option) still gets the same reply."""
    name = data.draw(names)
    msg = make_query(name, "A", data.draw(st.integers(0, 65535)), 0, options=[dns.edns.GenericOption(65001, b"x")])
    wire = msg.to_wire()
    assert dnsmsg.peek_query(wire) is None
    parsed = dnsmsg.parse_query(wire)
    plain = make_query(name, "A", msg.id, 0)
    plain_wire = plain.to_wire()
    upstream = build_upstream(name.canonicalize(), data.draw(upstream_recipes))
    answer = dnsmsg.answer_from_response(upstream)
    key, end, payload, do = dnsmsg.peek_query(plain_wire)
    assert parsed.key == key
    slow = dnsmsg.render(answer, parsed.head, parsed.question, parsed.payload, parsed.do, answer.body_at(3), False)
    fast = dnsmsg.render(answer, plain_wire, plain_wire[12:end], payload, do, answer.body_at(3), False)
    assert slow == fast


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_reading_a_reply_from_bytes_equals_reading_it_with_dnspython(data):
    """The miss path's hand-written reader against dnspython's parse, its lifetime against RFC 2308's rule."""
    wire, query = data.draw(client_queries())
    upstream = build_upstream(query.question[0].name.canonicalize(), data.draw(upstream_recipes))
    if data.draw(st.booleans()):
        upstream.use_edns(0, dns.flags.DO if data.draw(st.booleans()) else 0, 1232)
    upstream_wire = upstream.to_wire()
    fast = dnsmsg.read_reply(upstream_wire)
    slow = dnsmsg.answer_from_response(dns.message.from_wire(upstream_wire))  # the same, uncompressed
    assert fast.rcode == upstream.rcode() and fast.tc is False
    assert fast.answer.lifetime == slow.lifetime == expected_lifetime(upstream)
    age = data.draw(st.integers(0, 100000))
    key, end, payload, do = dnsmsg.peek_query(wire)
    rendered = [
        comparable(dns.message.from_wire(dnsmsg.render(a, wire, wire[12:end], payload, do, a.body_at(age), True,
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
                return min(rrset.ttl, rrset[0].minimum, dnsmsg.MAX_NEGATIVE_TTL)
        return 0
    if rcode == dns.rcode.NOERROR:
        return min(min(rrset.ttl for rrset in upstream.answer), dnsmsg.MAX_TTL)
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
    assert dnsmsg.read_reply(wire) is None


def test_an_opt_record_that_is_not_last_is_read_and_left_out():
    opt = rr(b"\x00", 41, 0, b"")[:3] + struct.pack(">HIH", 1232, 0, 0)
    extra = rr(b"\x02ns\xc0\x10", 1, 60, b"\xc6\x12\x00\x35")
    head = struct.pack(">HHHHHH", 7, 0x8180, 1, 1, 0, 2) + QNAME + b"\x00\x01\x00\x01"
    wire = head + rr(b"\xc0\x0c", 1, 60, b"\xc6\x12\x00\x01") + opt + extra
    reply = dnsmsg.read_reply(wire)
    assert reply.answer.an == 1 and reply.answer.ar == 1 and reply.answer.lifetime == 60
    query = dns.message.make_query("www.example.test", "A").to_wire()
    got = dns.message.from_wire(dnsmsg.render(reply.answer, query, query[12:-4] + query[-4:], 0, False,
                                              reply.answer.body_at(0), False))
    assert [r.to_text() for r in got.additional] == ["ns.example.test. 60 IN A 198.18.0.53"]


# --- the parse ladder, case by case


def header(flags=0x0100, qd=1, an=0, ns=0, ar=0, qid=0x1234):
    return struct.pack(">HHHHHH", qid, flags, qd, an, ns, ar)


QUESTION = b"\x03www\x07example\x04test\x00\x00\x01\x00\x01"


def rcode_of(reply: bytes) -> int:
    # From the bytes: dnspython 2.3 cannot even parse a reply with an unassigned opcode.
    assert reply[2] & 0x80, "not a response"
    return reply[3] & 0x0F


@pytest.mark.parametrize("wire", [b"", b"\x12", header()[:11]], ids=["empty", "one byte", "short header"])
def test_no_whole_header_is_dropped(wire):
    assert dnsmsg.parse_query(wire) is None


def test_a_response_is_never_answered():
    assert dnsmsg.parse_query(header(flags=0x8180) + QUESTION) is None


@pytest.mark.parametrize("opcode", [1, 2, 4, 5, 15])
def test_other_opcodes_get_notimp(opcode):
    reply = dnsmsg.parse_query(header(flags=opcode << 11) + QUESTION)
    assert rcode_of(reply) == dns.rcode.NOTIMP
    assert reply[:2] == b"\x12\x34"


@pytest.mark.parametrize("wire", [header(qd=0), header(qd=1), header(qd=0, ar=1)],
                         ids=["no question", "question missing", "OPT missing"])
def test_a_bare_header_gets_formerr_without_dnspython(wire):
    """The daemon's readiness probe: answered by bytes, the same as the dnspython ladder answers it."""
    reply = dns.message.from_wire(dnsmsg.parse_query(wire))
    assert reply.id == 0x1234 and reply.rcode() == dns.rcode.FORMERR
    assert not reply.question and reply.edns < 0
    code = f"from bootres.core import dnsmsg; import sys; dnsmsg.parse_query({wire!r}); print('dns' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).parents[2]).stdout.strip() == "False"


@pytest.mark.parametrize("wire, rcode", [
    (header(qd=2) + QUESTION + QUESTION, dns.rcode.FORMERR),
    (header(qd=0), dns.rcode.FORMERR),
    (header() + b"\x40" + b"a" * 64 + b"\x00\x00\x01\x00\x01", dns.rcode.FORMERR),  # label > 63
    (header() + QUESTION[:-3], dns.rcode.FORMERR),  # question cut short
    (header() + QUESTION + b"junk", dns.rcode.FORMERR),  # trailing bytes
    (header() + b"\xc0\x0c\x00\x01\x00\x01", dns.rcode.FORMERR),  # pointer loop
    (header() + b"\x03www\x07example\x04test\x00\x00\xfc\x00\x01", dns.rcode.NOTIMP),  # AXFR
    (header() + b"\x03www\x07example\x04test\x00\x00\x29\x00\x01", dns.rcode.FORMERR),  # OPT as a question
], ids=["two questions", "no question", "long label", "cut short", "trailing junk", "pointer loop", "AXFR",
        "OPT question"])
def test_malformed_or_unsupported_queries_get_an_error(wire, rcode):
    reply = dnsmsg.parse_query(wire)
    assert isinstance(reply, bytes)
    assert rcode_of(reply) == rcode


def test_edns_version_1_gets_badvers():
    msg = make_query("www.example.test", "A", edns=1)
    assert msg.to_wire()[-5] == 1  # the version byte of the OPT record
    reply = dns.message.from_wire(dnsmsg.parse_query(msg.to_wire()))
    assert reply.rcode() == dns.rcode.BADVERS
    assert reply.edns == 0


def test_oversized_answer_to_a_plain_udp_client_is_truncated():
    name = dns.name.from_text("big.example.test.")
    upstream = dns.message.make_response(dns.message.make_query(name, "TXT"))
    upstream.answer.append(dns.rrset.from_text_list(name, 60, "IN", "TXT", [f'"{"x" * 200}{i}"' for i in range(5)]))
    answer = dnsmsg.answer_from_response(upstream)
    wire = dns.message.make_query(name, "TXT").to_wire()
    key, end, payload, do = dnsmsg.peek_query(wire)
    udp = dns.message.from_wire(dnsmsg.render(answer, wire, wire[12:end], payload, do, answer.body, False))
    tcp = dns.message.from_wire(dnsmsg.render(answer, wire, wire[12:end], payload, do, answer.body, True))
    assert udp.flags & dns.flags.TC and not udp.answer
    assert not tcp.flags & dns.flags.TC and len(tcp.answer[0]) == 5


def test_negative_answer_lifetime_is_the_soa_minimum_capped_by_its_ttl():
    name = dns.name.from_text("no.example.test.")
    upstream = dns.message.make_response(dns.message.make_query(name, "A"))
    upstream.set_rcode(dns.rcode.NXDOMAIN)
    upstream.authority.append(dns.rrset.from_text("example.test.", 600, "IN", "SOA", "ns1. h. 1 2 3 4 60"))
    assert dnsmsg.answer_from_response(upstream).lifetime == 60
    upstream.authority[0].ttl = 30
    assert dnsmsg.answer_from_response(upstream).lifetime == 30
    upstream.authority.clear()  # no SOA: RFC 2308 section 5 says do not cache
    assert dnsmsg.answer_from_response(upstream).lifetime == 0


def test_servfail_is_never_cacheable():
    upstream = dns.message.make_response(dns.message.make_query("x.example.test", "A"))
    upstream.set_rcode(dns.rcode.SERVFAIL)
    assert dnsmsg.answer_from_response(upstream).lifetime == 0


def test_reply_matching_needs_id_qr_and_question():
    query = b"\xab\xcd" + dnsmsg.upstream_query(dnspython_key(dns.message.make_query("www.example.test", "A")))[2:]
    good = dns.message.make_response(dns.message.from_wire(query))
    good_wire = good.to_wire()
    assert dnsmsg.reply_header_matches(good_wire, query)
    assert dnsmsg.reply_header_matches(good_wire.replace(b"www", b"WWW"), query)  # case is not identity
    assert not dnsmsg.reply_header_matches(b"\xab\xce" + good_wire[2:], query)  # wrong ID
    assert not dnsmsg.reply_header_matches(query, query)  # QR clear: a query, not a reply
    other = dns.message.make_response(dns.message.make_query("www.example.test", "AAAA"))
    other.id = 0xABCD
    assert not dnsmsg.reply_header_matches(other.to_wire(), query)  # wrong question
