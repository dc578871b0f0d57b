"""The scenarios' network, built with the test suite's lab (tests/lab.py).

One LAN on one switch:

    client  198.18.0.2    where the resolver under test and the measuring client run
    ns1     198.18.0.10   nsd                      (the "first nameserver")
    slow    198.18.0.11   nsd behind a +50 ms proxy (this kernel has no netem)
    ns2     198.18.0.12   nsd
    r1, r2  198.18.0.1, 198.18.0.254   routers sending RFC 1256 advertisements (scenarios 5, 6)

Every nsd (response rate limiting off) serves `test.` with wildcards, so every invented name exists:
`*.test` (TTL 300) for misses and hits, `*.stale.test` (TTL 1) for names
that must be expired by the time a scenario asks again.

A dead nameserver is the lab's black hole (iptables DROP of port 53, no ICMP,
no reset).  Upstream queries are counted in each upstream's raw PREROUTING
chain, which runs before the filter table's DROP: queries sent into the
black hole are counted too, since they are load the resolver puts on the
network.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import dns.exception

REPO = Path(__file__).resolve().parents[2]
# tests/lab.py imports its neighbours as top-level modules (pytest's pythonpath = tests).
sys.path.insert(0, str(REPO / "tests"))
import lab as testlab  # noqa: E402

CLIENT = "198.18.0.2"
UPSTREAMS = {"ns1": "198.18.0.10", "slow": "198.18.0.11", "ns2": "198.18.0.12"}
ROUTERS = {"r1": "198.18.0.1", "r2": "198.18.0.254"}
PREFIX = 24
SLOW_MS = 50
STALE_ADDRESS = "198.19.0.2"
COUNTER_TAG = "bench-upstream-queries"
DELAY_PROXY = Path(__file__).with_name("delayproxy.py")
RDISC_ROUTER = Path(__file__).with_name("rdisc_router.py")
# Routers advertise every 2 s with a 6 s lifetime: a dead one is forgotten within 6 s.
ADVERT_INTERVAL_S = 2
ADVERT_LIFETIME_S = 6


# How a dead nameserver dies (Upstream.kill): "silent" is the black hole
# (lab.blackhole: DROP, nothing comes back); the others make its host answer
# every query with an ICMP error, as a host with no nameserver running
# ("refused": port unreachable) or a router that knows it is gone
# ("unreachable": network unreachable) would.
DEATHS = ("silent", "refused", "unreachable")
_ICMP = {"refused": "icmp-port-unreachable", "unreachable": "icmp-net-unreachable"}


class Upstream:
    """One nameserver host: kill (black hole or ICMP errors), revive, count the queries it was sent."""

    def __init__(self, world: "World", label: str, address: str):
        self.lab = world.lab
        self.label = label
        self.address = address
        self.ns = world.lab.netns(label)
        world.lab.attach(self.ns, world.switch, f"{address}/{PREFIX}")
        self.dead: str | None = None  # how it died (DEATHS)
        delayed = label == "slow"
        # The slow one: nsd on its own loopback, the delaying proxy on the LAN address.
        # Debian's nsd limits answers to 200/s per client /24 and wildcard,
        # dropping the rest: scenario 7 would measure that limiter, not the resolver.
        world.lab.nsd(self.ns, "127.0.0.1" if delayed else address, zone="test.", ttl=300,
                      extra=f"*.stale 1 IN A {STALE_ADDRESS}", rate_limit=False)
        if delayed:
            self.ns.popen(sys.executable, str(DELAY_PROXY), address, "127.0.0.1", str(SLOW_MS))
        self._wait_answering()
        for match in (["-p", "udp"], ["-p", "tcp", "--syn"]):
            self.ns.iptables("-t", "raw", "-A", "PREROUTING", "-i", "eth0", *match, "--dport", "53",
                             "-m", "comment", "--comment", COUNTER_TAG)

    def _wait_answering(self) -> None:
        for _ in range(50):  # bounded: 50 tries, about 10 s
            try:
                self.ns.dns_query(self.address, "ready.test", timeout=0.2)
                return
            except (dns.exception.DNSException, OSError):
                continue
        raise testlab.LabError(f"nameserver {self.label} on {self.address} does not answer")

    def kill(self, how: str = "silent") -> None:
        if self.dead is None:
            self._rules("-I", how)
            self.dead = how

    def revive(self) -> None:
        if self.dead is not None:
            self._rules("-D", self.dead)
            self.dead = None

    def _rules(self, action: str, how: str) -> None:
        if how == "silent":
            (self.lab.blackhole if action == "-I" else self.lab.unblackhole)(self.ns)
            return
        for proto in ("udp", "tcp"):
            self.ns.iptables(action, "INPUT", "-p", proto, "--dport", "53", "-j", "REJECT",
                             "--reject-with", _ICMP[how])

    def queries(self) -> int:
        out = self.ns.iptables("-t", "raw", "-nvxL", "PREROUTING").stdout
        return sum(int(line.split()[0]) for line in out.splitlines() if COUNTER_TAG in line)


class World:
    """The lab with the client, three nameservers and two router hosts; `close()` undoes it."""

    def __init__(self, workdir: str | Path):
        self.workdir = Path(workdir)
        self.lab = testlab.Lab(self.workdir)
        try:
            self.switch = self.lab.switch()
            self.client = self.lab.netns("client")
            self.client_if = self.lab.attach(self.client, self.switch, f"{CLIENT}/{PREFIX}")
            # Only files and DNS: this machine's nsswitch.conf also names mymachines.
            (self.client.etc / "nsswitch.conf").write_text("hosts: files dns\n")
            self.upstreams = {label: Upstream(self, label, address) for label, address in UPSTREAMS.items()}
            self.routers = {}
            for label, address in ROUTERS.items():
                self.routers[label] = self.lab.netns(label)
                self.lab.attach(self.routers[label], self.switch, f"{address}/{PREFIX}")
        except BaseException:
            self.lab.close()
            raise

    def __enter__(self) -> "World":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.lab.close()

    def addresses(self, *labels: str) -> list[str]:
        return [self.upstreams[label].address for label in labels]

    def reset(self) -> None:
        """Every nameserver alive; no default route in the client."""
        for upstream in self.upstreams.values():
            upstream.revive()
        self.client.run("ip", "route", "flush", "exact", "0.0.0.0/0", check=False)

    def queries(self) -> int:
        """Upstream queries so far, all nameservers together (counters only grow)."""
        return sum(upstream.queries() for upstream in self.upstreams.values())

    def set_nameservers(self, nameservers: list[str]) -> None:
        """The client's resolv.conf: these servers and glibc's stock options (timeout 5 s, 2 attempts)."""
        self.client.write_resolv_conf("".join(f"nameserver {ns}\n" for ns in nameservers))

    def default_route(self) -> str | None:
        """The client's default gateway, or None."""
        out = self.client.run("ip", "-4", "route", "show", "default").stdout.split()
        return out[out.index("via") + 1] if "via" in out else None

    def advertise(self, label: str, preference: int) -> subprocess.Popen:
        """Router `label` starts sending RFC 1256 advertisements; kill the process to make it die."""
        return self.routers[label].popen(sys.executable, str(RDISC_ROUTER), ROUTERS[label], str(preference),
                                         str(ADVERT_INTERVAL_S), str(ADVERT_LIFETIME_S))

    def getent_files(self, name: str) -> str | None:
        """The address the client's /etc/hosts alone gives `name` (glibc, no DNS), or None."""
        out = self.client.run("getent", "-s", "files", "hosts", name, check=False).stdout.split()
        return out[0] if out else None


def kill(proc: subprocess.Popen) -> None:
    """SIGKILL one process we started and reap it."""
    if proc.poll() is None:
        proc.kill()
    proc.wait(5)


def wait_until(predicate, timeout: float, interval: float = 0.05):
    """Poll `predicate` until it returns something truthy or `timeout` passes; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)
