"""What every benchmark records: bench/results/KIND-<UTC time>.json, with the date, the command and the commit measured.

bench/results/ is not committed (absent in a fresh clone); docs/ carry the
figures, with the date, command and commit these files give.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def start(**fields) -> dict:
    """The results of a run starting now: its date and command line (relative to the repository), then ``fields``."""
    return {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:]), **fields}


def write(kind: str, results: dict, out: Path | None = None) -> Path:
    """Add the commit measured (and whether tracked files had changes on top), write ``out`` or the default path."""
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    changed = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                             text=True).stdout.strip()
    results["commit"] = head + (" with uncommitted changes" if changed else "")
    if out is None:
        out = ROOT / "bench" / "results" / f"{kind}-{results['date'].replace(':', '').replace('+0000', 'Z')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {out} (commit {results['commit']})")
    return out
