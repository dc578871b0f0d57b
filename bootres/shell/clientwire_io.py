"""Clients' DNS sockets: UDP and TCP listeners, and the handles replies go back through.

The client-side UDP path is the measured hot path: asyncio's datagram
protocol costs a callback and a Python object per packet, so each UDP
listener is a non-blocking socket read with ``loop.add_reader`` and drained
until EAGAIN.  Each datagram goes to the resolver core's
``udp_query_received``, which answers a cache hit at once (the reply is sent
without leaving the loop) and takes a miss the slow way itself, with a
``UdpClient`` made only then; the ``CoreDriver`` then carries out what the
miss asked for.  TCP messages go to the driver one by one.

Every reply to a client goes through its handle's ``reply(effect)``: a
``UdpClient``, a ``TcpConnection``, or the service's own asker.
"""

from __future__ import annotations

import asyncio
import collections
import socket
import struct
import sys
from collections import OrderedDict
from typing import TYPE_CHECKING, Callable, NamedTuple

from bootres.config import Endpoint
from bootres.core import clientwire
from bootres.core.effects import Respond

if TYPE_CHECKING:
    from bootres.core import report

UDP_BURST = 1000  # datagrams read per wake-up before other work gets a turn
MISS_SLICE = 8  # misses taken the slow way per turn of the loop: with their replies, what a hit waits for
MISS_BACKLOG = 4096  # misses read and waiting; beyond, answered at once from the cache or SERVFAIL
TCP_BACKLOG = 1024  # connections the kernel holds until accepted: absorbs a burst of them
TCP_ACCEPT_BURST = 64  # connections accepted per wake-up, so a flood of them cannot hold up the loop
TCP_BURST = 64  # messages from one TCP client per turn of the loop...
TCP_BURST_BYTES = 65536  # ...or fewer, once their answers reach this many bytes
TCP_READ_SIZE = 4096  # input buffer of a TCP connection, grown only for a longer message
RECV_BUFFER = 4 * 1024 * 1024
# linux/in.h; Python's socket module lacks both
IP_PKTINFO = 8  # the arrival interface of each datagram
IP_FREEBIND = 15  # bind an address no interface has yet
_PKTINFO_SPACE = socket.CMSG_SPACE(12)  # struct in_pktinfo: int ifindex, in_addr spec_dst, in_addr addr


def _family(host) -> int:
    return socket.AF_INET6 if host.version == 6 else socket.AF_INET


def bind_listener(endpoint: Endpoint, free: bool = False) -> tuple[socket.socket, socket.socket]:
    """UDP and TCP sockets bound to ``endpoint``; OSError names the address on failure.

    ``free``: bind even while no interface has the address yet (IP_FREEBIND,
    as bootres.socket's FreeBind=yes), for the container address bootres
    puts on lo itself once netlink is up.
    """
    family = _family(endpoint.host)
    made = []
    try:
        for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
            sock = socket.socket(family, kind | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
            made.append(sock)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if free:
                sock.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)
            if kind == socket.SOCK_STREAM:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            else:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECV_BUFFER)
            sock.bind(endpoint.sockaddr)
            if kind == socket.SOCK_STREAM:
                sock.listen(TCP_BACKLOG)
    except OSError as exc:
        for sock in made:
            sock.close()
        proto = "udp" if len(made) == 1 else "tcp"
        raise OSError(exc.errno, f"cannot listen on {endpoint} ({proto}): {exc.strerror}") from None
    return made[0], made[1]


class UdpListener:
    """Client queries on one UDP socket: cache hits answered as they are read, misses after them, a slice at a time.

    The measured hot path.  On a CPU-bound box every syscall counts, so
    datagrams are read 64 at a time with recvmmsg(2) and the cache hits among
    them answered with one sendmmsg(2) (``_Batch``, through ctypes: Python's
    socket module has neither).  Without them (not glibc/musl) it falls back
    to recvfrom/sendto per datagram.

    Hits first (issue 24): a miss costs a hundred times what a hit does (a
    parse, a race, an upstream socket), so a hit queued behind thousands of
    misses in the socket waited for all of them (p50 206 ms with 3,000
    misses outstanding).  Each wake-up reads what the socket holds and
    answers the hits among it; the misses wait in ``_misses`` and
    ``MISS_SLICE`` of them are taken the slow way per turn of the loop, the
    socket read again (hits first) between slices.  Beyond ``MISS_BACKLOG``
    waiting misses, a new one is answered at once from the cache (stale) or
    SERVFAIL (``Resolver.query_shed``) rather than queued.
    """

    def __init__(self, loop, sock: socket.socket, core, pump: Callable):
        self._loop = loop
        self._sock = sock
        self._fast = core.fast_answer  # (data, host, now) -> reply bytes for a cache hit, or None
        self._slow = core.query_received  # (data, client, host, tcp, now): a miss, the slow way
        self._shed = core.query_shed  # (data, client, host, now): a miss beyond the backlog
        # () -> None: the driver carries out what a miss asked for at once (its error reply, its upstream
        # queries), and once per wake-up re-arms the core's timer (a hit may have asked for a refresh)
        self._pump = pump
        self._batch = _Batch.create(sock.family)
        self._misses: collections.deque[tuple[bytes, str, tuple]] = collections.deque()
        self._again: asyncio.Handle | None = None  # the next slice of misses, at the next turn of the loop
        loop.add_reader(sock.fileno(), self._wake)

    def _resume(self) -> None:
        self._again = None
        self._wake()

    def _wake(self) -> None:
        if self._batch:
            self._readable_batched()
        else:
            self._readable()
        misses, slow, sock, now = self._misses, self._slow, self._sock, self._loop.time()
        for _ in range(min(MISS_SLICE, len(misses))):
            data, host, peer = misses.popleft()
            slow(data, UdpClient(sock, peer), host, False, now)
            self._pump()
        if misses and self._again is None:  # one scheduled turn at most, however often the socket wakes us
            self._again = self._loop.call_soon(self._resume)
        self._pump()

    def _missed(self, data: bytes, host: str, peer: tuple, now: float) -> None:
        if len(self._misses) < MISS_BACKLOG:
            self._misses.append((data, host, peer))
        else:
            self._shed(data, UdpClient(self._sock, peer), host, now)
            self._pump()

    def _readable(self) -> None:
        sock = self._sock
        recvfrom, sendto, fast, missed = sock.recvfrom, sock.sendto, self._fast, self._missed
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
                missed(data, peer[0], peer, now)
                continue
            try:
                sendto(reply, peer)
            except OSError:
                pass  # client gone or buffer full: UDP clients retry

    def _readable_batched(self) -> None:
        batch, sock, fast, missed = self._batch, self._sock, self._fast, self._missed
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
                    missed(data, host, batch.peer(i, host), now)
                    continue
                if len(reply) > _Batch.BUF:  # a big EDNS answer: does not fit a slot
                    _send(sock, batch.peer(i, host), reply)
                else:
                    batch.queue_reply(replies, i, reply)
                    replies += 1
            if replies:
                batch.send(fd, replies)
            if count < _Batch.SIZE:
                return

    def close(self) -> None:
        """Stop reading; the misses still waiting get their stale answer or SERVFAIL first (a stop answers all)."""
        if self._again is not None:
            self._again.cancel()
        now = self._loop.time()
        while self._misses:
            data, host, peer = self._misses.popleft()
            self._shed(data, UdpClient(self._sock, peer), host, now)
        self._pump()
        self._loop.remove_reader(self._sock.fileno())
        self._sock.close()


class ContainerUdpListener:
    """Client queries on the container address: where each datagram arrived decides who sent it.

    A datagram that arrived on the container side (``core.containerside``:
    lo, a veth, a bridge of veths) is this host's or a container's and is
    served whatever its source address (``host`` None to the core: no
    ``allow`` check).  One that arrived anywhere else came from beyond the
    host and is counted in ``outside``; the core treats it as a query to any
    listener (REFUSED unless ``allow`` lists its source: the reply is the
    question and a header, never larger than the query).  recvmsg with
    IP_PKTINFO, one datagram per call: containers' lookups are not the hot
    path the host's own are.
    """

    def __init__(self, loop, sock: socket.socket, side: Callable, answer: Callable, pump: Callable):
        self._loop = loop
        self._sock = sock
        self._side = side  # () -> ContainerSide, the latest
        self._answer, self._pump = answer, pump  # as UdpListener's
        self.outside = 0
        sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
        loop.add_reader(sock.fileno(), self._readable)

    def _reach(self, peer: tuple, host: str | None) -> UdpClient:
        return UdpClient(self._sock, peer)

    def _readable(self) -> None:
        sock, answer, reach, pump = self._sock, self._answer, self._reach, self._pump
        now = self._loop.time()
        side = self._side()
        for _ in range(UDP_BURST):
            try:
                data, ancillary, _, peer = sock.recvmsg(65535, _PKTINFO_SPACE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                continue  # an ICMP error queued on the socket; not a query
            ifindex = next((struct.unpack_from("i", cdata)[0] for level, kind, cdata in ancillary
                            if level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(cdata) >= 4), None)
            host = None
            if ifindex is None or not side.admits_arrival(ifindex):
                self.outside += 1
                host = peer[0]
            reply = answer(data, host, now, reach, peer)
            if reply is None:
                pump()
                continue
            try:
                sock.sendto(reply, peer)
            except OSError:
                pass  # client gone or buffer full: UDP clients retry
        self._pump()

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


def reply(effect: Respond) -> None:
    """The ``CoreDriver``'s handler for ``Respond``: the reply goes back through the asker's handle."""
    effect.client.reply(effect)


class UdpClient:
    """Where a UDP query's reply goes: the listener's socket and the client's address."""

    __slots__ = ("sock", "peer")

    def __init__(self, sock: socket.socket, peer: tuple):
        self.sock, self.peer = sock, peer

    def reply(self, effect: Respond) -> None:
        _send(self.sock, self.peer, effect.wire)


def _send(sock: socket.socket, peer: tuple, wire: bytes) -> None:
    try:
        sock.sendto(wire, peer)
    except OSError:
        pass  # client gone or buffer full: UDP clients retry


class TcpLimits(NamedTuple):
    """Bounds on client TCP connections (RFC 7766 sections 6.2.3 and 10); see ``TcpPool``."""

    connections: int  # open at once, over every listener
    idle_timeout: float  # seconds without activity (see TcpPool) before a connection is closed
    output_queue: int  # bytes of answers waiting for one client; reading stops at a quarter of it


class TcpPool:
    """Every client TCP connection of a service, least recently active first.

    A connection is active when a whole message that can be a query arrives
    (a header and one question, QR clear: ``clientwire.looks_like_query``), or when an
    answer is written while its client keeps up.  A trickle of bytes, a
    partial message or a message too short to be a query is not activity, so
    it cannot keep a connection open: every query must arrive whole within
    ``idle_timeout`` of the last activity, which is the per-message read
    deadline as well as the idle timeout.

    The connections sit in an OrderedDict in order of last activity, so one
    timer at the first one's deadline finds every idle connection, and the
    first one is the one closed to make room for a newcomer at
    ``connections``: clients that hold connections without asking cannot
    lock out those that ask.
    """

    def __init__(self, limits: TcpLimits, admits: Callable[[str], bool] = lambda host: True):
        self.limits = limits
        self.admits = admits  # the ``allow`` check, made before a connection takes a slot
        self._loop: asyncio.AbstractEventLoop | None = None
        self._active: OrderedDict[_TcpConnection, float] = OrderedDict()  # -> time of last activity
        self._timer: asyncio.TimerHandle | None = None
        self.counts = dict.fromkeys(("accepted", "refused", "evicted", "idle_closed", "backpressured",
                                     "overflow_closed", "oversized"), 0)

    def __len__(self) -> int:
        return len(self._active)

    def __iter__(self):
        return iter(list(self._active))

    def status(self) -> report.TcpStatus:
        from bootres.core import report  # here: the status model is not needed before the first answer

        return report.TcpStatus(connections=len(self._active), **self.counts)

    def add(self, conn: _TcpConnection) -> None:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        for _ in range(len(self._active) - self.limits.connections + 1):  # more than 1 after a reload lowered it
            oldest = next(iter(self._active))
            oldest.abort()
            self.counts["evicted"] += 1
        self._active[conn] = self._loop.time()
        self.counts["accepted"] += 1
        if self._timer is None:
            self._arm()

    def touch(self, conn: _TcpConnection) -> None:
        if conn in self._active:
            self._active[conn] = self._loop.time()
            self._active.move_to_end(conn)

    def remove(self, conn: _TcpConnection) -> None:
        self._active.pop(conn, None)
        if not self._active and self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self) -> None:
        if self._active:
            first = next(iter(self._active.values()))
            self._timer = self._loop.call_at(first + self.limits.idle_timeout, self._expire)

    def _expire(self) -> None:
        self._timer = None
        idle_since = self._loop.time() - self.limits.idle_timeout
        for conn, last in list(self._active.items()):
            if last > idle_since:
                break
            conn.close_idle()
            self.counts["idle_closed"] += 1
        self._arm()


class TcpListener:
    """Client queries over TCP (RFC 7766): length-prefixed, several per connection."""

    def __init__(self, sock: socket.socket, handle: Callable, pool: TcpPool, side: Callable | None = None):
        """``side``: on the container address, () -> ContainerSide, which admits each connection by its peer
        (as ``ContainerUdpListener`` admits each datagram by its arrival interface)."""
        self._sock = sock
        self._handle = handle  # (data, connection, host, True) -> None; the reply comes back via its reply()
        self._pool = pool
        self.side = side
        self.outside = 0
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        # asyncio accepts up to ``backlog`` connections per wake-up and also
        # passes it to listen(2); listening again gives the kernel's queue its length.
        self._server = await loop.create_server(lambda: _TcpConnection(self._pool, self._handle, self),
                                                sock=self._sock, backlog=TCP_ACCEPT_BURST)
        self._sock.listen(TCP_BACKLOG)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for conn in self._pool:
                if conn.listener is self:
                    conn.abort()
            await self._server.wait_closed()


class _TcpConnection(asyncio.BufferedProtocol):
    """One client connection: frames in, handed on; replies out, with backpressure.

    Input goes into a buffer of TCP_READ_SIZE bytes, grown to hold the one
    message being read when it is longer, so a connection holds at most one
    unread message however fast its client sends.  Reading stops while the
    replies waiting to be sent are above the transport's high-water mark (a
    quarter of ``output_queue``): a client that does not read gets no more
    answers queued, only the ones still due for queries already read, and a
    connection those would push past ``output_queue`` is closed.  Reading
    also pauses after TCP_BURST messages, or TCP_BURST_BYTES of answers,
    until the loop has had a turn, so one pipelining client cannot hold up
    the UDP listeners.
    """

    def __init__(self, pool: TcpPool, handle: Callable, listener: TcpListener):
        self.pool = pool
        self.listener = listener
        self._handle = handle
        self.transport: asyncio.Transport | None = None
        self._host = ""
        self._buf = bytearray(TCP_READ_SIZE)
        self._start = self._end = 0  # unread bytes are _buf[_start:_end]
        self._closed = False
        self._blocked = False  # write buffer above the high-water mark
        self._more = False  # whole messages left for the next turn of the loop
        self._burst_bytes = 0  # bytes of answers written since this turn's messages began
        self._reading = True

    def connection_made(self, transport) -> None:
        self.transport = transport
        self._host = transport.get_extra_info("peername")[0]
        side = self.listener.side
        if side is not None:
            # TCP tells no arrival interface: the peer must be on the container side's networks.
            if side().admits_peer(self._host):
                self._host = None
            else:
                self.listener.outside += 1
        if self._host is not None and not self.pool.admits(self._host):
            # Outside ``allow``: closed before it takes a slot, so refused
            # clients can never evict allowed ones (over UDP they get REFUSED).
            self.pool.counts["refused"] += 1
            self._closed = True
            transport.abort()
            return
        transport.set_write_buffer_limits(high=self.pool.limits.output_queue // 4)
        self.pool.add(self)

    def connection_lost(self, exc) -> None:
        self._closed = True
        self.pool.remove(self)

    def get_buffer(self, sizehint: int) -> memoryview:
        buf, start, end = self._buf, self._start, self._end
        if start == end:
            start = end = self._start = self._end = 0
        need = TCP_READ_SIZE
        if end - start >= 2:
            need = max(need, 2 + (buf[start] << 8 | buf[start + 1]))
        # A new buffer rather than a resize: the transport may still hold a view of the old one.
        if start or len(buf) < need or (start == end and len(buf) > need):  # compact, grow or shrink
            kept = buf[start:end]
            self._buf = buf = bytearray(need)
            buf[:len(kept)] = kept
            self._start, self._end = 0, len(kept)
        return memoryview(buf)[self._end:]

    def buffer_updated(self, nbytes: int) -> None:
        self._end += nbytes
        self._work()

    def eof_received(self) -> bool:
        return False  # close: a client that is done sending gets the answers already written

    def pause_writing(self) -> None:
        self._blocked = True
        self.pool.counts["backpressured"] += 1
        self._update_reading()

    def resume_writing(self) -> None:
        self._blocked = False
        self._more = True  # messages read before the pause may be waiting
        asyncio.get_running_loop().call_soon(self._work)
        self._update_reading()

    def _work(self) -> None:
        """Hand on the whole messages received, TCP_BURST (or TCP_BURST_BYTES of answers) per turn of the loop."""
        self._more = False
        self._burst_bytes = 0
        for _ in range(TCP_BURST):
            length = self._whole_message()
            if length is None or self._blocked or self._closed or self._burst_bytes >= TCP_BURST_BYTES:
                break
            start = self._start + 2
            message = bytes(self._buf[start:start + length])
            self._start = start + length
            if clientwire.looks_like_query(message):
                self.pool.touch(self)
            self._handle(message, self, self._host, True)  # True: over TCP
        if not (self._blocked or self._closed) and self._whole_message() is not None:
            self._more = True
            asyncio.get_running_loop().call_soon(self._work)
        self._update_reading()

    def _whole_message(self) -> int | None:
        """The length of the next message if it is all in the buffer."""
        buf, start, end = self._buf, self._start, self._end
        if end - start < 2:
            return None
        length = buf[start] << 8 | buf[start + 1]
        return length if end - start - 2 >= length else None

    def _update_reading(self) -> None:
        want = not (self._blocked or self._more or self._closed)
        if want != self._reading:
            self._reading = want
            if want:
                self.transport.resume_reading()
            else:
                self.transport.pause_reading()

    def reply(self, effect: Respond) -> None:
        self.send(effect.wire)

    def send(self, wire: bytes) -> None:
        if self._closed or self.transport.is_closing():
            return  # the answer to a client that went away, or was sent away
        if len(wire) > 65535:  # cannot be framed (RFC 1035 section 4.2.2): say so instead
            wire = clientwire.servfail_for_oversized(wire)
            self.pool.counts["oversized"] += 1
        if self.transport.get_write_buffer_size() + 2 + len(wire) > self.pool.limits.output_queue:
            self.pool.counts["overflow_closed"] += 1
            self.abort()
            return
        self.transport.write(_LENGTH.pack(len(wire)) + wire)
        self._burst_bytes += len(wire)
        if not self._blocked:
            self.pool.touch(self)

    def abort(self) -> None:
        """Close now, dropping what is not sent (RFC 7766 section 6.2.4: the client asks again)."""
        self._closed = True
        self.pool.remove(self)
        self.transport.abort()

    def close_idle(self) -> None:
        if self.transport.get_write_buffer_size():
            self.abort()  # blocked by a client that does not read: close() would wait for it forever
        else:
            self._closed = True
            self.pool.remove(self)
            self.transport.close()


_LENGTH = struct.Struct(">H")
