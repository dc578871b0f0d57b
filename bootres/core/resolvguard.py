"""Who owns /etc/resolv.conf, and what bootres does when someone else writes it.

bootres puts its own file in place while it runs (``bootres.core.resolvconf``)
and looks at it again every half second.  What it finds is one of:

- ``ours``: bootres's own text (either marker), nothing to do;
- ``local-stub``: another local resolver took the path (systemd-resolved's
  127.0.0.53, a dnsmasq or unbound on 127.0.0.1, a symlink into
  /run/systemd/resolve): two local stubs fighting over one file helps
  nobody, so bootres steps aside and says so in status until the file
  changes again;
- ``foreign``: a DHCP client, a network manager or an admin wrote real
  nameservers: bootres takes those nameservers as a source and puts its own
  file back, unless the file is rewritten again and again (``FIGHT_LIMIT``
  times within ``FIGHT_WINDOW``), which means some program was not told about
  bootres: then bootres stops restoring and status says it is out of the path.

Pure: text, the symlink target and ``now`` in, a verdict out.
"""

from __future__ import annotations

from dataclasses import dataclass

from bootres.core import resolvconf
from bootres.core.sources import is_loopback

FIGHT_LIMIT = 5
FIGHT_WINDOW = 300.0  # seconds
# Symlink targets that mean "systemd-resolved owns the path" even before its stub answers.
RESOLVED_TARGETS = ("/run/systemd/resolve/", "../run/systemd/resolve/")


@dataclass(frozen=True)
class Verdict:
    kind: str  # "ours", "local-stub", "foreign"
    nameservers: tuple[str, ...] = ()
    says: str = ""  # the file's first comment line, which often names the program that wrote it


def classify(text: str, link_target: str | None, own: frozenset[str]) -> Verdict:
    """What the current resolv.conf is; ``own``: bootres's listen addresses."""
    if resolvconf.is_bootres(text):
        return Verdict("ours")
    parsed = resolvconf.parse(text)
    says = next((line.strip() for line in text.splitlines() if line.startswith("#")), "")[:120]
    servers = tuple(parsed.nameservers)
    local = [ns for ns in servers if is_loopback(ns) and ns not in own]  # parse keeps only addresses
    if (link_target or "").startswith(RESOLVED_TARGETS) or (servers and len(local) == len(servers)):
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
