"""hooks/dhclient-enter-hook under bookworm's real /sbin/dhclient-script.

Each run builds a small root in tmp_path and runs the real dhclient-script
(package isc-dhcp-client) chrooted into it (tests/shell/hookhost.py). Needs
root; skipped without it, failed instead under BOOTRES_REQUIRE_LAB.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

import hookhost
from hookhost import MANAGED, REPO, STOPPED

HOOK = REPO / "hooks" / "dhclient-enter-hook"
DHCLIENT_SCRIPT = Path("/sbin/dhclient-script")
HOOK_PATH = "/etc/dhcp/dhclient-enter-hooks.d/bootres"
LEASE = {
    "interface": "eth0",
    "new_ip_address": "198.18.0.2",
    "new_subnet_mask": "255.255.255.0",
    "new_broadcast_address": "198.18.0.255",
    "new_routers": "198.18.0.1",
    "new_domain_name_servers": "198.18.0.10 198.18.0.11",
    "new_domain_name": "example.test",
    "new_domain_search": "example.test. corp.example.",
}


class Host(hookhost.Host):
    """A chroot with the hook installed, /etc/resolv.conf, and an empty /run."""

    def __init__(self, base: Path):
        super().__init__(base, {HOOK_PATH: HOOK}, {}, "/run/bootres/dhclient")
        (self.root / "etc" / "dhcp" / "dhclient-enter-hooks.d").mkdir(parents=True, exist_ok=True)

    def dhclient(self, reason: str, **lease: str) -> list[str]:
        """Run /sbin/dhclient-script as dhclient does; returns the syslog lines it sent."""
        done, messages = self.run(["/sbin/dhclient-script"], {"reason": reason, **lease})
        assert done.returncode == 0, f"dhclient-script {reason}: {done.returncode}\n{done.stderr}"
        assert "bootres" not in done.stderr, done.stderr
        assert not [m for m in messages if "non-zero exit status" in m], messages
        return messages

    def source_under_set_e(self, reason: str, **lease: str) -> str:
        """Source the hook the way dhclient-script does, but under ``dash -eu``; returns its output."""
        probe = (
            "make_resolv_conf() { echo dhclient-writes; }\n"
            f". {HOOK_PATH}\n"
            'echo "hook status $?"\n'
            "set | grep -E '^(dir|dropped|servers|domains|value|target|temp|valid)=' && echo LEAKED\n"
            "command -v is_ipv4 write_source && echo LEAKED\n"
            "make_resolv_conf\n"
            "echo survived\n"
        )
        done, _ = self.run(["/bin/dash", "-euc", probe], {"reason": reason, **lease})
        assert done.returncode == 0, f"{reason}: {done.returncode}\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def source(self, family: str = "inet") -> Path:
        return self.sources / f"eth0.{family}"


@pytest.fixture
def host(tmp_path):
    hookhost.require(DHCLIENT_SCRIPT)
    return Host(tmp_path)


def source_text(reason: str, search: str, *servers: str, interface: str = "eth0") -> str:
    lines = [f"# written by {HOOK_PATH}: DHCP lease on {interface} ({reason})"]
    if search:
        lines.append(f"search {search}")
    lines += [f"nameserver {server}" for server in servers]
    return "\n".join(lines) + "\n"


# --- the lease becomes a source, and dhclient leaves bootres's resolv.conf alone


@pytest.mark.parametrize("reason", ["BOUND", "RENEW", "REBIND", "REBOOT"])
def test_lease_is_written_and_managed_resolv_conf_untouched(host, reason):
    host.dhclient(reason, **LEASE)
    assert host.source().read_text() == source_text(reason, "example.test corp.example", "198.18.0.10", "198.18.0.11")
    assert stat.S_IMODE(host.source().stat().st_mode) == 0o644
    assert host.resolv_conf.read_text() == MANAGED
    assert os.listdir(host.sources) == ["eth0.inet"]


def test_renewal_replaces_the_file_in_one_rename(host):
    host.dhclient("BOUND", **LEASE)
    old_inode = host.source().stat().st_ino
    with open(host.source()) as old:
        host.dhclient("RENEW", **{**LEASE, "new_domain_name_servers": "198.18.0.12", "new_domain_search": ""})
        assert old.read() == source_text("BOUND", "example.test corp.example", "198.18.0.10", "198.18.0.11"), (
            "the reader's open file was rewritten in place"
        )
    assert host.source().stat().st_ino != old_inode
    assert host.source().read_text() == source_text("RENEW", "example.test", "198.18.0.12")
    assert os.listdir(host.sources) == ["eth0.inet"], "no temporary file left behind"


@pytest.mark.parametrize("reason", ["EXPIRE", "FAIL", "RELEASE", "STOP"])
def test_lease_gone_removes_its_file(host, reason):
    host.dhclient("BOUND", **LEASE)
    host.dhclient("BOUND6", interface="eth0", new_dhcp6_name_servers="2001:db8::53")
    host.dhclient(reason, **LEASE)
    assert not host.source().exists()
    assert host.source("inet6").exists(), "the DHCPv6 lease is another source"
    assert host.resolv_conf.read_text() == MANAGED


def test_timeout_with_a_recorded_lease_is_written(host):
    """dhclient-script configures a still-valid recorded lease on TIMEOUT and writes its servers too."""
    host.dhclient("TIMEOUT", **{**LEASE, "new_routers": ""})
    assert host.source().read_text() == source_text("TIMEOUT", "example.test corp.example", "198.18.0.10", "198.18.0.11")


def test_dhcpv6_lease(host):
    host.dhclient("BOUND6", interface="eth0", new_dhcp6_name_servers="2001:db8::53 fe80::1 2001:DB8::53 2001:db8::53",
                  new_dhcp6_domain_search="v6.example. v6.example")
    assert host.source("inet6").read_text() == source_text(
        "BOUND6", "v6.example", "2001:db8::53", "fe80::1%eth0", "2001:DB8::53")
    host.dhclient("RENEW6", interface="eth0", new_dhcp6_name_servers="2001:db8::54")
    assert host.source("inet6").read_text() == source_text("RENEW6", "", "2001:db8::54")
    for reason in ("EXPIRE6", "RELEASE6", "STOP6"):
        host.dhclient("BOUND6", interface="eth0", new_dhcp6_name_servers="2001:db8::54")
        host.dhclient("BOUND", **LEASE)
        host.dhclient(reason, interface="eth0", old_ip6_address="2001:db8::2/64")
        assert not host.source("inet6").exists(), reason
        assert host.source().exists(), reason
    assert host.resolv_conf.read_text() == MANAGED


# --- dhclient's own resolv.conf while bootres is not managing it


@pytest.mark.parametrize("before", [STOPPED, "nameserver 198.18.9.9\n"], ids=["bootres-stopped", "someone-else"])
def test_not_managed_dhclient_writes_resolv_conf_as_usual(host, before):
    host.resolv_conf.write_text(before)
    host.dhclient("BOUND", **LEASE)
    assert host.resolv_conf.read_text() == (
        "domain example.test\nsearch example.test. corp.example.\nnameserver 198.18.0.10\nnameserver 198.18.0.11\n"
    )
    assert host.source().exists(), "the lease is a source all the same"


def test_without_bootres_the_hook_does_nothing_at_all(host):
    host.sources.mkdir(parents=True)
    left = host.sources / "eth0.inet"
    left.write_text("left from before the removal\n")
    host.installed(False)
    host.dhclient("BOUND", **{**LEASE, "interface": "eth1"})
    host.dhclient("RELEASE", **LEASE)
    assert os.listdir(host.sources) == ["eth0.inet"] and left.read_text() == "left from before the removal\n"
    assert "nameserver 198.18.0.10\n" in host.resolv_conf.read_text(), "dhclient wrote resolv.conf as usual"
    host.resolv_conf.write_text(MANAGED)  # left by a bootres that was killed, then removed
    assert host.source_under_set_e("BOUND", **LEASE).splitlines() == ["hook status 0", "dhclient-writes", "survived"]


def test_resolvconf_hook_sourced_later_takes_the_lease(host):
    """Hooks are sourced in name order: resolvconf's make_resolv_conf replaces bootres's no-op."""
    hook = host.root / "etc" / "dhcp" / "dhclient-enter-hooks.d" / "resolvconf"
    hook.write_text("make_resolv_conf() { echo \"$new_domain_name_servers\" > /run/resolvconf-got-it; }\n")
    host.dhclient("BOUND", **LEASE)
    assert (host.root / "run" / "resolvconf-got-it").read_text() == "198.18.0.10 198.18.0.11\n"
    assert host.source().exists() and host.resolv_conf.read_text() == MANAGED


# --- hostile lease data


def test_hostile_values_are_dropped_never_run(host):
    pwned = ["/run/pwned1", "/run/pwned2", "/run/pwned3", "/run/pwned4", "/run/pwned5"]
    hostile = {
        "new_domain_name_servers": (
            "198.18.0.10 $(touch /run/pwned1) `touch /run/pwned2` ;touch${IFS}/run/pwned3 1.2.3.999 01.2.3.4 "
            "198.18.0.10 2001:db8::1 * ../x 198.18.0.11\nnameserver 6.6.6.6 1.2.3.4.5 0x7f.1.1.1"
        ),
        "new_domain_name": "good.example evil$(touch${IFS}/run/pwned4).example",
        "new_domain_search": (
            "ok.example. -bad.example bad-.example a..b x_y.example " + "l" * 64 + ".example "
            "'quoted.example' \"$(touch /run/pwned5)\" ok.example\tsearch.example\n\n"
        ),
    }
    messages = host.dhclient("BOUND", **{**LEASE, **hostile})
    # Words, split on blanks: "nameserver 6.6.6.6" after the newline is two, one a valid address.
    assert host.source().read_text() == source_text(
        "BOUND", "good.example ok.example search.example", "198.18.0.10", "198.18.0.11", "6.6.6.6")
    assert not [path for path in pwned if (host.root / path.lstrip("/")).exists()]
    invalid_servers = 13  # every word but the three addresses and the duplicate
    invalid_domains = 9
    assert [m for m in messages if "bootres" in m] and any(
        f"dropped {invalid_servers + invalid_domains} invalid" in m for m in messages), messages
    assert host.resolv_conf.read_text() == MANAGED


@pytest.mark.parametrize("interface", ["", "../../etc", "eth0/..", ".hidden", "a" * 16, "eth 0", "eth0\nx", "$(id)"])
def test_hostile_interface_names_write_nothing(host, interface):
    host.dhclient("BOUND", **{**LEASE, "interface": interface})
    assert not (host.root / "run" / "bootres").exists()
    assert sorted(os.listdir(host.root / "run")) == []
    assert host.resolv_conf.read_text() == MANAGED


def test_lease_with_nothing_valid_removes_the_source(host):
    host.dhclient("BOUND", **LEASE)
    host.dhclient("RENEW", **{**LEASE, "new_domain_name_servers": "999.1.1.1 x", "new_domain_name": "",
                              "new_domain_search": "-"})
    assert not host.source().exists()


@pytest.mark.parametrize("reason", [
    "BOUND", "RENEW", "REBIND", "REBOOT", "TIMEOUT", "EXPIRE", "FAIL", "RELEASE", "STOP",
    "BOUND6", "RENEW6", "REBIND6", "EXPIRE6", "RELEASE6", "STOP6", "PREINIT", "MEDIUM", "NONSENSE",
])
@pytest.mark.parametrize("resolv", [MANAGED, STOPPED], ids=["managed", "stopped"])
def test_sourced_under_set_e_it_never_fails_exits_or_leaks(host, reason, resolv):
    host.resolv_conf.write_text(resolv)
    lease = {**LEASE, "new_dhcp6_name_servers": "2001:db8::53 bogus", "new_domain_name_servers": "1.1.1.1 bogus"}
    output = host.source_under_set_e(reason, **lease).splitlines()
    wrote = [] if resolv == MANAGED else ["dhclient-writes"]
    assert output == ["hook status 0", *wrote, "survived"]


def test_sourced_with_nothing_set_at_all(host):
    assert host.source_under_set_e("").splitlines() == ["hook status 0", "survived"]
    assert not (host.root / "run" / "bootres").exists()
