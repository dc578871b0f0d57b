"""Names from hosts files, answered locally: A, AAAA and PTR.

A name listed in a hosts file is never forwarded, whatever the type:
asking for AAAA of a name that only has an IPv4 line gets an empty NOERROR,
as glibc's files backend would give "no address of that family", and so
does MX or TXT (RFC 8020: the name exists, so no upstream NXDOMAIN may say
otherwise).  ANY gets every address (and PTR) the files give the name, as
dnsmasq answers its host records (RFC 8482 allows a subset; an empty
NOERROR, unbound's answer for its local data, would deny the addresses).

The file is read the way glibc's nss_files reads it (``files-parse.c`` and
``files-hosts.c``), so bootres answers for exactly the names ``getent
hosts`` finds: only ``\\n`` ends a line; a line is cut at its first ``#``
(anywhere, not only after a blank) and at a NUL byte (glibc handles C
strings); fields are separated by what C's ``isspace()`` calls space, which
in every locale glibc ships is the six ASCII characters space, tab, LF, VT,
FF and CR, never ``\\x1c``-``\\x1f``, U+0085 or U+2028 (``str.split()``
would split there too).

Names are compared as glibc (``strcasecmp``) and DNS (RFC 4343) compare
them: ASCII letters case-insensitively, every other octet exactly.  A name
with a character outside ASCII is skipped: glibc's ``strcasecmp`` would never
fold it into an ASCII name, but ``str.lower()`` does (U+212A KELVIN SIGN
becomes ``k``, so ``\\u212aey.test`` would answer for ``key.test``), and
DNS clients ask for internationalised names in their ASCII (``xn--``) form,
which is what a hosts file meant for DNS must list.  A field that cannot be
a DNS name (an empty label, a label over 63 octets, more than 255 octets, or
the root alone) is skipped too; so are lines whose address glibc's
``inet_pton`` would refuse, and IPv6 addresses with a ``%scope``.
"""

from __future__ import annotations

import ipaddress
import re
import struct

from bootres.core.dnswire import A, AAAA, ANY, IN, NOERROR, PTR, SOA, Answer, wire_name

LOCAL_TTL = 0  # local data: clients should not keep it beyond this answer
# A local NODATA may be kept this long (its SOA's TTL and MINIMUM, RFC 2308):
# enough to spare bootres a burst of repeats (a browser's HTTPS and AAAA
# lookups), and no longer than bootres itself takes to notice an edited file.
LOCAL_NEGATIVE_TTL = 1

# C isspace() in glibc's locales, minus "\n" (which already ended the line).
_FIELD = re.compile(r"[^ \t\v\f\r]+")


def name_key(name: str) -> bytes | None:
    """``Nfs1.Example.test.`` as a lower-case (ASCII only) wire-format name; None if it is no DNS name."""
    if not name.isascii():
        return None
    raw = name.encode("ascii").lower()  # bytes.lower() folds A-Z only
    if raw.endswith(b"."):
        raw = raw[:-1]
    labels = raw.split(b".")
    if any(not 0 < len(label) < 64 for label in labels):  # also rejects "", ".", "a..b", ".a"
        return None
    wire = b"".join(bytes([len(label)]) + label for label in labels) + b"\x00"
    return wire if len(wire) <= 255 else None


def _address(word: str) -> str | None:
    """Canonical text of an address glibc's ``inet_pton`` reads (IPv4 first, then IPv6); None otherwise."""
    if "%" in word or not word.isascii():  # inet_pton knows no scopes; ipaddress would take some non-ASCII digits
        return None
    try:
        return str(ipaddress.ip_address(word))
    except ValueError:
        return None


def split_line(line: str) -> list[str]:
    """The fields glibc sees on one hosts(5) line (without its ``\\n``): cut at NUL and ``#``, split on C blanks."""
    return _FIELD.findall(line.split("\x00", 1)[0].split("#", 1)[0])


def parse_hosts(text: str) -> list[tuple[str, list[str]]]:
    """``(address, names)`` for every usable line, names as written; see the module docstring for what is skipped."""
    entries = []
    for line in text.split("\n"):
        words = split_line(line)
        if len(words) < 2:
            continue
        address = _address(words[0])
        if address is None:
            continue
        names = [word for word in words[1:] if name_key(word) is not None]
        if names:
            entries.append((address, names))
    return entries


class HostsDB:
    def __init__(self, entries: list[tuple[str, list[str]]] = ()):
        self._forward: dict[bytes, tuple[list[str], list[str]]] = {}  # wire name -> (IPv4, IPv6)
        self._reverse: dict[bytes, str] = {}  # wire reverse name -> first name listed for it
        for address, names in entries:
            names = [name for name in names if name_key(name) is not None]
            if not names:
                continue
            family = 1 if ":" in address else 0
            for name in names:
                v4v6 = self._forward.setdefault(name_key(name), ([], []))
                if address not in v4v6[family]:
                    v4v6[family].append(address)
            reverse = name_key(ipaddress.ip_address(address).reverse_pointer)
            self._reverse.setdefault(reverse, names[0].rstrip(".") + ".")

    def __len__(self) -> int:
        return len(self._forward)

    def names(self) -> set[bytes]:
        """Every wire name we answer for, forward and reverse."""
        return set(self._forward) | set(self._reverse)

    def lookup(self, name: bytes, rdtype: int) -> list[tuple[int, str]] | None:
        """``(type, text)`` records of ``rdtype`` (every type for ANY) for a lower-case wire name; None to forward.

        A listed name has no other data anywhere: [] (NODATA) for any other
        type, never forwarded, so an upstream's NXDOMAIN or records cannot
        contradict the file (RFC 8020: a name exists or it does not).
        """
        v4v6 = self._forward.get(name)
        target = self._reverse.get(name)
        if v4v6 is None and target is None:
            return None
        found = []
        if v4v6 is not None:
            found += [(A, address) for address in v4v6[0]] + [(AAAA, address) for address in v4v6[1]]
        if target is not None:
            found.append((PTR, target))
        return found if rdtype == ANY else [record for record in found if record[0] == rdtype]


def local_answer(records: list[tuple[int, str]], ttl: int, negative_ttl: int) -> Answer:
    """An answer made here (hosts files) from ``(type, text)``: A/AAAA addresses, PTR names.

    Every owner is a pointer to the question, so it fits whichever question
    it answers.  No record is NODATA, which carries an SOA for the question's
    name in the authority section, as if the name were a zone of its own, so
    that a client may cache the "no" (RFC 2308 sections 3 and 5: for the
    lesser of the SOA's TTL and MINIMUM, both ``negative_ttl`` here).  Its
    primary server is the name itself and its mailbox ``nobody.invalid.``,
    the other fields those of the SOA unbound makes for its local zones.
    """
    parts = []
    for rdtype, text in records:
        rdata = wire_name(text) if rdtype == PTR else ipaddress.ip_address(text).packed
        parts.append(b"\xc0\x0c" + struct.pack(">HHIH", rdtype, IN, ttl, len(rdata)) + rdata)
    if not parts:
        rdata = b"\xc0\x0c" + _NOBODY_INVALID + struct.pack(">IIIII", 1, 3600, 1200, 604800, negative_ttl)
        parts.append(b"\xc0\x0c" + struct.pack(">HHIH", SOA, IN, negative_ttl, len(rdata)) + rdata)
    offsets, pos = [], 0
    for part in parts:
        offsets.append(pos + 6)  # pointer (2), type (2), class (2), then the TTL
        pos += len(part)
    return Answer(NOERROR, False, len(records), 0 if records else 1, 0, b"".join(parts), offsets, 0)


_NOBODY_INVALID = b"\x06nobody\x07invalid\x00"  # RFC 6761 section 6.4: a name that is never anyone's
