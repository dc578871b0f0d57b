"""One atheris (libFuzzer) process for one target: ``python -m fuzz.worker TARGET STATS CRASHES -- LIBFUZZER_ARGS``.

Started by ``python -m fuzz`` (``fuzz/__main__.py``), one target at a time.
bootres and the targets are imported under atheris's bytecode
instrumentation, so libFuzzer is guided by their branch coverage.

A target that raises does not stop the campaign: the first input of each
distinct failure (exception type and contract, or the innermost bootres
frame) is saved under CRASHES as ``failure-SHA1`` with its traceback next to
the statistics, and fuzzing goes on.  Executions and failures are written to
STATS (JSON) every few thousand executions and at exit, so the runner has
them even when libFuzzer ends the process itself (a timeout, an OOM).
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import re
import sys
import time
import traceback

import atheris


def _signature(exc: BaseException) -> str:
    """What makes two failures the same bug: the contract, or where the exception came from."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "/bootres/" in f.filename] or frames
    where = f"{os.path.basename(ours[-1].filename)}:{ours[-1].lineno}" if ours else "?"
    first = re.sub(r"\d+", "N", str(exc).split("\n", 1)[0][:160])  # "RCODE 35" and "RCODE 40" are one bug
    if type(exc).__name__ == "ContractError":
        return f"ContractError: {first}"
    return f"{type(exc).__name__} at {where}: {first}"


def main() -> None:
    target_name, stats_path, crash_dir = sys.argv[1:4]
    libfuzzer_args = sys.argv[5:] if sys.argv[4:5] == ["--"] else sys.argv[4:]
    with atheris.instrument_imports(include=["bootres", "fuzz.targets"]):
        from fuzz import targets
    target = targets.TARGETS[target_name]
    stats = {"target": target_name, "executions": 0, "failures": 0, "distinct": {}, "started": time.time()}
    log_path = stats_path + ".log"

    def save_stats() -> None:
        stats["elapsed"] = time.time() - stats["started"]
        temporary = stats_path + ".tmp"
        with open(temporary, "w") as handle:
            json.dump(stats, handle)
        os.replace(temporary, stats_path)

    def one_input(data: bytes) -> None:
        stats["executions"] += 1
        try:
            target(data)
        except Exception as exc:  # noqa: BLE001 - every escape is a finding; record it and go on
            stats["failures"] += 1
            signature = _signature(exc)
            if signature not in stats["distinct"]:
                os.makedirs(crash_dir, exist_ok=True)
                path = os.path.join(crash_dir, "failure-" + hashlib.sha1(data).hexdigest())
                with open(path, "wb") as handle:
                    handle.write(data)
                stats["distinct"][signature] = path
                with open(log_path, "a") as log:
                    log.write(f"=== {signature}\n{path}\n{''.join(traceback.format_exception(exc))}\n")
                print(f"FAILURE {signature}\n  saved {path}", file=sys.stderr, flush=True)
                save_stats()
        if stats["executions"] % 5000 == 0:
            save_stats()

    atexit.register(save_stats)
    atheris.Setup([sys.argv[0], *libfuzzer_args], one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
