"""Measuring: the lock-step getaddrinfo client, and one table cell's figures."""

from __future__ import annotations

import json
import math
import select
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.scenarios.world import World

LOOKUP_CLIENT = Path(__file__).with_name("lookup_client.py")
# glibc's worst case with two dead servers and stock options is about 20 s.
LOOKUP_LIMIT = 60.0


class Client:
    """lookup_client.py in the client namespace, reading the resolv.conf set just before."""

    def __init__(self, world: World, nameservers: list[str]):
        world.set_nameservers(nameservers)
        self.proc = world.client.popen(sys.executable, str(LOOKUP_CLIENT), stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    def lookup(self, name: str) -> dict:
        self.proc.stdin.write(name + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], LOOKUP_LIMIT)
        if not ready:
            raise RuntimeError(f"lookup of {name} took over {LOOKUP_LIMIT} s")
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class Cell:
    """One scenario × resolver result: the lookups measured and what they cost upstream."""

    scenario: str
    resolver: str
    ms: list[float] = field(default_factory=list)
    answered: int = 0
    failed: int = 0
    misses: int = 0           # lookups that had to go upstream (distinct names never asked before)
    upstream_queries: int = 0
    planned: int = 0          # lookups the scenario wanted; fewer when the time budget ran out
    notes: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    def record(self, result: dict, miss: bool = True) -> None:
        self.ms.append(result["ms"])
        if result["ok"]:
            self.answered += 1
        else:
            self.failed += 1
        self.misses += miss

    def summary(self) -> dict:
        ordered = sorted(self.ms)
        return {
            "n": len(ordered),
            "p50_ms": percentile(ordered, 50),
            "p99_ms": percentile(ordered, 99),
            "max_ms": ordered[-1] if ordered else None,
            "queries_per_miss": self.upstream_queries / self.misses if self.misses else None,
        }

    @classmethod
    def from_json(cls, data: dict) -> "Cell":
        """A cell as ``to_json`` wrote it (the summary is recomputed from the latencies)."""
        return cls(data["scenario"], data["resolver"], ms=list(data["latencies_ms"]), answered=data["answered"],
                   failed=data["failed"], misses=data["misses"], upstream_queries=data["upstream_queries"],
                   planned=data["planned"], notes=list(data["notes"]), extra=dict(data["extra"]))

    def to_json(self) -> dict:
        return {"scenario": self.scenario, "resolver": self.resolver, **self.summary(),
                "answered": self.answered, "failed": self.failed, "misses": self.misses,
                "upstream_queries": self.upstream_queries, "planned": self.planned,
                "notes": self.notes, "extra": self.extra, "latencies_ms": [round(x, 3) for x in self.ms]}


def percentile(ordered: list[float], pct: float) -> float | None:
    """Nearest-rank percentile of an already sorted list."""
    if not ordered:
        return None
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


class Budget:
    """A bound on a cell's lookups: at most `count`, and none started after `seconds`."""

    def __init__(self, count: int, seconds: float):
        self.count = count
        self.deadline = time.monotonic() + seconds
        self.used = 0

    def take(self) -> bool:
        if self.used >= self.count or time.monotonic() >= self.deadline:
            return False
        self.used += 1
        return True
