"""Client TCP limits (RFC 7766 sections 6.2 and 10) on real loopback sockets, no root needed.

A ``TcpListener`` with a stand-in for the core: ``Core.handle`` answers
every query-shaped message with a reply of ``size`` bytes at once, or keeps
it for ``answer_later`` when ``hold`` is set (a cache miss).  Clients are
blocking sockets driven from a thread, so the listener's loop runs freely.
"""

from __future__ import annotations

import asyncio
import collections
import math
import socket
import struct
import time

import dns.message
import dns.rcode
import pytest

from bootres.shell import clientwire_io

QUERY = dns.message.make_query("www.example.test", "A").to_wire()


def frame(message: bytes) -> bytes:
    return struct.pack(">H", len(message)) + message


class Core:
    def __init__(self, size: int = 100, hold: bool = False):
        self.size, self.hold = size, hold
        self.handled = 0
        self.held: list = []

    def handle(self, data: bytes, conn, host: str, tcp: bool) -> None:
        self.handled += 1
        if len(data) < 12:
            return  # like the core: no whole header, dropped
        if self.hold:
            self.held.append((conn, data))
        else:
            conn.send(self.reply(data))

    def reply(self, data: bytes) -> bytes:
        return data[:2] + b"\x81\x80" + bytes(self.size - 4)

    def answer_later(self) -> None:
        for conn, data in self.held:
            conn.send(self.reply(data))
        self.held.clear()


def run(limits: clientwire_io.TcpLimits, core: Core, clients, timeout: float = 20.0, admits=lambda host: True):
    """Serve on 127.0.0.1 while ``clients(port, pool)`` runs in a thread; returns its result and the pool."""

    async def main():
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
        sock.bind(("127.0.0.1", 0))
        sock.listen(clientwire_io.TCP_BACKLOG)
        pool = clientwire_io.TcpPool(limits, admits)
        listener = clientwire_io.TcpListener(sock, core.handle, pool)
        await listener.start()
        try:
            result = await asyncio.wait_for(asyncio.to_thread(clients, sock.getsockname()[1], pool), timeout)
        finally:
            await listener.close()
        return result, pool

    return asyncio.run(main())


def connect(port: int, timeout: float = 5.0, rcvbuf: int | None = None, source: str | None = None) -> socket.socket:
    """``rcvbuf``: a small receive buffer, set before connecting (the window is agreed then)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if source:
        sock.bind((source, 0))
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(timeout)
    sock.connect(("127.0.0.1", port))
    return sock


def read_frame(sock: socket.socket) -> bytes:
    def exactly(n: int) -> bytes:
        data = b""
        while len(data) < n:  # bounded by the socket timeout
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise ConnectionResetError("closed")
            data += chunk
        return data

    return exactly(struct.unpack(">H", exactly(2))[0])


def closed_by_server(sock: socket.socket, within: float) -> float | None:
    """Seconds until the server closed ``sock`` (EOF or reset), None if not within ``within``."""
    started = time.monotonic()
    sock.settimeout(within)
    try:
        while True:  # bounded by the timeout; a closed socket ends it
            if not sock.recv(65536):
                return time.monotonic() - started
    except (ConnectionResetError, BrokenPipeError):
        return time.monotonic() - started
    except socket.timeout:
        return None


def ask(sock: socket.socket, qid: int) -> bytes:
    sock.sendall(frame(struct.pack(">H", qid) + QUERY[2:]))
    return read_frame(sock)


def test_a_new_connection_closes_the_least_recently_active_one():
    def clients(port, pool):
        silent = [connect(port) for _ in range(3)]
        asker = connect(port)
        assert ask(asker, 1)[:2] == b"\x00\x01"  # now the most recently active
        for sock in silent:
            sock.sendall(frame(b"\x00\x00"))  # not a query: no activity
        newcomer = connect(port)
        reply = ask(newcomer, 2)
        first_gone = closed_by_server(silent[0], 2.0)
        others_open = [closed_by_server(sock, 0.2) for sock in silent[1:]]
        reply_again = ask(asker, 3)
        return reply, first_gone, others_open, reply_again

    (reply, first_gone, others_open, reply_again), pool = run(clientwire_io.TcpLimits(4, 30.0, 1 << 20), Core(), clients)
    assert reply[:2] == b"\x00\x02" and reply_again[:2] == b"\x00\x03"
    assert first_gone is not None and others_open == [None, None]
    assert pool.counts["evicted"] == 1 and pool.counts["accepted"] == 5


def test_clients_outside_allow_are_closed_before_they_take_a_slot():
    """With a non-loopback listen, refused clients must not evict allowed ones (issue 21)."""
    def clients(port, pool):
        allowed = [connect(port) for _ in range(2)]
        for index, sock in enumerate(allowed):
            assert ask(sock, index)[:2] == struct.pack(">H", index)
        refused = [connect(port, source="127.0.0.2") for _ in range(20)]
        refused_closed = [closed_by_server(sock, 2.0) is not None for sock in refused]
        still = [ask(sock, 10 + index)[:2] for index, sock in enumerate(allowed)]
        return refused_closed, still

    (refused_closed, still), pool = run(clientwire_io.TcpLimits(2, 30.0, 1 << 20), Core(), clients,
                                        admits=lambda host: host == "127.0.0.1")
    assert refused_closed == [True] * 20
    assert still == [b"\x00\x0a", b"\x00\x0b"]  # the two allowed connections kept their slots
    assert pool.counts["refused"] == 20 and pool.counts["evicted"] == 0 and pool.counts["accepted"] == 2


def test_a_trickle_of_bytes_or_tiny_messages_does_not_hold_a_connection():
    idle = 0.6

    def clients(port, pool):
        tiny, slow, asker = connect(port), connect(port), connect(port)
        slow.sendall(struct.pack(">H", 200))  # a message that never completes
        started = time.monotonic()
        closed = {}
        for i in range(40):  # 40 rounds of 0.05 s: 2 s, more than three idle timeouts
            for name, sock, data in (("tiny", tiny, frame(b"\x00\x00")), ("slow", slow, b"x")):
                if name not in closed:
                    try:
                        sock.send(data)
                    except OSError:
                        closed[name] = time.monotonic() - started
            if i % 4 == 0:
                ask(asker, i)  # a real client asking every 0.2 s stays
            time.sleep(0.05)
        return closed, ask(asker, 99)

    (closed, last), pool = run(clientwire_io.TcpLimits(16, idle, 1 << 20), Core(), clients)
    assert set(closed) == {"tiny", "slow"}, closed
    assert all(seconds < idle + 0.5 for seconds in closed.values()), closed
    assert last[:2] == b"\x00\x63"
    assert pool.counts["idle_closed"] == 2


def test_a_client_that_does_not_read_stops_being_read_then_gets_every_answer_when_it_does():
    size, queries, queue = 10_000, 3000, 131072
    core = Core(size)

    def clients(port, pool):
        sock = connect(port, timeout=10, rcvbuf=4096)  # small kernel buffers: backpressure sooner
        sock.sendall(b"".join(frame(struct.pack(">H", i) + QUERY[2:]) for i in range(queries)))
        time.sleep(0.5)
        stalled = core.handled
        [conn] = list(pool)
        waiting = conn.transport.get_write_buffer_size()
        ids = [struct.unpack(">H", read_frame(sock)[:2])[0] for _ in range(queries)]
        return stalled, waiting, ids

    (stalled, waiting, ids), pool = run(clientwire_io.TcpLimits(16, 10.0, queue), core, clients)
    print(f"\nnot reading: {stalled} of {queries} queries read, {waiting} bytes waiting in the transport")
    assert stalled < queries // 2
    assert waiting <= queue
    assert ids == list(range(queries))  # reading resumed, in order, nothing lost
    assert pool.counts["backpressured"] >= 1 and pool.counts["overflow_closed"] == 0


def test_a_client_blocked_past_the_idle_timeout_is_closed():
    def clients(port, pool):
        sock = connect(port, rcvbuf=4096)
        sock.sendall(b"".join(frame(struct.pack(">H", i) + QUERY[2:]) for i in range(2000)))
        return closed_by_server(sock, 5.0)

    gone, pool = run(clientwire_io.TcpLimits(16, 0.5, 131072), Core(10_000), clients)
    assert gone is not None and gone < 2.0
    assert pool.counts["backpressured"] >= 1 and pool.counts["idle_closed"] == 1


def test_answers_that_would_overflow_the_output_queue_close_the_connection():
    core = Core(60_000, hold=True)  # misses: read at full speed, answered later all at once

    def clients(port, pool):
        sock = connect(port, rcvbuf=4096)
        sock.sendall(b"".join(frame(struct.pack(">H", i) + QUERY[2:]) for i in range(200)))
        deadline = time.monotonic() + 5
        while len(core.held) < 200 and time.monotonic() < deadline:  # bounded: 5 s
            time.sleep(0.01)
        pool._loop.call_soon_threadsafe(core.answer_later)  # on the loop's thread, as the core would
        return closed_by_server(sock, 5.0)

    gone, pool = run(clientwire_io.TcpLimits(16, 10.0, 131072), core, clients)
    assert gone is not None
    assert pool.counts["overflow_closed"] == 1 and len(pool) == 0


@pytest.mark.parametrize("edns", [False, True])
def test_an_answer_too_big_to_frame_becomes_servfail(edns):
    query = dns.message.make_query("big.example.test", "TXT", use_edns=0 if edns else None)
    query.id = 0x4242
    opt = b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00"
    question = query.to_wire()[12:12 + len(b"\x03big\x07example\x04test\x00") + 4]

    class Oversized(Core):
        def reply(self, data):
            if data[:2] != b"\x42\x42":
                return super().reply(data)
            # 65,525 bytes of answer and then our OPT: the framing limit plus one.
            body = bytes(65_536 - 12 - len(question) - (len(opt) if edns else 0))
            header = data[:2] + struct.pack(">HHHHH", 0x8180, 1, 1, 0, 1 if edns else 0)
            return header + question + body + (opt if edns else b"")

    def clients(port, pool):
        sock = connect(port)
        sock.sendall(frame(query.to_wire()))
        first = read_frame(sock)
        return first, ask(sock, 7)  # the connection still works

    (first, after), pool = run(clientwire_io.TcpLimits(16, 10.0, 1 << 20), Oversized(), clients)
    reply = dns.message.from_wire(first)
    assert query.is_response(reply) and reply.rcode() == dns.rcode.SERVFAIL
    assert (reply.edns == 0) if edns else (reply.edns == -1)
    assert after[:2] == b"\x00\x07"
    assert pool.counts["oversized"] == 1


# --- UDP: hits first, misses a slice at a time, a bounded backlog (issue 24)


class UdpCore:
    """Hits are queries for ``hit.test``; every miss and shed query is noted in the order the listener took it."""

    def __init__(self):
        self.taken: list[tuple[str, int]] = []
        self.turn = 0  # turns of the loop so far (a ticker counts them)
        self.turns: list[int] = []  # the turn of each miss taken the slow way

    def fast_answer(self, data: bytes, host: str, now: float) -> bytes | None:
        if b"\x03hit\x04test" not in data:
            return None
        self.taken.append(("hit", int.from_bytes(data[:2], "big")))
        return data[:2] + b"\x81\x80" + data[4:]

    def query_received(self, data: bytes, client, host: str, tcp: bool, now: float) -> None:
        self.taken.append(("miss", int.from_bytes(data[:2], "big")))
        self.turns.append(self.turn)

    def query_shed(self, data: bytes, client, host: str, now: float) -> None:
        self.taken.append(("shed", int.from_bytes(data[:2], "big")))
        client.reply(clientwire_io.Respond(client, data[:2] + b"\x81\x82" + data[4:], "local"))


def udp_query(name: str, qid: int) -> bytes:
    return dns.message.make_query(name, "A", id=qid).to_wire()


@pytest.mark.parametrize("batched", [True, False])
def test_hits_behind_thousands_of_misses_are_answered_first_and_misses_a_slice_per_turn(monkeypatch, batched):
    monkeypatch.setattr(clientwire_io, "MISS_BACKLOG", 500)
    if not batched:
        monkeypatch.setattr(clientwire_io._Batch, "create", staticmethod(lambda family: None))
    core = UdpCore()

    async def main():
        loop = asyncio.get_running_loop()
        server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, clientwire_io.RECV_BUFFER)
        server.bind(("127.0.0.1", 0))
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        client.settimeout(5)
        for qid in range(600):  # 600 misses already queued in the socket, then one hit
            client.sendto(udp_query(f"miss{qid}.test", qid), server.getsockname())
        client.sendto(udp_query("hit.test", 9999), server.getsockname())
        def tick():
            core.turn += 1
            ticker[0] = loop.call_soon(tick)

        ticker = [loop.call_soon(tick)]
        listener = clientwire_io.UdpListener(loop, server, core, lambda: None)
        answers = []
        deadline = time.monotonic() + 10
        while len([t for t in core.taken if t[0] != "hit"]) < 600 and time.monotonic() < deadline:
            await asyncio.sleep(0.001)
        client.setblocking(False)
        while True:
            try:
                answers.append(int.from_bytes(client.recv(512)[:2], "big"))
            except BlockingIOError:
                break
        ticker[0].cancel()
        listener.close()
        client.close()
        return answers

    answers = asyncio.run(main())
    kinds = [kind for kind, _ in core.taken]
    # The hit came last into the socket and was answered before a single miss was taken the slow way.
    assert kinds.index("hit") < kinds.index("miss") and 9999 in answers
    # The first 500 misses waited in the backlog; the 100 beyond it were answered at once, not queued.
    assert kinds.count("shed") == 100 and kinds.count("miss") == 500
    assert [qid for kind, qid in core.taken if kind == "shed"] == list(range(500, 600))
    assert sorted(answers) == [*range(500, 600), 9999]
    # Misses were taken MISS_SLICE per turn of the loop, in the order they came.
    assert [qid for kind, qid in core.taken if kind == "miss"] == list(range(500))
    per_turn = collections.Counter(core.turns)
    assert max(per_turn.values()) == clientwire_io.MISS_SLICE and len(per_turn) == math.ceil(500 / clientwire_io.MISS_SLICE)


def test_closing_answers_the_misses_still_waiting():
    core = UdpCore()

    async def main():
        loop = asyncio.get_running_loop()
        server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK)
        server.bind(("127.0.0.1", 0))
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        client.settimeout(5)
        for qid in range(100):
            client.sendto(udp_query(f"miss{qid}.test", qid), server.getsockname())
        listener = clientwire_io.UdpListener(loop, server, core, lambda: None)
        deadline = time.monotonic() + 5
        while not core.taken and time.monotonic() < deadline:
            await asyncio.sleep(0)  # one turn: the read and the first slice
        listener.close()  # a stop: the rest are answered now
        got = sorted(int.from_bytes(client.recv(512)[:2], "big") for _ in range(100 - clientwire_io.MISS_SLICE))
        client.close()
        return got

    assert asyncio.run(main()) == list(range(clientwire_io.MISS_SLICE, 100))
    assert [kind for kind, _ in core.taken].count("miss") == clientwire_io.MISS_SLICE
