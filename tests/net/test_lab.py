"""The test lab itself: namespaces, wires, real Debian servers, the black hole, fakedns.

Later tests trust these fixtures to mean what they say, so each promise of
tests/lab.py and tests/fakedns.py is shown here once.
"""

import os
import signal
import socket
import threading
import time
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import pytest

import lab as lab_module
from fakedns import OtherPort, garbage_for

SERVER, CLIENT = "198.18.0.10", "198.18.0.20"


def two_hosts(lab):
    """A server and a client namespace joined by one veth wire."""
    server, client = lab.netns("server"), lab.netns("client")
    lab.link(server, f"{SERVER}/24", client, f"{CLIENT}/24")
    return server, client


def addresses(reply):
    return sorted(rdata.to_text() for rrset in reply.answer for rdata in rrset)


def ask_raw(address, wire, count=1, timeout=1.0):
    """Send one datagram from a fresh loopback socket; return ``count`` (data, source) replies."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(wire, address)
        return [sock.recvfrom(65535) for _ in range(count)]


# -- namespaces ----------------------------------------------------------------


def test_nsd_answers_a_client_in_another_namespace(lab):
    server, client = two_hosts(lab)
    lab.nsd(server, SERVER, records={"www": "198.18.0.80", "v6": "2001:db8::80"})

    assert addresses(client.dns_query(SERVER, "www.example.test")) == ["198.18.0.80"]
    assert addresses(client.dns_query(SERVER, "v6.example.test", "AAAA")) == ["2001:db8::80"]
    # The wildcard: any new name is a distinct cache miss with an answer.
    wild = client.dns_query(SERVER, "n-4711.example.test", tcp=True)
    assert addresses(wild) == [lab_module.WILDCARD_ADDRESS]
    # A program run inside the client namespace sees the server the same way.
    dig = client.run("dig", "+short", "+time=1", "+tries=1", f"@{SERVER}", "www.example.test")
    assert dig.stdout.split() == ["198.18.0.80"]


def test_nsd_without_wildcard_gives_nxdomain(lab):
    server, client = two_hosts(lab)
    lab.nsd(server, SERVER, zone="neg.test.", records={"a": "198.18.0.81"},
            wildcard=None, ttl=60, port=5353)

    reply = client.dns_query(SERVER, "missing.neg.test", port=5353)
    assert reply.rcode() == dns.rcode.NXDOMAIN
    assert reply.authority[0].ttl == 60  # SOA for negative caching (RFC 2308)


def test_blackholed_server_drops_queries_while_its_host_stays_up(lab):
    server, client = two_hosts(lab)
    nsd = lab.nsd(server, SERVER)
    assert client.dns_query(SERVER, "before.example.test").rcode() == dns.rcode.NOERROR

    lab.blackhole(server)
    with pytest.raises(dns.exception.Timeout):
        client.dns_query(SERVER, "during.example.test", timeout=0.5)
    with pytest.raises(dns.exception.Timeout):
        client.dns_query(SERVER, "during.example.test", tcp=True, timeout=0.5)
    # The host still answers on other ports: a closed one resets at once.
    with client.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        with pytest.raises(ConnectionRefusedError):
            sock.connect((SERVER, 54))

    lab.unblackhole(server)
    assert client.dns_query(SERVER, "after.example.test").rcode() == dns.rcode.NOERROR

    # Contrast: a stopped server on a live host is refused (ICMP), not silent.
    nsd.stop()
    with client.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.connect((SERVER, 53))
        sock.send(dns.message.make_query("gone.example.test", "A").to_wire())
        with pytest.raises(ConnectionRefusedError):
            sock.recv(512)


def test_blackhole_can_kill_one_address_of_a_host(lab):
    server, client = two_hosts(lab)
    server.run("ip", "addr", "add", "198.18.0.11/24", "dev", "eth0")
    for address in (SERVER, "198.18.0.11"):
        lab.fakedns(server, address, default_address="198.18.0.99")

    lab.blackhole(server, address="198.18.0.11")
    with pytest.raises(dns.exception.Timeout):
        client.dns_query("198.18.0.11", "a.test", timeout=0.5)
    assert addresses(client.dns_query(SERVER, "a.test")) == ["198.18.0.99"]
    lab.unblackhole(server, address="198.18.0.11")
    assert addresses(client.dns_query("198.18.0.11", "a.test")) == ["198.18.0.99"]


def test_programs_inside_read_the_namespace_etc_files(lab):
    host_hosts = Path("/etc/hosts").read_bytes()
    host_resolv = Path("/etc/resolv.conf").read_bytes()
    ns = lab.netns("host")

    ns.write_hosts("198.18.1.1\tsite-router\n")
    ns.write_resolv_conf(f"nameserver {SERVER}\n")

    assert ns.run("getent", "hosts", "site-router").stdout.split() == ["198.18.1.1", "site-router"]
    assert ns.run("cat", "/etc/resolv.conf").stdout == f"nameserver {SERVER}\n"
    assert lab_module.run("getent", "hosts", "site-router", check=False).returncode == 2
    assert Path("/etc/hosts").read_bytes() == host_hosts
    assert Path("/etc/resolv.conf").read_bytes() == host_resolv


def test_sockets_and_addresses_stay_in_the_lab(lab):
    server, _ = two_hosts(lab)
    with server.socket() as inside:
        inside.bind((SERVER, 0))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as outside:
        with pytest.raises(OSError):  # EADDRNOTAVAIL: the host has no such address
            outside.bind((SERVER, 0))
    for bad in ("10.0.0.1/24", "198.20.0.1/24", "198.18.0.1"):
        with pytest.raises(ValueError):
            lab.link(lab.netns(f"x{len(bad)}"), bad, server, None)


def test_switch_lan_with_unbound_and_dnsmasq_forwarders(lab):
    switch = lab.switch()
    hosts = {label: lab.netns(label) for label in ("auth", "unbound", "dnsmasq", "client")}
    for last_octet, ns in enumerate(hosts.values(), start=10):
        lab.attach(ns, switch, f"198.18.0.{last_octet}/24")
    lab.nsd(hosts["auth"], "198.18.0.10", records={"www": "198.18.0.80"})
    lab.unbound(hosts["unbound"], "198.18.0.11", forward_to=["198.18.0.10"])
    lab.dnsmasq(hosts["dnsmasq"], "198.18.0.12", forward_to=["198.18.0.11"],
                records={"local.lan": "198.18.0.90"})

    client = hosts["client"]
    for server in ("198.18.0.10", "198.18.0.11", "198.18.0.12"):  # nsd, then each forwarder
        assert addresses(client.dns_query(server, "www.example.test")) == ["198.18.0.80"]
    assert addresses(client.dns_query("198.18.0.12", "local.lan")) == ["198.18.0.90"]


def test_fakedns_serves_inside_a_namespace(lab):
    server, client = two_hosts(lab)
    fake = lab.fakedns(server, SERVER, default_address="198.18.0.99")

    dig = client.run("dig", "+short", "+time=1", "+tries=1", f"@{SERVER}", "any.name.test")
    assert dig.stdout.split() == ["198.18.0.99"]
    assert fake.address == (SERVER, 53)
    assert fake.qnames == ["any.name.test."]


def test_close_leaves_nothing_behind(lab):
    a, b = lab.netns("a"), lab.netns("b")
    lab.link(a, f"{SERVER}/24", b, f"{CLIENT}/24")
    nsd = lab.nsd(a, SERVER)
    fake = lab.fakedns(a, SERVER, port=5300)
    sock = b.socket()
    sleeper = b.popen("sleep", "300")
    # A daemon that left its process group: only the namespace knows it.
    stray = int(a.run("sh", "-c", "setsid sleep 300 >/dev/null 2>&1 & echo $!").stdout)
    a.iptables("-A", "INPUT", "-j", "ACCEPT")

    lab.close()

    for ns in (a, b):
        assert not ns.path.exists() and not ns.etc.exists()
    assert nsd.proc.poll() is not None and sleeper.poll() is not None
    stray_alive = b"sleep" in _cmdline(stray)  # a reaped or zombie process has none
    if stray_alive:
        os.kill(stray, signal.SIGKILL)  # don't leak it when the lab failed to
    assert not stray_alive
    assert sock.fileno() == -1 and not fake._thread.is_alive()
    # Nothing from any earlier test of this run either.
    assert lab_module.leftovers() == []
    assert lab.token not in lab_module.run("ip", "netns", "list").stdout


def _cmdline(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return b""


# -- fakedns knobs (loopback, no root needed) -----------------------------------


def test_fakedns_answers_from_its_table(fake_upstream_factory):
    fake = fake_upstream_factory(answers={"www.example.test": ["198.18.0.80", "2001:db8::80"]})
    host, port = fake.address

    assert addresses(dns.query.udp(dns.message.make_query("www.example.test", "A"), host,
                                   1, port)) == ["198.18.0.80"]
    assert addresses(dns.query.udp(dns.message.make_query("www.example.test", "AAAA"), host,
                                   1, port)) == ["2001:db8::80"]
    missing = dns.query.tcp(dns.message.make_query("nope.example.test", "A"), host, 1, port)
    assert missing.rcode() == dns.rcode.NXDOMAIN
    assert (fake.udp_queries, fake.tcp_queries) == (2, 1)
    assert fake.qnames == ["www.example.test.", "www.example.test.", "nope.example.test."]

    fake.default_address = "198.18.0.99"  # knobs apply to the next query
    assert addresses(dns.query.udp(dns.message.make_query("Other.Test", "A"), host,
                                   1, port)) == ["198.18.0.99"]


def test_fakedns_delay_holds_each_reply_without_serialising_them(fake_upstream_factory):
    fake = fake_upstream_factory(default_address="198.18.0.99", delay=0.3)
    host, port = fake.address
    replies = []

    def one(name):
        replies.append(dns.query.udp(dns.message.make_query(name, "A"), host, 2, port))

    start = time.monotonic()
    threads = [threading.Thread(target=one, args=(f"q{i}.test",)) for i in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)
    elapsed = time.monotonic() - start

    assert len(replies) == 5
    assert 0.3 <= elapsed < 0.3 * 3  # concurrent, not 5 x 0.3 s


def test_fakedns_silent_never_replies(fake_upstream_factory):
    fake = fake_upstream_factory(silent=True, default_address="198.18.0.99")
    with pytest.raises(socket.timeout):
        ask_raw(fake.address, dns.message.make_query("a.test", "A").to_wire(), timeout=0.3)
    assert fake.udp_queries == 1


def test_fakedns_servfail(fake_upstream_factory):
    fake = fake_upstream_factory(servfail=True, default_address="198.18.0.99")
    reply = dns.query.udp(dns.message.make_query("a.test", "A"), fake.address[0], 1,
                          fake.address[1])
    assert reply.rcode() == dns.rcode.SERVFAIL and not reply.answer


def test_fakedns_wrong_id(fake_upstream_factory):
    fake = fake_upstream_factory(wrong_id=True, default_address="198.18.0.99")
    query = dns.message.make_query("a.test", "A")
    [(wire, _)] = ask_raw(fake.address, query.to_wire())
    reply = dns.message.from_wire(wire)
    assert reply.id != query.id and addresses(reply) == ["198.18.0.99"]


def test_fakedns_garbage_has_the_right_id_but_does_not_parse(fake_upstream_factory):
    fake = fake_upstream_factory(garbage=True)
    query = dns.message.make_query("a.test", "A")
    [(wire, _)] = ask_raw(fake.address, query.to_wire())
    assert wire == garbage_for(query.id)
    with pytest.raises(dns.exception.DNSException):
        dns.message.from_wire(wire)


def test_fakedns_truncate_sends_tc_over_udp_and_the_answer_over_tcp(fake_upstream_factory):
    fake = fake_upstream_factory(truncate=True, default_address="198.18.0.99")
    query = dns.message.make_query("big.test", "A")
    [(wire, _)] = ask_raw(fake.address, query.to_wire())
    over_udp = dns.message.from_wire(wire)
    assert over_udp.flags & dns.flags.TC and not over_udp.answer

    over_tcp = dns.query.tcp(query, fake.address[0], 1, fake.address[1])
    assert not over_tcp.flags & dns.flags.TC and addresses(over_tcp) == ["198.18.0.99"]
    assert (fake.udp_queries, fake.tcp_queries) == (1, 1)


def test_fakedns_wrong_port_replies_from_another_socket(fake_upstream_factory):
    fake = fake_upstream_factory(wrong_port=True, default_address="198.18.0.99")
    [(_, source)] = ask_raw(fake.address, dns.message.make_query("a.test", "A").to_wire())
    assert source == (fake.address[0], fake.other_port) and fake.other_port != fake.address[1]


def test_fakedns_script_floods_then_answers(fake_upstream_factory):
    fake = fake_upstream_factory(default_address="198.18.0.99")

    def flood(query, peer):
        forged = fake.answer(query)
        forged.answer.clear()
        return [garbage_for(query.id), OtherPort(forged), b"\x00", fake.answer(query)]

    fake.handle = flood
    query = dns.message.make_query("a.test", "A")
    replies = ask_raw(fake.address, query.to_wire(), count=4)

    sources = [source[1] for _, source in replies]
    assert sources == [fake.address[1], fake.other_port, fake.address[1], fake.address[1]]
    assert replies[2][0] == b"\x00"
    assert addresses(dns.message.from_wire(replies[3][0])) == ["198.18.0.99"]


def test_fakedns_survives_malformed_queries_and_failing_handlers(fake_upstream_factory):
    fake = fake_upstream_factory(default_address="198.18.0.99")
    query = dns.message.make_query("a.test", "A")

    with pytest.raises(socket.timeout):  # no whole header: dropped
        ask_raw(fake.address, b"\x12", timeout=0.3)
    [(wire, _)] = ask_raw(fake.address, query.to_wire() + b"\x00")  # trailing junk
    assert dns.message.from_wire(wire).rcode() == dns.rcode.FORMERR
    assert fake.malformed == 2

    def broken(query, peer):
        raise RuntimeError("test handler bug")

    fake.handle = broken
    [(wire, _)] = ask_raw(fake.address, query.to_wire())
    assert dns.message.from_wire(wire).rcode() == dns.rcode.SERVFAIL
    assert [str(e) for e in fake.errors] == ["test handler bug"]
    fake.errors.clear()  # seen; the fixture would otherwise report it

    del fake.handle  # back to the class's own handle()
    [(wire, _)] = ask_raw(fake.address, query.to_wire())
    assert addresses(dns.message.from_wire(wire)) == ["198.18.0.99"]
