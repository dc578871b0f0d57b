"""Issue 10's RFC points over the wire, next to what unbound and dnsmasq do with the same upstream.

bootres runs as its own process in the ``host`` namespace (tests/net/
resolver_harness.py); its upstreams, real nsd, a validating unbound or a
scripted fakedns, are in ``servers``.  Where a peer is asked too it runs in
``host`` beside bootres, forwarding to the same upstream: Debian 12's
unbound 1.17.1 and the dnsmasq installed here (2.90).  Each test says what
the peers do, as measured with this lab; the core tests of the same points
are in tests/core/test_conformance.py.
"""

import socket
import struct
import time

import dns.edns
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset

from resolver_harness import LISTEN, UPSTREAMS, Client, ResolverProcess, resolver_config, upstream_lab

UNBOUND, DNSMASQ = "127.0.0.2", "127.0.0.3"  # the peers, on the host beside bootres (127.0.0.35)


def ask(ns, server, name, rdtype="A", *, cd=False, tcp=False, **kw):
    """One query from inside ``ns`` with dnspython; (reply, milliseconds)."""
    query = dns.message.make_query(name, rdtype, **kw)
    if cd:
        query.flags |= dns.flags.CD

    def go():
        kind = socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM
        with socket.socket(socket.AF_INET, kind) as sock:
            sock.settimeout(3.0)
            if tcp:
                sock.connect((server, 53))
            sock.setblocking(False)
            started = time.perf_counter()
            if tcp:
                reply = dns.query.tcp(query, server, 3.0, sock=sock)
            else:
                reply = dns.query.udp(query, server, 3.0, sock=sock)
            return reply, (time.perf_counter() - started) * 1000

    return ns.call(go)


def start_bootres(host, tmp_path, upstream, **keys):
    return ResolverProcess(host, resolver_config(tmp_path, upstreams=upstream, **keys), tmp_path)


# --- CD (RFC 4035 section 3.2.2, RFC 6840 section 5.9)


def test_cd_gets_the_data_a_validating_upstream_refuses_without_it(lab, tmp_path):
    # A bogus zone: unbound validates with a trust anchor (a DS) for
    # example.test, whose unsigned zone has no DNSKEY to match.  Without CD
    # unbound answers SERVFAIL; with CD it hands over the data, and so does
    # dnsmasq in front of it (both checked below).  bootres used to drop CD on
    # the way up and share one cache entry: SERVFAIL for +cdflag.
    host, servers = upstream_lab(lab)
    lab.nsd(servers, UPSTREAMS[0], records={"www": "198.18.0.80"}, wildcard=None, rate_limit=False)
    lab.unbound(servers, UPSTREAMS[1], forward_to=[UPSTREAMS[0]],
                extra='  module-config: "validator iterator"\n'
                      f'  trust-anchor: "example.test. DS 12345 13 2 {"ab" * 32}"\n')
    lab.dnsmasq(host, DNSMASQ, forward_to=[UPSTREAMS[1]])
    resolver = start_bootres(host, tmp_path, UPSTREAMS[1])
    for server in (LISTEN, DNSMASQ):
        for _ in range(2):  # a miss, then what the cache (or dnsmasq's) holds for each flag
            plain, _ = ask(host, server, "www.example.test", use_edns=0)
            assert plain.rcode() == dns.rcode.SERVFAIL and not plain.answer, (server, plain)
            checked_off, _ = ask(host, server, "www.example.test", use_edns=0, cd=True)
            assert checked_off.rcode() == dns.rcode.NOERROR and checked_off.flags & dns.flags.CD, (server, checked_off)
            assert [rd.to_text() for rd in checked_off.answer[0]] == ["198.18.0.80"]
    dig = host.run("dig", "+short", "+time=2", "+tries=1", "+cdflag", f"@{LISTEN}", "www.example.test")
    assert dig.stdout.split() == ["198.18.0.80"]
    assert resolver.stop() == 0


# --- error replies without a question, and extended RCODEs, from the upstream


def scripted_upstream(lab, servers, address):
    """A fakedns whose reply depends on the first label: noq-RCODE (no question), ext-RCODE (in the OPT), big."""
    upstream = lab.fakedns(servers, address, default_address="198.18.0.80")

    def handle(query, peer):
        label = query.question[0].name.labels[0].decode()
        kind, _, rcode = label.partition("-")
        if kind == "noq":  # what nsd sends to a class it does not serve: header only
            return query.id.to_bytes(2, "big") + struct.pack(">5H", 0x8100 | dns.rcode.from_text(rcode), 0, 0, 0, 0)
        if kind == "ext":
            reply = dns.message.make_response(query)
            reply.use_edns(0, 0, 1232)
            reply.set_rcode(dns.rcode.from_text(rcode))
            return reply
        if kind == "big":  # 119 A records: 1,950 bytes, sent whole over UDP whatever we advertise
            reply = dns.message.make_response(query)
            reply.answer.append(dns.rrset.from_text_list(
                query.question[0].name, 300, "IN", "A", [f"198.18.1.{i}" for i in range(1, 120)]))
            return reply.to_wire(max_size=65535)
        return upstream.answer(query)

    upstream.handle = handle
    return upstream


def test_an_error_reply_without_the_question_is_passed_on_within_100_ms(lab, tmp_path):
    # unbound turns it into SERVFAIL in milliseconds (asserted below); dnsmasq
    # drops it, like bootres did, and the client waits out its timeout.
    host, servers = upstream_lab(lab)
    scripted_upstream(lab, servers, UPSTREAMS[0])
    lab.unbound(host, UNBOUND, forward_to=[UPSTREAMS[0]])
    resolver = start_bootres(host, tmp_path, UPSTREAMS[0])
    client = Client(host)
    for rcode in ("REFUSED", "FORMERR", "SERVFAIL"):
        reply, ms = client.ask(f"noq-{rcode}.example.test", timeout=1.0)
        assert dns.rcode.to_text(reply.rcode()) == rcode and ms < 100, (reply, ms)
        peer, ms = ask(host, UNBOUND, f"noq-{rcode}.example.test")
        assert peer.rcode() == dns.rcode.SERVFAIL and ms < 100
    assert resolver.status()["bad_replies"] == 0
    assert resolver.stop() == 0


def test_an_upstream_badvers_or_badcookie_is_servfail_never_noerror(lab, tmp_path):
    # Cut to the header's 4 bits BADVERS read NOERROR-with-nothing, BADCOOKIE
    # YXRRSET.  unbound 1.17 still answers BADVERS as NOERROR with nothing and
    # BADCOOKIE as SERVFAIL; dnsmasq passes both on, to an EDNS client that
    # sent no cookie and speaks EDNS 0 (bootres's reasons: docs/resolver.md).
    host, servers = upstream_lab(lab)
    scripted_upstream(lab, servers, UPSTREAMS[0])
    resolver = start_bootres(host, tmp_path, UPSTREAMS[0])
    client = Client(host)
    for rcode in ("BADVERS", "BADCOOKIE"):
        for edns in (-1, 0):
            reply, ms = client.ask(f"ext-{rcode}.example.test", use_edns=edns, timeout=1.0)
            assert reply.rcode() == dns.rcode.SERVFAIL and not reply.answer and ms < 100, (reply, ms)
    assert resolver.query("ext-BADVERS.example.test")["reason"] == "every upstream answered BADVERS"
    assert resolver.stop() == 0


# --- classes other than IN


def test_other_classes_are_refused_at_once_and_never_reach_the_upstream(lab, tmp_path):
    # unbound answers CH version.bind/id.server/hostname.bind with its own
    # version and host name, REFUSED with hide-version and hide-identity (as
    # here, asserted below), and REFUSED to HS and class 42.  dnsmasq answers
    # version.bind with its version, NOTIMP to the other CH names, and
    # forwards HS and 42: nsd's question-less REFUSED is then dropped and the
    # client waits its whole timeout.
    host, servers = upstream_lab(lab)
    upstream = scripted_upstream(lab, servers, UPSTREAMS[0])
    lab.unbound(host, UNBOUND, forward_to=[UPSTREAMS[0]], extra="  hide-version: yes\n  hide-identity: yes\n")
    resolver = start_bootres(host, tmp_path, UPSTREAMS[0])
    client = Client(host)
    asked_before = upstream.udp_queries
    for name, rdtype, rdclass in (("version.bind", "TXT", "CH"), ("id.server", "TXT", "CH"),
                                  ("hostname.bind", "TXT", "CH"), ("www.example.test", "A", "HS"),
                                  ("www.example.test", "A", 42)):
        for edns in (-1, 0):
            reply, ms = client.ask(name, rdtype, rdclass=rdclass, use_edns=edns, timeout=1.0)
            assert reply.rcode() == dns.rcode.REFUSED and not reply.answer and ms < 100, (name, rdclass, reply, ms)
            peer, _ = ask(host, UNBOUND, name, rdtype, rdclass=rdclass, use_edns=edns)
            assert peer.rcode() == dns.rcode.REFUSED and not peer.answer
    chaos = host.run("dig", "+time=1", "+tries=1", "-c", "CH", f"@{LISTEN}", "version.bind", "TXT").stdout
    assert "status: REFUSED" in chaos
    assert upstream.udp_queries == asked_before
    assert resolver.status()["refused"] >= 10
    assert resolver.stop() == 0


# --- hosts names for other types (RFC 8020)


def test_a_hosts_name_is_nodata_with_an_soa_for_other_types_never_the_upstreams_nxdomain(lab, tmp_path):
    # nsd has no such name (NXDOMAIN, which contradicted the file's A record
    # when bootres forwarded MX).  dnsmasq answers a --host-record name's MX
    # NOERROR with no record and its ANY with the addresses; unbound answers
    # its local-data MX and ANY NOERROR with no record and no SOA.
    host, servers = upstream_lab(lab)
    lab.nsd(servers, UPSTREAMS[0], records={"www": "198.18.0.80"}, wildcard=None, rate_limit=False)
    lab.dnsmasq(host, DNSMASQ, forward_to=[UPSTREAMS[0]], records={"nfs1.example.test": "198.18.0.5"})
    hosts = tmp_path / "hosts"
    hosts.write_text("198.18.0.5 nfs1.example.test\n")
    resolver = start_bootres(host, tmp_path, UPSTREAMS[0], hosts_files=str(hosts))
    client = Client(host)
    assert client.ask("gone.example.test")[0].rcode() == dns.rcode.NXDOMAIN  # what the upstream says of others
    for rdtype in ("MX", "TXT", "AAAA", "HTTPS"):
        reply, ms = client.ask("nfs1.example.test", rdtype)
        assert reply.rcode() == dns.rcode.NOERROR and not reply.answer and ms < 100, (rdtype, reply)
        (soa,) = reply.authority
        assert soa.rdtype == dns.rdatatype.SOA and soa.name.to_text() == "nfs1.example.test."
        assert soa.ttl == 1 and soa[0].minimum == 1
        peer, _ = ask(host, DNSMASQ, "nfs1.example.test", rdtype)
        assert peer.rcode() == dns.rcode.NOERROR and not peer.answer
    for server in (LISTEN, DNSMASQ):
        everything, _ = ask(host, server, "nfs1.example.test", "ANY")
        assert [(r.rdtype, rd.to_text()) for r in everything.answer for rd in r] == [(dns.rdatatype.A, "198.18.0.5")]
    status = resolver.status()
    assert status["cache"]["misses"] == 1  # only gone.example.test went upstream
    assert resolver.stop() == 0


# --- the UDP size cap (DNS flag day 2020)


def test_udp_answers_over_1232_bytes_are_truncated_whatever_the_clients_buffer(lab, tmp_path):
    # unbound truncates to the client's buffer, capped at its max-udp-size
    # (4096 by default in 1.17): with +bufsize=1232 it sets TC like bootres
    # (asserted below), with 4096 it sends these 1,950 bytes.  dnsmasq 2.90
    # sends them even to a 512-byte client.  bootres caps at the 1232 it
    # advertises: larger datagrams fragment, and fragments get lost or spoofed.
    host, servers = upstream_lab(lab)
    scripted_upstream(lab, servers, UPSTREAMS[0])
    lab.unbound(host, UNBOUND, forward_to=[UPSTREAMS[0]])
    resolver = start_bootres(host, tmp_path, UPSTREAMS[0])
    for payload in (4096, 1400, 1232, 512, None):
        edns = {"use_edns": 0, "payload": payload} if payload else {"use_edns": False}
        reply, _ = ask(host, LISTEN, "big-1.example.test", **edns)
        assert reply.flags & dns.flags.TC and not reply.answer, payload
        assert reply.question[0].name.to_text() == "big-1.example.test." and reply.edns == (0 if payload else -1)
        assert reply.edns < 0 or reply.payload == 1232
        if payload in (1232, 512, None):
            peer, _ = ask(host, UNBOUND, "big-1.example.test", **edns)
            assert peer.flags & dns.flags.TC and not peer.answer
    whole, _ = ask(host, LISTEN, "big-1.example.test", tcp=True, use_edns=0, payload=4096)
    assert not whole.flags & dns.flags.TC and len(whole.answer[0]) == 119
    dig = host.run("dig", "+short", "+time=2", "+tries=1", "+bufsize=4096", f"@{LISTEN}", "big-1.example.test")
    assert len(dig.stdout.split()) == 119  # dig saw TC and asked again over TCP
    assert resolver.stop() == 0


# --- COOKIE (RFC 7873 section 5.2.2)


def test_a_malformed_cookie_gets_formerr_and_a_valid_one_an_answer(lab, tmp_path):
    # unbound 1.17 and dnsmasq ignore the option either way and answer both.
    host, servers = upstream_lab(lab)
    lab.fakedns(servers, UPSTREAMS[0], default_address="198.18.0.80")
    resolver = start_bootres(host, tmp_path, UPSTREAMS[0])
    bad = host.run("dig", "+time=1", "+tries=1", "+cookie=0102030405", f"@{LISTEN}", "www.example.test").stdout
    assert "status: FORMERR" in bad and "OPT PSEUDOSECTION" in bad
    for cookie in (bytes(8), bytes(24)):
        reply, _ = ask(host, LISTEN, "www.example.test", use_edns=0, options=[dns.edns.GenericOption(10, cookie)])
        assert reply.rcode() == dns.rcode.NOERROR and not reply.options  # ignored: we have no server cookie
    assert resolver.stop() == 0
