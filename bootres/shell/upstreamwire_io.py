"""Upstream DNS sockets: one fresh socket per upstream query, keyed by the core's token.

Each query gets a new socket connected to the upstream: the kernel picks a
random ephemeral source port (RFC 5452 section 9.2) and, being connected,
only delivers datagrams from that address and port.  The core still checks
the source.  A connected socket also hears ICMP port unreachable, so a
stopped upstream fails at once instead of timing out.  Replies and failures
go to the ``CoreDriver`` (``on_reply``, ``on_failure``); ``send`` and
``close`` are its handlers for ``SendUpstream`` and ``CloseUpstream``.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import struct
from typing import Callable

from bootres.core.effects import CloseUpstream, SendUpstream

# IP_RECVERR / IPV6_RECVERR (11, 25 on Linux; Python 3.11's socket module lacks
# both).  Without them Linux reports only "hard" ICMP errors on a connected UDP
# socket (port unreachable); a router's "network/host unreachable" for a
# nameserver it knows is gone would be silence, costing three timeouts.
_RECVERR = {socket.AF_INET: (socket.IPPROTO_IP, 11), socket.AF_INET6: (socket.IPPROTO_IPV6, 25)}


class UpstreamSockets:
    """One socket per upstream query, keyed by the core's token."""

    def __init__(self, loop, on_reply: Callable, on_failure: Callable):
        self._loop = loop
        self._on_reply = on_reply  # (token, data, source or None) -> None
        self._on_failure = on_failure  # (token, why, hard) -> None
        self._udp: dict[int, socket.socket] = {}
        self._tcp: dict[int, asyncio.Task] = {}

    def __len__(self) -> int:
        return len(self._udp) + len(self._tcp)

    def send(self, effect: SendUpstream) -> None:
        token, address, wire = effect.token, effect.address, effect.wire
        if effect.tcp:
            self._tcp[token] = self._loop.create_task(self._ask_tcp(token, address, wire))
            return
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        try:
            sock = socket.socket(family, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        except OSError as exc:  # out of file descriptors: this upstream fails for this query
            self._loop.call_soon(self._on_failure, token, f"could not be asked ({exc.strerror})", False)
            return
        try:
            sock.setsockopt(*_RECVERR[family], 1)
            sock.connect(address)
            sock.send(wire)
        except OSError as exc:
            sock.close()
            self._loop.call_soon(self._on_failure, token, *_failure(exc))
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
            except OSError as exc:  # an ICMP error about our query (see _RECVERR)
                self._on_failure(token, *_failure(exc))
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
                self._on_failure(token, *(_failure(exc, tcp=True) if isinstance(exc, OSError)
                                          else ("closed the TCP connection", False)))
        finally:
            if writer is not None:
                writer.close()

    def close(self, effect: CloseUpstream) -> None:
        self._close(effect.token)

    def _close(self, token: int) -> None:
        sock = self._udp.pop(token, None)
        if sock is not None:
            self._loop.remove_reader(sock.fileno())
            sock.close()
        task = self._tcp.pop(token, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    def close_all(self) -> None:
        for token in list(self._udp) + list(self._tcp):
            self._close(token)


def _failure(exc: OSError, tcp: bool = False) -> tuple[str, bool]:
    """How a query to an upstream failed, for the log and SERVFAIL reasons, and whether that is hard.

    Hard: the kernel says nothing at that address can answer now (no route,
    or ICMP port unreachable on our connected UDP socket), and the core marks
    the upstream down at once.  A refused TCP connection is not: the server
    may well answer over UDP, which is what it is asked first.
    """
    if exc.errno == errno.ECONNREFUSED:
        return "refused", not tcp  # UDP: an ICMP port unreachable, the host is up, nothing listens
    # At boot, before any route exists, this is what every query gets: say so,
    # or an operator looks for a broken nameserver instead of a missing route.
    if exc.errno == errno.ENETUNREACH:
        return "unreachable (no route to its network)", True
    if exc.errno == errno.EHOSTUNREACH:
        return "unreachable (no route to the host)", True
    return f"failed ({exc.strerror or exc})", False
