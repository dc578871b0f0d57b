"""A small root in which the DHCP clients' real scripts run the package's hooks (tests of hooks/).

The real script (isc-dhcp-client's /sbin/dhclient-script, dhcpcd-base's
dhcpcd-run-hooks) runs chrooted into it, inside private mount and network
namespaces (``unshare -m -n``): its /etc and /run are the test's
directories, /usr is an overlay over this machine's /usr (so
/usr/bin/bootres and a hook under /usr/lib can be
present or absent without touching the machine), and the ``ip`` commands a
script runs act on a veth pair that exists only in that network namespace.
/dev/log is a socket the test reads, so syslog lines are checked too.
Needs root.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
from pathlib import Path

import pytest

from bootres.core import resolvconf

REPO = Path(__file__).resolve().parents[2]
MANAGED = resolvconf.render_managed([("127.0.0.35", 53)], ("example.test",), ())
STOPPED = resolvconf.render_stopped(["198.18.0.10"], ("example.test",), ())


def require(script: Path) -> None:
    """Skip the test when ``script`` or what runs it is missing; fail instead under BOOTRES_REQUIRE_LAB."""
    reason = _unavailable(script)
    if reason:
        if os.environ.get("BOOTRES_REQUIRE_LAB"):
            pytest.fail(f"{reason} (and BOOTRES_REQUIRE_LAB is set)")
        pytest.skip(reason)


def _unavailable(script: Path) -> str | None:
    if os.geteuid() != 0:
        return "running a DHCP client's script in mount and network namespaces needs root"
    if not script.is_file():
        return f"needs {script} (see .ci/setup)"
    for tool in ("unshare", "chroot", "ip", "dash"):
        if not shutil.which(tool):
            return f"needs {tool}"
    return None


class Host:
    """A chroot with the hooks installed (``etc_hooks``: path in the root -> file of hooks/; ``usr_hooks``: the same
    under /usr), /usr/bin/bootres, a managed /etc/resolv.conf, and an empty /run."""

    def __init__(self, base: Path, etc_hooks: dict[str, Path], usr_hooks: dict[str, Path], sources: str):
        self.base = base
        self.root = base / "root"
        self.upper = base / "usr-upper"
        for path in ("etc", "run", "dev", "usr", "tmp"):
            (self.root / path).mkdir(parents=True)
        for name in ("bin", "sbin", "lib", "lib64"):  # this machine is merged-/usr, like bookworm
            if Path("/", name).is_symlink():
                (self.root / name).symlink_to(os.readlink(Path("/", name)))
        (self.root / "dev" / "null").touch()
        (self.root / "etc" / "fstab").write_text("")  # dhclient-script's wait_for_rw reads it
        (self.root / "tmp").chmod(0o1777)
        installed = {**{self.root / path.lstrip("/"): src for path, src in etc_hooks.items()},
                     **{self.upper / path.removeprefix("/usr/"): src for path, src in usr_hooks.items()}}
        for dest, src in installed.items():
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, dest)
            dest.chmod(0o644)  # as the package installs them
        (self.upper / "bin").mkdir(parents=True, exist_ok=True)
        (base / "usr-work").mkdir()
        self.resolv_conf = self.root / "etc" / "resolv.conf"
        self.resolv_conf.write_text(MANAGED)
        self.sources = self.root / sources.lstrip("/")
        self.installed(True)

    def installed(self, yes: bool) -> None:
        """/usr/bin/bootres in the overlay: an executable, or a whiteout hiding any real one."""
        bootres = self.upper / "bin" / "bootres"
        if bootres.exists() or bootres.is_char_device():
            bootres.unlink()
        if yes:
            bootres.write_text("#!/bin/sh\nexit 0\n")
            bootres.chmod(0o755)
        else:
            os.mknod(bootres, stat.S_IFCHR | 0o600, os.makedev(0, 0))

    def run(self, argv: list[str], env: dict[str, str]) -> tuple[subprocess.CompletedProcess, list[str]]:
        """``argv`` in the root with ``env``; returns what it printed and the syslog lines it sent."""
        setup = (
            'set -e; root=$1 upper=$2 work=$3; shift 3\n'
            'mount -t overlay overlay -o "lowerdir=/usr,upperdir=$upper,workdir=$work" "$root/usr"\n'
            'mount --bind /dev/null "$root/dev/null"\n'
            'ip link set lo up\n'
            'ip link add eth0 type veth peer name eth1\n'
            'exec chroot "$root" "$@"\n'
        )
        log_path = self.root / "dev" / "log"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as syslog:
            syslog.bind(str(log_path))
            try:
                done = subprocess.run(
                    ["unshare", "--mount", "--net", "--propagation", "private", "sh", "-c", setup, "sh",
                     str(self.root), str(self.upper), str(self.base / "usr-work"), *argv],
                    env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", **env},
                    capture_output=True, text=True, timeout=30,
                )
                syslog.setblocking(False)
                messages = []
                while True:
                    try:
                        messages.append(syslog.recv(65536).decode("utf-8", "replace"))
                    except BlockingIOError:
                        break
            finally:
                log_path.unlink()
        return done, messages
