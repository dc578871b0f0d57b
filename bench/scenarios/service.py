"""Scenarios 8 and 9: a bad configuration on reload, and kill -9, both under load (bootres only).

Load is dnsperf at 200 queries/s, four in five cached names.  There is no
systemd here (no PID 1), so in scenario 9 the bench stands in for it
(ServiceManager): the notify socket with the fd store the unit enables, and
Restart=always with RestartSec=200ms.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import dns.exception

from bench.scenarios.load import is_miss
from bench.scenarios.loadgen import Load
from bench.scenarios.measure import Cell
from bench.scenarios.peers import Bootres
from bench.scenarios.report import fmt_ms
from bench.scenarios.world import World, wait_until

QPS = 200
SECONDS = 10
HOT = 50
RESTART_SEC = 0.2  # units/bootres.service RestartSec
LISTEN_FDS_EXEC = Path(__file__).with_name("listen_fds_exec.py")
BAD_LINE = "[resolver"  # a section header never closed: a syntax error
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
        bad = good.rstrip("\n") + f"\n{BAD_LINE}\n"
        bad_line_number = bad.splitlines().index(BAD_LINE) + 1
        resolver.config_path.write_text(bad)
        resolver.proc.send_signal(signal.SIGHUP)
        result = load.wait()
        cell.upstream_queries = world.queries() - before
        check = resolver.cli("check")
        alive = resolver.proc.poll() is None
        status = resolver.status()
        resolver.config_path.write_text(good)
    finally:
        resolver.stop()
    record_load(cell, result, misses=sum(1 for name in mixed if is_miss(name)))
    named = f"{resolver.config_path}:{bad_line_number}:" in check.stdout + check.stderr
    refusal = any("refused" in error.get("message", "") for error in status.get("errors") or [])
    cell.extra.update(alive_after_hup=alive, check_exit=check.returncode, check_output=check.stdout + check.stderr,
                      check_names_line=named, status_errors=status.get("errors"))
    cell.notes += [
        f"still running after SIGHUP: {'yes' if alive else 'NO'}",
        f"bootres check exit {check.returncode}, names PATH:{bad_line_number}: {'yes' if named else 'NO'}",
        f"status shows the refused reload: {'yes' if refusal else 'NO'}",
        f"{result.lost} lost of {result.sent}",
    ]


class ServiceManager:
    """What systemd does for units/bootres.service, as far as scenario 9 needs it.

    NOTIFY_SOCKET with the fd store (FileDescriptorStoreMax=): bootres hands
    over its listening sockets with FDSTORE=1, and they stay open here while
    it is down, so queries wait in their buffers.  Restart=always: when the
    process exits it is started again after RestartSec, with the stored
    sockets passed as LISTEN_FDS.  Two threads, both ended by `stop`.
    """

    def __init__(self, resolver: Bootres, workdir: Path):
        self.resolver = resolver
        self.restarts: list[float] = []
        self.stored: dict[str, list[int]] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        path = workdir / f"notify-{secrets.token_hex(3)}"
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.notify.bind(str(path))
        self.notify.settimeout(0.1)
        self.env = dict(os.environ, NOTIFY_SOCKET=str(path))
        self.threads = [threading.Thread(target=target, daemon=True) for target in (self.receive, self.watch)]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def receive(self) -> None:
        while not self.stopping.is_set():
            try:
                data, fds, _, _ = socket.recv_fds(self.notify, 4096, 16)
            except socket.timeout:
                continue
            fields = dict(line.split("=", 1) for line in data.decode(errors="replace").splitlines() if "=" in line)
            name = fields.get("FDNAME", "stored")
            with self.lock:
                if fields.get("FDSTOREREMOVE") == "1":
                    for fd in self.stored.pop(name, []):
                        os.close(fd)
                if fields.get("FDSTORE") == "1":
                    self.stored.setdefault(name, []).extend(fds)
                    fds = []
            for fd in fds:  # sent without FDSTORE=1: systemd closes them too
                os.close(fd)

    def watch(self) -> None:
        while not self.stopping.wait(0.01):
            if self.resolver.proc.poll() is None:
                continue
            time.sleep(RESTART_SEC)
            with self.lock:
                names = [name for name, fds in self.stored.items() for _ in fds]
                fds = [fd for name_fds in self.stored.values() for fd in name_fds]
            self.resolver.exec(prefix=[sys.executable, str(LISTEN_FDS_EXEC), ",".join(map(str, fds)),
                                       ":".join(names), "--"], pass_fds=fds)
            self.restarts.append(self.resolver.started_at)

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            if thread.is_alive():
                thread.join(5)
        self.notify.close()
        with self.lock:
            for fds in self.stored.values():
                for fd in fds:
                    os.close(fd)
            self.stored.clear()


def kill_under_load(world: World, resolver: Bootres, cell: Cell, tag: str) -> None:
    """9. kill -9 under load; the supervisor restarts it."""
    hot, mixed = mixed_names(tag)
    hosts = world.client.etc / "hosts"
    hosts.write_text(ADMIN_HOSTS)
    world.reset()
    manager = ServiceManager(resolver, world.workdir)
    try:
        resolver.start(world, world.addresses("ns1", "ns2"), env=manager.env, hosts_file=hosts)
        manager.start()
        Load(world, resolver.listen, hot, QPS, world.workdir / f"{tag}-warm").wait()
        wait_until(lambda: "# BEGIN bootres" in hosts.read_text(), 5)
        # A clean restart first, so the cache file holds one snapshot (the hot names) when the kill comes.
        snapshot_entries = cache_entries(resolver)
        resolver.proc.send_signal(signal.SIGTERM)
        wait_until(lambda: manager.restarts and answering(world, resolver), 10, interval=0.01)
        stored = sum(len(fds) for fds in manager.stored.values())
        cache_file = resolver.dir / "cache.db"
        before = world.queries()
        load = Load(world, resolver.listen, mixed, QPS, world.workdir / tag)
        time.sleep(SECONDS / 3)
        entries_before = cache_entries(resolver)
        resolver.proc.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        snapshot_age = time.time() - cache_file.stat().st_mtime if cache_file.exists() else None
        back = wait_until(lambda: len(manager.restarts) == 2 and answering(world, resolver), 10, interval=0.01)
        down_ms = (time.monotonic() - killed_at) * 1000 if back else None
        entries_after = cache_entries(resolver)
        result = load.wait()
        cell.upstream_queries = world.queries() - before
        hosts_text = hosts.read_text()
    finally:
        manager.stop()
        resolver.stop()
    record_load(cell, result, misses=sum(1 for name in mixed if is_miss(name)))
    intact = hosts_text.startswith(ADMIN_HOSTS) and "# BEGIN bootres" in hosts_text and "# END bootres" in hosts_text
    expected_loss = QPS * (down_ms or 0) / 1000
    cell.extra.update(down_ms=down_ms, restarts=len(manager.restarts), stored_fds=stored, hosts_intact=intact,
                      cache_entries_snapshot=snapshot_entries, cache_entries_before=entries_before,
                      cache_entries_after=entries_after, snapshot_age_s=snapshot_age)
    cell.notes += [
        f"answering again {fmt_ms(down_ms)} ms after kill (restart delay {RESTART_SEC * 1000:.0f} ms)",
        f"{result.lost} lost of {result.sent} (≈{expected_loss:.0f} sent while down; {stored} listening sockets "
        "kept in the fd store)",
        f"/etc/hosts intact: {'yes' if intact else 'NO'}",
        f"cache: {entries_before} entries at the kill, {entries_after} right after the restart; "
        + ("no snapshot" if snapshot_age is None
           else f"the snapshot ({snapshot_age:.0f} s old, clean restart) had {snapshot_entries}"),
    ]


def cache_entries(resolver: Bootres) -> int | None:
    return resolver.status().get("resolver", {}).get("cache", {}).get("entries")


def answering(world: World, resolver: Bootres) -> bool:
    try:
        world.client.dns_query(resolver.listen, "ready.test", timeout=0.05)
        return True
    except (dns.exception.DNSException, OSError):
        return False
