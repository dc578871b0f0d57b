"""Issue 9's four Debian 12 setups, each booted for real with a test site inside the container.

Every image carries a *site*: ``site.service``, ordered before bootres and
before every network stack, makes a network namespace ``site`` inside the
booted container and a veth pair between it and the container's own
network (``eth0`` here, ``lan0`` there).  On ``lan0`` live the site's
router and DHCP server (Debian's dnsmasq, ``site-dhcp.service``), a dead
nameserver (every packet to it dropped by iptables in the site, so it is
silent, as a crashed host behind a live switch) and two healthy ones (nsd,
``site-dns.service``, with a wildcard zone: every ``*.site.test`` name
exists, so never-seen names come on demand).  Nothing leaves the
container: its network is private and every address is in 198.18.0.0/15.

The DHCP server reads its options from ``/etc/site/dhcp-options``, re-read
on SIGHUP (``systemctl reload site-dhcp``), and tells clients to renew
every ``RENEW_S`` seconds (option 58, T1): a new nameserver list reaches
dhclient, networkd and NetworkManager alike within one interval, with no
client-side command (``nmcli device reapply`` does not renew, and dhclient
has no renew command: see docs/setups.md for what the alternatives do).

The setups differ only in how ``eth0`` is configured (ifupdown with
isc-dhcp-client, systemd-networkd, NetworkManager, or ifupdown with a static
address and a static /etc/resolv.conf) and in the packages that brings.
Each gets its own cached base (``bootlab.base_rootfs``).  /etc/resolv.conf,
/etc/hosts and /etc/defaultrouter are recorded just before the .deb is
installed, so a purge can be compared with them byte for byte.

Applications' lookups run as the unprivileged user ``lookup`` in a
transient unit; iptables in the container counts, by socket owner, every
DNS packet that user sends anywhere but bootres (chain ``glibc``).  bootres
runs as root and races the dead nameserver on purpose; the owner match
keeps its packets out of the count.  (``-m cgroup --path`` would match the
unit instead, but it needs the cgroup to exist when the rule is added and
iptables-nft rejects it here with EINVAL.)
"""

from __future__ import annotations

import json
import secrets
import shutil
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import bootlab

IFACE = "eth0"
ROUTER = "198.18.64.1"  # the site's router and DHCP server
DEAD = "198.18.64.53"  # silent: iptables DROP in the site
GOOD = "198.18.64.54"  # healthy until the test decommissions it
NEW = "198.18.64.55"  # healthy; handed out by the renewal
STATIC_ADDRESS = "198.18.64.10"
POOL = ("198.18.64.100", "198.18.64.199")
ZONE = "site.test"
WILDCARD = "198.18.65.1"  # the A record of every name under ZONE
STUB = "127.0.0.35"
LOOKUP_USER = "lookup"
RENEW_S = 10  # T1 the DHCP server hands out; dnsmasq's lease itself is its minimum, 2 min
SITE_PACKAGES = ("dnsmasq-base", "iptables")

FIRST_LIST = (DEAD, GOOD)
RENEWED_LIST = (DEAD, NEW)

HOSTS = """\
127.0.0.1	localhost
127.0.1.1	{hostname}

# The following lines are desirable for IPv6 capable hosts
::1     localhost ip6-localhost ip6-loopback
ff02::1 ip6-allnodes
ff02::2 ip6-allrouters
"""
# What dhclient-script, debian-installer or an administrator leaves: the first list, the dead server first.
PLAIN_RESOLV_CONF = f"search {ZONE}\nnameserver {DEAD}\nnameserver {GOOD}\n"

SITE_UP = f"""\
#!/bin/sh
# The test site: network namespace "site" behind the veth {IFACE}, with the
# router's and the nameservers' addresses on its end of the wire.
set -eu
ip netns add site
ip link add {IFACE} type veth peer name lan0 netns site
# 198.18.0.0/15 only: no IPv6 link-local addresses on either end.
sysctl -q -w net.ipv6.conf.{IFACE}.disable_ipv6=1
ip netns exec site sysctl -q -w net.ipv6.conf.lan0.disable_ipv6=1
ip -n site link set lo up
for address in {ROUTER} {DEAD} {GOOD} {NEW}; do
    ip -n site address add "$address/24" dev lan0
done
ip -n site link set lan0 up
# A dead nameserver on a live network: no reply, no ICMP error, nothing.
ip netns exec site iptables -A INPUT -d {DEAD} -j DROP
"""

_BEFORE_NETWORK = ("Before=bootres.service network-pre.target systemd-networkd.service networking.service "
                   "NetworkManager.service\n")
# Remote nameservers and DHCP servers are up before a host boots: the site's
# services are ordered before bootres and before every network stack.
SITE_UNIT = (
    "[Unit]\nDescription=test site: network namespace with router, DHCP server and nameservers\n"
    "DefaultDependencies=no\nAfter=local-fs.target\n" + _BEFORE_NETWORK
    + "Wants=network-pre.target\nConflicts=shutdown.target\n"
    "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/usr/local/sbin/site-up\n"
    "[Install]\nWantedBy=sysinit.target\n"
)
SITE_DNS_UNIT = (
    "[Unit]\nDescription=test site: nsd as the healthy nameservers\n"
    "DefaultDependencies=no\nRequires=site.service\nAfter=site.service\n" + _BEFORE_NETWORK
    + "Conflicts=shutdown.target\n"
    "[Service]\nType=notify\nNetworkNamespacePath=/run/netns/site\nRuntimeDirectory=site-nsd\n"
    "ExecStart=/usr/sbin/nsd -d -P \"\" -c /etc/site/nsd.conf\n"
    "[Install]\nWantedBy=sysinit.target\n"
)
SITE_DHCP_UNIT = (
    "[Unit]\nDescription=test site: dnsmasq as DHCP server\n"
    "DefaultDependencies=no\nRequires=site.service\nAfter=site.service\n" + _BEFORE_NETWORK
    + "Conflicts=shutdown.target\n"
    "[Service]\nNetworkNamespacePath=/run/netns/site\nRuntimeDirectory=site-dhcp\n"
    # --no-ping: no 3 s wait for an echo before each offer.
    "ExecStart=/usr/sbin/dnsmasq --keep-in-foreground --log-facility=- --conf-file=/dev/null"
    " --user=root --pid-file= --port=0 --interface=lan0 --dhcp-authoritative"
    f" --no-ping --dhcp-range={POOL[0]},{POOL[1]},255.255.255.0,2m --dhcp-option=option:T1,{RENEW_S}"
    " --dhcp-optsfile=/etc/site/dhcp-options --dhcp-leasefile=/run/site-dhcp/leases\n"
    "ExecReload=/bin/kill -HUP $MAINPID\n"
    "[Install]\nWantedBy=sysinit.target\n"
)
NSD_CONF = f"""\
server:
  ip-address: {GOOD}
  ip-address: {NEW}
  do-ip6: no
  username: ""
  chroot: ""
  zonesdir: /etc/site
  database: ""
  zonelistfile: /run/site-nsd/zone.list
  xfrdfile: /run/site-nsd/xfrd.state
  xfrdir: /run/site-nsd
  log-only-syslog: yes
  rrl-ratelimit: 0
remote-control:
  control-enable: no
zone:
  name: {ZONE}
  zonefile: {ZONE}.zone
"""
ZONE_FILE = f"""\
$ORIGIN {ZONE}.
$TTL 300
@  IN SOA ns hostmaster 1 3600 600 86400 300
@  IN NS  ns
ns IN A   {GOOD}
*  IN A   {WILDCARD}
"""


def dhcp_options(nameservers: tuple[str, ...], search: tuple[str, ...] = (ZONE,)) -> str:
    return (f"option:router,{ROUTER}\noption:dns-server,{','.join(nameservers)}\n"
            f"option:domain-search,{','.join(search)}\n")


_INTERFACES = "source /etc/network/interfaces.d/*\n\nauto lo\niface lo inet loopback\n\n"
IFUPDOWN_DHCP = _INTERFACES + f"auto {IFACE}\niface {IFACE} inet dhcp\n"
IFUPDOWN_STATIC = (_INTERFACES + f"auto {IFACE}\niface {IFACE} inet static\n"
                   f"    address {STATIC_ADDRESS}/24\n    gateway {ROUTER}\n")


@dataclass(frozen=True)
class Setup:
    name: str
    packages: tuple[str, ...]
    files: dict[str, str]
    enable: tuple[str, ...]
    dhcp: bool
    # /etc/resolv.conf as the package finds it at install: text, or "-> TARGET" for a symlink
    resolv_conf: str
    # a word the "source" of this setup's upstreams in `bootres status --json` names
    source_word: str
    # a command and what its output shows when this setup's stack configured IFACE
    configured_by: tuple[tuple[str, ...], str]
    # None: a purge puts back /etc/resolv.conf as it was before the install.
    # A path: the package hands the file back to the network stack, which
    # then writes what this file holds (the current lease's nameservers).
    resolv_conf_owner_copy: str | None = None
    suite: str = "bookworm"
    # Applications' lookups go to systemd-resolved through nss-resolve (libnss-resolve installed, as
    # Debian's systemd-resolved recommends): glibc's resolv.conf is not their path, so there is no
    # "glibc without bootres" baseline to take by bind-mounting another resolv.conf.
    nss_resolve: bool = False
    # Shell commands run in the image (chroot) before the .deb is installed.
    image_commands: tuple[str, ...] = ()


NETWORKD_FILES = {"etc/systemd/network/20-site.network": (
    f"[Match]\nName={IFACE}\n[Network]\nDHCP=ipv4\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n")}
NETWORKD_ENABLE = ("systemd-networkd.service", "systemd-networkd-wait-online.service")
NETWORKD_CONFIGURED = (("networkctl", "list", "--no-legend", IFACE), "routable configured")
IFUPDOWN_ENABLE = ("networking.service", "ifupdown-wait-online.service")
NM_FILES = {
    # NetworkManager's keyfile: a connection bound to the interface,
    # as an administrator (or the installer) makes one.
    "etc/NetworkManager/system-connections/site.nmconnection": (
        f"[connection]\nid=site\ntype=ethernet\ninterface-name={IFACE}\n"
        "[ipv4]\nmethod=auto\n[ipv6]\nmethod=disabled\n")}
NM_CONFIGURED = (("nmcli", "-g", "GENERAL.STATE,GENERAL.CONNECTION", "device", "show", IFACE), "100 (connected)\nsite")
DHCPCD_CONFIGURED = (("pgrep", "-a", "dhcpcd"), "dhcpcd")
# What `apt install systemd-resolved` brings (its Recommends: nss-resolve first in nsswitch.conf).
RESOLVED_PACKAGES = ("systemd-resolved", "libnss-resolve")
RESOLVED_STUB = "-> ../run/systemd/resolve/stub-resolv.conf"  # what resolved's package links
# Debian's cloud images: /etc/resolv.conf is resolved's upstream list, glibc asks its servers directly.
RESOLVED_UPSTREAM_LIST = "-> ../run/systemd/resolve/resolv.conf"

SETUPS = {
    setup.name: setup for setup in (
        Setup(
            "ifupdown", ("ifupdown", "isc-dhcp-client"),
            {"etc/network/interfaces": IFUPDOWN_DHCP},
            IFUPDOWN_ENABLE,
            True, PLAIN_RESOLV_CONF, "dhclient",
            (("sh", "-c", f"cat /run/network/ifstate.{IFACE}; pgrep -a dhclient"), f"-pf /run/dhclient.{IFACE}.pid"),
        ),
        Setup("networkd", (), NETWORKD_FILES, NETWORKD_ENABLE, True, PLAIN_RESOLV_CONF, "networkd", NETWORKD_CONFIGURED),
        Setup("nm", ("network-manager",), NM_FILES, ("NetworkManager.service", "NetworkManager-wait-online.service"),
              True, "# Generated by NetworkManager\n" + PLAIN_RESOLV_CONF, "NetworkManager", NM_CONFIGURED,
              # Removing the package gives /etc/resolv.conf back to NetworkManager (postrm reloads it).
              "/run/NetworkManager/resolv.conf"),
        Setup(
            "static", ("ifupdown",),
            {"etc/network/interfaces": IFUPDOWN_STATIC},
            IFUPDOWN_ENABLE,
            False, PLAIN_RESOLV_CONF, "upstream-resolv.conf",
            (("sh", "-c", f"cat /run/network/ifstate.{IFACE}; pgrep -c dhclient || true"), f"{IFACE}\n0\n"),
        ),
        # Issue 19: systemd-resolved (stub layout, nss-resolve) on Debian 12 ...
        Setup("resolved", RESOLVED_PACKAGES, NETWORKD_FILES, NETWORKD_ENABLE, True, RESOLVED_STUB, "networkd",
              NETWORKD_CONFIGURED, nss_resolve=True),
        # ... and Debian 13's setups.
        Setup("t-dhcpcd", ("ifupdown", "dhcpcd-base"), {"etc/network/interfaces": IFUPDOWN_DHCP}, IFUPDOWN_ENABLE,
              True, PLAIN_RESOLV_CONF, "dhcpcd", DHCPCD_CONFIGURED, suite="trixie"),
        Setup("t-dhcpcdsv", ("dhcpcd",), {}, ("dhcpcd.service",),
              True, PLAIN_RESOLV_CONF, "dhcpcd", DHCPCD_CONFIGURED, suite="trixie",
              # No udev in a container: dhcpcd's udev module would wait for it forever ("no valid interfaces
              # found"); ifup names the interface and does not wait.
              image_commands=("echo nodev >> /etc/dhcpcd.conf",)),
        Setup("t-ifupdown", ("ifupdown", "isc-dhcp-client"), {"etc/network/interfaces": IFUPDOWN_DHCP},
              IFUPDOWN_ENABLE, True, PLAIN_RESOLV_CONF, "dhclient",
              (("sh", "-c", f"pgrep -a dhclient"), f"-pf /run/dhclient.{IFACE}.pid"), suite="trixie"),
        Setup("t-networkd", (), NETWORKD_FILES, NETWORKD_ENABLE, True, PLAIN_RESOLV_CONF, "networkd",
              NETWORKD_CONFIGURED, suite="trixie"),
        Setup("t-nm", ("network-manager",), NM_FILES, ("NetworkManager.service", "NetworkManager-wait-online.service"),
              True, "# Generated by NetworkManager\n" + PLAIN_RESOLV_CONF, "NetworkManager", NM_CONFIGURED,
              "/run/NetworkManager/resolv.conf", suite="trixie"),
        Setup("t-resolved", RESOLVED_PACKAGES, NETWORKD_FILES, NETWORKD_ENABLE, True, RESOLVED_STUB, "networkd",
              NETWORKD_CONFIGURED, suite="trixie", nss_resolve=True),
        Setup("t-cloud", ("systemd-resolved",), NETWORKD_FILES, NETWORKD_ENABLE, True, RESOLVED_UPSTREAM_LIST,
              "networkd", NETWORKD_CONFIGURED, suite="trixie"),
        Setup("t-static", ("ifupdown",), {"etc/network/interfaces": IFUPDOWN_STATIC}, IFUPDOWN_ENABLE,
              False, PLAIN_RESOLV_CONF, "upstream-resolv.conf",
              (("sh", "-c", f"cat /run/network/ifstate.{IFACE}"), f"{IFACE}\n"), suite="trixie"),
    )
}
DHCP_SETUPS = [name for name, setup in SETUPS.items() if setup.dhcp]
# The files a purge must put back, as they were just before the .deb was installed.
KEPT_FILES = ("etc/resolv.conf", "etc/hosts", "etc/defaultrouter")


def base(setup: Setup) -> Path:
    return bootlab.base_rootfs((*SITE_PACKAGES, *setup.packages), setup.suite)


def prepare(setup: Setup, work: Path, deb: Path, install: bool = True) -> tuple[Path, dict[str, bytes | str | None]]:
    """A fresh copy of the setup's base with the site, the network stack's configuration and the .deb.

    Returns the root and what KEPT_FILES held just before the .deb went in:
    bytes, ``"-> TARGET"`` for a symlink, None for no file.  ``install``
    False: the .deb is left in /root, for the booted system to install.
    """
    root = work / "root"
    bootlab.run("cp", "-a", "--reflink=auto", str(base(setup)), str(root))
    hostname = f"site-{setup.name}"
    files = {
        "usr/local/sbin/site-up": SITE_UP,
        "etc/systemd/system/site.service": SITE_UNIT,
        "etc/systemd/system/site-dns.service": SITE_DNS_UNIT,
        "etc/systemd/system/site-dhcp.service": SITE_DHCP_UNIT,
        "etc/site/nsd.conf": NSD_CONF,
        f"etc/site/{ZONE}.zone": ZONE_FILE,
        "etc/site/dhcp-options": dhcp_options(FIRST_LIST),
        # mmdebstrap leaves the build machine's copies of these
        "etc/hostname": hostname + "\n",
        "etc/hosts": HOSTS.format(hostname=hostname),
        "etc/resolv.conf": setup.resolv_conf,
        **setup.files,
    }
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        if text.startswith("-> "):
            path.symlink_to(text.removeprefix("-> "))
        else:
            path.write_text(text)
    (root / "usr/local/sbin/site-up").chmod(0o755)
    for name in setup.files:
        if name.endswith(".nmconnection"):
            (root / name).chmod(0o600)  # NetworkManager ignores keyfiles others can read
    chroot = ["chroot", str(root)]
    site_units = ["site.service", "site-dns.service"] + (["site-dhcp.service"] if setup.dhcp else [])
    bootlab.run(*chroot, "systemctl", "enable", *site_units, *setup.enable)
    bootlab.run(*chroot, "systemctl", "disable", "nsd.service")  # site-dns.service runs nsd, in the site
    # A server's services want the network online; else nothing waits for DHCP.
    bootlab.run(*chroot, "systemctl", "add-wants", "multi-user.target", "network-online.target")
    bootlab.run(*chroot, "useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", LOOKUP_USER)
    for command in setup.image_commands:
        bootlab.run(*chroot, "sh", "-c", command)
    before = snapshot(root)
    if install:
        bootlab.install_deb(root, deb)
    else:
        shutil.copy(deb, root / "root" / deb.name)
    return root, before


def _snapshot(path: Path) -> bytes | str | None:
    if path.is_symlink():
        return f"-> {path.readlink()}"
    return path.read_bytes() if path.exists() else None


def snapshot(root: Path) -> dict[str, bytes | str | None]:
    return {name: _snapshot(root / name) for name in KEPT_FILES}


# --- the booted container


# The lookups run on a thread so that the budget bounds even one
# getaddrinfo stuck in glibc's retries (40 s with two silent servers).
LOOKUP_SCRIPT = """
import json, os, socket, sys, threading, time
budget, names = float(sys.argv[1]), sys.argv[2:]
done, current = [], []

def ask():
    for name in names:
        started = time.perf_counter()
        current[:] = [name, started]
        try:
            answer = socket.getaddrinfo(name, 80, type=socket.SOCK_STREAM)[0][4][0]
        except OSError as error:
            answer = str(error)
        done.append([name, round((time.perf_counter() - started) * 1000, 3), answer])
        current.clear()

worker = threading.Thread(target=ask, daemon=True)
worker.start()
worker.join(budget)
name_started = list(current)
if worker.is_alive() and name_started:
    name, started = name_started
    done.append([name, round((time.perf_counter() - started) * 1000, 3), "unfinished"])
print(json.dumps(done), flush=True)
os._exit(0)
"""
COUNTER_RULES = (
    ("-d", DEAD),
    ("-p", "udp", "--dport", "53", "!", "-d", STUB),
    ("-p", "tcp", "--dport", "53", "!", "-d", STUB),
)
COUNTER_NAMES = ("to_dead", "udp_not_bootres", "tcp_not_bootres")


@dataclass
class Lookups:
    """One batch of an application's lookups: per-name milliseconds and answers, and glibc's packets meanwhile."""

    phase: str
    asked: int
    results: list[list] = field(default_factory=list)  # [name, ms, address or error]
    packets: dict[str, int] = field(default_factory=dict)

    @property
    def ms(self) -> list[float]:
        return [ms for _, ms, _ in self.results]

    @property
    def p50(self) -> float:
        return statistics.median(self.ms) if self.results else float("inf")

    @property
    def max(self) -> float:
        return max(self.ms) if self.results else float("inf")

    @property
    def failed(self) -> list[list]:
        return [r for r in self.results if r[2] != WILDCARD]

    def summary(self) -> str:
        return (f"{self.phase}: {len(self.results)}/{self.asked} lookups, p50 {self.p50:.1f} ms, "
                f"max {self.max:.1f} ms, {len(self.failed)} wrong or failed, glibc packets {self.packets}")


class Box:
    """One booted setup: the container, what it held before the .deb, and helpers to drive its site."""

    def __init__(self, setup: Setup, container: bootlab.Container, before: dict):
        self.setup = setup
        self.container = container
        self.before = before
        self.token = secrets.token_hex(3)
        self.booted_at: float | None = None  # time.monotonic() when the boot finished

    @property
    def name(self) -> str:
        return self.setup.name

    def run(self, *argv: str, timeout: float = 30, check: bool = True):
        return self.container.run(*argv, timeout=timeout, check=check)

    def sh(self, script: str, timeout: float = 30, check: bool = True):
        return self.container.run("sh", "-c", script, timeout=timeout, check=check)

    def site(self, *argv: str, check: bool = True):
        return self.run("ip", "netns", "exec", "site", *argv, check=check)

    def now(self) -> float:
        """The container's wall clock (the host's: journal timestamps compare with it)."""
        return float(self.run("date", "+%s.%N").stdout)

    def status(self) -> tuple[int, dict]:
        proc = self.run("bootres", "status", "--json", check=False)
        try:
            return proc.returncode, json.loads(proc.stdout)
        except json.JSONDecodeError:
            return proc.returncode, {"unparsable": proc.stdout + proc.stderr}

    def install_counters(self) -> None:
        """Chain ``glibc``: the lookup user's DNS packets to the dead server and to anything but bootres."""
        self.run("iptables", "-N", "glibc")
        self.run("iptables", "-A", "OUTPUT", "-m", "owner", "--uid-owner", LOOKUP_USER, "-j", "glibc")
        for rule in COUNTER_RULES:
            self.run("iptables", "-A", "glibc", *rule)

    def counters(self, zero: bool = False) -> dict[str, int]:
        listing = self.run("iptables", "-L", "glibc", "-v", "-x", "-n").stdout
        if zero:  # not with -L: trixie's iptables 1.8.11 refuses -Z beside -n
            self.run("iptables", "-Z", "glibc")
        rows = [line.split() for line in listing.splitlines()]
        packets = [int(row[0]) for row in rows if row and row[0].isdigit()]  # not the headers or "Zeroing chain"
        return dict(zip(COUNTER_NAMES, packets, strict=True))

    def dead_server_packets(self) -> int:
        """Everything that reached the dead server's DROP rule in the site, bootres's races included."""
        line = next(line for line in self.site("iptables", "-L", "INPUT", "-v", "-x", "-n").stdout.splitlines()
                    if DEAD in line)
        return int(line.split()[0])

    def lookups(self, phase: str, count: int = 50, budget: float = 8.0,
                resolv_conf: str | None = None) -> Lookups:
        """``count`` never-seen names through getaddrinfo, as user ``lookup`` in a transient unit.

        ``resolv_conf``: a file bind-mounted over /etc/resolv.conf for this
        unit only (glibc as it would be without bootres). Stops after
        ``budget`` seconds, so a broken resolver costs bounded time.
        """
        names = [f"{phase}-{self.token}-{i}.{ZONE}" for i in range(count)]
        extra = [f"--property=BindReadOnlyPaths={resolv_conf}:/etc/resolv.conf"] if resolv_conf else []
        self.counters(zero=True)
        proc = self.run("systemd-run", "--wait", "--pipe", "--quiet", "--collect", f"--uid={LOOKUP_USER}",
                        *extra, "python3", "-c", LOOKUP_SCRIPT, str(budget), *names,
                        timeout=budget + 30, check=False)
        batch = Lookups(phase, count, packets=self.counters())
        try:
            batch.results = json.loads(proc.stdout)
        except json.JSONDecodeError:
            batch.results = []
            batch.phase += f" (lookup client failed: {proc.stdout[-500:]} {proc.stderr[-1000:]})"
        return batch

    def journal(self, unit: str, since: float) -> list[tuple[float, str]]:
        """(wall-clock seconds, message) of ``unit``'s journal entries since ``since``."""
        proc = self.run("journalctl", "-u", unit, "-o", "json", "--no-pager", f"--since=@{since:.6f}",
                        "--output-fields=MESSAGE,__REALTIME_TIMESTAMP", check=False)
        entries = []
        for line in proc.stdout.splitlines():
            entry = json.loads(line)
            message = entry.get("MESSAGE")
            if isinstance(message, list):  # journald stores non-UTF-8 messages as bytes
                message = bytes(message).decode(errors="replace")
            entries.append((int(entry["__REALTIME_TIMESTAMP"]) / 1e6, message or ""))
        return entries

    def diagnostics(self) -> str:
        parts = [self.container.diagnostics()]
        for argv in (["ip", "-br", "address"], ["ip", "route"], ["cat", "/etc/resolv.conf"],
                     ["journalctl", "-b", "--no-pager", "-n", "40", "-u", "site-dhcp.service",
                      "-u", "networking.service", "-u", "systemd-networkd.service", "-u", "NetworkManager.service"]):
            parts.append(self.run(*argv, check=False, timeout=10).stdout)
        return "\n".join(parts)


def upstream_addresses(report: dict) -> list[str]:
    """The upstreams' addresses in `bootres status --json`, without the port 53."""
    return [u["address"].removesuffix(":53") for u in report.get("resolver", {}).get("upstreams", [])]


def wait_for(check, timeout: float, interval: float = 0.25):
    """``check()``'s first true result, or its last false one after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(interval)


def in_parallel(function, items) -> list:
    """``function(item)`` for every item at once (threads), results in order; the first error is raised."""
    items = list(items)
    with ThreadPoolExecutor(max_workers=max(len(items), 1)) as pool:
        return list(pool.map(function, items))


def boot_all(setups: list[Setup], work: Path, deb: Path) -> dict[str, Box]:
    """Bases built, images prepared and containers booted for every setup at once."""
    def start(setup: Setup) -> Box:
        directory = work / setup.name
        directory.mkdir()
        started = time.monotonic()
        root, before = prepare(setup, directory, deb)
        prepared = time.monotonic() - started
        container = bootlab.Container(root, f"s{setup.name}{secrets.token_hex(2)}",
                                      unified_cgroup=setup.suite != "bookworm")
        box = Box(setup, container, before)
        try:
            booted = container.boot()
        except BaseException:
            shutdown(box)
            raise
        box.booted_at = time.monotonic()
        print(f"{setup.name}: image {prepared:.1f} s, boot {booted:.2f} s to running")
        return box

    # A failed start stops the containers that did start before raising.
    with ThreadPoolExecutor(max_workers=len(setups)) as pool:
        futures = [pool.submit(start, setup) for setup in setups]
    boxes, errors = {}, []
    for future in futures:
        try:
            box = future.result()
            boxes[box.name] = box
        except BaseException as error:
            errors.append(error)
    if errors:
        in_parallel(shutdown, boxes.values())
        raise errors[0]
    return boxes


def shutdown(box: Box) -> None:
    box.container.poweroff()
    shutil.rmtree(box.container.root, ignore_errors=True)  # ~330 MB; console.log beside it stays
