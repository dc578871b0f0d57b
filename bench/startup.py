#!/usr/bin/env python3
"""``bootres run``: exec -> first answer, warm and cold, and what it imports before that answer.

Builds the lab of bench/resolver_qps.py (nsd authoritative for example.test
on 198.18.0.10 in one namespace; ``bootres run`` with router discovery on,
every file under a temporary directory, on 127.0.0.38 in another) and
measures, with the same probe (a query for a name nsd answers, sent every
millisecond from the moment of exec):

- warm: one untimed start (it writes the bytecode, as the .deb's install
  does), then --starts timed ones; the median counts;
- cold: --cold starts, each right after ``sync; echo 3 >
  /proc/sys/vm/drop_caches`` (the page cache dropped: the interpreter,
  the libraries and the bytecode come from disk, as on a real host's first
  boot after an update);
- imports: one warm start under ``python3 -X importtime``.  The lines the
  interpreter has written by the moment the first answer arrives are the
  modules imported before it; the ones written in the 2 s after are what
  ``bootres run`` imports once it serves (router discovery, stub files).
  Per module: self and cumulative microseconds; the top --top of each,
  totals, counts, and the sum by group (interpreter start-up, asyncio,
  bootres, ...).  -X importtime makes every import a little slower: its
  totals are for comparing modules, the timed starts are the figures.

Needs root, nsd.  Run (as root, from the repository root):

    flock /tmp/bench.lock env PYTHON=/usr/bin/python3 /usr/bin/python3 bench/startup.py [--starts 5] [--cold 5] \
        [--baseline DIR]

With --baseline DIR (a checkout of an earlier commit, e.g. ``git worktree
add DIR COMMIT``), its ``bootres run`` takes turns with this one in the
warm and the cold starts, and both medians are reported.

Prints the figures and writes bench/results/startup-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import record
from resolver_qps import BASELINE, ROOT, SERVERS, UPSTREAM, bootres_config, start_bootres
from lab import Lab  # noqa: E402 (resolver_qps put tests/ on the path)

_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)$")
AFTER_ANSWER = 2.0  # seconds: long enough for what `bootres run` imports once it serves


def drop_caches() -> None:
    subprocess.run(["sync"], check=True)
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def parse_importtime(text: str) -> list[dict]:
    """``[{"module", "self_us", "cumulative_us", "depth"}]`` in the order the imports finished."""
    found = []
    for line in text.splitlines():
        match = _LINE.match(line)
        if match:
            found.append({"module": match.group(4), "self_us": int(match.group(1)),
                          "cumulative_us": int(match.group(2)), "depth": len(match.group(3)) // 2})
    return found


def group_of(module: str) -> str:
    top = module.split(".")[0]
    if top in ("bootres", "asyncio", "pyroute2", "dns", "systemd"):
        return top
    return "stdlib and site"


def summary(imports: list[dict], top: int) -> dict:
    groups: dict[str, int] = {}
    for item in imports:
        groups[group_of(item["module"])] = groups.get(group_of(item["module"]), 0) + item["self_us"]
    return {
        "modules": len(imports),
        "total_us": sum(item["self_us"] for item in imports),
        "by_group_us": dict(sorted(groups.items(), key=lambda kv: -kv[1])),
        "top_cumulative": sorted(imports, key=lambda i: -i["cumulative_us"])[:top],
        "top_self": sorted(imports, key=lambda i: -i["self_us"])[:top],
        "all": [item["module"] for item in imports],
    }


def stop(proc) -> None:
    proc.terminate()
    proc.wait(timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--starts", type=int, default=5, help="timed warm starts")
    parser.add_argument("--cold", type=int, default=5, help="timed starts after dropping the page cache")
    parser.add_argument("--top", type=int, default=25, help="modules listed by self and by cumulative time")
    parser.add_argument("--python", default=os.environ.get("PYTHON", sys.executable),
                        help="interpreter for bootres (default: $PYTHON or this one)")
    parser.add_argument("--baseline", type=Path, metavar="DIR", help="also start bootres from this checkout")
    args = parser.parse_args()
    results = record.start(python=args.python, cpus=os.cpu_count(), baseline=str(args.baseline) if args.baseline else None)
    with tempfile.TemporaryDirectory(prefix="bootres-startup-") as tmp, Lab(Path(tmp)) as lab:
        work = Path(tmp)
        client, servers = lab.netns("client"), lab.netns("servers")
        lab.link(client, "198.18.0.2/24", servers, f"{UPSTREAM}/24")
        lab.nsd(servers, UPSTREAM, ttl=86400, rate_limit=False)
        env = dict(os.environ, PYTHONPYCACHEPREFIX=str(work / "pycache"))  # see resolver_qps.main
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        trees = {"bootres": (ROOT, SERVERS["bootres"]),
                 **({"bootres-baseline": (args.baseline.resolve(), BASELINE)} if args.baseline else {})}
        commands = {name: ([args.python, "-m", "bootres", "run", "-c", str(bootres_config(work, name, address))],
                           address, tree) for name, (tree, address) in trees.items()}

        warm = {name: [] for name in commands}
        for run in range(args.starts + 1):  # bounded: --starts + 1; the trees take turns
            for name, (argv, address, tree) in commands.items():
                proc, ms = start_bootres(client, argv, address, env, f"{name}-warm{run}", tree)
                stop(proc)
                if run:
                    warm[name].append(round(ms, 1))
        cold = {name: [] for name in commands}
        for run in range(args.cold):  # bounded: --cold
            for name, (argv, address, tree) in commands.items():
                drop_caches()
                proc, ms = start_bootres(client, argv, address, env, f"{name}-cold{run}", tree)
                stop(proc)
                cold[name].append(round(ms, 1))
        results["warm_ms"], results["cold_ms"] = warm["bootres"], cold["bootres"]
        results["warm_median_ms"] = round(statistics.median(warm["bootres"]), 1) if args.starts else None
        results["cold_median_ms"] = round(statistics.median(cold["bootres"]), 1) if args.cold else None
        if args.baseline:
            results["baseline"] = {"warm_ms": warm["bootres-baseline"], "cold_ms": cold["bootres-baseline"],
                                   "warm_median_ms": round(statistics.median(warm["bootres-baseline"]), 1)
                                   if args.starts else None,
                                   "cold_median_ms": round(statistics.median(cold["bootres-baseline"]), 1)
                                   if args.cold else None}

        argv, address, tree = commands["bootres"]
        traced = [argv[0], "-X", "importtime", *argv[1:]]
        proc, ms = start_bootres(client, traced, address, env, "importtime", tree)
        before = parse_importtime(proc.log_path.read_text())
        time.sleep(AFTER_ANSWER)
        everything = parse_importtime(proc.log_path.read_text())
        stop(proc)
        results["importtime_first_answer_ms"] = round(ms, 1)
        results["before_first_answer"] = summary(before, args.top)
        results["after_first_answer"] = summary(everything[len(before):], args.top)

    print(f"exec -> first answer, warm: median {results['warm_median_ms']} ms of {warm['bootres']}")
    print(f"exec -> first answer, cold (page cache dropped): median {results['cold_median_ms']} ms of {cold['bootres']}")
    if args.baseline:
        base = results["baseline"]
        print(f"baseline {args.baseline}: warm median {base['warm_median_ms']} ms of {base['warm_ms']}, "
              f"cold median {base['cold_median_ms']} ms of {base['cold_ms']}")
    for when in ("before_first_answer", "after_first_answer"):
        part = results[when]
        print(f"\n{when.replace('_', ' ')}: {part['modules']} modules, {part['total_us'] / 1000:.1f} ms of "
              f"-X importtime; by group (self, ms): "
              + ", ".join(f"{name} {us / 1000:.1f}" for name, us in part["by_group_us"].items()))
        print(f"{'self us':>9} {'cumul us':>9}  module (top {args.top} by cumulative)")
        for item in part["top_cumulative"]:
            print(f"{item['self_us']:9} {item['cumulative_us']:9}  {'  ' * item['depth']}{item['module']}")
    record.write("startup", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
