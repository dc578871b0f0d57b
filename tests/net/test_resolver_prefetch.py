"""Refresh-ahead against a real nsd: names in steady use never make a client wait for an upstream.

100 names with TTL 10 s, each asked once a second (their first asks spread
over the first 10 s, so their expiries are too), with ``prefetch`` off and
on; and again with TTL 4 s, where the window is the last second rather than
the last tenth (issue 23: the tenth, 0.4 s, made 3.6% of the asks wait).  A query *waited for an upstream* when the service counted it a cache
miss (exact; each name's first ask excluded), and, as issue 12 measures it,
when it took longer than the p99 of 500 cache hits measured just before at
the same pace (10 ms apart, on ten other names for 5 s: with TTL 10 never
refreshed, with TTL 4 refreshed ahead, hits either way).  Here nsd answers from the same machine in about
0.15 ms, so a miss is barely slower than a hit and the latency measure is
the noisier one; the test bounds the exact one and prints both.  Upstream queries per second are
counted once every name has had its first answer expire or refresh (from
11 s on).  Ten names under another zone, routed to an upstream of their
own, are asked once each: that upstream must see no query after theirs.

``BOOTRES_PREFETCH_SECONDS`` sets the run's length (24 s here, issue 23's; docs/resolver.md
has a 60 s run).
"""

import os
import statistics
import time

import dns.rcode
import pytest

from resolver_harness import UPSTREAMS, Client, ResolverProcess, resolver_config, upstream_lab

SECONDS = float(os.environ.get("BOOTRES_PREFETCH_SECONDS", "24"))
STEADY = [f"n{i}.example.test" for i in range(100)]
ONCE = [f"once{i}.once.test" for i in range(10)]
REFERENCE = [f"ref{i}.example.test" for i in range(10)]


def paced(client, names, every: float) -> list[float]:
    """Ask ``names`` one after another, ``every`` seconds apart; their latencies in ms."""
    times, due = [], time.monotonic()
    for name in names:
        time.sleep(max(0.0, due - time.monotonic()))
        times.append(client.ask(name)[1])
        due += every
    return times


def run(lab, tmp_path, host, prefetch: str, ttl: int) -> dict:
    conf = resolver_config(tmp_path, upstreams=f"{UPSTREAMS[0]} once.test={UPSTREAMS[1]}", prefetch=prefetch,
                           timeout="1s")
    resolver = ResolverProcess(host, conf, tmp_path)
    client = Client(host)
    for name in ONCE + REFERENCE:
        assert client.ask(name)[0].rcode() == dns.rcode.NOERROR
    hit_p99 = statistics.quantiles(paced(client, REFERENCE * 50, 0.01), n=100)[98]

    misses_before = resolver.status()["cache"]["misses"]
    t0 = time.monotonic() + 0.1
    schedule = sorted((t0 + i * ttl / len(STEADY) + k, name) for i, name in enumerate(STEADY)
                      for k in range(int(SECONDS)) if i * ttl / len(STEADY) + k < SECONDS)
    first_ask = {}
    times = []
    counted_from = queries_at_start = None
    for due, name in schedule:  # bounded: a fixed list
        if counted_from is None and due >= t0 + ttl + 1:
            counted_from = time.monotonic()
            queries_at_start = resolver.upstream(UPSTREAMS[0])["queries"]
        time.sleep(max(0.0, due - time.monotonic()))
        reply, ms = client.ask(name)
        assert reply.rcode() == dns.rcode.NOERROR, name
        if name in first_ask:  # a name's first ask is a miss by nature
            times.append(ms)
        else:
            first_ask[name] = due
    elapsed = time.monotonic() - counted_from
    status = resolver.status()
    queries = resolver.upstream(UPSTREAMS[0])["queries"] - queries_at_start
    once_queries = resolver.upstream(UPSTREAMS[1])["queries"]
    assert resolver.stop() == 0
    slow = sum(1 for ms in times if ms > hit_p99)
    return {
        "hit_p99_ms": hit_p99,
        "asks": len(times),
        "waited": (status["cache"]["misses"] - misses_before - len(STEADY)) / len(times),
        "over_hit_p99": slow / len(times),
        "max_ms": max(times),
        "upstream_qps": queries / elapsed,
        "refreshes": status["cache"]["refreshes"],
        "skipped": status["cache"]["refreshes_skipped"],
        "once_queries": once_queries,
    }


@pytest.mark.parametrize("ttl, waited, cost", [(10, 0.01, 1.2), (4, 0.02, 1.5)])
def test_names_in_steady_use_never_wait_for_an_upstream_and_cost_few_more_queries(lab, tmp_path, ttl, waited, cost):
    host, servers = upstream_lab(lab)
    lab.nsd(servers, UPSTREAMS[0], ttl=ttl, rate_limit=False)
    lab.nsd(servers, UPSTREAMS[1], zone="once.test.", ttl=ttl, rate_limit=False)
    without = run(lab, tmp_path, host, "no", ttl)
    with_prefetch = run(lab, tmp_path, host, "yes", ttl)
    for label, r in (("prefetch = no ", without), ("prefetch = yes", with_prefetch)):
        print(f"\n{label}: {r['asks']} asks over {SECONDS:g} s, {100 * r['waited']:.2f}% misses, "
              f"{100 * r['over_hit_p99']:.2f}% over the hit p99 ({r['hit_p99_ms']:.2f} ms), max {r['max_ms']:.2f} ms; "
              f"upstream {r['upstream_qps']:.2f} queries/s; "
              f"refreshes {r['refreshes']} (skipped {r['skipped']}); the once-asked zone's upstream saw "
              f"{r['once_queries']} queries", end="")
    print(f"\nTTL {ttl} s: upstream queries/s ratio {with_prefetch['upstream_qps'] / without['upstream_qps']:.3f}")
    assert without["waited"] > 0.05  # about one ask in TTL + 1 per name: what prefetch is for
    assert with_prefetch["waited"] <= waited
    assert with_prefetch["upstream_qps"] <= cost * without["upstream_qps"]
    assert with_prefetch["once_queries"] == len(ONCE)  # one each, the ask itself: never refreshed
