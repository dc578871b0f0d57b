"""Follow the files where the host's nameservers come from, polled twice a second.

Each source is a file another program writes (docs/upstreams.md):

| kind           | file                                           | written by                         |
|----------------|------------------------------------------------|------------------------------------|
| dhclient       | /run/bootres/dhclient/IFACE.inet, IFACE.inet6  | the package's dhclient enter hook  |
| dhcpcd         | /run/dhcpcd/hook-state/resolv.conf/IFACE.dhcp, .dhcp6, .ra | dhcpcd's 20-resolv.conf (with the package's hook) |
| networkd       | /run/systemd/netif/links/IFINDEX               | systemd-networkd                   |
| networkmanager | /run/NetworkManager/no-stub-resolv.conf        | NetworkManager                     |
| resolved       | /run/systemd/resolve/resolv.conf               | systemd-resolved (its upstreams)   |
| resolvconf     | /run/resolvconf/interface/*, …/interfaces/*    | resolvconf, openresolv             |
| file           | ``upstreams_file``                             | the admin (or postinst, at install)|
| resolv.conf    | /etc/resolv.conf, when rewritten by others     | handed in by the daemon            |

Polling, not inotify: a few stat() calls every half second cost microseconds,
work for files that do not exist yet, and need nothing beyond the standard
library.  A file that cannot be used (not text, too big, no usable
nameserver) is logged once and its last good record is kept, so a
half-broken write never empties the upstream list.

A poll has two halves (issue 11): ``scan`` lists, stats and reads the files
and is a plain function of copies (the paths, the static lists, the
signatures seen last), so the resolver runs it on a worker thread;
``SourceWatcher.apply`` parses what it read and keeps the records, on the
event loop.  No object is touched from both threads.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Collection

from bootres.core import sources
from bootres.core.sources import SourceError, SourceRecord
from bootres.shell.errorlog import Problems
from bootres.shell.fileio import FileRead, Signature, read_changed

if TYPE_CHECKING:
    from bootres.core import report

POLL_INTERVAL = 0.5  # a changed nameserver list is in use within this much (plus a parse)


@dataclass(frozen=True)
class SourcePaths:
    """Where the host's sources live; tests point these into a temporary directory."""

    dhclient: str = "/run/bootres/dhclient"
    dhcpcd: str = "/run/dhcpcd/hook-state/resolv.conf"  # dhcpcd's own records (9.4 and 10.1 alike)
    networkd: str = "/run/systemd/netif/links"
    networkmanager: str = "/run/NetworkManager/no-stub-resolv.conf"
    resolved: str = "/run/systemd/resolve/resolv.conf"
    resolvconf: tuple[str, ...] = ("/run/resolvconf/interface", "/run/resolvconf/interfaces")

    @classmethod
    def under(cls, root: str) -> SourcePaths:
        """The same layout below ``root`` (tests, and the resolver run alone)."""
        def moved(path: str) -> str:
            return os.path.join(root, path.lstrip("/"))

        host = cls()
        return cls(moved(host.dhclient), moved(host.dhcpcd), moved(host.networkd), moved(host.networkmanager),
                   moved(host.resolved), tuple(moved(p) for p in host.resolvconf))


@dataclass(frozen=True)
class Scan:
    """What one look at the files found."""

    static: tuple[tuple[str, str], ...]  # the static lists it looked for
    present: dict[str, tuple[str, str]]  # path -> (kind, human name) of every source file there, in a stable order
    changed: dict[str, FileRead]  # those whose signature differs from the one seen last, read


def scan(paths: SourcePaths | None, static: tuple[tuple[str, str], ...], seen: dict[str, Signature]) -> Scan:
    """The file system half of a poll: list the source files, read those not as ``seen``."""
    present = _candidates(paths, static)
    return Scan(static, present, read_changed(present, seen, sources.MAX_SOURCE_BYTES + 1))


class _Watched:
    __slots__ = ("signature", "record", "error")

    def __init__(self):
        self.signature = None
        self.record: SourceRecord | None = None  # the last good one
        self.error: str | None = None


class SourceWatcher:
    """The current records of every source; ``poll()`` says whether they changed."""

    def __init__(self, paths: SourcePaths | None, static: list[tuple[str, str]], log: logging.Logger,
                 problems: Problems | None = None):
        """``paths`` None: the host's sources are not followed (only the static files).

        ``static``: (path, name) of the static lists, best first; only the
        first that names a nameserver is used (``upstreams_file``, then the
        resolv.conf found when bootres took it over: an admin who removes a
        server from the first must not see it come back from the second).
        ``problems``: where an unusable file is reported (``status``'s errors); default: the log only.
        """
        self.paths = paths
        self.static = static  # in use: ``records`` picks from these
        self.log = log
        self.problems = problems or Problems(log)
        self._files: dict[str, _Watched] = {}
        self._rewritten: SourceRecord | None = None
        self._static_next = static  # looked for by the next scan

    def set_static(self, static: list[tuple[str, str]]) -> None:
        """New static lists (a reload): in use once a scan has read them, so none counts unread."""
        self._static_next = static

    def set_rewritten(self, record: SourceRecord | None) -> None:
        """The nameservers another program wrote into /etc/resolv.conf (the daemon's guard hands them in)."""
        self._rewritten = record

    def records(self) -> list[SourceRecord]:
        found = [w.record for w in self._files.values() if w.record is not None and w.record.kind != "file"]
        for path, _ in self.static:  # best first, whatever order the files appeared in
            watched = self._files.get(path)
            if watched is not None and watched.record is not None and watched.record.servers:
                found.append(watched.record)
                break
        if self._rewritten is not None:
            found.append(self._rewritten)
        return found

    def status(self, used: Collection[str]) -> tuple[report.SourceStatus, ...]:
        """One entry per file seen: its name, path, nameservers, whether its name is ``used`` and, when it is
        unusable, why."""
        from bootres.core import report  # here: the status model is not needed before the first answer

        out = []
        for path, watched in self._files.items():
            record = watched.record
            name = record.name if record else path
            out.append(report.SourceStatus(name=name, path=path,
                                           nameservers=tuple(host for host, _ in record.servers) if record else (),
                                           in_use=name in used, error=watched.error))
        if self._rewritten is not None:
            name = self._rewritten.name
            out.append(report.SourceStatus(name=name, path=self._rewritten.origin,
                                           nameservers=tuple(host for host, _ in self._rewritten.servers),
                                           in_use=name in used))
        return tuple(out)

    def scanner(self) -> Callable[[], Scan]:
        """The file system half of a poll, bound to copies of what it needs: for a worker thread; ``apply`` its Scan."""
        seen = {path: watched.signature for path, watched in self._files.items() if watched.signature is not None}
        return functools.partial(scan, self.paths, tuple(self._static_next), seen)

    def apply(self, found: Scan) -> bool:
        """Parse what ``found`` read, forget the files gone; True when the set of records is different."""
        before = self.records()
        self.static = list(found.static)
        for path in [p for p in self._files if p not in found.present]:
            gone = self._files.pop(path).record
            if gone is not None and gone.servers:
                self.log.info("source %s is gone (%s): its nameservers %s are no longer used",
                              gone.name, path, " ".join(host for host, _ in gone.servers))
        for path, (kind, name) in found.present.items():
            if path in found.changed:
                self._refresh(path, kind, name, found.changed[path])
        return self.records() != before

    def poll(self) -> bool:
        """Both halves on the calling thread: before the event loop serves anything, and in tests."""
        return self.apply(self.scanner()())

    # --- the files

    def _refresh(self, path: str, kind: str, name: str, read: FileRead) -> None:
        watched = self._files.setdefault(path, _Watched())
        if read.data is None:  # its signature stays the old one: read again at the next poll
            self._failed(watched, path, name, f"{path}: cannot read: {read.error}")
            return
        watched.signature = read.signature
        try:
            if kind == "networkd":
                record, warnings = sources.read_networkd_link(name, path, read.data)
            elif kind == "resolved":
                record, warnings = sources.read_resolved_list(name, path, read.data)
            elif kind == "dhcpcd":  # dhcpcd's name for the record: IFACE.PROTOCOL
                iface = os.path.basename(path).rpartition(".")[0]
                record, warnings = sources.read_resolv_conf_record(kind, name, path, read.data, link=iface)
            else:
                record, warnings = sources.read_resolv_conf_record(kind, name, path, read.data)
        except SourceError as exc:  # its message starts with the path
            self._failed(watched, path, name, str(exc))
            return
        for warning in warnings:
            self.log.warning("%s: %s", path, warning)
        if watched.error is not None:
            self.problems.solved(f"source {path}", "source %s is usable again (%s)", name, path)
        watched.error = None
        watched.record = record

    def _failed(self, watched: _Watched, path: str, name: str, message: str) -> None:
        if watched.error != message:
            kept = watched.record
            keeping = (f"; keeping its last good nameservers {' '.join(h for h, _ in kept.servers)}"
                       if kept is not None and kept.servers else "")
            self.problems.problem(f"source {path}", "source %s ignored: %s%s", name, message, keeping)
        watched.error = message


def _candidates(paths: SourcePaths | None, static: tuple[tuple[str, str], ...]) -> dict[str, tuple[str, str]]:
    """path -> (kind, human name) of every source file that exists now, in a stable order."""
    found: dict[str, tuple[str, str]] = {}
    if paths is not None:
        for entry in _listdir(paths.dhclient):
            iface, _, family = entry.rpartition(".")
            if iface and family in ("inet", "inet6"):
                name = f"dhclient {iface}" + (" (IPv6)" if family == "inet6" else "")
                found[os.path.join(paths.dhclient, entry)] = ("dhclient", name)
        for entry in _listdir(paths.dhcpcd):  # dhcpcd's own names: IFACE.PROTOCOL
            iface, _, protocol = entry.rpartition(".")
            if iface and protocol in _DHCPCD_PROTOCOLS:
                found[os.path.join(paths.dhcpcd, entry)] = ("dhcpcd", f"dhcpcd {iface}{_DHCPCD_PROTOCOLS[protocol]}")
        for entry in sorted(_listdir(paths.networkd), key=lambda e: (len(e), e)):
            if entry.isdigit():
                found[os.path.join(paths.networkd, entry)] = ("networkd", f"networkd {_ifname(entry)}")
        if os.path.isfile(paths.networkmanager):
            found[paths.networkmanager] = ("networkmanager", "NetworkManager")
        if os.path.isfile(paths.resolved):
            found[paths.resolved] = ("resolved", "systemd-resolved")
        for directory in paths.resolvconf:
            for entry in _listdir(directory):
                found[os.path.join(directory, entry)] = ("resolvconf", f"resolvconf {entry}")
    for path, name in static:
        if os.path.exists(path):
            found[path] = ("file", name)
    return found


# What each of dhcpcd's lease kinds adds to a source's name in status.
_DHCPCD_PROTOCOLS = {"dhcp": "", "dhcp6": " (DHCPv6)", "ra": " (RA)", "static": " (static)"}


def _listdir(directory: str) -> list[str]:
    try:
        return sorted(entry for entry in os.listdir(directory) if not entry.startswith("."))
    except OSError:  # not there (that source is not installed) or unreadable: nothing from it
        return []


def _ifname(index: str) -> str:
    try:
        return socket.if_indextoname(int(index))
    except (OSError, ValueError, OverflowError):
        return f"link {index}"
