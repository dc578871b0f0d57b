"""Scenarios 8 and 9: a bad configuration on reload, and kill -9, both under load (bootres only).

Load is dnsperf at 200 queries/s, four in five cached names.  There is no
systemd here (no PID 1), so scenario 9's supervisor is the bench itself,
doing what the unit's Restart=always with RestartSec=200ms does; no socket
activation either, so queries sent while bootres is down are lost, and the
table says how many against how long it was down.
"""

from __future__ import annotations

import signal
import threading
import time

import dns.exception

from bench.scenarios.load import fmt
from bench.scenarios.loadgen import Load
from bench.scenarios.measure import Cell
from bench.scenarios.peers import Bootres
from bench.scenarios.world import World, wait_until

QPS = 200
SECONDS = 10
HOT = 50
RESTART_SEC = 0.2  # units/bootres.service RestartSec
BAD_LINE = "strategy = sideways"
ADMIN_HOSTS = "127.0.0.1\tlocalhost\n# an administrator's line, kept byte for byte\n198.18.0.77\tadmin-box\n"


def mixed_names(tag: str) -> tuple[list[str], list[str]]:
    hot = [f"{tag}-hot{i}.test" for i in range(HOT)]
    return hot, [f"{tag}-m{i}.test" if i % 5 == 0 else hot[i % HOT] for i in range(QPS * SECONDS)]


def record_load(cell: Cell, result, misses: int) -> None:
    cell.ms = [ms for _, _, ms in result.answers]
    cell.misses = misses
    cell.planned = len(cell.ms)
    cell.answered = result.rcode_count("NOERROR")
    cell.failed = result.sent - cell.answered
    cell.extra.update(sent=result.sent, lost=result.lost, qps=result.qps)


def bad_reload(world: World, resolver: Bootres, cell: Cell, tag: str) -> None:
    """8. A syntax error lands in the configuration and SIGHUP follows, while serving."""
    hot, mixed = mixed_names(tag)
    world.reset()
    resolver.start(world, world.addresses("ns1", "ns2"))
    try:
        Load(world, resolver.listen, hot, QPS, world.workdir / f"{tag}-warm").wait()
        good = resolver.config_path.read_text()
        before = world.queries()
        load = Load(world, resolver.listen, mixed, QPS, world.workdir / tag)
        time.sleep(SECONDS / 3)
        resolver.config_path.write_text(good + f"\n[resolver]\n{BAD_LINE}\n")
        bad_line_number = len((good + "\n[resolver]\n").splitlines()) + 1
        resolver.proc.send_signal(signal.SIGHUP)
        result = load.wait()
        cell.upstream_queries = world.queries() - before
        check = resolver.cli("check")
        alive = resolver.proc.poll() is None
        status = resolver.status()
        resolver.config_path.write_text(good)
    finally:
        resolver.stop()
    record_load(cell, result, misses=sum(1 for name in mixed if "-m" in name))
    named = f"{resolver.config_path}:{bad_line_number}:" in check.stdout + check.stderr
    cell.extra.update(alive_after_hup=alive, check_exit=check.returncode, check_output=check.stdout + check.stderr,
                      check_names_line=named, status_errors=status.get("errors"))
    cell.notes += [
        f"still running after SIGHUP: {'yes' if alive else 'NO'}",
        f"bootres check exit {check.returncode}, names PATH:{bad_line_number}: {'yes' if named else 'NO'}",
        f"{result.lost} lost of {result.sent}",
    ]


class Supervisor:
    """Restarts bootres when it exits, like Restart=always (a thread; bounded by `stop`)."""

    def __init__(self, resolver: Bootres):
        self.resolver = resolver
        self.restarts: list[float] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.watch, daemon=True)
        self.thread.start()

    def watch(self) -> None:
        while not self.stopping.is_set():
            if self.resolver.proc.poll() is not None:
                time.sleep(RESTART_SEC)
                self.resolver.exec()
                self.restarts.append(self.resolver.started_at)
            time.sleep(0.01)

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(5)


def kill_under_load(world: World, resolver: Bootres, cell: Cell, tag: str) -> None:
    """9. kill -9 under load; the supervisor restarts it."""
    hot, mixed = mixed_names(tag)
    hosts = world.client.etc / "hosts"
    hosts.write_text(ADMIN_HOSTS)
    world.reset()
    resolver.start(world, world.addresses("ns1", "ns2"), hosts_file=hosts)
    supervisor = None
    try:
        Load(world, resolver.listen, hot, QPS, world.workdir / f"{tag}-warm").wait()
        wait_until(lambda: "# BEGIN bootres" in hosts.read_text(), 5)
        entries_before = resolver.status().get("resolver", {}).get("cache", {}).get("entries")
        cache_file = resolver.dir / "cache.db"
        supervisor = Supervisor(resolver)
        before = world.queries()
        load = Load(world, resolver.listen, mixed, QPS, world.workdir / tag)
        time.sleep(SECONDS / 3)
        killed = resolver.proc
        killed.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        snapshot_age = killed_at - cache_file.stat().st_mtime if cache_file.exists() else None
        back = wait_until(lambda: supervisor.restarts and answering(world, resolver), 10, interval=0.01)
        down_ms = (time.monotonic() - killed_at) * 1000 if back else None
        result = load.wait()
        cell.upstream_queries = world.queries() - before
        entries_after = resolver.status().get("resolver", {}).get("cache", {}).get("entries")
        hosts_text = hosts.read_text()
    finally:
        if supervisor:
            supervisor.stop()
        resolver.stop()
    record_load(cell, result, misses=sum(1 for name in mixed if "-m" in name))
    intact = hosts_text.startswith(ADMIN_HOSTS) and "# BEGIN bootres" in hosts_text and "# END bootres" in hosts_text
    expected_loss = QPS * (down_ms or 0) / 1000
    cell.extra.update(down_ms=down_ms, restarts=len(supervisor.restarts), hosts_intact=intact,
                      cache_entries_before=entries_before, cache_entries_after=entries_after,
                      snapshot_age_s=snapshot_age)
    cell.notes += [
        f"answering again {fmt(down_ms)} ms after kill (restart delay {RESTART_SEC * 1000:.0f} ms)",
        f"{result.lost} lost of {result.sent} (≈{expected_loss:.0f} sent while down; no socket activation)",
        f"/etc/hosts intact: {'yes' if intact else 'NO'}",
        f"cache entries {entries_before} before, {entries_after} after restart",
    ]


def answering(world: World, resolver: Bootres) -> bool:
    try:
        world.client.dns_query(resolver.listen, "ready.test", timeout=0.05)
        return True
    except (dns.exception.DNSException, OSError):
        return False
