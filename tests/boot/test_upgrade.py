"""An upgrade from the last version without bootres.socket, booted: the socket unit takes the listen addresses over.

That version bound the addresses itself and kept the sockets in the
service's fd store, which systemd keeps across the upgrade's restart: the
new socket unit could not bind them ("Address already in use", a failed
unit until the next boot) unless the postinst stops the service first,
once, and starts the socket at once (debian/bootres.postinst,
hand_listen_to_the_socket_unit).  The
earlier version is built from git history (a full clone has it; a shallow
one skips, saying so).

The second upgrade starts from issue 19's last package (820ea0f), whose
socket unit listens on 127.0.0.35 only: the container address (issue 20)
must be served at once, not from the next boot.

Budget per upgrade: two package builds (~4 s each), one image, one boot,
the upgrade (~5 s).  Runs as root only.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from typing import Iterator

import pytest

import bootlab

pytestmark = [
    pytest.mark.boot,
    pytest.mark.timeout(600),
    pytest.mark.skipif(os.geteuid() != 0, reason="booting a container needs root"),
]

LAST_WITHOUT_SOCKET = "fc04652"  # the commit before issue 13's bootres.socket


def upgrade_from(commit: str, work, name: str, booted_old) -> Iterator:
    """Boot the package of ``commit``, check it with ``booted_old(container)``, then `dpkg -i` this tree's while a
    client asks; yields (the client's figures, the container).  Skips when ``commit`` is not in this clone."""
    missing = bootlab.missing_tools()
    assert not missing, f"install these for the boot test: {missing} (see .ci/setup)"
    known = subprocess.run(["git", "-C", str(bootlab.REPO), "cat-file", "-e", f"{commit}^{{commit}}"],
                           capture_output=True)
    if known.returncode != 0:
        pytest.skip(f"{commit} is not in this clone's history (shallow?): no earlier version to upgrade")
    old = bootlab.build_deb(work.mktemp("old-deb"), commit=commit)[0]
    new = bootlab.build_deb(work.mktemp("new-deb"))[0]
    root = bootlab.prepare_image(work.mktemp(name), old)
    shutil.copy(new, root / "root" / "bootres.deb")
    box = bootlab.Container(root, f"{name[0]}{os.getpid()}")
    try:
        box.boot()
        booted_old(box)
        proc = box.run("env", "DEBIAN_FRONTEND=noninteractive", "python3", "-c", bootlab.QUERIES_DURING,
                       "dpkg", "-i", "/root/bootres.deb", check=False, timeout=90)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        yield [int(field) for field in proc.stdout.split()], box
    finally:
        box.poweroff()
        shutil.rmtree(root, ignore_errors=True)


def _without_socket(box) -> None:
    assert box.show("bootres.service", "ActiveState") == "active", box.diagnostics()
    assert box.show("bootres.socket", "LoadState") == "not-found"  # the old package has none


@pytest.fixture(scope="module")
def upgraded(tmp_path_factory):
    """Boot the old package, `dpkg -i` the new one while a client asks: (the client's figures, the container)."""
    yield from upgrade_from(LAST_WITHOUT_SOCKET, tmp_path_factory, "upgrade", _without_socket)


def test_the_socket_unit_listens_and_bootres_runs_on_its_sockets(upgraded):
    (code, sent, lost), box = upgraded
    # Between the old bootres's exit and the socket's start queries go unanswered (measured: 5 of 101).
    print(f"{sent} queries sent during the upgrade, {lost} unanswered")
    assert code == 0 and sent > 0 and lost < sent
    for unit in ("bootres.socket", "bootres.service"):
        assert box.show(unit, "ActiveState") == "active", box.diagnostics()
    socket_log = box.run("journalctl", "-b", "-u", "bootres.socket", "--no-pager", "-o", "cat").stdout
    assert "Address already in use" not in socket_log, socket_log
    log = box.run("journalctl", "-b", "-u", "bootres.service", "--no-pager", "-o", "cat").stdout
    # The last start (a query may start it from the socket before the postinst's restart does) took the
    # socket unit's sockets.
    listening = [line for line in log.splitlines() if line.startswith("listening on 127.0.0.35:53")]
    assert listening[-1].endswith("with the sockets of bootres.socket"), log
    assert box.run("getent", "hosts", "www.example.test", check=False).stdout.split()[:1] == ["198.18.0.80"]
    assert "nameserver 127.0.0.35" in box.run("cat", "/etc/resolv.conf").stdout
    # The units moved from /lib to /usr/lib (issue 19), one directory on a merged-/usr host: dpkg must not take
    # the old paths' removal for the new files'.
    for unit in ("bootres.service", "bootres.socket"):
        assert box.run("test", "-f", f"/usr/lib/systemd/system/{unit}", check=False).returncode == 0, unit
        assert box.show(unit, "LoadState") == "loaded", unit


LAST_WITHOUT_CONTAINER_ADDRESS = "820ea0f"  # issue 19's last commit: bootres.socket without container_listen


def _without_container_address(box) -> None:
    assert "169.254.0.53" not in box.run("ip", "address", "show", "dev", "lo").stdout


@pytest.fixture(scope="module")
def upgraded_to_the_container_address(tmp_path_factory):
    """Boot issue 19's package (a socket unit listening on 127.0.0.35 only), `dpkg -i` this one while a client asks."""
    yield from upgrade_from(LAST_WITHOUT_CONTAINER_ADDRESS, tmp_path_factory, "v-upgrade", _without_container_address)


def test_an_upgrade_to_the_container_address_serves_it_before_the_next_boot(upgraded_to_the_container_address):
    """The running socket unit keeps its old sockets until the next boot: the new bootres binds the container
    address itself (kept in its fd store) and puts it on lo; /etc/resolv.conf names it at once."""
    (code, sent, lost), box = upgraded_to_the_container_address
    print(f"{sent} queries sent during the upgrade, {lost} lost")
    assert code == 0 and sent > 0 and lost == 0
    assert box.show("bootres.service", "ActiveState") == "active", box.diagnostics()

    def served():
        report = json.loads(box.run("bootres", "status", "--json", check=False).stdout or "{}")
        container = report.get("resolver", {}).get("container_listen") or {}
        return container.get("answering") and container.get("on_lo")

    deadline = time.monotonic() + 10
    while not served() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert served(), box.diagnostics()
    assert "nameserver 169.254.0.53" in box.run("cat", "/etc/resolv.conf").stdout
    reply = box.run("python3", "-c", "import dns.resolver as r; x = r.Resolver(configure=False);"
                    " x.nameservers = ['169.254.0.53']; print(x.resolve('www.example.test', 'A')[0])", check=False)
    assert reply.stdout.strip() == "198.18.0.80", reply.stdout + reply.stderr
    log = box.run("journalctl", "-b", "-u", "bootres.service", "--no-pager", "-o", "cat").stdout
    assert "169.254.0.53 put on lo: containers reach bootres there" in log, log[-3000:]
