"""One fuzz target per parser of untrusted input: ``TARGET(data: bytes) -> None``.

A target returns normally when the parser kept its contract for ``data``
and raises otherwise (``ContractError`` for a broken promise, anything else
is an exception escaping the parser).  The contracts are written next to
each target; the DNS targets are also differentials against dnspython,
the hosts target one against glibc's own ``inet_pton`` and a model of
glibc's nss_files line parser.

Nothing here needs atheris: ``tests/test_fuzz_corpus.py`` replays every
saved input through these functions with plain pytest, and ``fuzz/worker.py``
hands them to atheris.
"""

from __future__ import annotations

import ipaddress
import math
import re
import socket
import struct
import zlib

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rdatatype

from bootres import config
from bootres.core import cache as cachemod
from bootres.core import cachefile, clientwire, dnswire, etcfiles, hostsdb, rdisc, resolvconf, router, sources, upstreamwire
from bootres.settings import router_settings


class ContractError(AssertionError):
    """The parser broke its documented contract for this input."""


def check(condition: bool, message: str, *details) -> None:
    if not condition:
        raise ContractError(message + ("".join(f"\n  {d!r}" for d in details) if details else ""))


def _expect(errors: tuple[type[BaseException], ...], call, *args):
    """``call(*args)``, or None when it raised one of the documented ``errors``."""
    try:
        return call(*args)
    except errors:
        return None


# --- DNS: shared helpers ---------------------------------------------------------------------

_NOT_PLAIN_QTYPES = {dnswire.OPT, dnswire.TSIG, dnswire.TKEY, dnswire.AXFR, dnswire.IXFR, dnswire.MAILA, dnswire.MAILB}
MAX_TTL_BIT = 0x80000000  # RFC 2181 section 8: a TTL with the top bit set means 0


def dnspython_parse(data: bytes) -> dns.message.Message | None:
    """dnspython's reading of ``data``, or None when it refuses it (the oracle for "is this DNS")."""
    try:
        return dns.message.from_wire(data)
    except Exception:  # noqa: BLE001 - every refusal of dnspython's means the same here
        return None


def dnspython_parse_reply(wire: bytes) -> dns.message.Message | None:
    """``dnspython_parse`` for a reply bootres sends; an opcode this dnspython does not know is read as QUERY.

    RFC 1035 copies the query's opcode into the reply (a NOTIMP for opcode
    13 says opcode 13); dnspython before 2.5 refuses opcodes it has no name
    for, later ones read them.
    """
    msg = dnspython_parse(wire)
    if msg is None and len(wire) >= 4:
        try:
            dns.opcode.Opcode((wire[2] >> 3) & 0x0F)
        except ValueError:
            return dnspython_parse(wire[:2] + bytes([wire[2] & 0x87]) + wire[3:])
    return msg


def dnspython_key(msg: dns.message.Message) -> bytes:
    """The cache key for a query as dnspython reads it: lower-case question, then DO + 2 * CD (RFC 6840 section 5.9)."""
    q = msg.question[0]
    do = bool(msg.ednsflags & dns.flags.DO) if msg.edns >= 0 else False
    cd = bool(msg.flags & dns.flags.CD)
    return q.name.canonicalize().to_wire() + struct.pack(">HH", q.rdtype, q.rdclass) + bytes([do + 2 * cd])


def _question_wire(msg: dns.message.Message) -> bytes:
    q = msg.question[0]
    return q.name.to_wire() + struct.pack(">HH", q.rdtype, q.rdclass)


def _sections(msg: dns.message.Message) -> list[dict]:
    """Answer, authority, additional as {(name, class, type, covers): (rdata set, ttl)}; OPT/TSIG are not records."""
    out = []
    for section in (msg.answer, msg.authority, msg.additional):
        rrsets: dict = {}
        for rrset in section:
            if rrset.rdtype in (dns.rdatatype.OPT, dns.rdatatype.TSIG):
                continue
            key = (rrset.name, rrset.rdclass, rrset.rdtype, rrset.covers)
            rdatas, ttl = rrsets.get(key, (frozenset(), None))
            rrsets[key] = (rdatas | frozenset(rrset), rrset.ttl if ttl is None else min(ttl, rrset.ttl))
        out.append(rrsets)
    return out


def _ttl_bound(ttl: int) -> int:
    """The most a client may be told for a record the upstream gave ``ttl`` (RFC 2181 section 8, MAX_TTL)."""
    return 0 if ttl & MAX_TTL_BIT else min(ttl, dnswire.MAX_TTL)


def _swapcase_name(question: bytes) -> bytes:
    """The question with the case of every ASCII letter in its name flipped (a client using 0x20 mixing)."""
    name_end = len(question) - 4
    name = bytes(b ^ 0x20 if 0x41 <= (b & 0xDF) <= 0x5A else b for b in question[:name_end])
    return name + question[name_end:]


def _rdata_keys(rdatas, fold_case: bool) -> set:
    """Record data as comparable bytes; ``fold_case``: ASCII case ignored (names may point into the client's question)."""
    return {(rd.rdtype, rd.to_digestable().lower() if fold_case else rd.to_digestable()) for rd in rdatas}


def check_served(wire: bytes, upstream: dns.message.Message, head: bytes, question: bytes, tcp: bool,
                 payload: int, ttl_checked: bool, what: str, fold_case: bool = False) -> None:
    """A reply bootres would send: dnspython parses it and its records are the upstream's.

    ``fold_case``: the client's question differs in case from the upstream's,
    so names compressed against it may too (RFC 4343: no difference).
    """
    served = dnspython_parse(wire)
    check(served is not None, f"{what}: dnspython cannot parse the reply bootres serves", wire.hex())
    check(served.id == struct.unpack(">H", head[:2])[0], f"{what}: the served reply has another ID", wire.hex())
    check(bool(served.flags & dns.flags.QR), f"{what}: the served reply is not a response", wire.hex())
    check(len(served.question) == 1 and _question_wire(served) == question,
          f"{what}: the served question is not the client's", wire.hex())
    check((served.edns >= 0) == bool(payload), f"{what}: EDNS in the reply does not follow the query", wire.hex())
    if served.flags & dns.flags.TC and not tcp:
        check(not served.answer and not served.authority, f"{what}: a truncated reply carries records", wire.hex())
        check(len(wire) <= max(payload, 512), f"{what}: the truncated reply is larger than the client's buffer")
        return
    check(tcp or len(wire) <= max(payload, 512), f"{what}: UDP reply larger than the client's buffer")
    check(len(wire) <= 65535, f"{what}: reply larger than a DNS message can be")
    for name, got, want in zip(("answer", "authority", "additional"), _sections(served), _sections(upstream)):
        check(got.keys() == want.keys(), f"{what}: {name} section RRsets differ from dnspython's reading",
              sorted(map(str, got)), sorted(map(str, want)), wire.hex())
        for key, (rdatas, ttl) in got.items():
            check(_rdata_keys(rdatas, fold_case) == _rdata_keys(want[key][0], fold_case),
                  f"{what}: {name} {key[0]} {dns.rdatatype.to_text(key[2])} record data "
                  "differs from dnspython's reading", wire.hex())
            if ttl_checked:
                check(ttl <= _ttl_bound(want[key][1]), f"{what}: {name} {key[0]} TTL {ttl} outlives the upstream's "
                      f"{want[key][1]} (RFC 2181 section 8, MAX_TTL {dnswire.MAX_TTL})", wire.hex())


# --- client queries ---------------------------------------------------------------------------


def target_query(data: bytes) -> None:
    """``peek_query`` / ``parse_query``: never raise; what they accept, dnspython reads the same way.

    * ``peek_query`` returns None or ``(key, end, payload, do)``; when it
      reads a query, dnspython reads one plain query with that name, type,
      class, DO bit and EDNS buffer size.
    * ``parse_query`` returns None only for less than a header or a
      response; a ``ClientQuery`` only for what dnspython reads as one
      question (QUERY opcode, no answer/authority, EDNS version 0 or none),
      with the client's question echoed verbatim; an error reply (bytes) that
      dnspython parses, with the client's ID, QR set and not NOERROR.
    * Converse: a plain query dnspython reads (no COOKIE option, which
      RFC 7873 lets bootres refuse) is not answered FORMERR.
    """
    peek = clientwire.peek_query(data)
    parsed = clientwire.parse_query(data)
    msg = dnspython_parse(data)
    if peek is not None:
        key, end, payload, do = peek
        check(msg is not None, "peek_query reads a query dnspython cannot parse", data.hex())
        check(not msg.flags & dns.flags.QR and msg.opcode() == dns.opcode.QUERY and len(msg.question) == 1
              and not msg.answer and not msg.authority and msg.edns in (-1, 0),
              "peek_query reads what dnspython sees as no plain query", data.hex())
        dns_do = bool(msg.ednsflags & dns.flags.DO) if msg.edns >= 0 else False
        check(key == dnspython_key(msg), "peek_query's key is not dnspython's question and DO/CD bits", data.hex())
        check(do == dns_do, "peek_query's DO bit is not dnspython's", data.hex())
        check(payload == (max(512, msg.payload) if msg.edns >= 0 else 0), "peek_query's payload differs", data.hex())
        check(end == 12 + len(_question_wire(msg)), "peek_query's question end is wrong", data.hex())
    if parsed is None:
        check(len(data) < 12 or bool(data[2] & 0x80), "parse_query drops a query without answering", data.hex())
        return
    if isinstance(parsed, clientwire.ClientQuery):
        check(msg is not None, "parse_query accepts a query dnspython cannot parse", data.hex())
        check(not msg.flags & dns.flags.QR and msg.opcode() == dns.opcode.QUERY and len(msg.question) == 1
              and not msg.answer and not msg.authority and msg.edns in (-1, 0),
              "parse_query accepts what dnspython sees as no plain query", data.hex())
        q = msg.question[0]
        dns_do = bool(msg.ednsflags & dns.flags.DO) if msg.edns >= 0 else False
        check(parsed.head == data[:4], "parse_query changed the ID or flags", data.hex())
        check(parsed.question == _question_wire(msg), "parse_query's question is not the client's", data.hex())
        check(parsed.key == dnspython_key(msg), "parse_query's key is not dnspython's question and DO/CD bits",
              data.hex())
        check(parsed.do == dns_do and parsed.payload == (max(512, msg.payload) if msg.edns >= 0 else 0),
              "parse_query's EDNS reading differs from dnspython's", data.hex())
        check(parsed.qtype == q.rdtype, "ClientQuery.qtype is not the question's type", data.hex())
        if peek is not None:
            check((parsed.key, parsed.payload, parsed.do) == (peek[0], peek[2], peek[3]),
                  "the fast and the slow path read the query differently", data.hex())
        return
    check(isinstance(parsed, bytes), f"parse_query returned {type(parsed).__name__}")
    reply = dnspython_parse_reply(parsed)
    check(reply is not None, "dnspython cannot parse bootres's error reply", data.hex(), parsed.hex())
    check(parsed[:2] == data[:2] and bool(reply.flags & dns.flags.QR), "error reply with another ID or no QR",
          data.hex(), parsed.hex())
    check(reply.rcode() != 0, "an error reply says NOERROR", data.hex(), parsed.hex())
    if (msg is not None and not msg.flags & dns.flags.QR and msg.opcode() == dns.opcode.QUERY
            and len(msg.question) == 1 and not msg.answer and not msg.authority and msg.edns in (-1, 0)
            and msg.question[0].rdtype not in _NOT_PLAIN_QTYPES and not any(o.otype == 10 for o in msg.options)):
        check(reply.rcode() != 1, "FORMERR for a plain query dnspython reads", data.hex(), parsed.hex())


# --- upstream replies -------------------------------------------------------------------------

_HEADS = (b"\xab\xcd\x01\x00", b"\x12\x34\x01\x10", b"\x00\x00\x01\x20")


def target_reply(data: bytes) -> None:
    """``read_reply``: never raises; a reply it reads, dnspython reads too, and what bootres serves is the upstream's.

    * ``read_reply`` returns None or an ``UpstreamReply``; if it reads one,
      dnspython parses ``data`` and agrees on the RCODE (extended RCODE
      included) and the TC bit.
    * For a reply the stub would take (its question is our query's,
      ``reply_header_matches``): rendered to a client fresh, aged and stale,
      with another ID, flags and question case, every reply parses with
      dnspython and holds exactly the upstream's RRsets (names, types,
      classes, record data) in each section, TTLs never above the
      upstream's (0 for a TTL with the top bit set, RFC 2181 section 8) or
      MAX_TTL, never over the client's UDP buffer.
    * A reply bootres would cache also survives the cache file: snapshot,
      restore, served stale, the same RRsets.
    """
    reply = upstreamwire.read_reply(data)
    if reply is None:
        return
    msg = dnspython_parse(data)
    check(msg is not None, "read_reply reads a reply dnspython cannot parse", data.hex())
    check(reply.rcode == msg.rcode(), f"read_reply's RCODE {reply.rcode} is not dnspython's {msg.rcode()}",
          data.hex())
    check(reply.tc == bool(msg.flags & dns.flags.TC), "read_reply's TC bit is not dnspython's", data.hex())
    if len(msg.question) != 1:
        return
    # The client query that would have made bootres ask this question (CD as the reply has it).
    question = _question_wire(msg)
    client = clientwire.parse_query(data[:2] + bytes([0x01, data[3] & 0x10]) + b"\x00\x01" + bytes(6) + question)
    if not isinstance(client, clientwire.ClientQuery) or (client.key[-3] << 8 | client.key[-2]) != 1:
        return  # answered locally (the stub refuses classes other than IN itself), never asked upstream
    key = client.key
    our_query = data[:2] + upstreamwire.upstream_query(key)[2:]
    if not upstreamwire.reply_header_matches(data, our_query):
        return  # the stub drops it before reading it
    answer = reply.answer
    variants = (
        (_HEADS[0], question, 1232, True, answer.body_at(0), True, True),
        (_HEADS[1], _swapcase_name(question), 0, False, answer.body_at(3601), True, True),
        (_HEADS[2], question, 4096, False, answer.body_stale(), False, False),
    )
    for head, client_question, payload, do, body, tcp, ttl_checked in variants:
        wire = clientwire.render(answer, head, client_question, payload, do, body, tcp)
        check_served(wire, msg, head, client_question, tcp, payload, ttl_checked, "reply",
                     fold_case=client_question != question)
    if answer.lifetime <= 0:
        return
    check(reply.rcode in (dnswire.NOERROR, dnswire.NXDOMAIN), "an error reply would be cached", data.hex())
    check(answer.lifetime <= dnswire.MAX_TTL, "cached for longer than MAX_TTL", data.hex())
    if reply.rcode == dnswire.NOERROR and msg.answer:
        shortest = min(_ttl_bound(rrset.ttl) for rrset in msg.answer)
        check(answer.lifetime <= shortest, f"cached for {answer.lifetime} s, longer than the answer's TTL {shortest}",
              data.hex())
    # The stub caches it under the client's key; the cache file must give it back.
    store = cachemod.Cache(4, 3600.0)
    store.put(key, answer, 1000.0)
    blob = store.snapshot(1005.0)
    again = cachemod.Cache(4, 3600.0)
    check(again.restore(blob, 50.0, 5.0) == 1, "a cached reply does not come back from the cache file", data.hex())
    restored = again.stale(key, 50.0)
    check(restored is not None, "the restored entry is not served stale", data.hex())
    wire = clientwire.render(restored, _HEADS[0], question, 1232, False, restored.body_stale(), True)
    check_served(wire, msg, _HEADS[0], question, True, 1232, False, "reply via cache_file")


# --- the cache file ---------------------------------------------------------------------------


def cache_blob(data: bytes) -> bytes:
    """The cache file for ``data``: as it is when it starts with a magic, else records with their checksums fixed.

    ``data`` is then a clock reading's 37 bytes and records, each a 2-byte
    length and that many bytes of entry (what is left over goes at the end
    as it is): without the fix-up nearly every mutation would only exercise
    the checksums.
    """
    if data.startswith((cachefile.MAGIC, cachefile.MAGIC_V2)):
        return data
    parts, pos = [cachefile.MAGIC, data[:37]], 37
    while pos + 2 <= len(data):
        length = int.from_bytes(data[pos:pos + 2], "big")
        entry = data[pos + 2:pos + 2 + length]
        parts.append(cachefile.SYNC + struct.pack(">II", len(entry), zlib.crc32(entry)) + entry)
        pos += 2 + length
    parts.append(data[pos:])
    return b"".join(parts)


# The last byte of a cache key: DO + 2 * CD (clientwire._KEY_FLAGS), or just DO where CD is not part of the key.
_KEY_FLAG_BYTES = {flags[0] for flags in getattr(clientwire, "_KEY_FLAGS", (b"\x00", b"\x01"))}


def _check_key(key: bytes, blob: bytes) -> None:
    check(len(key) >= 6 and key[-1] in _KEY_FLAG_BYTES, "restored key has no type, class and flags byte", key.hex(),
          blob.hex())
    pos, name = 0, key[:-5]
    while pos < len(name) and name[pos]:
        check(name[pos] < 64, "restored key's name has a pointer or bad label", key.hex(), blob.hex())
        pos += name[pos] + 1
    check(pos == len(name) - 1 and len(name) <= 255, "restored key is no wire name", key.hex(), blob.hex())


def target_cache_file(data: bytes) -> None:
    """``cachefile.read``: returns what it could read or raises CacheFileError; what it loads can be served and saved again.

    Every restored entry has a well-formed key, serves as a stale answer that
    dnspython parses (question from the key, records inside the message,
    with and without EDNS), and the cache's own snapshot of them restores to
    the same entries.
    """
    blob = cache_blob(data)
    store = cachemod.Cache(64, 7 * 86400.0)
    try:
        contents = cachefile.read(blob, 0.0)
    except cachefile.CacheFileError:
        return
    check(contents.version == 2 or len(contents.records) + contents.refused <= blob.count(cachefile.SYNC),
          "more records read than the file holds", blob.hex())
    verdict = cachefile.judge_age(contents.saved, cachefile.ClockReading(1.8e9, True, b"b" * 16, 100.0))
    check(math.isfinite(verdict.age) and verdict.age >= 0, f"an age of {verdict.age!r}", blob.hex())
    count = store.load(contents.records, 100.0, verdict.age)
    check(isinstance(count, int) and count == len(store), "load's count is not what it loaded", blob.hex())
    entries = list(store._entries.items())
    for key, answer in entries:
        _check_key(key, blob)
        check(0 <= answer.rcode <= 15, f"restored RCODE {answer.rcode} does not fit the header", blob.hex())
        question = upstreamwire.question_of(key)
        for payload, tcp in ((1232, True), (0, True), (512, False)):
            wire = clientwire.render(answer, _HEADS[0], question, payload, False, answer.body_stale(), tcp)
            served = dnspython_parse(wire)
            check(served is not None, "a restored entry serves a reply dnspython cannot parse", blob.hex(), wire.hex())
            check(_question_wire(served) == question if served.question else False,
                  "a restored entry serves another question", blob.hex(), wire.hex())
    again = cachemod.Cache(64, 7 * 86400.0)
    check(again.restore(store.snapshot(100.0), 100.0, 0.0) == len(entries),
          "the snapshot of restored entries does not restore them all", blob.hex())
    for key, answer in entries:
        copy = again._entries.get(key)
        check(copy is not None and (copy.rcode, copy.ad, copy.an, copy.ns, copy.ar, copy.body_stale())
              == (answer.rcode, answer.ad, answer.an, answer.ns, answer.ar, answer.body_stale()),
              "an entry changed on its way through snapshot and restore", blob.hex())


# --- ICMP router discovery ---------------------------------------------------------------------

_ETH0 = router.Interface(2, "eth0", (ipaddress.IPv4Interface("198.18.1.10/24"),))


def with_checksum(message: bytes) -> bytes:
    """``message`` with a correct ICMP checksum (so mutations reach the checks after it)."""
    if len(message) < 4:
        return message
    zeroed = message[:2] + b"\x00\x00" + message[4:]
    return message[:2] + struct.pack("!H", rdisc.checksum(zeroed)) + message[4:]


def ipv4_datagram(source: str, destination: str, payload: bytes) -> bytes:
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0, 1, 1, 0,
                         ipaddress.IPv4Address(source).packed, ipaddress.IPv4Address(destination).packed)
    return header + payload


def target_rdisc(data: bytes) -> None:
    """RFC 1256 parsers: return a packet or raise PacketError; the router core takes any datagram.

    ``IPv4Datagram``/``Advertisement``/``Solicitation.from_bytes`` raise only
    PacketError (with a reason); an advertisement they read has 1..255
    entries that round-trip through ``bytes()``.  ``RouterDiscovery`` fed the
    raw bytes and a datagram wrapping them (checksum fixed) never raises,
    and only learns on-link routers that were advertised; from an off-link
    IP source it learns nothing, except FRR 8.4's byte-swapped source of an
    advertised router, which learns what the on-link source does (issue 21).
    """
    packet = _expect((rdisc.PacketError,), rdisc.IPv4Datagram.from_bytes, data)
    messages = [data, with_checksum(data)]
    if packet is not None:
        check(len(packet.payload) <= len(data) - 20, "datagram payload longer than the datagram")
        messages.append(packet.payload)
    fixed = messages[1]
    advertised = set()
    for message in messages:
        advert = _expect((rdisc.PacketError,), rdisc.Advertisement.from_bytes, message)
        if advert is not None:
            check(1 <= len(advert.entries) <= 255 and 0 <= advert.lifetime <= 0xFFFF, "impossible advertisement")
            check(rdisc.Advertisement.from_bytes(bytes(advert)) == advert, "advertisement does not round-trip",
                  message.hex())
            advertised.update(entry.address for entry in advert.entries)
        _expect((rdisc.PacketError,), rdisc.Solicitation.from_bytes, message)
    learned = []
    # On-link; off-link as Debian 12's FRR sends 198.18.1.1; off-link.
    for source in (None, "198.18.1.1", "1.1.18.198", "198.19.7.7"):
        discovery = router.RouterDiscovery(router_settings(config.defaults().router))
        discovery.set_interface(_ETH0, 0.0, 0.5)
        discovery.kernel_routes_observed(())
        if source is None:
            discovery.datagram_received(data, _ETH0.index, 1.0)  # the raw bytes as a datagram
        else:
            discovery.datagram_received(ipv4_datagram(source, "224.0.0.1", fixed), _ETH0.index, 2.0)
        discovery.drain()
        learned.append(discovery.status(2.0).routers)
        for address in discovery.routers:
            check(address in advertised and _ETH0.on_link(address), f"learned {address}, not advertised on-link",
                  data.hex())
    learned = learned[1:]
    frr_like = ipaddress.IPv4Address("198.18.1.1") in advertised
    check(learned[1] == (learned[0] if frr_like else ()), "the swapped source rule broken", data.hex(), learned)
    check(learned[2] == (), "learned from an off-link source", data.hex(), learned)
    deadline = discovery.deadline()
    if deadline is not None:
        discovery.timer_fired(deadline)
    discovery.status(3.0)
    discovery.drain()


# --- hosts files ------------------------------------------------------------------------------

_C_SPACE = re.compile(rb"[^ \t\n\v\f\r]+")  # glibc's isspace() in every locale it ships


def _inet_pton(text: str) -> str | None:
    """The address glibc's ``inet_pton`` reads (IPv4 first, then IPv6, as files-hosts.c), canonical; else None."""
    for family, kind in ((socket.AF_INET, ipaddress.IPv4Address), (socket.AF_INET6, ipaddress.IPv6Address)):
        try:
            return str(kind(socket.inet_pton(family, text)))
        except (OSError, ValueError):
            continue
    return None


def _dns_key(name: str) -> bytes | None:
    """The reference: a name as DNS matches it (ASCII case only); None if no DNS name."""
    try:
        raw = name.encode("ascii")
    except UnicodeEncodeError:
        return None
    raw = raw[:-1] if raw.endswith(b".") else raw
    labels = raw.split(b".")
    if not raw or any(not 0 < len(label) < 64 for label in labels):
        return None
    wire = b"".join(bytes([len(label)]) + label.lower() for label in labels) + b"\x00"
    return wire if len(wire) <= 255 else None


def glibc_hosts(raw: bytes) -> list[tuple[str, list[str]]]:
    """A model of glibc's nss_files hosts parser, on bytes (files-parse.c, files-hosts.c, nss_readline.c)."""
    entries = []
    for line in raw.split(b"\n"):  # fgets
        line = line.split(b"\x00", 1)[0].split(b"#", 1)[0]  # C string; strpbrk(line, "#\n")
        fields = _C_SPACE.findall(line)
        if len(fields) < 2:
            continue
        try:
            address = _inet_pton(fields[0].decode("ascii"))
        except UnicodeDecodeError:
            address = None
        if address is None:
            continue
        names = [field.decode("utf-8", "replace") for field in fields[1:]]
        names = [name for name in names if _dns_key(name) is not None]
        if names:
            entries.append((address, names))
    return entries


def target_hosts(data: bytes) -> None:
    """``parse_hosts`` and ``HostsDB``: never raise; exactly glibc's lines, fields and addresses, DNS names only.

    Differential against ``glibc_hosts`` (fields split on C ``isspace``
    only, ``#`` and NUL end a line, addresses through the C library's own
    ``inet_pton``), keeping the names DNS can ask for (ASCII, labels of 1..63
    octets, at most 255).  ``HostsDB`` answers every listed name
    (ASCII case-insensitively) with its addresses and no other name: no
    non-ASCII case folding (U+212A KELVIN SIGN is not ``k``).
    """
    text = data.decode("utf-8", "replace")  # as resolver_service reads hosts_files
    entries = hostsdb.parse_hosts(text)
    want = glibc_hosts(data)
    check(entries == want, "parse_hosts differs from glibc's reading", entries, want, data)
    db = hostsdb.HostsDB(entries)
    expected = set()
    for address, names in entries:
        family = dnswire.AAAA if ":" in address else dnswire.A
        for name in names:
            key = _dns_key(name)
            expected.add(key)
            found = db.lookup(key, family)
            texts = [record[1] if isinstance(record, tuple) else record for record in found or ()]
            check(found is not None and address in texts, f"{name!r} does not answer {address}", data)
        expected.add(_dns_key(ipaddress.ip_address(address).reverse_pointer))
    check(db.names() == expected, "HostsDB answers for names the file does not list",
          sorted(db.names() - expected), data)


# --- the hosts block and /etc/defaultrouter ---------------------------------------------------


def target_hosts_block(data: bytes) -> None:
    """``etcfiles.parse_block`` and ``merge_block``: never raise; what bootres writes it reads back, nothing else changes.

    The entries read from the block render and re-read to themselves (also
    as glibc reads them); merging a block leaves every byte outside the
    managed block as it was, and merging again changes nothing.
    ``parse_defaultrouter`` returns distinct IPv4 addresses.
    """
    text = data.decode("utf-8", "surrogateescape")  # as stubfiles_service reads /etc/hosts
    entries = etcfiles.parse_block(text)
    for entry in entries:
        check(ipaddress.ip_address(entry.address) is not None and str(ipaddress.ip_address(entry.address))
              == entry.address, "block entry address is not canonical", entry)
        # Fields as glibc splits them: no C blank (\x1c-\x1f and U+0085 are not), no "#", no NUL; A-Z folded.
        check(entry.names and all(name and not any(c in " \t\n\v\f\r#\x00" for c in name) for name in entry.names),
              "block entry names are not fields", entry)
        check(all(name == etcfiles.fold(name) for name in entry.names), "block entry names are not folded", entry)
    block = etcfiles.render_block(entries)
    merged = etcfiles.merge_block(text, block)
    check(etcfiles.parse_block(merged) == entries, "the rendered block does not read back", text, merged)
    check(etcfiles.merge_block(merged, block) == merged, "merging the same block twice changes the file", text)
    if "\x00" not in text:  # a NUL ends glibc's line wherever it is; bootres keeps the file's bytes
        meant = [(e.address, [n for n in e.names if _dns_key(n) is not None]) for e in entries
                 if _inet_pton(e.address) is not None]
        check(glibc_hosts(block.encode("utf-8", "surrogateescape")) == [(a, n) for a, n in meant if n],
              "glibc reads the written block differently", block)
    lines = etcfiles._lines(text)
    found = etcfiles._find_block(lines)
    if found is None:
        check(merged.startswith(text) and merged.endswith(block), "appending the block changed the file", text)
    else:
        begin, end = found
        check(merged == "".join(lines[:begin]) + block + "".join(lines[end + 1:]),
              "merging changed bytes outside the block", text)
    routers = etcfiles.parse_defaultrouter(text)
    check(len(set(routers)) == len(routers) and all(isinstance(r, ipaddress.IPv4Address) for r in routers),
          "parse_defaultrouter returned duplicates or non-IPv4", routers)


# --- resolv.conf ------------------------------------------------------------------------------

_LISTEN = [("127.0.0.35", 53)]


def target_resolvconf(data: bytes) -> None:
    """``resolvconf.parse``: never raises; and the files bootres writes from it read back as written.

    Nameservers are distinct IP addresses, search domains and options
    distinct blank-free words; the managed file names only bootres's listen
    addresses whatever the original held; the stopped file re-reads to the
    same nameservers (at most MAXNS), search list and options.
    """
    text = data.decode("utf-8", "replace")  # as bootres/shell/resolvguard_io.py reads it
    parsed = resolvconf.parse(text)
    check(len(set(parsed.nameservers)) == len(parsed.nameservers), "duplicate nameservers", text)
    for server in parsed.nameservers:
        check(_expect((ValueError,), ipaddress.ip_address, server) is not None, "nameserver is no address", server)
    for word in parsed.search + parsed.options:
        check(word and not re.search(r"[ \t\r\n]", word), "a word with a blank", word)
    check(parsed.nameserver_lines >= len(parsed.nameservers), "more nameservers than nameserver lines", text)
    managed = resolvconf.render_managed(_LISTEN, parsed.search, parsed.options)
    check(resolvconf.parse(managed).nameservers == ("127.0.0.35",), "the managed file names other nameservers",
          text, managed)
    check(managed.startswith(resolvconf.MARKER) and resolvconf.is_bootres(managed),
          "the managed file is not recognised as bootres's", managed)
    stopped = resolvconf.render_stopped(list(parsed.nameservers), parsed.search, parsed.options)
    again = resolvconf.parse(stopped)
    check((again.nameservers, again.search, again.options)
          == (parsed.nameservers[:resolvconf.MAXNS], parsed.search, tuple(dict.fromkeys(parsed.options))),
          "the stopped file does not read back", text, stopped)
    check(resolvconf.is_bootres(stopped) and stopped.startswith(resolvconf.STOPPED_MARKER), "stopped file not recognised")
    # Last, so that this one does not hide the checks above.
    check(len(set(parsed.options)) == len(parsed.options), "duplicate options (ResolvConf.options promises none)",
          parsed.options)


# --- configuration ----------------------------------------------------------------------------

_CONF_PATHS = ("/fuzz/bootres.conf", "/fuzz/conf.d/10-a.conf", "/fuzz/conf.d/20-b.conf")
_KEYS = {key for keys in config.SCHEMA.values() for key in keys}
_STRAY = re.compile("[\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]")


def _config_outcome(files):
    try:
        return config.parse(files, _CONF_PATHS[0])
    except config.ConfigError as exc:
        return [(p.path, p.line, p.message) for p in exc.problems]


def target_config(data: bytes) -> None:
    """``config.parse``: a Config or ConfigError, every problem at the line (``\\n``-counted) that caused it.

    Up to three files (the input split at NUL bytes): main file and conf.d
    snippets.  Each problem names one of the files and a line that exists;
    line 0 only for the main file; a line it names holds text (a comment
    only for a stray line-break character); a problem about a key is on a
    line that sets a key, an unknown or duplicate key on the line that
    writes it.  Every line with text and a stray line-break character
    (``\\r`` alone, ``\\v``, ``\\f``, ``\\x1c``-``\\x1e``, U+0085, U+2028,
    U+2029) is reported at that line.  CRLF endings change nothing.
    """
    parts = data.split(b"\x00")[:len(_CONF_PATHS)]
    files = [(path, part.decode("utf-8", "replace")) for path, part in zip(_CONF_PATHS, parts)]
    outcome = _config_outcome(files)
    numbered = {path: [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]
                for path, text in files}
    strays = {(path, number) for path, lines in numbered.items() for number, line in enumerate(lines, start=1)
              if line.strip() and _STRAY.search(line)}
    if isinstance(outcome, config.Config):
        check(not strays, "a stray line-break character went unreported", files)
        check(outcome.sources == tuple(path for path, _ in files), "Config.sources is not the files read")
    else:
        check(bool(outcome), "ConfigError without problems", files)
        reported = set()
        for path, line, message in outcome:
            check(path in numbered, f"problem names a file not read: {path}", files)
            lines = numbered[path]
            check(0 <= line <= len(lines), f"problem at line {line} of a {len(lines)}-line file", files, message)
            check(line > 0 or path == _CONF_PATHS[0], "line 0 outside the main file", files, message)
            if line == 0:
                continue
            text = lines[line - 1]
            check(bool(text.strip()), f"problem at blank line {path}:{line}: {message}", files)
            if message.startswith("stray "):
                check(bool(_STRAY.search(text)), f"stray-character problem at a line without one: {message}", files)
                reported.add((path, line))
                continue
            check(text.strip()[0] not in "#;", f"problem at a comment line {path}:{line}: {message}", files)
            if message.startswith(("unknown key ", "duplicate key ")):
                key = re.split(r"\s[#;]", text, maxsplit=1)[0].split("=", 1)[0].strip()
                check(message.startswith(f"{message.split(' ', 1)[0]} key {key!r} in ["),
                      f"{message!r} reported at line {text!r}", files)
            elif message.split(":", 1)[0] in _KEYS:
                check(text[:1] not in " \t" and text.split("=", 1)[0].strip() in _KEYS,
                      f"{message!r} reported at line {text!r}, which sets no key", files)
        check(strays <= reported, "a stray line-break character went unreported", sorted(strays - reported), files)
    if any("\r\n" in text for _, text in files) and not any("\r\r" in text for _, text in files):
        unix = [(path, text.replace("\r\n", "\n")) for path, text in files]
        check(_config_outcome(unix) == outcome, "CRLF line endings change the outcome", files)


# --- upstream sources -------------------------------------------------------------------------


def _check_record(record, data: bytes) -> None:
    seen = set()
    for host, port in record.servers:
        check(1 <= port <= 65535, "server port out of range", record)
        address = _expect((ValueError,), ipaddress.ip_address, host)
        check(address is not None and str(address) == host, "server is no canonical address", host, data)
        check(not address.is_unspecified and not address.is_multicast, "unusable server kept", host, data)
        if address.version == 6 and address.is_link_local:
            check(bool(address.scope_id), "link-local server without an interface", host, data)
        check((host, port) not in seen, "duplicate server", host, data)
        seen.add((host, port))
    for domain in record.search + record.routing:
        check(_expect((ValueError,), sources.normalize_domain, domain) == domain, "domain not normalised", domain,
              data)
    check(len(set(record.search)) == len(record.search) and len(set(record.routing)) == len(record.routing)
          and not set(record.search) & set(record.routing), "duplicate domains", record, data)
    selection = sources.select([record])
    listed = {spec.address for spec in selection.routing.upstreams}
    check(listed <= set(record.servers), "selection uses servers the record does not name", listed, data)


def target_source_resolv(data: bytes) -> None:
    """``read_resolv_conf_record``: a record and warnings, or SourceError; servers usable, domains normalised.

    Its servers are the usable ones of ``resolvconf.parse``'s nameservers
    (port 53), in order; ``select`` takes the record without raising.
    """
    try:
        record, warnings = sources.read_resolv_conf_record("dhclient", "dhclient eth0", "/run/fuzz/resolv.conf", data)
    except sources.SourceError as exc:
        check(bool(str(exc)), "SourceError without a message")
        return
    check(all(isinstance(w, str) for w in warnings), "a warning is not text")
    parsed = resolvconf.parse(data.decode("utf-8"))
    named = iter(_canonical(text) for text in parsed.nameservers)
    check(all(any(host == other for other in named) for host, _ in record.servers),  # a subsequence, in order
          "servers are not resolv.conf's nameservers in order", record.servers, parsed.nameservers)
    check(all(port == 53 for _, port in record.servers), "resolv.conf cannot name a port")
    _check_record(record, data)


def _canonical(text: str) -> str:
    return str(ipaddress.ip_address(text))


def target_source_networkd(data: bytes) -> None:
    """``read_networkd_link``: (record or None, warnings), or SourceError; servers usable, domains normalised."""
    try:
        record, warnings = sources.read_networkd_link("networkd lab0", "/run/systemd/netif/links/7", data)
    except sources.SourceError as exc:
        check(bool(str(exc)), "SourceError without a message")
        return
    check(all(isinstance(w, str) for w in warnings), "a warning is not text")
    if record is not None:
        check(isinstance(record.default_route, bool), "default_route is not a bool", record)
        _check_record(record, data)


TARGETS = {
    "query": target_query,
    "reply": target_reply,
    "cache_file": target_cache_file,
    "rdisc": target_rdisc,
    "hosts": target_hosts,
    "hosts_block": target_hosts_block,
    "resolvconf": target_resolvconf,
    "config": target_config,
    "source_resolv": target_source_resolv,
    "source_networkd": target_source_networkd,
}
DNS_TARGETS = ("query", "reply", "cache_file")
