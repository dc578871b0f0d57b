"""clientwire: the byte-level hot path must say exactly what dnspython would.

The property tests are the proof: for generated queries and upstream
replies, ``peek_query`` finds the same key as dnspython's parse, and
``render`` of a cached ``Answer`` equals a reply built with dnspython from
the upstream reply (TTLs lowered by the age, the client's ID, case, RD/CD
bits and EDNS).  Then the parse ladder, case by case.
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
import dns.rrset
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bootres.core import clientwire, dnswire, upstreamwire
from wire_helpers import build_upstream, client_queries, comparable, dnspython_key, make_query, names, reference_reply, upstream_recipes


# --- properties


@settings(max_examples=400, deadline=None)
@given(client_queries())
def test_peek_query_reads_the_key_dnspython_reads(query):
    wire, msg = query
    peek = clientwire.peek_query(wire)
    assert peek is not None
    key, end, payload, do = peek
    assert key == dnspython_key(msg)
    assert wire[12:end] == msg.question[0].name.to_wire() + wire[end - 4:end]
    assert payload == (max(512, msg.payload) if msg.edns >= 0 else 0)
    parsed = clientwire.parse_query(wire)
    assert parsed.key == key and parsed.payload == payload and parsed.do == do


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_fast_render_equals_the_dnspython_reply(data):
    wire, query = data.draw(client_queries())
    upstream = build_upstream(query.question[0].name.canonicalize(), data.draw(upstream_recipes))
    age = data.draw(st.integers(0, 300000))
    trust_ad = data.draw(st.booleans())
    answer = upstreamwire.answer_from_response(upstream)
    key, end, payload, do = clientwire.peek_query(wire)
    fast = clientwire.render(answer, wire, wire[12:end], payload, do, answer.body_at(age), tcp=True, trust_ad=trust_ad)

    got = dns.message.from_wire(fast)
    want = reference_reply(query, upstream, age, trust_ad)
    assert comparable(got) == comparable(want)
    # The client's spelling of its question comes back exactly (0x20-style clients check it).
    assert fast[12:end] == wire[12:end]


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_an_extended_error_is_the_option_dnspython_reads_and_only_for_edns_clients(data):
    wire, query = data.draw(client_queries())
    upstream = build_upstream(query.question[0].name.canonicalize(), data.draw(upstream_recipes))
    code = data.draw(st.sampled_from([0, 3, 13, 18, 19, 21, 22, 23]))
    text = data.draw(st.text(max_size=80))
    option = dnswire.ede_option(code, text)
    answer = upstreamwire.answer_from_response(upstream)
    key, end, payload, do = clientwire.peek_query(wire)
    got = dns.message.from_wire(clientwire.render(answer, wire, wire[12:end], payload, do, answer.body_at(0), True,
                                                  ede=option))
    assert comparable(got) == comparable(reference_reply(query, upstream, 0))  # the rest is unchanged
    failed = dns.message.from_wire(clientwire.error_reply(wire, wire[12:end], dns.rcode.SERVFAIL, payload, option))
    for reply in (got, failed):
        edes = [(o.code, o.text or "") for o in reply.options if isinstance(o, dns.edns.EDEOption)]
        cut = text.replace("\0", "").encode()[:dnswire.EDE_TEXT_MAX].decode("utf-8", "ignore")
        assert edes == ([(code, cut)] if query.edns >= 0 else [])


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_slow_parse_of_the_same_query_renders_the_same_bytes(data):
    """A query that misses the byte path (an unknown EDNS option) still gets the same reply."""
    name = data.draw(names)
    msg = make_query(name, "A", data.draw(st.integers(0, 65535)), 0, options=[dns.edns.GenericOption(65001, b"x")])
    wire = msg.to_wire()
    assert clientwire.peek_query(wire) is None
    parsed = clientwire.parse_query(wire)
    plain = make_query(name, "A", msg.id, 0)
    plain_wire = plain.to_wire()
    upstream = build_upstream(name.canonicalize(), data.draw(upstream_recipes))
    answer = upstreamwire.answer_from_response(upstream)
    key, end, payload, do = clientwire.peek_query(plain_wire)
    assert parsed.key == key
    slow = clientwire.render(answer, parsed.head, parsed.question, parsed.payload, parsed.do, answer.body_at(3), False)
    fast = clientwire.render(answer, plain_wire, plain_wire[12:end], payload, do, answer.body_at(3), False)
    assert slow == fast


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
    assert clientwire.parse_query(wire) is None


def test_a_response_is_never_answered():
    assert clientwire.parse_query(header(flags=0x8180) + QUESTION) is None


@pytest.mark.parametrize("opcode", [1, 2, 4, 5, 15])
def test_other_opcodes_get_notimp(opcode):
    reply = clientwire.parse_query(header(flags=opcode << 11) + QUESTION)
    assert rcode_of(reply) == dns.rcode.NOTIMP
    assert reply[:2] == b"\x12\x34"


@pytest.mark.parametrize("wire", [header(qd=0), header(qd=1), header(qd=0, ar=1)],
                         ids=["no question", "question missing", "OPT missing"])
def test_a_bare_header_gets_formerr_without_dnspython(wire):
    """The daemon's readiness probe: answered by bytes, the same as the dnspython ladder answers it."""
    reply = dns.message.from_wire(clientwire.parse_query(wire))
    assert reply.id == 0x1234 and reply.rcode() == dns.rcode.FORMERR
    assert not reply.question and reply.edns < 0
    code = f"from bootres.core import clientwire; import sys; clientwire.parse_query({wire!r}); print('dns' in sys.modules)"
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
    reply = clientwire.parse_query(wire)
    assert isinstance(reply, bytes)
    assert rcode_of(reply) == rcode


def test_edns_version_1_gets_badvers():
    msg = make_query("www.example.test", "A", edns=1)
    assert msg.to_wire()[-5] == 1  # the version byte of the OPT record
    reply = dns.message.from_wire(clientwire.parse_query(msg.to_wire()))
    assert reply.rcode() == dns.rcode.BADVERS
    assert reply.edns == 0


def test_oversized_answer_to_a_plain_udp_client_is_truncated():
    name = dns.name.from_text("big.example.test.")
    upstream = dns.message.make_response(dns.message.make_query(name, "TXT"))
    upstream.answer.append(dns.rrset.from_text_list(name, 60, "IN", "TXT", [f'"{"x" * 200}{i}"' for i in range(5)]))
    answer = upstreamwire.answer_from_response(upstream)
    wire = dns.message.make_query(name, "TXT").to_wire()
    key, end, payload, do = clientwire.peek_query(wire)
    udp = dns.message.from_wire(clientwire.render(answer, wire, wire[12:end], payload, do, answer.body, False))
    tcp = dns.message.from_wire(clientwire.render(answer, wire, wire[12:end], payload, do, answer.body, True))
    assert udp.flags & dns.flags.TC and not udp.answer
    assert not tcp.flags & dns.flags.TC and len(tcp.answer[0]) == 5
