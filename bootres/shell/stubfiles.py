"""StubFiles: keeps /etc/hosts's bootres block and /etc/defaultrouter current.

What goes in the block (rendered by ``bootres.core.etcfiles``):

- this host's names and primary address (``self``), the address read over
  netlink (the default route's source, else the first global address);
- the default router under every name of ``router_names``;
- the last-known addresses of the ``pin`` names, looked up through the
  resolver every ``refresh_interval`` while it answers and kept when it
  does not.  At start they are read back from the block the previous run
  wrote, so they survive a reboot with no nameserver up.

Until RouterService reports, the router is last boot's /etc/defaultrouter.
Files are written by one task, only when their content changes, with
``fileio.atomic_write``.  A failed write (read-only /etc, full disk) is
logged once, shown as ``error`` in that file's ``status()`` object and
retried every ``retry_interval``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime
import ipaddress
import logging
import os
import socket
from typing import Awaitable, Callable

from bootres.config import HostsConfig, RouterConfig
from bootres.core import etcfiles
from bootres.shell.fileio import atomic_write, read_bytes

DEFAULT_REFRESH_INTERVAL = 300.0
DEFAULT_RETRY_INTERVAL = 30.0
RESOLV_CONF = "/etc/resolv.conf"

Lookup = Callable[[str], Awaitable[list[str]]]


def _decode(data: bytes | None) -> str:
    # surrogateescape: a stray Latin-1 byte in an admin's comment survives the rewrite.
    return data.decode("utf-8", "surrogateescape") if data else ""


def _stamp(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).isoformat(timespec="seconds")


class StubFiles:
    """The stub files; see docs/internals.md for how the daemon wires it."""

    def __init__(
        self,
        hosts: HostsConfig,
        router: RouterConfig,
        log: logging.Logger,
        lookup: Lookup | None,
        *,
        refresh_interval: float = DEFAULT_REFRESH_INTERVAL,
        retry_interval: float = DEFAULT_RETRY_INTERVAL,
    ):
        self.hosts = hosts
        self.router = router
        self.log = log
        self.lookup = lookup
        self.refresh_interval = refresh_interval
        self.retry_interval = retry_interval
        self.routers: list[str] = []
        self.primary_address: str | None = None
        self.pinned: dict[str, list[str]] = {}  # name -> last-known addresses
        self.written_at: dict[str, str] = {}  # path -> ISO time of the content now there
        self.failing: dict[str, str] = {}  # path -> why its last write failed
        self._wanted = asyncio.Event()  # the files should be rendered and written again
        self._refresh_now = asyncio.Event()  # look the pinned names up before the interval is over
        self._tasks: list[asyncio.Task] = []
        self._netlink = None  # made on the worker thread at first use, see _primary_address
        self._worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="bootres-files")

    # --- lifecycle

    async def start(self) -> None:
        """Recover pinned addresses from the existing block, then write once and keep the files current."""
        loop = asyncio.get_running_loop()
        if self.hosts.file:
            text = await loop.run_in_executor(self._worker, self._read_text, self.hosts.file)
            self._recover(text)
        if self.router.defaultrouter_file and not self.routers:
            text = await loop.run_in_executor(self._worker, self._read_text, self.router.defaultrouter_file)
            self.routers = [str(r) for r in etcfiles.parse_defaultrouter(text)]
        # Written from last boot's state: the same bytes as before, so no
        # write at all on a normal boot; netlink corrects the address later.
        await self._write_files()
        self._tasks = [
            asyncio.create_task(self._writer(), name="bootres-files-writer"),
            asyncio.create_task(self._refresher(), name="bootres-files-refresh"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._netlink is not None:
            await asyncio.get_running_loop().run_in_executor(self._worker, self._netlink.close)
        self._worker.shutdown(wait=False)

    def reconfigure(self, hosts: HostsConfig, router: RouterConfig) -> None:
        self.hosts, self.router = hosts, router
        self.pinned = {name: addrs for name, addrs in self.pinned.items() if name in hosts.pin}
        self._wanted.set()
        if any(name not in self.pinned for name in hosts.pin):
            self._refresh_now.set()  # a newly pinned name should not wait minutes for its address

    # --- inputs

    def set_routers(self, routers: list[str]) -> None:
        """The default router list changed (wired to RouterService's ``on_change``)."""
        self.routers = list(routers)
        self._wanted.set()

    # --- what the daemon reads

    def status(self) -> dict:
        """The SPEC's ``files`` object; a file whose last write failed has ``error``."""
        report = {}
        if self.hosts.file:
            report["hosts"] = {
                "path": self.hosts.file,
                "written_at": self.written_at.get(self.hosts.file),
                "entries": len(self._entries()),
            }
        if self.router.defaultrouter_file:
            report["defaultrouter"] = {
                "path": self.router.defaultrouter_file,
                "written_at": self.written_at.get(self.router.defaultrouter_file),
                "content": list(self.routers),
            }
        for entry in report.values():
            if entry["path"] in self.failing:
                entry["error"] = self.failing[entry["path"]]
        return report

    # --- the work

    def _entries(self) -> list[etcfiles.HostsEntry]:
        entries = []
        if self.hosts.self_entry and self.primary_address:
            names = self._self_names()
            if names:
                entries.append(etcfiles.HostsEntry(self.primary_address, names))
        if self.routers and self.hosts.router_names:
            entries.append(etcfiles.HostsEntry(self.routers[0], self.hosts.router_names))
        for name in self.hosts.pin:
            entries.extend(etcfiles.HostsEntry(address, (name,)) for address in self.pinned.get(name, []))
        return entries

    def _self_names(self) -> tuple[str, ...]:
        return etcfiles.self_names(socket.gethostname(), self._read_text(RESOLV_CONF))

    def _recover(self, text: str) -> None:
        """Last run's self address and pinned addresses, from the block it wrote."""
        names = self._self_names()
        for entry in etcfiles.parse_block(text):
            if names and entry.names == names:
                self.primary_address = entry.address
            for name in entry.names:
                if name in self.hosts.pin and entry.address not in self.pinned.setdefault(name, []):
                    self.pinned[name].append(entry.address)

    async def _refresh_primary_address(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            address = await loop.run_in_executor(self._worker, self._primary_address)
        except Exception as error:  # keep the last known address
            self.log.warning("cannot read this host's addresses over netlink: %s", error)
            return
        if address != self.primary_address:
            self.primary_address = address
            self._wanted.set()

    async def _refresh_pins(self) -> None:
        if self.lookup is None:
            return
        for name in self.hosts.pin:
            try:
                found = await self.lookup(name)
            except Exception as error:  # the resolver's trouble must not stop the files
                self.log.debug("lookup of pinned name %s failed: %s", name, error)
                continue
            addresses = sorted(set(found), key=lambda a: (ipaddress.ip_address(a).version, ipaddress.ip_address(a)))
            if addresses and addresses != self.pinned.get(name):
                self.log.info("pinned name %s now %s", name, " ".join(addresses))
                self.pinned[name] = addresses
                self._wanted.set()

    async def _refresher(self) -> None:
        while True:
            self._refresh_now.clear()
            await asyncio.gather(self._refresh_primary_address(), self._refresh_pins())
            try:
                await asyncio.wait_for(self._refresh_now.wait(), self.refresh_interval)
            except asyncio.TimeoutError:
                pass

    async def _writer(self) -> None:
        while True:
            if self.failing:
                try:
                    await asyncio.wait_for(self._wanted.wait(), self.retry_interval)
                except asyncio.TimeoutError:
                    pass
            else:
                await self._wanted.wait()
            self._wanted.clear()
            await self._write_files()
            # A new router may mean the default route moved, and the primary
            # address with it; a change wakes this loop for one more write.
            await self._refresh_primary_address()

    async def _write_files(self) -> None:
        loop = asyncio.get_running_loop()
        jobs = []
        if self.hosts.file:
            jobs.append((self.hosts.file, self._hosts_content))
        if self.router.defaultrouter_file and self.routers:
            # With no router known, the file keeps the last one: it is next boot's first guess.
            text = etcfiles.render_defaultrouter(self.routers)
            jobs.append((self.router.defaultrouter_file, lambda: text.encode()))
        for path, content in jobs:
            await loop.run_in_executor(self._worker, self._write, path, content)

    def _primary_address(self) -> str | None:
        """Runs on the worker thread."""
        if self._netlink is None:
            # pyroute2 takes a fifth of a second to import: keep that off the
            # event loop and out of start(), which the daemon awaits before READY.
            from bootres.shell import netlinkio

            self._netlink = netlinkio.Netlink()
        address = self._netlink.snapshot().primary_address
        return str(address) if address else None

    def _hosts_content(self) -> bytes:
        """Read, merge, encode: run at write time so an admin's edit a moment ago is kept."""
        # Unlike a missing file, an unreadable one raises: merging into ""
        # would throw the admin's lines away.
        current = _decode(read_bytes(self.hosts.file))
        merged = etcfiles.merge_block(current, etcfiles.render_block(self._entries()))
        return merged.encode("utf-8", "surrogateescape")

    def _write(self, path: str, content: Callable[[], bytes]) -> None:
        """Runs on the worker thread."""
        try:
            written = atomic_write(path, content())
            self.written_at[path] = _stamp(os.stat(path).st_mtime)
        except OSError as error:
            reason = f"cannot write {path}: {error.strerror or error}"
            if path not in self.failing:
                self.log.warning("%s; retrying every %g s", reason, self.retry_interval)
            self.failing[path] = reason
            return
        if self.failing.pop(path, None):
            self.log.info("%s writable again", path)
        if written:
            self.log.info("%s written", path)

    def _read_text(self, path: str) -> str:
        try:
            return _decode(read_bytes(path))
        except OSError:
            return ""
