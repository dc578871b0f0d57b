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
import collections
import dataclasses
import importlib
import logging
import os
import signal
import socket
import struct
import time

from bootres import __version__, config, status
from bootres.shell import control, sd
from bootres.shell.fileio import atomic_write
from bootres.shell.resolvconf import ManagedResolvConf

TICK = 5.0  # seconds between status refreshes (STATUS=, metrics, retries)
CACHE_SAVE_INTERVAL = 300.0  # a crash loses at most this much of the cache
READY_PROBE_TIMEOUT = 20.0  # under TimeoutStartSec=30s in units/bootres.service
MAX_ERRORS = 20


class StartupFailed(Exception):
    """bootres cannot serve at all; the message is the one-line reason."""


class RecentErrors(logging.Handler):
    """Keeps the last warnings and errors for ``status``'s ``errors`` list."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.entries: collections.deque[dict] = collections.deque(maxlen=MAX_ERRORS)

    def emit(self, record: logging.LogRecord) -> None:
        import datetime  # here, on the first warning: the first answer need not wait for it

        stamp = datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc)
        self.entries.append({"at": stamp.isoformat(timespec="seconds"), "message": record.getMessage()})


class Daemon:
    def __init__(self, cfg: config.Config, notifier: sd.Notifier, log: logging.Logger):
        self.cfg = cfg
        self.notifier = notifier
        self.log = log
        self.recent = RecentErrors()
        log.addHandler(self.recent)
        self.started = time.monotonic()
        self.conditions: dict[str, str] = {}  # daemon-level problems by topic, for status
        self.resolv = ManagedResolvConf(log) if cfg.resolver.manage_resolv_conf else None
        self.resolver = None
        self.router = None
        self.files = None
        self.control = control.ControlServer({"status": self._status_request, "query": self._query_request}, log)
        self.stop_requested = asyncio.Event()
        self.reload_requested = asyncio.Event()
        self.last_status_line = ""

    # --- lifecycle

    async def main(self) -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stop_requested.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload_requested.set)
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
        from bootres.shell.resolverd import ResolverService

        try:
            listeners = self._listeners()
            self.resolver = ResolverService(self._resolver_config(self.cfg), self.log.getChild("resolver"),
                                            listeners=listeners)
            await self.resolver.start()
        except OSError as exc:
            raise StartupFailed(exc.strerror or str(exc)) from None
        self.notifier.store_fds([sock for _, udp, tcp in listeners for sock in (udp, tcp)], "listen")
        try:
            problem = await self.control.start(self.cfg.service.state_dir)
        except control.AlreadyRunning as exc:
            raise StartupFailed(str(exc)) from None
        if problem:
            self.conditions["control"] = problem

        await self._wait_answering()
        self._manage_resolv_conf()
        report = self.report()
        self.last_status_line = status.status_line(report)
        self.notifier.ready(self.last_status_line)
        self._write_metrics(report)
        self.log.info("ready: resolver on %s", ", ".join(str(e) for e in self.cfg.resolver.listen))

        await self._start_netlink_users()
        self._publish(self.report())  # the router is known now: a truer STATUS= than READY's

    def _listeners(self) -> list[tuple]:
        """(endpoint, udp, tcp) for every ``listen`` address: kept by systemd across a restart, or bound now.

        The sockets go to systemd's fd store once bound, so after a crash the
        queries that arrived while no bootres ran are still in their buffers.
        """
        from bootres.shell import dnsio

        kept = {(sock.type, sock.getsockname()[:2]): sock for sock in sd.listen_fds()}
        listeners = []
        for endpoint in self.cfg.resolver.listen:
            udp = kept.pop((socket.SOCK_DGRAM, endpoint.sockaddr), None)
            tcp = kept.pop((socket.SOCK_STREAM, endpoint.sockaddr), None)
            if udp is not None and tcp is not None:
                udp.setblocking(False)
                tcp.setblocking(False)
                self.log.info("listening on %s with the sockets kept across the restart", endpoint)
            else:
                for sock in (udp, tcp):
                    if sock is not None:
                        sock.close()
                udp, tcp = dnsio.bind_listener(endpoint)
            listeners.append((endpoint, udp, tcp))
        for sock in kept.values():  # listen changed since they were stored
            sock.close()
        return listeners

    async def _start_netlink_users(self) -> None:
        # They import pyroute2, which takes 150 ms or more: after READY, and on
        # a worker thread, since importing it here would stall every query.
        await asyncio.to_thread(importlib.import_module, "bootres.shell.netlinkio")
        from bootres.shell.routerd import RouterService
        from bootres.shell.stubfiles import StubFiles

        self.files = StubFiles(self.cfg.hosts, self.cfg.router, self.log.getChild("files"),
                               self.resolver.lookup_addresses)
        await self.files.start()
        self.router = RouterService(self.cfg.router, self.log.getChild("router"), self.files.set_routers)
        try:
            await self.router.start()
        except Exception as exc:  # netlink or raw sockets refused: names must keep working
            self.log.error("router discovery not started: %s", exc)
            self.conditions["router"] = f"router discovery not started: {exc}"
            self.router = None

    async def _stop(self) -> None:
        """Undo what was started, in reverse; each step on its own so one failure stops nothing else."""
        if self.router is not None:
            await self._quietly("router discovery", self.router.stop())
        if self.resolv is not None and self.resolv.managing:
            try:
                self.resolv.restore()
            except OSError as exc:
                self.log.error("cannot restore %s: %s", self.resolv.path, exc.strerror or exc)
        if self.files is not None:
            await self._quietly("stub files", self.files.stop())
        if self.resolver is not None:
            await self._quietly("resolver", self.resolver.stop())
        await self._quietly("control socket", self.control.stop())

    async def _quietly(self, what: str, stopping) -> None:
        try:
            await stopping
        except Exception:  # our bug; the other parts must still stop cleanly
            self.log.exception("stopping the %s failed", what)

    # --- readiness

    async def _wait_answering(self) -> None:
        """Send DNS queries to our own listener until one is answered: READY means names work.

        The probe is a bare header with no question: the stub core itself
        answers it (FORMERR), whatever hosts_files say and whether or not an
        upstream is up, so it proves the listener and the core without
        waiting on the network.
        """
        endpoint = self.cfg.resolver.listen[0]
        host = str(endpoint.host)
        if endpoint.host.is_unspecified:
            host = "::1" if endpoint.host.version == 6 else "127.0.0.1"
        family = socket.AF_INET6 if endpoint.host.version == 6 else socket.AF_INET
        # os.urandom, not secrets: that imports hashlib (~4 ms and ~1 MiB before the first answer).
        probe = os.urandom(2) + struct.pack("!5H", 0x0100, 0, 0, 0, 0)
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

    def _resolver_config(self, cfg: config.Config) -> config.ResolverConfig:
        """With manage_resolv_conf and no upstreams given, the original resolv.conf's nameservers are the upstreams."""
        resolver = cfg.resolver
        if self.resolv is None or resolver.upstreams or _has_nameservers(resolver.upstreams_file):
            return resolver
        own = [str(e.host) for e in resolver.listen]
        upstreams = []
        for address in self.resolv.original_nameservers(own):
            try:
                upstreams.append(config.parse_endpoint(address))
            except ValueError:
                self.log.warning("nameserver %s from %s skipped: not usable as an upstream", address, self.resolv.path)
        if upstreams:
            self.log.info("upstreams from the original %s: %s", self.resolv.path, " ".join(map(str, upstreams)))
        return dataclasses.replace(resolver, upstreams=tuple(upstreams))

    def _manage_resolv_conf(self) -> None:
        if self.resolv is None or self.resolv.managing:
            return
        try:
            self.resolv.take_over([e.sockaddr for e in self.cfg.resolver.listen])
        except (OSError, ValueError) as exc:
            message = f"cannot manage {self.resolv.path}: {getattr(exc, 'strerror', None) or exc}"
            self._condition("resolv.conf", message, logging.ERROR, "; retrying")
        else:
            self._condition("resolv.conf", None)

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
                next_save = self._tick(next_save)
            except Exception:  # our bug: log it, the next tick tries again
                self.log.exception("periodic work failed")

    def _tick(self, next_save: float) -> float:
        """STATUS=, metrics, resolv.conf retry, cache save; returns when the cache is next due."""
        self._manage_resolv_conf()
        self._publish(self.report())
        if time.monotonic() >= next_save:
            next_save = time.monotonic() + CACHE_SAVE_INTERVAL
            self.resolver.save_cache()  # logs its own failures
        return next_save

    def _publish(self, report: dict) -> None:
        """STATUS= when it changed, and the metrics file."""
        line = status.status_line(report)
        if line != self.last_status_line:
            self.notifier.status(line)
            self.last_status_line = line
        self._write_metrics(report)

    def _write_metrics(self, report: dict) -> None:
        path = self.cfg.service.metrics_file
        if not path:
            return
        try:
            atomic_write(path, status.to_prometheus(report))
        except OSError as exc:
            self._condition("metrics", f"cannot write {path}: {exc.strerror or exc}", logging.WARNING)
        else:
            self._condition("metrics", None)

    def _condition(self, topic: str, message: str | None, level: int = logging.WARNING, suffix: str = "") -> None:
        """Record a standing problem for status (None: it is gone); log it once, not at every retry."""
        if message is None:
            self.conditions.pop(topic, None)
            return
        if self.conditions.get(topic) != message:
            self.log.log(level, "%s%s", message, suffix)
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

    def _reload(self) -> None:
        path = self.cfg.path
        try:
            new = config.load(path)
        except config.ConfigError as exc:
            for problem in exc.problems:
                self.log.error("reload refused: %s", problem)
            self.log.error("reload refused: keeping the running configuration (%d problem(s))", len(exc.problems))
            return
        unchangeable = [
            key for key, old, now in (
                ("[service] state_dir", self.cfg.service.state_dir, new.service.state_dir),
                ("[resolver] listen", self.cfg.resolver.listen, new.resolver.listen),
                ("[resolver] manage_resolv_conf", self.cfg.resolver.manage_resolv_conf, new.resolver.manage_resolv_conf),
            ) if old != now
        ]
        if unchangeable:
            self.log.warning("reload: %s change(s) need a restart; the rest is applied", ", ".join(unchangeable))
            new = dataclasses.replace(
                new,
                service=dataclasses.replace(new.service, state_dir=self.cfg.service.state_dir),
                resolver=dataclasses.replace(
                    new.resolver,
                    listen=self.cfg.resolver.listen,
                    manage_resolv_conf=self.cfg.resolver.manage_resolv_conf,
                ),
            )
        self.resolver.reconfigure(self._resolver_config(new))
        self.files.reconfigure(new.hosts, new.router)
        if self.router is not None:
            self.router.reconfigure(new.router)
        self.cfg = new
        self.log.info("configuration reloaded from %s", path)

    # --- status

    def report(self) -> dict:
        return status.build_report(
            version=__version__,
            pid=os.getpid(),
            uptime_s=time.monotonic() - self.started,
            config=self.cfg.path,
            resolver=self.resolver.status(),
            router=self.router.status() if self.router is not None else _no_router(self.cfg.router),
            files=self.files.status() if self.files is not None else {},
            errors=list(self.recent.entries),
            service={
                "control": self.control.address,
                "resolv_conf": None if self.resolv is None else {
                    "path": self.resolv.path, "managed": self.resolv.managing, "saved": self.resolv.saved,
                },
            },
            conditions=list(self.conditions.values()),
        )

    async def _status_request(self, message: dict) -> dict:
        return self.report()

    async def _query_request(self, message: dict) -> dict:
        name, rdtype = str(message.get("name", "")), str(message.get("type", "A"))
        try:
            reply = await self.resolver.query(name, rdtype)
        except ValueError as exc:  # a name or type dnspython cannot parse
            return {"name": name, "type": rdtype, "answered": False, "error": str(exc)}
        return {"name": name, "type": rdtype, **reply}


def _has_nameservers(path: str | None) -> bool:
    if not path:
        return False
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return any(line.split()[:1] == ["nameserver"] for line in handle)
    except OSError:
        return False


def _no_router(cfg: config.RouterConfig) -> dict:
    return {"discovery": cfg.discovery, "default": None, "source": None, "routers": []}


def run(cfg: config.Config, verbose: bool = False) -> int:
    """The service in the foreground; 0 on a clean stop, 1 when it cannot start."""
    notifier = sd.Notifier()
    log = sd.setup_logging(verbose)
    daemon = Daemon(cfg, notifier, log)
    return asyncio.run(daemon.main())
