"""Test routers for RFC 1256, built with scapy (never with bootres's own packet code), and the bootres side.

``TestRouter`` lives in a lab namespace: a raw ICMP socket bound to its
interface records every Router Solicitation it hears (time, destination)
and can answer them, and a thread sends periodic advertisements.  Packets
are made by scapy (or packed by hand for floods), with the IP header
written by the test so it can forge sources.

The bootres side is ``rdisc_host.BootresHost`` (the demo imports this module
with Debian's python3 and without bootres on its path).
"""

from __future__ import annotations

import select
import socket
import struct
import threading
import time

from scapy.all import ICMP, raw

SO_BINDTODEVICE = 25


def icmp_advert(entries, lifetime=30, code=0, num_addrs=None, entry_size=2, checksum_ok=True) -> bytes:
    """An ICMP Router Advertisement as scapy builds it; fields can be set wrong on purpose."""
    body = b"".join(socket.inet_aton(a) + struct.pack("!i", p) for a, p in entries)
    count = len(entries) if num_addrs is None else num_addrs
    packet = ICMP(type=9, code=code, unused=(count << 24) | (entry_size << 16) | lifetime) / body
    data = raw(packet)
    if not checksum_ok:
        data = data[:2] + bytes([data[2] ^ 0xFF, data[3]]) + data[4:]
    return data


def inet_checksum(data: bytes) -> int:
    """RFC 1071, written out here so the tests do not lean on bootres's own."""
    data += b"\0" * (len(data) % 2)
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def fast_advert(entries, lifetime=30) -> bytes:
    """The same advertisement as icmp_advert, packed by hand: thousands per second for floods."""
    body = b"".join(socket.inet_aton(a) + struct.pack("!i", p) for a, p in entries)
    message = struct.pack("!BBHBBH", 9, 0, 0, len(entries), 2, lifetime) + body
    return message[:2] + struct.pack("!H", inet_checksum(message)) + message[4:]


class TestRouter:
    """A router on ``ifname`` in ``ns`` with address ``address`` (no prefix)."""

    __test__ = False  # not a pytest class

    def __init__(self, ns, ifname: str, address: str, *, preference: int = 0, lifetime: int = 30,
                 answer_solicitations: bool = True, answer_to: str = "224.0.0.1"):
        self.ns, self.ifname, self.address = ns, ifname, address
        self.preference, self.lifetime = preference, lifetime
        self.answer_solicitations = answer_solicitations
        self.answer_to = answer_to
        self.solicitations: list[tuple[float, str]] = []  # (monotonic time, destination)
        self.adverts_sent: list[float] = []
        self.interval: float | None = None  # periodic advertisements when set
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.listen = ns.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        self.listen.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, ifname.encode())
        # A router listens on the all-routers group (RFC 1256 section 4.3).
        ifindex = int(ns.run("cat", f"/sys/class/net/{ifname}/ifindex").stdout)
        mreqn = socket.inet_aton("224.0.0.2") + bytes(4) + struct.pack("=i", ifindex)
        self.listen.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreqn)
        self.send_sock = ns.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        self.send_sock.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, ifname.encode())
        self.send_sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        self._threads = [threading.Thread(target=self._listen, daemon=True),
                         threading.Thread(target=self._advertise, daemon=True)]
        for thread in self._threads:
            thread.start()

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=2)

    def send(self, icmp: bytes, *, src: str | None = None, dst: str = "224.0.0.1") -> float:
        """Send an ICMP message in an IP datagram from ``src`` (default: our address)."""
        # Linux fills in the IP checksum (and ID) of an IPPROTO_RAW datagram.
        header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), 0, 0, 1, 1, 0,
                             socket.inet_aton(src or self.address), socket.inet_aton(dst))
        datagram = header + icmp
        with self._lock:
            self.send_sock.sendto(datagram, (dst, 0))
            sent = time.monotonic()
            self.adverts_sent.append(sent)
        return sent

    def advertise(self, *, lifetime: int | None = None, preference: int | None = None, dst: str = "224.0.0.1") -> float:
        entries = [(self.address, self.preference if preference is None else preference)]
        return self.send(icmp_advert(entries, self.lifetime if lifetime is None else lifetime), dst=dst)

    def _listen(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.listen], [], [], 0.05)
            if not ready:
                continue
            data = self.listen.recv(65535)
            header = (data[0] & 0x0F) * 4
            if len(data) >= header + 8 and data[header] == 10:
                self.solicitations.append((time.monotonic(), socket.inet_ntoa(data[16:20])))
                if self.answer_solicitations:
                    self.advertise(dst=self.answer_to)

    def _advertise(self) -> None:
        while not self._stop.wait(0.05):
            if self.interval is not None and (not self.adverts_sent or
                                              time.monotonic() - self.adverts_sent[-1] >= self.interval):
                self.advertise()
