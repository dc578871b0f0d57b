"""The DNS wire format both sides share: codes, the header's layout, and the ``Answer`` a reply becomes.

The resolver's messages are split by side, so the path of a query is visible
in the file names: ``clientwire`` reads clients' queries and renders their
replies (the measured hot path), ``upstreamwire`` writes the queries sent
upstream and reads and checks their replies.  Both meet here, in the numbers
of RFC 1035 and RFC 6891 and in ``Answer``: an upstream reply checked once
and kept as bytes, ready to be rendered for any client asking the same
question.

Cache keys are bytes: the question name in wire form, lower-cased (DNS case
folding is ASCII-only, RFC 4343, and label-length bytes are below ``A``), then
type and class, then one byte of flags: 1 for the DNSSEC OK bit, 2 for
Checking Disabled (an answer asked for with CD may hold data a validating
upstream would refuse without it: RFC 4035 section 3.2.2, RFC 6840 section 5.9).
"""

from __future__ import annotations

import struct
from operator import attrgetter

NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5
BADVERS, BADCOOKIE = 16, 23  # extended RCODEs: 4 bits in the header, 8 more in the OPT TTL

QR, AA, TC, RD, RA, AD, CD = 0x8000, 0x0400, 0x0200, 0x0100, 0x0080, 0x0020, 0x0010
A, SOA, PTR, AAAA, OPT = 1, 6, 12, 28, 41
TKEY, TSIG, IXFR, AXFR, MAILB, MAILA, ANY = 249, 250, 251, 252, 253, 254, 255
IN = 1  # the one class bootres answers or forwards
COOKIE, PADDING, EDE = 10, 12, 15  # EDNS option codes
# Extended DNS Error codes (RFC 8914) bootres gives: why an answer is stale or why there is none.
EDE_OTHER, EDE_STALE_ANSWER, EDE_CACHED_ERROR = 0, 3, 13
EDE_STALE_NXDOMAIN, EDE_NOT_SUPPORTED, EDE_NO_REACHABLE_AUTHORITY, EDE_NETWORK_ERROR = 19, 21, 22, 23
EDE_TEXT_MAX = 200  # bytes of EXTRA-TEXT at most: a reason, not a log

PAYLOAD = 1232  # our EDNS buffer size, the DNS Flag Day 2020 value
MAX_TTL = 86400  # longest a positive answer is kept, like unbound's cache-max-ttl
MAX_NEGATIVE_TTL = 3 * 3600  # RFC 2308 section 5 suggests one to three hours
STALE_TTL = 30  # RFC 8767 section 4

HEADER = struct.Struct(">HHHHH")  # flags, qd, an, ns, ar (after the ID)
TTL = struct.Struct(">I")
FLAGS = struct.Struct(">H")
COUNTS = struct.Struct(">HHHH")  # qd, an, ns, ar
OPT_PLAIN = b"\x00" + struct.pack(">HHIH", OPT, PAYLOAD, 0, 0)
OPT_DO = b"\x00" + struct.pack(">HHIH", OPT, PAYLOAD, 0x8000, 0)


def ede_option(code: int, text: str = "") -> bytes:
    """An Extended DNS Error option (RFC 8914): INFO-CODE and EXTRA-TEXT (UTF-8, cut to ``EDE_TEXT_MAX`` bytes,
    no NUL: readers take one for the end of the text)."""
    extra = text.replace("\0", "").encode("utf-8", "replace")[:EDE_TEXT_MAX].decode("utf-8", "ignore").encode()
    return struct.pack(">HHH", EDE, 2 + len(extra), code) + extra


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
        self.counts = COUNTS.pack(1, an, ns, ar)
        self.counts_opt = COUNTS.pack(1, an, ns, ar + 1)


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
        return tuple(TTL.unpack_from(self.body, offset)[0] for offset in self.layout.ttl_offsets)

    def body_at(self, age: int) -> bytes:
        """The records with every TTL lowered by ``age`` seconds."""
        body = bytearray(self.body)
        for offset in self.layout.ttl_offsets:
            ttl = TTL.unpack_from(body, offset)[0]
            TTL.pack_into(body, offset, ttl - age if ttl > age else 0)
        return bytes(body)

    def body_stale(self) -> bytes:
        body = bytearray(self.body)
        for offset in self.layout.ttl_offsets:
            struct.pack_into(">I", body, offset, STALE_TTL)
        return bytes(body)


def wire_name(text: str) -> bytes:
    """``www.Example.test`` as a lower-case wire-format name; ValueError if it cannot be one."""
    labels = text.rstrip(".").lower().encode("ascii").split(b".") if text.strip(".") else []
    if any(not 0 < len(label) < 64 for label in labels):
        raise ValueError(f"bad name {text!r}")
    wire = b"".join(bytes([len(label)]) + label for label in labels) + b"\x00"
    if len(wire) > 255:
        raise ValueError(f"name too long: {text!r}")
    return wire
