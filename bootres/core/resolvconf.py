"""The text of a managed /etc/resolv.conf (``manage_resolv_conf = yes``).

Pure functions on strings; ``bootres/shell/resolvconf.py`` does the file
dance (save the original, replace, restore).  The managed file points every
``nameserver`` at bootres's ``listen`` addresses and keeps the original's
``search``, ``domain``, ``options`` and ``sortlist`` lines, adding ``options
edns0 trust-ad``: the local stub speaks EDNS0 and sits on loopback, so the
AD bit it passes on can be trusted (resolv.conf(5)).
"""

from __future__ import annotations

import ipaddress

MARKER = "# managed by bootres"
HEADER = (
    f"{MARKER}: names are resolved by its local caching resolver.",
    "# The original file is put back when bootres stops; see `bootres status`.",
)
KEPT = ("search", "domain", "options", "sortlist")
ADDED_OPTIONS = ("edns0", "trust-ad")
MAXNS = 3  # resolv.conf(5): the C library reads at most three nameserver lines


def is_managed(text: str) -> bool:
    return any(line.startswith(MARKER) for line in text.splitlines())


def nameservers(text: str) -> list[str]:
    """The nameserver addresses of a resolv.conf, in order, without duplicates."""
    found = []
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "nameserver" and words[1] not in found:
            found.append(words[1])
    return found


def render(original: str, listen: list[tuple[str, int]]) -> str:
    """The managed file; ``listen`` is (address, port) pairs, of which only port 53 can be named.

    Raises ValueError when no listen address is on port 53: resolv.conf has
    no way to name another port.
    """
    servers = [host for host, port in listen if port == 53 and not ipaddress.ip_address(host).is_unspecified]
    if not servers:
        raise ValueError("no listen address on port 53 to put in resolv.conf")
    lines = list(HEADER)
    lines += [f"nameserver {host}" for host in servers[:MAXNS]]
    options: list[str] = []
    for line in original.splitlines():
        words = line.split()
        if not words or words[0] not in KEPT:
            continue
        if words[0] == "options":
            options += [word for word in words[1:] if word not in options]
        else:
            lines.append(line.rstrip())
    options += [word for word in ADDED_OPTIONS if word not in options]
    lines.append("options " + " ".join(options))
    return "\n".join(lines) + "\n"
