"""Run fuzzing campaigns: ``python -m fuzz TARGET... | all [--runs N] [--seconds S]`` (docs/fuzzing.md).

Targets run one at a time, each in its own atheris process (``fuzz/worker.py``)
seeded from ``fuzz/corpus/TARGET`` and from a work corpus that persists
between campaigns (``--work``, default ``$TMPDIR/bootres-fuzz``).  Every
input that fails is saved under ``fuzz/crashes/TARGET`` (``--crashes``),
which ``tests/test_fuzz_corpus.py`` replays for ever after.

Other commands::

    python -m fuzz list              the targets and what each one fuzzes
    python -m fuzz seeds             rewrite fuzz/corpus from fuzz/seeds.py
    python -m fuzz replay [TARGET]   every saved input through its target, no atheris needed
    python -m fuzz structured query|reply --runs N
                                     hypothesis-drawn whole DNS messages (fuzz/dnsgen.py), then mutated,
                                     through the same targets: the structured differential against dnspython

Exit status: 0 when no target failed, 1 when one did, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CORPUS = HERE / "corpus"
CRASHES = HERE / "crashes"
MAX_LEN = {"query": 4096, "reply": 8192, "cache_file": 8192}  # other targets: 4096
RESTARTS = 3  # a worker killed by a timeout or OOM is started again this often per target


def _targets():
    from fuzz import targets

    return targets


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def commit() -> str:
    """HEAD, with ``+changes`` when the tree differs from it (what a campaign ran on)."""
    head = _git("rev-parse", "--short", "HEAD")
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    return head + ("+changes" if dirty and dirty != "unknown" else "")


def _versions() -> dict:
    import atheris  # noqa: F401 - present, or the campaign could not run
    import dns.version
    from importlib.metadata import version

    return {"python": platform.python_version(), "dnspython": dns.version.version, "atheris": version("atheris")}


def _inputs(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.is_file()) if directory.is_dir() else []


def run_target(name: str, args) -> dict:
    """One target's campaign: workers until ``--runs`` executions or ``--seconds`` pass; its figures."""
    work = Path(args.work) / name
    work.mkdir(parents=True, exist_ok=True)
    crashes = Path(args.crashes) / name
    crashes.mkdir(parents=True, exist_ok=True)  # libFuzzer refuses an artifact prefix whose directory is missing
    stats_path = Path(args.work) / f"{name}.stats.json"
    log_path = Path(args.work) / f"{name}.log"
    executions = failures = hard = 0
    distinct: dict[str, str] = {}
    started = time.monotonic()
    log_path.write_text("")
    for attempt in range(RESTARTS + 1):
        left_runs = args.runs - executions if args.runs else 0
        left_time = args.seconds - (time.monotonic() - started) if args.seconds else 0
        if (args.runs and left_runs <= 0) or (args.seconds and left_time < 1):
            break
        before = {p.name for p in _inputs(crashes)}
        stats_path.unlink(missing_ok=True)
        command = [
            sys.executable, "-m", "fuzz.worker", name, str(stats_path), str(crashes), "--",
            str(work), str(CORPUS / name),
            f"-max_len={args.max_len or MAX_LEN.get(name, 4096)}", f"-timeout={args.timeout}",
            "-rss_limit_mb=2048", f"-artifact_prefix={crashes}/", "-print_final_stats=1",
        ]
        if args.runs:
            command.append(f"-runs={left_runs}")
        if args.seconds:
            command.append(f"-max_total_time={max(1, math.floor(left_time))}")
        environment = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
        with open(log_path, "a") as log:
            log.write(f"$ {' '.join(command)}\n")
            log.flush()
            process = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=log, stderr=subprocess.PIPE,
                                       text=True, errors="replace")
            reported = 0
            for line in process.stderr:
                log.write(line)
                if line.startswith("stat::number_of_executed_units:"):
                    reported = int(line.split(":")[-1])  # libFuzzer's own count, printed as it exits
                if line.startswith(("FAILURE ", "  saved ")) or args.verbose:
                    print(f"  {name}: {line.rstrip()}", flush=True)
            status = process.wait()
        stats = json.loads(stats_path.read_text()) if stats_path.exists() else {}
        executions += max(stats.get("executions", 0), reported)  # the stats file lags; libFuzzer's count may be missing
        failures += stats.get("failures", 0)
        distinct.update(stats.get("distinct", {}))
        new = [p for p in _inputs(crashes) if p.name not in before and not p.name.startswith("failure-")]
        hard += len(new)
        for path in new:
            distinct[f"{path.name.split('-', 1)[0]} (libFuzzer)"] = str(path)
            print(f"  {name}: libFuzzer stopped the worker: {path.name} (see {log_path})", flush=True)
        if status == 0 or not new:
            break  # done, or it died for a reason no restart mends (see the log)
    if status != 0 and not hard:
        hard += 1
        distinct["worker exit status %d" % status] = str(log_path)
        print(f"  {name}: worker exited with status {status}; see {log_path}", flush=True)
    elapsed = time.monotonic() - started
    return {
        "target": name, "executions": executions, "crashes": failures + hard, "distinct": distinct,
        "seconds": round(elapsed, 1), "per_second": round(executions / elapsed) if elapsed else 0,
        "corpus": len(_inputs(work)), "log": str(log_path),
    }


def cmd_fuzz(names: list[str], args) -> int:
    results = []
    for name in names:
        print(f"{name}: fuzzing ({'%d runs' % args.runs if args.runs else 'no run limit'}"
              f"{', at most %g s' % args.seconds if args.seconds else ''})", flush=True)
        result = run_target(name, args)
        results.append(result)
        print(f"{name}: {result['executions']:,} executions, {result['crashes']} crashes "
              f"({len(result['distinct'])} distinct), {result['seconds']} s, {result['per_second']:,}/s, "
              f"corpus {result['corpus']}", flush=True)
    total = sum(r["crashes"] for r in results)
    print(f"total: {sum(r['executions'] for r in results):,} executions, {total} crashes, "
          f"{sum(r['seconds'] for r in results):.0f} s")
    if args.json:
        record = {
            "command": "python -m fuzz " + " ".join(sys.argv[1:]),
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "commit": commit(), **_versions(), "results": results,
        }
        Path(args.json).write_text(json.dumps(record, indent=2) + "\n")
    return 1 if total else 0


def cmd_replay(names: list[str]) -> int:
    """Every corpus and crash input through its target in this process."""
    targets = _targets()
    failed = count = 0
    for name in names:
        for path in _inputs(CORPUS / name) + _inputs(CRASHES / name):
            count += 1
            try:
                targets.TARGETS[name](path.read_bytes())
            except Exception:  # noqa: BLE001 - report every one
                failed += 1
                print(f"FAIL {name} {path.relative_to(ROOT)}\n{traceback.format_exc()}")
    print(f"replayed {count} inputs, {failed} failed")
    return 1 if failed else 0


def _structured_test(target, strategy, build, state: dict, runs: int):
    from hypothesis import HealthCheck, given, settings

    @settings(max_examples=runs, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(strategy)
    def run(recipe):
        state["count"] += 1
        wire = build(recipe)
        try:
            target(wire)
        except Exception:
            state["failing"] = wire  # hypothesis replays the shrunk example last
            raise

    return run


def cmd_structured(names: list[str], args) -> int:
    """The hypothesis differential: ``--runs`` drawn messages per target; a failure is shrunk and saved."""
    import hashlib

    from fuzz import dnsgen

    targets = _targets()
    kinds = {"query": (dnsgen.query_recipes(), dnsgen.build_query), "reply": (dnsgen.reply_recipes(), dnsgen.build_reply)}
    failed = 0
    for name in names:
        if name not in kinds:
            print(f"{name}: no structured generator (only {', '.join(kinds)})")
            continue
        strategy, build = kinds[name]
        state = {"count": 0, "failing": None}
        started = time.monotonic()

        run = _structured_test(targets.TARGETS[name], strategy, build, state, args.runs)
        try:
            run()
            crashes = 0
        except Exception:  # noqa: BLE001 - reported with the shrunk input
            crashes = 1
            failed += 1
            where = "(no input: the harness itself failed)"
            if state["failing"] is not None:
                directory = Path(args.crashes) / name
                directory.mkdir(parents=True, exist_ok=True)
                where = directory / ("structured-" + hashlib.sha1(state["failing"]).hexdigest())
                where.write_bytes(state["failing"])
            print(f"  {name}: FAILURE (shrunk) saved {where}\n{traceback.format_exc(limit=-3)}")
        elapsed = time.monotonic() - started
        print(f"{name} (structured): {state['count']:,} executions, {crashes} crashes, {elapsed:.1f} s, "
              f"{state['count'] / elapsed:,.0f}/s", flush=True)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", nargs="+", metavar="TARGET", help="target names, 'all', or list/seeds/replay")
    parser.add_argument("--runs", type=int, default=0, help="executions per target (0: no limit)")
    parser.add_argument("--seconds", type=float, default=0, help="time limit per target (0: none)")
    parser.add_argument("--max-len", type=int, default=0, help="longest input (default 4096, 8192 for replies)")
    parser.add_argument("--timeout", type=int, default=10, help="seconds one input may take before it counts")
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "bootres-fuzz"),
                        help="where the growing corpora and logs live (default %(default)s)")
    parser.add_argument("--crashes", default=str(CRASHES), help="where failing inputs are saved (default fuzz/crashes)")
    parser.add_argument("--json", help="write the figures (command, date, commit, versions, per target) here")
    parser.add_argument("--verbose", action="store_true", help="show libFuzzer's own output")
    args = parser.parse_args(argv)
    targets = _targets()
    command, names = args.what[0], args.what
    if command == "list":
        for name, function in targets.TARGETS.items():
            print(f"{name:16} {function.__doc__.splitlines()[0]}")
        return 0
    if command == "seeds":
        from fuzz import seeds

        for name, count in seeds.write(CORPUS).items():
            print(f"{name}: {count} seeds")
        return 0
    if command in ("replay", "structured"):
        names = args.what[1:] or ["all"]
    names = list(targets.TARGETS) if names == ["all"] else names
    unknown = [name for name in names if name not in targets.TARGETS]
    if unknown:
        parser.error(f"unknown target {', '.join(unknown)}; try: python -m fuzz list")
    if command == "replay":
        return cmd_replay(names)
    if command == "structured":
        if not args.runs:
            parser.error("structured needs --runs")
        return cmd_structured([n for n in names if n in ("query", "reply")] if args.what[1:] in ([], ["all"])
                              else names, args)
    if not args.runs and not args.seconds:
        parser.error("give --runs, --seconds or both: a campaign needs an end")
    return cmd_fuzz(names, args)


if __name__ == "__main__":
    sys.exit(main())
