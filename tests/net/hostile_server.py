"""A hostile upstream nameserver: mutated and crafted replies, now and then the honest one after them.

Run inside a lab namespace: ``python hostile_server.py ADDRESS SEED``.  UDP
and TCP on ADDRESS:53.  For each UDP question it picks, from a seeded random
source, one of:

- the honest reply (dnspython-built: every name has one A record);
- the honest reply with a few bytes changed after the header's ID (so
  it still matches the query often enough to be read, not just dropped);
- a crafted reply (``CRAFTED``: each a way a parser goes wrong) that keeps
  the ID and question;
- random bytes behind the right ID;
- nothing at all;

and, after a bad reply, half of the time the honest reply 2 ms later, so
the race can still end well.  Names under ``good.test`` always get the
honest reply at once: the test's probes.  TCP always answers honestly.
Prints ``ready`` once both sockets are bound.
"""

from __future__ import annotations

import heapq
import random
import select
import socket
import struct
import sys
import threading
import time

import dns.message
import dns.rrset

ANSWER = "198.18.99.1"


def honest(query: dns.message.Message) -> bytes:
    reply = dns.message.make_response(query)
    question = query.question[0]
    if question.rdtype == 1:
        reply.answer.append(dns.rrset.from_text(question.name, 300, "IN", "A", ANSWER))
    return reply.to_wire()


def _a(ttl: int = 300, rdata: bytes = b"\xc6\x12\x63\x01", name: bytes = b"\xc0\x0c") -> bytes:
    return name + struct.pack(">HHIH", 1, 1, ttl, len(rdata)) + rdata


def _question_end(wire: bytes) -> int:
    end = 12
    while wire[end]:
        end += wire[end] + 1
    return end + 5


def _with(wire: bytes, an: int, ns: int, ar: int, records: bytes) -> bytes:
    """The honest reply's header and question, with these counts and records instead."""
    return wire[:4] + struct.pack(">HHHH", 1, an, ns, ar) + wire[12:_question_end(wire)] + records


def _cname_to_itself(wire: bytes) -> bytes:
    """The issue's example, for any question: the CNAME's target is a pointer to that very target."""
    target = _question_end(wire) + 12  # where the RDATA starts
    return _with(wire, 1, 0, 0, b"\xc0\x0c" + struct.pack(">HHIH", 5, 1, 300, 2) + struct.pack(">H", 0xC000 | target))


CRAFTED = {
    "cname to itself": _cname_to_itself,
    "forward pointer": lambda w: _with(w, 1, 0, 0, _a(name=b"\xc0\xff")),
    "pointer loop": lambda w: _with(w, 1, 0, 0, _a(name=b"\x01a\xc0\x1e")),
    "name over 255": lambda w: _with(w, 1, 0, 0, _a(name=b"".join([b"\x3f" + b"x" * 63] * 4) + b"\xc0\x0c")),
    "A with 5 bytes": lambda w: _with(w, 1, 0, 0, _a(rdata=b"\x01\x02\x03\x04\x05")),
    "TTL top bit": lambda w: _with(w, 1, 0, 0, _a(ttl=0x80000001)),
    "MX cut short": lambda w: _with(w, 1, 0, 0, b"\xc0\x0c" + struct.pack(">HHIH", 15, 1, 300, 3) + b"\x00\x0a\x01"),
    "count too high": lambda w: _with(w, 3, 0, 0, _a()),
    "trailing garbage": lambda w: _with(w, 1, 0, 0, _a() + b"\xde\xad\xbe\xef"),
    "OPT not last": lambda w: _with(w, 1, 0, 2, _a() + b"\x00" + struct.pack(">HHIH", 41, 1232, 0, 0) + _a()),
    "two OPTs": lambda w: _with(w, 1, 0, 2, _a() + (b"\x00" + struct.pack(">HHIH", 41, 1232, 0, 0)) * 2),
    "OPT with a name": lambda w: _with(w, 1, 0, 1, _a() + b"\xc0\x0c" + struct.pack(">HHIH", 41, 1232, 0, 0)),
    "rdlength past end": lambda w: _with(w, 1, 0, 0, b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 300, 400) + b"\x01"),
    "SRV compressed target": lambda w: _with(
        w, 1, 0, 0, b"\xc0\x0c" + struct.pack(">HHIH", 33, 1, 300, 8) + struct.pack(">HHH", 1, 1, 53) + b"\xc0\x0c"),
}


def mutate(wire: bytes, rng: random.Random) -> bytes:
    data = bytearray(wire)
    for _ in range(rng.randint(1, 8)):
        spot = rng.randrange(2, len(data))
        data[spot] = rng.randrange(256)
    if rng.random() < 0.2:
        del data[rng.randrange(12, len(data)):]
    return bytes(data)


def plan(query: dns.message.Message, wire: bytes, rng: random.Random) -> list[tuple[float, bytes]]:
    """(delay in seconds, datagram) to send back for one question."""
    good = honest(query)
    if query.question and query.question[0].name.to_text().endswith("good.test."):
        return [(0.0, good)]
    roll = rng.random()
    if roll < 0.25:
        return [(0.0, good)]
    if roll < 0.55:
        bad = mutate(good, rng)
    elif roll < 0.85:
        bad = rng.choice(list(CRAFTED.values()))(good)
    elif roll < 0.97:
        bad = wire[:2] + rng.randbytes(rng.randrange(1, 200))
    else:
        return []  # silence: the query times out
    return [(0.0, bad)] + ([(0.002, good)] if rng.random() < 0.5 else [])


def serve_tcp(listener: socket.socket) -> None:
    while True:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(2)
            try:
                size = struct.unpack(">H", conn.recv(2, socket.MSG_WAITALL))[0]
                reply = honest(dns.message.from_wire(conn.recv(size, socket.MSG_WAITALL)))
                conn.sendall(struct.pack(">H", len(reply)) + reply)
            except (OSError, struct.error, dns.exception.DNSException):
                continue


def main(address: str, seed: int) -> None:
    rng = random.Random(seed)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((address, 53))
    udp.setblocking(False)
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind((address, 53))
    tcp.listen(64)
    threading.Thread(target=serve_tcp, args=(tcp,), daemon=True).start()
    print("ready", flush=True)
    due: list = []
    order = 0
    while True:
        timeout = max(0.0, due[0][0] - time.monotonic()) if due else None
        select.select([udp], [], [], timeout)
        for _ in range(256):  # bounded burst per wake-up
            try:
                wire, peer = udp.recvfrom(4096)
            except BlockingIOError:
                break
            try:
                query = dns.message.from_wire(wire)
            except dns.exception.DNSException:
                continue
            for delay, datagram in plan(query, wire, rng):
                order += 1
                heapq.heappush(due, (time.monotonic() + delay, order, datagram, peer))
        while due and due[0][0] <= time.monotonic():
            _, _, datagram, peer = heapq.heappop(due)
            try:
                udp.sendto(datagram, peer)
            except OSError:
                pass


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
