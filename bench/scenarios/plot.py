"""One picture of a scenarios run: per scenario, each resolver's latency distribution.

    python3 -m bench.scenarios.plot bench/results/scenarios-*.json [--out docs/scenarios.png]

Made from the run's own JSON (every latency is in it), so the picture and
the table always come from the same run.  Each panel is one scenario; each
line is one resolver's cumulative distribution of lookup latency on a
logarithmic axis: further left is faster, a step far to the right is a
timeout (failed lookups are in the distribution at the time they took, and
counted in the legend: a fast failure looks like a fast answer otherwise).  matplotlib (Debian's
python3-matplotlib) is a bench-only dependency; the package never imports it.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

COLUMNS = 3
# One colour per resolver, the same in every panel; bootres's variants in warm colours.
COLOURS = {
    "bootres-race": "#d62728", "bootres-hedge": "#ff7f0e", "bootres": "#d62728",
    "dnsmasq": "#1f77b4", "dnsmasq-all": "#17becf", "unbound": "#2ca02c", "glibc": "#7f7f7f",
    "systemd-resolved": "#9467bd",
}
DASHED = {"bootres-hedge", "dnsmasq-all"}  # a variant of the resolver before it in the legend


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def panels(run: dict) -> dict[str, list[dict]]:
    """The cells with latencies, grouped by scenario in the run's order."""
    grouped: dict[str, list[dict]] = {}
    for cell in run["cells"]:
        if cell.get("latencies_ms"):
            grouped.setdefault(cell["scenario"], []).append(cell)
    return grouped


def draw(run: dict, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # no display on a test machine
    import matplotlib.pyplot as plt

    grouped = panels(run)
    rows = max(1, math.ceil(len(grouped) / COLUMNS))
    figure, axes = plt.subplots(rows, COLUMNS, figsize=(5 * COLUMNS, 3.4 * rows), squeeze=False)
    for axis, (scenario, cells) in zip(axes.flat, grouped.items()):
        for cell in cells:
            latencies = sorted(max(ms, 0.01) for ms in cell["latencies_ms"])
            fractions = [(i + 1) / len(latencies) * 100 for i in range(len(latencies))]
            label = cell["resolver"] + (f" ({cell['failed']} failed)" if cell.get("failed") else "")
            axis.step(latencies, fractions, where="post", label=label,
                      color=COLOURS.get(cell["resolver"]), linewidth=1.6,
                      linestyle="--" if cell["resolver"] in DASHED else "-")
        axis.set_xscale("log")
        axis.set_xlim(0.05, 20000)
        axis.set_ylim(0, 101)
        axis.set_title(scenario, fontsize=10)
        axis.set_xlabel("lookup latency, ms (log)")
        axis.set_ylabel("% of lookups ≤ x")
        axis.grid(True, which="major", alpha=0.3)
        for bound in (5, 100):
            axis.axvline(bound, color="black", linewidth=0.6, linestyle=":")
        axis.legend(fontsize=7, loc="lower right")
    for axis in list(axes.flat)[len(grouped):]:
        axis.set_visible(False)
    m = run.get("machine", {})
    figure.suptitle(f"bench/run-scenarios {run.get('started', '')}, bootres at {m.get('commit', '?')}: "
                    "latency CDF per scenario (dotted: 5 ms and 100 ms)", fontsize=11)
    figure.tight_layout(rect=(0, 0, 1, 0.97))
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=90)
    plt.close(figure)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", type=Path, help="a bench/results/scenarios-*.json")
    parser.add_argument("--out", type=Path, default=Path("docs/scenarios.png"))
    args = parser.parse_args(argv)
    print(draw(load(args.json), args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
