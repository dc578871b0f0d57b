"""ResolverService: the caching stub resolver as one asyncio service.

It owns the sockets, files and the clock around ``bootres.core.stub.Stub``:
every input goes into the core, then ``_pump`` carries out the effects it
returned and re-arms the single timer at the core's next deadline.

``python -m bootres.shell.resolverd -c CONF`` runs just the resolver in the
foreground (tests and ``bench/`` use it); ``bootres run`` composes the same
service with the others (docs/internals.md).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import resource
import signal
import socket
import sys
import time
from typing import Callable

from bootres import config
from bootres.config import Endpoint, ResolverConfig
from bootres.core import dnsmsg
from bootres.core.cache import Cache, CacheFileError
from bootres.core.effects import CloseUpstream, Log, Respond, SendUpstream
from bootres.core.hostsdb import HostsDB, parse_hosts
from bootres.core import sources
from bootres.core.stub import Stub, StubSettings
from bootres.shell import control, dnsio
from bootres.shell.fileio import atomic_write
from bootres.shell.sourcewatch import POLL_INTERVAL, SourcePaths, SourceWatcher

WATCH_INTERVAL = POLL_INTERVAL  # seconds between checks of hosts_files and the upstream sources


def _random_id() -> int:
    # The kernel's CSPRNG (getrandom), like secrets, without importing hashlib and libcrypto.
    return int.from_bytes(os.urandom(2), "big")


class ResolverService:
    """See docs/internals.md for the interface the daemon relies on."""

    def __init__(self, cfg: ResolverConfig, log: logging.Logger,
                 listeners: list[tuple[Endpoint, socket.socket, socket.socket]] | None = None,
                 source_paths: SourcePaths | None = None,
                 on_upstreams: Callable[[sources.Selection], None] | None = None,
                 original_resolv_conf: str | None = None):
        """``listeners``: pre-bound (endpoint, udp, tcp) sockets instead of binding ``cfg.listen``.

        ``source_paths``: follow the host's nameserver sources there (the
        daemon passes the real paths; None: only ``upstreams`` and
        ``upstreams_file``).  ``on_upstreams`` is called with every new
        selection (the daemon keeps resolv.conf's search list in step).
        ``original_resolv_conf``: the saved copy of the resolv.conf bootres
        replaced, the static list of last resort.
        """
        self.original_resolv_conf = original_resolv_conf
        self.cfg = cfg
        self.log = log
        self._given_listeners = listeners
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_upstreams = on_upstreams
        self._warned: set[str] = set()
        self.sources = SourceWatcher(source_paths, self._static_files(cfg), log)
        self.sources.poll()
        self.selection = self._select(cfg)
        self.stub = Stub(self._settings(cfg, self.selection), Cache(cfg.cache_size, cfg.stale_max_age), _random_id)
        self._udp: list[dnsio.UdpListener] = []
        self._tcp: list[dnsio.TcpListener] = []
        self._tcp_pool = dnsio.TcpPool(self._tcp_limits(cfg))
        self._upstream_io: dnsio.UpstreamSockets | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._watch: asyncio.TimerHandle | None = None
        self._watched: dict[str, tuple | None] = {}
        self.listening: list[str] = []

    # --- life cycle

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        _raise_fd_limit()
        self._load_cache()
        self._check_files(force=True)
        bound = self._given_listeners or [(ep, *dnsio.bind_listener(ep)) for ep in self.cfg.listen]
        self._upstream_io = dnsio.UpstreamSockets(self._loop, self._upstream_reply, self._upstream_failed)
        for endpoint, udp, tcp in bound:
            self._udp.append(dnsio.UdpListener(self._loop, udp, self.stub.fast_answer, self._udp_query))
            listener = dnsio.TcpListener(tcp, self._tcp_query, self._tcp_pool)
            await listener.start()
            self._tcp.append(listener)
            self.listening.append(str(endpoint))
        self._watch = self._loop.call_later(WATCH_INTERVAL, self._watch_files)

    async def stop(self) -> None:
        for listener in self._udp:
            listener.close()
        for tcp in self._tcp:
            await tcp.close()
        self._udp, self._tcp = [], []
        for handle in (self._timer, self._watch):
            if handle is not None:
                handle.cancel()
        if self._upstream_io is not None:
            self._upstream_io.close_all()
        self.save_cache()

    def save_cache(self) -> None:
        """Write the cache to ``cache_file`` atomically; a failure is logged, never raised."""
        path = self.cfg.cache_file
        if not path:
            return
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            atomic_write(path, self.stub.cache.snapshot(self._now()), mode=0o600)
        except OSError as exc:
            self.log.warning("cannot save the cache to %s: %s", path, exc.strerror or exc)

    def reconfigure(self, cfg: ResolverConfig) -> None:
        """Use ``cfg`` from now on; the cache and the history of upstreams that stay are kept.

        ``listen`` changes need a restart (the daemon's reload compares it).
        """
        self.cfg = cfg
        self.sources.set_static(self._static_files(cfg))
        self.sources.poll()
        self._apply_sources()
        self.stub.cache.resize(cfg.cache_size, cfg.stale_max_age)
        self._tcp_pool.limits = self._tcp_limits(cfg)
        self._watched.clear()
        if self._loop is not None:
            self._check_files(force=True)

    # --- questions from the daemon

    def status(self) -> dict:
        used = set(self.selection.used)  # a static list stands by while a dynamic source has nameservers
        return {"listen": list(self.listening), **self.stub.status(), "tcp": self._tcp_pool.status(),
                "sources": [{**entry, "in_use": entry["name"] in used} for entry in self.sources.status()]}

    def set_rewritten_resolv_conf(self, record: sources.SourceRecord | None) -> None:
        """Nameservers another program wrote into /etc/resolv.conf: one more source (the daemon's guard)."""
        self.sources.set_rewritten(record)
        self._apply_sources()

    def healthy(self) -> bool:
        return self.stub.upstreams.healthy()

    async def query(self, name: str, rdtype: str = "A") -> dict:
        """Resolve like a client would; the dict is what ``bootres query`` prints."""
        import dns.message  # only here: see bootres/core/dnsmsg.py on startup time
        import dns.rcode

        started = self._now()
        try:
            wire = dnsmsg.query_wire(name, rdtype)
        except Exception as exc:  # dnspython's own errors for a bad name or type: tell the asker
            return {"answered": False, "name": name, "type": rdtype, "error": str(exc)}
        future = self._loop.create_future()
        self.stub.query_received(wire, future, None, True, self._now())
        self._pump()
        effect: Respond = await future
        reply = dns.message.from_wire(effect.wire)
        rcode = reply.rcode()
        result = {
            "answered": rcode in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN),
            "name": name,
            "type": rdtype.upper(),
            "rcode": dns.rcode.to_text(rcode),
            "answers": [line for rrset in reply.answer for line in rrset.to_text().splitlines()],
            "upstream": effect.upstream,
            "source": effect.source,
            "ms": round((self._now() - started) * 1000, 3),
        }
        if not result["answered"] and effect.reason:
            result["reason"] = effect.reason  # why SERVFAIL (or the upstreams' error) was answered
        return result

    async def lookup_addresses(self, name: str) -> list[str]:
        """A and AAAA addresses of ``name``; [] when nothing answers."""
        found = []
        for rdtype in ("A", "AAAA"):
            result = await self.query(name, rdtype)
            found += [line.split()[-1] for line in result.get("answers", [])
                      if line.split()[3:4] == [rdtype]]
        return found

    # --- the core's inputs

    def _now(self) -> float:
        return self._loop.time() if self._loop is not None else time.monotonic()

    def _udp_query(self, data: bytes, client, host: str, now: float) -> None:
        self.stub.query_received(data, client, host, False, now)
        self._pump()

    def _tcp_query(self, data: bytes, writer, host: str) -> None:
        self.stub.query_received(data, writer, host, True, self._now())
        self._pump()

    def _upstream_reply(self, token: int, data: bytes, source) -> None:
        self.stub.upstream_reply(token, data, source, self._now())
        self._pump()

    def _upstream_failed(self, token: int, why: str) -> None:
        self.stub.upstream_failed(token, self._now(), why)
        self._pump()

    def _timer_fired(self) -> None:
        self._timer = self._timer_at = None
        self.stub.timer_fired(self._now())
        self._pump()

    # --- the core's effects

    def _pump(self) -> None:
        effects = self.stub.drain()
        # Answers first: a client waiting on a reply should not also wait for
        # the sockets of the race that produced it to be closed.
        effects.sort(key=lambda effect: not isinstance(effect, Respond))
        for effect in effects:
            if isinstance(effect, Respond):
                client = effect.client
                if isinstance(client, tuple):
                    dnsio.send_udp_reply(client, effect.wire)
                elif isinstance(client, asyncio.Future):
                    if not client.done():
                        client.set_result(effect)
                else:
                    dnsio.send_tcp_reply(client, effect.wire)
            elif isinstance(effect, SendUpstream):
                self._upstream_io.send(effect.token, effect.address, effect.wire, effect.tcp)
            elif isinstance(effect, CloseUpstream):
                self._upstream_io.close(effect.token)
            elif isinstance(effect, Log):
                self.log.log(effect.level, "%s", effect.message)
        when = self.stub.deadline()
        if when != self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = when
            self._timer = None if when is None else self._loop.call_at(when, self._timer_fired)

    # --- files

    def _load_cache(self) -> None:
        path = self.cfg.cache_file
        if not path:
            return
        try:
            with open(path, "rb") as handle:
                blob = handle.read()
                age = time.time() - os.fstat(handle.fileno()).st_mtime  # wall clock: may be wrong at boot
        except FileNotFoundError:
            self.log.info("no cache file at %s yet; starting with an empty cache", path)
            return
        except OSError as exc:
            self.log.warning("cache file %s ignored: %s", path, exc.strerror or exc)
            return
        try:
            count = self.stub.cache.restore(blob, self._now(), age)
        except CacheFileError as exc:
            self.log.warning("cache file %s ignored: %s", path, exc)
            return
        self.log.info("cache file %s loaded: %d answers, served stale until refreshed", path, count)

    def _watch_files(self) -> None:
        self._check_files()
        self._watch = self._loop.call_later(WATCH_INTERVAL, self._watch_files)

    def _check_files(self, force: bool = False) -> None:
        """Re-read hosts_files and the upstream sources that changed."""
        hosts_changed = self._changed(self.cfg.hosts_files) or force
        if hosts_changed:
            entries = []
            for path in self.cfg.hosts_files:
                try:
                    # newline="": a lone \r is a blank to glibc, not a line break
                    with open(path, encoding="utf-8", errors="replace", newline="") as handle:
                        entries += parse_hosts(handle.read())
                except OSError:
                    continue  # a missing hosts file answers nothing
            self.stub.set_hosts(HostsDB(entries))
        if self.sources.poll():
            self._apply_sources()

    def _changed(self, paths) -> bool:
        changed = False
        for path in paths:
            try:
                st = os.stat(path)
                signature = (st.st_ino, st.st_mtime_ns, st.st_size)
            except OSError:
                signature = None
            if self._watched.get(path, "unseen") != signature:
                self._watched[path] = signature
                changed = True
        return changed

    # --- upstream sources

    def _static_files(self, cfg: ResolverConfig) -> list[tuple[str, str]]:
        static = [(cfg.upstreams_file, f"file {cfg.upstreams_file}")] if cfg.upstreams_file else []
        if self.original_resolv_conf:
            static.append((self.original_resolv_conf, f"the resolv.conf found at takeover ({self.original_resolv_conf})"))
        return static

    def _select(self, cfg: ResolverConfig) -> sources.Selection:
        selection = sources.select(
            self.sources.records(),
            tuple(u.sockaddr for u in cfg.upstreams),
            tuple((domain, u.sockaddr) for domain, u in cfg.upstream_domains),
            frozenset(e.sockaddr for e in cfg.listen),
        )
        # Said once: the same loopback nameserver would otherwise be reported at every change.
        for warning in selection.warnings:
            if warning not in self._warned:
                self.log.warning("%s", warning)
        self._warned = set(selection.warnings)
        return selection

    def _apply_sources(self) -> None:
        """Use what the sources say now; the cache, in-flight queries and upstream statistics stay."""
        selection = self._select(self.cfg)
        changed = selection.routing != self.selection.routing
        self.selection = selection
        self.stub.reconfigure(self._settings(self.cfg, selection))
        if changed:
            self.log.info("upstreams now: %s", describe(selection) or "none")
        if self._on_upstreams is not None:
            self._on_upstreams(selection)

    @staticmethod
    def _tcp_limits(cfg: ResolverConfig) -> dnsio.TcpLimits:
        return dnsio.TcpLimits(cfg.tcp_connections, cfg.tcp_idle_timeout, cfg.tcp_output_queue)

    @staticmethod
    def _settings(cfg: ResolverConfig, selection: sources.Selection) -> StubSettings:
        return StubSettings(
            routing=selection.routing,
            strategy=cfg.strategy,
            hedge_delay=cfg.hedge_delay,
            timeout=cfg.timeout,
            serve_stale=cfg.serve_stale,
            stale_answer_after=cfg.stale_answer_after,
            allow=cfg.allow,
            max_inflight=cfg.max_inflight,
        )


def describe(selection: sources.Selection) -> str:
    """One log line's worth: each upstream with its source, then each split-DNS route."""
    routing = selection.routing
    parts = [f"{u.label} ({u.source})" for u in routing.upstreams if u.address in routing.default]
    labels = {u.address: u.label for u in routing.upstreams}
    parts += [f"{r.domain} -> {' '.join(labels.get(a, str(a)) for a in r.upstreams) or 'none'}"
              for r in routing.routes]
    return ", ".join(parts)


def _raise_fd_limit() -> None:
    """One socket per upstream query: lift the soft descriptor limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass


def main(argv: list[str] | None = None) -> int:
    """Run only the resolver in the foreground until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(prog="python -m bootres.shell.resolverd")
    parser.add_argument("-c", "--config", default=config.DEFAULT_PATH)
    parser.add_argument("--control", metavar="DIR",
                        help="serve status and query requests on a control socket in DIR")
    parser.add_argument("--sources-under", metavar="DIR",
                        help="follow the host's nameserver sources (dhclient, networkd, NetworkManager,"
                             " resolvconf files) at their usual paths below DIR; default: not at all")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s: %(message)s")
    log = logging.getLogger("bootres.resolver")
    try:
        cfg = config.load(args.config)
    except config.ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2

    async def serve() -> int:
        paths = SourcePaths.under(args.sources_under) if args.sources_under else None
        service = ResolverService(cfg.resolver, log, source_paths=paths)
        try:
            await service.start()
        except OSError as exc:
            print(f"bootres resolver: {exc.strerror or exc}", file=sys.stderr)
            return 1
        control_server = None
        if args.control:
            async def status(_request):
                return service.status()

            async def query(request):
                return await service.query(request["name"], request.get("type", "A"))

            control_server = control.ControlServer({"status": status, "query": query}, log)
            await control_server.start(args.control)
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        log.info("answering on %s", " ".join(service.listening))
        await stopping.wait()
        if control_server is not None:
            await control_server.stop()
        await service.stop()
        return 0

    return asyncio.run(serve())


if __name__ == "__main__":
    sys.exit(main())
