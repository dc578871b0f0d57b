"""The shipped daemon as the router tests see it: discovery, the stub files and the kernel's default routes.

``BootresHost(ns, workdir, router=...)`` writes a configuration under
``workdir`` (the ``[router]`` lines given, /etc/hosts of the namespace,
/etc/defaultrouter under ``workdir``, the resolver on the namespace's own
127.0.0.35 with an upstream nobody answers for: these tests are about
routers) and ``start()`` runs ``bootres run`` with it (``BootresProcess``);
``status()`` is the control socket's, ``default_routes()`` what ``ip``
says the kernel has.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

from bootres_process import BootresProcess


class BootresHost:
    def __init__(self, ns, workdir: Path, *, router: str = "", hosts: str = ""):
        self.ns = ns
        self.workdir = workdir
        self.defaultrouter = workdir / "defaultrouter"
        self.config = workdir / "bootres.conf"
        self.hosts = hosts
        self.configure(router)
        self.daemon: BootresProcess | None = None

    def configure(self, router: str = "") -> None:
        """(Re)write the configuration with these ``[router]`` lines; ``reload()`` makes a running one read it."""
        self.config.write_text(
            "[resolver]\nlisten = 127.0.0.35:53\ncontainer_listen = no\nupstreams = 198.18.0.53\ncache_file =\n"
            "hosts_files =\nmanage_resolv_conf = no\n"
            f"[hosts]\nfile = {self.ns.etc / 'hosts'}\nrouter_names = site-router gw\n{self.hosts}\n"
            f"[router]\ndefaultrouter_file = {self.defaultrouter}\n{router}\n"
            f"[service]\nstate_dir = {self.workdir / 'state'}\n"
        )

    def start(self) -> BootresHost:
        self.daemon = BootresProcess(self.config, ns=self.ns)
        return self

    @property
    def proc(self):
        return self.daemon.proc

    @property
    def started(self) -> float:
        return self.daemon.started

    def reload(self) -> None:
        self.daemon.signal(signal.SIGHUP)

    def stop(self) -> None:
        assert self.daemon.stop() == 0, self.daemon.log()

    def log(self) -> str:
        return self.daemon.log()

    def status(self) -> dict:
        return self.daemon.status()

    def default_routes(self) -> list[dict]:
        """The namespace's IPv4 default routes, from ``ip -j`` (test code may read ip's JSON)."""
        out = self.ns.run("ip", "-j", "-4", "route", "show", "default").stdout
        return json.loads(out or "[]")

    def wait(self, predicate, timeout: float, interval: float = 0.01, what: str = "condition"):
        """Poll ``predicate()`` until it returns something true; fail with the daemon's log."""
        return self.daemon.wait(predicate, timeout, what, interval)

    def route_via(self, gateway: str) -> dict | None:
        return next((r for r in self.default_routes() if r.get("gateway") == gateway), None)
