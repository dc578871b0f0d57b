#!/usr/bin/env python3
"""A site's fleet after a power cut, simulated around bootres's real resolver core on a virtual clock.

The power comes back at t = 0.  Every host boots at a random moment of the
first ``--boot-window`` seconds, with yesterday's cache (the top names of
the site, expired, stale-servable as a saved cache file is after a night),
and from then on asks ``--rate`` lookups a second (Poisson): a Zipf mix of
``--names`` names, and ``--new`` of them never seen before.  The site's two
nameservers are dead until ``--back`` and then drop whatever exceeds
``--capacity`` queries in a second each (a recovering server under a
storm); a query they answer takes 1 ms there and back.

Each host is a real ``bootres.core.resolver.Resolver`` (its race or hedge,
upstream health, probes, cache, stale answers, failure cache, prefetch),
fed queries, replies and timer calls at virtual times: no sockets, no
threads.  Three fleets see the same boots and lookups:

- ``bootres``: the shipped defaults;
- ``bootres-race``: ``strategy = race``, every miss to every nameserver;
- ``glibc``: a model of the classic stub resolver with no cache: the
  nameservers in order, 5 s each, 2 attempts (``options timeout:5
  attempts:2``, glibc's defaults), every lookup on the wire.

Per second it counts the queries arriving at each nameserver (and how many
it dropped) and the lookups answered fresh, stale or failed, with their
latency; it prints a table (per 10 s) and the ratios of the nameservers'
peak and total load to glibc's, writes ``bench/results/fleet-<UTC>.json``
and, with ``--plot FILE`` and matplotlib, a picture.

    python3 bench/fleet.py --hosts 10000 [--plot docs/fleet.png]

tests/scenarios/test_fleet.py runs 1,000 hosts in CI.
"""

from __future__ import annotations

import argparse
import bisect
import dataclasses
import heapq
import itertools
import json
import random
import struct
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from bootres import config  # noqa: E402
from bootres.core.cache import Cache  # noqa: E402
from bootres.core.effects import Respond, SendUpstream  # noqa: E402
from bootres.core.resolver import Resolver  # noqa: E402
from bootres.core.routing import Routing, UpstreamSpec  # noqa: E402
from bootres.core.upstreamwire import read_reply  # noqa: E402
from bootres.settings import resolver_settings  # noqa: E402

NAMESERVERS = (("198.18.0.10", 53), ("198.18.0.11", 53))
ONE_WAY = 0.0005  # seconds, each way between a host and a nameserver
TTL = 300
GLIBC_TIMEOUT, GLIBC_ATTEMPTS = 5.0, 2


@dataclasses.dataclass(frozen=True)
class Scenario:
    hosts: int = 1000
    rate: float = 1.0  # lookups per second per host
    names: int = 300
    new: float = 0.05  # share of lookups for names never seen
    cached: int = 100  # yesterday's names in each host's cache (the most popular ones)
    boot_window: float = 30.0
    back: float = 60.0  # when the nameservers answer again
    end: float = 120.0
    capacity: int = 20_000  # queries per second each nameserver answers at most
    seed: int = 1


def name_wire(name: str) -> bytes:
    return b"".join(bytes([len(label)]) + label.encode() for label in name.split(".")) + b"\x00"


def query_wire(name: str, qid: int) -> bytes:
    return struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + name_wire(name) + b"\x00\x01\x00\x01"


def reply_wire(query: bytes) -> bytes:
    """An answer to ``query`` (one A record, TTL 300): the ID and question copied, no OPT."""
    end = 12
    while query[end]:
        end += query[end] + 1
    question = query[12:end + 5]
    answer = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, TTL, 4) + bytes((198, 18, 77, 1))
    return query[:2] + struct.pack(">HHHHH", 0x8180, 1, 1, 0, 0) + question + answer


class Nameservers:
    """The site's nameservers: dead before ``back``, then dropping what exceeds ``capacity`` in a second."""

    def __init__(self, back: float, capacity: int, seconds: int):
        self.back, self.capacity = back, capacity
        self.arrived = {a: [0] * seconds for a in NAMESERVERS}
        self.dropped = {a: [0] * seconds for a in NAMESERVERS}

    def answers(self, address, at: float) -> bool:
        second = int(at)
        if second >= len(self.arrived[address]):
            return False
        self.arrived[address][second] += 1
        if at < self.back or self.arrived[address][second] > self.capacity:
            self.dropped[address][second] += 1
            return False
        return True


class Lookups:
    """What the clients got, per second of the ask: fresh, stale, failed, and every latency."""

    def __init__(self, seconds: int):
        self.fresh, self.stale, self.failed = ([0] * seconds for _ in range(3))
        self.ms: list[list[float]] = [[] for _ in range(seconds)]
        self.answered_ms: list[list[float]] = [[] for _ in range(seconds)]  # fresh or stale only

    def done(self, asked: float, now: float, kind: str) -> None:
        second = int(asked)
        getattr(self, kind)[second] += 1
        self.ms[second].append((now - asked) * 1000)
        if kind != "failed":
            self.answered_ms[second].append((now - asked) * 1000)


def workload(s: Scenario):
    """(boot time per host, every lookup as (time, host, name)), the same for every fleet."""
    rng = random.Random(s.seed)
    weights = list(itertools.accumulate(1 / (rank + 1) for rank in range(s.names)))  # Zipf, exponent 1
    boots = [rng.uniform(0, s.boot_window) for _ in range(s.hosts)]
    asks = []
    unique = itertools.count()
    for host, booted in enumerate(boots):
        t = booted + rng.expovariate(s.rate)
        while t < s.end:
            if rng.random() < s.new:
                name = f"new{next(unique)}.example.test"
            else:
                name = f"n{bisect.bisect(weights, rng.random() * weights[-1])}.example.test"
            asks.append((t, host, name))
            t += rng.expovariate(s.rate)
    asks.sort()
    return boots, asks


class Events:
    def __init__(self):
        self._heap: list = []
        self._seq = itertools.count()

    def at(self, when: float, *event) -> None:
        heapq.heappush(self._heap, (when, next(self._seq), event))

    def __iter__(self):
        while self._heap:
            when, _, event = heapq.heappop(self._heap)
            yield when, event


def run_bootres(s: Scenario, strategy: str) -> tuple[Nameservers, Lookups]:
    seconds = int(s.end) + 1
    servers, lookups = Nameservers(s.back, s.capacity, seconds), Lookups(seconds)
    boots, asks = workload(s)
    cfg = dataclasses.replace(config.defaults().resolver, strategy=strategy)
    routing = Routing(tuple(UpstreamSpec(a, f"{a[0]}:{a[1]}", "config") for a in NAMESERVERS), NAMESERVERS, ())
    settings = resolver_settings(cfg, routing)
    yesterday = [reply_wire(query_wire(f"n{rank}.example.test", 0)) for rank in range(s.cached)]
    rng = random.Random(s.seed + 1)
    events = Events()
    cores: list[Resolver | None] = [None] * s.hosts
    armed: list[float | None] = [None] * s.hosts
    for host, booted in enumerate(boots):
        events.at(booted, "boot", host)
    for when, host, name in asks:
        events.at(when, "ask", host, name)

    def effects(host: int, now: float) -> None:
        core = cores[host]
        for effect in core.drain():
            if type(effect) is SendUpstream:
                arrives = now + ONE_WAY
                if servers.answers(effect.address, arrives):
                    events.at(arrives + ONE_WAY, "reply", host, effect.token, reply_wire(effect.wire), effect.address)
            elif type(effect) is Respond and effect.client is not None:
                kind = "failed" if effect.wire[3] & 0x0F else ("stale" if effect.source == "stale" else "fresh")
                lookups.done(effect.client, now, kind)
        when = core.deadline()
        if when is not None and when != armed[host]:
            armed[host] = when
            events.at(when, "timer", host, when)

    for now, event in events:
        kind, host = event[0], event[1]
        if kind == "boot":
            core = cores[host] = Resolver(settings, Cache(cfg.cache_size, cfg.stale_max_age),
                                          lambda: rng.getrandbits(16))
            for rank, wire in enumerate(yesterday):  # saved last night: expired now, servable stale
                core.cache.put(b"".join((name_wire(f"n{rank}.example.test"), b"\x00\x01\x00\x01\x00")),
                               read_reply(wire).answer, now - 12 * 3600)
            core.refresh_at_start(now)
        elif cores[host] is None:  # asked before it booted: nothing runs yet
            continue
        elif kind == "ask":
            cores[host].query_received(query_wire(event[2], 0), now, "127.0.0.1", False, now)
        elif kind == "reply":
            cores[host].upstream_reply(event[2], event[3], event[4], now)
        elif kind == "timer":
            if armed[host] != event[2]:
                continue
            armed[host] = None
            cores[host].timer_fired(now)
        effects(host, now)
    return servers, lookups


def run_glibc(s: Scenario) -> tuple[Nameservers, Lookups]:
    """The classic stub: no cache; each lookup tries the nameservers in order, 5 s each, twice round."""
    seconds = int(s.end) + 1
    servers, lookups = Nameservers(s.back, s.capacity, seconds), Lookups(seconds)
    boots, asks = workload(s)
    for asked, host, _ in asks:
        if asked < boots[host]:
            continue
        t = asked
        for attempt in range(GLIBC_ATTEMPTS * len(NAMESERVERS)):
            address = NAMESERVERS[attempt % len(NAMESERVERS)]
            if servers.answers(address, t + ONE_WAY):
                lookups.done(asked, t + 2 * ONE_WAY, "fresh")
                break
            t += GLIBC_TIMEOUT
            if t >= s.end:
                break
        else:
            lookups.done(asked, t, "failed")
    return servers, lookups


def summary(servers: Nameservers, lookups: Lookups, s: Scenario) -> dict:
    per_second = [sum(servers.arrived[a][i] for a in NAMESERVERS) for i in range(len(lookups.fresh))]

    def answered_fast(seconds: range) -> float | None:
        """The share of the lookups asked in ``seconds`` answered (fresh or stale) within 100 ms."""
        asked = sum(len(lookups.ms[i]) for i in seconds)
        fast = sum(1 for i in seconds for ms in lookups.answered_ms[i] if ms <= 100)
        return fast / asked if asked else None

    total = sum(len(x) for x in lookups.ms)
    return {
        "peak_qps": max(per_second), "total_queries": sum(per_second),
        "dropped": sum(sum(v) for v in servers.dropped.values()),
        "lookups": total,
        "fresh": sum(lookups.fresh), "stale": sum(lookups.stale), "failed": sum(lookups.failed),
        "outage_within_100ms": answered_fast(range(0, int(s.back))),
        "recovery_within_100ms": answered_fast(range(int(s.back), min(int(s.back) + 30, len(per_second)))),
        "per_second_queries": per_second,
        "per_second": [{"fresh": lookups.fresh[i], "stale": lookups.stale[i], "failed": lookups.failed[i],
                        "p50_ms": _quantile(lookups.ms[i], 0.5), "p99_ms": _quantile(lookups.ms[i], 0.99)}
                       for i in range(len(per_second))],
    }


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def simulate(s: Scenario) -> dict:
    results = {}
    for label, run in (("bootres", lambda: run_bootres(s, "hedge")), ("bootres-race", lambda: run_bootres(s, "race")),
                       ("glibc", lambda: run_glibc(s))):
        started = time.monotonic()
        results[label] = summary(*run(), s)
        results[label]["cpu_s"] = round(time.monotonic() - started, 1)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    defaults = Scenario()
    for field in dataclasses.fields(Scenario):
        parser.add_argument("--" + field.name.replace("_", "-"), type=type(getattr(defaults, field.name)),
                            default=getattr(defaults, field.name))
    parser.add_argument("--plot", type=Path, help="write a picture (needs matplotlib)")
    args = parser.parse_args()
    s = Scenario(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Scenario)})
    results = simulate(s)
    glibc = results["glibc"]
    print(f"{s.hosts} hosts booting over {s.boot_window:g} s, nameservers back at {s.back:g} s "
          f"(capacity {s.capacity}/s each), {s.rate:g} lookups/s per host, {s.new:.0%} never seen")
    print(f"{'fleet':14} {'peak q/s':>9} {'queries':>9} {'dropped':>8} {'lookups':>8} {'fresh':>7} {'stale':>7} "
          f"{'failed':>7} {'≤100 ms: outage':>16} {'recovery':>9} {'peak/glibc':>10} {'total/glibc':>11}")
    for label, r in results.items():
        outage, recovery = (_share(r[key]) for key in ("outage_within_100ms", "recovery_within_100ms"))
        print(f"{label:14} {r['peak_qps']:9d} {r['total_queries']:9d} {r['dropped']:8d} {r['lookups']:8d} "
              f"{r['fresh']:7d} {r['stale']:7d} {r['failed']:7d} {outage:>16} {recovery:>9} "
              f"{r['peak_qps'] / glibc['peak_qps']:10.3f} {r['total_queries'] / glibc['total_queries']:11.3f}")
    print("queries at the nameservers per 10 s: " + "; ".join(
        f"{label} " + " ".join(str(sum(r["per_second_queries"][i:i + 10])) for i in range(0, int(s.end), 10))
        for label, r in results.items()))
    out = ROOT / "bench" / "results" / f"fleet-{time.strftime('%Y-%m-%dT%H%M%SZ', time.gmtime())}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"scenario": dataclasses.asdict(s), "results": results}, indent=1))
    print(f"written {out}")
    if args.plot:
        plot(results, s, args.plot)
    return 0


def plot(results: dict, s: Scenario, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (load, answered) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    for label, r in results.items():
        load.plot(r["per_second_queries"], label=label)
        answered.plot([p["failed"] for p in r["per_second"]], label=f"{label} failed")
    load.axvline(s.back, color="grey", linestyle=":")
    answered.axvline(s.back, color="grey", linestyle=":")
    load.set_ylabel("queries/s at the nameservers")
    answered.set_ylabel("lookups failed per s")
    answered.set_xlabel(f"seconds after the power returned ({s.hosts} hosts)")
    load.legend()
    answered.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    sys.exit(main())
