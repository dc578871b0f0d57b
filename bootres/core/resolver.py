"""The resolver's front door: queries, upstream replies and the clock in; replies and sends out.

For each query, in order: the ``allow`` list (others get REFUSED), the
parse ladder of ``clientwire.parse_query``, hosts files, the cache, then the
upstreams of the question's group (split DNS, see ``routing``): a miss is
raced within that group only.  Identical questions in flight share one
``Race``; their askers wait on a ``Pending``, whose states (asking, stale
due, stale sent, settled) are the table of ``pending``.  Serve-stale (RFC 8767): an
expired answer goes out with TTL 30 when no upstream answered within
``stale_answer_after``, at once while every upstream of its group is down or
silent (see ``upstreams``), and instead of a failure when the race fails; the
race keeps running in the background and refreshes the cache.  Until some
upstream has answered since start, that timer is ``boot_stale_after``
instead: everything cached then came from ``cache_file`` (yesterday's
answers), and a nameserver that is up answers well within it.  The moment
every upstream of a group becomes down or silent, every client still waiting
for a stale answer from that group gets it.  While that lasts, a stale hit
starts a refresh only when the group's probe backoff says one is due.  A dead
VPN server thus never makes public names stale, nor the other way round.

A good neighbour when nameservers fail (RFC 9520): while every upstream of
a group is *down*, nobody waits for them: a miss gets its stale answer, or
SERVFAIL, at once, and what goes upstream is the group's probe budget (one
probe at a time, each upstream at most about once a second, only while
clients ask: ``upstreams``), however many clients ask.  A name that got no
answer is remembered as failed (``failures``): for a second when nothing
answered, longer when the upstreams answered it with an error again and
again; meanwhile its askers get the stale answer or SERVFAIL without a
query going out.

Refresh-ahead (``prefetch``, unbound's rule): a cache hit in the last tenth
of an answer's TTL starts one background race for it, so a name clients
keep asking is fresh again before it expires and they never wait for an
upstream; a name nobody asks again is never refreshed.  Refreshes go
through the same race, hedge and health as any miss, only while fewer than
half of ``max_inflight`` races are in flight (client misses keep the other
half) and at most ``prefetch_rate`` a second; none while every upstream of
the name's group is down or silent (the stale logic already handles it).

Each upstream is one ``Upstream`` (health, SRTT, counters) shared by every
group that lists it and kept across ``reconfigure`` while it stays.

``ask_upstreams`` is the service's own door for pinned names: the upstreams
only, never the hosts files (bootres's own block is one) or the cache, and
a failure rather than a stale answer.

UDP queries go to ``fast_answer`` first: a cache hit is answered there,
the measured hot path (bytes in, bytes out, no dnspython, no effects); a
miss goes on to ``query_received`` with the client handle the shell makes
only then (the listen sockets queue misses behind hits, issue 24, and
``query_shed`` answers those beyond their backlog; the container address
uses ``udp_query_received``, both steps in one).  TCP queries and the service's own
go to ``query_received``; what it decides comes back as effects from ``drain``.

Every input (those two, ``ask_upstreams``, ``upstream_reply``,
``upstream_failed`` and each item of ``timer_fired``) is guarded: an
exception is our bug, never the network's, so it is counted
(``internal_errors``), logged with its traceback
(once per bug), and every client waiting on the race it touched is answered
SERVFAIL at once and the race stopped, rather than left to wait on state the
bug may have broken.  A bug in ``fast_answer`` hands the query to the slow
path, which drains the log line with its own effects.
"""

from __future__ import annotations

import heapq
import ipaddress
import itertools
import sys
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from bootres.core import clientwire, dnswire, hostsdb, prefetch, upstreamwire
from bootres.core.cache import Cache
from bootres.core.clientwire import ClientQuery
from bootres.core.dnswire import Answer
from bootres.core.failures import Failures
from bootres.core.effects import INFO, WARNING, CloseUpstream, Log, Respond, SendUpstream
from bootres.core.hostsdb import LOCAL_NEGATIVE_TTL, LOCAL_TTL, HostsDB
from bootres.core.pending import (
    ASKING,
    SETTLE,
    SETTLED,
    STALE_ARMED,
    STALE_EXPIRED,
    STALE_SENT,
    STALE_SERVED,
    Pending,
    Waiter,
)
from bootres.core.prefetch import Prefetch
from bootres.core.race import Outcome, Race, RaceStep
from bootres.core.routing import NamesUnder, Routing
from bootres.core.upstreams import UpstreamPool, Upstreams

if TYPE_CHECKING:
    from bootres.core import report

_CLASS_NAMES = {3: "CH", 4: "HS", 254: "NONE", 255: "ANY"}
_INTERNAL = "internal error (see the log)"  # the reason given with the SERVFAIL of a bug of ours
_ALL_DOWN = "all upstreams down"
# Extended DNS Errors (RFC 8914) for an EDNS client: a stale answer says so.
_EDE_STALE = dnswire.ede_option(dnswire.EDE_STALE_ANSWER)
_EDE_STALE_NXDOMAIN = dnswire.ede_option(dnswire.EDE_STALE_NXDOMAIN)
_BUG_SITES_MAX = 256  # distinct bugs (type and call path) remembered as logged
_ACL_MEMO_MAX = 4096  # distinct client addresses whose verdict we remember
_SHAPES_MAX = 4096  # remembered query shapes (see fast_answer): the hot set; cleared wholesale when full
_SILENCE_CHECK = object()  # timer heap item: every upstream of some group may have become silent by then
_REFRESH = object()  # timer heap item: start the refreshes ahead asked for (core/prefetch.py)
_START_SCAN = 256  # newest cached names looked at to find one to refresh per upstream group at start


@dataclass(frozen=True)
class ResolverSettings:
    """What the core takes from [resolver] (``bootres.settings.resolver_settings``: defaults are config.SCHEMA's).

    ``routing`` says which upstreams serve which names.
    """

    routing: Routing
    strategy: str
    hedge_delay: float | None
    timeout: float
    serve_stale: bool
    stale_answer_after: float
    boot_stale_after: float  # stale_answer_after until an upstream has answered since start
    allow: tuple
    max_inflight: int
    prefetch: bool
    prefetch_rate: int  # refreshes started per second at most (a bucket of one second's worth)
    trust_ad: bool  # pass the upstreams' AD bit on (docs/security.md)


class Resolver:
    def __init__(self, settings: ResolverSettings, cache: Cache, random_id: Callable[[], int], *,
                 strict: bool = False):
        """``strict``: a bug of ours raises out of the input that hit it instead of becoming SERVFAIL (the core
        tests run so, as h11 tells its own errors from the peer's; the service never does)."""
        self.settings = settings
        self._strict = strict
        self.cache = cache
        self.pool = UpstreamPool(settings.routing)
        self.hosts = HostsDB()
        self._random_id = random_id
        self._tokens = itertools.count(1)
        self._routes: dict[int, Race] = {}  # upstream query token -> its race (from the races' effects)
        self._askers: dict[Race, Pending] = {}  # a race -> the clients waiting on it, until it settles
        self._armed: dict[Race, float] = {}  # a race -> the deadline the timer heap holds for it
        self._pending: dict[bytes, Pending] = {}
        self._timers: list[tuple[float, int, object]] = []
        self._timer_seq = itertools.count()
        # Pendings whose clients wait for a stale answer, by identity: after a
        # reconfigure, a detached pending and a new one may share a key.
        self._stale_waits: dict[Pending, None] = {}
        self._silence_armed: float | None = None  # the _SILENCE_CHECK time on the heap
        self._heard = False  # some upstream has replied since start: the boot timer is over
        self._start_groups: list[Upstreams] = []  # the groups refresh_at_start asked
        self._acl: dict[str, bool] = {}
        # query bytes after the ID -> (key, answer, reply after the ID, good until): see fast_answer
        self._shapes: dict[bytes, tuple] = {}
        self._out: list = []
        self._bug_sites: set[tuple] = set()  # every bug logged: its type and (file, line) of each frame
        self._prefetch = Prefetch(settings.prefetch_rate)
        self._failures = Failures()
        self.queries = self.hits = self.misses = self.stale_served = 0
        self.refused = self.malformed = self.servfail = self.internal_errors = 0

    @property
    def upstreams(self) -> Upstreams:
        """Every upstream once, in routing order: for status and health."""
        return self.pool.all

    # --- the measured hot path

    def udp_query_received(self, data: bytes, host: str | None, now: float, reach: Callable,
                           token: Any) -> bytes | None:
        """A UDP query: the reply for a cache hit, to send at once; None for a miss, taken the slow way here.

        ``reach(token, host)`` makes the miss's client handle (its reply
        comes back later in a ``Respond``); hits never pay for one.
        """
        reply = self.fast_answer(data, host, now)
        if reply is None:
            self.query_received(data, reach(token, host), host, False, now)
        return reply

    def fast_answer(self, data: bytes, host: str | None, now: float) -> bytes | None:
        """The reply to a plain UDP query answered from fresh cache, or None for the slow path.

        ``host`` None: a client the shell vouches for (the container address's
        own check), as in ``query_received``.

        Clients ask the same question in the same bytes again and again (same
        flags, spelling and EDNS; only the ID differs), so the reply after
        the ID is remembered per query shape for the rest of the second and
        a repeat costs one dictionary lookup.  The full check (``peek_query``)
        ran when the shape was first seen; the entry is used only while the
        cache still holds that very answer, at the same age, and before its
        refresh window opens (its expiry without ``prefetch``); a hit in the
        window is answered here too, not remembered, and asks for the
        refresh (``_want_refresh``).
        """
        try:
            if host is not None and self._acl.get(host) is not True:
                return None
            shape = data[2:]
            seen = self._shapes.get(shape)
            if seen is not None:
                key, answer, tail, until = seen
                if now < until and self.cache.holds(key, answer):
                    self.queries += 1
                    self.hits += 1
                    self.cache.touch(key)
                    return data[:2] + tail
            peek = clientwire.peek_query(data)
            if peek is None:
                return None
            key, end, payload, do = peek
            answer = self.cache.fresh(key, now)
            if answer is None:
                return None
            self.queries += 1
            self.hits += 1
            age = int(now - answer.stored_at)
            wire = clientwire.render(answer, data, data[12:end], payload, do, answer.body_at(age), False,
                                 self.settings.trust_ad)
            refresh_at = self._prefetch.refresh_at(answer, self.settings.prefetch)
            if now >= refresh_at:
                self._want_refresh(key, now)  # not remembered: each hit in the window asks (see _prefetch)
                return wire
            if len(self._shapes) >= _SHAPES_MAX:
                self._shapes.clear()
            # Good while the age stays the same whole second (the clock only
            # moves on) and before the refresh window opens.
            self._shapes[shape] = (key, answer, wire[2:], min(answer.stored_at + age + 1, refresh_at))
            return wire
        except Exception:  # our bug: the slow path, guarded too, answers the query
            self._internal_error("answering from the cache", ())
            return None

    # --- inputs

    def query_received(self, data: bytes, client: Any, host: str | None, tcp: bool, now: float) -> None:
        """A query from ``host`` (None: the service itself, e.g. ``bootres query``, or a client the shell vouches
        for: a container or this host on the container address)."""
        if clientwire.is_readiness_probe(data) and (host is None or self.allows(host)):
            # The daemon's own probe before READY (shell/daemon.py): answered as any CH question is, but not
            # a client's query, so not in the counters an operator reads.
            self._out.append(Respond(client, clientwire.error_reply(data[:4], data[12:], dnswire.REFUSED), "local"))
            return
        self.queries += 1
        waiter = before = None
        try:
            if host is not None and not self.allows(host):
                self.refused += 1
                parsed = clientwire.parse_query(data)
                if isinstance(parsed, ClientQuery):
                    # No Extended DNS Error here: the reply must stay no larger than the query (no amplification).
                    reply = clientwire.error_reply(parsed.head, parsed.question, dnswire.REFUSED, parsed.payload)
                    self._out.append(Respond(client, reply, "local"))
                return
            parsed = self._client_question(data, client)
            if parsed is None:
                return
            waiter = Waiter(client, parsed, tcp)
            before = self._pending.get(parsed.key)
            self._answer(waiter, now)
        except Exception:  # our bug, not the client's: answer SERVFAIL, say so, keep serving
            self._question_failed(("reading a query", "answering a query"), data, client, waiter, before)

    def ask_upstreams(self, data: bytes, client: Any, now: float) -> None:
        """A question of the service's own that only the upstreams may answer (pinned names, core/stubfiles.py).

        The hosts files are skipped: bootres's own block is one of them, and
        a pin answered from it would never follow DNS.  So is the cache: a
        fresh entry would hold a moved name for up to its TTL, and a stale
        one may be last boot's.  The question joins an identical one in
        flight or starts a race; a race that fails answers SERVFAIL with
        its reason, never a stale answer.  The answer fills the cache as any
        race's does.  Clients asking the same name meanwhile are served as
        usual, a stale answer after ``stale_answer_after`` included.
        """
        waiter = before = None
        try:
            parsed = clientwire.parse_query(data)
            if not isinstance(parsed, ClientQuery):  # our own query_wire made it: a bug of ours
                raise ValueError(f"ask_upstreams was given no query it can ask: {data[:64]!r}")
            waiter = Waiter(client, parsed, True, upstream_only=True)
            key = parsed.key
            before = self._pending.get(key)
            if before is not None:
                before.waiters.append(waiter)
                return
            settings = self.settings
            if len(self._pending) >= settings.max_inflight:
                self._respond_servfail(waiter, "too many queries in flight (max_inflight)", dnswire.EDE_OTHER)
                return
            group = self._group_of(key)
            stale = self.cache.stale(key, now) if settings.serve_stale else None
            self._start(key, group, now + self._stale_after() if stale is not None else None, now, waiter)
        except Exception:
            self._question_failed(("reading a question of our own", "asking the upstreams"), data, client, waiter,
                                  before)

    def query_shed(self, data: bytes, client: Any, host: str | None, now: float) -> None:
        """A UDP query that arrived while its listener's backlog of misses is full: answered at once, never queued.

        Its stale answer if there is one (a fresh one counts), else SERVFAIL:
        no upstream query, no wait (shell/clientwire_io.py, ``MISS_BACKLOG``).
        A query from outside ``allow`` is dropped: strangers get nothing from
        an overloaded resolver.
        """
        self.queries += 1
        try:
            if host is not None and not self.allows(host):
                self.refused += 1
                return
            parsed = self._client_question(data, client)
            if parsed is None:
                return
            self._respond_stale_or_servfail(Waiter(client, parsed, False), now, "overloaded: too many queries waiting")
        except Exception:  # our bug: SERVFAIL, say so, keep serving
            self._question_failed(("reading a query", "answering a query"), data, client, None, None)

    def shutdown(self, now: float) -> None:
        """Stopping: every client still waiting gets its stale answer, else SERVFAIL, now (and one line says how many).

        The races are dropped unfinished; their sockets close with the service.
        """
        answered = 0
        for pending in list(self._askers.values()):
            pending.fire(SETTLE)
            for waiter in pending.waiters:
                if not waiter.answered:
                    answered += 1
                    self._respond_stale_or_servfail(waiter, now, "shutting down")
        self._askers.clear()
        self._pending.clear()
        self._stale_waits.clear()
        if answered:
            self._out.append(Log(INFO, f"stopping: {answered} clients still waiting answered (stale or SERVFAIL)"))

    def _client_question(self, data: bytes, client: Any) -> ClientQuery | None:
        """``data`` read as a client's question; None, counted as malformed and answered if it deserves one, if not."""
        parsed = clientwire.parse_query(data)
        if isinstance(parsed, ClientQuery):
            return parsed
        self.malformed += 1
        if parsed is not None:
            self._out.append(Respond(client, parsed, "local"))
        return None

    def _question_failed(self, doing: tuple[str, str], data: bytes, client: Any, waiter: Waiter | None,
                         before: Pending | None) -> None:
        """Our bug while taking a question (``doing``: while reading it, after): SERVFAIL to whoever it touched."""
        if waiter is None:  # while reading it: answer from the header alone
            self._internal_error(doing[0], ())
            if len(data) >= 12 and not data[2] & 0x80:
                reply = clientwire.error_reply(data[:4], b"", dnswire.SERVFAIL)
                self._out.append(Respond(client, reply, "local", None, _INTERNAL))
            return
        # The race it joined or started (a background refresh included) may be
        # half set up: it and whoever waits on it go too.
        pending = self._pending.get(waiter.query.key)
        joined = pending is not None and (pending is not before or any(w is waiter for w in pending.waiters))
        self._internal_error(doing[1], (pending,) if joined else (), waiter)

    def upstream_reply(self, token: int, data: bytes, source: tuple | None, now: float) -> None:
        race = self._routes.get(token)
        if race is not None:
            pending = self._askers.get(race)  # before _after settles it
            try:
                step = race.reply(token, data, source, now)
                if step.heard:
                    self._heard = True
                self._after(race, step, now)
            except Exception:
                self._internal_error("handling an upstream reply", (pending,), race=race)

    def upstream_failed(self, token: int, why: str, hard: bool, now: float) -> None:
        """A query could not be sent or failed; ``hard``: the kernel says its upstream is unreachable (see race)."""
        race = self._routes.get(token)
        if race is not None:
            pending = self._askers.get(race)
            try:
                self._after(race, race.failed(token, why, hard, now), now)
            except Exception:
                self._internal_error("handling an upstream failure", (pending,), race=race)

    def timer_fired(self, now: float) -> None:
        while self._timers and self._timers[0][0] <= now:
            when, _, item = heapq.heappop(self._timers)
            # Each item guarded on its own: one bug does not hold up the others' timers.
            if isinstance(item, Race):
                pending = self._askers.get(item)
                try:
                    if self._armed.get(item) == when:
                        del self._armed[item]
                    self._after(item, item.timer(now), now)
                except Exception:
                    self._internal_error("on a race's timer", (pending,), race=item)
            elif item is _SILENCE_CHECK:
                waiting = tuple(self._stale_waits)
                try:
                    if self._silence_armed == when:
                        self._silence_armed = None
                    self._check_silence(now)
                except Exception:
                    self._internal_error("checking for silent upstreams", waiting)
            elif item is _REFRESH:
                for key in self._prefetch.take_due():
                    try:
                        self._refresh_ahead(key, now)
                    except Exception:
                        self._internal_error("starting a refresh ahead", (self._pending.get(key),))
            elif item in self._stale_waits and item.stale_at == when:  # else served, or re-armed for later
                try:
                    self._serve_stale_to_waiters(item, now)
                except Exception:
                    self._internal_error("serving a stale answer", (item,))

    def deadline(self) -> float | None:
        return self._timers[0][0] if self._timers else None

    def drain(self) -> list:
        out, self._out = self._out, []
        return out

    def routes_changed(self) -> None:
        """The kernel's addresses or routes changed (netlink): upstreams down as unreachable may be reachable now,
        and names that failed for want of a reply may get one."""
        self._failures.forget_unanswered()
        for upstream in self.upstreams.all:
            self._out.extend(upstream.routes_changed())

    def set_hosts(self, hosts: HostsDB) -> None:
        """New hosts files: their names are answered from them from now on, not from the cache."""
        self.hosts = hosts
        self.cache.drop_names(hosts.names())
        self._shapes.clear()

    def reconfigure(self, settings: ResolverSettings) -> None:
        """New settings; the cache and the upstreams that stay (their objects, health and counters) are kept.

        Races in flight finish with the upstreams they had; new questions use
        the new groups.  Names whose routing domain came or went were answered
        by another view of the namespace: their cached answers are dropped,
        and their races in flight no longer take new askers nor fill the cache.
        """
        old = self.settings.routing
        self.settings = settings
        self._acl.clear()
        if settings.routing == old:
            return
        self.pool.use(settings.routing)
        moved = {r.domain for r in old.routes} ^ {r.domain for r in settings.routing.routes}
        if moved:
            names = NamesUnder(moved)
            for key in [key for key in self._pending if key[:-5] in names]:
                del self._pending[key]
            self.cache.drop_names(names)
            self._shapes.clear()

    # --- answering

    def _answer(self, waiter: Waiter, now: float) -> None:
        query = waiter.query
        qclass = query.qclass
        if qclass != dnswire.IN:
            # Never forwarded: CH version.bind, id.server and hostname.bind would
            # tell whoever asks which server and software answer upstream, and
            # neither the upstreams nor the hosts files serve any other class.
            # REFUSED, as unbound with hide-identity/hide-version and nsd say.
            self.refused += 1
            name = _CLASS_NAMES.get(qclass, f"CLASS{qclass}")
            self._respond_error(waiter, dnswire.REFUSED, f"class {name} is not served", dnswire.EDE_NOT_SUPPORTED)
            return
        records = self.hosts.lookup(query.key[:-5], query.qtype)
        if records is not None:
            answer = hostsdb.local_answer(records, LOCAL_TTL, LOCAL_NEGATIVE_TTL)
            self._respond(waiter, answer, answer.body_at(0), "hosts")
            return
        answer = self.cache.fresh(query.key, now)
        if answer is not None:
            self.hits += 1
            self._respond(waiter, answer, answer.body_at(int(now - answer.stored_at)), "cache")
            if now >= self._prefetch.refresh_at(answer, self.settings.prefetch):
                self._want_refresh(query.key, now)
            return
        self.misses += 1
        settings = self.settings
        stale = self.cache.stale(query.key, now) if settings.serve_stale else None
        pending = self._pending.get(query.key)
        if pending is None:
            failed = self._failures.reason(query.key, now)
            if failed is not None:  # it failed a moment ago (RFC 9520): the upstreams are not asked again yet
                if stale is not None:
                    self._respond_stale(waiter, stale)
                else:
                    self._respond_servfail(waiter, failed, dnswire.EDE_CACHED_ERROR)
                return
        group = pending.group if pending is not None else self._group_of(query.key)
        if group.all and not group.healthy():
            # Every upstream of the group is down: nobody waits for them, and
            # what is sent follows the group's probe budget, not the clients.
            if stale is not None:
                self._respond_stale(waiter, stale)
            else:
                self._respond_servfail(waiter, _ALL_DOWN, dnswire.EDE_NO_REACHABLE_AUTHORITY)
            if pending is None and group.probe_due(now) and len(self._pending) < settings.max_inflight:
                self._start(query.key, group, None, now, None)
            return
        if pending is not None:
            if stale is not None and (pending.state == STALE_SENT or self._all_silent(pending.group, now)):
                self._respond_stale(waiter, stale)
            else:
                pending.waiters.append(waiter)
                if stale is not None and pending.state == ASKING:
                    # A race started with no stale answer to wait for (a
                    # refresh begun while the answer was fresh): this client
                    # still gets one after its own timer.
                    self._arm_stale(pending, now + self._stale_after())
            return
        if stale is not None and self._all_silent(group, now):
            self._respond_stale(waiter, stale)
            # Refresh in the background only when a probe is due (RFC 8767's
            # stale-refresh-time, driven by the probe backoff): asking dead
            # upstreams once per stale hit would only burn sockets, and a
            # silent one already has a query open, which notices its return.
            if group.probe_due(now) and len(self._pending) < settings.max_inflight:
                self._start(query.key, group, None, now, None)
            return
        if len(self._pending) >= settings.max_inflight:
            if stale is not None:
                self._respond_stale(waiter, stale)
            else:
                self._respond_servfail(waiter, "too many queries in flight (max_inflight)", dnswire.EDE_OTHER)
            return
        stale_at = now + self._stale_after() if stale is not None else None
        self._start(query.key, group, stale_at, now, waiter)

    def refresh_at_start(self, now: float) -> int:
        """Right after start with last run's cache: refresh the newest cached name of each group; how many.

        This asks every upstream at once, before any client does: a
        nameserver that is up answers, ending the boot timer, and the name
        most likely asked first is fresh again; one that is silent has been
        silent for ``boot_stale_after`` by the time the first client asks
        (see ``settled_at``), so yesterday's answers go out at once.  One
        query per group, never more: after a power cut every host of a site
        restarts at the same moment.
        """
        if self._heard:
            return 0
        wanted = {group for group in self.pool.groups() if group.all}
        for key in self.cache.newest(_START_SCAN):
            if not wanted:
                break
            group = self._group_of(key)
            if group in wanted and key not in self._pending:
                wanted.discard(group)
                self._start_groups.append(group)
                self._start(key, group, None, now, None, refresh=True)
        return len(self._start_groups)

    def settled_at(self, now: float) -> float | None:
        """When the start's refreshes will have settled at the latest, or None when they have.

        Settled: an upstream has answered (fresh answers win from now on), or
        every upstream asked is down (the kernel said so) or silent for
        ``boot_stale_after`` (stale answers go out at once).  The service
        signals READY only then, so the first clients after READY wait for
        neither (at most ``boot_stale_after`` later, once per start).
        """
        if self._heard:
            return None
        latest = None
        for group in self._start_groups:
            since = group.silent_from(self.settings.boot_stale_after)
            if since is not None and since > now:
                latest = since if latest is None else max(latest, since)
        return latest

    def _want_refresh(self, key: bytes, now: float) -> None:
        """A hit in ``key``'s refresh window: refresh it from the timer, once this answer is out and its client ran.

        The race's setup is not the client's to wait for.  The shell re-reads
        ``deadline`` after every batch of fast answers, so the timer is armed.
        """
        if key not in self._pending and self._prefetch.want(key):
            heapq.heappush(self._timers, (now + prefetch.DELAY, next(self._timer_seq), _REFRESH))

    def _refresh_ahead(self, key: bytes, now: float) -> None:
        """A hit in the refresh window asked for it: refresh ``key`` in the background, within the bounds.

        One refresh at a time per name: while it is in flight, the name's
        race is pending.  A refresh that fails leaves the answer as it was;
        the next hit in the window tries again, within the same bounds.
        """
        if key in self._pending:
            return
        group = self._group_of(key)
        if self._all_silent(group, now):
            return  # nothing would answer; at expiry the stale logic probes on the backoff
        if self._prefetch.admit(now, self.settings.prefetch_rate, len(self._pending), self.settings.max_inflight):
            self._start(key, group, None, now, None, refresh=True)

    def _start(self, key: bytes, group: Upstreams, stale_at: float | None, now: float, waiter: Waiter | None,
               refresh: bool = False) -> None:
        """Race ``key`` within ``group`` for ``waiter``.

        ``waiter`` None: a race in the background, either a refresh ahead of
        expiry (``refresh``) or a refresh whose asker got a stale answer.
        """
        settings = self.settings
        race = Race(
            upstreamwire.upstream_query(key),
            group.plan(now, self._random_id() / 0x10000),
            hedge=settings.strategy == "hedge",
            hedge_delay=settings.hedge_delay,
            timeout=settings.timeout,
            now=now,
            new_token=self._tokens.__next__,
            random_id=self._random_id,
        )
        # No waiter and no refresh: its asker got the stale answer at once, and so do later ones.
        pending = Pending(key, race, group, ASKING if waiter is not None or refresh else STALE_SENT)
        self._pending[key] = pending
        if waiter is not None:
            pending.waiters.append(waiter)
        self._askers[race] = pending
        if stale_at is not None:
            self._arm_stale(pending, stale_at)
        self._after(race, race.start(now), now)  # settles at once when the group has no upstream to ask

    def _arm_stale(self, pending: Pending, stale_at: float) -> None:
        """At ``stale_at`` the clients waiting on ``pending`` get the stale answer, unless answered first."""
        pending.fire(STALE_ARMED, stale_at)
        self._stale_waits[pending] = None
        heapq.heappush(self._timers, (stale_at, next(self._timer_seq), pending))

    def _after(self, race: Race, step: RaceStep, now: float) -> None:
        """Take what an input to ``race`` decided: its effects, its outcome (settled here), its next deadline."""
        self._take(race, step.effects)
        pending = self._askers.pop(race, None) if step.outcome is not None else None
        if pending is not None:
            # Not there: reconfigure detached it, its name now belongs to another view.
            current = self._pending.get(pending.key) is pending
            if current:
                del self._pending[pending.key]
            self._stale_waits.pop(pending, None)
            pending.fire(SETTLE)
            self._settle(pending, step.outcome, now, current)
        when = race.deadline()
        if when is None:
            self._armed.pop(race, None)
        elif when != self._armed.get(race):
            self._armed[race] = when
            heapq.heappush(self._timers, (when, next(self._timer_seq), race))
        self._check_silence(now)  # the race asked, heard or gave up on an upstream

    def _take(self, race: Race, effects: list) -> None:
        """A race's effects go out; its queries are routed back to it until it closes them."""
        for effect in effects:
            if type(effect) is SendUpstream:
                self._routes[effect.token] = race
            elif type(effect) is CloseUpstream:
                self._routes.pop(effect.token, None)
        self._out += effects

    def _group_of(self, key: bytes) -> Upstreams:
        """The upstream group a cache key's name is routed to (the key is the name's wire form and 5 bytes more)."""
        return self.pool.group_of(key[:-5])

    def _stale_after(self) -> float:
        """RFC 8767's client response timer: how long a client waits before a stale answer beats none.

        Until an upstream has answered since start, every stale answer is
        one of ``cache_file``'s (an upstream's answer is the only other way
        in) and no upstream has shown it is alive: ``boot_stale_after``,
        long enough for a nameserver that is up to win with a fresh answer
        (a healthy LAN one answers within 10 ms), short enough that a boot
        with none gets yesterday's answers at once.  The same timer makes
        upstreams *silent*, so after the first such wait the next names
        are answered at once.
        """
        return self.settings.stale_answer_after if self._heard else self.settings.boot_stale_after

    def _all_silent(self, group: Upstreams, now: float) -> bool:
        """Whether every upstream of ``group`` is down or silent: stale answers go out at once."""
        since = group.silent_from(self._stale_after())
        return since is not None and since <= now

    def _check_silence(self, now: float) -> None:
        """Answer clients waiting for a stale answer once their group is all down or silent, or wake up then.

        Their own ``stale_at`` may be later: a client that asked just before
        the last upstream of its group fell silent would otherwise wait its
        full ``stale_answer_after`` for what later clients get at once.
        """
        if not self._stale_waits:
            return
        after = self._stale_after()
        silent_from: dict[Upstreams, float | None] = {}
        wake = None
        for pending in list(self._stale_waits):
            group = pending.group
            if group not in silent_from:
                silent_from[group] = group.silent_from(after)
            since = silent_from[group]
            if since is None:
                continue
            if since <= now:
                self._serve_stale_to_waiters(pending, now)
            elif wake is None or since < wake:
                wake = since
        if wake is not None and wake != self._silence_armed:
            # A reply may clear the silence first; the check then finds nothing to do.
            self._silence_armed = wake
            heapq.heappush(self._timers, (wake, next(self._timer_seq), _SILENCE_CHECK))

    def _settle(self, pending: Pending, outcome: Outcome, now: float, current: bool) -> None:
        """Answer the race's askers; ``current``: its answer may go into the cache."""
        answer = outcome.reply.answer if outcome.reply is not None else None
        if outcome.kind == "answer":
            if current:
                self.cache.put(pending.key, answer, now)
                self._failures.answered(pending.key)
            for waiter in pending.waiters:
                self._respond(waiter, answer, answer.body_at(0), "upstream", outcome.upstream.label)
            return
        if outcome.reply is not None and outcome.reply.rcode > 15:
            # An extended RCODE (BADVERS, BADCOOKIE, ...) is about the upstream's
            # EDNS exchange with us, which is hop by hop (RFC 6891 section
            # 6.1.1), not about the client's question; and cut to the header's
            # 4 bits it would say NOERROR or YXRRSET: the client gets SERVFAIL.
            answer = None
        stale = self.cache.stale(pending.key, now) if self.settings.serve_stale else None
        reason, code = self._failure_reason(pending, outcome)
        if current:
            self._failures.failed(pending.key, reason, now, upstreams_said=answer is not None)
        # The upstreams' own error (every one answered SERVFAIL, say) goes out as they said it, with the reason.
        said = dnswire.ede_option(dnswire.EDE_OTHER, reason) if answer is not None else b""
        for waiter in pending.waiters:
            if stale is not None and not waiter.upstream_only:
                self._respond_stale(waiter, stale)
            elif answer is not None:
                self._respond(waiter, answer, answer.body_at(0), "upstream", None, reason, said)
            else:
                self._respond_servfail(waiter, reason, code)

    def _failure_reason(self, pending: Pending, outcome: Outcome) -> tuple[str, int]:
        """Why no answer came, for ``bootres query``, and the Extended DNS Error code that says it (RFC 8914)."""
        if not pending.group.all:
            route = self.settings.routing.route_of(pending.key[:-5])
            return ("no upstream configured" + (f" for {route.domain}" if route is not None else ""),
                    dnswire.EDE_NO_REACHABLE_AUTHORITY)
        if not pending.group.healthy():
            return _ALL_DOWN, dnswire.EDE_NO_REACHABLE_AUTHORITY
        if outcome.reason is None:
            return "timeout", dnswire.EDE_NO_REACHABLE_AUTHORITY
        # Every upstream failed without a reply: unreachable, refused connections, errors sending.
        return outcome.reason, dnswire.EDE_NETWORK_ERROR

    def _serve_stale_to_waiters(self, pending: Pending, now: float) -> None:
        del self._stale_waits[pending]
        stale = self.cache.stale(pending.key, now)
        if stale is None:
            pending.fire(STALE_EXPIRED)
            return
        pending.fire(STALE_SERVED)
        for waiter in pending.waiters:
            if not waiter.upstream_only:
                self._respond_stale(waiter, stale)
        pending.waiters = [waiter for waiter in pending.waiters if waiter.upstream_only]

    def _respond(self, waiter: Waiter, answer: Answer, body: bytes, source: str, upstream: str | None = None,
                 reason: str | None = None, ede: bytes = b"") -> None:
        q = waiter.query
        wire = clientwire.render(answer, q.head, q.question, q.payload, q.do, body, waiter.tcp, self.settings.trust_ad,
                                 ede)
        waiter.answered = True
        self._out.append(Respond(waiter.client, wire, source, upstream, reason))

    def _respond_stale(self, waiter: Waiter, stale: Answer) -> None:
        self.stale_served += 1
        ede = _EDE_STALE_NXDOMAIN if stale.layout.rcode == dnswire.NXDOMAIN else _EDE_STALE
        self._respond(waiter, stale, stale.body_stale(), "stale", ede=ede)

    def _respond_stale_or_servfail(self, waiter: Waiter, now: float, reason: str) -> None:
        """Its stale answer if there is one (not for a question only the upstreams may answer), else SERVFAIL."""
        stale = self.cache.stale(waiter.query.key, now) if self.settings.serve_stale else None
        if stale is not None and not waiter.upstream_only:
            self._respond_stale(waiter, stale)
        else:
            self._respond_servfail(waiter, reason, dnswire.EDE_OTHER)

    def _respond_servfail(self, waiter: Waiter, reason: str, code: int) -> None:
        self.servfail += 1
        self._respond_error(waiter, dnswire.SERVFAIL, reason, code)

    def _respond_error(self, waiter: Waiter, rcode: int, reason: str, code: int) -> None:
        """No records: ``rcode``, and for an EDNS client the Extended DNS Error ``code`` with ``reason`` as its text."""
        q = waiter.query
        waiter.answered = True
        ede = dnswire.ede_option(code, reason) if q.payload else b""
        self._out.append(Respond(waiter.client, clientwire.error_reply(q.head, q.question, rcode, q.payload, ede),
                                 "local", None, reason))

    def _internal_error(self, doing: str, pendings, waiter: Waiter | None = None, race: Race | None = None) -> None:
        """Our bug, not the network's: count it, log it, and answer SERVFAIL to whoever its work was for.

        Called from an ``except`` block.  The traceback is logged the first
        time a bug is raised along a given call path; repeats only count in
        ``internal_errors`` (a bug a packet can trigger must not also be a
        way to flood the log).  Every race of ``pendings`` (and ``race``) is
        stopped, its queries closed, and its pending forgotten: the exception
        may have left them half changed (``_after`` takes a race's askers off
        before settling them, so the callers name them from before).  Its
        clients not yet answered, and ``waiter``, get SERVFAIL.  Strict: the exception goes on up.
        """
        if self._strict:
            raise  # noqa: PLE0704 (called from an except block, whose exception this re-raises)
        self.internal_errors += 1
        exc = sys.exc_info()[1]
        site = (type(exc), *((frame.f_code.co_filename, line) for frame, line in traceback.walk_tb(exc.__traceback__)))
        if site not in self._bug_sites:
            if len(self._bug_sites) < _BUG_SITES_MAX:
                self._bug_sites.add(site)
            self._out.append(Log(WARNING, f"internal error {doing} (logged once, repeats only counted in "
                                          f"internal_errors): {traceback.format_exc().rstrip()}"))
        races = {} if race is None else {race: None}
        waiters = [] if waiter is None else [waiter]
        for pending in pendings:
            if pending is None:
                continue
            if self._pending.get(pending.key) is pending:
                del self._pending[pending.key]
            self._stale_waits.pop(pending, None)
            pending.state = SETTLED  # not fire(): the bug may have left any state, and this is the way out
            races[pending.race] = None
            waiters += pending.waiters
            pending.waiters = []
        for each in races:
            self._askers.pop(each, None)
            self._armed.pop(each, None)
            self._take(each, each.abort().effects)
        for each in waiters:
            if not each.answered:
                self._respond_servfail(each, _INTERNAL, dnswire.EDE_OTHER)

    def allows(self, host: str) -> bool:
        """``host`` is in ``allow`` (memoised: the hot path asks for every query)."""
        verdict = self._acl.get(host)
        if verdict is None:
            try:
                address = ipaddress.ip_address(host.split("%", 1)[0])
            except ValueError:
                verdict = False
            else:
                if address.version == 6 and address.ipv4_mapped:
                    address = address.ipv4_mapped
                verdict = any(address in net for net in self.settings.allow)
            if len(self._acl) >= _ACL_MEMO_MAX:
                self._acl.clear()
            self._acl[host] = verdict
        return verdict

    # --- status

    def status(self) -> report.ResolverStatus:
        """The core's part of ``resolver`` in status; the service adds listeners, sources and the container side."""
        from bootres.core import report  # here: the status model is not needed before the first answer

        return report.ResolverStatus(
            queries=self.queries,
            cache=report.CacheStatus(
                entries=len(self.cache),
                hits=self.hits,
                misses=self.misses,
                stale_served=self.stale_served,
                refreshes=self._prefetch.refreshes,
                refreshes_skipped=self._prefetch.skipped,
            ),
            upstreams=tuple(u.status() for u in self.upstreams.all),
            routes=self.pool.routes_status(),
            inflight=len(self._pending),
            refused=self.refused,
            malformed=self.malformed,
            servfail=self.servfail,
            bad_replies=sum(u.bad_replies for u in self.upstreams.all),
            internal_errors=self.internal_errors,
        )
