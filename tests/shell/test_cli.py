"""Every command's exit status and output, without a running daemon where none is needed.

``run``, ``status`` and ``query`` against a live service are in
tests/shell/test_daemon.py (a real process) and tests/boot/ (a real boot).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bootres import __version__
from bootres.shell import cli


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def conf(tmp_path):
    path = tmp_path / "bootres.conf"
    path.write_text(f"[resolver]\nupstreams = 198.18.0.10\n[service]\nstate_dir = {tmp_path}/state\n")
    return path


def test_version(capsys):
    with pytest.raises(SystemExit) as exit:
        cli.main(["--version"])
    assert exit.value.code == 0 and capsys.readouterr().out == f"bootres {__version__}\n"


def test_python_dash_m_works():
    proc = subprocess.run([sys.executable, "-m", "bootres", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == f"bootres {__version__}"


def test_check_valid(capsys, conf):
    code, out, _ = run_cli(capsys, "check", "-c", str(conf))
    assert code == 0 and out == f"{conf}: valid (1 file read)\n"


def test_check_invalid_lists_every_problem(capsys, tmp_path):
    bad = tmp_path / "bad.conf"
    bad.write_text("[resolver]\nlisten = nowhere\ntimeout = soon\n[nope]\n")
    code, out, _ = run_cli(capsys, "check", "-c", str(bad))
    assert code == 2
    lines = out.splitlines()
    assert sorted(line.split(": ")[0] for line in lines) == [f"{bad}:2", f"{bad}:3", f"{bad}:4"]


def test_status_not_running(capsys, conf):
    code, _, err = run_cli(capsys, "status", "-c", str(conf))
    assert code == 3 and "not running" in err


def test_status_json_not_running(capsys, conf):
    code, out, _ = run_cli(capsys, "status", "--json", "-c", str(conf))
    report = json.loads(out)
    assert code == 3 and report["running"] is False and report["config"] == str(conf)


def test_query_not_running(capsys, conf):
    code, _, err = run_cli(capsys, "query", "www.example.test", "-c", str(conf))
    assert code == 3 and "not running" in err


def test_state_dir_is_found_in_a_half_edited_config(tmp_path):
    path = tmp_path / "bootres.conf"
    path.write_text(f"[resolver]\nlisten = nowhere\n[service]\nstate_dir = {tmp_path}/elsewhere\n")
    assert cli.state_dir_of(str(path)) == f"{tmp_path}/elsewhere"
    assert cli.state_dir_of(str(tmp_path / "missing.conf")) == "/run/bootres"


def test_run_refuses_an_invalid_config(capsys, tmp_path):
    bad = tmp_path / "bad.conf"
    bad.write_text("[resolver]\nlisten = nowhere\n")
    code, _, err = run_cli(capsys, "run", "-c", str(bad))
    assert code == 2
    assert err.splitlines()[-1] == "bootres: not starting: 1 problem(s) in the configuration"


def test_run_makes_asyncio_without_ssl_and_leaves_ssl_importable(conf):
    # The daemon is replaced by a probe (run in a fresh interpreter: the
    # test process has asyncio already): cli.main runs up to daemon.run.
    probe = f"""
import sys, types
fake = types.ModuleType("bootres.shell.daemon")
def run(cfg, user=None, early_sighups=None):
    import asyncio.base_events, asyncio.selector_events, asyncio.sslproto
    assert asyncio.base_events.ssl is None and asyncio.sslproto.ssl is None, "asyncio was made with ssl"
    assert "ssl" not in sys.modules
    import ssl
    assert ssl.create_default_context
    return 7
fake.run = run
sys.modules["bootres.shell.daemon"] = fake
from bootres.shell import cli
sys.exit(cli.main(["run", "-c", {str(conf)!r}]))
"""
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert proc.returncode == 7, proc.stderr


@pytest.mark.parametrize("argv", [["run"], ["run", "-c", "/etc/x.conf"], ["run", "--config", "/x"],
                                  ["run", "--config=/x"], ["run", "--user", "bootres"], ["run", "--user=bootres"],
                                  ["run", "-c", "/x", "--user", "bootres"], ["run", "--user", "bootres", "-c", "/x"]])
def test_service_command_line_reads_as_argparse_reads_it(argv):
    assert vars(cli.service_args(argv)) == vars(cli.build_parser().parse_args(argv))


@pytest.mark.parametrize("argv", [[], ["run", "-h"], ["run", "-c"], ["run", "-c", "-h"], ["run", "--config="],
                                  ["run", "-c", "/x", "extra"], ["status"], ["check", "-c", "/x"],
                                  ["run", "--user"], ["run", "--user", "a", "--user", "b"], ["run", "--nope", "x"]])
def test_anything_else_goes_to_argparse(argv):
    assert cli.service_args(argv) is None


def test_status_that_cannot_be_read_says_so(capsys, conf, monkeypatch):
    # Another version of bootres answering mid-upgrade, say: one line, exit 1, no traceback.
    from bootres.shell import control

    monkeypatch.setattr(control, "request", lambda state_dir, message: {"running": True, "pid": "1"})
    code, out, err = run_cli(capsys, "status", "-c", str(conf))
    assert (code, out) == (1, "")
    assert err == "bootres status: the service's reply cannot be read: status.pid: int expected, not str\n"
