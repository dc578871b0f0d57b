"""The resolvers under comparison, each started fresh in the client namespace.

A resolver here is what the client's resolv.conf points at: bootres (race
and hedge), dnsmasq (default and --all-servers) and unbound as a forwarder
listen on their own loopback address; "glibc" is no daemon at all: the
client's resolv.conf lists the upstreams themselves, as on a host with no
local resolver.  dnsmasq and unbound run with their stock settings, started
by the test lab (tests/lab.py).  systemd-resolved is not here: it needs
systemd as PID 1, which this machine does not run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dns.exception

from bench.scenarios.world import REPO, World

READY_TIMEOUT = 10.0


class Resolver:
    """Base: a daemon on `listen` in the client namespace, forwarding to the upstreams."""

    name = ""
    listen = ""
    # Scenarios that need a daemon (load, reload, kill -9, boot) skip resolvers without one.
    is_daemon = True

    def __init__(self):
        self.daemon = None

    @property
    def nameservers(self) -> list[str]:
        return [self.listen]

    def start(self, world: World, upstreams: list[str]) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        if self.daemon is not None:
            self.daemon.stop()
            self.daemon = None


class Glibc(Resolver):
    """No local resolver: glibc's stub asks the upstreams in resolv.conf order."""

    name = "glibc"
    is_daemon = False

    def start(self, world, upstreams) -> None:
        self.upstreams = list(upstreams)

    @property
    def nameservers(self) -> list[str]:
        return self.upstreams


class Dnsmasq(Resolver):
    name = "dnsmasq"
    listen = "127.0.0.36"
    all_servers = False

    def start(self, world, upstreams) -> None:
        self.daemon = world.lab.dnsmasq(world.client, self.listen, forward_to=upstreams,
                                        all_servers=self.all_servers)


class DnsmasqAllServers(Dnsmasq):
    name = "dnsmasq-all"
    listen = "127.0.0.37"
    all_servers = True


class Unbound(Resolver):
    name = "unbound"
    listen = "127.0.0.38"

    def start(self, world, upstreams) -> None:
        self.daemon = world.lab.unbound(world.client, self.listen, forward_to=upstreams)


BOOTRES_CONF = """\
[resolver]
listen = {listen}:53
manage_resolv_conf = no
upstreams = {upstreams}
strategy = {strategy}
cache_file = {dir}/cache.db
{resolver_extra}

[hosts]
file = {hosts_file}
router_names = site-router
pin = {pin}

[router]
discovery = {discovery}
interfaces = {interfaces}
defaultrouter_file = {defaultrouter_file}

[service]
state_dir = {dir}/run
"""


class Bootres(Resolver):
    """`bootres run` from this tree, by the bench's own python, one instance per scenario.

    Settings are bootres's defaults except paths (all in a fresh work
    directory per start) and what a scenario sets with `settings`: the
    hosts block, pinned names and router discovery are off by default;
    `resolver_extra` adds lines to [resolver].
    """

    listen = "127.0.0.35"
    DEFAULT_SETTINGS = {"hosts_file": "", "pin": "", "discovery": "no", "interfaces": "", "resolver_extra": ""}

    def __init__(self, strategy: str):
        super().__init__()
        self.strategy = strategy
        self.name = f"bootres-{strategy}"
        self.proc: subprocess.Popen | None = None

    def start(self, world, upstreams, wait_ready: bool = True, env: dict | None = None, **settings) -> None:
        """Write a configuration and run bootres; `env` replaces the environment (default: ours)."""
        self.world = world
        self.env = env
        self.dir = Path(tempfile.mkdtemp(prefix=f"{self.name}-", dir=world.workdir))
        (self.dir / "run").mkdir()
        self.config_path = self.dir / "bootres.conf"
        self.config_path.write_text(BOOTRES_CONF.format(
            listen=self.listen, upstreams=" ".join(upstreams), strategy=self.strategy, dir=self.dir,
            **{**self.DEFAULT_SETTINGS, "defaultrouter_file": self.dir / "defaultrouter", **settings}))
        self.exec()
        if wait_ready:
            self.wait_ready()

    def exec(self, prefix: list[str] = (), pass_fds: list[int] = ()) -> None:
        """Start the process (again, with the same configuration), after `prefix` (a wrapper) if given."""
        self.started_at = time.monotonic()
        self.proc = self.world.client.popen(*prefix, sys.executable, "-m", "bootres", "run", "-c",
                                            str(self.config_path), cwd=REPO, env=self.env, pass_fds=pass_fds)

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Return once it answers a query (any rcode); a name no scenario asks."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # bounded by timeout
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}: {self.log()[-2000:]}")
            try:
                self.world.client.dns_query(self.listen, "ready.test", timeout=0.2)
                return
            except (dns.exception.DNSException, OSError):
                time.sleep(0.02)
        raise RuntimeError(f"{self.name} did not answer within {timeout} s: {self.log()[-2000:]}")

    def status(self) -> dict:
        """`bootres status --json`, parsed ({} when it printed nothing usable)."""
        try:
            return json.loads(self.cli("status", "--json").stdout)
        except ValueError:
            return {}

    def log(self) -> str:
        return self.proc.log_path.read_text(errors="replace") if self.proc and self.proc.log_path else ""

    def cli(self, *args: str, timeout: float = 10) -> subprocess.CompletedProcess:
        """A bootres command (status, check, query) in the client namespace, never raising on exit status."""
        return subprocess.run(["ip", "netns", "exec", self.world.client.name, sys.executable, "-m", "bootres",
                               *args, "-c", str(self.config_path)],
                              capture_output=True, text=True, timeout=timeout, cwd=REPO)

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(5)
            self.proc = None


def all_resolvers() -> list[Resolver]:
    return [Bootres("race"), Bootres("hedge"), Glibc(), Dnsmasq(), DnsmasqAllServers(), Unbound()]
