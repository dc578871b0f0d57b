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
import sys
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
    """Client queries on one UDP socket: cache hits answered in place, the rest handed on.

    The measured hot path.  On a CPU-bound box every syscall counts, so
    datagrams are read 64 at a time with recvmmsg(2) and the cache hits among
    them answered with one sendmmsg(2) (``_Batch``, through ctypes: Python's
    socket module has neither).  Without them (not glibc/musl) it falls back
    to recvfrom/sendto per datagram.
    """

    def __init__(self, loop, sock: socket.socket, fast: Callable, slow: Callable):
        self._loop = loop
        self._sock = sock
        self._fast = fast  # (data, host, now) -> reply bytes or None
        self._slow = slow  # (data, client, host, now) -> None
        self._batch = _Batch.create(sock.family)
        loop.add_reader(sock.fileno(), self._readable_batched if self._batch else self._readable)

    def _readable(self) -> None:
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

    def _readable_batched(self) -> None:
        batch, sock, fast, slow = self._batch, self._sock, self._fast, self._slow
        fd = sock.fileno()
        now = self._loop.time()
        for _ in range(UDP_BURST // _Batch.SIZE):
            count = batch.receive(fd)
            if count <= 0:
                return  # EAGAIN, or an error queued on the socket: wait for the next wake-up
            replies = 0
            for i, length in enumerate(batch.lengths(count)):
                data, host = batch.datagram(i, length)
                reply = fast(data, host, now)
                if reply is None:
                    slow(data, (sock, batch.peer(i, host)), host, now)
                elif len(reply) > _Batch.BUF:  # a big EDNS answer: does not fit a slot
                    send_udp_reply((sock, batch.peer(i, host)), reply)
                else:
                    batch.queue_reply(replies, i, reply)
                    replies += 1
            if replies:
                batch.send(fd, replies)
            if count < _Batch.SIZE:
                return

    def close(self) -> None:
        self._loop.remove_reader(self._sock.fileno())
        self._sock.close()


class _Batch:
    """recvmmsg/sendmmsg buffers for one listener: SIZE datagrams of up to BUF bytes each.

    Fields of the C structures are read and written through memoryviews with
    struct formats at offsets ctypes computed, which is several times cheaper
    per datagram than ctypes attribute access.  A listener socket has one
    address family (IPV6_V6ONLY), so every sender address has the same
    length and the length fields never need resetting.
    """

    SIZE = 64
    BUF = 4096  # larger queries arrive cut short and get FORMERR
    NAME = 28  # sizeof(struct sockaddr_in6), room for either family

    def __init__(self, libc, family: int):
        import ctypes

        class IoVec(ctypes.Structure):
            _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]

        class MsgHdr(ctypes.Structure):
            _fields_ = [("msg_name", ctypes.c_void_p), ("msg_namelen", ctypes.c_uint32),
                        ("msg_iov", ctypes.c_void_p), ("msg_iovlen", ctypes.c_size_t),
                        ("msg_control", ctypes.c_void_p), ("msg_controllen", ctypes.c_size_t),
                        ("msg_flags", ctypes.c_int)]

        class MMsgHdr(ctypes.Structure):
            _fields_ = [("msg_hdr", MsgHdr), ("msg_len", ctypes.c_uint)]

        n, buf = self.SIZE, self.BUF
        self._v4 = family == socket.AF_INET
        namelen = 16 if self._v4 else 28  # sockaddr_in or sockaddr_in6
        self._recvmmsg, self._sendmmsg = libc.recvmmsg, libc.sendmmsg
        self._data = ctypes.create_string_buffer(n * buf)
        self._out = ctypes.create_string_buffer(n * buf)
        self._names = ctypes.create_string_buffer(n * self.NAME)
        self._in_iov, self._out_iov = (IoVec * n)(), (IoVec * n)()
        self._in, self._outmsg = (MMsgHdr * n)(), (MMsgHdr * n)()
        names = ctypes.addressof(self._names)
        self._name_addresses = [names + i * self.NAME for i in range(n)]
        for i in range(n):
            self._in_iov[i].iov_base = ctypes.addressof(self._data) + i * buf
            self._in_iov[i].iov_len = buf
            self._out_iov[i].iov_base = ctypes.addressof(self._out) + i * buf
            for msgs, iovs in ((self._in, self._in_iov), (self._outmsg, self._out_iov)):
                msgs[i].msg_hdr.msg_iov = ctypes.addressof(iovs[i])
                msgs[i].msg_hdr.msg_iovlen = 1
                msgs[i].msg_hdr.msg_name = self._name_addresses[i]
                msgs[i].msg_hdr.msg_namelen = namelen
        stride, len_at = ctypes.sizeof(MMsgHdr), MMsgHdr.msg_len.offset
        # One struct per batch size, reading every msg_len of the batch in one call.
        self._lengths = [struct.Struct("=" + f"{len_at}xI{stride - len_at - 4}x" * k) for k in range(n + 1)]
        self._stride = stride
        self._name_at = MsgHdr.msg_name.offset
        self._iov_len_at = IoVec.iov_len.offset
        self._iov_stride = ctypes.sizeof(IoVec)
        self._data_view = memoryview(self._data).cast("B")
        self._out_view = memoryview(self._out).cast("B")
        self._names_view = memoryview(self._names).cast("B")
        self._in_view = memoryview(self._in).cast("B")
        self._outmsg_view = memoryview(self._outmsg).cast("B")
        self._out_iov_view = memoryview(self._out_iov).cast("B")
        start, end = (4, 8) if self._v4 else (8, 24)  # the address inside sockaddr_in / sockaddr_in6
        self._addresses = [slice(i * self.NAME + start, i * self.NAME + end) for i in range(n)]
        self._hosts: dict[bytes, str] = {}  # raw client address -> text, so inet_ntop runs once per client

    @classmethod
    def create(cls, family: int) -> _Batch | None:
        import ctypes

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.recvmmsg, libc.sendmmsg  # noqa: B018 (present or AttributeError)
        except (OSError, AttributeError):
            return None
        return cls(libc, family)

    def receive(self, fd: int) -> int:
        """Up to SIZE datagrams; how many (0 or less: nothing, or an error)."""
        return self._recvmmsg(fd, self._in, self.SIZE, socket.MSG_DONTWAIT, None)

    def lengths(self, count: int) -> tuple[int, ...]:
        return self._lengths[count].unpack_from(self._in_view)

    def datagram(self, i: int, length: int) -> tuple[bytes, str]:
        """Datagram ``i``'s bytes and its sender's address as text."""
        data = self._data_view[i * self.BUF:i * self.BUF + length].tobytes()
        raw = self._names_view[self._addresses[i]].tobytes()
        host = self._hosts.get(raw)
        if host is None:
            host = socket.inet_ntop(socket.AF_INET if self._v4 else socket.AF_INET6, raw)
            if len(self._hosts) >= 4096:
                self._hosts.clear()
            self._hosts[raw] = host
        return data, host

    def peer(self, i: int, host: str) -> tuple:
        """Datagram ``i``'s sender as a sockaddr tuple, for replies sent later."""
        name = i * self.NAME
        port = int.from_bytes(self._names_view[name + 2:name + 4], "big")
        if self._v4:
            return (host, port)
        return (host, port, 0, int.from_bytes(self._names_view[name + 24:name + 28], sys.byteorder))

    def queue_reply(self, slot: int, i: int, reply: bytes) -> None:
        """Put ``reply`` (at most BUF bytes) to datagram ``i``'s sender in outgoing slot ``slot``."""
        length = len(reply)
        self._out_view[slot * self.BUF:slot * self.BUF + length] = reply
        struct.pack_into("N", self._out_iov_view, slot * self._iov_stride + self._iov_len_at, length)
        # Misses leave gaps, so outgoing slot ``slot`` may answer incoming slot ``i`` != slot.
        struct.pack_into("P", self._outmsg_view, slot * self._stride + self._name_at, self._name_addresses[i])

    def send(self, fd: int, count: int) -> None:
        """Send the queued replies; any the kernel refuses are dropped, as with sendto (clients retry)."""
        self._sendmmsg(fd, self._outmsg, count, socket.MSG_DONTWAIT)


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
