"""Build the .deb, a Debian 12 root file system, and boot it with systemd as PID 1.

The facts this relies on are in shared/BOOT-TESTING.md: mmdebstrap minbase
in ~15 s, ``systemd-nspawn --boot --register=no --keep-unit
--private-network`` started in a cgroup of its own, checks run with
``nsenter -t <container PID 1> -a`` and a ``timeout`` *inside* the
container (if the host kills nsenter, nspawn's exit stalls).

The image is a real little network: systemd-networkd creates a veth pair
inside the container's private network namespace and
systemd-networkd-wait-online makes network-online.target part of the boot
transaction (otherwise ordering "before network-online.target" is satisfied
trivially); nsd serves ``example.test`` on 198.18.0.10 as the upstream,
started before bootres.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CLEAN_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"  # Debian's python3 for pybuild, not pyenv's
CACHE_ROOT = Path(os.environ.get("BOOTRES_BOOT_CACHE", "/var/tmp/bootres-boot"))
# The machine's own apt sources (its mirror, its snapshot pin), deb822 or one-line format.
SOURCES_CANDIDATES = ("/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list")
INCLUDE = [
    "systemd", "systemd-sysv", "dbus", "iproute2", "python3", "procps",
    # bootres's dependencies come from the archive, like on a real host
    "python3-dnspython", "python3-pyroute2", "python3-systemd",
    # the upstream nameserver
    "nsd",
]
TOOLS = ["mmdebstrap", "systemd-nspawn", "nsenter", "dpkg-buildpackage", "lintian", "unshare"]

UPSTREAM = "198.18.0.10"
ROUTER = "198.18.0.1"
ZONE = f"""\
$ORIGIN example.test.
$TTL 300
@        IN SOA ns.example.test. hostmaster.example.test. 1 3600 600 86400 300
@        IN NS  ns.example.test.
ns       IN A   {UPSTREAM}
www      IN A   198.18.0.80
mailhub  IN A   198.18.0.25
"""

IMAGE_FILES = {
    # A veth pair inside the container, so networkd has links to bring
    # online and wait-online has something to wait for.
    "etc/systemd/network/10-lab.netdev": "[NetDev]\nName=lab0\nKind=veth\n[Peer]\nName=lab1\n",
    "etc/systemd/network/10-lab0.network": (
        "[Match]\nName=lab0\n[Network]\nAddress=198.18.0.2/24\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n"
    ),
    "etc/systemd/network/10-lab1.network": (
        "[Match]\nName=lab1\n[Network]\nAddress=198.18.0.3/24\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n"
    ),
    "etc/nsd/nsd.conf": (
        "server:\n  ip-address: " + UPSTREAM + "\n  do-ip6: no\n"
        "  zonesdir: /etc/nsd\n  log-only-syslog: yes\n"
        "remote-control:\n  control-enable: no\n"
        "zone:\n  name: example.test\n  zonefile: example.test.zone\n"
    ),
    "etc/nsd/example.test.zone": ZONE,
    # The upstream is up before bootres starts, as a remote nameserver
    # usually is (its address on lo, so it needs no network configuration):
    # the pinned name's first lookup then has an answer, so the test does
    # not depend on StubFilesService retrying a failed lookup (every 5 min today).
    "etc/systemd/system/lab-upstream.service": (
        "[Unit]\nDescription=boot test: nsd as the upstream nameserver\n"
        # After systemd-tmpfiles-setup: nsd keeps its transfer files in /tmp, which that service cleans at boot
        # (a fresh clone's CI lost the race once: "/tmp/nsd-xfr-34/nsd.34.task.1: No such file or directory").
        "DefaultDependencies=no\nAfter=local-fs.target systemd-tmpfiles-setup.service\nBefore=bootres.service\n"
        "Conflicts=shutdown.target\n"
        "[Service]\nType=notify\nRuntimeDirectory=nsd\n"
        f"ExecStartPre=/sbin/ip address add {UPSTREAM}/32 dev lo\n"
        "ExecStart=/usr/sbin/nsd -d -P \"\"\n"
        "[Install]\nWantedBy=sysinit.target\n"
    ),
    # What DHCP would have written: bootres takes these nameservers as its
    # upstreams (manage_resolv_conf, no upstreams given) and puts this file
    # back when it stops.
    "etc/resolv.conf": f"search example.test\nnameserver {UPSTREAM}\n",
    "etc/bootres/conf.d/50-boot-test.conf": (
        "[resolver]\nmanage_resolv_conf = yes\n"
        "[hosts]\npin = mailhub.example.test\nrouter_names = site-router\n"
        f"[router]\ninterfaces = lab0\nstatic = {ROUTER}\n"
    ),
    "etc/hostname": "bootres-test\n",
}


# The boot-cost images: the upstream is a remote nameserver, which no
# host's boot waits for (the boot test orders it before bootres instead, so
# that the pinned name's first lookup has an answer).
UNORDERED_UPSTREAM = {"etc/systemd/system/lab-upstream.service":
                      IMAGE_FILES["etc/systemd/system/lab-upstream.service"].replace("Before=bootres.service\n", "")}


class BootError(AssertionError):
    """Something in building or booting the image went wrong; the message says what."""


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if not shutil.which(tool, path=CLEAN_PATH)]


def run(*argv: str, timeout: float = 120, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    env = kwargs.pop("env", None) or {"PATH": CLEAN_PATH, "LC_ALL": "C.UTF-8", "HOME": "/root"}
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, **kwargs)
    if check and proc.returncode != 0:
        raise BootError(f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stdout[-8000:]}\n{proc.stderr[-3000:]}")
    return proc


# --- the package


def source_tree(dest: Path) -> Path:
    """A copy of the working tree (tracked and new files, not ignored ones), so the build leaves the repo clean."""
    listing = run("git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard").stdout
    tree = dest / "bootres"
    for name in filter(None, listing.split("\0")):
        source = REPO / name
        if not source.is_file():
            continue  # deleted in the working tree but still in the index
        target = tree / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    return tree


def commit_tree(dest: Path, commit: str) -> Path:
    """The files of ``commit`` (git archive), for building an earlier version."""
    tree = dest / "bootres"
    tree.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", commit], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def build_deb(dest: Path, commit: str | None = None) -> tuple[Path, Path, str]:
    """dpkg-buildpackage -us -uc -b in a copy of the tree (or of ``commit``); returns (.deb, .changes, build log).

    Built with the nocheck option: the build-time tests (tests/core and
    tests/test_config.py) run with each release's own Debian packages in
    tests/boot/test_debian_packages.py, and here they would triple every
    boot test's time.
    """
    tree = source_tree(dest) if commit is None else commit_tree(dest, commit)
    env = {"PATH": CLEAN_PATH, "LC_ALL": "C.UTF-8", "HOME": "/root", "DEB_BUILD_OPTIONS": "nocheck"}
    proc = run("dpkg-buildpackage", "-us", "-uc", "-b", "-Pnocheck", cwd=tree, timeout=300, env=env)
    debs = sorted(dest.glob("bootres_*_all.deb"))
    changes = sorted(dest.glob("bootres_*.changes"))
    if not debs or not changes:
        raise BootError(f"dpkg-buildpackage made no .deb:\n{proc.stdout[-3000:]}")
    return debs[-1], changes[-1], proc.stdout + proc.stderr


# --- the root file system, cached across tests and runs


def _sources(suite: str) -> list[str]:
    """mmdebstrap's mirror argument: the host's sources (its mirror, its security archive) for ``suite``, or none.

    The host is Debian 12: its file names bookworm, bookworm-updates and
    bookworm-security; another suite's image gets a copy with that suite's
    names (written under CACHE_ROOT, with the extension mmdebstrap reads the
    format by).
    """
    for path in SOURCES_CANDIDATES:
        if Path(path).is_file() and Path(path).read_text().strip():
            if suite == "bookworm":
                return [path]
            copy = CACHE_ROOT / f"sources-{suite}{Path(path).suffix}"
            copy.write_text(Path(path).read_text().replace("bookworm", suite))
            return [str(copy)]
    return []


def _base_key(include: list[str], suite: str) -> str:
    digest = hashlib.sha256()
    digest.update(" ".join([suite, *include]).encode())
    for path in _sources(suite):
        digest.update(Path(path).read_bytes())
    digest.update(run("mmdebstrap", "--version").stdout.encode())
    return digest.hexdigest()[:16]


def base_rootfs(extra: tuple[str, ...] = (), suite: str = "bookworm") -> Path:
    """A minbase tree of ``suite`` with systemd, bootres's dependencies, nsd and ``extra``; built once a day, then reused.

    One tree per suite and package set (the boot tests of
    tests/boot/test_setups.py each want their network stack), built in
    parallel if asked at once.
    """
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    # Refreshed daily so security updates reach the image.
    day = time.strftime("%Y-%m-%d")
    base = CACHE_ROOT / f"base-{day}-{_base_key([*INCLUDE, *extra], suite)}"
    with open(CACHE_ROOT / f"lock-{base.name}", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two test runs at once build it once
        if base.is_dir():
            return base
        for stale in (*CACHE_ROOT.glob("base-*"), *CACHE_ROOT.glob("lock-base-*")):
            if f"-{day}-" not in stale.name:
                if stale.is_dir():
                    shutil.rmtree(stale, ignore_errors=True)
                else:
                    stale.unlink(missing_ok=True)
        building = Path(tempfile.mkdtemp(prefix="building-", dir=CACHE_ROOT))
        building.rmdir()
        run("mmdebstrap", "--variant=minbase", f"--include={','.join([*INCLUDE, *extra])}",
            suite, str(building), *_sources(suite), timeout=600)
        building.rename(base)
    return base


def install_deb(root: Path, deb: Path) -> None:
    """``apt-get install`` the .deb in a chroot of ``root``: its dependencies are already in the base, so offline."""
    shutil.copy(deb, root / "tmp" / deb.name)
    # Maintainer scripts cannot start services in a chroot (no systemd
    # running: deb-systemd-invoke skips it); enabling is what must happen.
    run("chroot", str(root), "apt-get", "install", "-y", f"/tmp/{deb.name}",
        env={"PATH": CLEAN_PATH, "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C.UTF-8"})
    (root / "tmp" / deb.name).unlink()


def prepare_image(work: Path, deb: Path | None, extra: dict[str, str] | None = None,
                  enable: tuple[str, ...] = (), online: bool = True) -> Path:
    """A fresh copy of the base with the lab network, nsd, ``extra`` files, and the .deb installed through apt.

    Without ``deb``: the same image without bootres, what the boot-cost
    comparison boots.  ``enable``: units of ``extra`` to enable.  ``online``:
    multi-user.target wants network-online.target.
    """
    root = work / "root"
    run("cp", "-a", "--reflink=auto", str(base_rootfs()), str(root))
    for name, text in {**IMAGE_FILES, **(extra or {})}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    if deb is not None:
        install_deb(root, deb)
    chroot = ["chroot", str(root)]
    run(*chroot, "systemctl", "enable", "systemd-networkd.service", "systemd-networkd-wait-online.service",
        "lab-upstream.service", *enable)
    run(*chroot, "systemctl", "disable", "nsd.service")  # lab-upstream.service runs it
    if online:
        # Something must want network-online.target, as on a server with
        # services that need the network; else the target is never reached.
        run(*chroot, "systemctl", "add-wants", "multi-user.target", "network-online.target")
    return root


# --- booting it


class Container:
    """``systemd-nspawn --boot`` of ``root`` in a cgroup of its own; ``run()`` executes inside."""

    def __init__(self, root: Path, name: str, unified_cgroup: bool = False, nspawn_args: tuple[str, ...] = ()):
        """``unified_cgroup``: a pure cgroup v2 tree for the guest, as a Debian 13 host has (nspawn 252 gives a
        hybrid one by default, on which trixie's systemd logs "tainted: cgroupsv1"). ``nspawn_args``: more
        options for systemd-nspawn (a container runtime inside needs more capabilities)."""
        self.root = root
        self.name = name
        self.unified_cgroup = unified_cgroup
        self.nspawn_args = tuple(nspawn_args)
        self.console = root.parent / "console.log"
        self.cgroups = _cgroup_dirs(f"bootres-boot-{name}")
        self.proc: subprocess.Popen | None = None
        self.pid1: int | None = None

    def boot(self, timeout: float = 60) -> float:
        """Start, wait until boot finished (running or degraded); return seconds taken."""
        for directory in self.cgroups:
            directory.mkdir(exist_ok=True)
        started = time.monotonic()
        self.proc = subprocess.Popen(
            ["systemd-nspawn", "-D", str(self.root), "--boot", "--register=no", "--keep-unit",
             "--private-network", "--resolv-conf=off", "--timezone=off", "--link-journal=no",
             "--console=pipe", f"--machine={self.name}", *self.nspawn_args],
            stdin=subprocess.DEVNULL, stdout=open(self.console, "w"), stderr=subprocess.STDOUT,
            env={"PATH": CLEAN_PATH, **({"SYSTEMD_NSPAWN_UNIFIED_HIERARCHY": "1"} if self.unified_cgroup else {})},
            preexec_fn=self._enter_cgroups,
        )
        deadline = started + timeout
        while self.pid1 is None:
            self.pid1 = _systemd_child(self.proc.pid)
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise BootError(f"systemd-nspawn did not start systemd:\n{self.console.read_text()[-3000:]}")
            time.sleep(0.05)
        state = ""
        while state not in ("running", "degraded") and time.monotonic() < deadline:
            # Fails until systemd's private bus socket exists; then waits for the boot to end.
            left = max(deadline - time.monotonic(), 1)
            proc = self.run("systemctl", "is-system-running", "--wait", timeout=left, check=False)
            state = proc.stdout.strip()
            if state not in ("running", "degraded"):
                time.sleep(0.1)
        if state not in ("running", "degraded"):
            raise BootError(f"boot did not finish: {state!r}\n{self.diagnostics()}")
        return time.monotonic() - started

    def _enter_cgroups(self) -> None:
        # Runs in the child before exec: nspawn and the container's systemd
        # live in this cgroup, so two containers never share (or kill) one.
        for directory in self.cgroups:
            with open(directory / "cgroup.procs", "w") as procs:
                procs.write("0")

    def run(self, *argv: str, timeout: float = 30, check: bool = True) -> subprocess.CompletedProcess:
        """``argv`` inside the container, all namespaces, a clean environment, ``timeout`` inside."""
        return run("nsenter", "-t", str(self.pid1), "-a", "--", "env", "-i", f"PATH={CLEAN_PATH}",
                   "timeout", str(timeout), *argv, timeout=timeout + 15, check=check)

    def show(self, unit: str, prop: str) -> str:
        return self.run("systemctl", "show", "-P", prop, unit).stdout.strip()

    def reached_ms(self, units: tuple[str, ...]) -> dict[str, float | None]:
        """When each unit became active, in ms after systemd started (its own monotonic timestamps); None: never.

        CLOCK_MONOTONIC is the host's in a container, so the manager's
        UserspaceTimestampMonotonic is the zero.
        """
        names = ["UserspaceTimestampMonotonic"] + [f"{unit}:ActiveEnterTimestampMonotonic" for unit in units]
        script = "systemctl show -P UserspaceTimestampMonotonic; " + "; ".join(
            f"systemctl show -P ActiveEnterTimestampMonotonic {unit}" for unit in units)
        values = [int(value) for value in self.run("sh", "-c", script).stdout.split()]
        if len(values) != len(names):
            raise BootError(f"systemctl show gave {values} for {names}")
        zero = values[0]
        return {unit: (value - zero) / 1000 if value else None for unit, value in zip(units, values[1:])}

    def diagnostics(self) -> str:
        parts = []
        for argv in (["systemctl", "--failed", "--no-pager"],
                     ["journalctl", "-b", "--no-pager", "-n", "80", "-u", "bootres.service"]):
            try:
                parts.append(self.run(*argv, check=False, timeout=10).stdout)
            except (BootError, subprocess.TimeoutExpired) as exc:
                parts.append(str(exc))
        return "\n".join(parts)

    def poweroff(self, timeout: float = 30) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(BootError, subprocess.TimeoutExpired):
            if self.proc.poll() is None and self.pid1:
                self.run("systemctl", "poweroff", "--no-block", timeout=10, check=False)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        for directory in self.cgroups:
            # A killed nspawn leaves the container's processes behind,
            # reparented to the host's init: end them all, by cgroup.
            _kill_cgroup(directory)
            _remove_cgroup(directory)


def _cgroup_dirs(name: str) -> list[Path]:
    """One directory per hierarchy nspawn cares about: the v1 name=systemd tree and/or cgroup2."""
    found = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        _, mountpoint, fstype, options = line.split()[:4]
        if fstype == "cgroup2" or (fstype == "cgroup" and "name=systemd" in options.split(",")):
            found.append(Path(mountpoint) / name)
    return found


def _systemd_child(pid: int) -> int | None:
    """The container's PID 1 as seen from here: nspawn's child running systemd."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return None
    for child in children:
        with contextlib.suppress(OSError):
            if Path(f"/proc/{child}/comm").read_text().strip() == "systemd":
                return int(child)
    return None


def _kill_cgroup(directory: Path) -> None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        pids = [int(pid) for procs in directory.rglob("cgroup.procs")
                for pid in procs.read_text().split()] if directory.is_dir() else []
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)


def _remove_cgroup(directory: Path) -> None:
    """rmdir the cgroup once its last process is gone (children first)."""
    if not directory.is_dir():
        return
    for child in sorted((p for p in directory.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            child.rmdir()
    deadline = time.monotonic() + 5
    while True:
        try:
            directory.rmdir()
            return
        except OSError:
            if time.monotonic() > deadline:
                return
            time.sleep(0.1)


# Run inside a booted image: python3 -c QUERIES_DURING COMMAND...  Sends a query to bootres every 10 ms while
# COMMAND runs (at most 60 s), then waits up to 4 s for the answers; prints COMMAND's exit status, queries sent,
# queries never answered.
QUERIES_DURING = """
import socket, subprocess, sys, time
import dns.message
client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
client.settimeout(4)
sent = set()
command = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
deadline = time.monotonic() + 60
while command.poll() is None and time.monotonic() < deadline:
    query = dns.message.make_query("www.example.test.", "A")
    client.sendto(query.to_wire(), ("127.0.0.35", 53))
    sent.add(query.id)
    time.sleep(0.01)
answered = set()
try:
    while answered != sent:
        answered.add(dns.message.from_wire(client.recv(4096)).id)
except socket.timeout:
    pass
print(command.wait(60), len(sent), len(sent - answered))
"""


GENERATOR_CACHE = "var/lib/bootres/generator.conf"  # written by the running bootres (bootres/shell/generator.py)


def timed_boot(root: Path, name: str, units: tuple[str, ...], wait_for: str | None = None,
               timeout: float = 20) -> tuple[dict[str, float | None], float, float]:
    """Boot ``root``, read when ``units`` became active (``Container.reached_ms``), power off.

    ``wait_for``: a path in the image to wait for (at most ``timeout``)
    before the power-off, e.g. ``GENERATOR_CACHE``, which a host running for
    more than a moment has, and which the first boot after the install
    writes only once bootres runs.  Returns (the figures, seconds to boot,
    seconds to power off).
    """
    container = Container(root, name)
    try:
        booted = container.boot()
        figures = container.reached_ms(units)
        if wait_for is not None:
            deadline = time.monotonic() + timeout
            while not (root / wait_for).exists():
                if time.monotonic() > deadline:
                    raise BootError(f"{wait_for} not written {timeout} s after boot\n{container.diagnostics()}")
                time.sleep(0.1)
    finally:
        stopping = time.monotonic()
        container.poweroff()
    return figures, booted, time.monotonic() - stopping
