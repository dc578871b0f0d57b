"""bench/run-scenarios: build the lab, run every scenario against every resolver, report.

    bench/run-scenarios [--only 1,2,4r,...] [--resolvers bootres-race,glibc,...] [--no-doc]
    bench/run-scenarios --from-json bench/results/scenarios-*.json   # the doc and picture again

Measurements, not assertions: a cell that fails is reported as such and the
run goes on; the regression bounds live in tests/scenarios/.
"""

from __future__ import annotations

import argparse
import datetime
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

from bench.scenarios import boot, load, nameserver_failures, plot, report, service
from bench.scenarios.measure import Cell
from bench.scenarios.peers import all_resolvers
from bench.scenarios.world import World

INTRO = Path(__file__).with_name("doc_intro.md")


def scenario_list():
    """(number, label, function, daemons only, bootres only), in table order.

    "bootres only" scenarios run the default strategy (race) alone: they test
    the service, the stub files and router discovery, which the strategy
    does not touch.
    """
    return [
        *((n, label, fn, False, False) for n, label, fn in nameserver_failures.SCENARIOS),
        ("5", "power restore", boot.power_restore, True, True),
        ("6", "router failover", boot.router_failover, True, True),
        ("7", "first dies under load", load.forwarder_failure_under_load, True, False),
        ("8", "bad config on reload", service.bad_reload, True, True),
        ("9", "kill -9 under load", service.kill_under_load, True, True),
    ]


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="bench/run-scenarios", description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated scenario numbers, e.g. 4,5 (4 includes 4r and 4u; "
                        "default: all)")
    parser.add_argument("--resolvers", help="comma-separated resolver names (default: all)")
    parser.add_argument("--no-doc", action="store_true", help="do not rewrite docs/scenarios.md")
    parser.add_argument("--from-json", type=Path, metavar="PATH",
                        help="run nothing: rewrite docs/scenarios.md and its picture from a run's JSON")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.from_json:
        run = plot.load(args.from_json)
        cells = [Cell.from_json(cell) for cell in run["cells"]]
        write_doc(cells, run, args.from_json)
        return 0
    only = set(args.only.split(",")) if args.only else None  # 0 is the all-healthy baseline
    wanted = set(args.resolvers.split(",")) if args.resolvers else None
    resolvers = [r for r in all_resolvers() if wanted is None or r.name in wanted]
    # SIGTERM (a CI timeout, a ^C from a wrapper) must still tear the lab down.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = datetime.datetime.now(datetime.timezone.utc)
    t0 = time.monotonic()
    cells: list[Cell] = []
    with tempfile.TemporaryDirectory(prefix="bootres-scenarios-") as workdir, World(workdir) as world:
        for number, label, scenario, daemons_only, bootres_only in scenario_list():
            if only is not None and number not in only and number.rstrip("ru") not in only:  # 4 takes 4r, 4u
                continue
            for resolver in resolvers:
                if (bootres_only and resolver.name != "bootres-race") or \
                        (daemons_only and not resolver.is_daemon):
                    continue
                cell = Cell(f"{number} {label}", resolver.name)
                run_cell(world, scenario, resolver, cell, f"s{number}{resolver.name.replace('-', '')}")
                cells.append(cell)
                print(report.row(cells[-1]), flush=True)
    meta = {"command": "bench/run-scenarios" + ("".join(f" {a}" for a in argv or sys.argv[1:])),
            "started": started.strftime("%Y-%m-%dT%H:%M:%SZ"), "duration_s": time.monotonic() - t0,
            "machine": report.machine()}
    print()
    print(report.table(cells))
    json_path = report.write_json(cells, meta)
    print(f"\nJSON: {json_path}")
    if not args.no_doc:
        write_doc(cells, meta, json_path)
    return 0


def write_doc(cells: list[Cell], meta: dict, json_path: Path) -> None:
    """docs/scenarios.md and its picture, from one run."""
    report.write_doc(cells, meta, INTRO.read_text())
    print(f"table: {report.DOC}")
    try:
        print(f"picture: {plot.draw(plot.load(json_path), report.PICTURE)}")
    except ImportError:  # bench-only dependency
        print("picture not made: install python3-matplotlib, then "
              f"python3 -m bench.scenarios.plot {json_path}", file=sys.stderr)


def run_cell(world: World, scenario, resolver, cell: Cell, tag: str) -> None:
    print(f"# {cell.scenario} × {resolver.name} ...", file=sys.stderr, flush=True)
    start = time.monotonic()
    try:
        scenario(world, resolver, cell, tag)
    except Exception as exc:  # measured, not asserted: report the failure in the table and go on
        traceback.print_exc()
        first_line = str(exc).splitlines()[0][:160] if str(exc) else ""
        cell.notes.append(f"ERROR: {type(exc).__name__}: {first_line}")
    cell.extra["cell_seconds"] = round(time.monotonic() - start, 1)


if __name__ == "__main__":
    sys.exit(main())
