"""Background load with dnsperf, run in the client namespace, and what it saw.

dnsperf's verbose mode prints one line per answered query (rcode, name,
type, latency in seconds), which is what splits hits from misses here;
unanswered queries are only counted ("Queries lost"), after its 5 s timeout.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from bench.scenarios.world import World

ANSWER = re.compile(r"^> (\S+) (\S+) \S+ ([0-9.]+)$")
STAT = re.compile(r"^\s*(Queries sent|Queries completed|Queries lost|Queries per second):\s+([0-9.]+)")
STAT_FIELD = {"Queries sent": "sent", "Queries completed": "completed", "Queries lost": "lost",
              "Queries per second": "qps"}
MAX_OUTSTANDING = 1000  # a stalled resolver must not throttle the offered load


@dataclass
class LoadResult:
    sent: int = 0
    completed: int = 0
    lost: int = 0
    qps: float = 0.0
    answers: list[tuple[str, str, float]] = field(default_factory=list)  # (name, rcode, ms)

    def latencies(self, predicate) -> list[float]:
        return [ms for name, _, ms in self.answers if predicate(name)]

    def rcode_count(self, rcode: str) -> int:
        return sum(1 for _, code, _ in self.answers if code == rcode)


class Load:
    """dnsperf sending `names` once, in order, at `qps` to `server`, started at construction."""

    def __init__(self, world: World, server: str, names: list[str], qps: int, path: Path):
        self.seconds = len(names) / qps
        path.with_suffix(".queries").write_text("".join(f"{name} A\n" for name in names))
        self.output = path.with_suffix(".out")
        with self.output.open("w") as out:
            self.proc = world.client.popen(
                "dnsperf", "-s", server, "-d", str(path.with_suffix(".queries")), "-n", "1",
                "-l", str(int(self.seconds) + 1), "-Q", str(qps), "-q", str(MAX_OUTSTANDING), "-t", "5", "-v",
                stdout=out, stderr=subprocess.STDOUT)

    def wait(self) -> LoadResult:
        # dnsperf stops sending at -l and waits out its 5 s query timeout.
        self.proc.wait(self.seconds + 15)
        result = LoadResult()
        for line in self.output.read_text(errors="replace").splitlines():
            if m := ANSWER.match(line):
                result.answers.append((m[2].rstrip(".").lower(), m[1], float(m[3]) * 1000))
            elif m := STAT.match(line):
                key = STAT_FIELD[m[1]]
                setattr(result, key, float(m[2]) if key == "qps" else int(float(m[2])))
        return result
