"""Interop with Debian 12's FRR (8.4.4, ``zebra -M irdp``) as the RFC 1256 router.

zebra runs as root in a router namespace with its own configuration, pid
file, sockets and log under the test's directory (no watchfrr, no systemd:
.ci/setup installs the package with its service kept stopped).  bootres is
the shipped daemon (``rdisc_host.BootresHost``: ``bootres run``) in the host
namespace.  In the host namespace the test also records, on its own
clock (``time.monotonic()``):

- every Router Advertisement arriving on eth0, from a packet socket
  (``Wire``): what FRR really puts on the wire, and when the kernel had it;
- every change of the IPv4 default routes, from a netlink socket
  subscribed to route notifications (``RouteClock``).

FRR sends its first advertisement 16 s after it starts on an interface and
never answers bootres's solicitations (see docs/router.md, "FRR"), so both
labs are built once for the module and that wait is shared:

- lab 1, one FRR: the route after its first advertisement, and gone after
  the lifetime-0 advertisements of its shutdown (SIGTERM);
- lab 2, two FRRs with preferences 20 and 10 on a switch: the route via
  the preferred one; after a SIGKILL (no goodbye) the other takes over
  when the holdtime runs out.

``-s`` prints the measured figures.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import socket
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import lab as lab_module
from rdisc_host import BootresHost

ZEBRA = Path("/usr/lib/frr/zebra")
IRDP_MODULE = Path("/usr/lib/x86_64-linux-gnu/frr/modules/zebra_irdp.so")
# FRR's limits: minadvertinterval 3-1800, maxadvertinterval 4-1800, and it
# needs max > min.  A 6 s holdtime outlives one lost advertisement.
MIN_INTERVAL, MAX_INTERVAL, HOLDTIME = 3, 4, 6
ETH_P_IP = 0x0800
RTMGRP_IPV4_ROUTE = 0x40
PACKET_OUTGOING = 4
SO_TIMESTAMPNS = 35  # Linux; not in Python 3.11's socket module


def swapped(address: str) -> str:
    """``address`` with its four bytes reversed: what FRR 8.4.4 writes as the IP source."""
    return socket.inet_ntoa(socket.inet_aton(address)[::-1])


@dataclass(frozen=True)
class Advert:
    at: float  # time.monotonic() when the packet socket had it
    source: str
    destination: str
    tos: int
    ttl: int
    lifetime: int
    entries: tuple[tuple[str, int], ...]
    datagram: bytes


class Wire:
    """Every ICMP Router Advertisement arriving on ``ifname`` in ``ns``, from a packet socket."""

    def __init__(self, lab, ns, ifname: str = "eth0"):
        self.adverts: list[Advert] = []
        sock = ns.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
        sock.bind((ifname, ETH_P_IP))
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self._stop = threading.Event()
        thread = threading.Thread(target=self._read, args=(sock,), daemon=True)
        thread.start()
        lab.cleanup.callback(thread.join, 2)
        lab.cleanup.callback(self._stop.set)

    def _read(self, sock) -> None:
        while not self._stop.is_set():
            if not select.select([sock], [], [], 0.05)[0]:
                continue
            data, ancillary, _, (_, _, pkttype, _, _) = sock.recvmsg(65535, 64)
            at = self._arrival(ancillary)
            header = (data[0] & 0x0F) * 4
            if pkttype == PACKET_OUTGOING or data[9] != socket.IPPROTO_ICMP or data[header] != 9:
                continue
            count, _, lifetime = struct.unpack_from("!BBH", data, header + 4)
            entries = tuple((socket.inet_ntoa(data[offset:offset + 4]), struct.unpack_from("!i", data, offset + 4)[0])
                            for offset in range(header + 8, header + 8 + 8 * count, 8))  # FRR: 2-word entries
            total_length = struct.unpack_from("!H", data, 2)[0]
            self.adverts.append(Advert(at, socket.inet_ntoa(data[12:16]), socket.inet_ntoa(data[16:20]), data[1],
                                       data[8], lifetime, entries, data[:total_length]))

    @staticmethod
    def _arrival(ancillary) -> float:
        """When the kernel had the packet, on the monotonic clock.

        This thread may read it well after the route thread has read the
        route change it caused (2 CPUs, a busy machine: 11 ms once), so the
        packet's kernel time stamp (SO_TIMESTAMPNS, wall clock) counts, moved
        to the monotonic clock; a route change read late only looks slower.
        """
        for level, kind, data in ancillary:
            if (level, kind) == (socket.SOL_SOCKET, SO_TIMESTAMPNS):
                seconds, nanoseconds = struct.unpack("@qq", data[:16])
                return time.monotonic() - (time.time() - (seconds + nanoseconds / 1e9))
        return time.monotonic()

    def from_router(self, address: str) -> list[Advert]:
        return [advert for advert in self.adverts if any(entry == address for entry, _ in advert.entries)]


class RouteClock:
    """When the IPv4 default routes of ``ns`` changed (netlink notifications) and what they became."""

    def __init__(self, lab, ns):
        self.ns = ns
        sock = ns.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        sock.bind((0, RTMGRP_IPV4_ROUTE))
        self.changes: list[tuple[float, list[tuple[str, str]]]] = [(time.monotonic(), self._routes())]
        self._stop = threading.Event()
        thread = threading.Thread(target=self._read, args=(sock,), daemon=True)
        thread.start()
        lab.cleanup.callback(thread.join, 2)
        lab.cleanup.callback(self._stop.set)

    def _routes(self) -> list[tuple[str, str]]:
        out = lab_module.run("ip", "-n", self.ns.name, "-j", "-4", "route", "show", "default").stdout
        return [(route.get("gateway"), route.get("protocol")) for route in json.loads(out or "[]")]

    def _read(self, sock) -> None:
        while not self._stop.is_set():
            if not select.select([sock], [], [], 0.05)[0]:
                continue
            at = time.monotonic()
            while select.select([sock], [], [], 0)[0]:
                sock.recv(65536)
            self.changes.append((at, self._routes()))

    def now(self) -> list[tuple[str, str]]:
        return self.changes[-1][1]

    def first(self, predicate, *, after: float, timeout: float, what: str, explain=lambda: "") -> float:
        """The time of the first change at or after ``after`` whose routes satisfy ``predicate``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for at, routes in list(self.changes):
                if at >= after and predicate(routes):
                    return at
            time.sleep(0.02)
        raise AssertionError(f"no {what} within {timeout} s; default routes: {self.changes}\n{explain()}")


class Zebra:
    """FRR's zebra with the IRDP module, as root in ``ns``, advertising ``address`` on ``ifname``."""

    def __init__(self, lab, ns, workdir: Path, ifname: str, address: str, preference: int):
        self.address, self.preference = address, preference
        rundir = workdir / ns.label
        rundir.mkdir()
        conf = rundir / "zebra.conf"
        conf.write_text(f"interface {ifname}\n ip irdp multicast\n ip irdp preference {preference}\n"
                        f" ip irdp holdtime {HOLDTIME}\n ip irdp minadvertinterval {MIN_INTERVAL}\n"
                        f" ip irdp maxadvertinterval {MAX_INTERVAL}\n")
        # -g frrvty: zebra insists that its user belong to the vty group; -P 0: no vty TCP port.
        self.proc = ns.popen(str(ZEBRA), "-M", "irdp", "-f", str(conf), "-i", str(rundir / "zebra.pid"),
                             "-z", str(rundir / "zserv.api"), "--vty_socket", str(rundir),
                             "-u", "root", "-g", "frrvty", "-P", "0", "--log", "stdout")
        self.started = time.monotonic()
        lab.cleanup.callback(self.close)

    def log(self) -> str:
        return self.proc.log_path.read_text(errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)
        # zebra keeps a crash-log directory per process there, even after a clean exit.
        shutil.rmtree(f"/var/tmp/frr/zebra.{self.proc.pid}", ignore_errors=True)


class Rig:
    """A host running bootres and FRR routers on one subnet: one on a veth wire, several on a switch."""

    def __init__(self, lab, workdir: Path, label: str, routers: list[tuple[str, int]]):
        self.host = lab.netns(f"host{label}")
        host_address = routers[0][0].rsplit(".", 1)[0] + ".10/24"
        router_nss = [lab.netns(f"frr{label}{chr(ord('a') + n)}") for n in range(len(routers))]
        if len(routers) == 1:
            ifnames = [lab.link(self.host, host_address, router_nss[0], f"{routers[0][0]}/24")[1]]
        else:
            switch = lab.switch(f"switch{label}")
            lab.attach(self.host, switch, host_address)
            ifnames = [lab.attach(ns, switch, f"{address}/24") for ns, (address, _) in zip(router_nss, routers)]
        self.wire = Wire(lab, self.host)
        self.routes = RouteClock(lab, self.host)
        (workdir / f"bootres{label}").mkdir()
        self.bootres = BootresHost(self.host, workdir / f"bootres{label}").start()
        self.routers = [Zebra(lab, ns, workdir, ifname, address, preference)
                        for ns, ifname, (address, preference) in zip(router_nss, ifnames, routers)]

    def explain(self) -> str:
        logs = [f"--- bootres\n{self.bootres.log()[-3000:]}"]
        logs += [f"--- zebra {z.address}\n{z.log()[-1500:]}" for z in self.routers]
        return "\n".join(logs)


def frr_missing() -> str | None:
    if not ZEBRA.exists() or not IRDP_MODULE.exists():
        return "FRR's zebra with its IRDP module is not installed (.ci/setup installs frr)"
    return None


@pytest.fixture(scope="module")
def rigs(tmp_path_factory):
    reason = lab_module.unavailable() or frr_missing()
    if reason:
        if os.environ.get("BOOTRES_REQUIRE_LAB"):
            pytest.fail(f"{reason} (and BOOTRES_REQUIRE_LAB is set)")
        pytest.skip(reason)
    workdir = tmp_path_factory.mktemp("frr")
    with lab_module.Lab(workdir) as lab:
        one = Rig(lab, workdir, "1", [("198.18.1.1", 10)])
        two = Rig(lab, workdir, "2", [("198.18.2.1", 20), ("198.18.2.2", 10)])
        yield one, two


def test_route_after_frrs_first_advertisement_and_gone_at_its_shutdown(rigs):
    rig = rigs[0]
    frr = rig.routers[0]
    installed = rig.routes.first(lambda routes: routes == [(frr.address, "ra")], after=frr.started, timeout=30,
                                 what="route via FRR", explain=rig.explain)
    first = rig.wire.from_router(frr.address)[0]
    to_route = installed - first.at
    assert 0 <= to_route < 0.5, f"route {to_route:.3f} s after FRR's first advertisement"

    # What FRR 8.4.4 puts on the wire: the router address right, the IP source byte-swapped.
    assert (first.source, first.destination, first.tos, first.ttl) == (swapped(frr.address), "224.0.0.1", 0xC0, 1)
    assert (first.lifetime, first.entries) == (HOLDTIME, ((frr.address, frr.preference),))
    # ... and that does not matter: nothing was dropped.
    status = rig.bootres.wait(lambda: (s := rig.bootres.status().get("router")) and s.get("routers") and s,
                              timeout=2, what="the router in status")
    assert (status["default"], status["source"], status["dropped"]) == (frr.address, "rdisc", {})
    assert [(r["address"], r["preference"]) for r in status["routers"]] == [(frr.address, frr.preference)]
    # bootres solicited; FRR in multicast mode refused every solicitation (its second bug), so the
    # route came from its periodic advertisement, 16 s after it started.
    assert "RX illegal from 198.18.1.10 to multicast while eth0 operates in multicast" in frr.log()

    # SIGTERM: FRR says goodbye with lifetime-0 advertisements, and the route goes at once.
    frr.proc.terminate()
    frr.proc.wait(timeout=5)
    gone = rig.routes.first(lambda routes: routes == [], after=installed, timeout=3, what="route removed",
                            explain=rig.explain)
    goodbye = next(a for a in rig.wire.from_router(frr.address) if a.lifetime == 0)
    to_removal = gone - goodbye.at
    assert 0 <= to_removal < 0.5, f"route gone {to_removal:.3f} s after FRR's lifetime-0 advertisement"
    assert rig.bootres.status()["router"]["dropped"] == {}
    print(f"\nFRR first advertisement {first.at - frr.started:.2f} s after zebra started; route "
          f"{to_route * 1000:.1f} ms after it; lifetime-0 advertisement to route gone {to_removal * 1000:.1f} ms; "
          f"wire: {first.source} > {first.destination} tos {first.tos:#x} ttl {first.ttl}, {first.datagram.hex()}")


def test_two_frr_routers_preference_then_failover_on_holdtime_expiry(rigs):
    rig = rigs[1]
    preferred, other = rig.routers
    start = min(z.started for z in rig.routers)
    rig.routes.first(lambda routes: routes == [(preferred.address, "ra")], after=start, timeout=30,
                     what="route via the preferred FRR", explain=rig.explain)
    status = rig.bootres.wait(lambda: len((s := rig.bootres.status().get("router", {})).get("routers", [])) == 2
                              and s, timeout=2 * MAX_INTERVAL, what="both routers in status")
    assert [(r["address"], r["preference"]) for r in status["routers"]] == [(preferred.address, 20),
                                                                           (other.address, 10)]
    assert status["dropped"] == {}

    # SIGKILL: no lifetime-0 goodbye; the route moves when the preferred router's holdtime runs out.
    preferred.proc.kill()
    preferred.proc.wait(timeout=5)
    killed = time.monotonic()
    moved = rig.routes.first(lambda routes: routes == [(other.address, "ra")], after=killed,
                             timeout=HOLDTIME + 2, what="failover to the other FRR", explain=rig.explain)
    adverts = rig.wire.from_router(preferred.address)
    assert all(advert.lifetime == HOLDTIME for advert in adverts)  # no goodbye
    last = max(advert.at for advert in adverts)
    failover = moved - last
    assert HOLDTIME - 0.05 < failover < HOLDTIME + 0.5, f"failover {failover:.3f} s after the last advertisement"
    assert rig.bootres.status()["router"]["dropped"] == {}
    print(f"\nfailover {failover:.3f} s after the preferred router's last advertisement (holdtime {HOLDTIME} s)")
