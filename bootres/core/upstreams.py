"""Upstream health: smoothed RTT, up/down/unknown, probing with backoff, the hedge delay.

An upstream is *unknown* until it answers or times out, *up* while it
answers, and *down* after DOWN_AFTER timeouts in a row of queries sent
after its last valid reply, or at once when the
kernel says nothing there can answer (``unreachable``: no route to it, or
ICMP port unreachable).  A down upstream is
left out of races (it costs no waiting) except for a probe now and then,
PROBE_FIRST after it went down, doubling up to PROBE_MAX; the first reply
from it, probe or not, makes it *up* again.

When every upstream of a group is down, what the group sends no longer
follows client demand (RFC 9520; a site multiplies it by every host): one
probe at a time for the whole group, each upstream at most once every
ALL_DOWN_PROBE_INTERVAL (plus up to a quarter of it at random, so hosts that
lost their nameservers together do not probe in step), asked once without
retransmission, and only while clients are asking: nothing at all while
nobody asks.  With two nameservers each is probed every two seconds or so
while clients ask, so one that comes back is noticed within about that.

Apart from that health, an upstream is *silent* while a query to it has been
open for ``stale_answer_after`` with no valid reply from it since that query
left: the one signal serve-stale needs that three timeouts in a row give too
late.  It changes nothing about routing; the next valid reply clears it.

RTT smoothing and the retransmission timeout follow RFC 6298 (SRTT, RTTVAR,
RTO = SRTT + 4 * RTTVAR), with a floor suited to DNS rather than TCP.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bootres.core.effects import INFO, WARNING, Log
from bootres.core.routing import Routing

if TYPE_CHECKING:
    from bootres.core import report

DOWN_AFTER = 3
PROBE_FIRST = 1.0
PROBE_MAX = 30.0
INITIAL_RTO = 0.5  # before the first RTT sample
MIN_RTO = 0.2
MAX_RTO = 2.0
# strategy = hedge, hedge_delay = auto: wait SRTT + 4 * RTTVAR for the best
# upstream before asking the next, within these bounds.
HEDGE_MIN = 0.01
HEDGE_MAX = 0.1
HEDGE_UNKNOWN = 0.05
# Every upstream of a group down: each is probed at most once this often (plus a random quarter of it).
ALL_DOWN_PROBE_INTERVAL = 1.0
PROBE_JITTER = 0.25


class Upstream:
    def __init__(self, address: tuple[str, int], label: str, source: str = "", domains: tuple[str, ...] = ()):
        self.address = address
        self.label = label
        self.source = source  # where bootres learned it, and the routing domains it serves: for status
        self.domains = domains
        self.state = "unknown"
        self.srtt: float | None = None
        self.rttvar = 0.0
        self.queries = 0
        self.wins = 0
        self.timeouts = 0
        self.bad_replies = 0
        self.consecutive_timeouts = 0
        self.next_probe_at = 0.0
        self.probe_interval = PROBE_FIRST
        self.all_down_probe_at = 0.0  # its next probe while its whole group is down
        self.down_by_network = False  # down because the kernel said so: a route change may end it
        self.outstanding = 0  # queries to it still open
        self.replied_at = float("-inf")  # its last valid reply
        # When the first query still open, unanswered since, left; None while
        # nothing is open (a query lost long ago says nothing about now).
        self.unanswered_since: float | None = None

    def rto(self) -> float:
        if self.srtt is None:
            return INITIAL_RTO
        return min(max(self.srtt + 4 * self.rttvar, MIN_RTO), MAX_RTO)

    def auto_hedge_delay(self) -> float:
        if self.srtt is None:
            return HEDGE_UNKNOWN
        return min(max(self.srtt + 4 * self.rttvar, HEDGE_MIN), HEDGE_MAX)

    def asked(self, since: float) -> None:
        """A query left for it; ``since``: when it was first asked this question (retries keep the first time)."""
        self.queries += 1
        self.outstanding += 1
        if self.unanswered_since is None:
            self.unanswered_since = max(since, self.replied_at)

    def closed(self) -> None:
        """One of its queries is done: answered, timed out or refused."""
        self.outstanding -= 1
        if not self.outstanding:
            self.unanswered_since = None

    def answered(self, rtt: float, now: float) -> list[Log]:
        """A valid reply arrived at ``now``, ``rtt`` seconds after the query left."""
        self.replied_at = now
        self.unanswered_since = None
        if self.srtt is None or self.state == "down":  # back from the dead: the old estimate is history
            self.srtt, self.rttvar = rtt, rtt / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - rtt)
            self.srtt = 0.875 * self.srtt + 0.125 * rtt
        self.consecutive_timeouts = 0
        was = self.state
        self.state = "up"
        self.down_by_network = False
        self.probe_interval = PROBE_FIRST
        if was == "down":
            return [Log(INFO, f"upstream {self.label} is up again (answered in {rtt * 1000:.1f} ms)")]
        return []

    def timed_out(self, now: float, why: str = "timed out", sent_at: float = float("inf")) -> list[Log]:
        """A query to it, sent at ``sent_at``, got no usable reply: silence, or a failure that may pass (a lost
        datagram, no fd).

        Only a query sent after its last valid reply counts towards *down*: one
        that left before says nothing about now (it answered since), whether
        a burst of queries overran it while it kept answering others, or it
        was dead and is already back when the queries of its dead time
        expire (which made it flap down and up).
        """
        self.timeouts += 1
        if sent_at < self.replied_at:
            return []
        self.consecutive_timeouts += 1
        if self.state != "down" and self.consecutive_timeouts >= DOWN_AFTER:
            return self._down(now, f"{self.consecutive_timeouts} queries in a row {why}")
        return []

    def unreachable(self, now: float, why: str) -> list[Log]:
        """The kernel said a query to it cannot be answered: no route, or ICMP port unreachable.

        Down at once.  Silence may be one lost datagram, hence three
        timeouts; this is the network itself saying nothing is there now,
        and waiting for two more queries to hear it again would only make
        clients wait (for a stale answer, at boot, before any route
        exists).  Probes bring it back as from any other down state.
        """
        self.timeouts += 1
        self.consecutive_timeouts += 1
        if self.state != "down":
            return self._down(now, why, by_network=True)
        return []

    def routes_changed(self) -> list[Log]:
        """The kernel's addresses or routes changed: down because unreachable, it is worth asking again now.

        At boot bootres starts before DHCP has given the host a route: every
        upstream is unreachable and down at once.  The route arriving is what
        ends that, not the next probe seconds later; if it still cannot be
        reached, its next query says so at once (the send fails), so
        trying costs nothing.  Down from timeouts stays down: a route
        change says nothing about a server that does not answer.
        """
        if self.state != "down" or not self.down_by_network:
            return []
        self.state = "unknown"
        self.down_by_network = False
        self.consecutive_timeouts = 0
        self.probe_interval = PROBE_FIRST
        return [Log(INFO, f"upstream {self.label}: the routes changed, asking it again")]

    def _down(self, now: float, why: str, by_network: bool = False) -> list[Log]:
        self.state = "down"
        self.down_by_network = by_network
        self.probe_interval = PROBE_FIRST
        self.next_probe_at = now + self.probe_interval
        self.all_down_probe_at = now + ALL_DOWN_PROBE_INTERVAL  # what just failed counts as its last probe
        return [Log(WARNING, f"upstream {self.label} is down ({why})")]

    def status(self) -> report.UpstreamStatus:
        from bootres.core import report  # here: the status model is not needed before the first answer

        return report.UpstreamStatus(
            address=self.label,
            state=self.state,
            srtt_ms=None if self.srtt is None else round(self.srtt * 1000, 3),
            queries=self.queries,
            wins=self.wins,
            timeouts=self.timeouts,
            bad_replies=self.bad_replies,
            source=self.source,
            domains=tuple(self.domains),
        )


class Upstreams:
    """A group of upstreams asked for the same names, in configuration order.

    An upstream in several groups is one ``Upstream`` object shared by them:
    its health is the server's, whichever names it was asked for.
    """

    def __init__(self, upstreams: list[Upstream]):
        self.all = upstreams

    def silent_from(self, after: float) -> float | None:
        """From when every upstream of the group is down or silent for ``after`` seconds, unless one replies first.

        None while some upstream that is not down has no unanswered query
        open (or when there is no upstream at all); minus infinity when every
        one is down.
        """
        if not self.all:
            return None
        times = [float("-inf")]
        for u in self.all:
            if u.state != "down":
                if u.unanswered_since is None:
                    return None
                times.append(u.unanswered_since + after)
        return max(times)

    def probe_due(self, now: float) -> bool:
        """Whether some down upstream is due to be asked again."""
        if not self.healthy():
            return self._all_down_probe(now) is not None
        return any(u.state == "down" and u.next_probe_at <= now for u in self.all)

    def healthy(self) -> bool:
        return any(u.state != "down" for u in self.all)

    def plan(self, now: float, jitter: float = 0.0) -> tuple[list[Upstream], list[Upstream]]:
        """Who to ask for one question: (the ones that race or hedge, probes sent at once).

        The best smoothed RTT comes first; unmeasured ones follow in
        configuration order.  A probe is a down upstream whose
        backoff has run out; asking it reschedules the next probe.  With
        every upstream down there is no one to race, and at most the one
        probe the group's budget allows (``jitter``, in [0, 1), spreads the
        next one).
        """
        alive = [u for u in self.all if u.state != "down"]
        if not alive:
            probe = self._all_down_probe(now)
            if probe is None:
                return [], []
            probe.all_down_probe_at = now + ALL_DOWN_PROBE_INTERVAL * (1 + PROBE_JITTER * jitter)
            return [], [probe]
        probes = []
        for u in self.all:
            if u.state == "down" and u.next_probe_at <= now:
                probes.append(u)
                u.probe_interval = min(u.probe_interval * 2, PROBE_MAX)
                u.next_probe_at = now + u.probe_interval
        # Best first in both strategies: in a race the order only decides whose
        # query leaves first, which is still tens of microseconds of socket setup.
        alive.sort(key=lambda u: (u.srtt is None, u.srtt or 0.0))
        return alive, probes

    def _all_down_probe(self, now: float) -> Upstream | None:
        """The upstream to probe now while every one is down: none while a query to one is open, else the one
        waiting longest among those due."""
        if any(u.outstanding for u in self.all):
            return None
        due = [u for u in self.all if u.all_down_probe_at <= now]
        return min(due, key=lambda u: u.all_down_probe_at) if due else None


class UpstreamPool:
    """Every upstream once (its ``Upstream``: health, RTT, counters) and the groups ``routing`` makes of them.

    ``use(routing)`` keeps the ``Upstream`` of every address that stays and
    every unchanged group, so a new lease or a reload never forgets what was
    measured; races in flight keep the group objects they were given.
    """

    def __init__(self, routing: Routing):
        self.routing = routing
        self._by_address: dict[tuple[str, int], Upstream] = {}
        self._groups: dict[tuple, Upstreams] = {}  # a group's addresses -> its Upstreams
        self.all = Upstreams([])  # every upstream once, in routing order: for status and health
        self.use(routing)

    def use(self, routing: Routing) -> None:
        by_address = {}
        for spec in routing.upstreams:
            upstream = self._by_address.get(spec.address) or Upstream(spec.address, spec.label)
            upstream.label, upstream.source, upstream.domains = spec.label, spec.source, spec.domains
            by_address[spec.address] = upstream
        groups = {}
        for addresses in (routing.default, *(route.upstreams for route in routing.routes)):
            if addresses not in groups:
                # Same addresses, same Upstream objects: the old group object stays valid.
                groups[addresses] = self._groups.get(addresses) or Upstreams([by_address[a] for a in addresses])
        self.routing, self._by_address, self._groups = routing, by_address, groups
        self.all = Upstreams(list(by_address.values()))

    def group_of(self, name: bytes) -> Upstreams:
        """The group a name (wire form, lower case) is routed to."""
        return self._groups[self.routing.group_of(name)]

    def groups(self) -> list[Upstreams]:
        return list(self._groups.values())

    def routes_status(self) -> tuple[report.RouteStatus, ...]:
        """The SPEC's ``resolver.routes``: each routing domain and the labels of its upstreams."""
        from bootres.core import report  # here: the status model is not needed before the first answer

        return tuple(report.RouteStatus(route.domain, tuple(self._by_address[a].label for a in route.upstreams))
                     for route in self.routing.routes)
