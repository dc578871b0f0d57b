"""DNS messages for the stub: a hand-written byte path for cache hits, dnspython for the rest.

The measured hot path is a cache hit: asyncio + dnspython parsing and
rendering every query tops out near 20k queries/s on a small machine, while
reading the header and question as bytes and splicing a pre-rendered answer
reaches hundreds of thousands.  So:

* ``peek_query`` reads a plain query (one question, optionally one OPT with
  harmless options) straight from the bytes; anything unusual returns None
  and goes to ``parse_query``, which uses dnspython.
* An upstream reply is checked whole and turned once, by ``read_reply``, into
  an ``Answer``: the records after the question, decompressed but for
  pointers into the question, plus where each TTL sits.  A hit then only
  copies the client's ID, flags and question (same length as ours, so those
  pointers stay valid), patches the TTLs and appends a fresh OPT record.
  ``tests/core/test_dnsmsg.py`` proves this equal to building the reply with
  dnspython, property by property; ``tests/core/test_reply_validation.py``
  that nothing dnspython refuses gets in.

Cache keys are bytes: the question name in wire form, lower-cased (DNS case
folding is ASCII-only, RFC 4343, and label-length bytes are below ``A``), then
type and class, then one byte of flags: 1 for the DNSSEC OK bit, 2 for
Checking Disabled (an answer asked for with CD may hold data a validating
upstream would refuse without it: RFC 4035 section 3.2.2, RFC 6840 section 5.9).
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from operator import attrgetter
from typing import TYPE_CHECKING

# dnspython is imported where it is used, not here: importing it costs more
# than a hundred milliseconds of startup on a small machine, and neither a
# cache hit, nor a plain miss, nor a hosts-file answer needs it.
if TYPE_CHECKING:
    import dns.message

NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5
BADVERS, BADCOOKIE = 16, 23  # extended RCODEs: 4 bits in the header, 8 more in the OPT TTL

QR, AA, TC, RD, RA, AD, CD = 0x8000, 0x0400, 0x0200, 0x0100, 0x0080, 0x0020, 0x0010
A, SOA, PTR, AAAA, OPT = 1, 6, 12, 28, 41
TKEY, TSIG, IXFR, AXFR, MAILB, MAILA, ANY = 249, 250, 251, 252, 253, 254, 255
IN = 1  # the one class bootres answers or forwards
COOKIE, PADDING = 10, 12  # EDNS option codes

PAYLOAD = 1232  # our EDNS buffer size, the DNS Flag Day 2020 value
MAX_TTL = 86400  # longest a positive answer is kept, like unbound's cache-max-ttl
MAX_NEGATIVE_TTL = 3 * 3600  # RFC 2308 section 5 suggests one to three hours
STALE_TTL = 30  # RFC 8767 section 4

# EDNS options a cache hit can ignore without changing the answer: COOKIE (we
# do not implement server cookies: RFC 7873 section 5.2 says such a server
# ignores the option, and echoing the client cookie alone is no valid reply)
# and PADDING.  Any other option sends the query down the dnspython path, as
# does a COOKIE of a length RFC 7873 section 5.2.2 answers FORMERR: anything
# but an 8-byte client cookie alone or with an 8- to 32-byte server cookie.
_HARMLESS_OPTIONS = frozenset({COOKIE, PADDING})
_COOKIE_LENGTHS = frozenset({8, *range(16, 41)})

# The flags byte that ends a cache key, by DO + 2 * CD.
_KEY_FLAGS = (b"\x00", b"\x01", b"\x02", b"\x03")

# These ask for zone transfers or mailbox records or are not question types.
_UNSUPPORTED_TYPES = frozenset({AXFR, IXFR, MAILB, MAILA, TKEY})
_NOT_A_QUESTION = frozenset({OPT, TSIG})

_HEADER = struct.Struct(">HHHHH")  # flags, qd, an, ns, ar (after the ID)
_TTL = struct.Struct(">I")
_FLAGS = struct.Struct(">H")
_COUNTS = struct.Struct(">HHHH")  # qd, an, ns, ar
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
            if j + 4 > rdend:
                return None
            code = data[j] << 8 | data[j + 1]
            length = data[j + 2] << 8 | data[j + 3]
            if code not in _HARMLESS_OPTIONS or (code == COOKIE and length not in _COOKIE_LENGTHS):
                return None
            j += 4 + length
        if j != rdend:
            return None
    elif end != len(data):
        return None
    key = data[12:i].lower() + data[i:end] + _KEY_FLAGS[do + (data[3] >> 3 & 2)]
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

    @property
    def qclass(self) -> int:
        return self.key[-3] << 8 | self.key[-2]


def parse_query(data: bytes) -> ClientQuery | bytes | None:
    """A query to answer, the error reply to send (bytes), or None to drop it silently.

    The ladder: no full header, or a response rather than a query: drop
    (answering responses invites loops); opcode other than QUERY: NOTIMP;
    dnspython cannot parse it, or it does not ask exactly one question, or
    it carries a malformed COOKIE (RFC 7873 section 5.2.2): FORMERR; EDNS
    version above 0: BADVERS (RFC 6891 section 6.1.3).
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
    if _has_bad_cookie(data):
        # With an OPT: RFC 6891 section 7 wants one in a FORMERR about an option.
        return error_reply(data[:4], _question_if_readable(data), FORMERR, PAYLOAD)
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
    key = rrset.name.canonicalize().to_wire() + question[-4:] + _KEY_FLAGS[do + (data[3] >> 3 & 2)]
    return ClientQuery(data[:4], question, key, payload, do)


def _has_bad_cookie(data: bytes) -> bool:
    """Whether the query's OPT holds a COOKIE option of a length RFC 7873 section 5.2.2 answers FORMERR.

    Read from the bytes rather than dnspython's parse: newer dnspython
    refuses such a message outright while 2.3 takes it, and either way the
    FORMERR must carry an OPT.  Anything this walk cannot follow is left to
    dnspython's verdict.
    """
    try:
        qd, an, ns, ar = struct.unpack_from(">HHHH", data, 4)
        pos = 12
        for index in range(qd + an + ns + ar):
            while 0 < data[pos] < 0xC0:
                pos += data[pos] + 1
            pos += 1 if data[pos] == 0 else 2
            if index < qd:
                pos += 4
                continue
            rdtype, _, _, rdlength = struct.unpack_from(">HHIH", data, pos)
            rdata, pos = pos + 10, pos + 10 + rdlength
            while rdtype == OPT and rdata + 4 <= pos:
                code, length = struct.unpack_from(">HH", data, rdata)
                if code == COOKIE and length not in _COOKIE_LENGTHS:
                    return True
                rdata += 4 + length
    except (IndexError, struct.error):
        pass
    return False


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
    The client's CD bit goes along (RFC 4035 section 3.2.2, RFC 6840 section
    5.9): it asks a validating upstream for data even where validation
    fails, and only the client can judge that data.  The client's OPT itself
    is hop-by-hop and never forwarded (RFC 6891 section 6.1.1), so neither
    are its options.
    """
    flags = key[-1]
    opt = _OPT_DO if flags & 1 else _OPT_PLAIN
    return b"\x00\x00" + _HEADER.pack(RD | AD | (CD if flags & 2 else 0), 1, 0, 0, 1) + question_of(key) + opt


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


_LAYOUTS_MAX = 256
_layouts: dict[tuple, Layout] = {}


class Layout:
    """What every answer of one shape shares: RCODE, AD, the section counts, where the TTLs sit.

    A few shapes cover most answers (one A record: NOERROR, 1/0/0, its TTL
    at byte 6), so a cached name holds one reference to a shared ``Layout``
    instead of six fields of its own: 40 bytes less per name, ~9% of its
    objects (bench/memory.py).  ``counts`` and ``counts_opt`` are the
    header's four counts after the flags as sent, without and with our OPT.
    """

    __slots__ = ("rcode", "ad", "an", "ns", "ar", "ttl_offsets", "counts", "counts_opt")

    def __init__(self, rcode: int, ad: bool, an: int, ns: int, ar: int, ttl_offsets: tuple[int, ...]):
        self.rcode, self.ad = rcode, ad
        self.an, self.ns, self.ar = an, ns, ar
        self.ttl_offsets = ttl_offsets
        self.counts = _COUNTS.pack(1, an, ns, ar)
        self.counts_opt = _COUNTS.pack(1, an, ns, ar + 1)


def shared_layout(rcode: int, ad: bool, an: int, ns: int, ar: int, offsets) -> Layout:
    """The ``Layout`` shared by every answer of this shape.

    At most ``_LAYOUTS_MAX`` shapes are kept (upstreams choose them); rarer
    ones get a ``Layout`` of their own.
    """
    shape = (rcode, ad, an, ns, ar, *offsets)
    layout = _layouts.get(shape)
    if layout is None:
        layout = Layout(rcode, ad, an, ns, ar, tuple(offsets))
        if len(_layouts) < _LAYOUTS_MAX:
            _layouts[shape] = layout
    return layout


class Answer:
    """A reply ready to send: the records after the question as wire, and where the TTLs are.

    ``body`` holds no compression pointer except to a label of the question
    (offset 12 on): ``render`` rewrites the header and the TTLs, and puts in
    the client's spelling of the question, which differs from ours only in
    case, so every name in ``body`` means the same in every reply made from it.

    The TTLs (already capped) live only in ``body``, not also in a tuple of
    ints beside it: that tuple cost ~55 bytes per cached name, and reading
    them back from the bytes costs a hit far less than a microsecond.
    RCODE, AD, the counts and the TTLs' offsets are in the shared ``layout``.

    ``lifetime`` is how long it may be cached (0: not at all): the smallest
    answer TTL, or for a negative answer the SOA's TTL capped by its MINIMUM
    (RFC 2308 section 5).  ``stored_at``, ``expires_at`` and ``stale_until``
    are filled in by the cache.
    """

    __slots__ = ("layout", "body", "lifetime", "stored_at", "expires_at", "stale_until")

    def __init__(self, rcode, ad, an, ns, ar, body, ttl_offsets, lifetime):
        self.layout = shared_layout(rcode, ad, an, ns, ar, ttl_offsets)
        self.body = body
        self.lifetime = lifetime
        self.stored_at = 0.0
        self.expires_at = 0.0
        self.stale_until = 0.0

    # Read-only views of the layout's fields (the cache file, tests).
    rcode = property(attrgetter("layout.rcode"))
    ad = property(attrgetter("layout.ad"))
    an = property(attrgetter("layout.an"))
    ns = property(attrgetter("layout.ns"))
    ar = property(attrgetter("layout.ar"))
    ttl_offsets = property(attrgetter("layout.ttl_offsets"))

    @property
    def ttls(self) -> tuple[int, ...]:
        return tuple(_TTL.unpack_from(self.body, offset)[0] for offset in self.layout.ttl_offsets)

    def body_at(self, age: int) -> bytes:
        """The records with every TTL lowered by ``age`` seconds."""
        body = bytearray(self.body)
        for offset in self.layout.ttl_offsets:
            ttl = _TTL.unpack_from(body, offset)[0]
            _TTL.pack_into(body, offset, ttl - age if ttl > age else 0)
        return bytes(body)

    def body_stale(self) -> bytes:
        body = bytearray(self.body)
        for offset in self.layout.ttl_offsets:
            struct.pack_into(">I", body, offset, STALE_TTL)
        return bytes(body)


def render(answer: Answer, head: bytes, question: bytes, payload: int, do: bool, body: bytes, tcp: bool,
           trust_ad: bool = False) -> bytes:
    """The reply to one client: its ID and question, our records, an OPT if it sent one.

    Part of the measured hot path.  Too big for UDP: an empty reply (header,
    question, OPT) with TC set, so the client retries over TCP (RFC 7766), as
    unbound and dnsmasq do.  Too big means over the client's EDNS buffer (512
    without EDNS) or over the 1232 we advertise, whichever is less (DNS Flag
    Day 2020: larger datagrams fragment, and fragments get lost or spoofed).

    AD only with ``trust_ad`` (docs/security.md): bootres validates nothing,
    and an upstream's AD bit reached over plain UDP proves nothing either.
    """
    layout = answer.layout
    flags = QR | RA | ((head[2] << 8 | head[3]) & (RD | CD)) | layout.rcode
    if trust_ad and layout.ad and (do or head[3] & 0x20):
        flags |= AD
    if payload:
        opt = _OPT_DO if do else _OPT_PLAIN
        wire = b"".join((head[:2], _FLAGS.pack(flags), layout.counts_opt, question, body, opt))
    else:
        opt = b""
        wire = b"".join((head[:2], _FLAGS.pack(flags), layout.counts, question, body))
    if not tcp and len(wire) > ((payload if payload < PAYLOAD else PAYLOAD) if payload else 512):
        wire = b"".join((head[:2], _HEADER.pack(flags | TC, 1, 0, 0, 1 if opt else 0), question, opt))
    return wire


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
    head = _HEADER.pack(flags, len(msg.question), counts[0], counts[1], counts[2] + (1 if opt else 0))
    reply = read_reply(b"\x00\x00" + head + question + records.getvalue() + opt)
    if reply is None:
        raise ValueError("not a reply bootres would use")
    return reply.answer


def wire_name(text: str) -> bytes:
    """``www.Example.test`` as a lower-case wire-format name; ValueError if it cannot be one."""
    labels = text.rstrip(".").lower().encode("ascii").split(b".") if text.strip(".") else []
    if any(not 0 < len(label) < 64 for label in labels):
        raise ValueError(f"bad name {text!r}")
    wire = b"".join(bytes([len(label)]) + label for label in labels) + b"\x00"
    if len(wire) > 255:
        raise ValueError(f"name too long: {text!r}")
    return wire


def local_answer(records: list[tuple[int, str]], ttl: int, negative_ttl: int) -> Answer:
    """An answer made here (hosts files) from ``(type, text)``: A/AAAA addresses, PTR names.

    Every owner is a pointer to the question, so it fits whichever question
    it answers.  No record is NODATA, which carries an SOA for the question's
    name in the authority section, as if the name were a zone of its own, so
    that a client may cache the "no" (RFC 2308 sections 3 and 5: for the
    lesser of the SOA's TTL and MINIMUM, both ``negative_ttl`` here).  Its
    primary server is the name itself and its mailbox ``nobody.invalid.``,
    the other fields those of the SOA unbound makes for its local zones.
    """
    parts = []
    for rdtype, text in records:
        rdata = wire_name(text) if rdtype == PTR else ipaddress.ip_address(text).packed
        parts.append(b"\xc0\x0c" + struct.pack(">HHIH", rdtype, IN, ttl, len(rdata)) + rdata)
    if not parts:
        rdata = b"\xc0\x0c" + _NOBODY_INVALID + struct.pack(">IIIII", 1, 3600, 1200, 604800, negative_ttl)
        parts.append(b"\xc0\x0c" + struct.pack(">HHIH", SOA, IN, negative_ttl, len(rdata)) + rdata)
    offsets, pos = [], 0
    for part in parts:
        offsets.append(pos + 6)  # pointer (2), type (2), class (2), then the TTL
        pos += len(part)
    return Answer(NOERROR, False, len(records), 0 if records else 1, 0, b"".join(parts), offsets, 0)


_NOBODY_INVALID = b"\x06nobody\x07invalid\x00"  # RFC 6761 section 6.4: a name that is never anyone's


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
        flags, qd, an, ns, ar = _HEADER.unpack_from(data, 2)
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
                    minimum = _TTL.unpack_from(data, pos - 4)[0]
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


def query_wire(name: str, rdtype: str) -> bytes:
    """A plain recursive query, for ``bootres query`` and pinned-name lookups."""
    import dns.flags
    import dns.message

    msg = dns.message.make_query(name, rdtype)
    msg.flags |= dns.flags.RD
    return msg.to_wire()
