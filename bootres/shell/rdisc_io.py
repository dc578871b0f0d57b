"""Raw ICMP sockets for router discovery, one per interface.

Each socket is bound to its interface (SO_BINDTODEVICE), so advertisements
are attributed to the interface they arrived on and solicitations leave by
the interface they are for; IP_PKTINFO reports the receiving ifindex as a
cross-check.  The kernel filters out every ICMP type but Router
Advertisement (ICMP_FILTER) before anything reaches Python.

Needs CAP_NET_RAW.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from typing import Callable

from bootres.core.rdisc import ALL_SYSTEMS, ROUTER_ADVERTISEMENT

IP_PKTINFO = 8  # linux/in.h; Python 3.11's socket module lacks the constant
ICMP_FILTER = 1  # linux/icmp.h, at level SOL_RAW
SOL_RAW = 255
SO_BINDTODEVICE = 25
_PKTINFO = struct.Struct("=I4s4s")  # struct in_pktinfo: ifindex, spec_dst, addr
_MREQN = struct.Struct("=4s4si")  # struct ip_mreqn: multiaddr, address, ifindex
_RECEIVE_BUFFER = 65535


class IcmpSocket:
    """Router-discovery socket for one interface; ``on_datagram(data, ifindex)`` gets every advertisement."""

    def __init__(self, ifindex: int, ifname: str, multicast: bool):
        self.ifindex = ifindex
        self.ifname = ifname
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, ifname.encode())
            # ICMP_FILTER is a bitmask of types to *drop*.
            sock.setsockopt(SOL_RAW, ICMP_FILTER, struct.pack("=I", ~(1 << ROUTER_ADVERTISEMENT) & 0xFFFFFFFF))
            sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            if multicast:
                mreqn = _MREQN.pack(ALL_SYSTEMS.packed, bytes(4), ifindex)
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreqn)
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, mreqn)
                # RFC 1256 section 5.3 is link-local: never let a solicitation be routed.
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
        except BaseException:
            sock.close()
            raise
        self.sock = sock

    def fileno(self) -> int:
        return self.sock.fileno()

    def receive(self) -> tuple[bytes, int] | None:
        """One waiting datagram (IP header included) and its receiving ifindex, or None."""
        try:
            data, ancillary, _, _ = self.sock.recvmsg(_RECEIVE_BUFFER, socket.CMSG_SPACE(_PKTINFO.size))
        except OSError:
            # Nothing waiting (EAGAIN), or a transient error of a link going
            # down: either way there is nothing to read now.
            return None
        ifindex = self.ifindex
        for level, kind, payload in ancillary:
            if level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(payload) >= _PKTINFO.size:
                ifindex = _PKTINFO.unpack_from(payload)[0]
        return data, ifindex

    def send(self, destination: ipaddress.IPv4Address, payload: bytes) -> None:
        """Send an ICMP message (the kernel adds the IP header); raises OSError."""
        self.sock.sendto(payload, (str(destination), 0))

    def close(self) -> None:
        self.sock.close()


def attach(loop, icmp: IcmpSocket, on_datagram: Callable[[bytes, int], None]) -> None:
    """Call ``on_datagram`` from ``loop`` for everything ``icmp`` receives, until detached."""

    def readable() -> None:
        while (received := icmp.receive()) is not None:
            on_datagram(*received)

    loop.add_reader(icmp.fileno(), readable)


def detach(loop, icmp: IcmpSocket) -> None:
    loop.remove_reader(icmp.fileno())
    icmp.close()
