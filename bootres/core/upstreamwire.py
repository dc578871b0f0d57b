"""The upstreams' side of DNS messages: the queries bootres sends, and the checks on what comes back.

An upstream reply is checked whole and turned once, by ``read_reply``, into
an ``Answer`` (``dnswire``): the records after the question, decompressed
but for pointers into the question, plus where each TTL sits.
``tests/core/test_upstreamwire.py`` proves this equal to reading the reply
with dnspython; ``tests/core/test_reply_validation.py`` that nothing
dnspython refuses gets in.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from bootres.core.dnswire import (
    AD, CD, HEADER, IN, MAX_NEGATIVE_TTL, MAX_TTL, NOERROR, NXDOMAIN, OPT, OPT_DO, OPT_PLAIN, PAYLOAD, QR, RD, SOA,
    TC, TSIG, TTL, Answer,
)

# dnspython is imported where it is used, not here: importing it costs more
# than a hundred milliseconds of startup on a small machine, and neither a
# cache hit, nor a plain miss, nor a hosts-file answer needs it.
if TYPE_CHECKING:
    import dns.message


def question_of(key: bytes) -> bytes:
    """The lower-case question (name, type, class) a cache key stands for."""
    return key[:-1]


def upstream_query(key: bytes) -> bytes:
    """The query we send upstream for ``key``, with ID 0 for the race to fill in.

    RD asks for recursion; AD asks the upstream to tell us whether it
    validated (RFC 6840 section 5.7); our own OPT carries the client's DO bit.
    The client's CD bit goes along (RFC 4035 section 3.2.2, RFC 6840 section
    5.9): it asks a validating upstream for data even where validation
    fails, and only the client can judge that data.  The client's OPT itself
    is hop-by-hop and never forwarded (RFC 6891 section 6.1.1), so neither
    are its options.
    """
    flags = key[-1]
    opt = OPT_DO if flags & 1 else OPT_PLAIN
    return b"\x00\x00" + HEADER.pack(RD | AD | (CD if flags & 2 else 0), 1, 0, 0, 1) + question_of(key) + opt


def reply_header_matches(data: bytes, query: bytes) -> bool:
    """RFC 5452 section 9.1 on bytes: same ID, a response, and the same question.

    An error reply may come without the question (nsd's REFUSED to a class
    it does not serve, a FORMERR): it matches on the ID alone (the race
    checked the source address and port) when its header says error, or
    when it has records after it that may carry an extended RCODE, which
    ``read_reply`` then requires.  Its only power is to say this upstream
    failed, as a SERVFAIL with the question could; waiting out the timeout
    for it would hold the client 3 s for nothing (unbound: milliseconds).
    """
    if len(data) < 12 or data[:2] != query[:2] or not data[2] & 0x80:
        return False
    if data[4:6] == b"\x00\x00":
        return (data[3] & 0x0F) not in (NOERROR, NXDOMAIN) or data[10:12] != b"\x00\x00"
    if data[4:6] != b"\x00\x01":
        return False
    question = query[12:-11]  # our queries always end with an 11-byte OPT
    name_end = len(question) - 4
    got = data[12:12 + len(question)]
    return got[:name_end].lower() == question[:name_end] and got[name_end:] == question[name_end:]


def answer_from_response(msg: dns.message.Message) -> Answer:
    """The ``Answer`` for a reply parsed by dnspython (tests, and replies built with it).

    The records are rendered without compression and read back by
    ``read_reply``, so the result is exactly what the byte path caches for
    the same reply; ValueError if ``read_reply`` would drop it.
    """
    import io

    import dns.flags

    records = io.BytesIO()
    counts = []
    for section in (msg.answer, msg.authority, msg.additional):
        counts.append(sum(rrset.to_wire(records, None, None, want_shuffle=False) for rrset in section))
    rcode = msg.rcode()
    opt = b"\x00" + struct.pack(">HHBBHH", OPT, PAYLOAD, rcode >> 4, 0, 0, 0) if rcode > 15 else b""
    question = b"".join(r.name.to_wire() + struct.pack(">HH", r.rdtype, r.rdclass) for r in msg.question)
    flags = QR | (msg.flags & dns.flags.AD) | (rcode & 0x0F)
    head = HEADER.pack(flags, len(msg.question), counts[0], counts[1], counts[2] + (1 if opt else 0))
    reply = read_reply(b"\x00\x00" + head + question + records.getvalue() + opt)
    if reply is None:
        raise ValueError("not a reply bootres would use")
    return reply.answer


class UpstreamReply:
    """What a matching upstream reply says: its RCODE, whether it was truncated, the answer."""

    __slots__ = ("rcode", "tc", "answer")

    def __init__(self, rcode: int, tc: bool, answer: Answer):
        self.rcode = rcode
        self.tc = tc
        self.answer = answer


def read_reply(data: bytes) -> UpstreamReply | None:
    """An upstream reply, checked whole and made into an ``Answer``; None when it must be dropped.

    Every cache miss pays for this, so it is written by hand (dnspython's
    ``from_wire`` costs ~0.25 ms per reply on a small machine) except for
    record types it does not know, whose data dnspython checks one record
    at a time.  Nothing it accepts fails the installed dnspython's
    ``from_wire`` (``tests/core/test_reply_validation.py``, byte flips and
    all), and its own rules are the strictest of dnspython 2.3 to the newest:

    * a response (QR) to a QUERY, with one question, or none if it is an error
      (SERVFAIL, REFUSED, ...: servers leave the question out of some);
    * names: see ``_read_name``;
    * every record whole inside the message, no byte after the last one (as
      ``from_wire`` by default: trailing bytes are not ours to forward);
    * record data as its type says (``_RDATA``; any other type: dnspython);
      compression only in the names of the types RFC 3597 section 4 lets a
      receiver decompress;
    * at most one OPT (RFC 6891 section 6.1.1), in the additional section,
      owned by the root, its options (if any) as dnspython reads them; no TSIG
      (we sign nothing, so a signed reply is not an answer to us);
    * TTLs with the top bit set are 0 (RFC 2181 section 8), the rest capped.

    The ``Answer`` holds the records decompressed (pointers only into the
    question, see ``Answer``), so a reply whose records then make a message
    over 65,535 bytes is dropped too.  Never raises.
    """
    try:
        flags, qd, an, ns, ar = HEADER.unpack_from(data, 2)
        if flags & 0xF800 != QR:  # a response, opcode QUERY
            return None
        end = len(data)
        suffixes = {}
        if qd == 1:
            qname, pos = _read_name(data, 12, end)
            pos += 4
            if pos > end:
                return None
            question_size = len(qname) + 4
            i = 0
            while qname[i]:  # every label of the question is a place a name in the body may point to
                suffixes[qname[i:].lower()] = (0xC00C + i).to_bytes(2, "big")
                i += qname[i] + 1
        elif qd == 0:
            pos, question_size = 12, 259  # the longest question a client's reply can carry
        else:
            return None
        parts = []
        size = 0
        offsets = []
        answer_ttl = soa_ttl = None
        opt_seen = False
        rcode = flags & 0x0F
        negative = rcode == NXDOMAIN or (rcode == NOERROR and an == 0)
        for index in range(an + ns + ar):
            owner, pos = _read_name(data, pos, end)
            rdtype, rdclass, sent_ttl, rdlength = _RR.unpack_from(data, pos)
            rdata = pos + 10
            pos = rdata + rdlength
            if pos > end:
                return None
            if rdtype == OPT:
                if index < an + ns or opt_seen or owner != b"\x00":
                    return None
                if rdlength and _rdata_by_dnspython(data, rdclass, OPT, rdata, pos) is None:
                    return None
                opt_seen = True
                rcode |= sent_ttl >> 24 << 4  # extended RCODE bits live in the OPT "TTL"
                continue
            if rdtype == TSIG:
                return None
            ttl = 0 if sent_ttl & 0x80000000 else min(sent_ttl, MAX_TTL)
            layout = _RDATA.get(rdtype)
            if layout is None or (rdclass != IN and rdtype in _IN_ONLY):
                out = _rdata_by_dnspython(data, rdclass, rdtype, rdata, pos)
                # Written back differently: it held a pointer where none may be (or dnspython
                # would change it), unless RFC 3597 lets a receiver decompress this type.
                if out is None or len(out) > 0xFFFF or (rdtype not in _MAY_DECOMPRESS and out != data[rdata:pos]):
                    return None
            else:
                out = _rdata_by_layout(data, rdata, pos, layout, suffixes)
                if rdtype == SOA and negative:
                    # RFC 2308 section 5: a negative answer lives min(SOA TTL, SOA MINIMUM).
                    minimum = TTL.unpack_from(data, pos - 4)[0]
                    ttl = min(ttl, 0 if minimum & 0x80000000 else minimum, MAX_NEGATIVE_TTL)
                    if soa_ttl is None and an <= index < an + ns:
                        soa_ttl = ttl
            if index < an:
                answer_ttl = ttl if answer_ttl is None else min(answer_ttl, ttl)
            owner = _into_question(owner, suffixes)
            offsets.append(size + len(owner) + 4)
            record = _RR.pack(rdtype, rdclass, ttl, len(out))
            parts += (owner, record, out)
            size += len(owner) + 10 + len(out)
        if pos != end or (not qd and rcode in (NOERROR, NXDOMAIN)):
            return None
    except (_Malformed, struct.error):
        return None
    if 12 + question_size + size + 11 > 65535:  # with our OPT, must still fit a TCP message
        return None
    lifetime = 0  # SERVFAIL and the rest, and extended RCODEs, are never cached
    if rcode == NOERROR and answer_ttl is not None:
        lifetime = answer_ttl
    elif (rcode == NXDOMAIN or (rcode == NOERROR and an == 0)) and soa_ttl is not None:
        lifetime = soa_ttl
    answer = Answer(rcode & 0x0F, bool(flags & AD), an, ns, ar - opt_seen, b"".join(parts), offsets, lifetime)
    return UpstreamReply(rcode, bool(flags & TC), answer)


class _Malformed(Exception):
    """Raised inside ``read_reply`` for a reply it drops."""


_RR = struct.Struct(">HHIH")  # type, class, TTL, RDLENGTH
_MAX_POINTERS = 16  # newer dnspython refuses a longer chain (dns.name.MAX_COMPRESSION_POINTER_CHAIN)


def _read_name(data: bytes, pos: int, end: int, pointers: bool = True) -> tuple[bytes, int]:
    """The name at ``pos`` without compression (case as sent), and the offset just past it.

    The rules are the strictest of the dnspython versions bootres runs with
    (2.3 to the newest), so a name read here reads in each: labels of at
    most 63 octets, at most 255 octets in all; a pointer only to before the
    previous one (so no loops) and at most ``_MAX_POINTERS`` of them, the
    labels it points at ending before those that pointed; nothing read at or
    past ``end`` (the record data's end, for names inside it).  ``pointers``
    False: no compression at all.
    """
    labels = []
    size = 1
    start = pos  # start of the labels being read: where the next pointer must point below
    after = 0
    hops = 0
    while True:
        if pos >= end:
            raise _Malformed("name runs out")
        length = data[pos]
        if not length:
            break
        if length < 64:
            size += length + 1
            following = pos + 1 + length
            if size > 255 or following > end:
                raise _Malformed("name too long or runs out")
            labels.append(data[pos:following])
            pos = following
        elif length >= 0xC0 and pointers:
            if pos + 2 > end:
                raise _Malformed("pointer runs out")
            target = (length & 0x3F) << 8 | data[pos + 1]
            if target >= start or hops == _MAX_POINTERS:
                raise _Malformed("pointer not backwards, or too many")
            if not hops:
                after = pos + 2
            hops += 1
            end = start
            pos = start = target
        else:
            raise _Malformed("reserved label type, or compression where the type forbids it")
    return b"".join(labels) + b"\x00", after or pos + 1


def _into_question(name: bytes, suffixes: dict[bytes, bytes]) -> bytes:
    """``name`` with its longest ending shared with the question (any case) as a pointer into it."""
    i = 0
    while name[i]:
        pointer = suffixes.get(name[i:].lower())
        if pointer is not None:
            return name[:i] + pointer
        i += name[i] + 1
    return name


# Record data bootres reads itself, as dnspython does: fixed octets (int),
# "name" (compressed in, may point into the question out: RFC 1035's types),
# "plain" (compressed in, written out whole: RFC 3597 section 4's "MAY
# decompress" types), "whole" (never compressed: a pointer drops the reply),
# "text" (one or more character strings), "rest" (any octets).  MD, MF, MB, MG,
# MR, MINFO and NXT are opaque to dnspython, and so is SIG to 2.3: requiring
# their names whole keeps a pointer from being passed through to where it
# would point elsewhere (SIG only signs transactions, RFC 2931: never cached).
_RDATA = {
    1: (4,), 28: (16,), 2: ("name",), 5: ("name",), 12: ("name",), 15: (2, "name"), 6: ("name", "name", 20),
    16: ("text",), 99: ("text",), 33: (6, "plain"), 39: ("whole",),
    3: ("whole",), 4: ("whole",), 7: ("whole",), 8: ("whole",), 9: ("whole",), 14: ("whole", "whole"),
    30: ("whole", "rest"), 24: (18, "whole", "rest"),
}
_IN_ONLY = frozenset({1, 28, 33})  # A, AAAA, SRV: in other classes dnspython has other layouts, or none
# Types outside _RDATA whose names RFC 3597 section 4 lets a receiver
# decompress (RP, AFSDB, RT, PX, NAPTR); any other type's data must come back
# from dnspython byte for byte, or it held a pointer where none may be.
_MAY_DECOMPRESS = frozenset({17, 18, 21, 26, 35})


def _rdata_by_layout(data: bytes, pos: int, end: int, layout: tuple, suffixes: dict[bytes, bytes]) -> bytes:
    """Record data checked against ``layout`` (see ``_RDATA``), names decompressed."""
    out = []
    for item in layout:
        if item.__class__ is int:
            if pos + item > end:
                raise _Malformed("record data too short")
            out.append(data[pos:pos + item])
            pos += item
        elif item == "text":
            start = pos
            while pos < end:
                pos += data[pos] + 1
            if pos != end or start == end:
                raise _Malformed("character strings do not fill the record data")
            out.append(data[start:end])
        elif item == "rest":
            out.append(data[pos:end])
            pos = end
        else:
            name, pos = _read_name(data, pos, end, item != "whole")
            out.append(_into_question(name, suffixes) if item == "name" else name)
    if pos != end:
        raise _Malformed("record data longer than its type")
    return b"".join(out) if len(out) > 1 else out[0]


def _rdata_by_dnspython(data: bytes, rdclass: int, rdtype: int, start: int, end: int) -> bytes | None:
    """Record data read by dnspython and written back without compression; None if it refuses it."""
    import dns.rdata

    try:
        return dns.rdata.from_wire(rdclass, rdtype, data, start, end - start).to_wire()
    except Exception:  # dnspython's verdict on untrusted bytes: whatever it raises is a refusal
        return None
