"""Netlink through pyroute2: links, addresses, default routes, and bootres's default route.

The only module that imports pyroute2, and only the part of it used here (``_import_iproute``).  Every call here blocks (briefly);
``NetlinkWatch`` (bootres/shell/netwatch.py) runs them on one worker thread,
which also keeps them in order and keeps pyroute2 0.9's own event loop out
of ours.  The calls used exist with the same meaning in pyroute2 0.7.2
(Debian 12) and the newest releases: ``IPRoute.get_links/get_addr/get_routes/route``.

bootres's routes carry protocol 9 (RTPROT_RA).  Deletion always names that
protocol, which the kernel matches, and only deletes routes a fresh dump
shows with it: a route bootres did not install is never removed.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import logging
import socket
import sys
from dataclasses import dataclass

from bootres.core.router import RTPROT_RA, KernelRoute


def _import_iproute() -> type:
    """pyroute2's ``IPRoute`` class, without what the ``pyroute2`` package itself imports.

    Any import from pyroute2 runs the package's ``__init__`` first, which
    imports every module pyroute2 has (NDB, IPDB, nftables, WireGuard, ...):
    +10-12 MiB of RSS and 70-85 ms in the daemon here, against +2-4 MiB and
    ~33 ms for the modules ``IPRoute`` needs (0.7.2 and 0.9 alike;
    docs/benchmarks.md).  So the package stands in ``sys.modules``
    unexecuted while those are imported, and is taken out again: whatever
    imports ``pyroute2`` later gets the real package.
    """
    # pyroute2's tc module reads /proc/net/psched when imported and logs two warnings when it cannot,
    # which under the unit's ProcSubset=pid is always: bootres uses no tc, so they are noise in its journal.
    tc_log = logging.getLogger("pyroute2.netlink.rtnl.tcmsg.common")
    tc_log.disabled = True
    spec = None if "pyroute2" in sys.modules else importlib.util.find_spec("pyroute2")
    try:
        if spec is None:  # already imported whole, or not installed (the import below says so)
            from pyroute2.iproute.linux import IPRoute
            return IPRoute
        sys.modules["pyroute2"] = importlib.util.module_from_spec(spec)
        try:
            from pyroute2.iproute.linux import IPRoute
        finally:
            del sys.modules["pyroute2"]
        return IPRoute
    finally:
        tc_log.disabled = False


IPRoute = _import_iproute()

MAIN_TABLE = 254
# The metric of bootres's route.  Above what DHCP clients use (dhclient 0,
# NetworkManager 100+, networkd 1024 for DHCP), so a route configured later
# by the network stack is preferred by the kernel, and a "replace" of ours
# can never match and overwrite theirs.
ROUTE_METRIC = 1096

_IFF_UP = 0x1
_IFF_BROADCAST = 0x2
_IFF_LOOPBACK = 0x8
_IFF_MULTICAST = 0x1000
_RT_SCOPE_UNIVERSE = 0
_RT_SCOPE_HOST = 254
_RTN_UNICAST = 1
# linux/if_addr.h: an IPv6 address that cannot, or should not, name this host:
# a privacy address (changes daily), one still in or failed duplicate
# address detection, or one being phased out.
_IFA_F_UNUSABLE = 0x01 | 0x08 | 0x20 | 0x40  # TEMPORARY | DADFAILED | DEPRECATED | TENTATIVE


@dataclass(frozen=True)
class Link:
    """An interface as netlink describes it, with its IPv4 addresses and its stable global IPv6 ones."""

    index: int
    name: str
    up: bool
    loopback: bool
    broadcast: bool
    multicast: bool
    addresses: tuple[ipaddress.IPv4Interface, ...]
    addresses6: tuple[ipaddress.IPv6Interface, ...] = ()
    kind: str | None = None  # IFLA_INFO_KIND: "veth", "bridge", ...; None for a NIC
    master: int | None = None  # the bridge (or bond) this link is a port of


@dataclass(frozen=True)
class DefaultRoute6:
    """An IPv6 default route of the main table: the kernel's own (learned from RAs, proto 9) or configured."""

    gateway: ipaddress.IPv6Address | None
    ifindex: int | None
    proto: int
    metric: int


@dataclass(frozen=True)
class Snapshot:
    """What the kernel says now; equal snapshots mean nothing bootres looks at changed."""

    links: tuple[Link, ...]
    default_routes: tuple[KernelRoute, ...]  # IPv4 defaults of the main table, any protocol
    primary_address: ipaddress.IPv4Address | None
    default_routes6: tuple[DefaultRoute6, ...] = ()
    primary_address6: ipaddress.IPv6Address | None = None


class Netlink:
    """A lazily opened rtnetlink socket; use from a single thread."""

    def __init__(self) -> None:
        self._ipr: IPRoute | None = None

    def _socket(self) -> IPRoute:
        if self._ipr is None:
            self._ipr = IPRoute()
        return self._ipr

    def close(self) -> None:
        if self._ipr is not None:
            self._ipr.close()
            self._ipr = None

    def snapshot(self) -> Snapshot:
        ipr = self._socket()
        addresses: dict[int, list[tuple[ipaddress.IPv4Interface, int]]] = {}
        for msg in ipr.get_addr(family=socket.AF_INET):
            local = msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS")
            if local:
                iface = ipaddress.IPv4Interface(f"{local}/{msg['prefixlen']}")
                addresses.setdefault(msg["index"], []).append((iface, msg["scope"]))
        addresses6: dict[int, list[ipaddress.IPv6Interface]] = {}
        for msg in ipr.get_addr(family=socket.AF_INET6):
            flags = msg.get_attr("IFA_FLAGS") or msg["flags"]  # IFA_FLAGS has the 32-bit flags where present
            local = msg.get_attr("IFA_ADDRESS")
            if local and msg["scope"] == _RT_SCOPE_UNIVERSE and not flags & _IFA_F_UNUSABLE:
                addresses6.setdefault(msg["index"], []).append(ipaddress.IPv6Interface(f"{local}/{msg['prefixlen']}"))
        links = []
        for msg in ipr.get_links():
            flags = msg["flags"]
            info = msg.get_attr("IFLA_LINKINFO")
            links.append(
                Link(
                    index=msg["index"],
                    name=msg.get_attr("IFLA_IFNAME"),
                    up=bool(flags & _IFF_UP),
                    loopback=bool(flags & _IFF_LOOPBACK),
                    broadcast=bool(flags & _IFF_BROADCAST),
                    multicast=bool(flags & _IFF_MULTICAST),
                    addresses=tuple(a for a, _ in addresses.get(msg["index"], [])),
                    addresses6=tuple(addresses6.get(msg["index"], ())),
                    kind=info.get_attr("IFLA_INFO_KIND") if info is not None else None,
                    master=msg.get_attr("IFLA_MASTER") or None,
                )
            )
        routes = self._default_routes(ipr)
        routes6 = _default_routes6(ipr)
        return Snapshot(tuple(links), tuple(r for r, _, _ in routes), _primary(routes, addresses),
                        routes6, _primary6(routes6, addresses6))

    def _default_routes(self, ipr: IPRoute) -> list[tuple[KernelRoute, int, str | None]]:
        """(route, metric, preferred source) of every IPv4 default route in the main table."""
        found = []
        for msg, gateway, metric in _unicast_defaults(ipr, socket.AF_INET):
            route = KernelRoute(
                gateway=ipaddress.IPv4Address(gateway) if gateway else None,
                ifindex=msg.get_attr("RTA_OIF"),
                proto=msg["proto"],
            )
            found.append((route, metric, msg.get_attr("RTA_PREFSRC")))
        return found

    def add_host_address(self, address: ipaddress.IPv4Address, ifindex: int) -> None:
        """Put ``address``/32 on ``ifindex`` (lo) with scope host: never a source address for other destinations."""
        self._socket().addr("replace", index=ifindex, address=str(address), prefixlen=32, scope=_RT_SCOPE_HOST)

    def set_default_route(self, gateway: ipaddress.IPv4Address, ifindex: int | None) -> None:
        """Install bootres's default route via ``gateway``, replacing an older one of ours."""
        ipr = self._socket()
        spec = {"dst": "0.0.0.0/0", "gateway": str(gateway), "proto": RTPROT_RA, "priority": ROUTE_METRIC,
                "table": MAIN_TABLE}
        if ifindex is not None:
            spec["oif"] = ifindex
        ipr.route("replace", **spec)
        for route, metric, _ in self._default_routes(ipr):
            if route.proto == RTPROT_RA and (route.gateway, metric) != (gateway, ROUTE_METRIC):
                self._delete(ipr, route, metric)  # an older route of ours at another metric

    def clear_default_route(self) -> int:
        """Remove every default route tagged RTPROT_RA; return how many went."""
        ipr = self._socket()
        removed = 0
        for route, metric, _ in self._default_routes(ipr):
            if route.proto == RTPROT_RA:
                self._delete(ipr, route, metric)
                removed += 1
        return removed

    @staticmethod
    def _delete(ipr: IPRoute, route: KernelRoute, metric: int) -> None:
        # proto is part of the kernel's match: even a race with someone else
        # changing the table cannot make this delete a route that is not ours.
        spec = {"dst": "0.0.0.0/0", "proto": RTPROT_RA, "priority": metric, "table": MAIN_TABLE}
        if route.gateway is not None:
            spec["gateway"] = str(route.gateway)
        ipr.route("del", **spec)


def _unicast_defaults(ipr: IPRoute, family: int):
    """(message, gateway or None, metric) of every unicast default route of ``family`` in the main table.

    Unicast only: an "unreachable" or "blackhole" default is no router, and
    not bootres's to replace.
    """
    for msg in ipr.get_routes(family=family):
        table = msg.get_attr("RTA_TABLE") or msg["table"]
        if msg["dst_len"] == 0 and table == MAIN_TABLE and msg["type"] == _RTN_UNICAST:
            yield msg, msg.get_attr("RTA_GATEWAY"), msg.get_attr("RTA_PRIORITY") or 0


def _default_routes6(ipr: IPRoute) -> tuple[DefaultRoute6, ...]:
    """Every unicast IPv6 default route in the main table, lowest metric first."""
    found = [
        DefaultRoute6(gateway=ipaddress.IPv6Address(gateway) if gateway else None,
                      ifindex=msg.get_attr("RTA_OIF"), proto=msg["proto"], metric=metric)
        for msg, gateway, metric in _unicast_defaults(ipr, socket.AF_INET6)
    ]
    return tuple(sorted(found, key=lambda route: route.metric))


def _primary6(routes: tuple[DefaultRoute6, ...], addresses: dict[int, list[ipaddress.IPv6Interface]]):
    """This host's IPv6 address: a stable global one on the default route's interface, else the first one."""
    for route in routes:
        if addresses.get(route.ifindex):
            return addresses[route.ifindex][0].ip
    for index in sorted(addresses):
        return addresses[index][0].ip
    return None


def _primary(routes, addresses) -> ipaddress.IPv4Address | None:
    """The host's primary IPv4 address: the source the default route uses, else the first global one."""
    for route, _, prefsrc in sorted(routes, key=lambda item: item[1]):
        if prefsrc:
            return ipaddress.IPv4Address(prefsrc)
        for iface, _ in addresses.get(route.ifindex, []):
            if route.gateway is None or route.gateway in iface.network:
                return iface.ip
    for index in sorted(addresses):
        for iface, scope in addresses[index]:
            if scope == _RT_SCOPE_UNIVERSE and not iface.ip.is_loopback:
                return iface.ip
    return None
