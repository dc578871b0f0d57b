"""The package, built and booted for real: issue 5's "must show", one boot shared by the module.

Runs as root only (skipped otherwise); as root every missing tool is a
failure, not a skip, so CI cannot pass without it.  Budget: ~25 s package
build (with its build-time tests), ~30 s for the cached base image on the
first run of the day, ~1 s boot, ~20 s of checks.

The tests run in file order on one container and later ones change it
(reload, kill, stop, purge); each asserts its own preconditions.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time

import pytest

import bootlab

pytestmark = [
    pytest.mark.boot,
    # The first test's setup builds the package, and on a fresh machine the
    # base image too (mmdebstrap): more than tox.ini's 120 s backstop.
    pytest.mark.timeout(600),
    pytest.mark.skipif(os.geteuid() != 0, reason="booting a container needs root"),
]

ORIGINAL_RESOLV_CONF = bootlab.IMAGE_FILES["etc/resolv.conf"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    missing = bootlab.missing_tools()
    assert not missing, f"install these for the boot test: {missing} (see .ci/setup)"
    started = time.monotonic()
    deb, changes, log = bootlab.build_deb(tmp_path_factory.mktemp("deb"))
    print(f"dpkg-buildpackage: {time.monotonic() - started:.1f} s")
    return deb, changes, log


@pytest.fixture(scope="module")
def box(built, tmp_path_factory):
    work = tmp_path_factory.mktemp("boot", numbered=True)
    started = time.monotonic()
    root = bootlab.prepare_image(work, built[0])
    print(f"image: {time.monotonic() - started:.1f} s")
    container = bootlab.Container(root, f"t{os.getpid()}")
    try:
        print(f"boot: {container.boot():.2f} s to running")
        yield container
    finally:
        container.poweroff()
        shutil.rmtree(root, ignore_errors=True)  # 270 MB; the log beside it stays for post-mortems


def sh(box, script: str, timeout: float = 30):
    return box.run("sh", "-c", script, timeout=timeout, check=False)


def wait_until(check, timeout: float = 20, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            assert result, f"timed out after {timeout}s waiting for {what}"
            return result
        time.sleep(0.2)


# --- the package and the unit, on the host


def test_package_builds_and_lintian_is_clean(built):
    deb, changes, _ = built
    proc = bootlab.run("lintian", "--fail-on", "error,warning", "--display-info", str(changes), check=False)
    findings = [line for line in proc.stdout.splitlines() if re.match(r"^[EW]: ", line)]
    assert proc.returncode == 0 and not findings, proc.stdout + proc.stderr
    contents = bootlab.run("dpkg-deb", "--contents", str(deb)).stdout
    assert "./lib/" not in contents  # units under /usr/lib, as Debian 13 expects (issue 19)
    for path in ("./usr/lib/systemd/system/bootres.service", "./usr/lib/systemd/system/bootres.socket",
                 "./usr/lib/systemd/system-generators/bootres-generator", "./etc/bootres/bootres.conf", "./usr/bin/bootres",
                 "./etc/dhcp/dhclient-enter-hooks.d/bootres", "./usr/lib/NetworkManager/conf.d/50-bootres.conf",
                 "./usr/lib/dhcpcd/dhcpcd-hooks/19-bootres", "./usr/lib/systemd/resolved.conf.d/50-bootres.conf",
                 # named by path in the units, the configuration and the hooks: uncompressed
                 "./usr/share/doc/bootres/service.md", "./usr/share/doc/bootres/containers.md",
                 "./usr/share/doc/bootres/upstreams.md"):
        assert path in contents
    assert sorted(bootlab.run("dpkg-deb", "--info", str(deb), "conffiles").stdout.split()) == [
        "/etc/bootres/bootres.conf", "/etc/dhcp/dhclient-enter-hooks.d/bootres"]


def test_socket_unit_verifies_clean_without_the_generator():
    """Issue 19: without its default Listen lines ``systemd-analyze verify`` refused it ("Unit has no Listen setting")."""
    proc = bootlab.run("systemd-analyze", "verify", "--man=no", str(bootlab.REPO / "units/bootres.socket"), check=False)
    assert proc.returncode == 0 and proc.stdout + proc.stderr == "", proc.stdout + proc.stderr


def test_unit_security_exposure_at_most_2_5():
    proc = bootlab.run("systemd-analyze", "security", "--offline=true", str(bootlab.REPO / "units/bootres.service"))
    exposure = float(re.search(r"Overall exposure level for bootres.service: (\d+\.\d+)", proc.stdout).group(1))
    print(f"exposure {exposure}")
    assert exposure <= 2.5, proc.stdout


# --- the booted system


def test_units_verify_clean_inside(box):
    # With the generators run: bootres.socket (which the service wants) has its Listen lines from the drop-in.
    proc = box.run("systemd-analyze", "verify", "--generators=yes", "--man=no", "/usr/lib/systemd/system/bootres.service",
                   check=False)
    assert proc.returncode == 0 and proc.stdout + proc.stderr == "", proc.stdout + proc.stderr


def test_service_and_socket_active_and_enabled(box):
    for unit in ("bootres.service", "bootres.socket"):
        assert box.show(unit, "ActiveState") == "active", box.diagnostics()
        assert box.run("systemctl", "is-enabled", unit).stdout.strip() == "enabled"


def test_socket_listens_on_the_configured_address_from_the_generator(box):
    assert box.show("bootres.socket", "Listen").split() == [
        "127.0.0.35:53", "(Datagram)", "127.0.0.35:53", "(Stream)",
        "169.254.0.53:53", "(Datagram)", "169.254.0.53:53", "(Stream)"]  # and container_listen (issue 20)
    dropin = box.run("cat", "/run/systemd/generator/bootres.socket.d/listen.conf").stdout
    assert "ListenDatagram=127.0.0.35:53\n" in dropin and "ListenDatagram=169.254.0.53:53\n" in dropin
    # The daemon caches it once running, so the next boot's generator copies it instead of starting Python.
    wait_until(lambda: box.run("cat", "/var/lib/bootres/generator.conf", check=False).stdout == dropin,
               what="the generator's cache")
    log = box.run("journalctl", "-b", "-u", "bootres.service", "--no-pager", "-o", "cat").stdout
    assert "listening on 127.0.0.35:53 with the sockets of bootres.socket" in log
    assert "listening on 169.254.0.53:53 with the sockets of bootres.socket" in log
    # The socket's ExecStartPre put the container address on lo before anything ran: bootres found it there.
    assert "inet 169.254.0.53/32 scope host lo" in box.run("ip", "-4", "address", "show", "dev", "lo").stdout
    assert "put on lo" not in log

def test_ready_before_nss_lookup_sockets_before_sysinit_and_network_online(box):
    service = int(box.show("bootres.service", "ActiveEnterTimestampMonotonic"))
    online = int(box.show("network-online.target", "ActiveEnterTimestampMonotonic"))
    lookup = int(box.show("nss-lookup.target", "ActiveEnterTimestampMonotonic"))
    started = int(box.show("bootres.service", "ExecMainStartTimestampMonotonic"))
    sockets = int(box.show("bootres.socket", "ActiveEnterTimestampMonotonic"))
    sysinit = int(box.show("sysinit.target", "ActiveEnterTimestampMonotonic"))
    print(f"bootres: exec to READY {(service - started) / 1000:.0f} ms; READY {(lookup - service) / 1000:.1f} ms"
          f" before nss-lookup.target; sockets {(sysinit - sockets) / 1000:.1f} ms before sysinit.target,"
          f" {(online - sockets) / 1000:.1f} ms before network-online.target")
    assert service and online and lookup, "both targets must really be reached in this boot"
    assert service < lookup
    # Each target after the socket; not sysinit.target before network-online.target: systemd-networkd (and
    # its wait-online) is not ordered after sysinit.target, and a fresh clone's CI booted it first (issue 19).
    assert sockets < sysinit and sockets < online
    assert {"sysinit.target", "network-online.target"} <= set(box.show("bootres.socket", "Before").split())
    # The boot does not wait for bootres's start-up: only its sockets are ordered before sysinit.target
    # (and so before network-online.target); the service only before nss-lookup.target.
    for target in ("sysinit.target", "network-online.target", "multi-user.target"):
        assert "bootres.service" not in box.show(target, "After").split(), target
    # network-online.target is really waited for, by networkd's wait-online.
    assert box.show("systemd-networkd-wait-online.service", "ActiveState") == "active"


def test_no_ordering_cycle(box):
    proc = box.run("systemd-analyze", "verify", "default.target", check=False)
    assert "cycle" not in (proc.stdout + proc.stderr).lower(), proc.stdout + proc.stderr


def test_status_json_healthy(box):
    proc = box.run("bootres", "status", "--json", check=False)
    report = json.loads(proc.stdout)
    assert proc.returncode == 0, report.get("health")
    assert report["resolver"]["listen"] == ["127.0.0.35:53"]
    assert report["resolver"]["upstreams"][0]["address"] == f"{bootlab.UPSTREAM}:53"  # from the original resolv.conf
    assert report["router"]["default"] == bootlab.ROUTER
    assert all("error" not in entry for entry in report["files"].values())
    human = box.run("bootres", "status").stdout
    assert human.splitlines()[0].strip() == "Verdict: healthy"


def test_pinned_and_router_names_from_the_stub_block(box):
    def block_has_both():
        hosts = box.run("cat", "/etc/hosts").stdout
        return "mailhub.example.test" in hosts and "site-router" in hosts

    wait_until(block_has_both, what="the pinned name and router name in /etc/hosts")
    # -s files: answered by /etc/hosts alone, no DNS involved.
    assert box.run("getent", "-s", "files", "hosts", "site-router").stdout.split()[0] == bootlab.ROUTER
    assert box.run("getent", "-s", "files", "hosts", "mailhub.example.test").stdout.split()[0] == "198.18.0.25"
    assert box.run("cat", "/etc/defaultrouter").stdout == f"{bootlab.ROUTER}\n"


def test_names_resolve_through_the_stub(box):
    resolv = box.run("cat", "/etc/resolv.conf").stdout
    assert "nameserver 127.0.0.35\n" in resolv and "search example.test\n" in resolv
    assert box.run("getent", "-s", "dns", "hosts", "www.example.test").stdout.split()[0] == "198.18.0.80"
    assert box.run("getent", "-s", "dns", "hosts", "www").stdout.split()[0] == "198.18.0.80"  # search kept
    reply = json.loads(box.run("bootres", "query", "--json", "www.example.test").stdout)
    assert reply["answered"] and reply["source"] in ("upstream", "cache")


def main_pid(box) -> int:
    return int(box.run("systemctl", "show", "-p", "MainPID", "--value", "bootres.service").stdout)


def proc_status(box, pid: int) -> dict[str, str]:
    text = box.run("cat", f"/proc/{pid}/status").stdout
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


DAEMON_CAPS = (1 << 10) | (1 << 12) | (1 << 13)  # CAP_NET_BIND_SERVICE, CAP_NET_ADMIN, CAP_NET_RAW


def test_the_daemon_runs_as_bootres_with_three_capabilities_and_its_writer_with_none(box):
    """Issue 21: the network-facing process is user bootres; the writer of /etc is uid 0 with no capability."""
    pid = main_pid(box)
    assert box.run("ps", "-o", "user=", "-p", str(pid)).stdout.strip() == "bootres"
    daemon = proc_status(box, pid)
    for field in ("CapEff", "CapPrm", "CapBnd"):
        assert int(daemon[field], 16) == DAEMON_CAPS, (field, daemon[field])
    assert int(daemon["CapAmb"], 16) == 0 and int(daemon["CapInh"], 16) == 0
    children = box.run("cat", f"/proc/{pid}/task/{pid}/children").stdout.split()
    assert len(children) == 1, children
    writer = proc_status(box, int(children[0]))
    assert writer["Name"] == "bootres-etc" and writer["Uid"].split() == ["0"] * 4
    for field in ("CapEff", "CapPrm", "CapBnd"):
        assert int(writer[field], 16) == 0, (field, writer[field])
    # Its files are root's, written by the writer; the cache is the daemon's own.
    assert box.run("stat", "-c", "%U", "/etc/hosts", "/etc/defaultrouter").stdout.split() == ["root", "root"]
    assert box.run("stat", "-c", "%U:%G %a", "/var/lib/bootres/cache").stdout.strip() == "bootres:bootres 750"
    assert box.run("stat", "-c", "%G %a", "/run/bootres/control.sock").stdout.strip() == "bootres 660"


def test_code_in_the_daemons_sandbox_cannot_write_etc(box):
    """What a code-execution bug in a network parser could do: run as the daemon, in its mount namespace."""
    box.run("mkdir", "-p", "/etc/cron.d")
    before = box.run("sha256sum", "/etc/passwd", "/etc/hosts", "/etc/resolv.conf").stdout
    caps = "-all,+net_bind_service,+net_raw,+net_admin"
    script = ("touch /etc/cron.d/escape; echo cron=$?; echo 'x::0:0::/:/bin/sh' >> /etc/passwd; echo passwd=$?;"
              " echo '203.0.113.66 www.bank.example' >> /etc/hosts; echo hosts=$?;"
              " echo 'nameserver 203.0.113.66' > /etc/resolv.conf; echo resolv=$?")
    proc = box.run("nsenter", "-t", str(main_pid(box)), "-m", "--", "setpriv", "--reuid=bootres", "--regid=bootres",
                   "--clear-groups", f"--bounding-set={caps}", f"--inh-caps={caps}", f"--ambient-caps={caps}",
                   "--no-new-privs", "sh", "-c", script, check=False)
    assert sorted(proc.stdout.split()) == ["cron=1", "hosts=2", "passwd=2", "resolv=2"], (proc.stdout, proc.stderr)
    assert proc.stderr.count("Permission denied") == 4, proc.stderr
    assert box.run("test", "-e", "/etc/cron.d/escape", check=False).returncode != 0
    assert box.run("sha256sum", "/etc/passwd", "/etc/hosts", "/etc/resolv.conf").stdout == before


def test_a_hostname_set_with_hostnamectl_reaches_the_hosts_block(box):
    """Issue 21: ProtectHostname= gave bootres its own, frozen hostname; now the block follows within a second."""
    old = box.run("hostname").stdout.strip()
    box.run("hostnamectl", "set-hostname", "renamed-host")
    changed = time.monotonic()
    try:
        wait_until(lambda: "renamed-host" in box.run("cat", "/etc/hosts").stdout.split("# BEGIN bootres")[-1],
                   timeout=5, what="the new hostname in the block")
        print(f"hostname in the block {time.monotonic() - changed:.2f} s after hostnamectl returned")
        assert box.run("getent", "-s", "files", "hosts", "renamed-host").returncode == 0
    finally:
        box.run("hostnamectl", "set-hostname", old)


def test_reload_with_a_broken_config_fails_and_keeps_it_running(box):
    pid = box.show("bootres.service", "MainPID")
    sh(box, "printf '[resolver]\\nlisten = nowhere\\n' > /etc/bootres/conf.d/99-broken.conf")
    try:
        # ExecReload runs `bootres check` first: the admin's reload fails, naming the line.
        reload = box.run("systemctl", "reload", "bootres.service", check=False)
        assert reload.returncode != 0, reload.stdout + reload.stderr

        def journal(text):
            return text in box.run("journalctl", "-b", "-u", "bootres.service", "--no-pager", "-o", "cat").stdout

        wait_until(lambda: journal("99-broken.conf:2: listen"), what="the check's PATH:LINE in the journal")
        # A SIGHUP that bypasses the check is refused by the service itself and shows in the verdict.
        box.run("systemctl", "kill", "-s", "HUP", "bootres.service")
        wait_until(lambda: journal("reload refused"), what="the refusal in the journal")
        degraded = json.loads(box.run("bootres", "status", "--json", check=False).stdout)
        assert any(p.startswith("reload refused") for p in degraded["health"]["problems"]), degraded["health"]
    finally:
        box.run("rm", "-f", "/etc/bootres/conf.d/99-broken.conf")
    assert box.show("bootres.service", "ActiveState") == "active"
    assert box.show("bootres.service", "MainPID") == pid
    assert box.run("bootres", "query", "www.example.test", check=False).returncode == 0
    box.run("systemctl", "reload", "bootres.service")  # a good one clears the refusal
    wait_until(lambda: not any("reload" in p for p in json.loads(
        box.run("bootres", "status", "--json", check=False).stdout)["health"]["problems"]), what="the refusal cleared")


KILL_THEN_QUERY = """
import socket, subprocess, time
import dns.message
subprocess.run(["systemctl", "kill", "-s", "KILL", "bootres.service"], check=True)
query = dns.message.make_query("www.example.test.", "A")
client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
client.settimeout(4)
sent = time.monotonic()
client.sendto(query.to_wire(), ("127.0.0.35", 53))
reply = dns.message.from_wire(client.recv(4096))
print(reply.id == query.id, reply.answer[0][0], round(time.monotonic() - sent, 3))
"""


def test_killed_it_is_restarted_and_answers_again(box):
    pid = box.show("bootres.service", "MainPID")
    restarts = int(box.show("bootres.service", "NRestarts"))
    # A query sent the moment it dies waits in bootres.socket's socket and
    # is answered by the restarted bootres, not lost.
    proc = box.run("python3", "-c", KILL_THEN_QUERY, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    matched, address, seconds = proc.stdout.split()
    print(f"query sent while bootres was dead answered after {seconds} s")
    assert matched == "True" and address == "198.18.0.80" and float(seconds) < 4

    def back():
        return (box.show("bootres.service", "ActiveState") == "active"
                and box.show("bootres.service", "MainPID") not in ("0", pid))

    wait_until(back, what="bootres restarted")
    assert int(box.show("bootres.service", "NRestarts")) == restarts + 1
    wait_until(lambda: box.run("getent", "-s", "dns", "hosts", "www.example.test", check=False).returncode == 0,
               timeout=10, what="answers after the restart")
    assert box.run("bootres", "status", check=False).returncode == 0




def test_restarted_by_the_admin_no_query_is_lost(box):
    """`systemctl restart bootres` restarts the service only: the sockets stay, and so do the queries in them."""
    sockets_since = box.show("bootres.socket", "ActiveEnterTimestampMonotonic")
    pid = box.show("bootres.service", "MainPID")
    proc = box.run("python3", "-c", bootlab.QUERIES_DURING, "systemctl", "restart", "bootres.service", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    code, sent, lost = (int(field) for field in proc.stdout.split())
    print(f"{sent} queries sent during `systemctl restart bootres`, {lost} lost")
    assert code == 0 and sent > 0 and lost == 0
    assert box.show("bootres.service", "MainPID") != pid
    assert box.show("bootres.socket", "ActiveEnterTimestampMonotonic") == sockets_since


def test_upgraded_only_the_service_restarts_and_no_query_is_lost(box, built):
    """`dpkg -i` of the package over itself: the upgrade path of the maintainer scripts (old version given)."""
    shutil.copy(built[0], box.root / "root" / "bootres.deb")
    sockets_since = box.show("bootres.socket", "ActiveEnterTimestampMonotonic")
    pid = box.show("bootres.service", "MainPID")
    journal = ["journalctl", "-b", "-u", "bootres.service", "--no-pager", "-o", "cat"]
    taken = box.run(*journal).stdout.count("listening on 127.0.0.35:53 with the sockets of bootres.socket")
    proc = box.run("env", "DEBIAN_FRONTEND=noninteractive", "python3", "-c", bootlab.QUERIES_DURING,
                   "dpkg", "-i", "/root/bootres.deb", check=False, timeout=90)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    code, sent, lost = (int(field) for field in proc.stdout.split())
    print(f"{sent} queries sent during `dpkg -i` (upgrade), {lost} lost")
    assert code == 0 and sent > 0 and lost == 0
    assert box.show("bootres.service", "MainPID") != pid, "the upgrade restarts the service"
    assert box.show("bootres.socket", "ActiveEnterTimestampMonotonic") == sockets_since, "and leaves the socket"
    assert box.show("bootres.service", "ActiveState") == "active"
    # The new bootres took the socket unit's sockets, not ones it bound itself.
    assert box.run(*journal).stdout.count("listening on 127.0.0.35:53 with the sockets of bootres.socket") == taken + 1


def test_listen_changes_with_daemon_reload_and_a_stop_and_start(box):
    extra = "/etc/bootres/conf.d/60-listen.conf"
    sh(box, f"printf '[resolver]\\nlisten = 127.0.0.35 127.0.0.36\\n' > {extra}")
    try:
        box.run("systemctl", "daemon-reload")  # the generator parses the changed files
        # Stop both, then start: a restart of both can restart the socket while bootres still runs, which the
        # socket refuses (its service is active).
        box.run("systemctl", "stop", "bootres.socket", "bootres.service")
        box.run("systemctl", "start", "bootres.service")  # it wants its sockets: started first
        assert "127.0.0.36:53" in box.show("bootres.socket", "Listen")
        reply = box.run("python3", "-c", "import dns.resolver as r; x = r.Resolver(configure=False);"
                        " x.nameservers = ['127.0.0.36']; print(x.resolve('www.example.test', 'A')[0])", check=False)
        assert reply.stdout.strip() == "198.18.0.80", reply.stdout + reply.stderr
    finally:
        box.run("rm", "-f", extra)
        box.run("systemctl", "daemon-reload")
        box.run("systemctl", "stop", "bootres.socket", "bootres.service")
        box.run("systemctl", "start", "bootres.service")
    assert "127.0.0.36" not in box.show("bootres.socket", "Listen")
    assert box.show("bootres.socket", "ActiveState") == "active"


def test_stop_leaves_a_classic_resolv_conf_and_purge_restores_the_original(box):
    # Both, or a query to the socket would start it again behind the admin's back.
    box.run("systemctl", "stop", "bootres.socket", "bootres.service")
    assert box.show("bootres.socket", "ActiveState") == "inactive"
    # Stopped, the host resolves the classic way, through the upstreams bootres was using.
    stopped = box.run("cat", "/etc/resolv.conf").stdout
    assert stopped.startswith("# written by bootres when it stopped"), stopped
    assert f"nameserver {bootlab.UPSTREAM}\n" in stopped and "search example.test\n" in stopped
    assert box.run("test", "-s", "/var/lib/bootres/cache/cache.db", check=False).returncode == 0  # saved on stop
    assert box.run("bootres", "status", check=False).returncode == 3
    box.run("systemctl", "start", "bootres.service")
    assert "127.0.0.35" in box.run("cat", "/etc/resolv.conf").stdout
    assert box.show("bootres.socket", "ActiveState") == "active"  # started with the service
    # The cache file's age was judged inside the unit's sandbox (the boot ID, the boot-time clock: issue 24).
    saved = json.loads(box.run("bootres", "status", "--json", check=False).stdout)["resolver"]["cache_file"]
    assert saved["age_trusted"] is True and saved["age_note"] == "saved during this boot", saved
    assert saved["problem"] is None, saved
    # Killed, then purged: the package's postrm puts resolv.conf back.
    box.run("systemctl", "kill", "-s", "KILL", "bootres.service")
    sh(box, "systemctl stop bootres.service; DEBIAN_FRONTEND=noninteractive dpkg --purge bootres", timeout=60)
    assert box.run("cat", "/etc/resolv.conf").stdout == ORIGINAL_RESOLV_CONF
    assert sh(box, "test -e /var/lib/bootres || test -e /etc/bootres/bootres.conf").returncode != 0
    hosts = box.run("cat", "/etc/hosts").stdout
    assert "bootres" not in hosts and hosts.startswith("127.0.0.1\tlocalhost\n")
