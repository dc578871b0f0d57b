"""Scenarios 5 and 6: boot after a power cut, and router failover (bootres only).

No peer keeps stub files, a persistent cache or RFC 1256 discovery, so these
rows have bootres alone; the peers' behaviour with every nameserver dead is
scenario 4's.
"""

from __future__ import annotations

import os
import socket
import threading
import time

import dns.exception
import dns.message
import dns.rcode

from bench.scenarios.measure import Cell, Client
from bench.scenarios.peers import Bootres
from bench.scenarios.world import ADVERT_LIFETIME_S, ROUTERS, World, kill, wait_until

PINNED = ["nfs1.test", "mailhub.test"]
YESTERDAY = 20
ROUTER_ADVERTISES_AT_S = 5.0
NAMESERVERS_RETURN_AT_S = 30.0
STALE_TTL = 30  # what bootres gives a stale answer (RFC 8767)


def elapsed_ms(since: float) -> float:
    return (time.monotonic() - since) * 1000


def power_restore(world: World, resolver: Bootres, cell: Cell, tag: str) -> None:
    """5. Reboot with every nameserver and router silent; they come back 5 s and 30 s later."""
    world.reset()
    router = world.advertise("r1", preference=10)
    hosts = world.client.etc / "hosts"
    settings = {"hosts_file": hosts, "pin": " ".join(PINNED), "discovery": "yes", "interfaces": world.client_if}
    yesterday = [f"{tag}-y{i}.test" for i in range(YESTERDAY)]
    try:
        # Yesterday: everything works; bootres learns the router, pins and names.
        resolver.start(world, world.addresses("ns1", "ns2"), **settings)
        if not wait_until(lambda: world.default_route() == ROUTERS["r1"], 10):
            cell.notes.append("yesterday: no route via r1 within 10 s")
        wait_until(lambda: all(world.getent_files(name) for name in PINNED + ["site-router"]), 15)
        with Client(world, resolver.nameservers) as client:
            for name in yesterday:
                client.lookup(name)
        resolver.stop()  # a clean stop saves the cache; then the power goes

        # Power cut: the route table is empty at boot, nothing answers yet.
        kill(router)
        world.reset()
        for upstream in world.upstreams.values():
            upstream.kill()
        with ReadyListener(resolver) as ready:
            resolver.exec()
            boot = resolver.started_at
            cell.extra["first_answer_ms"] = first_answer_ms(world, resolver, yesterday[0], boot)
            cell.extra["ready_ms"] = ready.wait(boot, 10)
        cell.extra["route_from_file_ms"] = route_ms(world, ROUTERS["r1"], boot, 5)
        cell.extra["stub"] = {name: world.getent_files(name)
                              for name in ["site-router", socket.gethostname(), *PINNED]}
        with Client(world, resolver.nameservers) as client:  # after READY
            for name in yesterday:
                cell.record(client.lookup(name), miss=False)
        cell.extra["never_seen"] = timed_query(world, resolver, f"{tag}-new.test")

        wait_until(lambda: time.monotonic() - boot >= ROUTER_ADVERTISES_AT_S, ROUTER_ADVERTISES_AT_S)
        router = world.advertise("r1", preference=10)
        cell.extra["route_source"] = wait_until(lambda: router_source(resolver) == "rdisc", 10) and "rdisc"

        wait_until(lambda: time.monotonic() - boot >= NAMESERVERS_RETURN_AT_S, NAMESERVERS_RETURN_AT_S)
        back = time.monotonic()
        for upstream in world.upstreams.values():
            upstream.revive()
        fresh = wait_until(lambda: fresh_answer(world, resolver, yesterday[1]), 15, interval=0.1)
        cell.extra["fresh_after_return_ms"] = elapsed_ms(back) if fresh else None
        cell.extra["new_name_after_return"] = timed_query(world, resolver, f"{tag}-new2.test")
    finally:
        resolver.stop()
        kill(router)
    stub_ok = sum(1 for address in cell.extra["stub"].values() if address)
    cell.notes += [
        f"first answer {fmt(cell.extra['first_answer_ms'])} ms after exec, READY after "
        f"{fmt(cell.extra['ready_ms'])} ms; yesterday's names asked after READY",
        f"stub names {stub_ok}/{len(cell.extra['stub'])} from /etc/hosts",
        f"route from /etc/defaultrouter after {fmt(cell.extra['route_from_file_ms'])} ms, "
        f"source rdisc: {'yes' if cell.extra['route_source'] else 'no'}",
        f"never-cached name: {cell.extra['never_seen']['rcode']} in {cell.extra['never_seen']['ms']:.0f} ms",
        f"fresh answers {fmt(cell.extra['fresh_after_return_ms'])} ms after nameservers return",
    ]


def router_failover(world: World, resolver: Bootres, cell: Cell, tag: str) -> None:
    """6. No default route at boot; r1 (preference 10) and r2 (5) advertise; then r1 dies."""
    world.reset()
    r1 = world.advertise("r1", preference=10)
    r2 = world.advertise("r2", preference=5)
    try:
        resolver.start(world, world.addresses("ns1", "ns2"), discovery="yes", interfaces=world.client_if,
                       hosts_file=world.client.etc / "hosts")
        first = route_ms(world, ROUTERS["r1"], resolver.started_at, 10)
        kill(r1)
        died = time.monotonic()
        failover = route_ms(world, ROUTERS["r2"], died, ADVERT_LIFETIME_S + 5)
        defaultrouter = resolver.dir / "defaultrouter"
        wait_until(lambda: words(defaultrouter)[:1] == [ROUTERS["r2"]], 3)
        cell.extra.update(route_ms=first, failover_ms=failover, defaultrouter=words(defaultrouter),
                          site_router=world.getent_files("site-router"))
    finally:
        resolver.stop()
        kill(r1)
        kill(r2)
    cell.notes += [
        f"route via r1 {fmt(first)} ms after exec",
        f"r1 dies: route via r2 after {fmt(failover)} ms (lifetime {ADVERT_LIFETIME_S} s)",
        f"/etc/defaultrouter {' '.join(cell.extra['defaultrouter'])}, site-router → {cell.extra['site_router']}",
    ]


class ReadyListener:
    """The NOTIFY_SOCKET of the next ``exec``: when bootres said READY=1 (sd_notify), as systemd would see it."""

    def __init__(self, resolver: Bootres):
        self.resolver = resolver
        self.path = resolver.dir / "notify"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.sock.bind(str(self.path))
        self.ready_at: float | None = None
        self._thread = threading.Thread(target=self._read, daemon=True)

    def __enter__(self) -> "ReadyListener":
        self.saved_env, self.resolver.env = self.resolver.env, {**os.environ, "NOTIFY_SOCKET": str(self.path)}
        self._thread.start()
        return self

    def _read(self) -> None:
        self.sock.settimeout(0.1)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and self.ready_at is None:  # bounded by the deadline
            try:
                if b"READY=1" in self.sock.recv(4096).split(b"\n"):
                    self.ready_at = time.monotonic()
            except socket.timeout:
                continue

    def wait(self, since: float, timeout: float) -> float | None:
        """Milliseconds from ``since`` to READY=1, or None if it did not come within ``timeout``."""
        self._thread.join(timeout)
        return None if self.ready_at is None else (self.ready_at - since) * 1000

    def __exit__(self, *exc) -> None:
        self.resolver.env = self.saved_env
        self._thread.join(1)
        self.sock.close()


def words(path) -> list[str]:
    """The words of a file bootres writes, [] while it has not written it."""
    try:
        return path.read_text().split()
    except FileNotFoundError:
        return []


def fmt(ms: float | None) -> str:
    return "never" if ms is None else f"{ms:.0f}"


def route_ms(world: World, gateway: str, since: float, timeout: float) -> float | None:
    """Milliseconds from `since` until the client's default route goes via `gateway`, or None."""
    if wait_until(lambda: world.default_route() == gateway, timeout, interval=0.02):
        return elapsed_ms(since)
    return None


def router_source(resolver: Bootres) -> str | None:
    return resolver.status().get("router", {}).get("source")


def first_answer_ms(world: World, resolver: Bootres, name: str, since: float) -> float | None:
    """Milliseconds from `since` (exec) until the resolver answers `name` at all, or None within 10 s.

    One query, resent every 50 ms on a connected socket (so a port not yet
    bound says so at once), counts its first reply.
    """
    wire = dns.message.make_query(name, "A").to_wire()
    with world.client.socket() as sock:
        sock.connect((resolver.listen, 53))
        sock.settimeout(0.05)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # bounded by the deadline
            try:
                sock.send(wire)
                if sock.recv(4096)[:2] == wire[:2]:
                    return elapsed_ms(since)
            except ConnectionRefusedError:
                time.sleep(0.005)
            except socket.timeout:
                continue
    return None


def timed_query(world: World, resolver: Bootres, name: str, timeout: float = 5.0) -> dict:
    start = time.monotonic()
    try:
        reply = world.client.dns_query(resolver.listen, name, timeout=timeout)
        rcode, ttl = dns.rcode.to_text(reply.rcode()), min((r.ttl for r in reply.answer), default=None)
    except (dns.exception.DNSException, OSError) as exc:
        rcode, ttl = type(exc).__name__, None
    return {"rcode": rcode, "ttl": ttl, "ms": elapsed_ms(start)}


def fresh_answer(world: World, resolver: Bootres, name: str) -> bool:
    """True once `name` is answered from an upstream again: its TTL is no longer the stale 30 s."""
    result = timed_query(world, resolver, name, timeout=1.0)
    return result["rcode"] == "NOERROR" and result["ttl"] not in (None, STALE_TTL)
