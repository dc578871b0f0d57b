"""A real ``bootres run`` process: sd_notify on a real socket, real signals, real files.

Everything stays on loopback and under tmp_path: router discovery and route
installation are off, every file bootres writes is in the test's directory.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import sys
import time
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import pytest

from bootres.core.report import Report, from_json, to_json
from bootres.shell import cli, control
from bootres_process import BootresProcess
from lab import free_port

HERE = Path(__file__).resolve().parents[2]


def write_config(path: Path, *, work: Path, upstream: tuple[str, int], port: int, extra: str = "") -> None:
    path.write_text(
        f"""\
[resolver]
listen = 127.0.0.1:{port}
# This machine's own namespace: nothing on its lo (the container address has tests/net and tests/boot).
container_listen = no
manage_resolv_conf = no
upstreams = {upstream[0]}:{upstream[1]}
cache_file = {work}/cache.db
hosts_files =
allow = 127.0.0.0/8

[hosts]
file = {work}/etc/hosts
pin = www.example.test
router_names = site-router

[router]
discovery = no
solicit = no
install_route = no
static = 198.18.1.1
defaultrouter_file = {work}/etc/defaultrouter

[service]
state_dir = {work}/state
metrics_file = {work}/metrics.prom
{extra}"""
    )


class Notifications:
    """systemd's side of NOTIFY_SOCKET: a datagram socket under tmp_path."""

    def __init__(self, path: Path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.seen: list[list[str]] = []
        self.fds: list[list[int]] = []  # descriptors sent with each message (FDSTORE=1)

    def expect(self, field: str, timeout: float = 15.0) -> list[str]:
        """The next message containing ``field`` (e.g. ``READY=1``); earlier ones are kept in ``seen``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(deadline - time.monotonic(), 0.01))
            try:
                data, fds, _, _ = socket.recv_fds(self.sock, 4096, 16)
            except socket.timeout:
                break
            message = data.decode().split("\n")
            self.seen.append(message)
            self.fds.append(fds)
            if field in message:
                return message
        raise AssertionError(f"no {field} from bootres within {timeout}s; got {self.seen}")

    def close(self) -> None:
        self.sock.close()
        for fd in (fd for fds in self.fds for fd in fds):
            os.close(fd)


@pytest.fixture
def setup(tmp_path, fake_upstream_factory):
    upstream = fake_upstream_factory(answers={"www.example.test": "198.18.0.80"})
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "hosts").write_text("127.0.0.1\tlocalhost\n")
    conf = tmp_path / "bootres.conf"
    write_config(conf, work=tmp_path, upstream=upstream.address, port=free_port())
    notify = Notifications(tmp_path / "notify")
    started = []

    def start(wrapper: tuple[str, ...] = (), pass_fds=(), entry=("-m", "bootres"), python=sys.executable
              ) -> BootresProcess:
        started.append(BootresProcess(conf, log_dir=tmp_path, wrapper=wrapper, pass_fds=pass_fds, entry=entry,
                                      python=python,
                                      env={"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "1000000",
                                           "PYTHONPATH": str(HERE)}))
        return started[-1]

    yield conf, notify, start
    for daemon in started:
        daemon.close()
    notify.close()


def cli_run(capsys, *argv: str) -> tuple[int, str]:
    code = cli.main(list(argv))
    return code, capsys.readouterr().out


def wait_for(predicate, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_lifecycle_ready_status_query_reload_stop(setup, capsys, tmp_path):
    conf, notify, start = setup
    daemon = start()
    ready = notify.expect("READY=1")
    assert any(field.startswith("STATUS=") and "upstreams up" in field for field in ready)
    # Its listening sockets went to systemd's fd store (kept across restarts).
    stored = [fds for message, fds in zip(notify.seen, notify.fds) if "FDSTORE=1" in message]
    assert len(stored) == 1 and len(stored[0]) == 2
    assert ["FDSTOREREMOVE=1", "FDNAME=listen"] in notify.seen
    notify.expect("WATCHDOG=1", timeout=3)  # pinged from the event loop

    code, out = cli_run(capsys, "status", "--json", "-c", str(conf))
    report = json.loads(out)
    assert code == 0, report["health"]
    assert report["pid"] == daemon.proc.pid and report["running"] is True
    assert report["resolver"]["upstreams"][0]["address"].startswith("127.0.0.1:")
    # What the daemon sends is the model's JSON key for key (and tests/core/test_report.py: the model is the spec's).
    sent = control.request(cli.state_dir_of(str(conf)), {"cmd": "status"})
    assert to_json(from_json(Report, sent)) == sent

    code, out = cli_run(capsys, "query", "www.example.test", "-c", str(conf))
    assert code == 0 and "198.18.0.80" in out

    hosts = tmp_path / "etc" / "hosts"
    wait_for(lambda: "www.example.test" in hosts.read_text() and "site-router" in hosts.read_text(),
             what="the pinned name and the router name in the hosts block")
    assert hosts.read_text().startswith("127.0.0.1\tlocalhost\n")
    # The static router, unless the kernel already has a default route (this
    # machine's): that one comes first ("netlink" source).
    _, out = cli_run(capsys, "status", "--json", "-c", str(conf))
    router = json.loads(out)["router"]
    assert router["default"] and router["source"] in ("static", "netlink")
    assert (tmp_path / "etc" / "defaultrouter").read_text().split()[0] == router["default"]
    assert "bootres_healthy 1" in (tmp_path / "metrics.prom").read_text()

    # A broken configuration is refused: RELOADING=1 then READY=1, still serving, old config kept.
    good = conf.read_text()
    conf.write_text(good.replace("cache_size", "x") + "[resolver]\nbogus = 1\n")
    daemon.signal(signal.SIGHUP)
    reloading = notify.expect("RELOADING=1")
    assert reloading[1].startswith("MONOTONIC_USEC=") and int(reloading[1].split("=")[1]) > 0
    notify.expect("READY=1")
    assert daemon.proc.poll() is None
    assert "reload refused" in daemon.log()
    code, out = cli_run(capsys, "query", "www.example.test", "-c", str(conf))
    assert code == 0
    # The refusal shows in the verdict (and `bootres status` exits 1) until a good reload.
    code, out = cli_run(capsys, "status", "--json", "-c", str(conf))
    refused = json.loads(out)
    assert code == 1
    assert [p for p in refused["health"]["problems"] if p.startswith("reload refused")], refused["health"]
    assert any("reload refused" in e["message"] for e in refused["errors"])

    # A good one is applied.
    conf.write_text(good.replace("pin = www.example.test", "pin = www.example.test mail.example.test"))
    daemon.signal(signal.SIGHUP)
    notify.expect("RELOADING=1")
    notify.expect("READY=1")
    wait_for(lambda: "configuration reloaded" in daemon.log(), what="the reload log line")
    _, out = cli_run(capsys, "status", "--json", "-c", str(conf))
    reloaded = json.loads(out)
    assert not [p for p in reloaded["health"]["problems"] if "reload" in p]
    assert not any("reload refused" in e["message"] for e in reloaded["errors"])  # no longer applies

    daemon.signal(signal.SIGTERM)
    notify.expect("STOPPING=1")
    assert daemon.exited() == 0
    assert (tmp_path / "cache.db").exists()
    assert "Traceback" not in daemon.log()

    code, _ = cli_run(capsys, "status", "-c", str(conf))
    assert code == 3


def test_a_reload_that_fails_in_its_second_step_changes_nothing(setup, capsys, tmp_path):
    """Resolver, stub files, router: the files' step raises (a test double), so none of the three takes the new
    configuration, and status says the reload was refused; the next reload applies all three.

    In a network namespace of its own: no default route there, so the static router is what the router reports.
    """
    conf, notify, start = setup
    write_config(conf, work=tmp_path, upstream=("127.0.0.1", 5301), port=53)
    old = conf.read_text()
    new = (old.replace("upstreams = 127.0.0.1:5301", "upstreams = 127.0.0.1:5302")
              .replace("pin = www.example.test", "pin = www.example.test mail.example.test")
              .replace("static = 198.18.1.1", "static = 198.18.1.2"))
    assert new.count("5302") == new.count("mail.example") == new.count("198.18.1.2") == 1
    netns = ["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$0" "$@"']
    daemon = start(netns, entry=(str(HERE / "tests" / "shell" / "reload_fault.py"),))
    notify.expect("READY=1")

    def running() -> tuple[list, list, str | None, dict]:
        _, out = cli_run(capsys, "status", "--json", "-c", str(conf))
        report = json.loads(out)
        return ([u["address"] for u in report["resolver"]["upstreams"]],
                [p["name"] for p in report["files"]["hosts"]["pinned"]], report["router"]["default"], report)

    wait_for(lambda: "hosts" in json.loads(cli_run(capsys, "status", "--json", "-c", str(conf))[1])["files"]
             and running()[2] == "198.18.1.1", what="the stub files and the router service with the static router")
    before = running()[:3]
    assert before == (["127.0.0.1:5301"], ["www.example.test"], "198.18.1.1")

    conf.write_text(new)
    daemon.signal(signal.SIGHUP)
    notify.expect("RELOADING=1")
    notify.expect("READY=1")
    *after, report = running()
    assert tuple(after) == before  # every service on the running configuration
    problems = [p for p in report["health"]["problems"] if p.startswith("reload refused")]
    assert problems == ["reload refused, the running configuration is kept: preparing the stub files failed"
                        " (OSError: [Errno 5] injected fault)"], report["health"]
    code, _ = cli_run(capsys, "status", "-c", str(conf))
    assert code == 1
    assert "configuration reloaded" not in daemon.log()

    daemon.signal(signal.SIGHUP)  # the same file again: this time every step is prepared
    notify.expect("RELOADING=1")
    notify.expect("READY=1")
    *after, report = running()
    assert tuple(after) == (["127.0.0.1:5302"], ["www.example.test", "mail.example.test"], "198.18.1.2")
    assert not [p for p in report["health"]["problems"] if "reload" in p]
    daemon.signal(signal.SIGTERM)
    assert daemon.exited() == 0


def test_ready_when_allow_does_not_list_loopback(setup):
    """The readiness probe comes from loopback; an ``allow`` without it must not fail the start."""
    conf, notify, start = setup
    conf.write_text(conf.read_text().replace("allow = 127.0.0.0/8", "allow = 198.18.0.0/15"))
    daemon = start()
    notify.expect("READY=1")
    port = port_of(conf)
    reply = dns.query.udp(dns.message.make_query("www.example.test", "A"), "127.0.0.1", timeout=3, port=port)
    assert dns.rcode.to_text(reply.rcode()) == "REFUSED"  # and loopback is still not allowed
    daemon.signal(signal.SIGTERM)
    assert daemon.exited() == 0


def test_cannot_bind_is_a_one_line_reason(setup, tmp_path):
    conf, notify, start = setup
    port = port_of(conf)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        squatter.bind(("127.0.0.1", port))
        daemon = start()
        assert daemon.exited() == 1
    errors = [line for line in daemon.log().splitlines() if "ERROR" in line]
    assert errors == [f"bootres: ERROR: not starting: cannot listen on 127.0.0.1:{port} (udp): Address already in use"]


def test_invalid_config_does_not_start(tmp_path, capsys):
    conf = tmp_path / "bad.conf"
    conf.write_text("[resolver]\nlisten = nowhere\n")
    code = cli.main(["run", "-c", str(conf)])
    err = capsys.readouterr().err
    assert code == 2 and f"{conf}:2: listen" in err


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root for a read-only bind mount")
def test_read_only_state_dir_and_etc_are_reported_not_fatal(setup, capsys, tmp_path):
    conf, notify, start = setup
    (tmp_path / "state").mkdir()
    # Only this process tree sees the read-only mounts (its own mount namespace).
    script = f"mount --bind -o ro {tmp_path}/state {tmp_path}/state && mount --bind -o ro {tmp_path}/etc {tmp_path}/etc && exec \"$@\""
    daemon = start(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh"])
    notify.expect("READY=1")

    wait_for(lambda: f"{tmp_path}/etc/hosts" in daemon.log(), what="the hosts problem logged")
    log = daemon.log()
    # No control socket (and no fallback name another user could bind first): the journal says why.
    assert "control.sock: Read-only file system; `bootres status` cannot reach this daemon" in log
    assert f"{tmp_path}/etc/hosts" in log and "Read-only file system" in log
    code, _ = cli_run(capsys, "status", "--json", "-c", str(conf))
    assert code == 3 and daemon.proc.poll() is None
    # The resolver itself is unharmed: a DNS client gets its answer.
    reply = dns.query.udp(dns.message.make_query("www.example.test", "A"), "127.0.0.1", timeout=3, port=port_of(conf))
    assert "198.18.0.80" in reply.to_text()
    daemon.signal(signal.SIGTERM)
    assert daemon.exited() == 0


def port_of(conf) -> int:
    return int(conf.read_text().split("listen = 127.0.0.1:")[1].split()[0])


@pytest.mark.parametrize("name, logged, stored", [
    ("bootres.socket", "with the sockets of bootres.socket", 0),  # socket activation: systemd holds them
    ("listen", "with the sockets kept across the restart", 2),  # the fd store, after a crash: stored again
])
def test_sockets_passed_by_systemd_are_used(setup, capsys, name, logged, stored):
    """What systemd does at boot (bootres.socket) and after a crash (the fd store): sockets from fd 3 on."""
    conf, notify, start = setup
    port = port_of(conf)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    udp.bind(("127.0.0.1", port))
    tcp.bind(("127.0.0.1", port))
    tcp.listen()
    # A query sent before bootres runs waits in the socket buffer.
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.settimeout(10)
    early = dns.message.make_query("www.example.test.", "A")
    client.sendto(early.to_wire(), ("127.0.0.1", port))
    u, t = udp.fileno(), tcp.fileno()
    # Like systemd: the sockets at fds 3 and 4, and LISTEN_PID naming the
    # process that execs bootres (exec keeps the PID).
    wrapper = (
        f"import os, sys; os.dup2({u}, 3); os.dup2({t}, 4); os.close({u}); os.close({t}); "
        f"os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS='2', LISTEN_FDNAMES='{name}:{name}'); "
        "os.execv(sys.argv[1], sys.argv[1:])"
    )
    try:
        daemon = start([sys.executable, "-c", wrapper], pass_fds=(u, t))
        notify.expect("READY=1")
        reply = dns.message.from_wire(client.recv(4096))
        assert reply.id == early.id and "198.18.0.80" in reply.to_text()
        assert logged in daemon.log()
        assert [len(fds) for message, fds in zip(notify.seen, notify.fds) if "FDSTORE=1" in message] == (
            [stored] if stored else [])
        code, out = cli_run(capsys, "query", "www.example.test", "-c", str(conf))
        assert code == 0
    finally:
        for sock in (udp, tcp, client):
            sock.close()


@pytest.mark.parametrize("plant", ["symlink", "fifo"])
def test_a_symlink_or_fifo_at_each_written_path_writes_nothing_outside_and_hangs_nothing(setup, tmp_path, plant):
    """Issue 21: the metrics file, /etc/defaultrouter, the cache file and their old temporary names, planted."""
    conf, notify, start = setup
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    targets = [tmp_path / "metrics.prom", tmp_path / "etc" / "defaultrouter", tmp_path / "cache.db"]
    planted = targets + [path.with_name(f".{path.name}.bootres-tmp") for path in targets]
    for path in planted:
        path.symlink_to(victim) if plant == "symlink" else os.mkfifo(path)
    daemon = start()
    notify.expect("READY=1")
    wait_for(lambda: "defaultrouter" in daemon.log(), what="the defaultrouter write logged")
    daemon.signal(signal.SIGTERM)
    assert daemon.exited(15) == 0  # nothing hung on a FIFO, at start, while running or at the cache save
    assert victim.read_text() == "keep me\n" and stat.S_ISREG(victim.stat().st_mode)
    log = daemon.log()
    if plant == "symlink":  # a link at a written path is replaced by the file, never written through
        assert all(path.is_file() and not path.is_symlink() for path in targets)
        assert (tmp_path / "etc" / "defaultrouter").read_text().strip()  # whatever router this machine has
    else:  # a FIFO is refused, unopened, and said once per file
        assert all(stat.S_ISFIFO(os.lstat(path).st_mode) for path in targets)
        for path in targets:
            assert log.count(f"{path}") >= 1, (path, log)
        assert log.count(f"cannot write {tmp_path / 'metrics.prom'}") == 1, log
    assert not any(path.name.startswith(".") and path.exists() and not path.is_fifo() and not path.is_symlink()
                   for path in tmp_path.rglob("*bootres-*")), sorted(tmp_path.rglob("*bootres-*"))
    assert "Traceback" not in log


@pytest.mark.parametrize("after_ms", [20, 50, 100])
def test_a_sighup_early_in_start_up_is_noted_and_honoured_after_ready(setup, after_ms):
    """Issue 24: SIGHUP's default action would end the process before the loop handles it.

    Debian's interpreter, as the unit runs it: the first ~15 ms are its own
    start-up (a SIGHUP then still ends it: no Python code runs yet), which
    a virtualenv's site-packages hooks make longer.
    """
    conf, notify, start = setup
    daemon = start(python="/usr/bin/python3")
    execed = time.monotonic()  # Popen returns once the exec has succeeded
    time.sleep(max(0.0, execed + after_ms / 1000 - time.monotonic()))
    daemon.signal(signal.SIGHUP)
    notify.expect("READY=1")
    wait_for(lambda: "configuration reloaded" in daemon.log(), what="the reload the SIGHUP asked for")
    assert daemon.alive(), daemon.log()
    early = "SIGHUP during start-up (1): the configuration is reloaded once started" in daemon.log()
    print(f"\nSIGHUP {after_ms} ms after exec: {'noted during start-up' if early else 'handled by the loop'},"
          f" reloaded after READY")
    daemon.signal(signal.SIGTERM)
    assert daemon.exited(15) == 0 and "Traceback" not in daemon.log()
