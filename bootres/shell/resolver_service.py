"""ResolverService: the caching stub resolver as one asyncio service.

It owns the sockets, files and the clock around ``bootres.core.resolver.Resolver``:
the core runs under a ``CoreDriver``, to which the sockets feed their input
directly (docs/internals.md walks a query through).

``bootres run`` composes it with the other services (docs/internals.md).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import resource
import socket
import time
from typing import TYPE_CHECKING, Callable

from bootres.config import Endpoint, ResolverConfig
from bootres.core import cachefile, clientwire, containerside, publicsuffix, sources
from bootres.core.cache import Cache
from bootres.core.cachefile import CacheFileError, Snapshot
from bootres.core.effects import CloseUpstream, Respond, SendUpstream
from bootres.core.hostsdb import HostsDB, parse_hosts
from bootres.core.resolver import Resolver, ResolverSettings
from bootres.settings import resolver_settings
from bootres.shell import cachefile_io, clientwire_io, upstreamwire_io
from bootres.shell.core_driver import CoreDriver
from bootres.shell.errorlog import Problems, iso_time
from bootres.shell.fileio import FileRead, read_bytes, read_changed
from bootres.shell.sources_io import POLL_INTERVAL, Scan, SourcePaths, SourceWatcher

if TYPE_CHECKING:
    from bootres.core import report

WATCH_INTERVAL = POLL_INTERVAL  # seconds between checks of hosts_files and the upstream sources
PUBLIC_SUFFIX_LIST = "/usr/share/publicsuffix/public_suffix_list.dat"  # Debian's publicsuffix package
# Saving the cache: this many entries serialized per turn of the event loop
# (~0.15 ms here; 10,000 take 16-25 ms in all), and this long a pause after
# each step, in which the loop waits for sockets as when idle, so a query
# waits for one step at most.  Without the pause the service was busy for
# the whole ~25 ms, and on this 2-CPU machine the kernel then made the loop
# wait for a CPU, up to ~5 ms now and then (bench/loop_stall.py,
# docs/benchmarks.md).  A save of 10,000 entries takes ~0.3 s; the last one,
# at stop, has no pause.
SAVE_STEP = 64
SAVE_PAUSE = 0.001


def _random_id() -> int:
    # The kernel's CSPRNG (getrandom), like secrets, without importing hashlib and libcrypto.
    return int.from_bytes(os.urandom(2), "big")


class ResolverService:
    """See docs/internals.md for the interface the daemon relies on."""

    def __init__(self, cfg: ResolverConfig, log: logging.Logger,
                 listeners: list[tuple[Endpoint, socket.socket, socket.socket]] | None = None,
                 source_paths: SourcePaths | None = None,
                 on_upstreams: Callable[[sources.Selection], None] | None = None,
                 original_resolv_conf: str | None = None, problems: Problems | None = None):
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
        self.sources = SourceWatcher(source_paths, self._static_files(cfg), log, problems)
        self.sources.poll()  # on this thread: no loop serves anything yet, and ``selection`` is right from the start
        self._suffixes: publicsuffix.PublicSuffixes | None = None
        self.selection = self._select(cfg)
        self._warn(self.selection)
        self.core = Resolver(resolver_settings(cfg, self.selection.routing), Cache(cfg.cache_size, cfg.stale_max_age), _random_id)
        self._udp: list[clientwire_io.UdpListener] = []
        self._tcp: list[clientwire_io.TcpListener] = []
        self._tcp_pool = clientwire_io.TcpPool(self._tcp_limits(cfg), self.core.allows)
        self.driver = CoreDriver(self.core, log, first=Respond)
        self._upstream_io: upstreamwire_io.UpstreamSockets | None = None
        self._watch: asyncio.Task | None = None
        self._hosts: dict[str, FileRead] = {}  # the last read of each hosts file
        self._hosts_paths: tuple[str, ...] | None = None  # the hosts_files the core's hosts come from
        self._saving: asyncio.Task | None = None
        self._cache_file = _CacheFileState()
        self.listening: list[str] = []
        self._container: tuple[Endpoint, socket.socket, socket.socket] | None = None  # bound, not yet read
        self._container_side = containerside.NOTHING
        self._container_udp: clientwire_io.ContainerUdpListener | None = None
        self._container_tcp: clientwire_io.TcpListener | None = None

    # --- life cycle

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        _raise_fd_limit()
        # Both on the loop, on purpose: nothing is served before the
        # listeners below, so nothing waits, and the names of hosts_files are
        # answered from the first query.  Restoring the cache is CPU (100-190 ms
        # for 10,000 entries, every one checked), which a worker thread would
        # run holding the interpreter lock all the same.
        self._load_cache()
        self._apply_files(*self._files_reader()())
        bound = self._given_listeners or [
            (ep, *clientwire_io.bind_listener(ep, free=ep == self.cfg.container_listen)) for ep in self.cfg.endpoints]
        # The sockets hand their input straight to the driver, and it hands them the core's effects.
        feed, core = self.driver.feed, self.core
        self._upstream_io = upstreamwire_io.UpstreamSockets(
            self._loop, functools.partial(feed, core.upstream_reply), functools.partial(feed, core.upstream_failed))
        self.driver.start(self._loop, {Respond: clientwire_io.reply, SendUpstream: self._upstream_io.send,
                                       CloseUpstream: self._upstream_io.close})
        for endpoint, udp, tcp in bound:
            if endpoint == self.cfg.container_listen:
                # Read once the container side is known (container_side_changed): until then its queries wait
                # in the sockets' queues, neither refused nor admitted blind.
                self._container = (endpoint, udp, tcp)
                continue
            self._udp.append(clientwire_io.UdpListener(self._loop, udp, core, self.driver.pump))
            listener = clientwire_io.TcpListener(tcp, functools.partial(feed, core.query_received), self._tcp_pool)
            await listener.start()
            self._tcp.append(listener)
            self.listening.append(str(endpoint))
        self._watch = self._loop.create_task(self._watch_files(WATCH_INTERVAL), name="bootres-resolver-files")
        if self.core.refresh_at_start(self.driver.now()):
            self.driver.pump()

    async def settled(self) -> None:
        """Return once the start's refreshes have settled (``Resolver.settled_at``): at most ``boot_stale_after``.

        Called before READY: the first clients after it get a fresh answer
        from a nameserver that is up, or yesterday's at once when none is.
        """
        until = self.core.settled_at(self.driver.now())
        if until is None:
            return
        settling = self._loop.create_future()

        def check() -> None:
            if not settling.done() and self.core.settled_at(self.driver.now()) is None:
                settling.set_result(None)

        self.driver.after = check  # only while this waits: the answers to queries after READY never call it
        try:
            await asyncio.wait_for(settling, until - self.driver.now())
        except asyncio.TimeoutError:
            pass  # silent for boot_stale_after: settled by definition
        finally:
            self.driver.after = None

    async def container_side_changed(self, side: containerside.ContainerSide) -> None:
        """Where the container address may be asked from now (the daemon's ContainerAddress, from netlink).

        The first call starts reading the container address's sockets.
        """
        self._container_side = side
        if self._container is None:
            return
        endpoint, udp, tcp = self._container
        self._container = None
        self._container_udp = clientwire_io.ContainerUdpListener(self._loop, udp, self._side,
                                                                 self.core.udp_query_received, self.driver.pump)
        self._container_tcp = clientwire_io.TcpListener(tcp, functools.partial(self.driver.feed, self.core.query_received),
                                                        self._tcp_pool, side=self._side)
        await self._container_tcp.start()

    def _side(self) -> containerside.ContainerSide:
        return self._container_side

    async def stop(self) -> None:
        # Every client still waiting is answered (stale or SERVFAIL) while its socket is open: none left to time out.
        self.driver.feed(self.core.shutdown)
        for listener in self._udp:
            listener.close()
        for tcp in self._tcp:
            await tcp.close()
        self._udp, self._tcp = [], []
        if self._container_udp is not None:
            self._container_udp.close()
            await self._container_tcp.close()
            self._container_udp = self._container_tcp = None
        if self._container is not None:
            for sock in self._container[1:]:
                sock.close()
            self._container = None
        self.driver.stop()
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.wait([self._watch])
        if self._upstream_io is not None:
            self._upstream_io.close_all()
        if self._saving is not None:  # a periodic save began before the listeners closed: the final one follows it
            await self._save(0.0)
        await self._save(0.0)  # nobody left to answer: no pause

    async def save_cache(self) -> None:
        """Write the cache to ``cache_file`` atomically; a failure is logged, never raised.

        One save at a time: a call while one runs waits for that one.
        """
        await self._save(SAVE_PAUSE)

    async def _save(self, pause: float) -> None:
        if self._saving is None:
            if not self.cfg.cache_file:
                return
            self._saving = asyncio.get_running_loop().create_task(self._save_cache(self.cfg.cache_file, pause),
                                                                  name="bootres-cache-save")
        # Shielded: a caller cancelled (the daemon's ticker, at stop) must not
        # cancel the save, whose write would go on in its thread while the
        # next save began another.
        await asyncio.shield(self._saving)

    async def _save_cache(self, path: str, pause: float) -> None:
        state = self._cache_file
        try:
            # Taking the key list is the one pass over the whole cache, 1.4-2.3
            # ms for 10,000 entries here (an OrderedDict finds each node by its
            # hash): a turn of its own, before the first step.
            snapshot = Snapshot(self.core.cache, cachefile_io.read_clock())
            done = False
            while not done:
                await asyncio.sleep(pause)  # the loop answers what arrived meanwhile
                done = snapshot.step(self.driver.now(), SAVE_STEP)
            data = snapshot.finish()
            try:
                # write, fsync, rename and the directory's fsync release the
                # interpreter lock: the loop keeps answering meanwhile.
                written, leftover = await asyncio.to_thread(_save_cache_file, path, data, snapshot.count)
            except OSError as exc:
                reason = f"cannot save: {exc.strerror or exc}"
                if state.problem != reason:  # one line per fault, not one per save
                    self.log.warning("cache file %s: %s", path, reason)
                state.problem = reason
                return
            if written:
                state.saved_entries = snapshot.count
                state.saved_at = time.time()
                if state.problem is not None and leftover is None:
                    self.log.info("cache file %s saved (%d answers), which clears: %s", path, snapshot.count,
                                  state.problem)
                    state.problem = None
            if leftover is not None and state.problem != leftover:
                self.log.warning("cache file %s: %s", path, leftover)
                state.problem = leftover
        finally:
            self._saving = None

    def prepare_reconfigure(self, cfg: ResolverConfig) -> Callable[[], None]:
        """Everything ``cfg`` needs, built now; the returned step makes it the one in use (the daemon's reload).

        The cache and the history of upstreams that stay are kept.  ``listen``
        changes need a restart (the daemon's reload compares it).
        """
        static = self._static_files(cfg)
        selection = self._select(cfg)
        settings = resolver_settings(cfg, selection.routing)
        limits = self._tcp_limits(cfg)

        def commit() -> None:
            self.cfg = cfg
            self.sources.set_static(static)
            self._use(selection, settings)
            self.core.cache.resize(cfg.cache_size, cfg.stale_max_age)
            self._tcp_pool.limits = limits
            if self._watch is not None:  # the files of the new configuration: looked at now, not at the next interval
                self._watch.cancel()
                self._watch = self._loop.create_task(self._watch_files(0.0), name="bootres-resolver-files")

        return commit

    # --- questions from the daemon

    def status(self) -> report.ResolverStatus:
        return self.core.status()._replace(
            listen=tuple(self.listening),
            tcp=self._tcp_pool.status(),
            search_only=tuple(self.selection.search_only),
            # a static list stands by while a dynamic source has nameservers
            sources=self.sources.status(used=set(self.selection.used)),
            container_listen=self._container_status(),
            cache_file=self._cache_file_status(),
        )

    def _cache_file_status(self) -> report.CacheFileStatus | None:
        from bootres.core import report  # here: the status model is not needed before the first answer

        state = self._cache_file
        if not self.cfg.cache_file:
            return None
        return report.CacheFileStatus(
            path=self.cfg.cache_file, loaded=state.loaded,
            age_trusted=state.age.trusted if state.age else None, age_note=state.age.reason if state.age else None,
            damaged=state.damaged, refused=state.refused, saved_entries=state.saved_entries,
            saved_at=iso_time(state.saved_at) if state.saved_at is not None else None,
            problem=state.problem)

    def _container_status(self) -> report.ContainerListenStatus | None:
        from bootres.core import report  # here: the status model is not needed before the first answer

        endpoint = self.cfg.container_listen
        if endpoint is None:
            return None
        side = self._container_side
        return report.ContainerListenStatus(
            address=str(endpoint.host),
            answering=self._container_udp is not None,
            on_lo=side.address_on_lo,
            container_networks=tuple(str(network) for network in side.networks),
            # Queries from beyond the container side: refused unless ``allow`` lists their source.
            outside=(self._container_udp.outside + self._container_tcp.outside) if self._container_udp else 0,
        )

    def set_rewritten_resolv_conf(self, record: sources.SourceRecord | None) -> None:
        """Nameservers another program wrote into /etc/resolv.conf: one more source (the daemon's guard)."""
        self.sources.set_rewritten(record)
        self._apply_sources()

    def healthy(self) -> bool:
        return self.core.upstreams.healthy()

    def routes_changed(self, _snapshot) -> None:
        """A NetlinkWatch subscriber: links, addresses or default routes changed (a DHCP lease, say)."""
        self.core.routes_changed()
        self.driver.pump()

    async def query(self, name: str, rdtype: str = "A") -> dict:
        """Resolve like a client would; the dict is what ``bootres query`` prints."""
        import dns.message  # only here: see bootres/core/clientwire.py on startup time
        import dns.rcode

        started = self.driver.now()
        try:
            wire = clientwire.query_wire(name, rdtype)
        except Exception as exc:  # dnspython's own errors for a bad name or type: tell the asker
            return {"answered": False, "name": name, "type": rdtype, "error": str(exc)}
        asker = _Asker(self._loop)
        self.driver.feed(self.core.query_received, wire, asker, None, True)
        effect: Respond = await asker.future
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
            "ms": round((self.driver.now() - started) * 1000, 3),
        }
        if not result["answered"] and effect.reason:
            result["reason"] = effect.reason  # why SERVFAIL (or the upstreams' error) was answered
        return result

    async def lookup_pinned(self, name: str) -> list[str] | None:
        """A and AAAA of a pinned name from the upstreams alone (``Resolver.ask_upstreams``); None when not answered.

        Never from the hosts files, which hold bootres's own block, nor from
        the cache.  [] when the upstreams say the name has no address
        (NXDOMAIN, or neither A nor AAAA); None unless both questions got
        an answer, so a pin never loses a family to one lost reply.
        """
        import dns.exception  # only here: see bootres/core/clientwire.py on startup time
        import dns.message
        import dns.rcode
        import dns.rdatatype

        async def ask(rdtype: str) -> list[str] | None:
            asker = _Asker(self._loop)
            self.driver.feed(self.core.ask_upstreams, clientwire.query_wire(name, rdtype), asker)
            effect: Respond = await asker.future
            try:
                reply = dns.message.from_wire(effect.wire)
            except dns.exception.DNSException:  # an error reply from the stub's own guard
                return None
            if reply.rcode() not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
                return None
            wanted = dns.rdatatype.from_text(rdtype)
            return [rdata.address for rrset in reply.answer if rrset.rdtype == wanted for rdata in rrset]

        v4, v6 = await asyncio.gather(ask("A"), ask("AAAA"))
        return None if v4 is None or v6 is None else v4 + v6

    # --- files

    def _load_cache(self) -> None:
        """Last run's answers from ``cache_file``, as stale answers; every fault is a status problem until a save."""
        path, state = self.cfg.cache_file, self._cache_file
        if not path:
            return
        state.problem = cachefile_io.remove_leftovers(path)
        if state.problem:
            self.log.warning("cache file %s: %s", path, state.problem)
        try:
            found = cachefile_io.read(path, self.cfg.cache_size)
        except OSError as exc:
            state.problem = f"ignored: {exc.strerror or exc}"
            self.log.warning("cache file %s %s", path, state.problem)
            return
        if found is None:
            self.log.info("no cache file at %s yet; starting with an empty cache", path)
            return
        try:
            contents = cachefile.read(*found)
        except CacheFileError as exc:
            state.problem = f"ignored: {exc}"
            self.log.warning("cache file %s %s", path, state.problem)
            return
        verdict = cachefile.judge_age(contents.saved, cachefile_io.read_clock())
        state.loaded = self.core.cache.load(contents.records, self.driver.now(), verdict.age)
        state.age, state.damaged, state.refused = verdict, contents.damaged, contents.refused
        damage = ""
        if contents.damaged or contents.refused:
            damage = f"{contents.damaged} damaged region(s) and {contents.refused} refused record(s) lost at load"
            state.problem = f"damaged: {damage}"
        # One line for the load, saying what was decided: WARNING when a clock is certainly wrong or the file
        # was damaged, INFO when the age is merely unconfirmed (the usual boot before NTP has answered).
        age = (f"{verdict.age:.0f} s old ({verdict.reason})" if verdict.trusted else
               f"age not trusted ({verdict.reason}): kept as stale answers as if saved now")
        self.log.log(logging.WARNING if verdict.warning or damage else logging.INFO,
                     "cache file %s: %d answers loaded of %d records (format %d), %s%s; served stale until refreshed",
                     path, state.loaded, len(contents.records), contents.version, age, f"; {damage}" if damage else "")

    async def _watch_files(self, delay: float) -> None:
        """Look at hosts_files and the upstream sources after ``delay``, then every WATCH_INTERVAL."""
        while True:
            await asyncio.sleep(delay)
            delay = WATCH_INTERVAL
            try:
                self._apply_files(*await asyncio.to_thread(self._files_reader()))
            except Exception:  # our bug: say so, look again at the next interval
                self.log.exception("looking at hosts_files and the upstream sources failed")

    def _files_reader(self) -> Callable[[], tuple[tuple[str, ...], dict[str, FileRead], Scan]]:
        """The file system half of a look at the files (stat, read what changed), bound to copies: for a worker thread."""
        paths = tuple(self.cfg.hosts_files)
        seen = {path: read.signature for path, read in self._hosts.items()}
        scan = self.sources.scanner()
        return lambda: (paths, read_changed(paths, seen), scan())

    def _apply_files(self, paths: tuple[str, ...], hosts: dict[str, FileRead], found: Scan) -> None:
        """The loop's half: parse what changed; new hosts files go to the core, changed sources are selected again."""
        if hosts or paths != self._hosts_paths:
            # Every one of ``paths`` is known: read now, or unchanged since it was.
            self._hosts = {path: hosts.get(path) or self._hosts[path] for path in paths}
            self._hosts_paths = paths
            entries = []
            for path in paths:
                data = self._hosts[path].data
                if data is not None:  # a missing or unreadable hosts file answers nothing
                    # Bytes decoded, no universal newlines: a lone \r is a blank to glibc, not a line break.
                    entries += parse_hosts(data.decode("utf-8", "replace"))
            self.core.set_hosts(HostsDB(entries))
        if self.sources.apply(found):
            self._apply_sources()

    # --- upstream sources

    def _static_files(self, cfg: ResolverConfig) -> list[tuple[str, str]]:
        static = [(cfg.upstreams_file, f"file {cfg.upstreams_file}")] if cfg.upstreams_file else []
        if self.original_resolv_conf:
            static.append((self.original_resolv_conf, f"the resolv.conf found at takeover ({self.original_resolv_conf})"))
        return static

    def _select(self, cfg: ResolverConfig) -> sources.Selection:
        records = self.sources.records()
        if self._suffixes is None and any("." in domain for record in records for domain in record.search):
            self._suffixes = self._public_suffixes()  # read once, when a search domain first needs judging
        selection = sources.select(
            records,
            tuple(u.sockaddr for u in cfg.upstreams),
            tuple((domain, u.sockaddr) for domain, u in cfg.upstream_domains),
            frozenset(e.sockaddr for e in cfg.endpoints),
            self._suffixes or publicsuffix.BUILT_IN,
        )
        return selection

    def _apply_sources(self) -> None:
        """Use what the sources say now; the cache, in-flight queries and upstream statistics stay."""
        selection = self._select(self.cfg)
        self._use(selection, resolver_settings(self.cfg, selection.routing))

    def _use(self, selection: sources.Selection, settings: ResolverSettings) -> None:
        self._warn(selection)
        changed = selection.routing != self.selection.routing
        self.selection = selection
        self.core.reconfigure(settings)
        if changed:
            self.log.info("upstreams now: %s", describe(selection) or "none")
        if self._on_upstreams is not None:
            self._on_upstreams(selection)

    def _warn(self, selection: sources.Selection) -> None:
        # Said once: the same loopback nameserver would otherwise be reported at every change.
        for warning in selection.warnings:
            if warning not in self._warned:
                self.log.warning("%s", warning)
        self._warned = set(selection.warnings)

    def _public_suffixes(self) -> publicsuffix.PublicSuffixes:
        """Debian's Public Suffix List, or the built-in minimum (TLDs only) without the publicsuffix package."""
        try:
            data = read_bytes(PUBLIC_SUFFIX_LIST, publicsuffix.MAX_LIST_BYTES)
        except OSError as exc:
            data = None
            self.log.warning("cannot read %s (%s): only top-level domains count as public suffixes",
                             PUBLIC_SUFFIX_LIST, exc.strerror or exc)
        if data is None:
            return publicsuffix.BUILT_IN
        return publicsuffix.PublicSuffixes.parse(data.decode("utf-8", "replace"))

    @staticmethod
    def _tcp_limits(cfg: ResolverConfig) -> clientwire_io.TcpLimits:
        return clientwire_io.TcpLimits(cfg.tcp_connections, cfg.tcp_idle_timeout, cfg.tcp_output_queue)


class _Asker:
    """The handle of the service's own question (``query``, ``lookup_pinned``): its reply completes a future."""

    __slots__ = ("future",)

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.future = loop.create_future()

    def reply(self, effect: Respond) -> None:
        if not self.future.done():
            self.future.set_result(effect)


def describe(selection: sources.Selection) -> str:
    """One log line's worth: each upstream with its source, then each split-DNS route."""
    routing = selection.routing
    parts = [f"{u.label} ({u.source})" for u in routing.upstreams if u.address in routing.default]
    labels = {u.address: u.label for u in routing.upstreams}
    parts += [f"{r.domain} -> {' '.join(labels.get(a, str(a)) for a in r.upstreams) or 'none'}"
              for r in routing.routes]
    return ", ".join(parts)


def _save_cache_file(path: str, data: bytes, count: int) -> tuple[bool, str | None]:
    """On a worker thread: write ``data`` unless it holds no answer and a file is there (which it must never empty).

    Whether it was written, and why a leftover temporary file could not be removed.
    """
    if count == 0 and cachefile_io.is_regular(path):
        return False, cachefile_io.remove_leftovers(path)
    cachefile_io.write(path, data)
    return True, cachefile_io.remove_leftovers(path)


class _CacheFileState:
    """What status says about ``cache_file``: the load's findings and the last save's."""

    def __init__(self) -> None:
        self.loaded = 0
        self.age: cachefile.AgeVerdict | None = None
        self.damaged = self.refused = 0
        self.saved_entries: int | None = None
        self.saved_at: float | None = None
        self.problem: str | None = None  # a fault status reports until a save succeeds


def _raise_fd_limit() -> None:
    """One socket per upstream query: lift the soft descriptor limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass
