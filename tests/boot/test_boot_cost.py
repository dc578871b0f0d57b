"""Issue 13's must-show, as CI can hold it: bootres costs a booting host nothing, and names work right after sysinit.target.

Two parts, on real boots (systemd as PID 1 in systemd-nspawn, tests/boot/bootlab.py):

- the same image with the package and without, booted BOOTS times each in
  turn after the install's first boot each (which writes the generator's
  cache): the ordering facts (the socket before sysinit.target, the
  service started and READY), and a gross guard on the medians of
  sysinit.target and multi-user.target (systemd's own timestamps): at most
  GUARD_MS more with bootres.  The goal is 20 ms, and it is a benchmark's
  (bench/boot_cost.py, figures in docs/boot.md with date and commit), not
  CI's: single boots vary by tens of ms, and a fresh machine's CI once
  measured +32.2 ms over 30 boots for a stock install (issue 19), where a
  quiet run gives +0..+13 ms.  What the guard catches is a regression of
  the kind issue 13 removed (+95..+131 ms: the service's start-up back on
  the boot's critical path).  Two images: the boot test's (multi-user.target
  wants network-online.target, as on a host whose services need the
  network) and the same without that (a stock install).  The boots take
  /tmp/bench.lock, as every measurement on this machine does;
- a unit ordered right after sysinit.target looks names up at the second
  boot, with the nameserver black-holed: answered from the stub block and
  from the cache the first boot persisted, through the /etc/resolv.conf the
  first boot's shutdown left naming bootres.

Budget: the package build (~10 s), five images (~3 s each), 2 * 2 * (BOOTS
+ 1) boots of ~0.6 s, two more for the lookups: ~50 s.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import statistics
import time

import pytest

import bootlab

pytestmark = [
    pytest.mark.boot,
    pytest.mark.timeout(900),
    pytest.mark.skipif(os.geteuid() != 0, reason="booting a container needs root"),
]

BOOTS = 9  # per image, after the first
GUARD_MS = 100.0  # the median's difference a correct build never reaches; the 20 ms goal is bench/boot_cost.py's
LOCK = "/tmp/bench.lock"
LOCK_WAIT_S = 300  # another benchmark's turn, at most
TARGETS = ("sysinit.target", "multi-user.target")

EARLY_LOOKUP = """\
import json, socket, subprocess, time

def timed(argv):
    sent = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    return {"sent": sent, "done": time.monotonic(), "code": proc.returncode, "out": proc.stdout.split()}

found = {"glibc": timed(["getent", "hosts", "www.example.test"]),
         "files": timed(["getent", "-s", "files", "hosts", "mailhub.example.test"])}
import dns.message  # after getent: its query goes out first
query = dns.message.make_query("www.example.test.", "A")
client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
client.settimeout(10)
sent = time.monotonic()
client.sendto(query.to_wire(), ("127.0.0.35", 53))
reply = dns.message.from_wire(client.recv(4096))
found["stub"] = {"sent": sent, "done": time.monotonic(), "code": reply.rcode(),
                 "out": [str(rr) for rrset in reply.answer for rr in rrset]}
found["resolv_conf"] = open("/etc/resolv.conf").read()
with open("/run/early-lookup.json", "w") as out:
    json.dump(found, out)
"""

BLACK_HOLE = """\
import socket, time
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("198.18.0.10", 53))
tcp = socket.socket()
tcp.bind(("198.18.0.10", 53))
tcp.listen(1)
time.sleep(3600)
"""

LOOKUP_FILES = {
    "usr/local/sbin/early-lookup": EARLY_LOOKUP,
    "usr/local/sbin/lab-black-hole": BLACK_HOLE,
    # Right after sysinit.target, like an early service; not after nss-lookup.target, not after bootres.
    "etc/systemd/system/early-lookup.service": (
        "[Unit]\nDescription=boot test: name lookups right after sysinit.target\n"
        "DefaultDependencies=no\nAfter=sysinit.target\nBefore=basic.target\n"
        "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/usr/bin/python3 /usr/local/sbin/early-lookup\n"
        "[Install]\nWantedBy=basic.target\n"
    ),
    # The second boot's upstream: its address bound, every query swallowed, nothing answered.
    "etc/systemd/system/lab-black-hole.service": (
        "[Unit]\nDescription=boot test: the upstream nameserver black-holed\n"
        "DefaultDependencies=no\nAfter=local-fs.target\nConflicts=shutdown.target\n"
        "[Service]\nExecStartPre=/sbin/ip address add 198.18.0.10/32 dev lo\n"
        "ExecStart=/usr/bin/python3 /usr/local/sbin/lab-black-hole\n"
        "[Install]\nWantedBy=sysinit.target\n"
    ),
}


@contextlib.contextmanager
def bench_lock():
    """/tmp/bench.lock for the timed boots, waiting LOCK_WAIT_S at most (then measured anyway, and said so)."""
    with open(LOCK, "a") as handle:
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    print(f"{LOCK} still held after {LOCK_WAIT_S} s: measuring anyway")
                    break
                time.sleep(1)
        yield


@pytest.fixture(scope="module")
def deb(tmp_path_factory):
    missing = bootlab.missing_tools()
    assert not missing, f"install these for the boot test: {missing} (see .ci/setup)"
    return bootlab.build_deb(tmp_path_factory.mktemp("deb"))[0]


@pytest.mark.parametrize("online", [True, False], ids=["services want the network", "stock install"])
def test_boot_reaches_its_targets_as_fast_with_bootres_as_without(deb, tmp_path_factory, online):
    """``online``: multi-user.target wants network-online.target (the boot test's image, which the issue measured)."""
    roots = {}
    for package in ("with", "without"):
        work = tmp_path_factory.mktemp(f"cost-{package}")
        roots[package] = bootlab.prepare_image(work, deb if package == "with" else None,
                                               extra=bootlab.UNORDERED_UPSTREAM, online=online)
    figures = {"with": [], "without": []}

    def boot_each(round_: int) -> None:
        for package, root in roots.items():
            units = TARGETS + (("bootres.socket", "bootres.service") if package == "with" else ())
            # Round 0 is the first boot after the install: it waits for bootres to write the generator's
            # cache, as any host that ran a moment has; then the boots that count.
            wait_for = bootlab.GENERATOR_CACHE if package == "with" and round_ == 0 else None
            reached, _, _ = bootlab.timed_boot(root, f"c{package[:2]}{os.getpid()}{round_}", units, wait_for)
            if round_:
                figures[package].append(reached)

    def differences() -> dict[str, tuple[float, float]]:
        return {unit: tuple(statistics.median(run[unit] for run in figures[package]) for package in ("with", "without"))
                for unit in TARGETS}

    with bench_lock():
        for round_ in range(BOOTS + 1):
            boot_each(round_)
    for package, runs in figures.items():
        print(f"{package:7}", "; ".join(f"{unit} " + " ".join(f"{run[unit]:.0f}" for run in runs)
                                        for unit in runs[0]), "(ms after systemd started)")
    for run in figures["with"]:
        assert run["bootres.socket"] < run["sysinit.target"], run
        assert run["bootres.service"] is not None, run  # it did start, and was READY
    for unit, (with_, without) in differences().items():
        print(f"median {unit}: with {with_:.1f} ms, without {without:.1f} ms, difference {with_ - without:+.1f} ms")
        assert with_ - without <= GUARD_MS, f"{unit}: {with_:.1f} ms with bootres, {without:.1f} ms without"


@pytest.fixture(scope="module")
def second_boot(deb, tmp_path_factory):
    """Boot 1 learns the names and shuts down; boot 2, the nameserver black-holed, looks them up at once.

    Returns (boot 2's /run/early-lookup.json, bootres.service's READY in
    CLOCK_MONOTONIC seconds, /etc/resolv.conf as boot 1's shutdown left it).
    """
    work = tmp_path_factory.mktemp("second-boot")
    root = bootlab.prepare_image(work, deb, extra=LOOKUP_FILES, enable=("early-lookup.service",))
    first = bootlab.Container(root, f"f{os.getpid()}")
    try:
        first.boot()
        for argv in (["getent", "hosts", "www.example.test"], ["sh", "-c", "grep -q mailhub.example.test /etc/hosts"]):
            deadline = time.monotonic() + 20
            while first.run(*argv, check=False).returncode != 0:
                assert time.monotonic() < deadline, f"boot 1: {argv} failed for 20 s\n{first.diagnostics()}"
                time.sleep(0.2)
    finally:
        first.poweroff()
    left = (root / "etc" / "resolv.conf").read_text()
    bootlab.run("chroot", str(root), "systemctl", "disable", "lab-upstream.service")
    bootlab.run("chroot", str(root), "systemctl", "enable", "lab-black-hole.service")
    second = bootlab.Container(root, f"s{os.getpid()}")
    try:
        second.boot()
        found = json.loads(second.run("cat", "/run/early-lookup.json").stdout)
        ready = int(second.show("bootres.service", "ActiveEnterTimestampMonotonic")) / 1e6
        assert second.show("lab-black-hole.service", "ActiveState") == "active"
        assert second.show("lab-upstream.service", "ActiveState") == "inactive"
    finally:
        second.poweroff()
    return found, ready, left


def test_shutdown_leaves_resolv_conf_naming_bootres(second_boot):
    _, _, left = second_boot
    assert left.startswith("# managed by bootres") and "nameserver 127.0.0.35\n" in left, left


def test_lookups_right_after_sysinit_are_answered_with_the_nameserver_black_holed(second_boot):
    found, ready, _ = second_boot
    for way in ("glibc", "files", "stub"):
        result = found[way]
        print(f"{way}: sent {(result['sent'] - ready) * 1000:+.0f} ms from bootres's READY,"
              f" answered after {(result['done'] - result['sent']) * 1000:.0f} ms: {result['out']}")
    assert found["resolv_conf"].startswith("# managed by bootres")  # glibc asked bootres, nobody else
    assert found["glibc"]["code"] == 0 and found["glibc"]["out"][0] == "198.18.0.80"  # the persisted cache
    assert found["files"]["code"] == 0 and found["files"]["out"][0] == "198.18.0.25"  # the stub block
    assert found["stub"]["code"] == 0 and "198.18.0.80" in " ".join(found["stub"]["out"])
