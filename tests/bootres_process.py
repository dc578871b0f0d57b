"""The one way every test runs the shipped daemon: ``python -m bootres run`` as a child process.

``BootresProcess(conf, ns=...)`` starts it inside a lab namespace (output to
the lab's log file), or, with ``log_dir`` and no namespace, in this
machine's own namespace (tests/shell: a configuration that binds only
loopback and writes only under the test's directory).  ``status()`` asks
its control socket (``{}`` while none answers), ``wait`` polls a predicate
with a bound and says what it waited for, with the log, when it times out
or the daemon exits; ``stop()`` is SIGTERM as systemd sends it, and checks
the exit status and that no traceback was logged.  The environment is this
process's without systemd's NOTIFY_SOCKET and JOURNAL_STREAM (the log goes
to the file), plus ``env``.  The configuration decides everything else;
nothing of the machine's is touched as long as it points every file under
the test's directory.
"""

from __future__ import annotations

import os
import signal as signals
import subprocess
import sys
import time
from pathlib import Path

from bootres import config
from bootres.shell import control
from lab import wait_while_running


class BootresProcess:
    def __init__(self, conf: Path, *, ns=None, log_dir: Path | None = None, env: dict | None = None,
                 argv: tuple[str, ...] = (), python: str = sys.executable, entry: tuple[str, ...] = ("-m", "bootres"),
                 wrapper: tuple[str, ...] = (), **popen):
        """``env``: variables on top of this process's; ``argv``: arguments after ``run`` (e.g. ``--user``);
        ``python`` and ``entry``: what runs (Debian's interpreter, a test's own entry point); ``wrapper``: a
        command that runs it (``unshare ...``); ``popen``: more for ``Popen`` (``pass_fds``, ``cwd``)."""
        self.ns = ns
        try:
            self.state_dir = config.load(str(conf)).service.state_dir
        except config.ConfigError:
            self.state_dir = None  # a test of a configuration the daemon refuses
        self.started = time.monotonic()
        environ = dict(os.environ)
        environ.pop("NOTIFY_SOCKET", None)
        environ.pop("JOURNAL_STREAM", None)
        environ.update(env or {})
        command = [*wrapper, python, *entry, "run", *argv, "-c", str(conf)]
        if ns is not None:
            self.proc = ns.popen(*command, env=environ, **popen)
        else:
            log_path = log_dir / "bootres.log"
            with log_path.open("wb") as log:
                self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environ, **popen)
            self.proc.log_path = log_path

    def status(self) -> dict:
        try:
            return control.request(self.state_dir, {"cmd": "status"})
        except control.NotRunning:
            return {}

    def log(self) -> str:
        return self.proc.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait(self, predicate, timeout: float, what: str, interval: float = 0.005):
        """The first true value of ``predicate()`` within ``timeout`` seconds."""
        return wait_while_running(self.proc, self.log, predicate, timeout, what, interval)

    def wait_for_log(self, text: str, timeout: float = 10.0) -> str:
        """The first log line holding ``text``."""
        return self.wait(lambda: next((line for line in self.log().splitlines() if text in line), None),
                         timeout, f"a log line with {text!r}", interval=0.02)

    def signal(self, signum: int = signals.SIGHUP) -> None:
        self.proc.send_signal(signum)

    def exited(self, timeout: float = 15.0) -> int:
        """The exit status, once it has exited (within ``timeout``)."""
        return self.proc.wait(timeout)

    def close(self) -> None:
        """Killed if still running (a test's teardown; ``stop`` is the clean way)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> int:
        """SIGTERM, like systemd; returns the exit status.  The log must hold no traceback."""
        self.proc.terminate()
        status = self.proc.wait(10)
        assert "Traceback" not in self.log(), self.log()
        return status
