"""ICMP Router Discovery packets (RFC 1256, section 3), bytes in and bytes out.

Everything here is pure: ``Advertisement.from_bytes`` either returns a
packet that passed every host-side validity check of RFC 1256 section 5.2
or raises ``PacketError`` naming the check that failed, so the caller can
count the drop.  Section 5.2 checks the ICMP message only: not the IP
source address, which nothing here reads.  Nothing here knows about
interfaces or time; section 5.3's neighbour rule on the advertised Router
Addresses needs the receiving interface and lives in ``bootres.core.router``.

pyroute2 has an ICMP router-advertisement class, but its field widths are
wrong (32-bit checksum and lifetime), so the layouts are written out here
with ``struct``.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

ROUTER_ADVERTISEMENT = 9
ROUTER_SOLICITATION = 10

# RFC 1256 section 3: "the preference value 0x80000000 ... indicates that the
# address, even though it may be advertised, is not to be used by neighboring
# hosts as a default router address."  Preferences are signed 32-bit.
NOT_A_DEFAULT = -0x80000000

# RFC 1256 section 6, host constants.
MAX_SOLICITATION_DELAY = 1.0  # seconds
SOLICITATION_INTERVAL = 3.0  # seconds
MAX_SOLICITATIONS = 3

ALL_SYSTEMS = ipaddress.IPv4Address("224.0.0.1")
ALL_ROUTERS = ipaddress.IPv4Address("224.0.0.2")
LIMITED_BROADCAST = ipaddress.IPv4Address("255.255.255.255")

_ICMP_HEADER = struct.Struct("!BBH")  # type, code, checksum
_ADVERT_HEADER = struct.Struct("!BBHBBH")  # ... num addrs, addr entry size, lifetime
_ENTRY = struct.Struct("!4si")  # router address, signed preference
_ENTRY_WORDS = 2  # the size in 32-bit words of the entry format above
_SOLICITATION = struct.Struct("!BBHI")  # type, code, checksum, reserved


class PacketError(ValueError):
    """The bytes are not a valid packet; ``reason`` is a short, countable label, ``detail`` the particulars."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of ``data``; 0 when data carries a correct one."""
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _with_checksum(message: bytes) -> bytes:
    """``message`` (checksum field zero) with its checksum filled in."""
    return message[:2] + struct.pack("!H", checksum(message)) + message[4:]


@dataclass(frozen=True)
class IPv4Datagram:
    """The parts of an IPv4 datagram from a raw socket that RFC 1256 cares about."""

    source: ipaddress.IPv4Address
    destination: ipaddress.IPv4Address
    payload: bytes  # the ICMP message, exactly as long as the IP header says

    @classmethod
    def from_bytes(cls, data: bytes) -> IPv4Datagram:
        """Split a datagram as Linux delivers it on a raw socket (header included).

        RFC 1256 section 5.2 derives the ICMP length from the IP length, so
        bytes beyond the IP total length are ignored and a datagram shorter
        than its total length is truncated.
        """
        if len(data) < 20:
            raise PacketError("short", f"{len(data)} bytes is less than an IPv4 header")
        version, header_words = data[0] >> 4, data[0] & 0x0F
        total_length = struct.unpack_from("!H", data, 2)[0]
        header_length = header_words * 4
        if version != 4 or header_length < 20:
            raise PacketError("not IPv4")
        if total_length < header_length or total_length > len(data):
            raise PacketError("short", f"IP total length {total_length}, {len(data)} bytes received")
        return cls(
            source=ipaddress.IPv4Address(data[12:16]),
            destination=ipaddress.IPv4Address(data[16:20]),
            payload=data[header_length:total_length],
        )


@dataclass(frozen=True)
class RouterEntry:
    """One (Router Address, Preference Level) pair of an advertisement."""

    address: ipaddress.IPv4Address
    preference: int  # signed 32-bit; higher is better

    @property
    def may_be_default(self) -> bool:
        return self.preference != NOT_A_DEFAULT


@dataclass(frozen=True)
class Advertisement:
    """ICMP Router Advertisement, RFC 1256 section 3::

        type=9 | code=0 | checksum (16)
        num addrs (8) | addr entry size (8) | lifetime (16, seconds)
        router address[i] (32) | preference level[i] (32, signed)  ...

    ``bytes()`` always writes Addr Entry Size 2; ``from_bytes`` accepts
    larger entry sizes and skips the extra words, as the RFC asks so that
    the format can grow.
    """

    lifetime: int
    entries: tuple[RouterEntry, ...]

    @classmethod
    def from_bytes(cls, message: bytes) -> Advertisement:
        """Parse and validate an ICMP message per RFC 1256 section 5.2, which reads:

            A host MUST silently discard any received Router Advertisement
            messages that do not satisfy the following validity checks:
              - ICMP Checksum is valid.
              - ICMP Code is 0.
              - ICMP length (derived from the IP length) is 8 or more octets.
              - Num Addrs is greater than or equal to 1.
              - Addr Entry Size is greater than or equal to 2.
              - ICMP length (derived from the IP length) is greater than or
                equal to 8 + (Num Addrs * Addr Entry Size * 4) octets.

        Those are all the checks: the IP header is not one of them.  The
        type check comes first only so that a stray message is counted as
        what it is (the kernel's ICMP_FILTER already lets only type 9 in).
        """
        if len(message) < _ADVERT_HEADER.size:
            raise PacketError("short", f"{len(message)} bytes")
        kind, code, _, count, entry_words, lifetime = _ADVERT_HEADER.unpack_from(message)
        if kind != ROUTER_ADVERTISEMENT:
            raise PacketError("not an advertisement", f"ICMP type {kind}")
        if checksum(message) != 0:
            raise PacketError("bad checksum")
        if code != 0:
            raise PacketError("bad code", f"code {code}")
        if count < 1:
            raise PacketError("no addresses")
        if entry_words < _ENTRY_WORDS:
            raise PacketError("bad entry size", f"Addr Entry Size {entry_words}")
        needed = _ADVERT_HEADER.size + count * entry_words * 4
        if len(message) < needed:
            raise PacketError("short", f"{count} entries need {needed} bytes, got {len(message)}")
        entries = []
        for index in range(count):
            raw_address, preference = _ENTRY.unpack_from(message, _ADVERT_HEADER.size + index * entry_words * 4)
            entries.append(RouterEntry(ipaddress.IPv4Address(raw_address), preference))
        return cls(lifetime=lifetime, entries=tuple(entries))

    def __bytes__(self) -> bytes:
        header = _ADVERT_HEADER.pack(ROUTER_ADVERTISEMENT, 0, 0, len(self.entries), _ENTRY_WORDS, self.lifetime)
        body = b"".join(_ENTRY.pack(entry.address.packed, entry.preference) for entry in self.entries)
        return _with_checksum(header + body)


@dataclass(frozen=True)
class Solicitation:
    """ICMP Router Solicitation, RFC 1256 section 3: type=10, code=0, checksum, 32 reserved bits."""

    @classmethod
    def from_bytes(cls, message: bytes) -> Solicitation:
        """Validate per RFC 1256 section 4.2 (checksum, code 0, at least 8 octets)."""
        if len(message) < _SOLICITATION.size:
            raise PacketError("short", f"{len(message)} bytes")
        kind, code, _, _ = _SOLICITATION.unpack_from(message)
        if kind != ROUTER_SOLICITATION:
            raise PacketError("not a solicitation", f"ICMP type {kind}")
        if checksum(message) != 0:
            raise PacketError("bad checksum")
        if code != 0:
            raise PacketError("bad code", f"code {code}")
        return cls()

    def __bytes__(self) -> bytes:
        return _with_checksum(_SOLICITATION.pack(ROUTER_SOLICITATION, 0, 0, 0))
