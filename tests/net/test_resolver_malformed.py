"""Malformed client queries over the wire: FORMERR, NOTIMP or a clean drop, and the service lives on.

Each bad datagram is followed by a good query on the same socket, for a
name never asked before: the service takes the queries it cannot answer
from its cache in the order they came (cache hits go first, issue 24), so
the good reply arriving proves the bad one was handled (answered or
dropped) without waiting for a timeout.
"""

import random
import socket
import struct

import dns.message
import dns.rcode
import pytest

from resolver_harness import LISTEN, UPSTREAMS, ResolverProcess, resolver_config, upstream_lab

FORMERR, NOTIMP = dns.rcode.FORMERR, dns.rcode.NOTIMP
NAME = b"\x03www\x07example\x04test\x00"


def header(qid=0xBEEF, flags=0x0100, qd=1, an=0, ns=0, ar=0):
    return struct.pack(">6H", qid, flags, qd, an, ns, ar)


CASES = {
    "truncated header": (b"\xbe\xef\x01", None),
    "header only": (header(), FORMERR),
    "two questions": (header(qd=2) + (NAME + b"\x00\x01\x00\x01") * 2, FORMERR),
    "no question": (header(qd=0), FORMERR),
    "bad label length": (header() + b"\x3fabc\x00\x00\x01\x00\x01", FORMERR),
    "label type 0x40": (header() + b"\x41abc\x00\x00\x01\x00\x01", FORMERR),
    "pointer loop": (header() + b"\xc0\x0c\x00\x01\x00\x01", FORMERR),
    "opcode NOTIFY": (header(flags=4 << 11) + NAME + b"\x00\x06\x00\x01", NOTIMP),
    "opcode UPDATE": (header(flags=5 << 11) + NAME + b"\x00\x06\x00\x01", NOTIMP),
    "a response": (header(flags=0x8180) + NAME + b"\x00\x01\x00\x01", None),
    "huge": (header() + NAME + b"\x00\x01\x00\x01" + bytes(60000), FORMERR),
    "AXFR": (header() + NAME + b"\x00\xfc\x00\x01", NOTIMP),
}


@pytest.fixture
def running(lab, tmp_path):
    host, servers = upstream_lab(lab)
    lab.nsd(servers, UPSTREAMS[0], rate_limit=False)
    resolver = ResolverProcess(host, resolver_config(tmp_path, upstreams=UPSTREAMS[0]), tmp_path)
    sock = host.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect((LISTEN, 53))
    sock.settimeout(3.0)
    yield resolver, sock
    assert resolver.alive()
    assert resolver.stop() == 0


def send_then_probe(sock, bad: bytes, probe_id: int, backlog: int = 10) -> list[bytes]:
    """Send ``bad`` then a good query; return whatever came back before the good reply.

    ``backlog`` bounds how many earlier replies may still be queued.
    """
    good = dns.message.make_query(f"probe{probe_id}.example.test", "A")  # a miss, as the bad one is
    good.id = probe_id
    sock.send(bad)
    sock.send(good.to_wire())
    before = []
    for _ in range(backlog):  # bounded: at most one reply per datagram sent, then ours
        data = sock.recv(65535)
        if data[:2] == struct.pack(">H", probe_id) and dns.message.from_wire(data).rcode() == 0:
            return before
        before.append(data)
    raise AssertionError(f"no reply to the good query; got {before!r}")


def test_each_kind_of_malformed_query_gets_an_error_or_nothing(running):
    resolver, sock = running
    for number, (case, (bad, rcode)) in enumerate(CASES.items()):
        replies = send_then_probe(sock, bad, 4000 + number)
        if rcode is None:
            assert replies == [], case
        else:
            assert len(replies) == 1, case
            reply = replies[0]
            assert reply[:2] == bad[:2] and reply[2] & 0x80, case  # our ID, a response
            assert reply[3] & 0x0F == rcode, case
    assert resolver.status()["malformed"] == len(CASES)


def test_thousands_of_random_and_mutated_datagrams_never_crash_it(running):
    resolver, sock = running
    rng = random.Random(20261121)  # fixed seed: a failure can be replayed
    base = dns.message.make_query("www.example.test", "A", use_edns=0).to_wire()
    for i in range(2000):
        if i % 2:
            data = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 120)))
        else:
            mutated = bytearray(base)
            for _ in range(rng.randrange(1, 5)):
                mutated[rng.randrange(len(mutated))] = rng.getrandbits(8)
            data = bytes(mutated)
        sock.send(data)
        if i % 200 == 199:  # every so often, prove it still answers
            send_then_probe(sock, b"", 7000 + i, backlog=400)
    assert resolver.alive()
    status = resolver.status()
    assert status["malformed"] > 500
    assert status["internal_errors"] == 0


def test_broken_tcp_framing_is_hung_up_on(running, lab):
    resolver, _ = running
    host = resolver.ns
    for payload in (b"\x00", b"\x00\x10abc", b"\xff\xff" + bytes(100), b"\x00\x05hello"):
        with host.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.settimeout(3.0)
            tcp.connect((LISTEN, 53))
            tcp.sendall(payload)
            tcp.shutdown(socket.SHUT_WR)
            while tcp.recv(65535):  # bounded by the timeout: the service closes its end
                pass
    reply = host.dns_query(LISTEN, "after-tcp.example.test", tcp=True)
    assert reply.rcode() == 0
