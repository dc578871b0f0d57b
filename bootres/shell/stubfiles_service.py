"""StubFilesService: carries out what ``bootres.core.stubfiles`` decides for /etc/hosts's block and /etc/defaultrouter.

The policy (what goes in the block, when DNS is asked, what a failure
keeps) is the core's; this adapter only feeds it and performs its effects:

- inputs, all on the event loop: ``observe`` (a ``netlink.Snapshot``:
  this host's primary IPv4 and global IPv6 address), ``set_routers``
  (RouterService's ``on_change``), ``set_search_domains`` (the resolver's
  source selection), ``prepare_reconfigure``'s step, the hostname from
  ``socket.gethostname()`` at each of these and every HOSTNAME_INTERVAL;
- file I/O on one worker thread (``_files``): the two reads at start, and
  every write as a request to the privileged writer (``etcfiles_io``: in
  this process, or the root helper when the daemon runs as user bootres),
  as plain functions of their arguments that return their result, so no
  state is shared with the thread and writes to one file never overlap;
- pinned-name lookups through ``lookup`` (``ResolverService.lookup_pinned``:
  the upstreams only, never the hosts files that hold this very block);
- the core runs under a ``CoreDriver`` (its effects to the handlers here,
  one timer at its ``deadline()``).

After ``stop()`` no timer is armed, no job is submitted and no result is
fed back.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime
import functools
import ipaddress
import logging
import os
import random
import socket
from typing import Awaitable, Callable, NamedTuple

from bootres.config import HostsConfig, RouterConfig
from bootres.core import report, stubfiles
from bootres.settings import stubfiles_settings
from bootres.shell import etcfiles_io
from bootres.shell.core_driver import CoreDriver
from bootres.shell.fileio import read_bytes

DEFAULT_RETRY_INTERVAL = 30.0  # seconds between attempts to write a file that could not be written
HOSTNAME_INTERVAL = 1.0  # seconds: a hostname set with hostnamectl reaches the hosts block within this

Lookup = Callable[[str], Awaitable[list[str] | None]]


class WriteResult(NamedTuple):
    error: str | None  # why it failed (strerror), or None
    changed: bool  # False: the file already held that content
    written_at: str | None  # the file's mtime, ISO-8601


def _decode(data: bytes | None) -> str:
    # surrogateescape: a stray Latin-1 byte in an admin's comment survives the rewrite.
    return data.decode("utf-8", "surrogateescape") if data else ""


def _mtime(path: str) -> str:
    seconds = os.stat(path).st_mtime
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).isoformat(timespec="seconds")


# --- file jobs: run on the files thread, touch nothing but their arguments


def read_file(path: str | None) -> tuple[stubfiles.FileText, str | None]:
    """The file at start and why it could not be read (None: read, or missing)."""
    if path is None:
        return stubfiles.FileText(), None
    try:
        data = read_bytes(path)
        return stubfiles.FileText(_decode(data), None if data is None else _mtime(path)), None
    except OSError as error:
        return stubfiles.FileText(), error.strerror or str(error)


def write_file(writer: Callable[[dict], object], request: dict) -> WriteResult:
    """Have the privileged writer (``etcfiles_io``) carry out ``request`` for the file at ``request["path"]``.

    The hosts block is merged at write time, so an admin's edit just now
    stays; an unreadable file is an error, never merged into "" (that would
    throw the admin's lines away).
    """
    path = request["path"]
    try:
        changed = writer(request)
        return WriteResult(None, bool(changed), _mtime(path))
    except OSError as error:
        return WriteResult(error.strerror or str(error), False, None)
    except ValueError as error:  # refused: bootres's own bug, or a daemon that is not itself
        return WriteResult(f"refused by the privileged writer: {error}", False, None)


def _local_writer(hosts: HostsConfig, router: RouterConfig) -> etcfiles_io.LocalWriter:
    return etcfiles_io.LocalWriter(etcfiles_io.Targets(hosts=hosts.file, defaultrouter=router.defaultrouter_file))


class StubFilesService:
    """The stub files; see docs/internals.md for how the daemon wires it."""

    def __init__(
        self,
        hosts: HostsConfig,
        router: RouterConfig,
        log: logging.Logger,
        lookup: Lookup | None,
        *,
        search: tuple[str, ...] = (),
        retry_interval: float = DEFAULT_RETRY_INTERVAL,
        writer: Callable[[dict], object] | None = None,
    ):
        """``lookup``: ``ResolverService.lookup_pinned``; None: no resolver, pinned names keep their block addresses.

        ``search``: the search domains in use (``ResolverService.selection.search``).  ``writer``: the
        privileged writer's channel for the files thread (``etcfiles_io``); None: written in this process.
        """
        self.log = log
        self._own_writer = writer is None
        self._writer = writer or _local_writer(hosts, router)
        self._lookup = lookup
        self._retry_interval = retry_interval
        self._search = tuple(search)
        self._hostname = socket.gethostname()
        self.core = stubfiles.StubFiles(stubfiles_settings(hosts, router, retry_interval), spread=random.random,
                                        hostname=self._hostname, search=self._search)
        self.driver = CoreDriver(self.core, log)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._files: concurrent.futures.ThreadPoolExecutor | None = None
        self._hostname_timer: asyncio.TimerHandle | None = None
        self._jobs: set[asyncio.Future] = set()  # writes and lookups under way

    # --- lifecycle

    async def start(self) -> None:
        """Read both files (last run's block and routers), then keep them current."""
        loop = asyncio.get_running_loop()
        self._files = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="bootres-files")
        settings = self.core.settings
        (hosts, hosts_error), (router, router_error) = await asyncio.gather(
            loop.run_in_executor(self._files, read_file, settings.hosts_file),
            loop.run_in_executor(self._files, read_file, settings.defaultrouter_file),
        )
        for path, error in ((settings.hosts_file, hosts_error), (settings.defaultrouter_file, router_error)):
            if error is not None:
                self.log.warning("cannot read %s: %s; starting without what it held", path, error)
        if self.driver.stopped:
            return
        self._loop = loop
        self.core.start(loop.time(), hosts, router)
        self.driver.start(loop, {
            stubfiles.LookUpPinned: self._look_up_soon,
            stubfiles.WriteHostsBlock: lambda effect: self._write({"op": "hosts", "path": effect.path,
                                                                   "block": effect.block}),
            stubfiles.WriteDefaultRouter: lambda effect: self._write({"op": "defaultrouter", "path": effect.path,
                                                                      "text": effect.text}),
        })
        self._hostname_timer = loop.call_later(HOSTNAME_INTERVAL, self._hostname_tick)

    @property
    def routers(self) -> tuple[ipaddress.IPv4Address, ...]:
        """Last boot's routers once ``start`` read /etc/defaultrouter (router discovery's first guess)."""
        return tuple(ipaddress.IPv4Address(router) for router in self.core.routers)

    async def stop(self) -> None:
        """Stop asking and writing; a write under way finishes (it is atomic either way)."""
        self.driver.stop()
        if self._hostname_timer is not None:
            self._hostname_timer.cancel()
            self._hostname_timer = None
        for job in self._jobs:
            if isinstance(job, asyncio.Task):
                job.cancel()
        if self._jobs:
            await asyncio.wait(self._jobs)
        if self._files is not None:
            self._files.shutdown(wait=False)  # idle: every job it ran was awaited above

    def prepare_reconfigure(self, hosts: HostsConfig, router: RouterConfig) -> Callable[[], None]:
        """Everything new [hosts]/[router] settings need, built now; the returned step takes them.

        Once taken, a new pin is asked at once and a dropped one leaves the block.
        """
        settings = stubfiles_settings(hosts, router, self._retry_interval)
        writer = _local_writer(hosts, router) if self._own_writer else self._writer

        def commit() -> None:
            self._writer = writer  # the jobs already submitted keep the old one
            self.driver.feed(self.core.reconfigure, settings)

        return commit

    # --- inputs

    def observe(self, snapshot) -> None:
        """What netlink says now (a ``netlink.Snapshot``): this host's primary IPv4 and global IPv6 address."""
        v4, v6 = snapshot.primary_address, snapshot.primary_address6
        self._check_hostname(self.driver.now())
        self.driver.feed(self.core.set_addresses, str(v4) if v4 else None, str(v6) if v6 else None)

    def set_routers(self, routers: list[str]) -> None:
        """The default router list changed (wired to RouterService's ``on_change``)."""
        self.driver.feed(self.core.set_routers, [str(router) for router in routers])

    def set_search_domains(self, search: tuple[str, ...]) -> None:
        """The search domains in use changed: the first completes a short hostname in the ``self`` line."""
        self._search = tuple(search)
        self.driver.feed(self.core.set_names, self._hostname, self._search)

    def _hostname_tick(self) -> None:
        """``hostnamectl set-hostname`` changes no network state: the name is looked at every HOSTNAME_INTERVAL.

        One uname(2) a second: the kernel's change notification
        (/proc/sys/kernel/hostname with POLLPRI) is out of reach under
        ProcSubset=pid, and systemd-hostnamed's D-Bus signal needs a D-Bus
        library bootres does not depend on.
        """
        self._hostname_timer = self._loop.call_later(HOSTNAME_INTERVAL, self._hostname_tick)
        if self._check_hostname(self.driver.now()):
            self.driver.pump()

    def _check_hostname(self, now: float) -> bool:
        """Also when the network changes, when DHCP may have set it; True when the name changed."""
        hostname = socket.gethostname()
        if hostname == self._hostname:
            return False
        self._hostname = hostname
        self.core.set_names(hostname, self._search, now)
        return True

    # --- what the daemon reads

    def status(self) -> report.FilesStatus:
        """The SPEC's ``files`` object; a file whose last write failed has ``error``."""
        return self.core.status(self.driver.now())

    # --- the core's effects (the driver calls these)

    def _look_up_soon(self, effect: stubfiles.LookUpPinned) -> None:
        self._track(self._loop.create_task(self._look_up(effect.name), name=f"bootres-pin-{effect.name}"))

    def _track(self, job: asyncio.Future) -> None:
        self._jobs.add(job)
        job.add_done_callback(self._jobs.discard)

    def _write(self, request: dict) -> None:
        future = self._loop.run_in_executor(self._files, write_file, self._writer, request)
        self._track(future)
        future.add_done_callback(functools.partial(self._written, request["path"]))

    def _written(self, path: str, future: asyncio.Future) -> None:
        if not self.driver.running:
            return
        try:
            result: WriteResult = future.result()
        except Exception as error:  # our bug: logged in full, reported as a failed write so it is tried again
            self.log.exception("writing %s failed", path)
            result = WriteResult(str(error), False, None)
        self.core.write_done(path, result.error, self.driver.now(), written_at=result.written_at,
                             changed=result.changed)
        self.driver.pump()

    async def _look_up(self, name: str) -> None:
        found = None
        if self._lookup is not None:
            try:
                found = await self._lookup(name)
            except Exception:  # our bug, not DNS's: the pin keeps its addresses and is asked again
                self.log.exception("looking up pinned name %s failed", name)
        self.driver.feed(self.core.lookup_done, name, found)
