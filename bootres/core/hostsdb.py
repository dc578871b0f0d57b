"""Names from hosts files, answered locally: A, AAAA and PTR.

A name listed in a hosts file is never forwarded for these types: asking
for AAAA of a name that only has an IPv4 line gets an empty NOERROR, as
glibc's files backend would give "no address of that family".  Names are
matched case-insensitively, as wire-format keys like the cache's.
"""

from __future__ import annotations

import ipaddress

from bootres.core.dnsmsg import AAAA, PTR, A, wire_name

LOCAL_TTL = 0  # local data: clients should not keep it beyond this answer


def parse_hosts(text: str) -> list[tuple[str, list[str]]]:
    """``(address, names)`` for every valid line; comments, bad addresses and scoped ones skipped."""
    entries = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) < 2 or "%" in words[0]:
            continue
        try:
            address = ipaddress.ip_address(words[0])
        except ValueError:
            continue
        names = []
        for word in words[1:]:
            try:
                wire_name(word)
            except (ValueError, UnicodeError):  # not a DNS name: skipped, as glibc would
                continue
            names.append(word)
        if names:
            entries.append((str(address), names))
    return entries


class HostsDB:
    def __init__(self, entries: list[tuple[str, list[str]]] = ()):
        self._forward: dict[bytes, tuple[list[str], list[str]]] = {}  # wire name -> (IPv4, IPv6)
        self._reverse: dict[bytes, str] = {}  # wire reverse name -> first name listed for it
        for address, names in entries:
            family = 1 if ":" in address else 0
            for name in names:
                v4v6 = self._forward.setdefault(wire_name(name), ([], []))
                if address not in v4v6[family]:
                    v4v6[family].append(address)
            reverse = wire_name(ipaddress.ip_address(address).reverse_pointer)
            self._reverse.setdefault(reverse, names[0].rstrip(".") + ".")

    def __len__(self) -> int:
        return len(self._forward)

    def names(self) -> set[bytes]:
        """Every wire name we answer for, forward and reverse."""
        return set(self._forward) | set(self._reverse)

    def lookup(self, name: bytes, rdtype: int) -> list[str] | None:
        """Record texts for a lower-case wire name, [] for "no such type here", None to forward."""
        if rdtype == A or rdtype == AAAA:
            v4v6 = self._forward.get(name)
            if v4v6 is None:
                return None
            return list(v4v6[rdtype == AAAA])
        if rdtype == PTR:
            target = self._reverse.get(name)
            return None if target is None else [target]
        return None
