"""A Debian 12 host running Docker and Podman, booted for real with the test site inside (issue 20).

The host is sitelab's static setup (ifupdown, a static address and the
site's two nameservers in /etc/resolv.conf, the dead one first) with
Debian's docker.io, podman, netavark and aardvark-dns.  The .deb waits in
/root: the test installs it in the running system, with containers already
up, as an administrator would.

The runtimes' networks are moved into 198.18.0.0/15 (their defaults are
172.17/16 and 10.88/16): docker's ``bip`` and address pools, podman's
``default_subnet`` and pools.  Storage is vfs on tmpfs (the guest's root is
a plain directory); containers run with runc (crun cannot set RLIMIT_MEMLOCK
in this VM: shared/BOOT-TESTING.md).

The containers' image is imported, not pulled (no registry is reachable):
a tar holding ``lookup`` (tests/boot/container_lookup.c, glibc's
getaddrinfo timed per name), glibc's ``getent``, and the libc and loader
of the boot image itself.
"""

from __future__ import annotations

import io
import secrets
import shutil
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

import bootlab
import sitelab

HERE = Path(__file__).resolve().parent
# runc named: Debian 13's podman prefers crun, which cannot run here (below).
PACKAGES = ("ifupdown", "docker.io", "podman", "netavark", "aardvark-dns", "runc")
INTERNAL_ZONE = "internal.test"  # a zone only the site's nameservers know
INTERNAL_ZONE_FILE = f"""\
$ORIGIN {INTERNAL_ZONE}.
$TTL 300
@  IN SOA ns hostmaster 1 3600 600 86400 300
@  IN NS  ns
ns IN A   {sitelab.GOOD}
*  IN A   {sitelab.WILDCARD}
"""
DOCKER_BRIDGE = "198.18.100.1/24"
DOCKER_NET = "198.18.101.0/24"
PODMAN_DEFAULT = "198.18.104.0/24"
PODMAN_NET = "198.18.105.0/24"
IMAGE = "localhost/lookup:1"
GOOGLE = ("8.8.8.8", "8.8.4.4")
NSPAWN_ARGS = (
    # What dockerd, containerd, runc and netavark need in a guest (shared/BOOT-TESTING.md).
    "--capability=all", "--system-call-filter=@keyring bpf",
    "--tmpfs=/var/lib/docker", "--tmpfs=/var/lib/containerd", "--tmpfs=/var/lib/containers",
)
FILES = {
    "etc/docker/daemon.json": (
        '{"bip": "%s", "default-address-pools": [{"base": "198.18.102.0/23", "size": 24}],'
        ' "storage-driver": "vfs"}\n' % DOCKER_BRIDGE),
    "etc/containers/containers.conf": (
        f'[network]\ndefault_subnet = "{PODMAN_DEFAULT}"\n'
        'default_subnet_pools = [{"base" = "198.18.106.0/23", "size" = 24}]\n'
        # No pids controller in the guest's cgroup tree here: podman's default pids.max cannot be set.
        '[containers]\npids_limit = 0\n'
        '[engine]\nruntime = "runc"\nevents_logger = "file"\n'),
    "etc/containers/storage.conf": (
        '[storage]\ndriver = "vfs"\nrunroot = "/run/containers/storage"\n'
        'graphroot = "/var/lib/containers/storage"\n'),
    f"etc/site/{INTERNAL_ZONE}.zone": INTERNAL_ZONE_FILE,
    "etc/site/nsd.conf": sitelab.NSD_CONF + f"zone:\n  name: {INTERNAL_ZONE}\n  zonefile: {INTERNAL_ZONE}.zone\n",
}


def setup(suite: str) -> sitelab.Setup:
    # Debian 13: docker.io leaves the command line to a package of its own, and netavark runs nft (a Recommends).
    packages = PACKAGES if suite == "bookworm" else (*PACKAGES, "docker-cli", "nftables")
    return sitelab.Setup(
        "containers" if suite == "bookworm" else f"{suite[0]}-containers", packages,
        {"etc/network/interfaces": sitelab.IFUPDOWN_STATIC, **FILES},
        sitelab.IFUPDOWN_ENABLE + ("docker.service", "containerd.service"), False, sitelab.PLAIN_RESOLV_CONF,
        "upstream-resolv.conf",
        (("sh", "-c", f"cat /run/network/ifstate.{sitelab.IFACE}"), f"{sitelab.IFACE}\n"),
        suite=suite,
    )
# Counted in the host's mangle POSTROUTING, which sees the host's own packets and the containers' it
# forwards: anything to Google's servers, and DNS leaving through the uplink to anything but the site's
# nameservers. Each counting rule carries its name as a comment.
LEAK_RULES = (
    ("-d", ",".join(GOOGLE), "-m", "comment", "--comment", "to_google"),
    ("-o", sitelab.IFACE, "-d", sitelab.DEAD, "-j", "RETURN"),
    ("-o", sitelab.IFACE, "-d", sitelab.GOOD, "-j", "RETURN"),
    ("-o", sitelab.IFACE, "-p", "udp", "--dport", "53", "-m", "comment", "--comment", "udp_elsewhere"),
    ("-o", sitelab.IFACE, "-p", "tcp", "--dport", "53", "-m", "comment", "--comment", "tcp_elsewhere"),
)


def image_tar(root: Path, work: Path) -> Path:
    """The containers' image: ``lookup``, ``getent``, the boot image's libc and loader, nsswitch and hosts."""
    binary = work / "lookup"
    bootlab.run("cc", "-O2", "-Wall", "-o", str(binary), str(HERE / "container_lookup.c"))
    libs = root / "usr/lib/x86_64-linux-gnu"
    members = {
        "lookup": (binary.read_bytes(), 0o755),
        "usr/bin/getent": ((root / "usr/bin/getent").read_bytes(), 0o755),
        "lib64/ld-linux-x86-64.so.2": ((libs / "ld-linux-x86-64.so.2").read_bytes(), 0o755),
        "lib/x86_64-linux-gnu/libc.so.6": ((libs / "libc.so.6").read_bytes(), 0o755),
        "etc/nsswitch.conf": (b"hosts: files dns\n", 0o644),
        "etc/hosts": (b"127.0.0.1\tlocalhost\n", 0o644),
    }
    path = work / "lookup.tar"
    with tarfile.open(path, "w") as tar:
        for directory in ("etc", "lib", "lib/x86_64-linux-gnu", "lib64", "usr", "usr/bin", "tmp"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if directory == "tmp" else 0o755
            tar.addfile(info)
        for name, (data, mode) in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    return path


def boot(work: Path, deb: Path, suite: str = "bookworm") -> sitelab.Box:
    """The host of ``suite`` booted, the .deb in /root (not installed), the image imported into both runtimes."""
    started = time.monotonic()
    host_setup = setup(suite)
    root, before = sitelab.prepare(host_setup, work, deb, install=False)
    shutil.copy(image_tar(root, work), root / "root" / "lookup.tar")
    container = bootlab.Container(root, f"c{secrets.token_hex(3)}", unified_cgroup=True, nspawn_args=NSPAWN_ARGS)
    box = sitelab.Box(host_setup, container, before)
    try:
        booted = container.boot(timeout=120)
        box.booted_at = time.monotonic()
        box.run("docker", "import", "/root/lookup.tar", IMAGE, timeout=60)
        box.run("podman", "import", "/root/lookup.tar", IMAGE, timeout=60)
        # Docker's FORWARD policy DROP (iptables-nft) also drops what Debian 13's netavark forwards for Podman's
        # networks (its accept rules live in a table of its own): Podman's containers could not reach the
        # site's nameservers at all (40 s, then failure), with bootres or without. Docker's own hook lets them.
        box.run("iptables", "-I", "DOCKER-USER", "-j", "ACCEPT")
        box.run("docker", "network", "create", "--subnet", DOCKER_NET, "dnet", timeout=30)
        box.run("podman", "network", "create", "--subnet", PODMAN_NET, "pnet", timeout=30)
        box.run("iptables", "-t", "mangle", "-N", "leaks")
        box.run("iptables", "-t", "mangle", "-A", "POSTROUTING", "-j", "leaks")
        for rule in LEAK_RULES:
            box.run("iptables", "-t", "mangle", "-A", "leaks", *rule)
    except BaseException:
        sitelab.shutdown(box)
        raise
    print(f"{host_setup.name} host: image and boot {time.monotonic() - started:.1f} s (boot {booted:.2f} s)")
    return box


def leaks(box: sitelab.Box, zero: bool = False) -> dict[str, int]:
    """Packets counted by LEAK_RULES, by name (since the last ``zero``)."""
    listing = box.run("iptables", "-t", "mangle", "-L", "leaks", "-v", "-x", "-n").stdout
    if zero:
        box.run("iptables", "-t", "mangle", "-Z", "leaks")
    counted = dict.fromkeys(("to_google", "udp_elsewhere", "tcp_elsewhere"), 0)
    for row in listing.splitlines():
        words = row.split()
        if words and words[0].isdigit() and "/*" in words:
            # Summed: iptables makes one rule per address of "-d A,B", each with the comment.
            counted[words[words.index("/*") + 1]] += int(words[0])
    return counted


# Each way a container gets its DNS: (label, runtime, run options)
VARIANTS = (
    ("docker-bridge", "docker", ()),
    ("docker-network", "docker", ("--network", "dnet")),
    ("docker-host", "docker", ("--network", "host")),
    ("podman-default", "podman", ()),
    ("podman-network", "podman", ("--network", "pnet")),
    ("podman-host", "podman", ("--network", "host")),
)


def run_options(runtime: str) -> tuple[str, ...]:
    return ("--runtime", "runc") if runtime == "podman" else ()


@dataclass
class Batch(sitelab.Lookups):
    """One container's lookups (``phase``: the variant; ``packets``: LEAK_RULES' counts meanwhile), what its
    resolv.conf said, and the upstream misses bootres counted meanwhile."""

    resolv_conf: str = ""
    bootres_misses: int = 0
    output: str = ""

    def summary(self) -> str:
        nameservers = [line.split()[1] for line in self.resolv_conf.splitlines() if line.startswith("nameserver ")]
        return (f"{self.phase:15} {len(self.results)}/{self.asked} lookups, p50 {self.p50:.1f} ms, max {self.max:.1f}"
                f" ms, {len(self.failed)} failed; resolv.conf nameservers {' '.join(nameservers)};"
                f" packets {self.packets}; bootres misses +{self.bootres_misses}")


def parse_lookups(output: str) -> list[tuple[str, float, str]]:
    results = []
    for line in output.splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[0].endswith(f".{INTERNAL_ZONE}"):
            results.append((parts[0], float(parts[1]), parts[2]))
    return results


def misses(box: sitelab.Box) -> int:
    return box.status()[1].get("resolver", {}).get("cache", {}).get("misses", 0)


def lookups(box: sitelab.Box, variant: str, runtime: str, options: tuple[str, ...], count: int = 20,
            exec_in: str | None = None, timeout: float = 60) -> Batch:
    """``count`` never-seen names from a new container (or ``exec_in`` a running one) of ``runtime``."""
    names = [f"{variant}-{box.token}-{i}.{INTERNAL_ZONE}" for i in range(count)]
    if exec_in:
        prefix = (runtime, "exec", exec_in)
    else:
        prefix = (runtime, "run", "--rm", *run_options(runtime), *options, IMAGE)
    conf = box.run(*prefix, "/lookup", "cat", "/etc/resolv.conf", timeout=timeout, check=False)
    leaks(box, zero=True)
    before = misses(box)
    proc = box.run(*prefix, "/lookup", *names, timeout=timeout, check=False)
    return Batch(variant, count, parse_lookups(proc.stdout), leaks(box), conf.stdout + conf.stderr,
                 misses(box) - before, proc.stdout[-2000:] + proc.stderr[-2000:])
