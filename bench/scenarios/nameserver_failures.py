"""Scenarios 0-4, the nameservers healthy, dead, dying, slow: every resolver, one lookup at a time.

Scenario 4 runs three times, by how the nameservers die: silent (4), ICMP
port unreachable (4r), ICMP network unreachable (4u).

Each lookup is a name no one asked before (a cache miss) unless said
otherwise.  Daemons get 10 unmeasured warm-up lookups after the failure is
in place (what a host that has been up a little while has seen); glibc has
no state to warm.  Every cell is bounded by a lookup count and a time
budget, because glibc and the stock forwarders spend seconds per lookup
here; a cell cut short says so.
"""

from __future__ import annotations

import contextlib
import functools
import time

from bench.scenarios.measure import Budget, Cell, Client
from bench.scenarios.peers import Resolver
from bench.scenarios.report import fmt_ms
from bench.scenarios.world import World

LOOKUPS = 200
GLIBC_LOOKUPS = 5          # 5 s each with a dead first server
WARMUP = 10
CELL_SECONDS = 30.0
STALE_NAMES = 50
ALL_DEAD_SECONDS = 20.0    # the forwarders take 10 s (two glibc tries) per failed lookup
RETURN_WAIT_S = 10.0       # how long scenario 2 waits for a returned nameserver to be asked again


@contextlib.contextmanager
def running(world: World, resolver: Resolver, labels: list[str], dead: tuple[str, ...] = ()):
    """The resolver started against `labels` (those in `dead` black-holed first), with a client."""
    world.reset()
    for label in dead:
        world.upstreams[label].kill()
    resolver.start(world, world.addresses(*labels))
    try:
        with Client(world, resolver.nameservers) as client:
            yield client
    finally:
        resolver.stop()


def warm_up(client: Client, resolver: Resolver, tag: str) -> list[float]:
    if not resolver.is_daemon:
        return []
    return [client.lookup(f"{tag}-warm{i}.test")["ms"] for i in range(WARMUP)]


def planned_lookups(resolver: Resolver, lookups: int) -> int:
    return lookups if resolver.is_daemon else min(lookups, GLIBC_LOOKUPS)


def lookup_misses(cell: Cell, client: Client, names, budget: Budget) -> None:
    for name in names:
        if not budget.take():
            return
        cell.record(client.lookup(name))


def distinct_misses(world: World, resolver: Resolver, cell: Cell, tag: str, dead: tuple[str, ...]) -> None:
    """Upstreams ns1 and ns2, the ``dead`` ones silent; ``cell.planned`` names nobody asked before."""
    with running(world, resolver, ["ns1", "ns2"], dead=dead) as client:
        cell.extra["warmup_ms"] = warm_up(client, resolver, tag)
        before = world.queries()
        lookup_misses(cell, client, (f"{tag}-{i}.test" for i in range(cell.planned)),
                      Budget(cell.planned, CELL_SECONDS))
        cell.upstream_queries = world.queries() - before


def all_healthy(world: World, resolver: Resolver, cell: Cell, tag: str, lookups: int = LOOKUPS) -> None:
    """0. The baseline: every nameserver up; 200 distinct misses."""
    cell.planned = lookups
    distinct_misses(world, resolver, cell, tag, dead=())


def dead_first(world: World, resolver: Resolver, cell: Cell, tag: str, lookups: int = LOOKUPS) -> None:
    """1. The first nameserver is a silent black hole; 200 distinct misses."""
    cell.planned = planned_lookups(resolver, lookups)
    distinct_misses(world, resolver, cell, tag, dead=("ns1",))


def dies_mid_run(world: World, resolver: Resolver, cell: Cell, tag: str, lookups: int = LOOKUPS) -> None:
    """2. The first nameserver dies after 20 lookups and comes back after half of them."""
    cell.planned = lookups
    ns1 = world.upstreams["ns1"]
    budget = Budget(lookups, CELL_SECONDS)
    names = iter(f"{tag}-{i}.test" for i in range(lookups))
    with running(world, resolver, ["ns1", "ns2"]) as client:
        cell.extra["warmup_ms"] = warm_up(client, resolver, tag)
        before = world.queries()
        lookup_misses(cell, client, (next(names) for _ in range(20)), budget)
        ns1.kill()
        killed_at = len(cell.ms)
        lookup_misses(cell, client, (next(names) for _ in range(lookups // 2)), budget)
        ns1.revive()
        revived, revived_at, ns1_before = time.monotonic(), len(cell.ms), ns1.queries()
        lookup_misses(cell, client, names, budget)
        cell.upstream_queries = world.queries() - before
        after_death = cell.ms[killed_at:revived_at]
        if after_death:
            cell.notes.append(f"while dead: max {fmt_ms(max(after_death))} ms")
        if revived_at < len(cell.ms):
            back = queried_again_after(client, ns1, ns1_before, revived, tag)
            cell.extra.update(killed_after=killed_at, revived_after=revived_at, ns1_queried_again_after_s=back)
            if back is None:
                cell.notes.append(f"ns1 not queried again within {RETURN_WAIT_S:.0f} s of its return")
            else:
                cell.notes.append(f"ns1 queried again {back:.2f} s after its return")


def queried_again_after(client: Client, upstream, count_before: int, since: float, tag: str) -> float | None:
    """Seconds from `since` until `upstream` gets a query again, looking up a new name every 50 ms; None if never."""
    deadline = since + RETURN_WAIT_S
    for i in range(int(RETURN_WAIT_S / 0.05)):  # bounded by the count and the deadline
        if upstream.queries() > count_before:
            return time.monotonic() - since
        if time.monotonic() >= deadline:
            break
        client.lookup(f"{tag}-back{i}.test")
        time.sleep(0.05)
    return None


def dead_slow_fast(world: World, resolver: Resolver, cell: Cell, tag: str, lookups: int = LOOKUPS) -> None:
    """3. Upstreams in this order: dead, slow (+50 ms), fast; 200 distinct misses."""
    cell.planned = planned_lookups(resolver, lookups)
    with running(world, resolver, ["ns1", "slow", "ns2"], dead=("ns1",)) as client:
        cell.extra["warmup_ms"] = warm_up(client, resolver, tag)
        before = world.queries()
        lookup_misses(cell, client, (f"{tag}-{i}.test" for i in range(cell.planned)),
                      Budget(cell.planned, CELL_SECONDS))
        cell.upstream_queries = world.queries() - before


def all_dead_stale(world: World, resolver: Resolver, cell: Cell, tag: str, lookups: int = STALE_NAMES,
                   how: str = "silent") -> None:
    """4. Every nameserver dead (``how``: world.DEATHS); the names were looked up before and their TTL (1 s) ran out.

    Each measured lookup counts as a miss for the queries-per-miss figure
    (the entry is expired, so it has to go upstream or be served stale).
    """
    cell.planned = lookups if resolver.is_daemon else 1
    names = [f"{tag}-{i}.stale.test" for i in range(cell.planned)]
    with running(world, resolver, ["ns1", "ns2"]) as client:
        for name in names:
            client.lookup(name)
        time.sleep(2)  # past the 1 s TTL
        for upstream in world.upstreams.values():
            upstream.kill(how)
        before = world.queries()
        lookup_misses(cell, client, names, Budget(cell.planned, ALL_DEAD_SECONDS))
        cell.upstream_queries = world.queries() - before
        if cell.ms:
            cell.notes.append(f"first lookup {fmt_ms(cell.ms[0])} ms")


SCENARIOS = [
    ("0", "all healthy (baseline)", all_healthy),
    ("1", "dead first", dead_first),
    ("2", "first dies mid-run", dies_mid_run),
    ("3", "dead + slow + fast", dead_slow_fast),
    ("4", "all dead, expired names", all_dead_stale),
    ("4r", "all dead (port unreachable), expired names", functools.partial(all_dead_stale, how="refused")),
    ("4u", "all dead (network unreachable), expired names", functools.partial(all_dead_stale, how="unreachable")),
]
