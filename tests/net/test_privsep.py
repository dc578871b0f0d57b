"""``bootres run --user``: the daemon gives up root, a privileged writer keeps the files (issue 21).

The whole daemon in a namespace, run by Debian's own interpreter and
libraries (python3-dnspython, python3-pyroute2, python3-systemd: what the
package runs with) from a copy of the package that uid 65534 can read, as
the shipped unit runs it but with ``--user nobody``: the machine's own
/etc/passwd is never touched to make a ``bootres`` user.  The booted test
(tests/boot/test_boot.py) does the same with the package's user.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from bootres_process import BootresProcess

REPO = Path(__file__).resolve().parents[2]
DAEMON_CAPS = (1 << 10) | (1 << 12) | (1 << 13)  # CAP_NET_BIND_SERVICE, CAP_NET_ADMIN, CAP_NET_RAW


def proc_status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as handle:
        return dict(line.rstrip("\n").split(":\t", 1) for line in handle if ":\t" in line)


@pytest.fixture
def work(open_dir):
    """A directory uid 65534 can reach, with a copy of the package in it."""
    shutil.copytree(REPO / "bootres", open_dir / "lib" / "bootres", ignore=shutil.ignore_patterns("__pycache__"))
    return open_dir


def test_the_daemon_runs_as_the_user_with_three_capabilities_and_the_writer_keeps_the_files(lab, work):
    host, lan = lab.netns("host"), lab.netns("site")
    lab.link(host, "198.18.5.10/24", lan, "198.18.5.1/24")
    lab.nsd(lan, "198.18.5.1", records={"www": "198.18.0.80"})
    (work / "hosts").write_text("127.0.0.1\tlocalhost\n")
    conf = work / "bootres.conf"
    conf.write_text(
        "[resolver]\nlisten = 127.0.0.35:53\nupstreams = 198.18.5.1\ncache_file =\nhosts_files =\n"
        "manage_resolv_conf = no\n"
        f"[hosts]\nfile = {work / 'hosts'}\nrouter_names = site-router\n"
        f"[router]\nstatic = 198.18.5.1\ndefaultrouter_file = {work / 'defaultrouter'}\n"
        f"[service]\nstate_dir = {work / 'state'}\n")
    daemon = BootresProcess(conf, ns=host, python="/usr/bin/python3", argv=("--user", "nobody"),
                            env={"PYTHONPATH": str(work / "lib")}, cwd="/")

    def written() -> bool:  # the block's router line and /etc/defaultrouter, by the writer; the first write has neither
        hosts = (work / "hosts").read_text()
        return "198.18.5.1\tsite-router" in hosts and (work / "defaultrouter").exists() and bool(daemon.status())

    daemon.wait(written, 20, "the files written and the control socket answering", interval=0.05)
    pid = int(host.run("pgrep", "-o", "-f", f"bootres run --user nobody -c {conf}").stdout)
    daemon_status = proc_status(pid)
    assert daemon_status["Uid"].split() == ["65534"] * 4 and daemon_status["Groups"].strip() == ""
    for field in ("CapEff", "CapPrm", "CapBnd"):
        assert int(daemon_status[field], 16) == DAEMON_CAPS, (field, daemon_status[field])
    assert int(daemon_status["CapInh"], 16) == 0 and int(daemon_status["CapAmb"], 16) == 0
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    assert len(children) == 1
    writer = proc_status(int(children[0]))
    assert writer["Name"] == "bootres-etc" and writer["Uid"].split() == ["0"] * 4
    for field in ("CapEff", "CapPrm", "CapBnd"):
        assert int(writer[field], 16) == 0, (field, writer[field])
    # The writer has none of the daemon's sockets: only its channels (and the standard streams).
    sockets = [os.readlink(f"/proc/{children[0]}/fd/{fd}") for fd in os.listdir(f"/proc/{children[0]}/fd")]
    assert sum(link.startswith("socket:") for link in sockets) == 3, sockets
    # What the user sees: the block and /etc/defaultrouter written (by the writer), names answered.
    assert "198.18.5.1\tsite-router" in (work / "hosts").read_text()
    assert (work / "defaultrouter").read_text() == "198.18.5.1\n"
    assert os.stat(work / "hosts").st_uid == 0
    reply = host.run("dig", "+short", "+time=2", "+tries=1", "@127.0.0.35", "www.example.test").stdout.split()
    assert reply == ["198.18.0.80"]
    # The daemon's own credentials cannot write where root can: its uid, no DAC capability.
    probe = host.run("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                     "--inh-caps=-all,+net_bind_service,+net_raw,+net_admin",
                     "--ambient-caps=-all,+net_bind_service,+net_raw,+net_admin",
                     "sh", "-c", f"echo x >> {work / 'hosts'}", check=False)
    assert probe.returncode != 0 and "Permission denied" in probe.stderr, probe
    assert not (work / "hosts").read_text().endswith("x\n")
    # A clean stop: the daemon ends, and the writer with it (its channels closed).
    assert daemon.stop() == 0, daemon.log()
    for _ in range(100):  # bounded: 5 s
        if not os.path.exists(f"/proc/{children[0]}"):
            break
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{children[0]}")
    assert "running as user nobody" in daemon.log()
