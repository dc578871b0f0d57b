"""DNS messages for the stub: a hand-written byte path for cache hits, dnspython for the rest.

The measured hot path is a cache hit: asyncio + dnspython parsing and
rendering every query tops out near 20k queries/s on a small machine, while
reading the header and question as bytes and splicing a pre-rendered answer
reaches hundreds of thousands.  So:

* ``peek_query`` reads a plain query (one question, optionally one OPT with
  harmless options) straight from the bytes; anything unusual returns None
  and goes to ``parse_query``, which uses dnspython.
* An upstream reply is turned once, with dnspython, into an ``Answer``: the
  records after the question rendered to wire, plus where each TTL sits.  A
  hit then only copies the client's ID, flags and question (same length as
  ours, so compression pointers into it stay valid), patches the TTLs and
  appends a fresh OPT record.  ``tests/core/test_dnsmsg.py`` proves this
  equal to building the reply with dnspython, property by property.

Cache keys are bytes: the question name in wire form, lower-cased (DNS case
folding is ASCII-only, RFC 4343, and label-length bytes are below ``A``), then
type and class, then one byte for the DNSSEC OK bit.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

# dnspython is imported where it is used, not here: importing it costs more
# than a hundred milliseconds of startup on a small machine, and neither a
# cache hit, nor a plain miss, nor a hosts-file answer needs it.
if TYPE_CHECKING:
    import dns.message

NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5
BADVERS = 16  # extended RCODE: 4 bits in the header, 8 more in the OPT TTL

QR, AA, TC, RD, RA, AD, CD = 0x8000, 0x0400, 0x0200, 0x0100, 0x0080, 0x0020, 0x0010
A, SOA, PTR, AAAA, OPT = 1, 6, 12, 28, 41
TKEY, TSIG, IXFR, AXFR, MAILB, MAILA = 249, 250, 251, 252, 253, 254

PAYLOAD = 1232  # our EDNS buffer size, the DNS Flag Day 2020 value
MAX_TTL = 86400  # longest a positive answer is kept, like unbound's cache-max-ttl
MAX_NEGATIVE_TTL = 3 * 3600  # RFC 2308 section 5 suggests one to three hours
STALE_TTL = 30  # RFC 8767 section 4

# EDNS options a cache hit can ignore without changing the answer: COOKIE (we
# do not implement server cookies, RFC 7873 section 5.2 says to ignore it) and
# PADDING.  Any other option sends the query down the dnspython path.
_HARMLESS_OPTIONS = frozenset({10, 12})

# These ask for zone transfers or mailbox records or are not question types.
_UNSUPPORTED_TYPES = frozenset({AXFR, IXFR, MAILB, MAILA, TKEY})
_NOT_A_QUESTION = frozenset({OPT, TSIG})

_HEADER = struct.Struct(">HHHHH")  # flags, qd, an, ns, ar (after the ID)
_TTL = struct.Struct(">I")
_OPT_PLAIN = b"\x00" + struct.pack(">HHIH", OPT, PAYLOAD, 0, 0)
_OPT_DO = b"\x00" + struct.pack(">HHIH", OPT, PAYLOAD, 0x8000, 0)


def peek_query(data: bytes):
    """``(key, question_end, payload, do)`` for a plain query, or None for anything else.

    ``payload`` is the client's EDNS buffer size, 0 when it sent no OPT.
    Part of the measured hot path: no dnspython, no objects.
    """
    if len(data) < 17 or data[2] & 0xF8:  # QR set or opcode not QUERY
        return None
    counts = data[4:12]
    if counts == b"\x00\x01\x00\x00\x00\x00\x00\x00":
        has_opt = False
    elif counts == b"\x00\x01\x00\x00\x00\x00\x00\x01":
        has_opt = True
    else:
        return None
    i = 12
    try:
        length = data[i]
        while length:
            if length > 63:  # compression pointer or reserved label type
                return None
            i += length + 1
            length = data[i]
    except IndexError:
        return None
    i += 1
    end = i + 4
    if i - 12 > 255 or end > len(data):
        return None
    do = False
    payload = 0
    if has_opt:
        opt = data[end:end + 11]
        if len(opt) != 11 or opt[0] or opt[1:3] != b"\x00\x29" or opt[6]:  # root, OPT, version 0
            return None
        payload = max(512, opt[3] << 8 | opt[4])
        do = opt[7] & 0x80 != 0
        rdend = end + 11 + (opt[9] << 8 | opt[10])
        if rdend != len(data):
            return None
        j = end + 11
        while j < rdend:
            if j + 4 > rdend or (data[j] << 8 | data[j + 1]) not in _HARMLESS_OPTIONS:
                return None
            j += 4 + (data[j + 2] << 8 | data[j + 3])
        if j != rdend:
            return None
    elif end != len(data):
        return None
    key = data[12:i].lower() + data[i:end] + (b"\x01" if do else b"\x00")
    return key, end, payload, do


@dataclass(frozen=True, slots=True)
class ClientQuery:
    """What the stub needs from a query: enough to answer it as bytes later."""

    head: bytes  # ID and flags, as the client sent them
    question: bytes  # name (client's case), type, class: echoed back verbatim
    key: bytes
    payload: int  # client's EDNS buffer size; 0: no EDNS
    do: bool

    @property
    def qtype(self) -> int:
        return self.key[-5] << 8 | self.key[-4]


def parse_query(data: bytes) -> ClientQuery | bytes | None:
    """A query to answer, the error reply to send (bytes), or None to drop it silently.

    The ladder: no full header, or a response rather than a query: drop
    (answering responses invites loops); opcode other than QUERY: NOTIMP;
    dnspython cannot parse it, or it does not ask exactly one question:
    FORMERR; EDNS version above 0: BADVERS (RFC 6891 section 6.1.3).
    """
    if len(data) < 12 or data[2] & 0x80:
        return None
    peek = peek_query(data)
    if peek is not None:
        key, end, payload, do = peek
        qtype = data[end - 4] << 8 | data[end - 3]
        if qtype in _NOT_A_QUESTION:
            return error_reply(data[:4], data[12:end], FORMERR, payload)
        if qtype in _UNSUPPORTED_TYPES:
            return error_reply(data[:4], data[12:end], NOTIMP, payload)
        return ClientQuery(data[:4], data[12:end], key, payload, do)
    if (data[2] >> 3) & 0x0F != 0:
        return error_reply(data[:4], b"", NOTIMP)
    if len(data) == 12:
        # A bare header (the daemon's readiness probe) asks nothing: FORMERR, as
        # dnspython would conclude, without importing it before the first answer.
        return error_reply(data[:4], b"", FORMERR)
    import dns.flags
    import dns.message

    try:
        msg = dns.message.from_wire(data)
    except Exception:  # any parse failure is the client's fault: FORMERR, never a crash
        return error_reply(data[:4], _question_if_readable(data), FORMERR)
    payload = max(512, msg.payload) if msg.edns >= 0 else 0
    do = bool(msg.ednsflags & dns.flags.DO)
    if len(msg.question) != 1 or msg.answer or msg.authority:
        return error_reply(data[:4], b"", FORMERR, payload)
    rrset = msg.question[0]
    question = rrset.name.to_wire() + struct.pack(">HH", rrset.rdtype, rrset.rdclass)
    if msg.edns > 0:
        return error_reply(data[:4], question, BADVERS, payload)
    if rrset.rdtype in _NOT_A_QUESTION:
        return error_reply(data[:4], question, FORMERR, payload)
    if rrset.rdtype in _UNSUPPORTED_TYPES:
        return error_reply(data[:4], question, NOTIMP, payload)
    key = rrset.name.canonicalize().to_wire() + question[-4:] + (b"\x01" if do else b"\x00")
    return ClientQuery(data[:4], question, key, payload, do)


def _question_if_readable(data: bytes) -> bytes:
    import dns.message

    try:
        msg = dns.message.from_wire(data, question_only=True)
    except Exception:  # nothing worth echoing
        return b""
    if len(msg.question) != 1:
        return b""
    rrset = msg.question[0]
    return rrset.name.to_wire() + struct.pack(">HH", rrset.rdtype, rrset.rdclass)


def error_reply(head: bytes, question: bytes, rcode: int, payload: int = 0) -> bytes:
    """A reply with no records: FORMERR, NOTIMP, REFUSED, SERVFAIL or BADVERS."""
    flags = QR | (head[2] << 8 & 0x7900) | RA | (rcode & 0x0F)  # keep opcode and RD
    opt = b""
    if payload:
        opt = b"\x00" + struct.pack(">HHBBHH", OPT, PAYLOAD, rcode >> 4, 0, 0, 0)
    counts = _HEADER.pack(flags, 1 if question else 0, 0, 0, 1 if opt else 0)
    return head[:2] + counts + question + opt


def question_of(key: bytes) -> bytes:
    """The lower-case question (name, type, class) a cache key stands for."""
    return key[:-1]


def upstream_query(key: bytes) -> bytes:
    """The query we send upstream for ``key``, with ID 0 for the race to fill in.

    RD asks for recursion; AD asks the upstream to tell us whether it
    validated (RFC 6840 section 5.7); our own OPT carries the client's DO bit.
    The client's OPT itself is hop-by-hop and never forwarded (RFC 6891
    section 6.1.1), so neither are its options.
    """
    opt = _OPT_DO if key[-1] else _OPT_PLAIN
    return b"\x00\x00" + _HEADER.pack(RD | AD, 1, 0, 0, 1) + question_of(key) + opt


def reply_header_matches(data: bytes, query: bytes) -> bool:
    """RFC 5452 section 9.1 on bytes: same ID, a response, and the same question."""
    if len(data) < 12 or data[:2] != query[:2] or not data[2] & 0x80 or data[4:6] != b"\x00\x01":
        return False
    question = query[12:-11]  # our queries always end with an 11-byte OPT
    name_end = len(question) - 4
    got = data[12:12 + len(question)]
    return got[:name_end].lower() == question[:name_end] and got[name_end:] == question[name_end:]


_LAYOUTS_MAX = 256
_layouts: dict[tuple[int, ...], tuple[int, ...]] = {}


def shared_offsets(offsets) -> tuple[int, ...]:
    """``offsets`` as one tuple shared by every answer whose TTLs sit at the same places.

    A few layouts cover most answers (one A record: its TTL at byte 6), so
    sharing the tuple saves ~50 bytes per cached name.  At most
    ``_LAYOUTS_MAX`` layouts are kept; rarer ones get their own tuple.
    """
    layout = tuple(offsets)
    shared = _layouts.get(layout)
    if shared is None:
        if len(_layouts) >= _LAYOUTS_MAX:
            return layout
        _layouts[layout] = shared = layout
    return shared


class Answer:
    """A reply ready to send: the records after the question as wire, and where the TTLs are.

    The TTLs (already capped) live only in ``body``, not also in a tuple of
    ints beside it: that tuple cost ~55 bytes per cached name, and reading
    them back from the bytes costs a hit far less than a microsecond.

    ``lifetime`` is how long it may be cached (0: not at all): the smallest
    answer TTL, or for a negative answer the SOA's TTL capped by its MINIMUM
    (RFC 2308 section 5).  ``stored_at``, ``expires_at`` and ``stale_until``
    are filled in by the cache.
    """

    __slots__ = (
        "rcode", "ad", "an", "ns", "ar", "body", "ttl_offsets", "lifetime",
        "stored_at", "expires_at", "stale_until",
    )

    def __init__(self, rcode, ad, an, ns, ar, body, ttl_offsets, lifetime):
        self.rcode = rcode
        self.ad = ad
        self.an, self.ns, self.ar = an, ns, ar
        self.body = body
        self.ttl_offsets = ttl_offsets
        self.lifetime = lifetime
        self.stored_at = 0.0
        self.expires_at = 0.0
        self.stale_until = 0.0

    @property
    def ttls(self) -> tuple[int, ...]:
        return tuple(_TTL.unpack_from(self.body, offset)[0] for offset in self.ttl_offsets)

    def body_at(self, age: int) -> bytes:
        """The records with every TTL lowered by ``age`` seconds."""
        body = bytearray(self.body)
        for offset in self.ttl_offsets:
            ttl = _TTL.unpack_from(body, offset)[0]
            _TTL.pack_into(body, offset, ttl - age if ttl > age else 0)
        return bytes(body)

    def body_stale(self) -> bytes:
        body = bytearray(self.body)
        for offset in self.ttl_offsets:
            struct.pack_into(">I", body, offset, STALE_TTL)
        return bytes(body)


def render(answer: Answer, head: bytes, question: bytes, payload: int, do: bool, body: bytes, tcp: bool) -> bytes:
    """The reply to one client: its ID and question, our records, an OPT if it sent one.

    Part of the measured hot path.  Too big for the client's buffer: an empty
    reply with TC set, so it retries over TCP (RFC 7766).
    """
    flags = QR | RA | ((head[2] << 8 | head[3]) & (RD | CD)) | answer.rcode
    if answer.ad and (do or head[3] & 0x20):
        flags |= AD
    if payload:
        opt = _OPT_DO if do else _OPT_PLAIN
        wire = b"".join((head[:2], _HEADER.pack(flags, 1, answer.an, answer.ns, answer.ar + 1), question, body, opt))
    else:
        opt = b""
        wire = b"".join((head[:2], _HEADER.pack(flags, 1, answer.an, answer.ns, answer.ar), question, body))
    if not tcp and len(wire) > (payload or 512):
        wire = b"".join((head[:2], _HEADER.pack(flags | TC, 1, 0, 0, 1 if opt else 0), question, opt))
    return wire


def answer_from_response(msg: dns.message.Message) -> Answer:
    """Turn a reply parsed by dnspython into an ``Answer``: the reference ``read_reply`` is held to.

    TTLs are capped (MAX_TTL, and the RFC 2308 negative TTL on the SOA) so
    what clients see never outlives what we cache.
    """
    import dns.flags
    import dns.message
    import dns.rdatatype
    import dns.rrset

    rcode = msg.rcode()
    lifetime = 0
    soa_ttl = None
    if rcode == NXDOMAIN or (rcode == NOERROR and not msg.answer):
        for rrset in msg.authority:
            if rrset.rdtype == dns.rdatatype.SOA and len(rrset):
                soa_ttl = min(rrset.ttl, rrset[0].minimum, MAX_NEGATIVE_TTL)
                lifetime = soa_ttl
                break
    elif rcode == NOERROR:
        lifetime = min(min(rrset.ttl for rrset in msg.answer), MAX_TTL)

    out = dns.message.Message(id=0)
    out.flags = dns.flags.QR
    out.question = [dns.rrset.RRset(r.name, r.rdclass, r.rdtype) for r in msg.question]
    for src, dst in ((msg.answer, out.answer), (msg.authority, out.authority), (msg.additional, out.additional)):
        for rrset in src:
            copy = rrset.copy()
            if soa_ttl is not None and rrset.rdtype == dns.rdatatype.SOA:
                copy.ttl = soa_ttl
            else:
                copy.ttl = min(rrset.ttl, MAX_TTL)
            dst.append(copy)
    wire = out.to_wire()
    _, _, an, ns, ar = _HEADER.unpack_from(wire, 2)
    start = _skip_name(wire, 12) + 4
    offsets = []
    pos = start
    for _ in range(an + ns + ar):
        pos = _skip_name(wire, pos)
        offsets.append(pos + 4 - start)
        pos += 10 + struct.unpack_from(">H", wire, pos + 8)[0]
    ad = bool(msg.flags & dns.flags.AD)
    return Answer(rcode & 0x0F, ad, an, ns, ar, wire[start:], shared_offsets(offsets), lifetime if rcode <= 15 else 0)


def _skip_name(wire: bytes, pos: int) -> int:
    """Offset just past the (possibly compressed) name at ``pos`` in a message we rendered."""
    while True:
        length = wire[pos]
        if length == 0:
            return pos + 1
        if length >= 0xC0:
            return pos + 2
        pos += length + 1


def wire_name(text: str) -> bytes:
    """``www.Example.test`` as a lower-case wire-format name; ValueError if it cannot be one."""
    labels = text.rstrip(".").lower().encode("ascii").split(b".") if text.strip(".") else []
    if any(not 0 < len(label) < 64 for label in labels):
        raise ValueError(f"bad name {text!r}")
    wire = b"".join(bytes([len(label)]) + label for label in labels) + b"\x00"
    if len(wire) > 255:
        raise ValueError(f"name too long: {text!r}")
    return wire


def local_answer(rdtype: int, texts: list[str], ttl: int) -> Answer:
    """An answer made here (hosts files): A/AAAA addresses or PTR names; none is NODATA.

    Every record's owner is a pointer to the question, so it fits whichever
    question it answers.
    """
    records = []
    for text in texts:
        rdata = wire_name(text) if rdtype == PTR else ipaddress.ip_address(text).packed
        records.append(b"\xc0\x0c" + struct.pack(">HHIH", rdtype, 1, ttl, len(rdata)) + rdata)
    offsets, pos = [], 0
    for record in records:
        offsets.append(pos + 6)  # pointer (2), type (2), class (2), then the TTL
        pos += len(record)
    return Answer(NOERROR, False, len(records), 0, 0, b"".join(records), tuple(offsets), 0)


class UpstreamReply:
    """What a matching upstream reply says: its RCODE, whether it was truncated, the answer."""

    __slots__ = ("rcode", "tc", "answer")

    def __init__(self, rcode: int, tc: bool, answer: Answer):
        self.rcode = rcode
        self.tc = tc
        self.answer = answer


def read_reply(data: bytes) -> UpstreamReply | None:
    """An upstream reply read straight from the bytes, or None when it does not parse.

    Every cache miss pays for this, twice in a race, so it is written by hand:
    dnspython's ``from_wire`` plus re-rendering cost ~0.4 ms per reply on a
    small machine, which alone would break the 1 ms miss budget.  It checks
    the structure (one question, every record inside the message, labels and
    backward-only compression pointers, OPT only in the additional section,
    no trailing bytes) without decoding record data, which is passed through
    as the upstream sent it.  ``tests/core/test_dnsmsg.py`` proves the result
    equal to ``answer_from_response(dns.message.from_wire(data))``.  A reply
    whose OPT record is not the last one is rare enough to take that
    dnspython path instead.
    """
    try:
        flags, qd, an, ns, ar = _HEADER.unpack_from(data, 2)
        if qd != 1:
            return None
        pos = _checked_name_end(data, 12) + 4
        if pos > len(data):
            return None
        start = pos
        offsets, capped = [], []
        answer_ttl = None
        soa_ttl = None
        opt_at = None
        rcode = flags & 0x0F
        negative = rcode == NXDOMAIN or (rcode == NOERROR and an == 0)
        for index in range(an + ns + ar):
            rr_start = pos
            pos = _checked_name_end(data, pos)
            rdtype, _, sent_ttl, rdlength = struct.unpack_from(">HHIH", data, pos)
            rdata = pos + 10
            end = rdata + rdlength
            if end > len(data):
                return None
            if rdtype == OPT or rdtype == TSIG:
                if index < an + ns or opt_at is not None or rdtype != OPT or data[rr_start] != 0:
                    return None
                opt_at = rr_start
                rcode |= data[pos + 4] << 4  # extended RCODE bits live in the OPT "TTL"
            else:
                ttl = min(sent_ttl, MAX_TTL)
                if index < an:
                    answer_ttl = ttl if answer_ttl is None else min(answer_ttl, ttl)
                elif rdtype == SOA and negative:
                    # RFC 2308 section 5: a negative answer lives min(SOA TTL, SOA MINIMUM).
                    minimum = struct.unpack_from(">I", data, _checked_name_end(data, _checked_name_end(data, rdata)) + 16)[0]
                    ttl = min(ttl, minimum, MAX_NEGATIVE_TTL)
                    if soa_ttl is None and index < an + ns:
                        soa_ttl = ttl
                offsets.append(pos + 4 - start)
                if ttl != sent_ttl:
                    capped.append((pos + 4 - start, ttl))
            pos = end
        if pos != len(data):
            return None
    except (IndexError, struct.error):
        return None
    if opt_at is not None and opt_at + 11 != len(data):
        msg = _parse_with_dnspython(data)
        return None if msg is None else UpstreamReply(msg.rcode(), bool(flags & TC), answer_from_response(msg))
    body = data[start:opt_at] if opt_at is not None else data[start:]
    if capped:  # what clients see must never outlive what we cache
        body = bytearray(body)
        for offset, ttl in capped:
            _TTL.pack_into(body, offset, ttl)
        body = bytes(body)
    lifetime = 0  # SERVFAIL and the rest, and extended RCODEs, are never cached
    if rcode == NOERROR and answer_ttl is not None:
        lifetime = answer_ttl
    elif negative and soa_ttl is not None:
        lifetime = soa_ttl
    answer = Answer(rcode & 0x0F, bool(flags & AD), an, ns, ar - (opt_at is not None), body,
                    shared_offsets(offsets), lifetime)
    return UpstreamReply(rcode, bool(flags & TC), answer)


def _checked_name_end(data: bytes, pos: int) -> int:
    """Offset past a name, checking labels and that pointers only point backwards (no loops)."""
    start = pos
    length = data[pos]
    while length:
        if length >= 0xC0:
            if ((length & 0x3F) << 8 | data[pos + 1]) >= start:
                raise IndexError("forward compression pointer")
            return pos + 2
        if length > 63:
            raise IndexError("reserved label type")
        pos += length + 1
        if pos - start > 255:
            raise IndexError("name too long")
        length = data[pos]
    return pos + 1


def _parse_with_dnspython(data: bytes) -> dns.message.Message | None:
    import dns.message

    try:
        return dns.message.from_wire(data)
    except Exception:  # whatever dnspython rejects is a bad reply, counted by the caller
        return None


def query_wire(name: str, rdtype: str) -> bytes:
    """A plain recursive query, for ``bootres query`` and pinned-name lookups."""
    import dns.flags
    import dns.message

    msg = dns.message.make_query(name, rdtype)
    msg.flags |= dns.flags.RD
    return msg.to_wire()
