"""An RFC 1256 router, for the bench: advertises itself, answers solicitations.

    python3 rdisc_router.py ADDRESS PREFERENCE INTERVAL_S LIFETIME_S

Sends an ICMP Router Advertisement (type 9) for ADDRESS with PREFERENCE to
224.0.0.1 every INTERVAL_S seconds and at once after each Router
Solicitation (type 10) it hears on 224.0.0.2.  Packets are built here with
struct (RFC 1256 section 3), independently of bootres's own code, so a bug
shared by both cannot hide.  Stopping it (any signal) sends nothing more: a
router that dies, not one that says goodbye with lifetime 0.  Run as a
script inside the router's namespace; it imports nothing from bench.
"""

import select
import socket
import struct
import sys
import time

ALL_HOSTS = "224.0.0.1"
ALL_ROUTERS = "224.0.0.2"
ADVERTISEMENT, SOLICITATION = 9, 10


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def advertisement(address: str, preference: int, lifetime: int) -> bytes:
    """Type 9, code 0, one address, entry size 2 (32-bit words), then address and signed preference."""
    body = socket.inet_aton(address) + struct.pack("!i", preference)
    header = struct.pack("!BBHBBH", ADVERTISEMENT, 0, 0, 1, 2, lifetime)
    return struct.pack("!BBHBBH", ADVERTISEMENT, 0, checksum(header + body), 1, 2, lifetime) + body


def main(address: str, preference: int, interval: float, lifetime: int) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(address))
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                    socket.inet_aton(ALL_ROUTERS) + socket.inet_aton(address))
    packet = advertisement(address, preference, lifetime)
    next_at = time.monotonic()
    while True:
        now = time.monotonic()
        if now >= next_at:
            sock.sendto(packet, (ALL_HOSTS, 0))
            next_at = now + interval
        readable, _, _ = select.select([sock], [], [], max(0.0, next_at - now))
        if readable:
            data = sock.recv(2048)
            ihl = (data[0] & 0x0F) * 4
            if len(data) > ihl and data[ihl] == SOLICITATION:
                next_at = time.monotonic()  # answer now (RFC 1256 allows a short random delay)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]))
