"""hooks/dhcpcd-hook under the real dhcpcd-run-hooks and its 20-resolv.conf (package dhcpcd-base; issue 19).

Each run builds a small root in tmp_path and runs the machine's real
/usr/lib/dhcpcd/dhcpcd-run-hooks chrooted into it (tests/shell/hookhost.py),
with the environment dhcpcd gives it for each reason; the hook is installed
as /usr/lib/dhcpcd/dhcpcd-hooks/19-bootres in the overlay, beside dhcpcd's
own hooks.  20-resolv.conf is the same in bookworm's dhcpcd 9.4.1 and
trixie's 10.1.  Needs root; skipped without it, failed instead under
BOOTRES_REQUIRE_LAB.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

import hookhost
from hookhost import MANAGED, REPO, STOPPED

HOOK = REPO / "hooks" / "dhcpcd-hook"
RUN_HOOKS = Path("/usr/lib/dhcpcd/dhcpcd-run-hooks")
HOOK_PATH = "/usr/lib/dhcpcd/dhcpcd-hooks/19-bootres"
WRITER = HOOK_PATH
UP = {"if_up": "true", "if_down": "false", "if_configured": "true"}
DOWN = {"if_up": "false", "if_down": "true", "if_configured": "true"}
LEASE = {
    "interface": "eth0", "protocol": "dhcp", **UP,
    "new_ip_address": "198.18.0.2", "new_subnet_cidr": "24", "new_routers": "198.18.0.1",
    "new_domain_name_servers": "198.18.0.10 198.18.0.11",
    "new_domain_name": "example.test",
    "new_domain_search": "example.test corp.example",
}
RA = {
    "interface": "eth0", "protocol": "ra", **UP,
    "nd1_acquired": "1000", "nd1_now": "1000", "nd1_from": "fe80::1",
    "nd1_rdnss1_servers": "fe80::53 2001:db8::53", "nd1_rdnss1_lifetime": "600",
    "nd1_dnssl1_search": "v6.example", "nd1_dnssl1_lifetime": "600",
}


class Host(hookhost.Host):
    def __init__(self, base: Path):
        super().__init__(base, {}, {HOOK_PATH: HOOK}, "/run/bootres/dhcpcd")

    def dhcpcd(self, reason: str, **env: str) -> list[str]:
        """Run dhcpcd-run-hooks as dhcpcd does; returns the syslog lines it sent."""
        done, messages = self.run([str(RUN_HOOKS)], {"reason": reason, **env})
        assert done.returncode == 0, f"dhcpcd-run-hooks {reason}: {done.returncode}\n{done.stdout}\n{done.stderr}"
        assert "bootres" not in done.stderr, done.stderr
        return messages

    def source(self, name: str = "eth0.dhcp") -> Path:
        return self.sources / name


@pytest.fixture
def host(tmp_path):
    reason = hookhost.unavailable(RUN_HOOKS)
    if reason:
        if os.environ.get("BOOTRES_REQUIRE_LAB"):
            pytest.fail(f"{reason} (and BOOTRES_REQUIRE_LAB is set)")
        pytest.skip(reason)
    return Host(tmp_path)


def source_text(name: str, reason: str, search: str, *servers: str) -> str:
    lines = [f"# written by {WRITER}: dhcpcd {name} ({reason})"]
    if search:
        lines.append(f"search {search}")
    lines += [f"nameserver {server}" for server in servers]
    return "\n".join(lines) + "\n"


# --- the lease becomes a source, and dhcpcd leaves bootres's resolv.conf alone


@pytest.mark.parametrize("reason", ["BOUND", "RENEW", "REBIND", "REBOOT", "INFORM", "STATIC"])
def test_lease_is_written_and_managed_resolv_conf_untouched(host, reason):
    host.dhcpcd(reason, **LEASE)
    assert host.source().read_text() == source_text(
        "eth0.dhcp", reason, "example.test corp.example", "198.18.0.10", "198.18.0.11")
    assert stat.S_IMODE(host.source().stat().st_mode) == 0o644
    assert host.resolv_conf.read_text() == MANAGED
    assert os.listdir(host.sources) == ["eth0.dhcp"]
    assert not (host.root / "run" / "dhcpcd").exists(), "dhcpcd kept no resolv.conf record of its own"


def test_renewal_replaces_the_file_in_one_rename(host):
    host.dhcpcd("BOUND", **LEASE)
    old_inode = host.source().stat().st_ino
    host.dhcpcd("RENEW", **{**LEASE, "new_domain_name_servers": "198.18.0.12", "new_domain_search": ""})
    assert host.source().stat().st_ino != old_inode
    assert host.source().read_text() == source_text("eth0.dhcp", "RENEW", "example.test", "198.18.0.12")
    assert os.listdir(host.sources) == ["eth0.dhcp"], "no temporary file left behind"
    assert host.resolv_conf.read_text() == MANAGED


@pytest.mark.parametrize("reason", ["EXPIRE", "NAK", "RELEASE", "STOP", "NOCARRIER", "DEPARTED"])
def test_lease_gone_removes_its_file(host, reason):
    host.dhcpcd("BOUND", **LEASE)
    host.dhcpcd("ROUTERADVERT", **RA)
    host.dhcpcd(reason, interface="eth0", protocol="dhcp", **DOWN)
    assert not host.source().exists()
    assert host.source("eth0.ra").exists(), "the router advertisement is another source"
    assert host.resolv_conf.read_text() == MANAGED


def test_router_advertisement_and_dhcpv6(host):
    host.dhcpcd("ROUTERADVERT", **RA)
    assert host.source("eth0.ra").read_text() == source_text(
        "eth0.ra", "ROUTERADVERT", "v6.example", "fe80::53%eth0", "2001:db8::53")
    host.dhcpcd("BOUND6", interface="eth0", protocol="dhcp6", **UP,
                new_dhcp6_name_servers="2001:db8::54", new_dhcp6_domain_search="v6.example")
    assert host.source("eth0.dhcp6").read_text() == source_text("eth0.dhcp6", "BOUND6", "v6.example", "2001:db8::54")
    host.dhcpcd("EXPIRE6", interface="eth0", protocol="dhcp6", **DOWN)
    assert not host.source("eth0.dhcp6").exists() and host.source("eth0.ra").exists()
    expired = {**RA, "nd1_now": "2000"}  # dhcpcd keeps the options; their lifetime ran out: none left
    host.dhcpcd("ROUTERADVERT", **expired)
    assert not host.source("eth0.ra").exists()
    assert host.resolv_conf.read_text() == MANAGED


# --- dhcpcd's own resolv.conf while bootres is not managing it


def dhcpcd_alone(tmp_path: Path, before: str, *runs: tuple[str, dict]) -> str:
    """/etc/resolv.conf as dhcpcd leaves it without bootres installed."""
    alone = Host(tmp_path / "alone")
    alone.installed(False)
    alone.resolv_conf.write_text(before)
    for reason, env in runs:
        alone.dhcpcd(reason, **env)
    return alone.resolv_conf.read_text()


@pytest.mark.parametrize("before", [STOPPED, "nameserver 198.18.9.9\n"], ids=["bootres-stopped", "someone-else"])
def test_not_managed_dhcpcd_writes_resolv_conf_as_without_bootres(host, tmp_path, before):
    runs = [("BOUND", LEASE), ("ROUTERADVERT", RA), ("RENEW", {**LEASE, "new_domain_name_servers": "198.18.0.12"})]
    host.resolv_conf.write_text(before)
    for reason, env in runs:
        host.dhcpcd(reason, **env)
    expected = dhcpcd_alone(tmp_path, before, *runs)
    assert "nameserver 198.18.0.12\n" in expected and "nameserver 2001:db8::53\n" in expected
    assert host.resolv_conf.read_text() == expected
    assert host.source().exists() and host.source("eth0.ra").exists(), "the leases are sources all the same"
    host.dhcpcd("RELEASE", interface="eth0", protocol="dhcp", **DOWN)
    assert host.resolv_conf.read_text() == dhcpcd_alone(
        tmp_path / "2", before, *runs, ("RELEASE", {"interface": "eth0", "protocol": "dhcp", **DOWN}))


def test_without_bootres_the_hook_does_nothing_at_all(host, tmp_path):
    host.installed(False)
    host.dhcpcd("BOUND", **LEASE)
    assert not host.sources.exists()
    assert host.resolv_conf.read_text() == dhcpcd_alone(tmp_path, hookhost.MANAGED, ("BOUND", LEASE))
    assert "nameserver 198.18.0.10\n" in host.resolv_conf.read_text(), "dhcpcd wrote resolv.conf as usual"


def test_a_resolvconf_program_gets_the_lease_while_bootres_is_not_managing(host):
    program = host.upper / "sbin" / "resolvconf"
    program.parent.mkdir(parents=True, exist_ok=True)
    program.write_text('#!/bin/sh\n{ echo "$*"; cat; } >> /run/resolvconf-got-it\n')
    program.chmod(0o755)
    host.dhcpcd("BOUND", **LEASE)
    assert not (host.root / "run" / "resolvconf-got-it").exists(), "managed: bootres's only"
    host.resolv_conf.write_text(STOPPED)
    host.dhcpcd("RENEW", **LEASE)
    got = (host.root / "run" / "resolvconf-got-it").read_text()
    assert got.startswith("-a eth0.dhcp\n# Generated by dhcpcd from eth0.dhcp\n") and "nameserver 198.18.0.10\n" in got
    assert host.resolv_conf.read_text() == STOPPED and host.source().exists()


# --- hostile lease data


def test_hostile_values_are_dropped_never_run(host):
    pwned = ["/run/pwned1", "/run/pwned2", "/run/pwned3"]
    hostile = {
        "new_domain_name_servers": ("198.18.0.10 $(touch /run/pwned1) `touch /run/pwned2` 1.2.3.999 01.2.3.4 "
                                    "198.18.0.11 ../x\nnameserver 6.6.6.6"),
        "new_domain_search": "ok.example -bad.example $(touch${IFS}/run/pwned3)",
    }
    messages = host.dhcpcd("BOUND", **{**LEASE, **hostile})
    assert not [path for path in pwned if (host.root / path.lstrip("/")).exists()]
    text = host.source().read_text()
    assert text.splitlines()[2:] == ["nameserver 198.18.0.10", "nameserver 198.18.0.11", "nameserver 6.6.6.6"], text
    assert "pwned" not in text and "../x" not in text
    assert any("dhcpcd hook: dropped" in m for m in messages), messages
    assert host.resolv_conf.read_text() == MANAGED


@pytest.mark.parametrize("interface", ["../../etc", "eth0/..", ".hidden", "a" * 16, "eth 0", "$(id)"])
def test_hostile_interface_names_write_nothing(host, interface):
    host.dhcpcd("BOUND", **{**LEASE, "interface": interface})
    assert not (host.root / "run" / "bootres").exists()
    assert host.resolv_conf.read_text() == MANAGED


@pytest.mark.parametrize("protocol", ["../x", "dhcp/../../y", "DHCP", ""])
def test_hostile_protocols_write_nothing(host, protocol):
    host.dhcpcd("BOUND", **{**LEASE, "protocol": protocol})
    assert not (host.root / "run" / "bootres").exists()


@pytest.mark.parametrize("reason", ["BOUND", "RELEASE", "PREINIT", "CARRIER", "NOCARRIER_ROAMING", "TEST", "NONSENSE"])
@pytest.mark.parametrize("resolv", [MANAGED, STOPPED], ids=["managed", "stopped"])
def test_sourced_under_set_e_it_never_fails_or_leaks(host, reason, resolv):
    host.resolv_conf.write_text(resolv)
    probe = (
        "set > /tmp/before\n"
        f". {HOOK_PATH}\n"
        'echo "hook status $?"\n'
        "set > /tmp/after\n"  # what it added: its own names only (and 20-resolv.conf's $resolvconf)
        "diff /tmp/before /tmp/after | grep '^>' | grep -vE '^> (bootres_[a-z_]*|resolvconf)=' && echo LEAKED\n"
        "echo survived\n"
    )
    done, _ = host.run(["/bin/dash", "-euc", probe], {"reason": reason, **LEASE})
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == ["hook status 0", "survived"], done.stdout
