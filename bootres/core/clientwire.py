"""Clients' side of DNS messages: queries in, replies out; a hand-written byte path for cache hits.

The measured hot path is a cache hit: asyncio + dnspython parsing and
rendering every query tops out near 20k queries/s on a small machine, while
reading the header and question as bytes and splicing a pre-rendered answer
reaches hundreds of thousands.  So:

* ``peek_query`` reads a plain query (one question, optionally one OPT with
  harmless options) straight from the bytes; anything unusual returns None
  and goes to ``parse_query``, which uses dnspython.
* ``render`` only copies the client's ID, flags and question (same length
  as ours, so the ``Answer``'s pointers into it stay valid), patches the
  TTLs and appends a fresh OPT record.  ``tests/core/test_clientwire.py``
  proves this equal to building the reply with dnspython, property by property.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from bootres.core.dnswire import (
    AD, AXFR, BADVERS, CD, COOKIE, FLAGS, FORMERR, HEADER, IXFR, MAILA, MAILB, NOTIMP, OPT, OPT_DO, OPT_PLAIN,
    PADDING, PAYLOAD, QR, RA, RD, SERVFAIL, TC, TKEY, TSIG, Answer,
)

# dnspython is imported where it is used, not here: importing it costs more
# than a hundred milliseconds of startup on a small machine, and neither a
# cache hit, nor a plain miss, nor a hosts-file answer needs it.


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

# The question of the daemon's readiness probe (bootres-ready.invalid. CH TXT, no OPT: a name no client asks,
# RFC 6761 section 6.4): the resolver answers it REFUSED, as any CH question, without counting it as a
# client's query (``is_readiness_probe``).
READINESS_QUESTION = b"\x0dbootres-ready\x07invalid\x00" + struct.pack(">HH", 16, 3)

# These ask for zone transfers or mailbox records or are not question types.
_UNSUPPORTED_TYPES = frozenset({AXFR, IXFR, MAILB, MAILA, TKEY})
_NOT_A_QUESTION = frozenset({OPT, TSIG})


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


def error_reply(head: bytes, question: bytes, rcode: int, payload: int = 0, ede: bytes = b"") -> bytes:
    """A reply with no records: FORMERR, NOTIMP, REFUSED, SERVFAIL or BADVERS; ``ede`` (``dnswire.ede_option``)
    goes in the OPT, which only a client that sent one gets."""
    flags = QR | (head[2] << 8 & 0x7900) | RA | (rcode & 0x0F)  # keep opcode and RD
    opt = b""
    if payload:
        opt = b"\x00" + struct.pack(">HHBBHH", OPT, PAYLOAD, rcode >> 4, 0, 0, len(ede)) + ede
    counts = HEADER.pack(flags, 1 if question else 0, 0, 0, 1 if opt else 0)
    return head[:2] + counts + question + opt


def is_readiness_probe(data: bytes) -> bool:
    """The daemon's readiness probe: a plain query, one question, exactly ``READINESS_QUESTION``, nothing else."""
    return (len(data) == 12 + len(READINESS_QUESTION) and not data[2] & 0xF8 and data[4:12] == _ONE_QUESTION
            and data[12:] == READINESS_QUESTION)


_ONE_QUESTION = b"\x00\x01\x00\x00\x00\x00\x00\x00"  # the counts of a query with one question and nothing else


def looks_like_query(message: bytes) -> bool:
    """A header and one question at least, QR clear: what restarts a connection's idle timer."""
    return len(message) >= 17 and not message[2] & 0x80 and message[4:6] == b"\x00\x01"


def servfail_for_oversized(wire: bytes) -> bytes:
    """SERVFAIL in place of an answer too big for TCP framing, with its question and OPT.

    Replies are rendered by the core with the question uncompressed right
    after the header and, for a client that sent an OPT, our own OPT with no
    options last; those are what is kept.
    """
    end = 12
    while end < len(wire) and 0 < wire[end] < 64:
        end += wire[end] + 1
    question = wire[12:end + 5] if wire[4:6] == b"\x00\x01" and end + 5 <= len(wire) and not wire[end] else b""
    edns = wire[10:12] != b"\x00\x00" and wire[-11:-8] == b"\x00\x00\x29" and wire[-2:] == b"\x00\x00"
    return error_reply(wire[:4], question, SERVFAIL, PAYLOAD if edns else 0)


def render(answer: Answer, head: bytes, question: bytes, payload: int, do: bool, body: bytes, tcp: bool,
           trust_ad: bool = False, ede: bytes = b"") -> bytes:
    """The reply to one client: its ID and question, our records, an OPT if it sent one (with ``ede``, an
    Extended DNS Error option: a stale answer's; never on a fresh one).

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
        opt = OPT_DO if do else OPT_PLAIN
        if ede:
            opt = opt[:-2] + struct.pack(">H", len(ede)) + ede
        wire = b"".join((head[:2], FLAGS.pack(flags), layout.counts_opt, question, body, opt))
    else:
        opt = b""
        wire = b"".join((head[:2], FLAGS.pack(flags), layout.counts, question, body))
    if not tcp and len(wire) > ((payload if payload < PAYLOAD else PAYLOAD) if payload else 512):
        wire = b"".join((head[:2], HEADER.pack(flags | TC, 1, 0, 0, 1 if opt else 0), question, opt))
    return wire


def query_wire(name: str, rdtype: str) -> bytes:
    """A plain recursive query, for ``bootres query`` and pinned-name lookups."""
    import dns.flags
    import dns.message

    msg = dns.message.make_query(name, rdtype)
    msg.flags |= dns.flags.RD
    return msg.to_wire()
