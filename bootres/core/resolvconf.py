"""resolv.conf text: the one parser of the format, and the files bootres writes.

Pure functions on strings; ``bootres/shell/etcfiles_io.py`` does the file
dance (save the original, replace, restore).  Two files carry bootres's
name, each marked on its first line so bootres knows its own work:

- the managed file (``MARKER``), while bootres runs: every ``nameserver``
  points at its ``listen`` addresses, with the sources' search domains and
  the original's options plus ``edns0``, without ``trust-ad`` unless the
  admin opted in with ``trust_ad = yes`` (bootres validates nothing, so
  glibc must not take the AD bit it passes on as proof; docs/security.md);
- the stopped file (``STOPPED_MARKER``), left when bootres stops: the
  upstreams it was using, listed directly, so the host resolves without it.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

MARKER = "# managed by bootres"
STOPPED_MARKER = "# written by bootres when it stopped"
HEADER = (
    f"{MARKER}: names are resolved by its local caching resolver.",
    "# When bootres stops it lists the nameservers here directly; see `bootres status`.",
)
STOPPED_HEADER = (
    f"{STOPPED_MARKER}: the nameservers it was using, asked directly.",
    "# bootres takes this file over again when it starts; see `bootres status`.",
)
KEYWORDS = ("nameserver", "search", "domain", "options", "sortlist")
ADDED_OPTIONS = ("edns0",)
TRUST_AD = "trust-ad"
MAXNS = 3  # resolv.conf(5): the C library reads at most three nameserver lines

# glibc splits a line on blanks only; "\r" too, so a file saved with CRLF still reads.
_BLANKS = re.compile(r"[ \t\r]+")


@dataclass(frozen=True)
class ResolvConf:
    """What a resolv.conf says, read the way glibc's res_init reads it."""

    nameservers: tuple[str, ...] = ()  # IP address text as written (IPv6 may carry %scope), in order, no duplicates
    search: tuple[str, ...] = ()  # the last search or domain line's domains, as written
    options: tuple[str, ...] = ()  # every options line's words, in order, no duplicates
    problems: tuple[str, ...] = ()  # one message per line skipped
    nameserver_lines: int = 0  # nameserver lines seen, usable or not: all bad means a broken file, not an empty one


def _words(line: str) -> list[str]:
    return [word for word in _BLANKS.split(line) if word]


def parse(text: str) -> ResolvConf:
    """Never raises: a line that cannot be used is skipped and named in ``problems``.

    Like glibc, the last ``search`` or ``domain`` line sets the search list
    (``domain X`` means ``search X``), words after a nameserver's address are
    ignored and a line starting with ``#`` or ``;`` is a comment.  Unlike
    glibc, a keyword may be indented.
    """
    nameservers: list[str] = []
    search: tuple[str, ...] = ()
    options: list[str] = []
    problems: list[str] = []
    nameserver_lines = 0
    for number, line in enumerate(text.split("\n"), start=1):
        words = _words(line)
        if not words or words[0][0] in "#;":
            continue
        keyword, arguments = words[0], words[1:]
        if keyword == "nameserver":
            nameserver_lines += 1
            if not arguments:
                problems.append(f"line {number}: nameserver without an address")
            elif not _is_ip_address(arguments[0]):
                problems.append(f"line {number}: nameserver {arguments[0][:80]!r} is not an IP address")
            elif arguments[0] not in nameservers:
                nameservers.append(arguments[0])
        elif keyword == "search":
            search = tuple(arguments)
        elif keyword == "domain":
            if arguments:
                search = (arguments[0],)
            else:
                problems.append(f"line {number}: domain without a name")
        elif keyword == "options":
            options += [word for word in dict.fromkeys(arguments) if word not in options]  # repeats within a line too
        elif keyword not in KEYWORDS:
            problems.append(f"line {number}: unknown keyword {keyword[:40]!r}")
    return ResolvConf(tuple(nameservers), search, tuple(options), tuple(problems), nameserver_lines)


def _is_ip_address(text: str) -> bool:
    """IPv4 or IPv6 text; IPv6 may name its zone (``fe80::1%eth0``), as glibc allows."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


# An IPv6 zone as glibc takes it in resolv.conf: an interface index or name.
SCOPE = re.compile(r"[0-9]{1,10}|[A-Za-z0-9_.-]{1,15}", re.ASCII)
MAX_SEARCH = 256  # domains in the search list the privileged writer accepts; glibc has no limit since 2.26


def check_nameservers(nameservers) -> tuple[str, ...]:
    """Addresses for ``render_stopped``: IP address text, IPv6 with an optional zone; ValueError otherwise."""
    if not isinstance(nameservers, (list, tuple)) or len(nameservers) > 64:
        raise ValueError("not a list of nameservers")
    for text in nameservers:
        address, _, zone = str(text).partition("%")
        if not isinstance(text, str) or not _is_ip_address(address) or (zone and not SCOPE.fullmatch(zone)):
            raise ValueError(f"not a nameserver address: {str(text)[:80]!r}")
    return tuple(nameservers)


def check_search(search, normalize) -> tuple[str, ...]:
    """Domains for the search line, each already as ``normalize`` leaves it; ValueError otherwise."""
    if not isinstance(search, (list, tuple)) or len(search) > MAX_SEARCH:
        raise ValueError("not a search list")
    for domain in search:
        if not isinstance(domain, str) or normalize(domain) != domain:
            raise ValueError(f"not a search domain: {str(domain)[:80]!r}")
    return tuple(search)


def is_bootres(text: str) -> bool:
    """Either file bootres writes: the managed one or the one it leaves when it stops."""
    return any(line.startswith((MARKER, STOPPED_MARKER)) for line in text.splitlines())


def _listen_servers(listen: list[tuple[str, int]]) -> list[str]:
    """The listen addresses resolv.conf can name: port 53, not a wildcard; at most MAXNS.

    Raises ValueError when there is none: resolv.conf has no way to name another port.
    """
    servers = [host for host, port in listen if port == 53 and not ipaddress.ip_address(host).is_unspecified]
    if not servers:
        raise ValueError("no listen address on port 53 to put in resolv.conf")
    return servers[:MAXNS]


def _options_line(options: tuple[str, ...] | list[str], added: tuple[str, ...] = ()) -> list[str]:
    words = list(dict.fromkeys([*options, *added]))
    return [f"options {' '.join(words)}"] if words else []


def render_managed(listen: list[tuple[str, int]], search: tuple[str, ...], options: tuple[str, ...],
                   trust_ad: bool = False) -> str:
    """The managed file: ``search`` from the sources, ``options`` from the original plus edns0.

    ``trust-ad`` only with ``trust_ad``, even when the original had it
    (systemd-resolved's stub file always does): what glibc trusts then is
    bootres's AD bit, not the original resolver's.  Raises ValueError when
    no listen address is on port 53.
    """
    lines = list(HEADER) + [f"nameserver {host}" for host in _listen_servers(listen)]
    if search:
        lines.append(f"search {' '.join(search)}")
    kept = tuple(option for option in options if option != TRUST_AD)
    lines += _options_line(kept, ADDED_OPTIONS + ((TRUST_AD,) if trust_ad else ()))
    return "\n".join(lines) + "\n"


def render_stopped(nameservers: list[str], search: tuple[str, ...], options: tuple[str, ...]) -> str:
    """The file bootres leaves when it stops: the upstreams it used (at most MAXNS, all glibc reads)."""
    lines = list(STOPPED_HEADER) + [f"nameserver {host}" for host in nameservers[:MAXNS]]
    if search:
        lines.append(f"search {' '.join(search)}")
    lines += _options_line(options)
    return "\n".join(lines) + "\n"
