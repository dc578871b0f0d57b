"""What bootres costs a booting host: the same Debian 12 image booted with the package and without.

    flock /tmp/bench.lock python3 bench/boot_cost.py [--boots N] [--variants online,plain] [--out PATH]

Root only.  Builds the .deb (tests/boot/bootlab.py), makes images of the
boot test's system (systemd-networkd with wait-online, nsd as the upstream
nameserver, not ordered before bootres) in pairs that differ only in
bootres installed or not; variant "online" has multi-user.target want
network-online.target, "plain" does not.  Boots each image once to warm
up (the install's first boot, which waits for bootres to write the
generator's cache, as on any host that ran a moment), then N times more, in
turn, with systemd as PID 1 in systemd-nspawn.  Each boot's figures are
systemd's own timestamps inside the container: when sysinit.target, multi-user.target (and bootres's
units) became active, in ms after systemd started.  Prints them and the
medians, and writes bench/results/boot_cost-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "boot"))

import bootlab  # noqa: E402  (the boot test's image and container helpers)
import record  # noqa: E402  (bench/, this script's directory)

TARGETS = ("sysinit.target", "basic.target", "multi-user.target", "network-online.target", "nss-lookup.target")
BOOTRES_UNITS = ("bootres.socket", "bootres.service")
BUDGET_MS = 20.0  # issue 13: the medians may differ by at most this much


VARIANTS = {
    # multi-user.target wants network-online.target (a server whose services need the network)
    "online": True,
    # nothing wants network-online.target (a stock Debian 12 install)
    "plain": False,
}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--boots", type=int, default=5, help="measured boots per image (after one warm-up)")
    parser.add_argument("--variants", type=lambda text: text.split(","), default=list(VARIANTS),
                        help=f"comma-separated, of: {', '.join(VARIANTS)}")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    results = record.start(boots=args.boots, variants=args.variants)
    if os.geteuid() != 0:
        print("boot_cost: needs root (systemd-nspawn)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="boot-cost-"))
    images = [(variant, package) for variant in args.variants for package in ("with", "without")]
    boots: dict[str, dict[str, list[dict]]] = {variant: {"with": [], "without": []} for variant in args.variants}
    try:
        deb, _, _ = bootlab.build_deb(work / "deb")
        roots = {}
        for variant, package in images:
            (work / f"{variant}-{package}").mkdir()
            roots[(variant, package)] = bootlab.prepare_image(
                work / f"{variant}-{package}", deb if package == "with" else None, extra=bootlab.UNORDERED_UPSTREAM,
                online=VARIANTS[variant])
        for round_ in range(args.boots + 1):  # round 0 warms up
            for variant, package in images:
                units = TARGETS + (BOOTRES_UNITS if package == "with" else ())
                # The first boot after the install waits for bootres to write the generator's cache, as
                # any host that ran a moment has.
                # (A package from before bootres-generator, for a comparison, has no cache to wait for.)
                generator = (roots[(variant, package)] / "usr/lib/systemd/system-generators/bootres-generator").exists()
                wait_for = bootlab.GENERATOR_CACHE if generator and round_ == 0 else None
                figures, booted, stopped = bootlab.timed_boot(roots[(variant, package)], f"bc{os.getpid()}{round_}",
                                                              units, wait_for)
                print(f"{'warm-up' if round_ == 0 else f'boot {round_}':7} {variant:6} {package:7}"
                      + "".join(f" {unit.split('.')[0]} {value:.1f}" for unit, value in figures.items()
                                if value is not None) + f" (boot {booted:.1f} s, poweroff {stopped:.1f} s)", flush=True)
                if round_:
                    boots[variant][package].append(figures)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    medians, differences = {}, {}
    for variant, runs in boots.items():
        medians[variant] = {package: {unit: statistics.median(b[unit] for b in figures if b[unit] is not None)
                                      for unit in figures[0] if any(b[unit] is not None for b in figures)}
                            for package, figures in runs.items()}
        with_, without = medians[variant]["with"], medians[variant]["without"]
        differences[variant] = {unit: with_[unit] - without[unit] for unit in TARGETS
                                if unit in with_ and unit in without}
        for unit, difference in differences[variant].items():
            print(f"{variant:6} median {unit:22} with {with_[unit]:7.1f} ms  without {without[unit]:7.1f} ms"
                  f"  difference {difference:+6.1f} ms")
        for unit in BOOTRES_UNITS:
            if unit in with_:  # (no bootres.socket in a package from before it)
                print(f"{variant:6} median {unit:22} with {with_[unit]:7.1f} ms")
    results.update({
        "unit": "ms after systemd started (UserspaceTimestampMonotonic) until ActiveEnterTimestampMonotonic",
        "boots": boots, "medians": medians, "differences_ms": differences, "budget_ms": BUDGET_MS,
        "load_average": os.getloadavg(),
    })
    record.write("boot_cost", results, args.out)
    within = {variant: all(abs(found[unit]) <= BUDGET_MS for unit in ("sysinit.target", "multi-user.target"))
              for variant, found in differences.items()}
    print("within the budget of", BUDGET_MS, "ms:", within)
    return 0 if all(within.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
