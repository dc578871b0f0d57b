"""Who owns /etc/resolv.conf, and what bootres does when someone else writes it.

bootres puts its own file in place while it runs (``bootres.core.resolvconf``)
and looks at it again every half second.  What it finds is one of:

- ``ours``: bootres's own text (either marker), nothing to do;
- ``behind-resolved``: systemd-resolved's stub holds the path (its
  127.0.0.53, or a symlink to its stub-resolv.conf) and resolved asks
  bootres: its upstream list names one of bootres's addresses, which the
  package's resolved.conf.d drop-in puts there (``Domains=~.``).  Lookups
  go glibc (or nss-resolve) -> resolved -> bootres: bootres is in the path
  and leaves the file to resolved (docs/upstreams.md);
- ``local-stub``: another local resolver took the path (systemd-resolved's
  stub without bootres as its upstream, a dnsmasq or unbound on 127.0.0.1):
  two local stubs fighting over one file helps nobody, so bootres steps
  aside and says so in status until the file changes again;
- ``foreign``: a DHCP client, a network manager or an admin wrote real
  nameservers: bootres takes those nameservers as a source and puts its own
  file back, unless the file is rewritten again and again (``FIGHT_LIMIT``
  times within ``FIGHT_WINDOW``), which means some program was not told about
  bootres: then bootres stops restoring and status says it is out of the path.

A symlink to resolved's *upstream list* (/run/systemd/resolve/resolv.conf,
the layout of Debian's cloud images) is no stub: glibc asks the nameservers
it lists directly, dead ones included, so bootres takes it over like any
other file of real nameservers.

Pure: text, the symlink target, resolved's upstream list and ``now`` in, a
verdict out.
"""

from __future__ import annotations

from dataclasses import dataclass

from bootres.core import resolvconf
from bootres.core.sources import is_loopback

FIGHT_LIMIT = 5
FIGHT_WINDOW = 300.0  # seconds
# Symlink targets that mean "systemd-resolved's stub owns the path" even before it answers.
RESOLVED_STUBS = ("stub-resolv.conf", "/usr/lib/systemd/resolv.conf", "/lib/systemd/resolv.conf")
RESOLVED_STUB_ADDRESSES = frozenset({"127.0.0.53", "127.0.0.54"})
RESOLVED_UPSTREAM_LIST = "/run/systemd/resolve/resolv.conf"  # resolved's upstream servers, written by it


@dataclass(frozen=True)
class Verdict:
    kind: str  # "ours", "behind-resolved", "local-stub", "foreign"
    nameservers: tuple[str, ...] = ()
    says: str = ""  # the file's first comment line, which often names the program that wrote it


def classify(text: str, link_target: str | None, own: frozenset[str], resolved_list: str | None = None) -> Verdict:
    """What the current resolv.conf is; ``own``: bootres's listen addresses; ``resolved_list``: the text of
    RESOLVED_UPSTREAM_LIST, None when there is none."""
    if resolvconf.is_bootres(text):
        return Verdict("ours")
    parsed = resolvconf.parse(text)
    says = next((line.strip() for line in text.splitlines() if line.startswith("#")), "")[:120]
    servers = tuple(parsed.nameservers)
    target = link_target or ""
    if target.endswith(RESOLVED_STUBS) or (servers and set(servers) <= RESOLVED_STUB_ADDRESSES):
        if resolved_list is not None and own & set(resolvconf.parse(resolved_list).nameservers):
            return Verdict("behind-resolved", servers, says)
        return Verdict("local-stub", servers, says)
    local = [ns for ns in servers if is_loopback(ns) and ns not in own]  # parse keeps only addresses
    if servers and len(local) == len(servers):
        return Verdict("local-stub", servers, says)
    return Verdict("foreign", servers, says)


class FightCounter:
    """How often bootres had to put its file back lately; past the limit it gives up."""

    def __init__(self):
        self.times: list[float] = []

    def allow(self, now: float) -> bool:
        """Record one rewrite at ``now``; False once there were FIGHT_LIMIT within FIGHT_WINDOW."""
        self.times = [t for t in self.times if now - t < FIGHT_WINDOW] + [now]
        return len(self.times) < FIGHT_LIMIT
