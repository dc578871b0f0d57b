"""The one way the namespace tests run the shipped daemon: ``python -m bootres run`` inside a lab namespace.

``BootresProcess(ns, conf)`` starts it (output to the lab's log file);
``status()`` asks its control socket (``{}`` while none answers), ``wait``
polls a predicate with a bound and says what it waited for, with the log,
when it times out or the daemon exits; ``stop()`` is SIGTERM as systemd
sends it, and checks the exit status and that no traceback was logged.
The configuration decides everything else; nothing of the machine's is
touched as long as it points every file under the test's directory.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from bootres import config
from bootres.shell import control
from lab import wait_while_running


class BootresProcess:
    def __init__(self, ns, conf: Path, *, env: dict | None = None, argv: tuple[str, ...] = ()):
        """``env``: variables on top of this process's; ``argv``: arguments after ``run`` (e.g. ``--user``)."""
        self.ns = ns
        self.state_dir = config.load(str(conf)).service.state_dir
        self.started = time.monotonic()
        environ = dict(os.environ, **(env or {}))
        environ.pop("NOTIFY_SOCKET", None)
        self.proc = ns.popen(sys.executable, "-m", "bootres", "run", *argv, "-c", str(conf), env=environ)

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

    def stop(self) -> int:
        """SIGTERM, like systemd; returns the exit status.  The log must hold no traceback."""
        self.proc.terminate()
        status = self.proc.wait(10)
        assert "Traceback" not in self.log(), self.log()
        return status
