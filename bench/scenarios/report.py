"""The results: one markdown table (scenario × resolver), JSON, and docs/scenarios.md."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path

from bench.scenarios.measure import Cell
from bench.scenarios.world import REPO
from bootres.core.upstreams import HEDGE_MAX

RESULTS_DIR = REPO / "bench" / "results"
DOC = REPO / "docs" / "scenarios.md"
PICTURE = REPO / "docs" / "scenarios.png"  # bench/scenarios/plot.py, from the same run's JSON
HEADER = ("| scenario | resolver | n | p50 ms | p99 ms | max ms | upstream q/miss | answered/failed | notes |\n"
          "|---|---|---:|---:|---:|---:|---:|---|---|")


def fmt_ms(value: float | None) -> str:
    if value is None:
        return "–"
    if value < 10:
        return f"{value:.2f}"
    if value < 100:
        return f"{value:.1f}"
    return f"{value:.0f}"


def row(cell: Cell) -> str:
    s = cell.summary()
    per_miss = "–" if s["queries_per_miss"] is None else f"{s['queries_per_miss']:.2f}"
    cut_short = [f"time budget: {s['n']} of {cell.planned}"] if s["n"] < cell.planned else []
    notes = "; ".join(cut_short + cell.notes).replace("|", "/")
    return (f"| {cell.scenario} | {cell.resolver} | {s['n']} | {fmt_ms(s['p50_ms'])} | {fmt_ms(s['p99_ms'])} | "
            f"{fmt_ms(s['max_ms'])} | {per_miss} | {cell.answered}/{cell.failed} | {notes} |")


def table(cells: list[Cell]) -> str:
    return "\n".join([HEADER, *(row(cell) for cell in cells)])


def bounds(cells: list[Cell]) -> list[str]:
    """Issue 6's bounds for bootres, read off this run's cells: one line each, met or not."""
    lines = []
    for cell in cells:
        if not cell.resolver.startswith("bootres") or not cell.ms:
            continue
        number = cell.scenario.split()[0]
        s = cell.summary()
        if number in ("0", "1", "2", "3", "7", "8"):
            lines.append(verdict(s["max_ms"] <= 100, cell, f"max {fmt_ms(s['max_ms'])} ms ≤ 100 ms (an upstream is alive)"))
        if number in ("4", "4r", "4u", "5"):
            known = known_dead_ms(cell) if number == "4" else 0.0
            started, late = 0.0, []
            for ms in cell.ms:  # one lookup after another: each starts when the one before ends
                if started + ms > max(started, known) + 5:
                    late.append(ms)
                started += ms
            text = f"{len(cell.ms) - len(late)} of {len(cell.ms)} stale answers ≤ 5 ms"
            if known:
                text += (f" after their lookup or after every nameserver was known silent ({known:.0f} ms after "
                         f"the first lookup); the longest {fmt_ms(max(cell.ms))} ms")
            text += f" (late: {len(late)}, ≤ {fmt_ms(max(late))} ms)" if late else ""
            lines.append(verdict(not late, cell, text))
        if cell.resolver == "bootres-hedge" and s["queries_per_miss"] is not None:
            lines.append(verdict(s["queries_per_miss"] <= 1.1, cell,
                                 f"{s['queries_per_miss']:.2f} upstream queries per miss ≤ 1.1"))
        if number in ("8", "9"):
            window = round((cell.extra.get("down_ms") or 0) / 1000 * cell.extra["qps"])
            lost = cell.extra["lost"]
            lines.append(verdict(lost <= window, cell, f"{lost} queries lost, ≤ {window} sent while down"))
    return lines


def known_dead_ms(cell: Cell) -> float:
    """Scenario 4: when, after its first lookup, bootres can know that every (silent) nameserver is dead.

    stale_answer_after (400 ms) after each was asked; in hedge mode the
    standby is asked up to HEDGE_MAX after the best.  tests/scenarios has
    the same rule.
    """
    return 400.0 + (HEDGE_MAX * 1000 if cell.resolver == "bootres-hedge" else 0.0)


def verdict(ok: bool, cell: Cell, text: str) -> str:
    return f"- {'met' if ok else '**not met**'}: {cell.scenario}, {cell.resolver}: {text}"


def first_line(command: str) -> str:
    try:
        out = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=5)
        return (out.stdout + out.stderr).splitlines()[0].strip()
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "?"


def machine() -> dict:
    """What the numbers were measured on."""
    with open("/proc/cpuinfo") as f:
        model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "?")
    return {
        "kernel": platform.release(), "cpu": model, "cpus": os.cpu_count(), "python": platform.python_version(),
        "commit": first_line(f"git -C {REPO} rev-parse --short HEAD"),
        "nsd": first_line("nsd -v"), "dnsmasq": first_line("dnsmasq --version"),
        "unbound": "unbound " + first_line("unbound -V").removeprefix("Version "), "glibc": first_line("ldd --version"),
    }


def write_json(cells: list[Cell], meta: dict) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"scenarios-{meta['started'].replace(':', '')}.json"
    path.write_text(json.dumps({**meta, "cells": [cell.to_json() for cell in cells]}, indent=1) + "\n")
    return path


def write_doc(cells: list[Cell], meta: dict, intro: str) -> None:
    """docs/scenarios.md: how to run, what was run on what, the table."""
    m = meta["machine"]
    DOC.write_text(f"""{intro}
## Latest run

- command: `{meta['command']}`
- date: {meta['started']} (UTC), {meta['duration_s']:.0f} s
- machine: {m['cpus']} × {m['cpu']}, Linux {m['kernel']}, Python {m['python']}, bootres at {m['commit']}
- peers: {m['dnsmasq']}; {m['unbound']}; {m['nsd']} (upstreams); {m['glibc']}

![Latency distribution per scenario and resolver](scenarios.png)

Each panel is one scenario, each line one resolver's cumulative
distribution of lookup latency (log scale; left is faster, a step far
right is a timeout; dotted lines at 5 and 100 ms). Made by
`bench/scenarios/plot.py` from this run's JSON.

{table(cells)}

## bootres's bounds in this run

{chr(10).join(bounds(cells))}
""")
