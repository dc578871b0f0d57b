"""A scriptable, misbehaving DNS server for tests.

It follows dnspython's tests/nanonameserver.py: ``handle(query, peer)``
returns what to send back, and tests change it (subclass, or assign a
function to ``server.handle``) or flip knobs on the default one:

- a ``dns.message.Message`` is rendered and sent;
- raw ``bytes`` are sent as they are (garbage, hand-made replies);
- ``None`` sends nothing (a silent server);
- ``OtherPort(item)`` sends ``item`` from a second UDP socket, i.e. from the
  wrong source port, as an off-path spoofer would (RFC 5452);
- a list of these is sent in order, one datagram each, e.g. a flood of
  spoofed replies followed by the real one.

Knobs, read on every query so a test may flip them while the server runs:

- ``answers``: ``{"www.example.test": "198.18.0.80" or [addresses]}``;
  A and AAAA are picked by address family;
- ``default_address``: the A record for any name not in ``answers``
  (None: such names get NXDOMAIN);
- ``delay``: seconds before every reply, UDP and TCP; UDP replies are
  scheduled, so queries still overlap like on a slow real server;
- ``silent``: never reply; ``servfail``: reply SERVFAIL;
- ``wrong_id``: the reply carries another ID; ``wrong_port``: the reply
  comes from the second socket (another source port);
- ``garbage``: the reply is bytes that start with the query's ID and QR set
  but do not parse;
- ``truncate``: every Message sent over UDP goes out with TC set and empty
  sections; TCP gets the full reply.

Untrusted input never stops it (the nanonameserver ladder): a datagram
without a whole header is dropped, one that does not parse gets FORMERR, and
an exception from ``handle`` gets SERVFAIL and is kept in ``errors``.

Threads, not asyncio: the server runs beside code under test that may own
the event loop, and it must answer while a test blocks in a plain call.
"""

from __future__ import annotations

import heapq
import ipaddress
import itertools
import selectors
import socket
import struct
import threading
import time
from dataclasses import dataclass
from typing import Callable, NamedTuple, Union

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset


class OtherPort(NamedTuple):
    """Send ``item`` from the server's second UDP socket (another source port)."""

    item: Union[dns.message.Message, bytes]


Reply = Union[dns.message.Message, bytes, OtherPort, None, list]


@dataclass(frozen=True)
class Received:
    """One query the server parsed."""

    transport: str  # "udp" or "tcp"
    peer: tuple
    id: int
    qname: str
    rdtype: str


def garbage_for(query_id: int) -> bytes:
    """A reply that matches the query's ID but does not parse.

    The header claims one question and 65535 answers, none of them present:
    a client has to parse the whole message to find out it is junk.
    """
    return struct.pack("!6H", query_id, 0x8180, 1, 0xFFFF, 0, 0) + b"garbage"


def truncated(reply: dns.message.Message) -> dns.message.Message:
    """A copy of ``reply`` with TC set and nothing but the header, question and EDNS."""
    # max_size: the full reply may exceed the query's EDNS buffer size, which
    # to_wire() would otherwise enforce (TooBig) before we get to truncate it.
    copy = dns.message.from_wire(reply.to_wire(max_size=65535))
    copy.flags |= dns.flags.TC
    for section in (copy.answer, copy.authority, copy.additional):
        section.clear()
    return copy


class FakeDNS:
    """A DNS server on one UDP and one TCP socket, served by a background thread."""

    # Bounds on untrusted or runaway input: datagrams handled per wake-up,
    # messages per TCP connection, and how long a forgotten server lives.
    UDP_BURST = 64
    TCP_MESSAGES = 100
    TCP_IDLE = 2.0

    def __init__(
        self,
        udp: socket.socket,
        tcp: socket.socket | None = None,
        other_udp: socket.socket | None = None,
        *,
        answers: dict[str, str | list[str]] | None = None,
        default_address: str | None = None,
        ttl: int = 300,
        delay: float = 0.0,
        silent: bool = False,
        servfail: bool = False,
        wrong_id: bool = False,
        wrong_port: bool = False,
        garbage: bool = False,
        truncate: bool = False,
        lifetime: float = 600.0,
    ):
        self.answers = {dns.name.from_text(k): ([v] if isinstance(v, str) else list(v))
                        for k, v in (answers or {}).items()}
        self.default_address = default_address
        self.ttl = ttl
        self.delay = delay
        self.silent = silent
        self.servfail = servfail
        self.wrong_id = wrong_id
        self.wrong_port = wrong_port
        self.garbage = garbage
        self.truncate = truncate
        self.lifetime = lifetime

        self.udp_queries = 0
        self.tcp_queries = 0
        self.malformed = 0
        self.received: list[Received] = []
        self.errors: list[BaseException] = []

        self._udp, self._tcp, self._other = udp, tcp, other_udp
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread: threading.Thread | None = None
        self._conns: dict[socket.socket, threading.Thread] = {}

    @classmethod
    def bind(cls, host: str = "127.0.0.1", port: int = 0, *,
             socket_factory: Callable[..., socket.socket] = socket.socket,
             **knobs) -> FakeDNS:
        """Bind UDP and TCP on ``host:port`` plus a second UDP socket, unstarted.

        ``socket_factory`` is ``Netns.socket`` to serve inside a lab
        namespace. With port 0 the UDP socket picks a free port and TCP
        takes the same number, retrying (a few times) if TCP's is taken.
        """
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
        for _ in range(20 if port == 0 else 1):
            udp = socket_factory(family, socket.SOCK_DGRAM)
            tcp = socket_factory(family, socket.SOCK_STREAM)
            try:
                udp.bind((host, port))
                tcp.bind((host, udp.getsockname()[1]))
            except OSError:
                udp.close()
                tcp.close()
                if port:
                    raise
                continue
            tcp.listen(64)
            other = socket_factory(family, socket.SOCK_DGRAM)
            other.bind((host, 0))
            return cls(udp, tcp, other, **knobs)
        raise OSError(f"no port free for both UDP and TCP on {host}")

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) that clients should query."""
        return self._udp.getsockname()[:2]

    @property
    def other_port(self) -> int | None:
        """Source port of OtherPort replies."""
        return self._other.getsockname()[1] if self._other else None

    @property
    def qnames(self) -> list[str]:
        """Names queried so far, in arrival order (lower case, absolute)."""
        with self._lock:
            return [r.qname for r in self.received]

    def start(self) -> FakeDNS:
        self._thread = threading.Thread(target=self._serve, name=f"fakedns-{self.address}",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every socket; safe to call twice."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._wake_w.send(b"x")
        if self._thread:
            self._thread.join(timeout=5)
        for conn, thread in list(self._conns.items()):
            try:  # wakes the connection's thread out of recv()
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:  # already closed by its thread
                pass
            thread.join(timeout=5)
        for s in (self._udp, self._tcp, self._other, self._wake_r, self._wake_w):
            if s is not None:
                s.close()

    def __enter__(self) -> FakeDNS:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- behaviour ---------------------------------------------------------

    def handle(self, query: dns.message.Message, peer: tuple) -> Reply:
        """The reply to ``query``; replace or override to script a test."""
        if self.silent:
            return None
        if self.garbage:
            return garbage_for(query.id)
        reply = self.answer(query)
        if self.wrong_id:
            reply.id = (query.id + 1) % 65536
        return OtherPort(reply) if self.wrong_port else reply

    def answer(self, query: dns.message.Message) -> dns.message.Message:
        """The honest reply from ``answers``/``default_address`` (or SERVFAIL)."""
        reply = dns.message.make_response(query)
        if self.servfail:
            reply.set_rcode(dns.rcode.SERVFAIL)
            return reply
        question = query.question[0]
        addresses = self.answers.get(question.name)
        if addresses is None and self.default_address:
            addresses = [self.default_address]
        if addresses is None:
            reply.set_rcode(dns.rcode.NXDOMAIN)
            return reply
        version = {dns.rdatatype.A: 4, dns.rdatatype.AAAA: 6}.get(question.rdtype)
        wanted = [a for a in addresses if ipaddress.ip_address(a).version == version]
        if wanted and question.rdclass == dns.rdataclass.IN:
            reply.answer.append(dns.rrset.from_text_list(
                question.name, self.ttl, question.rdclass, question.rdtype, wanted))
        return reply

    # -- I/O -----------------------------------------------------------------

    def _replies(self, wire: bytes, peer: tuple, transport: str) -> list:
        """Parse one query and ask ``handle``, never raising (see module doc)."""
        try:
            query = dns.message.from_wire(wire)
        except dns.message.ShortHeader:
            return self._count_malformed([])
        except Exception:
            try:
                query = dns.message.from_wire(wire, question_only=True)
            except Exception:
                return self._count_malformed([])
            reply = dns.message.make_response(query)
            reply.set_rcode(dns.rcode.FORMERR)
            return self._count_malformed([reply])
        if query.flags & dns.flags.QR:  # a reply is never answered: no loops
            return self._count_malformed([])
        if len(query.question) != 1:
            reply = dns.message.make_response(query)
            reply.set_rcode(dns.rcode.FORMERR)
            return self._count_malformed([reply])
        question = query.question[0]
        with self._lock:
            self.received.append(Received(transport, peer, query.id,
                                          question.name.to_text().lower(),
                                          dns.rdatatype.to_text(question.rdtype)))
        try:
            out = self.handle(query, peer)
        except Exception as exc:
            self.errors.append(exc)
            reply = dns.message.make_response(query)
            reply.set_rcode(dns.rcode.SERVFAIL)
            return [reply]
        if out is None:
            return []
        return out if isinstance(out, list) else [out]

    def _count_malformed(self, replies: list) -> list:
        with self._lock:
            self.malformed += 1
        return replies

    def _wire(self, item, transport: str) -> bytes:
        if isinstance(item, OtherPort):
            item = item.item
        if isinstance(item, dns.message.Message):
            if transport == "udp" and self.truncate:
                item = truncated(item)
            # Over TCP the query's EDNS buffer size does not apply (RFC 7766).
            return item.to_wire(max_size=65535) if transport == "tcp" else item.to_wire()
        return bytes(item)

    def _serve(self) -> None:
        try:
            self._loop()
        except Exception as exc:  # a dead server would look like a silent one: say so
            self.errors.append(exc)

    def _loop(self) -> None:
        """UDP and accept loop; UDP replies wait in a heap until they are due."""
        deadline = time.monotonic() + self.lifetime
        due: list = []  # (when, sequence, item, peer)
        order = itertools.count()
        with selectors.DefaultSelector() as selector:
            selector.register(self._wake_r, selectors.EVENT_READ)
            self._udp.setblocking(False)
            selector.register(self._udp, selectors.EVENT_READ)
            if self._tcp is not None:
                selector.register(self._tcp, selectors.EVENT_READ)
            while not self._stopping.is_set() and time.monotonic() < deadline:
                wait = max(0.0, due[0][0] - time.monotonic()) if due else 1.0
                for key, _ in selector.select(wait):
                    if key.fileobj is self._udp:
                        self._read_udp(due, order)
                    elif key.fileobj is self._tcp:
                        self._accept()
                while due and due[0][0] <= time.monotonic():
                    _, _, item, peer = heapq.heappop(due)
                    self._send_udp(item, peer)

    def _read_udp(self, due: list, order) -> None:
        for _ in range(self.UDP_BURST):
            try:
                wire, peer = self._udp.recvfrom(65535)
            except BlockingIOError:
                return
            with self._lock:
                self.udp_queries += 1
            when = time.monotonic() + self.delay
            for item in self._replies(wire, peer, "udp"):
                heapq.heappush(due, (when, next(order), item, peer))

    def _send_udp(self, item, peer: tuple) -> None:
        sock = self._udp
        if isinstance(item, OtherPort):
            if self._other is None:
                self.errors.append(ValueError("OtherPort reply but no other_udp socket"))
                return
            sock = self._other
        try:
            sock.sendto(self._wire(item, "udp"), peer)
        except OSError as exc:
            self.errors.append(exc)

    def _accept(self) -> None:
        try:
            conn, peer = self._tcp.accept()
        except BlockingIOError:
            return
        thread = threading.Thread(target=self._serve_tcp, args=(conn, peer), daemon=True)
        self._conns[conn] = thread
        thread.start()

    def _serve_tcp(self, conn: socket.socket, peer: tuple) -> None:
        """Answer length-prefixed queries on one connection until EOF or idle."""
        conn.settimeout(self.TCP_IDLE)
        with conn:
            for _ in range(self.TCP_MESSAGES):
                try:
                    (length,) = struct.unpack("!H", _recv_exact(conn, 2))
                    wire = _recv_exact(conn, length)
                except (OSError, EOFError):
                    return
                with self._lock:
                    self.tcp_queries += 1
                replies = self._replies(wire, peer, "tcp")
                if self._stopping.wait(self.delay):
                    return
                try:
                    for item in replies:
                        data = self._wire(item, "tcp")
                        conn.sendall(struct.pack("!H", len(data)) + data)
                except OSError:
                    return


def _recv_exact(conn: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:  # bounded: each recv returns >= 1 byte or ends
        chunk = conn.recv(count - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data
