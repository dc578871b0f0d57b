"""The shipped daemon inside a lab namespace, and a client beside it.

The service is ``python -m bootres run`` started inside the namespace, so
every socket it makes, listeners and per-query upstream sockets alike,
lives there; the test reads the resolver's ``status()`` over its control
socket (a path in tmp_path: unix sockets do not care about namespaces).
Everything else it would touch is under tmp_path too: its hosts block,
/etc/defaultrouter and state directory; resolv.conf is not managed, router
discovery is off, and the host's nameserver sources are followed under
``BOOTRES_SOURCES_ROOT`` (an empty directory unless a test gives one).

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
from bootres_process import BootresProcess

HOST = "198.18.0.2"
UPSTREAMS = ["198.18.0.10", "198.18.0.11", "198.18.0.12"]
LISTEN = "127.0.0.35"


def resolver_config(tmp_path: Path, **keys) -> Path:
    """A configuration file from ``[resolver]`` keys, with test-friendly defaults.

    Nothing points at the machine's own files: no hosts files, no cache file
    unless a test asks for one, no resolv.conf; the files the daemon keeps
    are under ``tmp_path``.
    """
    values = {
        "listen": f"{LISTEN}:53 {HOST}:53",
        "container_listen": "no",
        "manage_resolv_conf": "no",
        "upstreams": " ".join(UPSTREAMS[:2]),
        "cache_file": "",
        "hosts_files": "",
        "timeout": "1s",
        "stale_answer_after": "300ms",
        **keys,
    }
    tag = time.monotonic_ns()
    path = tmp_path / f"bootres-{tag}.conf"
    path.write_text("[resolver]\n" + "".join(f"{k} = {v}\n" for k, v in values.items())
                    + f"\n[hosts]\nfile = {tmp_path}/hosts-{tag}\n"
                    + f"\n[router]\ndiscovery = no\ndefaultrouter_file = {tmp_path}/defaultrouter-{tag}\n"
                    + f"\n[service]\nstate_dir = {tmp_path}/state-{tag}\n")
    config.load(str(path))  # a typo in a test fails here, not as a silent default
    return path


class ResolverProcess(BootresProcess):
    """``python -m bootres run`` inside ``ns`` (a ``resolver_config`` file), from READY on.

    A process of its own, like the real service: measured latencies are not
    disturbed by the test's own Python threads (one interpreter lock).
    """

    def __init__(self, ns, conf: Path, tmp_path: Path, sources_under: Path | None = None, **process):
        """``sources_under``: follow the host's nameserver sources at their usual paths below it;
        ``process``: more for ``BootresProcess`` (``entry``: a test's own entry point)."""
        if sources_under is None:
            sources_under = tmp_path / f"no-sources-{time.monotonic_ns()}"
            sources_under.mkdir()
        super().__init__(conf, ns=ns, env={"BOOTRES_SOURCES_ROOT": str(sources_under)}, **process)
        # READY, as systemd waits for it: the start's refreshes have settled (docs/resolver.md).
        self.wait_for_log("ready: resolver on", timeout=15)

    def status(self) -> dict:
        """The resolver's part of ``bootres status --json``."""
        return control.request(self.state_dir, {"cmd": "status"})["resolver"]

    def query(self, name: str, rdtype: str = "A") -> dict:
        return control.request(self.state_dir, {"cmd": "query", "name": name, "type": rdtype})

    def upstream(self, address: str) -> dict:
        return next(u for u in self.status()["upstreams"] if u["address"] == f"{address}:53")


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

    def ask_once_more_if_slow(self, name: str, hiccups: list[float], limit_ms: float = 5.0):
        """``ask``, and once more when it took over ``limit_ms`` (its time noted in ``hiccups``): on a shared,
        loaded machine one scheduling hiccup is not the resolver; the callers bound how many there may be."""
        reply, ms = self.ask(name)
        if ms > limit_ms:
            hiccups.append(ms)
            reply, ms = self.ask(name)
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


# A lean slow upstream: answers every question with one A record, DELAY_MS late.
# Bytes only, one process, no DNS library: what it costs in CPU must not
# show up in the latencies being measured (a dnspython fake burns ~0.6 ms of
# CPU per query on this machine, a relaying proxy ~0.3 ms).
_SLOW_RESPONDER = """
import heapq, itertools, select, socket, struct, sys, time
address, delay, answer = sys.argv[1], float(sys.argv[2]) / 1000, socket.inet_aton(sys.argv[3])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind((address, 53))
sock.setblocking(False)
print("ready", flush=True)
due, order = [], itertools.count()
while True:
    select.select([sock], [], [], max(0.0, due[0][0] - time.monotonic()) if due else None)
    while True:
        try:
            data, peer = sock.recvfrom(4096)
        except BlockingIOError:
            break
        end = 12
        while end < len(data) and data[end]:
            end += data[end] + 1
        if len(data) < end + 5 or data[2] & 0x80:
            continue
        reply = (data[:2] + struct.pack(">HHHHH", 0x8180, 1, 1, 0, 0) + data[12:end + 5]
                 + struct.pack(">HHHIH", 0xC00C, 1, 1, 300, 4) + answer)
        heapq.heappush(due, (time.monotonic() + delay, next(order), reply, peer))
    while due and due[0][0] <= time.monotonic():
        _, _, reply, peer = heapq.heappop(due)
        sock.sendto(reply, peer)
"""


def slow_upstream_process(ns, address: str, delay_ms: int, answer: str = "198.19.0.1"):
    """An upstream on ``address`` that answers every A question ``delay_ms`` late (no netem here)."""
    proc = ns.popen(sys.executable, "-c", _SLOW_RESPONDER, address, str(delay_ms), answer)
    deadline = time.monotonic() + 10
    while "ready" not in proc.log_path.read_text():  # bounded: it binds at once
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"slow upstream did not start:\n{proc.log_path.read_text()}")
        time.sleep(0.02)
    return proc
