"""Issue 19: CI tests what Debian ships, not only the PyPI pins of tox's environments.

Debian's security update python3-dnspython 2.3.0-1+deb12u1 read replies
differently from PyPI's 2.3.0, which the tox ``bookworm`` environment
installs, and the README's build command failed on an up-to-date Debian 12
while CI stayed green (the boot tests build with ``nocheck``).  So, for
Debian 12 (with the security updates of the machine's mirror, refreshed
daily) and Debian 13: a minbase root of that release with Debian's own
python3, python3-dnspython, python3-pyroute2, python3-systemd, pytest and
hypothesis and the build dependencies (``bootlab.base_rootfs``), a copy of
the working tree in it, and in ``systemd-nspawn`` (not booted, a network
namespace of its own, the tests as PID 2):

- the README's build command, ``dpkg-buildpackage -us -uc -b``, *with* the
  package's build-time tests (tests/core and tests/test_config.py);
- pytest on tests/shell and the top-level tests with that release's
  interpreter and libraries: among them the DHCP hooks under that release's
  real dhclient-script and dhcpcd-run-hooks.

Budget: ~2 min per release for the base on the first run of the day, then
~45 s per release.  Runs as root only.
"""

from __future__ import annotations

import os
import re
import shutil

import pytest

import bootlab

pytestmark = [
    pytest.mark.boot,
    pytest.mark.timeout(900),
    pytest.mark.skipif(os.geteuid() != 0, reason="systemd-nspawn needs root"),
]

PACKAGES = (
    # debian/control's Build-Depends and what dpkg-buildpackage needs
    "build-essential", "debhelper", "dh-python", "pybuild-plugin-pyproject", "python3-setuptools",
    "python3-hypothesis", "python3-pytest", "python3-pytest-timeout",
    # what tests/shell runs: the DHCP clients' scripts, namespaces, the real dhclient-script's tools
    "isc-dhcp-client", "dhcpcd-base", "util-linux", "iproute2",
)
SHELL_TESTS = ("tests/shell", "tests/test_config.py", "tests/shell/test_cli.py", "tests/test_layering.py")
VERSIONS = ("python3", "python3-dnspython", "python3-pyroute2", "python3-systemd", "systemd", "debhelper")


def in_release(root, *argv: str, timeout: float = 600):
    """``argv`` in the tree at /src/bootres of ``root``, under systemd-nspawn, Debian's PATH."""
    return bootlab.run("systemd-nspawn", "-q", "-D", str(root), "--register=no", "--keep-unit", "--private-network",
                       "--as-pid2", "--pipe", "--chdir=/src/bootres", "env", f"PATH={bootlab.CLEAN_PATH}",
                       "BOOTRES_REQUIRE_LAB=1", "LC_ALL=C.UTF-8", "HOME=/root", *argv, timeout=timeout, check=False)


@pytest.fixture(scope="module", params=["bookworm", "trixie"])
def release(request, tmp_path_factory):
    missing = bootlab.missing_tools()
    assert not missing, f"install these for the boot test: {missing} (see .ci/setup)"
    work = tmp_path_factory.mktemp(request.param)
    root = work / "root"
    bootlab.run("cp", "-a", "--reflink=auto", str(bootlab.base_rootfs(PACKAGES, request.param)), str(root))
    bootlab.source_tree(root / "src")
    versions = bootlab.run("chroot", str(root), "dpkg-query", "-W", *VERSIONS).stdout
    print(f"\n{request.param}: " + ", ".join(line.replace("\t", " ") for line in versions.splitlines()))
    yield request.param, root
    shutil.rmtree(root, ignore_errors=True)


def test_readme_build_command_with_its_tests_passes(release):
    suite, root = release
    proc = in_release(root, "dpkg-buildpackage", "-us", "-uc", "-b")
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-6000:]
    summary = re.findall(r"=+ (\d+ passed[^=]*) in [\d.]+s", log)
    print(f"{suite}: build-time tests {summary}")
    assert summary and "failed" not in summary[-1] and "skipped" not in summary[-1], log[-3000:]
    assert list((root / "src").glob("bootres_*_all.deb"))


def test_shell_and_top_level_tests_pass_with_the_releases_own_packages(release):
    suite, root = release
    proc = in_release(root, "python3", "-m", "pytest", "-q", "-p", "no:cacheprovider", *SHELL_TESTS)
    tail = proc.stdout.strip().splitlines()[-1:] if proc.stdout.strip() else []
    print(f"{suite}: {tail}")
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert tail and "passed" in tail[0] and "skipped" not in tail[0] and "failed" not in tail[0], tail
