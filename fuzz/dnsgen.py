"""Structured DNS messages for a hypothesis differential against dnspython (the other half of the fuzzing harness).

Byte-level fuzzing (atheris) finds what hand-written readers get wrong about
framing; it rarely builds a well-formed SRV, NAPTR, RRSIG or HTTPS record
from nothing.  These strategies draw whole messages as plain data (names
sharing suffixes with the question so that dnspython compresses them, many
record types, TTLs around the RFC 2181 and MAX_TTL edges, EDNS options and
extended RCODEs), ``build`` renders them with dnspython, and an optional
mutation then corrupts the bytes in the ways the issue lists (a pointer to
itself or into the header, a TTL's top bit, a length off by one).  The
results go through the same target functions as the atheris inputs
(``fuzz/targets.py``).

Strategies draw plain data and dnspython objects are built outside them:
building messages inside a strategy trips hypothesis's check on the global
random module (dnspython draws query IDs from it).
"""

from __future__ import annotations

import struct

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from hypothesis import strategies as st

LABELS = ["www", "example", "test", "Mail", "a", "b-c", "x_y", "WWW", "sub", "a" * 63, "xn--kche-0ra"]

TTLS = st.one_of(st.sampled_from([0, 1, 300, 86400, 86401, 2**31 - 1, 2**31, 2**32 - 1]), st.integers(0, 2**32 - 1))

# Record text per type; "{n}" is replaced by a drawn name.
RDATA = {
    "A": ["198.18.0.1", "198.18.0.2", "0.0.0.0"],
    "AAAA": ["2001:db8::1", "::ffff:198.18.0.1"],
    "CNAME": ["{n}"], "DNAME": ["{n}"], "NS": ["{n}"], "PTR": ["{n}"],
    "MX": ["10 {n}", "0 ."],
    "SRV": ["0 5 443 {n}", "10 60 5060 ."],
    "TXT": ['"hello world"', '"a" "b"', '""', '"' + "x" * 255 + '"'],
    "SOA": ["{n} hostmaster.{n} 2024010101 3600 900 604800 300", "{n} {n} 1 2 3 4 0"],
    "NAPTR": ['100 10 "S" "SIP+D2U" "" {n}', '10 0 "U" "E2U+sip" "!^.*$!sip:x@example.test!" .'],
    "HTTPS": ['1 . alpn="h2,h3"', "0 {n}", '1 {n} port=8443 ipv4hint="198.18.0.1"'],
    "SVCB": ['1 {n} alpn="h2"'],
    "CAA": ['0 issue "ca.example.test"'],
    "DS": ["12345 13 2 " + "ab" * 32],
    "DNSKEY": ["257 3 13 " + "A" * 86 + "=="],
    "RRSIG": ["A 13 3 300 20300101000000 20200101000000 12345 {n} " + "A" * 86 + "=="],
    "NSEC": ["{n} A MX RRSIG NSEC"],
    "HINFO": ['"cpu" "os"'],
    "SSHFP": ["4 2 " + "cd" * 32],
    "TLSA": ["3 1 1 " + "ef" * 32],
    "TYPE65280": [r"\# 4 0a0b0c0d", r"\# 0"],
}
QTYPES = ["A", "AAAA", "MX", "TXT", "SRV", "HTTPS", "PTR", "SOA", "NS", "CNAME", "ANY", "DS", "TYPE65280"]


@st.composite
def _name(draw, question: str) -> str:
    """A name: often the question itself or a name under a suffix of it (so dnspython compresses it)."""
    labels = question.rstrip(".").split(".")
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return question
    prefix = draw(st.lists(st.sampled_from(LABELS), max_size=3))
    if kind == 1:
        suffix = labels[draw(st.integers(0, len(labels) - 1)):]
        return ".".join(prefix + suffix) + "."
    return ".".join(prefix + [draw(st.sampled_from(LABELS))]) + "."


@st.composite
def reply_recipes(draw) -> dict:
    """A reply as plain data: question, header bits, records per section, EDNS, and a mutation."""
    question = ".".join(draw(st.lists(st.sampled_from(LABELS[:9]), min_size=1, max_size=4))) + "."
    records = []
    for section in range(3):
        for _ in range(draw(st.integers(0, 3 if section else 4))):
            rdtype = draw(st.sampled_from(sorted(RDATA)))
            text = draw(st.sampled_from(RDATA[rdtype]))
            if "{n}" in text:
                text = text.replace("{n}", draw(_name(question)))
            records.append((section, draw(_name(question)), draw(TTLS), rdtype, text))
    return {
        "id": draw(st.integers(0, 0xFFFF)),
        "question": question,
        "qtype": draw(st.sampled_from(QTYPES)),
        "flags": draw(st.sampled_from([0x8180, 0x8580, 0x81A0, 0x8380, 0x8190, 0x8100])),
        "rcode": draw(st.sampled_from([0, 0, 0, 3, 3, 2, 5, 1, 16, 23])),
        "records": records,
        "edns": draw(st.sampled_from([-1, 0, 0, 1])),
        "do": draw(st.booleans()),
        "options": draw(st.lists(st.tuples(st.sampled_from([3, 8, 10, 12, 15, 65001]),
                                           st.binary(max_size=24)), max_size=2)),
        "mutation": draw(st.one_of(st.none(), st.tuples(st.sampled_from(["byte", "pointer", "self", "header", "ttl",
                                                                         "rdlength", "cut", "count"]),
                                                        st.integers(0, 2**16), st.integers(0, 255)))),
    }


def build_reply(recipe: dict) -> bytes:
    """The recipe rendered by dnspython, then mutated (empty when dnspython will not render it)."""
    try:
        return _build_reply(recipe)
    except dns.exception.DNSException:
        return b""


def _build_reply(recipe: dict) -> bytes:
    msg = dns.message.Message(id=recipe["id"])
    msg.flags = recipe["flags"] & 0xFFF0
    msg.question.append(dns.rrset.RRset(dns.name.from_text(recipe["question"]), dns.rdataclass.IN,
                                        dns.rdatatype.from_text(recipe["qtype"])))
    for section, name, ttl, rdtype, text in recipe["records"]:
        try:
            rrset = dns.rrset.from_text(name, ttl, "IN", rdtype, text)
        except Exception:  # noqa: BLE001 - a drawn combination dnspython will not build: leave it out
            continue
        (msg.answer, msg.authority, msg.additional)[section].append(rrset)
    if recipe["edns"] >= 0:
        options = [dns.edns.GenericOption(code, data) for code, data in recipe["options"]]
        msg.use_edns(recipe["edns"], dns.flags.DO if recipe["do"] else 0, 1232, options=options)
    msg.set_rcode(recipe["rcode"] if recipe["edns"] >= 0 else recipe["rcode"] & 0x0F)
    try:
        wire = bytearray(msg.to_wire())
    except Exception:  # noqa: BLE001 - too big, or an extended RCODE without EDNS
        return b""
    return bytes(mutate(wire, recipe["mutation"]))


def _record_starts(wire: bytes) -> list[int]:
    """Offsets of the TTL field of every record in a well-formed message (for targeted mutations)."""
    try:
        _, _, qd, an, ns, ar = struct.unpack_from(">HHHHHH", wire)
        pos = 12
        for _ in range(qd):
            pos = _skip(wire, pos) + 4
        ttls = []
        for _ in range(an + ns + ar):
            pos = _skip(wire, pos)
            ttls.append(pos + 4)
            pos += 10 + struct.unpack_from(">H", wire, pos + 8)[0]
        return ttls
    except (struct.error, IndexError):
        return []


def _skip(wire: bytes, pos: int) -> int:
    while wire[pos]:
        if wire[pos] >= 0xC0:
            return pos + 2
        pos += wire[pos] + 1
    return pos + 1


def mutate(wire: bytearray, mutation) -> bytearray:
    if mutation is None or len(wire) < 13:
        return wire
    kind, where, value = mutation
    ttls = _record_starts(bytes(wire))
    if kind == "byte":
        wire[where % len(wire)] = value
    elif kind == "cut":
        del wire[12 + where % (len(wire) - 12):]
    elif kind == "count":
        wire[4 + where % 8] = value & 0x07
    elif ttls:
        ttl = ttls[where % len(ttls)]
        rdata = ttl + 6
        if kind == "ttl":
            wire[ttl] |= 0x80
        elif kind == "rdlength":
            struct.pack_into(">H", wire, ttl + 4, (struct.unpack_from(">H", wire, ttl + 4)[0] + value % 3 - 1) & 0xFFFF)
        elif rdata + 2 <= len(wire):  # a pointer at the start of the record data
            target = {"pointer": value * 7 % len(wire), "self": rdata, "header": value % 12}[kind]
            wire[rdata:rdata + 2] = struct.pack(">H", 0xC000 | target)
    return wire


@st.composite
def query_recipes(draw) -> dict:
    return {
        "id": draw(st.integers(0, 0xFFFF)),
        "name": ".".join(draw(st.lists(st.sampled_from(LABELS), min_size=0, max_size=4))) + ".",
        "qtype": draw(st.sampled_from(QTYPES + ["OPT", "TSIG", "AXFR", "IXFR", "MAILA", "TKEY", "TYPE0"])),
        "qclass": draw(st.sampled_from(["IN", "IN", "CH", "HS", "ANY", "NONE", "CLASS42"])),
        "flags": draw(st.sampled_from([0x0100, 0x0000, 0x0110, 0x0120, 0x2100, 0x0900, 0x8100, 0x0300])),
        "edns": draw(st.sampled_from([-1, 0, 0, 1, 255])),
        "do": draw(st.booleans()),
        "payload": draw(st.sampled_from([0, 511, 512, 1232, 4096, 65535])),
        "options": draw(st.lists(st.tuples(st.sampled_from([3, 8, 10, 10, 12, 15, 65001]),
                                           st.binary(max_size=41)), max_size=3)),
        "extra": draw(st.sampled_from([None, "answer", "authority", "additional", "question"])),
        "mutation": draw(st.one_of(st.none(), st.tuples(st.sampled_from(["byte", "cut", "count", "pointer"]),
                                                        st.integers(0, 2**16), st.integers(0, 255)))),
    }


def build_query(recipe: dict) -> bytes:
    """The recipe rendered by dnspython, then mutated (empty when dnspython will not render it)."""
    try:
        return _build_query(recipe)
    except dns.exception.DNSException:  # a drawn name over 255 octets and the like
        return b""


def _build_query(recipe: dict) -> bytes:
    msg = dns.message.Message(id=recipe["id"])
    msg.flags = recipe["flags"]
    name = dns.name.from_text(recipe["name"])
    msg.question.append(dns.rrset.RRset(name, dns.rdataclass.from_text(recipe["qclass"]),
                                        dns.rdatatype.from_text(recipe["qtype"])))
    extra = recipe["extra"]
    if extra == "question":
        msg.question.append(dns.rrset.RRset(name, dns.rdataclass.IN, dns.rdatatype.AAAA))
    elif extra:
        getattr(msg, extra).append(dns.rrset.from_text(name, 60, "IN", "A", "198.18.0.1"))
    if recipe["edns"] >= 0:
        options = [dns.edns.GenericOption(code, data) for code, data in recipe["options"]]
        msg.use_edns(recipe["edns"], dns.flags.DO if recipe["do"] else 0, recipe["payload"], options=options)
    try:
        wire = bytearray(msg.to_wire())
    except Exception:  # noqa: BLE001
        return b""
    return bytes(mutate(wire, recipe["mutation"]))
