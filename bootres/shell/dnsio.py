"""DNS sockets: UDP and TCP listeners for clients, one fresh socket per upstream query.

The client-side UDP path is the measured hot path: asyncio's datagram
protocol costs a callback and a Python object per packet, so each UDP
listener is a non-blocking socket read with ``loop.add_reader`` and drained
until EAGAIN, and cache hits are answered inside that loop without leaving
it (``Stub.fast_answer``).

Upstream queries each get a new socket connected to the upstream: the kernel
picks a random ephemeral source port (RFC 5452 section 9.2) and, being
connected, only delivers datagrams from that address and port.  The core
still checks the source.  A connected socket also hears ICMP port
unreachable, so a stopped upstream fails at once instead of timing out.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import struct
from typing import Callable

from bootres.config import Endpoint

UDP_BURST = 1000  # datagrams per wake-up before other work gets a turn
TCP_IDLE = 10.0  # seconds a client TCP connection may sit idle (RFC 7766 suggests tens of seconds)
TCP_MAX_CONNECTIONS = 256
RECV_BUFFER = 4 * 1024 * 1024


def _family(host) -> int:
    return socket.AF_INET6 if host.version == 6 else socket.AF_INET


def bind_listener(endpoint: Endpoint) -> tuple[socket.socket, socket.socket]:
    """UDP and TCP sockets bound to ``endpoint``; OSError names the address on failure."""
    family = _family(endpoint.host)
    made = []
    try:
        for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
            sock = socket.socket(family, kind | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
            made.append(sock)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if kind == socket.SOCK_STREAM:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            else:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECV_BUFFER)
            sock.bind(endpoint.sockaddr)
            if kind == socket.SOCK_STREAM:
                sock.listen(128)
    except OSError as exc:
        for sock in made:
            sock.close()
        proto = "udp" if len(made) == 1 else "tcp"
        raise OSError(exc.errno, f"cannot listen on {endpoint} ({proto}): {exc.strerror}") from None
    return made[0], made[1]


class UdpListener:
    """Client queries on one UDP socket: cache hits answered in place, the rest handed on."""

    def __init__(self, loop, sock: socket.socket, fast: Callable, slow: Callable):
        self._loop = loop
        self._sock = sock
        self._fast = fast  # (data, host, now) -> reply bytes or None
        self._slow = slow  # (data, client, host, now) -> None
        loop.add_reader(sock.fileno(), self._readable)

    def _readable(self) -> None:
        # The measured hot path: keep this loop free of anything not needed for a hit.
        sock = self._sock
        recvfrom, sendto, fast = sock.recvfrom, sock.sendto, self._fast
        now = self._loop.time()
        for _ in range(UDP_BURST):
            try:
                data, peer = recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue  # an ICMP error queued on the socket; not a query
            reply = fast(data, peer[0], now)
            if reply is None:
                self._slow(data, (sock, peer), peer[0], now)
                continue
            try:
                sendto(reply, peer)
            except OSError:
                pass  # client gone or buffer full: UDP clients retry

    def close(self) -> None:
        self._loop.remove_reader(self._sock.fileno())
        self._sock.close()


def send_udp_reply(client: tuple, wire: bytes) -> None:
    sock, peer = client
    try:
        sock.sendto(wire, peer)
    except OSError:
        pass


class TcpListener:
    """Client queries over TCP (RFC 7766): length-prefixed, several per connection."""

    def __init__(self, sock: socket.socket, handle: Callable):
        self._sock = sock
        self._handle = handle  # (data, writer, host) -> None; the reply comes back via send_tcp_reply
        self._server: asyncio.base_events.Server | None = None
        self._connections: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, sock=self._sock)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._connections) >= TCP_MAX_CONNECTIONS:
            writer.close()
            return
        self._connections.add(writer)
        host = writer.get_extra_info("peername")[0]
        try:
            while True:
                length = struct.unpack(">H", await asyncio.wait_for(reader.readexactly(2), TCP_IDLE))[0]
                data = await asyncio.wait_for(reader.readexactly(length), TCP_IDLE)
                self._handle(data, writer, host)
        except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError, OSError):
            pass  # client closed, went idle or broke the framing: just hang up
        finally:
            self._connections.discard(writer)
            writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._connections):
                writer.close()
            await self._server.wait_closed()


def send_tcp_reply(writer: asyncio.StreamWriter, wire: bytes) -> None:
    if not writer.is_closing():
        writer.write(struct.pack(">H", len(wire)) + wire)


class UpstreamSockets:
    """One socket per upstream query, keyed by the core's token."""

    def __init__(self, loop, on_reply: Callable, on_failure: Callable):
        self._loop = loop
        self._on_reply = on_reply  # (token, data, source or None) -> None
        self._on_failure = on_failure  # (token, why) -> None
        self._udp: dict[int, socket.socket] = {}
        self._tcp: dict[int, asyncio.Task] = {}

    def __len__(self) -> int:
        return len(self._udp) + len(self._tcp)

    def send(self, token: int, address: tuple[str, int], wire: bytes, tcp: bool) -> None:
        if tcp:
            self._tcp[token] = self._loop.create_task(self._ask_tcp(token, address, wire))
            return
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        try:
            sock = socket.socket(family, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        except OSError as exc:  # out of file descriptors: this upstream fails for this query
            self._loop.call_soon(self._on_failure, token, f"could not be asked ({exc.strerror})")
            return
        try:
            sock.connect(address)
            sock.send(wire)
        except OSError as exc:
            sock.close()
            self._loop.call_soon(self._on_failure, token, _why(exc))
            return
        self._udp[token] = sock
        self._loop.add_reader(sock.fileno(), self._readable, token, sock)

    def _readable(self, token: int, sock: socket.socket) -> None:
        for _ in range(64):  # bounded: a flood of spoofed replies cannot starve the loop
            if self._udp.get(token) is not sock:
                return  # the core closed it while handling an earlier datagram
            try:
                data, source = sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # ICMP port or host unreachable
                self._on_failure(token, _why(exc))
                return
            self._on_reply(token, data, source)

    async def _ask_tcp(self, token: int, address: tuple[str, int], wire: bytes) -> None:
        writer = None
        try:
            reader, writer = await asyncio.open_connection(*address)
            writer.write(struct.pack(">H", len(wire)) + wire)
            while True:  # until the core closes us: a bad reply does not end the wait
                length = struct.unpack(">H", await reader.readexactly(2))[0]
                self._on_reply(token, await reader.readexactly(length), None)
                if token not in self._tcp:
                    return  # the reply settled it and the core closed this query
        except asyncio.CancelledError:
            raise
        except (OSError, asyncio.IncompleteReadError) as exc:
            if token in self._tcp:
                self._on_failure(token, _why(exc) if isinstance(exc, OSError) else "closed the TCP connection")
        finally:
            if writer is not None:
                writer.close()

    def close(self, token: int) -> None:
        sock = self._udp.pop(token, None)
        if sock is not None:
            self._loop.remove_reader(sock.fileno())
            sock.close()
        task = self._tcp.pop(token, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    def close_all(self) -> None:
        for token in list(self._udp) + list(self._tcp):
            self.close(token)


def _why(exc: OSError) -> str:
    if exc.errno in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH):
        return "refused"
    return f"failed ({exc.strerror or exc})"
