"""A real ResolverService inside a lab namespace, and a client beside it.

The service is ``python -m bootres.shell.resolverd`` started inside the
namespace, so every socket it makes, listeners and per-query upstream
sockets alike, lives there; the test reads ``status()`` over its control
socket (a path in tmp_path: unix sockets do not care about namespaces).

Topology (``upstream_lab``): a ``host`` namespace running bootres on
127.0.0.35:53 and 198.18.0.2, wired to a ``servers`` namespace that holds
198.18.0.10, .11 and .12; ``silence(address)`` black-holes one of them.
"""

from __future__ import annotations

import gc
import socket
import statistics
import sys
import time
from pathlib import Path

import dns.message

from bootres import config
from bootres.shell import control

HOST = "198.18.0.2"
UPSTREAMS = ["198.18.0.10", "198.18.0.11", "198.18.0.12"]
LISTEN = "127.0.0.35"


def resolver_config(tmp_path: Path, **keys) -> Path:
    """A configuration file from ``[resolver]`` keys, with test-friendly defaults.

    Nothing points at the machine's own files: no hosts files, no cache file
    unless a test asks for one.
    """
    values = {
        "listen": f"{LISTEN}:53 {HOST}:53",
        "upstreams": " ".join(UPSTREAMS[:2]),
        "cache_file": "",
        "hosts_files": "",
        "timeout": "1s",
        "stale_answer_after": "300ms",
        **keys,
    }
    path = tmp_path / f"bootres-{time.monotonic_ns()}.conf"
    path.write_text("[resolver]\n" + "".join(f"{k} = {v}\n" for k, v in values.items()))
    config.load(str(path))  # a typo in a test fails here, not as a silent default
    return path


class ResolverProcess:
    """``python -m bootres.shell.resolverd`` running inside ``ns``, with its control socket.

    A process of its own, like the real service: measured latencies are not
    disturbed by the test's own Python threads (one interpreter lock).
    """

    def __init__(self, ns, conf: Path, tmp_path: Path):
        self.ns = ns
        self.control_dir = str(tmp_path / f"control-{time.monotonic_ns()}")
        self.proc = ns.popen(sys.executable, "-m", "bootres.shell.resolverd", "-c", str(conf),
                             "--control", self.control_dir)
        deadline = time.monotonic() + 15
        while True:  # bounded: the service answers its control socket once it listens
            try:
                self.status()
                break
            except control.NotRunning:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"resolver did not start:\n{self.log()}") from None
                time.sleep(0.02)

    def status(self) -> dict:
        return control.request(self.control_dir, {"cmd": "status"})

    def query(self, name: str, rdtype: str = "A") -> dict:
        return control.request(self.control_dir, {"cmd": "query", "name": name, "type": rdtype})

    def upstream(self, address: str) -> dict:
        return next(u for u in self.status()["upstreams"] if u["address"] == f"{address}:53")

    def log(self) -> str:
        return self.proc.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # bounded poll of the log file
            for line in self.log().splitlines():
                if text in line:
                    return line
            time.sleep(0.02)
        raise AssertionError(f"no log line with {text!r} in:\n{self.log()}")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int:
        """SIGTERM, like systemd; returns the exit status.  The log must hold no traceback."""
        self.proc.terminate()
        status = self.proc.wait(10)
        assert "Traceback" not in self.log(), self.log()
        return status


class Client:
    """A UDP client in ``ns`` asking bootres; ``ask`` returns (reply, milliseconds).

    Queries are built and replies parsed with dnspython outside the timed
    part: on a slow machine dnspython itself costs a good part of a
    millisecond, and the latency bounds are about the resolver.
    """

    def __init__(self, ns, server: str = LISTEN, port: int = 53):
        self.ns = ns
        self.server, self.port = server, port
        self.sock = ns.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.connect((server, port))

    def ask(self, name: str, rdtype: str = "A", timeout: float = 3.0, **kw):
        query = dns.message.make_query(name, rdtype, **kw)
        wire = query.to_wire()
        self.sock.settimeout(timeout)
        gc.disable()  # a collection of the test process's garbage is not the resolver's latency
        try:
            started = time.perf_counter()
            self.sock.send(wire)
            while True:  # bounded by the socket timeout
                data = self.sock.recv(65535)
                if data[:2] == wire[:2]:
                    break
            ms = (time.perf_counter() - started) * 1000
        finally:
            gc.enable()
        reply = dns.message.from_wire(data)
        assert query.is_response(reply), reply
        return reply, ms

    def misses(self, prefix: str, count: int) -> list[float]:
        """Ask ``count`` names never asked before, one after another; their latencies in ms."""
        times = []
        for i in range(count):
            reply, ms = self.ask(f"{prefix}-{i}.example.test")
            assert reply.rcode() == 0, reply
            times.append(ms)
        return times


def p50(times: list[float]) -> float:
    return statistics.median(times)


def upstream_lab(lab):
    """(host, servers) namespaces wired together; servers holds every UPSTREAMS address."""
    host, servers = lab.netns("host"), lab.netns("servers")
    _, server_if = lab.link(host, f"{HOST}/24", servers, f"{UPSTREAMS[0]}/24")
    for address in UPSTREAMS[1:]:
        servers.run("ip", "addr", "add", f"{address}/24", "dev", server_if)
    return host, servers


def silence(servers, address: str, on: bool = True) -> None:
    """Black-hole one upstream address: no reply, no ICMP, like a dead nameserver."""
    for proto in ("udp", "tcp"):
        servers.iptables("-I" if on else "-D", "INPUT", "-d", address, "-p", proto, "--dport", "53", "-j", "DROP")


def slow_upstream_process(ns, address: str, backend: str, delay_ms: int):
    """A real nsd made slow: bench/scenarios/delayproxy.py on ``address`` relays to ``backend``.

    This kernel has no netem.  The proxy is a process of its own and light
    (no DNS parsing), so it does not take the CPU the timings are about.
    """
    proxy = Path(__file__).resolve().parent.parent.parent / "bench" / "scenarios" / "delayproxy.py"
    proc = ns.popen(sys.executable, str(proxy), address, backend, str(delay_ms))
    query = dns.message.make_query("ready.example.test", "A").to_wire()
    probe = ns.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.settimeout(0.2)
    deadline = time.monotonic() + 10
    while True:  # bounded: it answers within a second of starting
        try:
            probe.sendto(query, (address, 53))
            if probe.recv(4096)[:2] == query[:2]:
                return proc
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"delay proxy did not start:\n{proc.log_path.read_text()}")
