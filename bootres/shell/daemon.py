"""``bootres run``: one asyncio loop composing the resolver, router discovery and the stub files.

Start order, each step chosen so names work as early as possible:

1. the resolver binds its listeners, or takes those systemd kept across a
   restart (a failure here is the only fatal one: a resolver that cannot
   listen is no service at all);
2. the control socket, so ``bootres status`` works from now on;
3. a DNS probe to our own listener; only once it is answered:
   ``/etc/resolv.conf`` (when managed) and ``READY=1``;
4. the stub files and router discovery.  Both use netlink, and importing
   pyroute2 costs 150 ms or more, so they come after READY, imported on a
   worker thread so the loop keeps answering: the files written by the
   previous boot are still in place meanwhile, and the resolver need not
   wait.

Everything after step 1 degrades instead of failing: a read-only /etc or
state directory, a missing capability for raw ICMP, are logged, listed in
``bootres status`` and retried where that makes sense.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import importlib
import logging
import os
import signal
import socket
import struct
import sys
import time
from typing import TYPE_CHECKING

from bootres import __version__, config, status
from bootres.core import clientwire, containerside, resolvconf
from bootres.core.sources import is_loopback
from bootres.shell import control, etcfiles_io, sd
from bootres.shell.errorlog import ErrorLog, Problems
from bootres.shell.fileio import atomic_write
from bootres.shell.resolvguard_io import ManagedResolvConf
from bootres.shell.sources_io import SourcePaths

if TYPE_CHECKING:
    from bootres.core.report import Report

TICK = 5.0  # seconds between status refreshes (STATUS=, metrics, retries)
GUARD_INTERVAL = 0.5  # how soon another program's rewrite of /etc/resolv.conf is noticed
CACHE_SAVE_INTERVAL = 300.0  # a crash loses at most this much of the cache
READY_PROBE_TIMEOUT = 20.0  # under TimeoutStartSec=30s in units/bootres.service
FDSTORE_NAME = "listen"  # FDNAME of the listening sockets bootres stores itself


class StartupFailed(Exception):
    """bootres cannot serve at all; the message is the one-line reason."""


class Daemon:
    def __init__(self, cfg: config.Config, notifier: sd.Notifier, log: logging.Logger,
                 channels: dict | None = None, control_bound: control.Bound | None = None):
        """``channels``: the privileged writer's, by user (``privsep.separate``); None: the files are written in
        this process.  ``control_bound``: the control socket, bound before the daemon gave up root."""
        self.cfg = cfg
        self.writers = etcfiles_io.writers(etcfiles_io.Targets.from_config(cfg), channels)
        self.control_bound = control_bound
        self.notifier = notifier
        self.log = log
        self.errors = ErrorLog()
        log.addHandler(self.errors)
        self.problems = Problems(log, self.errors)
        self.started = time.monotonic()
        self.conditions: dict[str, str] = {}  # daemon-level problems by topic, for status
        self.resolv = (ManagedResolvConf(log.getChild("resolv.conf"), [e.sockaddr for e in cfg.resolver.endpoints],
                                         trust_ad=cfg.resolver.trust_ad, writer=self.writers["resolv.conf"])
                       if cfg.resolver.manage_resolv_conf else None)
        self.resolver = None
        self.router = None
        self.netlink = None
        self.files = None
        self.control = control.ControlServer({"status": self._status_request, "query": self._query_request}, log)
        self.stop_requested = asyncio.Event()
        self.reload_requested = asyncio.Event()
        self.last_status_line = ""
        self._metrics_due: tuple[str, str] | None = None  # the next metrics file to write
        self._metrics_writer: asyncio.Future | None = None

    # --- lifecycle

    async def main(self, early_sighups: list[int] | None = None) -> int:
        """``early_sighups``: SIGHUPs that came before this loop handled them; one reload follows READY."""
        loop = asyncio.get_running_loop()
        self.errors.attach(loop)
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stop_requested.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload_requested.set)
        if early_sighups:
            self.log.info("SIGHUP during start-up (%d): the configuration is reloaded once started", len(early_sighups))
            self.reload_requested.set()
        try:
            await self._start()
        except StartupFailed as exc:
            self.log.error("not starting: %s", exc)
            await self._stop()
            return 1
        workers = [
            asyncio.create_task(self._watchdog(), name="bootres-watchdog"),
            asyncio.create_task(self._ticker(), name="bootres-tick"),
            asyncio.create_task(self._reloader(), name="bootres-reload"),
            asyncio.create_task(self._guard(), name="bootres-resolv-conf"),
        ]
        await self.stop_requested.wait()
        self.log.info("stopping")
        self.notifier.stopping()
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        await self._stop()
        return 0

    async def _start(self) -> None:
        from bootres.shell.resolver_service import ResolverService

        try:
            listeners, store = self._listeners()
            self.resolver = ResolverService(
                self.cfg.resolver, self.log.getChild("resolver"), listeners=listeners,
                source_paths=_source_paths(), on_upstreams=self._upstreams_changed,
                original_resolv_conf=self.resolv.saved if self.resolv is not None else None,
                problems=Problems(self.log.getChild("resolver"), self.errors))
            await self.resolver.start()
        except OSError as exc:
            raise StartupFailed(exc.strerror or str(exc)) from None
        self.notifier.store_fds(store, FDSTORE_NAME)
        try:
            problem = await self.control.start(self.cfg.service.state_dir, self.control_bound)
        except control.AlreadyRunning as exc:
            raise StartupFailed(str(exc)) from None
        if problem:
            self.conditions["control"] = problem

        await self._wait_answering()
        await self.resolver.settled()
        await self._manage_resolv_conf()
        report = self.report()
        self.last_status_line = status.status_line(report)
        self.notifier.ready(self.last_status_line)
        _normal_priority()
        self._write_metrics(report)
        self.log.info("ready: resolver on %s", ", ".join(str(e) for e in self.cfg.resolver.listen))

        await self._start_netlink_users()
        self._publish(self.report())  # the router is known now: a truer STATUS= than READY's
        await asyncio.to_thread(self._refresh_generator_cache)

    def _refresh_generator_cache(self) -> None:
        """bootres-generator's cache: the next boot copies bootres.socket's drop-in instead of starting Python.

        Only for the default path, the one the generator reads: the writer knows (``Targets.generator_cache``).
        """
        try:
            # Root copies this cache into a unit: the privileged writer renders it from the configuration itself.
            self.writers["service"]({"op": "generator"})
        except (OSError, ValueError) as exc:
            from bootres.shell import generator

            self.log.info("generator cache not written in %s: %s; the next boot parses the configuration (~40 ms)",
                          generator.CACHE_DIR, getattr(exc, "strerror", None) or exc)

    def _listeners(self) -> tuple[list[tuple], list[socket.socket]]:
        """(endpoint, udp, tcp) for every ``listen`` address and ``container_listen``, and the sockets for systemd's
        fd store.

        Taken from bootres.socket (systemd bound them before sysinit.target and
        keeps them across restarts itself), else from the fd store (kept
        across a crash), else bound now.  Only the last two go to the fd
        store, so that without the socket unit too, the queries that arrive
        while no bootres runs wait in the buffers.
        """
        from bootres.shell import clientwire_io

        passed: dict[tuple, tuple[str, socket.socket]] = {}
        # The fd store's first: a socket unit's socket for the same address replaces it.
        for name, sock in sorted(sd.listen_fds(), key=lambda item: item[0] != FDSTORE_NAME):
            replaced = passed.pop((sock.type, sock.getsockname()[:2]), None)
            if replaced is not None:
                replaced[1].close()
            passed[(sock.type, sock.getsockname()[:2])] = (name, sock)
        listeners, store = [], []
        for endpoint in self.cfg.resolver.endpoints:
            name, udp = passed.pop((socket.SOCK_DGRAM, endpoint.sockaddr), (None, None))
            _, tcp = passed.pop((socket.SOCK_STREAM, endpoint.sockaddr), (None, None))
            if udp is not None and tcp is not None:
                udp.setblocking(False)
                tcp.setblocking(False)
                if name == FDSTORE_NAME:
                    self.log.info("listening on %s with the sockets kept across the restart", endpoint)
                    store += [udp, tcp]
                else:
                    self.log.info("listening on %s with the sockets of %s", endpoint, name)
            else:
                for sock in (udp, tcp):
                    if sock is not None:
                        sock.close()
                udp, tcp = clientwire_io.bind_listener(endpoint, free=endpoint == self.cfg.resolver.container_listen)
                store += [udp, tcp]
            listeners.append((endpoint, udp, tcp))
        stale: dict[str, set[str]] = {}
        for name, sock in passed.values():  # listen changed since they were bound
            if name != FDSTORE_NAME:
                host, port = sock.getsockname()[:2]
                stale.setdefault(name, set()).add(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
            sock.close()
        for name, addresses in stale.items():
            self.log.warning("%s listens on %s, not in [resolver] listen: systemctl daemon-reload, systemctl stop"
                             " %s bootres.service, then systemctl start bootres.service make it follow",
                             name, ", ".join(sorted(addresses)), name)
        return listeners, store
    async def _start_netlink_users(self) -> None:
        # They import pyroute2, which takes 150 ms or more: after READY, and on
        # a worker thread, since importing it here would stall every query;
        # so are the services' own modules (the router's and the stub files'
        # cores: a 9 ms stall of the loop right after READY, issue 24).
        for module in ("bootres.shell.netwatch", "bootres.shell.router_service", "bootres.shell.stubfiles_service"):
            await asyncio.to_thread(importlib.import_module, module)
        from bootres.shell.netwatch import NetlinkWatch
        from bootres.shell.router_service import RouterService
        from bootres.shell.stubfiles_service import StubFilesService

        self.files = StubFilesService(self.cfg.hosts, self.cfg.router, self.log.getChild("files"),
                               self.resolver.lookup_pinned, search=self.resolver.selection.search,
                               writer=self.writers["files"])
        netlink_log = self.log.getChild("netlink")
        watch = NetlinkWatch(netlink_log, problems=Problems(netlink_log, self.errors))
        # Subscribed first: the files' first write already has this host's addresses.
        watch.subscribe(self.files.observe)
        # Upstreams found unreachable before DHCP gave the host a route are asked again when one appears.
        watch.subscribe(self.resolver.routes_changed)
        container = self.cfg.resolver.container_listen
        if container is not None:
            from bootres.shell.containerside_io import ContainerAddress

            keeper = ContainerAddress(container, self.log.getChild("containers"), watch,
                                      self.resolver.container_side_changed,
                                      lambda problem: self._condition("container_listen", problem))
            watch.subscribe(keeper.observe)
        try:
            await watch.start()
        except Exception as exc:  # no netlink (a locked-down container; pyroute2's NetlinkError is no OSError)
            self.log.error("cannot watch interfaces and routes over netlink: %s", getattr(exc, "strerror", None) or exc)
            self.conditions["netlink"] = f"no netlink: router discovery off, no addresses in the hosts block ({exc})"
            watch = None
            if container is not None:
                # Blind to interfaces: only this host's own queries (on lo) count as the container side.
                await self.resolver.container_side_changed(containerside.ContainerSide(
                    frozenset({socket.if_nametoindex("lo")}), (), False))
        self.netlink = watch
        await self.files.start()
        if watch is None:
            return
        self.router = RouterService(self.cfg.router, self.log.getChild("router"), self.files.set_routers, watch,
                                    remembered=self.files.routers,
                                    problems=Problems(self.log.getChild("router"), self.errors))
        try:
            await self.router.start()
        except Exception as exc:  # raw sockets refused: names must keep working
            self.log.error("router discovery not started: %s", exc)
            self.conditions["router"] = f"router discovery not started: {exc}"
            self.router = None

    async def _stop(self) -> None:
        """Undo what was started, in reverse; each step on its own so one failure stops nothing else."""
        if self.router is not None:
            await self._quietly("router discovery", self.router.stop())
        if self.netlink is not None:
            await self._quietly("netlink watch", self.netlink.stop())
        if self.resolv is not None and self.resolver is not None:
            await self._leave_resolv_conf()
        if self.files is not None:
            await self._quietly("stub files", self.files.stop())
        if self.resolver is not None:
            await self._quietly("resolver", self.resolver.stop())
        await self._quietly("control socket", self.control.stop())
        if self._metrics_writer is not None:
            await self._quietly("metrics file", self._metrics_writer)

    async def _quietly(self, what: str, stopping) -> None:
        try:
            await stopping
        except Exception:  # our bug; the other parts must still stop cleanly
            self.log.exception("stopping the %s failed", what)

    # --- readiness

    async def _wait_answering(self) -> None:
        """Send DNS queries to our own listener until one is answered: READY means names work.

        The probe asks ``bootres-ready.invalid`` in class CH (``clientwire.READINESS_QUESTION``),
        which the resolver core answers itself with REFUSED, whether the
        question is allowed (no class but IN is served) or not (``allow``
        need not list the loopback address the probe comes from), whatever
        hosts_files say and whether or not an upstream is up: it proves the
        listener and the core without waiting on the network.  An allowed
        probe is not counted as a client's query.
        """
        endpoint = self.cfg.resolver.listen[0]
        host = str(endpoint.host)
        if endpoint.host.is_unspecified:
            host = "::1" if endpoint.host.version == 6 else "127.0.0.1"
        family = socket.AF_INET6 if endpoint.host.version == 6 else socket.AF_INET
        # os.urandom, not secrets: that imports hashlib (~4 ms and ~1 MiB before the first answer).
        probe = os.urandom(2) + struct.pack("!5H", 0x0100, 1, 0, 0, 0) + clientwire.READINESS_QUESTION
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_PROBE_TIMEOUT
        with socket.socket(family, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.setblocking(False)
            sock.connect((host, endpoint.port))
            while loop.time() < deadline:
                try:
                    await loop.sock_sendall(sock, probe)
                    reply = await asyncio.wait_for(loop.sock_recv(sock, 512), 0.5)
                except (asyncio.TimeoutError, ConnectionRefusedError):
                    continue
                if reply[:2] == probe[:2]:
                    return
        raise StartupFailed(f"the resolver on {endpoint} does not answer")

    # --- resolv.conf

    async def _leave_resolv_conf(self) -> None:
        """On stop: a classic resolv.conf, so the host resolves without bootres; not when the system shuts down.

        At a shutdown, the next boot's bootres.socket listens before anything
        asks a name: a classic file would send the early queries past it
        (and let DHCP clients take the file back), so bootres's stays.  The
        writer asks systemd (its private socket is root's: user bootres
        could only ask over D-Bus, which may be gone by then).
        """
        try:
            await self.resolv.stop(_classic_nameservers(self.resolver.selection.routing), unless_shutting_down=True)
        except (OSError, ValueError) as exc:
            self.log.error("cannot write %s on stop: %s", self.resolv.path, getattr(exc, "strerror", None) or exc)

    async def _manage_resolv_conf(self) -> None:
        """Take /etc/resolv.conf over (at READY, then at every tick until it worked)."""
        if self.resolv is None or self.resolv.settled:
            return
        try:
            await self.resolv.take_over(self.resolver.selection.search)
        except (OSError, ValueError) as exc:
            message = f"cannot manage {self.resolv.path}: {getattr(exc, 'strerror', None) or exc}"
            self._condition("resolv.conf", message, logging.ERROR, "; retrying")
        else:
            self._condition("resolv.conf", self.resolv.conflict)

    def _upstreams_changed(self, selection) -> None:
        """New sources: their search domains go to the stub files and to resolv.conf (written by the guard's next look)."""
        if self.files is not None:
            self.files.set_search_domains(selection.search)  # this host's own names follow the domain
        if self.resolv is not None:
            self.resolv.set_search(selection.search)

    async def _guard(self) -> None:
        """Notice another program's rewrite of /etc/resolv.conf within GUARD_INTERVAL."""
        if self.resolv is None:
            return
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(GUARD_INTERVAL)
            try:
                record = await self.resolv.check(loop.time())
                if record is not None:
                    self.resolver.set_rewritten_resolv_conf(record)
                self._condition("resolv.conf", self.resolv.conflict)
            except (OSError, ValueError) as exc:  # new search domains not written: the next look tries again
                self._condition("resolv.conf", f"cannot update {self.resolv.path}: {getattr(exc, 'strerror', None) or exc}")
            except Exception:  # our bug: log it, look again next time
                self.log.exception("checking %s failed", self.resolv.path)

    # --- periodic work, all from the event loop so a hung loop stops it too

    async def _watchdog(self) -> None:
        interval = self.notifier.watchdog_interval()
        if interval is None:
            return
        while True:
            self.notifier.watchdog()
            await asyncio.sleep(interval)

    async def _ticker(self) -> None:
        next_save = time.monotonic() + CACHE_SAVE_INTERVAL
        while True:
            await asyncio.sleep(TICK)
            try:
                next_save = await self._tick(next_save)
            except Exception:  # our bug: log it, the next tick tries again
                self.log.exception("periodic work failed")

    async def _tick(self, next_save: float) -> float:
        """STATUS=, metrics, resolv.conf retry, cache save; returns when the cache is next due."""
        await self._manage_resolv_conf()
        self._publish(self.report())
        if time.monotonic() >= next_save:
            next_save = time.monotonic() + CACHE_SAVE_INTERVAL
            await self.resolver.save_cache()  # logs its own failures
        return next_save

    def _publish(self, report: Report) -> None:
        """STATUS= when it changed, and the metrics file."""
        line = status.status_line(report)
        if line != self.last_status_line:
            self.notifier.status(line)
            self.last_status_line = line
        self._write_metrics(report)

    def _write_metrics(self, report: Report) -> None:
        """Render the metrics file now; write it on a worker thread (only the latest, one write at a time)."""
        path = self.cfg.service.metrics_file
        if not path:
            return
        self._metrics_due = (path, status.to_prometheus(report))
        if self._metrics_writer is None:
            self._metrics_writer = asyncio.ensure_future(self._write_metrics_off_loop())

    async def _write_metrics_off_loop(self) -> None:
        try:
            while self._metrics_due is not None:
                (path, text), self._metrics_due = self._metrics_due, None
                try:
                    await asyncio.to_thread(atomic_write, path, text)
                except OSError as exc:
                    self._condition("metrics", f"cannot write {path}: {exc.strerror or exc}", logging.WARNING)
                else:
                    self._condition("metrics", None)
        finally:
            self._metrics_writer = None

    def _condition(self, topic: str, message: str | None, level: int = logging.WARNING, suffix: str = "") -> None:
        """Record a standing problem for status (None: it is gone, and so are its lines in ``errors``); log it once."""
        if message is None:
            if self.conditions.pop(topic, None) is not None:
                self.problems.solved(topic, "%s: resolved", topic)
            return
        if self.conditions.get(topic) != message:
            self.problems.problem(topic, "%s%s", message, suffix, level=level)
        self.conditions[topic] = message

    # --- reload: validate, then swap

    async def _reloader(self) -> None:
        while True:
            await self.reload_requested.wait()
            self.reload_requested.clear()
            self.notifier.reloading()
            try:
                self._reload()
            except Exception:  # our bug: say so, keep serving, keep accepting reloads
                self.log.exception("reload failed")
            self.notifier.ready(status.status_line(self.report()))
            await asyncio.to_thread(self._refresh_generator_cache)

    def _reload(self) -> None:
        path = self.cfg.path
        try:
            new = config.load(path)
        except config.ConfigError as exc:
            for problem in exc.problems:
                self.problems.problem("reload", "reload refused: %s", problem, level=logging.ERROR)
            self._condition("reload", f"reload refused, the running configuration is kept: {exc.problems[0]}"
                            + (f" (and {len(exc.problems) - 1} more)" if len(exc.problems) > 1 else ""), logging.ERROR)
            return
        unchangeable = [
            key for key, old, now in (
                ("[service] state_dir", self.cfg.service.state_dir, new.service.state_dir),
                ("[resolver] listen", self.cfg.resolver.listen, new.resolver.listen),
                ("[resolver] container_listen", self.cfg.resolver.container_listen, new.resolver.container_listen),
                ("[resolver] manage_resolv_conf", self.cfg.resolver.manage_resolv_conf, new.resolver.manage_resolv_conf),
            ) if old != now
        ]
        if unchangeable:
            self.log.warning("reload: %s change(s) need a restart (listen: systemctl daemon-reload, systemctl stop"
                             " bootres.socket bootres.service, then systemctl start bootres.service); the rest is"
                             " applied", ", ".join(unchangeable))
            new = dataclasses.replace(
                new,
                service=dataclasses.replace(new.service, state_dir=self.cfg.service.state_dir),
                resolver=dataclasses.replace(
                    new.resolver,
                    listen=self.cfg.resolver.listen,
                    container_listen=self.cfg.resolver.container_listen,
                    manage_resolv_conf=self.cfg.resolver.manage_resolv_conf,
                ),
            )
        # Everything built first, by every service; only then taken, in
        # steps that only assign: a failure while building leaves every
        # service on the running configuration, never some on each.
        steps = [("the resolver", lambda: self.resolver.prepare_reconfigure(new.resolver))]
        if self.files is not None:  # not yet started: they start with self.cfg, the new one by then
            steps.append(("the stub files", lambda: self.files.prepare_reconfigure(new.hosts, new.router)))
        if self.router is not None:
            steps.append(("router discovery", lambda: self.router.prepare_reconfigure(new.router)))
        if self.resolv is not None:
            steps.append(("resolv.conf", lambda: functools.partial(self.resolv.set_trust_ad, new.resolver.trust_ad)))
        commits = []
        for name, prepare in steps:
            try:
                commits.append(prepare())
            except Exception as exc:  # our bug, or the world's (a file): the reload as a whole is refused
                self.problems.problem("reload", "reload refused: preparing %s for the new configuration failed", name,
                                      level=logging.ERROR, exc_info=True)
                self._condition("reload", f"reload refused, the running configuration is kept: preparing {name}"
                                          f" failed ({type(exc).__name__}: {exc})", logging.ERROR)
                return
        for commit in commits:
            commit()
        self.cfg = new
        self._condition("reload", None)
        self.log.info("configuration reloaded from %s", path)

    # --- status

    def report(self) -> Report:
        from bootres.core.report import FilesStatus, RouterStatus, ServiceStatus  # not needed before the first answer

        return status.build_report(
            version=__version__,
            pid=os.getpid(),
            uptime_s=time.monotonic() - self.started,
            config=self.cfg.path,
            resolver=self.resolver.status(),
            router=self.router.status() if self.router is not None else RouterStatus(self.cfg.router.discovery),
            files=self.files.status() if self.files is not None else FilesStatus(),
            errors=self.errors.entries,
            service=ServiceStatus(
                control=self.control.address,
                resolv_conf=None if self.resolv is None else self.resolv.status(),
            ),
            conditions=list(self.conditions.values()),
        )

    async def _status_request(self, message: dict) -> dict:
        from bootres.core.report import to_json

        return to_json(self.report())

    async def _query_request(self, message: dict) -> dict:
        name, rdtype = str(message.get("name", "")), str(message.get("type", "A"))
        try:
            reply = await self.resolver.query(name, rdtype)
        except ValueError as exc:  # a name or type dnspython cannot parse
            return {"name": name, "type": rdtype, "answered": False, "error": str(exc)}
        return {"name": name, "type": rdtype, **reply}


def _normal_priority() -> None:
    """Nice 0 for every thread once READY.

    bootres.service starts at Nice=10, so that its start-up yields the CPU
    to the rest of the boot; from READY on it is a resolver
    like any other (LimitNICE= lets it come back to 0 without CAP_SYS_NICE).
    Nice is per thread on Linux, hence the walk.  Started at nice 0, or not
    allowed: nothing changes.
    """
    if os.getpriority(os.PRIO_PROCESS, 0) <= 0:
        return
    for tid in os.listdir("/proc/self/task"):
        try:
            os.setpriority(os.PRIO_PROCESS, int(tid), 0)
        except OSError:  # the thread ended meanwhile, or RLIMIT_NICE forbids it
            pass


def _classic_nameservers(routing) -> list[str]:
    """What a classic resolv.conf can name of the default upstreams: port 53, not loopback, at most three."""
    return [host for host, port in routing.default if port == 53 and not is_loopback(host)][:resolvconf.MAXNS]


def _source_paths() -> SourcePaths:
    """Where the host's nameserver sources are: their usual paths, or below BOOTRES_SOURCES_ROOT (tests only,
    like $DPKG_ROOT: a test's daemon must not follow the machine's own leases)."""
    root = os.environ.get("BOOTRES_SOURCES_ROOT")
    return SourcePaths.under(root) if root else SourcePaths()



def run(cfg: config.Config, verbose: bool = False, user: str | None = None,
        early_sighups: list[int] | None = None) -> int:
    """The service in the foreground; 0 on a clean stop, 1 when it cannot start, 2 when it cannot become ``user``.

    ``user``: become that user before anything else, with the files in /etc
    written by a privileged writer (``bootres.shell.privsep``).
    ``early_sighups``: the SIGHUPs noted before the loop handles them
    (cli.EARLY_SIGHUPS, still filling until then).
    """
    # Threads hold the interpreter lock for up to this long before the loop
    # gets it back (default 5 ms): the netlink dumps and file writes on worker
    # threads must not add milliseconds to an answer.
    sys.setswitchinterval(0.0005)
    notifier = sd.Notifier()
    log = sd.setup_logging(verbose)
    channels = bound = None
    if user is not None:
        from bootres.shell import privsep

        def control_bind():
            nonlocal bound
            bound = control.bind(cfg.service.state_dir)
            return bound.sock

        try:
            channels = privsep.separate(cfg, user, log, control_bind)
        except privsep.SeparationFailed as exc:
            log.error("not starting: %s", exc)
            return 2  # as for an invalid configuration: restarting cannot fix it (RestartPreventExitStatus=2)
        except control.AlreadyRunning as exc:
            log.error("not starting: %s", exc)
            return 1
    daemon = Daemon(cfg, notifier, log, channels, bound)
    return asyncio.run(daemon.main(early_sighups))
