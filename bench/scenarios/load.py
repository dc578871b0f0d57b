"""Scenario 7: the first nameserver dies under 1000 queries/s of mixed hits and misses.

Four queries in five ask one of 100 names cached beforehand, the fifth a
name never asked (200 misses/s).  ns1 dies 8 s into a 20 s run.  The table's
latency columns are the misses'; the hits' figures are in the notes.
"""

from __future__ import annotations

import time

from bench.scenarios.loadgen import Load
from bench.scenarios.measure import Cell, percentile
from bench.scenarios.peers import Resolver
from bench.scenarios.report import fmt_ms
from bench.scenarios.world import World

QPS = 1000
SECONDS = 20
DIES_AT_S = 8
HOT = 100
MISS_EVERY = 5


def names(tag: str) -> tuple[list[str], list[str]]:
    hot = [f"{tag}-hot{i}.test" for i in range(HOT)]
    mixed = [f"{tag}-m{i}.test" if i % MISS_EVERY == 0 else hot[i % HOT] for i in range(QPS * SECONDS)]
    return hot, mixed


def is_miss(name: str) -> bool:
    return "-m" in name  # misses are TAG-mN.test, hits TAG-hotN.test


def forwarder_failure_under_load(world: World, resolver: Resolver, cell: Cell, tag: str) -> None:
    """7. 1000 q/s, 1 in 5 a miss; the first nameserver dies 8 s in."""
    hot, mixed = names(tag)
    world.reset()
    resolver.start(world, world.addresses("ns1", "ns2"))
    try:
        Load(world, resolver.listen, hot, QPS, world.workdir / f"{tag}-warm").wait()
        before = world.queries()
        load = Load(world, resolver.listen, mixed, QPS, world.workdir / tag)
        time.sleep(DIES_AT_S)
        world.upstreams["ns1"].kill()
        result = load.wait()
        cell.upstream_queries = world.queries() - before
    finally:
        resolver.stop()
    cell.ms = result.latencies(is_miss)
    cell.misses = sum(1 for name in mixed if is_miss(name))
    cell.planned = len(cell.ms)  # not a lookup budget: dnsperf ran to the end
    cell.answered = result.rcode_count("NOERROR")
    cell.failed = result.sent - cell.answered
    hits = sorted(result.latencies(lambda name: not is_miss(name)))
    cell.extra.update(sent=result.sent, lost=result.lost, qps=result.qps, hits_p50_ms=percentile(hits, 50),
                      hits_p99_ms=percentile(hits, 99), hits_max_ms=hits[-1] if hits else None)
    cell.notes += [
        f"hits p50/p99/max {fmt_ms(percentile(hits, 50))}/{fmt_ms(percentile(hits, 99))}/"
        f"{fmt_ms(hits[-1] if hits else None)} ms",
        f"{result.qps:.0f} q/s achieved, {result.lost} lost of {result.sent}",
    ]
