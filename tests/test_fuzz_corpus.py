"""The fuzzing harness in CI (docs/fuzzing.md): saved inputs as regression tests, and short bounded runs.

* Every input in ``fuzz/corpus`` (seeds) and ``fuzz/crashes`` (everything
  that ever failed) goes through every target: a contract holds for any
  bytes, so an input found for one parser is a fair test of the others.
* Each atheris target runs for a few thousand inputs (``python -m fuzz all``,
  bounded in runs and seconds), and the hypothesis differential draws whole
  DNS messages for the query and reply targets.

The whole file stays under about 30 seconds.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from fuzz import dnsgen, targets  # beside bootres, on the tests' path by tox.ini's pythonpath

ROOT = Path(__file__).resolve().parent.parent

SAVED = sorted(path for kind in ("corpus", "crashes") for path in (ROOT / "fuzz" / kind).glob("*/*") if path.is_file())


def test_every_target_has_seeds():
    for name in targets.TARGETS:
        assert list((ROOT / "fuzz" / "corpus" / name).iterdir()), f"fuzz/corpus/{name} is empty"


@pytest.mark.parametrize("path", SAVED, ids=[str(p.relative_to(ROOT / "fuzz")) for p in SAVED])
def test_saved_input_keeps_every_contract(path):
    data = path.read_bytes()
    failures = []
    for name, target in targets.TARGETS.items():
        try:
            target(data)
        except Exception as exc:  # noqa: BLE001 - name every target it breaks
            failures.append(f"{name}: {type(exc).__name__}: {str(exc)[:2000]}")
    assert not failures, f"{path.relative_to(ROOT)} ({data[:64].hex()}...):\n" + "\n".join(failures)


def test_each_target_survives_a_short_atheris_run(tmp_path):
    """Bounded: 2,500 executions or 2 s per target, whichever comes first (``python -m fuzz all``)."""
    pytest.importorskip("atheris")
    figures = tmp_path / "figures.json"
    run = subprocess.run(
        [sys.executable, "-m", "fuzz", "all", "--runs", "2500", "--seconds", "2", "--work", str(tmp_path / "work"),
         "--crashes", str(tmp_path / "crashes"), "--json", str(figures)],
        cwd=ROOT, capture_output=True, text=True, timeout=100,
    )
    assert figures.exists(), run.stdout + run.stderr
    results = json.loads(figures.read_text())["results"]
    assert [r["target"] for r in results] == list(targets.TARGETS)
    broken = {r["target"]: r["distinct"] for r in results if r["crashes"]}
    assert not broken, (f"fuzzing found failures (copy the inputs into fuzz/crashes/TARGET/ and fix):\n{broken}\n"
                        + run.stdout[-4000:])
    assert all(r["executions"] >= 500 for r in results), run.stdout
    assert run.returncode == 0, run.stdout + run.stderr


_QUICK = settings(max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck))


@_QUICK
@given(dnsgen.query_recipes())
def test_structured_queries_against_dnspython(recipe):
    targets.target_query(dnsgen.build_query(recipe))


@_QUICK
@given(dnsgen.reply_recipes())
def test_structured_replies_against_dnspython(recipe):
    targets.target_reply(dnsgen.build_reply(recipe))
