"""The text of the stub files: /etc/hosts's managed block and /etc/defaultrouter.

Pure functions on strings.  The shell reads the current file, calls
``merge_block`` and writes the result with ``fileio.atomic_write``.

The managed block follows Ansible blockinfile's convention::

    # BEGIN bootres
    # Managed by bootres: lines between BEGIN and END are rewritten, edits are lost.
    # See `bootres status` for where these addresses come from.
    198.18.1.10     web1.example.com web1
    198.18.1.1      site-router
    # END bootres

Every byte outside the block stays exactly as it was.  The block is the
first ``# BEGIN bootres`` line followed by a ``# END bootres`` line; a BEGIN
without an END is left alone as ordinary text (it might be an admin's
half-finished edit, and deleting up to the end of the file would lose
data), and a new block is appended instead.

Lines inside the block are read as glibc's ``files`` backend reads them
(``hostsdb.parse_hosts``), so what bootres recovers from its block at start
is exactly what ``getent hosts`` saw there.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from bootres.core.hostsdb import parse_hosts

BEGIN = "# BEGIN bootres"
END = "# END bootres"
HEADER = (
    "# Managed by bootres: lines between BEGIN and END are rewritten, edits are lost.",
    "# See `bootres status` for where these addresses come from.",
)


@dataclass(frozen=True)
class HostsEntry:
    """One hosts(5) line: an address and its names, canonical name first."""

    address: str
    names: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.address}\t{' '.join(self.names)}"


def render_block(entries: list[HostsEntry] | tuple[HostsEntry, ...]) -> str:
    """The whole managed block, markers included, ending with a newline."""
    lines = [BEGIN, *HEADER, *(str(entry) for entry in entries), END]
    return "\n".join(lines) + "\n"


# What a name in the block may be: printable ASCII, no blank, no "#" (hosts(5) syntax), as long as DNS allows.
_SAFE_NAME = re.compile(r"[!-\"$-~]{1,253}")
MAX_BLOCK_ENTRIES = 10_000  # pins, this host and the routers: far fewer in practice


def check_block(block: str) -> list[HostsEntry]:
    """The entries of ``block`` when it is exactly what ``render_block`` makes of them; ValueError otherwise.

    The privileged writer's check (docs/security.md): what it merges into
    /etc/hosts for the daemon is a block of address/name lines and nothing
    else, whatever the daemon sends.
    """
    lines = block.split("\n")
    head, tail = [BEGIN, *HEADER], [END, ""]
    if lines[:len(head)] != head or lines[-2:] != tail:
        raise ValueError("not a bootres block: markers or header missing")
    entries = []
    for line in lines[len(head):-2]:
        address, _, names = line.partition("\t")
        ipaddress.ip_address(address)  # ValueError names the bad address
        words = names.split(" ")
        if not all(_SAFE_NAME.fullmatch(word) for word in words):
            raise ValueError(f"not a host name line: {line[:80]!r}")
        entries.append(HostsEntry(address, tuple(words)))
    if len(entries) > MAX_BLOCK_ENTRIES or render_block(entries) != block:
        raise ValueError("not a bootres block")
    return entries


def check_defaultrouter(text: str) -> tuple[ipaddress.IPv4Address, ...]:
    """The routers of ``text`` when it is exactly ``render_defaultrouter`` of them; ValueError otherwise."""
    routers = parse_defaultrouter(text)
    if render_defaultrouter(routers) != text or len(routers) > 64:
        raise ValueError("not a defaultrouter file bootres writes")
    return routers


def _is_marker(line: str, marker: str) -> bool:
    return line.rstrip() == marker  # tolerate trailing blanks and a CRLF ending


def _lines(text: str) -> list[str]:
    """Lines with their "\n" kept; only "\n" ends a line (str.splitlines would also split on \f, \x1c...)."""
    parts = text.split("\n")
    lines = [part + "\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def _find_block(lines: list[str]) -> tuple[int, int] | None:
    """Indexes (begin, end) of the managed block in ``lines`` (kept ends), or None."""
    begin = None
    for index, line in enumerate(lines):
        if _is_marker(line, BEGIN):
            begin = index  # a later BEGIN before any END wins: the earlier is stray text
        elif _is_marker(line, END) and begin is not None:
            return begin, index
    return None


def merge_block(text: str, block: str) -> str:
    """``text`` with its managed block replaced by ``block`` (or ``block`` appended)."""
    lines = _lines(text)
    found = _find_block(lines)
    if found is not None:
        begin, end = found
        return "".join(lines[:begin]) + block + "".join(lines[end + 1 :])
    if text and not text.endswith("\n"):
        text += "\n"  # hosts(5) lines end with a newline; the last one did not
    return text + block


def current_block(text: str) -> str | None:
    """The managed block in ``text`` exactly as it stands, markers included, or None."""
    lines = _lines(text)
    found = _find_block(lines)
    return None if found is None else "".join(lines[found[0] : found[1] + 1])


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def fold(name: str) -> str:
    """A host name as glibc (``strcasecmp``) and DNS compare it: A-Z folded, every other character kept.

    Not ``str.lower()``, which would fold some non-ASCII letters into ASCII
    ones (U+212A KELVIN SIGN becomes "k").
    """
    return name.translate(_ASCII_LOWER)


def parse_block(text: str) -> list[HostsEntry]:
    """The address lines of the managed block in ``text``, names folded (``fold``); what glibc skips is skipped.

    Used at start to recover the last-known addresses of pinned names (and
    this host's and the router's) from the previous run, so they survive a
    reboot with no nameserver up.
    """
    lines = _lines(text)
    found = _find_block(lines)
    if found is None:
        return []
    block = "".join(lines[found[0] + 1 : found[1]])
    return [HostsEntry(address, tuple(fold(name) for name in names)) for address, names in parse_hosts(block)]


def render_defaultrouter(routers: list | tuple) -> str:
    """/etc/defaultrouter: one IPv4 address per line, most preferred first."""
    return "".join(f"{router}\n" for router in routers)


def parse_defaultrouter(text: str) -> tuple[ipaddress.IPv4Address, ...]:
    """The IPv4 addresses in an /etc/defaultrouter, in order; comments and junk skipped."""
    routers = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        try:
            address = ipaddress.IPv4Address(words[0])
        except ValueError:
            continue
        if address not in routers:
            routers.append(address)
    return tuple(routers)


def self_names(hostname: str, search: tuple[str, ...] | list[str] = ()) -> tuple[str, ...]:
    """This host's names for the block, canonical (fully qualified) first.

    A dotted hostname is its own FQDN.  Otherwise the domain is the first
    search domain (as hostname(1) would find it through resolv.conf, but
    without asking DNS, which may be down).
    """
    hostname = hostname.strip().rstrip(".")
    if not hostname or hostname == "localhost":
        return ()
    if "." in hostname:
        return (hostname, hostname.split(".", 1)[0])
    domain = search[0].rstrip(".") if search else ""
    return (f"{hostname}.{domain}", hostname) if domain else (hostname,)
