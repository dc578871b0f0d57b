"""The seed corpora: small valid (and a few classic invalid) inputs per target, written by ``python -m fuzz seeds``.

Deterministic, so the files in ``fuzz/corpus/<target>/`` only change when
this list does.  Each file is named by the SHA-1 of its bytes, as libFuzzer
names what it adds.
"""

from __future__ import annotations

import hashlib
import ipaddress
import struct
import zlib
from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from bootres.core import cache as cachemod
from bootres.core import cachefile, rdisc, upstreamwire

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# From issue 10: valid question www.example.test A, a CNAME whose target points to itself.
ISSUE_SELF_CNAME = bytes.fromhex(
    "42428180000100010000000003777777076578616d706c6504746573740000010001c00c000500010000012c0002c02e"
)


def _query(name: str, rdtype: str, qid: int = 0x1234, rdclass: str = "IN", edns: int = -1, do: bool = False,
           options=None, flags: int = dns.flags.RD, payload: int = 1232) -> bytes:
    msg = dns.message.Message(id=qid)
    msg.flags = flags
    msg.question.append(dns.rrset.RRset(dns.name.from_text(name), dns.rdataclass.from_text(rdclass),
                                        dns.rdatatype.from_text(rdtype)))
    if edns >= 0:
        msg.use_edns(edns, dns.flags.DO if do else 0, payload, options=options)
    return msg.to_wire()


def query_seeds() -> list[bytes]:
    cookie = dns.edns.GenericOption(10, bytes(range(8)))
    padding = dns.edns.GenericOption(12, b"\x00" * 12)
    nsid = dns.edns.GenericOption(3, b"")
    seeds = [
        _query("www.example.test.", "A"),
        _query("WwW.ExAmPlE.TeSt.", "AAAA", edns=0, do=True),
        _query("mail.example.test.", "MX", edns=0, options=[cookie]),
        _query("mail.example.test.", "TXT", edns=0, options=[cookie, padding]),
        _query("example.test.", "SOA", edns=0, options=[nsid]),
        _query("example.test.", "ANY", edns=0),
        _query("version.bind.", "TXT", rdclass="CH"),
        _query("example.test.", "A", rdclass="HS"),
        _query("example.test.", "AXFR"),
        _query("example.test.", "OPT"),
        _query("example.test.", "A", edns=1),
        _query("1.0.18.198.in-addr.arpa.", "PTR", flags=dns.flags.RD | dns.flags.CD),
        _query("example.test.", "A", flags=dns.flags.RD | dns.flags.AD),
        b"\x12\x34\x00\x00" + b"\x00" * 8,  # bare header (the daemon's readiness probe)
        b"\x12\x34\x28\x00" + _query("example.test.", "SOA")[4:],  # opcode UPDATE
    ]
    two = bytearray(_query("a.test.", "A"))
    two[5] = 2
    seeds.append(bytes(two) + b"\xc0\x0c\x00\x1c\x00\x01")  # two questions, the second compressed
    compressed = bytes.fromhex("123401000001000000000000") + b"\xc0\x0c\x00\x01\x00\x01"  # pointer in the question
    seeds.append(compressed)
    return seeds


def _reply(qname: str, qtype: str, sections=(), rcode: int = 0, qid: int = 0x4242, edns: int = -1,
           flags: int = dns.flags.QR | dns.flags.RD | dns.flags.RA, options=None, ednsflags: int = 0) -> bytes:
    """A reply rendered by dnspython (with name compression): sections are (section index, name, ttl, type, rdata...)."""
    msg = dns.message.Message(id=qid)
    msg.flags = flags
    msg.question.append(dns.rrset.RRset(dns.name.from_text(qname), dns.rdataclass.IN, dns.rdatatype.from_text(qtype)))
    for index, name, ttl, rdtype, *texts in sections:
        rrset = dns.rrset.from_text(name, ttl, "IN", rdtype, *texts)
        (msg.answer, msg.authority, msg.additional)[index].append(rrset)
    if edns >= 0:
        msg.use_edns(edns, ednsflags, 1232, options=options)
    msg.set_rcode(rcode)
    return msg.to_wire()


SOA = "ns1.example.test. hostmaster.example.test. 2024010101 3600 900 604800 300"
RRSIG = "A 13 3 300 20300101000000 20200101000000 12345 example.test. " + "A" * 86 + "=="


def reply_seeds() -> list[bytes]:
    q = "www.example.test."
    seeds = [
        ISSUE_SELF_CNAME,
        _reply(q, "A", [(0, q, 300, "A", "198.18.0.1", "198.18.0.2")]),
        _reply(q, "A", [(0, q, 300, "CNAME", "web.example.test."), (0, "web.example.test.", 60, "A", "198.18.0.9")]),
        _reply(q, "AAAA", [(0, q, 300, "AAAA", "2001:db8::1")], edns=0),
        _reply(q, "A", [(1, "example.test.", 900, "SOA", SOA)], rcode=dns.rcode.NXDOMAIN),
        _reply(q, "TXT", [(1, "example.test.", 900, "SOA", SOA)], edns=0),
        _reply("example.test.", "MX", [(0, "example.test.", 3600, "MX", "10 mail.example.test."),
                                       (2, "mail.example.test.", 3600, "A", "198.18.0.25")]),
        _reply("_sip._tcp.example.test.", "SRV", [(0, "_sip._tcp.example.test.", 600, "SRV",
                                                   "10 60 5060 sip.example.test.")]),
        _reply("example.test.", "NAPTR", [(0, "example.test.", 600, "NAPTR",
                                           '100 10 "S" "SIP+D2U" "" _sip._udp.example.test.')]),
        _reply(q, "A", [(0, q, 300, "A", "198.18.0.1"), (0, q, 300, "RRSIG", RRSIG)], edns=0,
               ednsflags=dns.flags.DO, flags=dns.flags.QR | dns.flags.RD | dns.flags.RA | dns.flags.AD),
        _reply(q, "HTTPS", [(0, q, 300, "HTTPS", '1 . alpn="h2,h3" ipv4hint="198.18.0.1"')]),
        _reply(q, "TXT", [(0, q, 300, "TXT", '"v=spf1 -all"', '"hello" "world"')]),
        _reply("1.0.18.198.in-addr.arpa.", "PTR", [(0, "1.0.18.198.in-addr.arpa.", 300, "PTR", q)]),
        _reply(q, "CAA", [(0, q, 300, "CAA", '0 issue "ca.example.test"')]),
        _reply("sub.example.test.", "A", [(0, "example.test.", 300, "DNAME", "example.other."),
                                          (0, "sub.example.test.", 300, "CNAME", "sub.example.other.")]),
        _reply(q, "A", rcode=dns.rcode.SERVFAIL),
        _reply(q, "A", rcode=dns.rcode.BADVERS, edns=0),
        _reply(q, "A", flags=dns.flags.QR | dns.flags.RD | dns.flags.RA | dns.flags.TC),
        _reply(q, "A", [(0, q, 0x80000000, "A", "198.18.0.1")]),  # RFC 2181 section 8
        _reply(q, "A", [(0, q, 300, "A", "198.18.0.1")], edns=0, options=[dns.edns.GenericOption(10, bytes(24))]),
        _reply(q, "A", [(0, q, 300, "TYPE65280", r"\# 4 0a0b0c0d")]),
    ]
    # OPT not last (an additional record after it): dnspython's path in read_reply.
    wire = bytearray(_reply(q, "A", [(0, q, 300, "A", "198.18.0.1")], edns=0))
    wire[10:12] = b"\x00\x02"
    seeds.append(bytes(wire) + dns.name.from_text("ns.example.test.").to_wire()
                 + struct.pack(">HHIH", 1, 1, 300, 4) + bytes([198, 18, 0, 53]))
    # A pointer into the header: means something else once bootres rewrites the ID.
    seeds.append(bytes.fromhex("4242818000010001000000000377777707" "6578616d706c6504746573740000010001")
                 + b"\xc0\x0c\x00\x05\x00\x01\x00\x00\x01\x2c\x00\x02\xc0\x00")
    return seeds


def cache_seeds() -> list[bytes]:
    """A cache file holding the reply seeds, the previous release's format of it, and the same in the target's form.

    The target's form (fuzz/targets.py ``cache_blob``): the clock reading,
    then each entry behind a 2-byte length: one seed per entry, one with all.
    """
    store = cachemod.Cache(100, 86400.0)
    for index, wire in enumerate(reply_seeds()):
        reply = upstreamwire.read_reply(wire)
        if reply is None or reply.answer.lifetime <= 0:
            continue
        msg = dns.message.from_wire(wire)
        q = msg.question[0]
        key = q.name.canonicalize().to_wire() + struct.pack(">HH", q.rdtype, q.rdclass) + bytes([index % 2])
        store.put(key, reply.answer, 1000.0)
    whole = store.snapshot(1000.0, cachefile.ClockReading(1.8e9, True, b"a" * 16, 50.0))
    head = len(cachefile.MAGIC) + 37
    entries, pos = [], head
    while pos < len(whole):
        length = struct.unpack_from(">I", whole, pos + 4)[0]
        entries.append(whole[pos + 12:pos + 12 + length])
        pos += 12 + length
    v2 = b"".join(entries)
    seeds = [whole, cachefile.MAGIC_V2 + struct.pack(">II", len(entries), zlib.crc32(v2)) + v2, b"\x00"]
    stamp = whole[len(cachefile.MAGIC):head]
    seeds += [stamp + len(entry).to_bytes(2, "big") + entry for entry in entries]
    seeds.append(stamp + b"".join(len(entry).to_bytes(2, "big") + entry for entry in entries))
    return seeds


def rdisc_seeds() -> list[bytes]:
    def advert(lifetime, entries):
        return bytes(rdisc.Advertisement(lifetime, tuple(
            rdisc.RouterEntry(ipaddress.IPv4Address(a), p) for a, p in entries)))

    one = advert(1800, [("198.18.1.1", 0)])
    two = advert(600, [("198.18.1.1", 10), ("198.18.1.2", rdisc.NOT_A_DEFAULT)])
    wide = bytearray(struct.pack("!BBHBBH", 9, 0, 0, 1, 3, 1800) + ipaddress.IPv4Address("198.18.1.3").packed
                     + struct.pack("!iI", 5, 0))
    wide[2:4] = struct.pack("!H", rdisc.checksum(bytes(wide)))
    solicit = bytes(rdisc.Solicitation())
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(one), 0, 0, 1, 1, 0,
                         ipaddress.IPv4Address("198.18.1.1").packed, ipaddress.IPv4Address("224.0.0.1").packed)
    return [one, two, bytes(wide), solicit, header + one, header[:10], one[:8]]


def hosts_seeds() -> list[bytes]:
    return [
        b"127.0.0.1\tlocalhost\n127.0.1.1\thost1.example.test host1\n\n"
        b"# The following lines are desirable for IPv6 capable hosts\n"
        b"::1     localhost ip6-localhost ip6-loopback\nff02::1 ip6-allnodes\nff02::2 ip6-allrouters\n",
        b"198.18.0.5  nfs1.example.test nfs1 # file server\n198.18.0.6 NFS1.example.test.\n"
        b"fe80::1%eth0 scoped\n2001:db8::5 nfs1.example.test\nnot-an-ip broken\n",
        "198.18.0.7 \u212aey.test k\u00fcche.test xn--kche-0ra.test\n".encode(),
        b"198.18.0.8 a\x1cb c\x0bd\x0ce\rf\n198.18.0.9\x0bv.test\r\n198.18.0.10 x#y z\n198.18.0.11 n\x00ul\n",
        b"01.2.3.4 leading.zero\n::ffff:198.18.0.1 mapped.test\n1.2.3.4.5 five\n" + b"198.18.0.12 " + b"a" * 64 + b"\n",
    ]


BLOCK = (b"127.0.0.1 localhost\n# BEGIN bootres\n# Managed by bootres: lines between BEGIN and END are rewritten, "
         b"edits are lost.\n198.18.1.10\tweb1.example.com web1\n198.18.1.1\tsite-router\n# END bootres\n"
         b"::1 localhost\n")


def hosts_block_seeds() -> list[bytes]:
    return [
        BLOCK,
        BLOCK.replace(b"\n", b"\r\n"),
        b"# BEGIN bootres\n198.18.1.10 a\n",  # no END: left alone
        b"# BEGIN bootres\n# BEGIN bootres\n198.18.1.10 a\n# END bootres  \n",
        b"198.18.1.1\n198.18.1.2\n# comment\n2001:db8::1\n198.18.1.1\n",  # /etc/defaultrouter
        b"# BEGIN bootres\n198.18.1.10 a\x1cb\x0bc\n# END bootres",
    ]


def resolvconf_seeds() -> list[bytes]:
    return [
        b"# Generated by dhclient\ndomain example.test\nsearch example.test corp.example\n"
        b"nameserver 198.18.0.10\nnameserver 198.18.0.11\noptions edns0 timeout:2\n",
        b"nameserver fe80::1%eth0\nnameserver 2001:db8::53\nnameserver 198.18.0.10 extra\nsortlist 130.155.160.0/255.255.240.0\n",
        b"nameserver\nnameserver bad\nbogus line\n; comment\n  nameserver 198.18.0.12\r\n",
        b"# managed by bootres: names are resolved by its local caching resolver.\nnameserver 127.0.0.35\n",
    ]


def config_seeds() -> list[bytes]:
    seeds = [(ROOT / "conf" / "bootres.conf").read_bytes()]
    seeds += [path.read_bytes() for path in sorted((ROOT / "tests" / "data" / "config").glob("*.conf"))]
    seeds += [
        b"[resolver]\nupstreams = 198.18.0.10 corp.example=198.18.5.53\n  [2001:db8::1]:5353 # second\n"
        b"timeout = 2s\n\x00[resolver]\ntimeout = 1s\n\x00[hosts]\npin = a.example.com\n",
        b"[resolver]\r\ntimeout = 3s\r\n\r\n[router]\r\nstatic = 198.18.1.1\r\n",
        b"[resolver]\ntimeout = 3s\x0cstrategy = hedge\n\x0c\n[hosts]\nself = no\xe2\x80\xa8file = /x\n",
    ]
    return seeds


def source_resolv_seeds() -> list[bytes]:
    return resolvconf_seeds()[:3] + [b"nameserver 127.0.0.53\nnameserver 0.0.0.0\nnameserver ff02::1\nsearch .\n"]


def source_networkd_seeds() -> list[bytes]:
    base = (b"# This is private data. Do not parse.\nADMIN_STATE=configured\nOPER_STATE=routable\n"
            b"CARRIER_STATE=carrier\nADDRESS_STATE=routable\nNETWORK_FILE=/etc/systemd/network/50-lab0.network\n")
    return [
        base + b"DNS=198.18.0.10 198.18.0.11 fe80::5054:ff:fe12:3456\nDOMAINS=example.test\n",
        base + b"DNS=198.18.5.53:5353#ns.corp.example [fe80::53]:53%7#ns6.corp.example\n"
               b"ROUTE_DOMAINS=~corp.example\nDNS_DEFAULT_ROUTE=no\n",
        base + b"DNS=\nDOMAINS=. example.test\nROUTE_DOMAINS=~.\n",
        b"ADMIN_STATE=unmanaged\nOPER_STATE=off\n",
    ]


SEEDS = {
    "query": query_seeds,
    "reply": reply_seeds,
    "cache_file": cache_seeds,
    "rdisc": rdisc_seeds,
    "hosts": hosts_seeds,
    "hosts_block": hosts_block_seeds,
    "resolvconf": resolvconf_seeds,
    "config": config_seeds,
    "source_resolv": source_resolv_seeds,
    "source_networkd": source_networkd_seeds,
}


def write(corpus: Path) -> dict[str, int]:
    """Write every target's seeds under ``corpus``/TARGET/SHA1; returns how many each has."""
    written = {}
    for target, make in SEEDS.items():
        directory = corpus / target
        directory.mkdir(parents=True, exist_ok=True)
        for old in directory.iterdir():  # the seed corpus is exactly this list: nothing stale stays
            old.unlink()
        seeds = make()
        for seed in seeds:
            (directory / hashlib.sha1(seed).hexdigest()).write_bytes(seed)
        written[target] = len(seeds)
    return written
