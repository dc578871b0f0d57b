"""Shared by the wire tests (test_clientwire, test_upstreamwire): generated queries and upstream replies, and
the same reply built with dnspython to compare against."""

import struct

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from hypothesis import strategies as st

from bootres.core import dnswire

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
            ttl = min(rrset.ttl, dnswire.MAX_TTL)
            if negative and rrset.rdtype == dns.rdatatype.SOA:
                ttl = min(rrset.ttl, rrset[0].minimum, dnswire.MAX_NEGATIVE_TTL)
            copy = rrset.copy()
            copy.ttl = max(ttl - age, 0)
            dst.append(copy)
    if query.edns >= 0:
        reply.use_edns(0, query.ednsflags & dns.flags.DO, dnswire.PAYLOAD)
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
