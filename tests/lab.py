"""A network-namespace lab: hosts, wires, a switch and real DNS servers.

Every host is a Linux network namespace made for one test and deleted after
it. Addresses come from 198.18.0.0/15 (RFC 2544's benchmarking range) and
are checked, so nothing a test does can reach or change the machine's own
network, /etc/hosts, /etc/resolv.conf or routes.

``ip netns exec NAME`` bind-mounts /etc/netns/NAME/* over /etc, so every
namespace gets its own hosts and resolv.conf, and programs run inside never
see the host's. In-process sockets made with ``Netns.socket`` live in the
namespace's network but read the host's /etc like the rest of the test
process: give them explicit addresses.

Needs root and iproute2. Everything is undone by ``Lab.close()``, which the
``lab`` fixture calls even when the test fails: in reverse order, servers
stop, processes die (whole process groups), sockets close, namespaces and
their /etc/netns directories go.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

from fakedns import FakeDNS

LAB_NET = ipaddress.ip_network("198.18.0.0/15")
NETNS_RUN = Path("/run/netns")
NETNS_ETC = Path("/etc/netns")
CLONE_NEWNET = 0x40000000
# Debian 12 defaults to the nf_tables backend of iptables; on this kernel
# both it and iptables-legacy filter inside a namespace (checked). Naming it
# keeps the host's update-alternatives choice out of the tests.
IPTABLES = "iptables-nft"
# The A record of every name the nsd zone does not list (its wildcard).
WILDCARD_ADDRESS = "198.19.0.1"

_libc = ctypes.CDLL(None, use_errno=True)

# Every namespace this process made, so the session can prove none outlived
# its test (see leftovers()).
created_namespaces: list[str] = []


class LabError(Exception):
    """The lab could not build what a test asked for."""


class CommandFailed(subprocess.CalledProcessError):
    """A lab command failed; unlike its parent, its message shows the output."""

    def __str__(self) -> str:
        return f"{super().__str__()}\nstdout: {self.stdout}\nstderr: {self.stderr}"


def unavailable() -> str | None:
    """Why the lab cannot run on this machine, or None."""
    if os.geteuid() != 0:
        return "the network-namespace lab needs root"
    if shutil.which("ip") is None:
        return "the network-namespace lab needs iproute2's `ip`"
    return None


def leftovers() -> list[str]:
    """Namespaces made by this process that still exist."""
    return [name for name in created_namespaces if (NETNS_RUN / name).exists()]


def rss_kib(pid: int) -> int:
    """A process's resident memory (VmRSS), in KiB."""
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def run(*argv: str, check: bool = True, timeout: float = 30,
        input: str | None = None) -> subprocess.CompletedProcess:
    """Run a command on the host, capturing text output."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, input=input)
    if check and done.returncode != 0:
        raise CommandFailed(done.returncode, argv, done.stdout, done.stderr)
    return done


def wait_while_running(proc, log, predicate, timeout: float, what: str, interval: float, name: str = "bootres"):
    """The first true value of ``predicate()`` within ``timeout`` seconds, polled every ``interval``.

    Fails at once, with ``log()``, when ``proc`` (None: not started yet) exits meanwhile, and with the log's
    end when the time is up.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:  # bounded by timeout
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{name} exited with {proc.returncode}:\n{log()}")
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}:\n{log()[-4000:]}")


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (the service binds both on the same one)."""
    for _ in range(50):  # bounded: a port free for UDP may be taken for TCP (an outgoing connection's)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, socket.socket() as tcp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            try:
                tcp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no port free for both UDP and TCP in 50 tries")


def _check_address(cidr: str) -> ipaddress.IPv4Interface:
    """Parse ``198.18.x.y/len`` and refuse anything outside the lab range."""
    if "/" not in cidr:
        raise ValueError(f"{cidr}: give a prefix length, e.g. {cidr}/24")
    interface = ipaddress.ip_interface(cidr)
    if interface.version != 4 or not interface.network.subnet_of(LAB_NET):
        raise ValueError(f"{cidr}: lab addresses must be inside {LAB_NET}")
    return interface


def _stop_process(proc: subprocess.Popen) -> None:
    """SIGTERM the process group, SIGKILL it if it lingers; safe to repeat."""
    for sig, grace in ((signal.SIGTERM, 3), (signal.SIGKILL, 3)):
        try:
            # popen() starts a new session, so the group is the process's
            # own pid and includes any children it forked (nsd forks two).
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def _blackhole_rules(port: int, address: str | None) -> list[list[str]]:
    match = ["-d", address] if address else []
    return [[*match, "-p", proto, "--dport", str(port), "-j", "DROP"] for proto in ("udp", "tcp")]


class Netns:
    """One lab host: a network namespace with loopback up and its own /etc files."""

    def __init__(self, name: str, label: str, lab: Lab):
        self.name = name
        self.label = label
        self.path = NETNS_RUN / name
        self.etc = NETNS_ETC / name
        self.addresses: list[str] = []  # without prefix length, in order added
        self._lab = lab
        self._interfaces = 0

    def __repr__(self) -> str:
        return f"<Netns {self.name}>"

    @property
    def address(self) -> str:
        """The first address given to this host."""
        if not self.addresses:
            raise LabError(f"{self.name} has no address yet")
        return self.addresses[0]

    def run(self, *argv: str, check: bool = True, timeout: float = 30,
            input: str | None = None) -> subprocess.CompletedProcess:
        """Run a command inside, wait for it, capture its text output."""
        return run("ip", "netns", "exec", self.name, *argv,
                   check=check, timeout=timeout, input=input)

    def popen(self, *argv: str, **kwargs) -> subprocess.Popen:
        """Start a command inside; its process group is killed at teardown.

        Output goes to a log file in the lab's directory (its path is the
        returned object's ``log_path``) unless ``stdout`` is given.
        """
        log_path = None
        with contextlib.ExitStack() as opened:
            if "stdout" not in kwargs:
                log_path = self._lab.workdir / f"{self.label}-{Path(argv[0]).name}-{secrets.token_hex(2)}.log"
                kwargs["stdout"] = opened.enter_context(log_path.open("wb"))
                kwargs.setdefault("stderr", subprocess.STDOUT)
            proc = subprocess.Popen(["ip", "netns", "exec", self.name, *argv],
                                    start_new_session=True, **kwargs)
        proc.log_path = log_path  # the child keeps its own copy of the file
        self._lab.cleanup.callback(_stop_process, proc)
        return proc

    def call(self, fn: Callable, *args):
        """Return ``fn(*args)`` run on a short-lived thread inside this namespace.

        setns(2) moves only the calling thread, and the thread ends right
        after, so the test process itself never changes namespace. Sockets
        made by ``fn`` stay in this namespace for life. (Python 3.11 has no
        os.setns, hence ctypes.)
        """
        result: dict = {}

        def work() -> None:
            try:
                fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    if _libc.setns(fd, CLONE_NEWNET) != 0:
                        err = ctypes.get_errno()
                        raise OSError(err, f"setns {self.name}: {os.strerror(err)}")
                finally:
                    os.close(fd)
                result["value"] = fn(*args)
            except BaseException as exc:  # handed to the caller's thread
                result["error"] = exc

        thread = threading.Thread(target=work, name=f"setns-{self.name}")
        thread.start()
        thread.join(timeout=30)
        if thread.is_alive():
            raise LabError(f"{fn!r} did not return within 30 s inside {self.name}")
        if "error" in result:
            raise result["error"]
        return result["value"]

    def socket(self, family: int = socket.AF_INET, type: int = socket.SOCK_DGRAM,
               proto: int = 0) -> socket.socket:
        """A socket in this namespace's network, closed at teardown."""
        sock = self.call(socket.socket, family, type, proto)
        self._lab.cleanup.callback(sock.close)
        return sock

    def sysctl(self, key: str, value: str) -> None:
        """Set a net.* sysctl of this namespace, e.g. ``net.ipv4.ip_forward``."""
        path = Path("/proc/sys", *key.split("."))
        self.call(path.write_text, f"{value}\n")

    def write_hosts(self, text: str) -> None:
        """Replace what /etc/hosts reads as inside (in place: running programs see it)."""
        (self.etc / "hosts").write_text(text)

    def write_resolv_conf(self, text: str) -> None:
        """Replace what /etc/resolv.conf reads as inside."""
        (self.etc / "resolv.conf").write_text(text)

    def iptables(self, *args: str) -> subprocess.CompletedProcess:
        """Run iptables inside; the rules die with the namespace."""
        return self.run(IPTABLES, "-w", *args)

    def dns_query(self, server: str, qname: str, rdtype: str = "A", *, port: int = 53,
                  tcp: bool = False, timeout: float = 2.0) -> dns.message.Message:
        """Ask ``server`` from inside with dnspython; raises dns.exception.Timeout."""
        query = dns.message.make_query(qname, rdtype)
        family = socket.AF_INET6 if ":" in server else socket.AF_INET
        sock_type = socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM
        with self.call(socket.socket, family, sock_type) as sock:
            if tcp:
                sock.settimeout(timeout)
                try:
                    sock.connect((server, port))
                except socket.timeout:  # what a UDP timeout would raise
                    raise dns.exception.Timeout(timeout=timeout) from None
                sock.setblocking(False)
                return dns.query.tcp(query, server, timeout, port, sock=sock)
            sock.setblocking(False)
            return dns.query.udp(query, server, timeout, port, sock=sock)

    def _next_ifname(self, prefix: str = "eth") -> str:
        name = f"{prefix}{self._interfaces}"
        self._interfaces += 1
        return name

    def _add_address(self, ifname: str, cidr: str) -> None:
        interface = _check_address(cidr)
        run("ip", "-n", self.name, "addr", "add", str(interface), "dev", ifname)
        self.addresses.append(str(interface.ip))


@dataclass
class Switch:
    """A bridge in a namespace of its own: hosts attached to it share a LAN."""

    ns: Netns
    bridge: str = "br0"


@dataclass
class Daemon:
    """A real DNS server process running inside a lab namespace."""

    ns: Netns
    address: str
    port: int
    proc: subprocess.Popen
    workdir: Path

    @property
    def program(self) -> str:
        return self.proc.args[4]  # after "ip netns exec NAME"

    def log(self) -> str:
        """What the server printed so far."""
        return self.proc.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """Stop it now; the host stays up, so queries get ICMP port unreachable."""
        _stop_process(self.proc)


class Lab:
    """Namespaces and servers for one test; ``close()`` undoes everything."""

    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)
        # Names carry this token, so parallel runs and leftovers of a
        # crashed run never collide with ours.
        self.token = secrets.token_hex(3)
        self.cleanup = contextlib.ExitStack()
        self.fakes: list[FakeDNS] = []
        self._labels: set[str] = set()

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Undo everything, last made first; runs every step even if one fails."""
        self.cleanup.close()

    # -- topology --------------------------------------------------------------

    def netns(self, label: str) -> Netns:
        """A new host named ``br<token>-<label>``, with lo up and its own /etc files."""
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,15}", label) or label in self._labels:
            raise ValueError(f"label {label!r}: want a new, short [a-z0-9-] name")
        self._labels.add(label)
        ns = Netns(f"br{self.token}-{label}", label, self)
        ns.etc.mkdir(parents=True)
        self.cleanup.callback(shutil.rmtree, ns.etc, ignore_errors=True)
        ns.write_hosts("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
        # No nameserver line: glibc then asks the namespace's own loopback.
        ns.write_resolv_conf(f"# bootres lab namespace {ns.name}: nothing outside it\n"
                             "options timeout:1 attempts:1\n")
        run("ip", "netns", "add", ns.name)
        created_namespaces.append(ns.name)
        self.cleanup.callback(self._delete_netns, ns)
        run("ip", "-n", ns.name, "link", "set", "lo", "up")
        # Interfaces made from now on get no IPv6 at all: no link-local
        # addresses, router solicitations or MLD reports outside 198.18/15.
        # lo keeps ::1 for tests that want it.
        ns.sysctl("net.ipv6.conf.default.disable_ipv6", "1")
        return ns

    def link(self, a: Netns, addr_a: str | None, b: Netns, addr_b: str | None) -> tuple[str, str]:
        """A veth wire between two hosts, both ends up; returns their interface names.

        Addresses are CIDR (``198.18.0.10/24``) or None for none. Interfaces
        are named eth0, eth1, ... in the order each host gets them.
        """
        if a is b:
            raise ValueError("a link needs two different namespaces")
        if_a, if_b = a._next_ifname(), b._next_ifname()
        # Both ends are made directly in their namespaces: the host never
        # holds them, so names only need to be unique per namespace.
        run("ip", "link", "add", if_a, "netns", a.name, "type", "veth",
            "peer", "name", if_b, "netns", b.name)
        for ns, ifname, cidr in ((a, if_a, addr_a), (b, if_b, addr_b)):
            if cidr:
                ns._add_address(ifname, cidr)
            run("ip", "-n", ns.name, "link", "set", ifname, "up")
        return if_a, if_b

    def switch(self, label: str = "switch") -> Switch:
        """A bridge in a namespace of its own; plug hosts in with ``attach``."""
        sw = Switch(self.netns(label))
        # STP off and no forward delay: ports forward the moment they are up.
        run("ip", "-n", sw.ns.name, "link", "add", sw.bridge, "type", "bridge",
            "stp_state", "0", "forward_delay", "0")
        run("ip", "-n", sw.ns.name, "link", "set", sw.bridge, "up")
        return sw

    def attach(self, ns: Netns, switch: Switch, addr: str | None) -> str:
        """Plug ``ns`` into ``switch`` with address ``addr`` (CIDR); returns its interface."""
        ifname, port = self.link(ns, addr, switch.ns, None)
        run("ip", "-n", switch.ns.name, "link", "set", port, "master", switch.bridge)
        return ifname

    def container_bridge(self, host: Netns, box: Netns, bridge: str = "ctr0",
                         host_addr: str = "198.18.105.1", box_addr: str = "198.18.105.2") -> None:
        """A container network on ``host``, as docker0 or podman0: a bridge of veths, with ``box`` (the container)
        behind a port of it and routed through the bridge's /24 address."""
        port, _ = self.link(host, None, box, f"{box_addr}/24")
        host.run("ip", "link", "add", bridge, "type", "bridge")
        host.run("ip", "link", "set", port, "master", bridge)
        host.run("ip", "address", "add", f"{host_addr}/24", "dev", bridge)
        host.run("ip", "link", "set", bridge, "up")
        box.run("ip", "route", "add", "default", "via", host_addr)

    def blackhole(self, ns: Netns, port: int = 53, address: str | None = None) -> None:
        """Make ``ns`` silently drop inbound UDP and TCP to ``port`` (on ``address`` only, if given).

        A dead nameserver on a live host: no reply, no ICMP unreachable, no
        TCP reset, so clients can only time out.
        """
        for rule in _blackhole_rules(port, address):
            ns.iptables("-I", "INPUT", *rule)

    def unblackhole(self, ns: Netns, port: int = 53, address: str | None = None) -> None:
        """Undo ``blackhole`` with the same arguments."""
        for rule in _blackhole_rules(port, address):
            ns.iptables("-D", "INPUT", *rule)

    # -- servers ---------------------------------------------------------------

    def nsd(self, ns: Netns, address: str, zone: str = "example.test.",
            records: dict[str, str | list[str]] | None = None, *, ttl: int = 300,
            wildcard: str | None = WILDCARD_ADDRESS, extra: str = "",
            port: int = 53, rate_limit: bool = True) -> Daemon:
        """Debian's nsd, authoritative for ``zone``, answering on ``address:port``.

        The zone has SOA and NS, an A (or AAAA) record per address in
        ``records`` (names relative to the zone, or absolute with a final
        dot), ``*.zone`` A ``wildcard`` unless None (every other name then
        exists: distinct cache misses on demand), and ``extra`` zone-file
        lines. The SOA minimum (negative TTL) is ``ttl`` too.

        ``rate_limit=False`` turns off Debian nsd's response rate limiting
        (on by default at 200 answers/s per source /24, wildcard answers
        counted together): above that it silently drops replies, which a
        test sending thousands of distinct misses would see as loss.
        """
        workdir = self._workdir(ns, "nsd")
        lines = [f"$ORIGIN {zone}", f"$TTL {ttl}",
                 f"@ IN SOA ns1 hostmaster 1 3600 600 86400 {ttl}", "@ IN NS ns1",
                 f"ns1 IN A {address}"]
        for name, addresses in (records or {}).items():
            for addr in [addresses] if isinstance(addresses, str) else addresses:
                rdtype = "AAAA" if ipaddress.ip_address(addr).version == 6 else "A"
                lines.append(f"{name} IN {rdtype} {addr}")
        if wildcard:
            lines.append(f"* IN A {wildcard}")
        (workdir / "zone").write_text("\n".join(lines) + "\n" + extra + "\n")
        # chroot "" and username "": stay root in our own directory, so no
        # file of the Debian package (/etc/nsd, /var/lib/nsd) is touched.
        conf = workdir / "nsd.conf"
        rrl = "" if rate_limit else "  rrl-ratelimit: 0\n  rrl-whitelist-ratelimit: 0\n"
        conf.write_text(f"""\
server:
  server-count: 1
  ip-address: {address}@{port}
  do-ip6: no
  chroot: ""
  username: ""
  zonesdir: "{workdir}"
  database: ""
  pidfile: "{workdir}/nsd.pid"
  zonelistfile: "{workdir}/zone.list"
  xfrdfile: "{workdir}/xfrd.state"
  xfrdir: "{workdir}"
  verbosity: 1
{rrl}remote-control:
  control-enable: no
zone:
  name: "{zone}"
  zonefile: "zone"
""")
        run("nsd-checkconf", str(conf))
        daemon = Daemon(ns, address, port, ns.popen("nsd", "-d", "-c", str(conf)), workdir)
        # An SOA answer proves the zone loaded, not just that a socket is open.
        self._wait_answering(daemon, zone, "SOA", lambda r: r.rcode() == dns.rcode.NOERROR
                             and any(rrset.rdtype == dns.rdatatype.SOA for rrset in r.answer))
        return daemon

    def dnsmasq(self, ns: Netns, address: str, *, forward_to: list[str] = (),
                records: dict[str, str] | None = None, cache_size: int = 150,
                all_servers: bool = False, extra_args: list[str] = (),
                port: int = 53) -> Daemon:
        """Debian's dnsmasq forwarding to ``forward_to`` (``ip`` or ``ip#port``).

        ``records`` become --host-record lines (answered locally);
        ``all_servers`` makes it race every upstream like bootres does.
        """
        workdir = self._workdir(ns, "dnsmasq")
        argv = ["dnsmasq", "--keep-in-foreground", "--log-facility=-",
                "--conf-file=/dev/null", f"--pid-file={workdir}/dnsmasq.pid",
                # Only what the test says: not the host's resolv.conf or hosts.
                "--no-resolv", "--no-hosts", "--no-poll",
                "--bind-interfaces", f"--listen-address={address}", f"--port={port}",
                f"--cache-size={cache_size}"]
        argv += [f"--server={upstream}" for upstream in forward_to]
        argv += [f"--host-record={name},{addr}" for name, addr in (records or {}).items()]
        if all_servers:
            argv.append("--all-servers")
        daemon = Daemon(ns, address, port, ns.popen(*argv, *extra_args), workdir)
        self._wait_answering(daemon, "version.bind.", "TXT", lambda r: True, rdclass="CH")
        return daemon

    def unbound(self, ns: Netns, address: str, *, forward_to: list[str] = (),
                extra: str = "", port: int = 53) -> Daemon:
        """Debian's unbound as a caching forwarder to ``forward_to`` (``ip`` or ``ip@port``).

        No DNSSEC validation (the lab zones are unsigned) and ``test.`` is
        not one of its built-in empty zones here. ``extra`` is added to the
        ``server:`` clause, indented.
        """
        if not forward_to:
            raise ValueError("unbound needs forward_to: it must never recurse from the root")
        workdir = self._workdir(ns, "unbound")
        forwards = "".join(f"  forward-addr: {upstream}\n" for upstream in forward_to)
        conf = workdir / "unbound.conf"
        conf.write_text(f"""\
server:
  interface: {address}@{port}
  port: {port}
  do-ip6: no
  access-control: 0.0.0.0/0 allow
  chroot: ""
  username: ""
  directory: "{workdir}"
  pidfile: "{workdir}/unbound.pid"
  use-syslog: no
  logfile: ""
  verbosity: 1
  num-threads: 1
  module-config: "iterator"
  do-not-query-localhost: no
  local-zone: "test." nodefault
{extra}
remote-control:
  control-enable: no
forward-zone:
  name: "."
{forwards}""")
        run("unbound-checkconf", str(conf))
        daemon = Daemon(ns, address, port, ns.popen("unbound", "-d", "-p", "-c", str(conf)),
                        workdir)
        self._wait_answering(daemon, "id.server.", "TXT", lambda r: True, rdclass="CH")
        return daemon

    def fakedns(self, ns: Netns, address: str, port: int = 53, **knobs) -> FakeDNS:
        """A started ``fakedns.FakeDNS`` on ``address:port`` inside ``ns``, stopped at teardown."""
        server = FakeDNS.bind(address, port, socket_factory=ns.socket, **knobs)
        self.fakes.append(server)
        self.cleanup.callback(server.stop)
        return server.start()

    # -- helpers ---------------------------------------------------------------

    def _workdir(self, ns: Netns, program: str) -> Path:
        path = self.workdir / f"{ns.label}-{program}-{secrets.token_hex(2)}"
        path.mkdir()
        return path

    def _wait_answering(self, daemon: Daemon, qname: str, rdtype: str, good,
                        rdclass: str = "IN", timeout: float = 10.0) -> None:
        """Return once ``daemon`` gives a reply ``good`` accepts; bounded by ``timeout``."""
        query = dns.message.make_query(qname, rdtype, rdclass)
        with daemon.ns.call(socket.socket, socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if daemon.proc.poll() is not None:
                    raise LabError(f"{daemon.program} exited with status "
                                   f"{daemon.proc.returncode}:\n{daemon.log()}")
                try:
                    reply = dns.query.udp(query, daemon.address, 0.2, daemon.port, sock=sock)
                except (dns.exception.DNSException, OSError):
                    reply = None  # not listening yet, or a late reply to an earlier try
                if reply is not None and good(reply):
                    return
                time.sleep(0.05)
        raise LabError(f"{daemon.program} on {daemon.address}:{daemon.port} gave no "
                       f"good answer to {qname} {rdtype} within {timeout} s:\n{daemon.log()}")

    def _delete_netns(self, ns: Netns) -> None:
        """Kill whatever still runs inside (even daemons that forked away), then delete."""
        for _ in range(20):  # bounded: 20 rounds, 0.1 s apart
            pids = [int(p) for p in run("ip", "netns", "pids", ns.name).stdout.split()]
            pids = [p for p in pids if p != os.getpid()]
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)
        run("ip", "netns", "del", ns.name)
