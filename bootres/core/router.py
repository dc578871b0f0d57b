"""Host side of ICMP Router Discovery (RFC 1256 section 5.3) and the default-route choice.

``RouterDiscovery`` is a sans-I/O core.  The shell feeds it:

- the interfaces to run on (``set_interface``/``remove_interface``), each
  with the random solicitation delay the shell drew for it;
- raw IPv4 datagrams from the ICMP socket with the receiving ifindex
  (``datagram_received``);
- what the kernel's main table holds for the IPv4 default route
  (``kernel_routes_observed``);
- ``timer_fired`` once ``deadline()`` has passed.

and collects effects with ``drain()``: solicitations to send, the default
route to set or clear, the router list for the stub files, log lines
(``bootres.core.effects.Log``).  Every method takes ``now`` (monotonic
seconds); nothing here reads a clock.

Which advertisements count: section 5.2's validity checks
(``bootres.core.rdisc``), then the link rule (docs/router.md, "Only the
link"): sent as a router sends one, to 224.0.0.1 or 255.255.255.255, or
unicast to this host within ``SOLICITED_REPLY_WINDOW`` of a solicitation
of ours on that interface; from an on-link IP source (or FRR 8.4's
byte-swapped one: the swapped source on-link and one of the advertised
addresses); then section 5.3's neighbour rule on the advertised Router
Addresses, and the ``routers`` allowlist when set.  Every advertisement
dropped is counted by reason and logged once per (source address, reason),
up to ``DROP_LOG_LIMIT`` lines.

Which interfaces discovery runs on by default is ``discovery_links``: the
host's own uplinks, never the container or VM side (bytes a container
sends are never even read).

Where the default router comes from, in order (``source`` in status):

1. ``netlink``: a default route that bootres did not install (DHCP, static
   network configuration, an admin) is reported and never fought: bootres
   installs nothing and removes its own route while that one exists.
2. ``rdisc``: the highest-preference advertised router.
3. ``file``: the routers in /etc/defaultrouter from the last boot, until
   the first advertisement arrives (discovery then knows better).
4. ``static``: the ``static`` setting.

bootres's own route (an IPv4 default of the main table tagged RTPROT_RA)
is steered only while ``install_route`` is on; with it off, a route of
ours found in the kernel (a reload, or a restart after one) is removed,
and turning it back on installs the route again.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from bootres.core import report
from bootres.core.containerside import LinkFacts, container_bridges
from bootres.core.effects import INFO, WARNING, Log
from bootres.core.rdisc import (
    ALL_ROUTERS,
    ALL_SYSTEMS,
    LIMITED_BROADCAST,
    MAX_SOLICITATIONS,
    NOT_A_DEFAULT,
    SOLICITATION_INTERVAL,
    Advertisement,
    IPv4Datagram,
    PacketError,
    Solicitation,
)

IPv4 = ipaddress.IPv4Address

# linux/rtnetlink.h: "RDISC/ND router advertisements".  bootres tags its
# routes with it and only ever removes routes carrying it.
RTPROT_RA = 9

# Enough for any real segment (RFC 1256 expects a handful of routers); an
# advertisement flood past this evicts only routers worse than the newcomer.
DEFAULT_CAPACITY = 32

# Distinct (source, reason) drops that get a log line of their own.  Forged
# sources are free to an on-link attacker: past this, drops are only counted.
DROP_LOG_LIMIT = 64

# RFC 1256 section 4.1: a router answers a solicitation within
# MAX_RESPONSE_DELAY (2 s); a unicast advertisement counts only this long
# after our own solicitation on that interface.
SOLICITED_REPLY_WINDOW = 3.0

# linux/rtnetlink.h route protocols, as ``ip route`` names them.
ROUTE_ORIGINS = {2: "kernel", 3: "boot", 4: "static", RTPROT_RA: "ra", 16: "dhcp"}


@dataclass(frozen=True)
class Interface:
    """An interface discovery runs on: its index, name, IPv4 addresses with prefixes."""

    index: int
    name: str
    addresses: tuple[ipaddress.IPv4Interface, ...]
    multicast: bool = True

    def on_link(self, address: IPv4) -> bool:
        """RFC 1256 section 5.3: only addresses on one of the interface's subnets count."""
        return any(address in own.network for own in self.addresses)

    def owns(self, address: IPv4) -> bool:
        return any(address == own.ip for own in self.addresses)


# Why discovery does not run on a link by default (``discovery_links``).
TUN = "a tun/tap device"
PORT = "a port of a bridge or bond"
CONTAINER_BRIDGE = "a bridge of containers or VMs"
CONTAINER_VETH = "a container's veth"


def discovery_links(links: list[LinkFacts], uplinks: set[int]) -> dict[int, str | None]:
    """Each candidate link's index: None where discovery runs by default, else why not.

    Candidates are up, not loopback, with an IPv4 address and broadcast or
    multicast (``up``, ``broadcast``, ``multicast`` on the link).  Of
    those, the host's own uplinks: never a tun/tap, a port of a bridge or
    bond, or a bridge whose ports are all veths or taps (docker0, podman0,
    virbr0, lxcbr0) unless a default route goes through it (``uplinks``).
    A veth is an uplink when a default route goes through it, or when every
    other candidate is a veth too: a container or an nspawn guest, whose
    only link is one; on a host with a NIC, its veths are its containers'.
    """
    candidates = [link for link in links
                  if link.up and not link.loopback and link.addresses and (link.broadcast or link.multicast)]
    bridges = container_bridges(links, ("veth", "tun"))
    verdicts: dict[int, str | None] = {}
    for link in candidates:
        if link.index in uplinks:
            verdicts[link.index] = None
        elif link.kind == "tun":
            verdicts[link.index] = TUN
        elif link.master is not None:
            verdicts[link.index] = PORT
        elif link.index in bridges:
            verdicts[link.index] = CONTAINER_BRIDGE
    others = [link for link in candidates if link.index not in verdicts and link.kind != "veth"]
    for link in candidates:
        if link.index not in verdicts:
            verdicts[link.index] = CONTAINER_VETH if link.kind == "veth" and others else None
    return verdicts


@dataclass(frozen=True)
class KernelRoute:
    """An IPv4 default route in the main table, as netlink reports it."""

    gateway: IPv4 | None
    ifindex: int | None
    proto: int


# --- effects: what the shell is asked to do


@dataclass(frozen=True)
class SendSolicitation:
    ifindex: int
    destination: IPv4
    payload: bytes


@dataclass(frozen=True)
class SetDefaultRoute:
    """Add or replace bootres's default route (tagged RTPROT_RA); ifindex None: kernel picks."""

    gateway: IPv4
    ifindex: int | None


@dataclass(frozen=True)
class ClearDefaultRoute:
    """Remove bootres's default route (only routes tagged RTPROT_RA); ``why`` is for the log line."""

    why: str


@dataclass(frozen=True)
class RoutersChanged:
    """The default router list changed: most preferred first, and where it came from."""

    routers: tuple[IPv4, ...]
    source: str | None


# --- per-interface solicitation schedule (RFC 1256 section 5.3)
#
# Rule: everything that decides when a solicitation goes out is in this table
# and in ``_Schedule``; docs/router.md draws its state table from it.

DELAYING = "delaying"  # waiting out the random 0..MAX_SOLICITATION_DELAY start delay
SOLICITING = "soliciting"  # sent at least one, more to come SOLICITATION_INTERVAL apart
LISTENING = "listening"  # done soliciting: an advertisement came, or MAX_SOLICITATIONS went out

SEND = "send due"  # the timer for a solicitation that is not the last one
SEND_LAST = "last send due"  # the timer for solicitation number MAX_SOLICITATIONS
ADVERTISED = "valid advertisement"

SOLICIT_TRANSITIONS: dict[tuple[str, str], str] = {
    (DELAYING, SEND): SOLICITING,
    (DELAYING, SEND_LAST): LISTENING,
    (DELAYING, ADVERTISED): LISTENING,
    (SOLICITING, SEND): SOLICITING,
    (SOLICITING, SEND_LAST): LISTENING,
    (SOLICITING, ADVERTISED): LISTENING,
    (LISTENING, ADVERTISED): LISTENING,
}


@dataclass
class _Schedule:
    state: str
    due: float | None  # when the next solicitation goes out
    sent: int = 0
    last_sent: float | None = None  # when our last solicitation went out: a unicast reply counts only after it

    def fire(self, event: str) -> None:
        self.state = SOLICIT_TRANSITIONS[(self.state, event)]
        if self.state == LISTENING:
            self.due = None


@dataclass
class _Router:
    address: IPv4
    ifindex: int
    interface: str
    preference: int
    expires_at: float

    @property
    def may_be_default(self) -> bool:
        return self.preference != NOT_A_DEFAULT

    def rank(self) -> tuple:
        """Sort key, best first: usable as default, then preference, then address."""
        return (not self.may_be_default, -self.preference, int(self.address))


@dataclass(frozen=True)
class Settings:
    """What the core takes from [router] (``bootres.settings.router_settings``: defaults are config.SCHEMA's)."""

    solicit: bool
    install_route: bool
    static: tuple[IPv4, ...]  # non-empty: these routers, discovery only watches
    allowed: tuple[ipaddress.IPv4Network, ...]  # [router] routers: empty, any on-link router


class RouterDiscovery:
    """The router table, solicitation schedules and default-route decision for one host."""

    def __init__(self, settings: Settings, *, remembered: tuple[IPv4, ...] = (), capacity: int = DEFAULT_CAPACITY):
        self.settings = settings
        # /etc/defaultrouter from the last boot; never one the allowlist would refuse.
        self.remembered = tuple(r for r in remembered if self._admitted(r))
        self.capacity = capacity
        self.interfaces: dict[int, Interface] = {}
        self.schedules: dict[int, _Schedule] = {}
        self.routers: dict[IPv4, _Router] = {}
        self.dropped: dict[str, int] = {}  # reason -> count; the reasons are a fixed small set
        self._drop_logged: set[tuple[IPv4 | None, str]] = set()  # (source, reason) said once, bounded
        self._drop_log_full = False
        self.heard_advertisement = False
        # None until netlink has been read: no route is touched before we know
        # whether someone else's default route is there.
        self.kernel_routes: tuple[KernelRoute, ...] | None = None
        self.chosen: tuple[tuple[IPv4, ...], str | None] = ((), None)
        self._effects: list = []
        self._decide()

    # --- inputs

    def reconfigure(self, settings: Settings) -> None:
        """New settings, same router table (less what ``allowed`` now refuses).  Interfaces already listening
        do not solicit again."""
        self.settings = settings
        self.remembered = tuple(r for r in self.remembered if self._admitted(r))
        for router in list(self.routers.values()):
            if not self._admitted(router.address):
                self._forget(router, "not in [router] routers")
        self._decide()

    def set_interface(self, interface: Interface, now: float, delay: float) -> None:
        """Start discovery on a new interface (first solicitation after ``delay``) or update one."""
        known = interface.index in self.interfaces
        self.interfaces[interface.index] = interface
        if not known:
            self.schedules[interface.index] = (
                _Schedule(DELAYING, now + delay) if self.settings.solicit else _Schedule(LISTENING, None)
            )
        for router in list(self.routers.values()):
            if router.ifindex == interface.index and not interface.on_link(router.address):
                self._forget(router, "no longer on-link")
        self._decide()

    def remove_interface(self, index: int) -> None:
        interface = self.interfaces.pop(index, None)
        self.schedules.pop(index, None)
        if interface is None:
            return
        for router in list(self.routers.values()):
            if router.ifindex == index:
                self._forget(router, f"{interface.name} is gone")
        self._decide()

    def datagram_received(self, datagram: bytes, ifindex: int, now: float) -> None:
        """An IPv4 datagram (header included) from the raw ICMP socket, received on ``ifindex``.

        Section 5.2 ("Message Validation by Hosts") is
        ``Advertisement.from_bytes``.  Then the link rule (``_from_the_link``):
        nothing from off the link is ever legitimate.  Section 5.3 has the
        host use only the advertised Router Addresses that are neighbours of
        the receiving interface (section 1 calls systems neighboring when
        they have an address on a common subnet); an advertisement that
        leaves none is dropped, as is one that leaves none ``allowed``.
        """
        interface = self.interfaces.get(ifindex)
        # For the log line only: who sent it, even when the datagram is bad.
        source = IPv4(datagram[12:16]) if len(datagram) >= 20 else None
        if interface is None:
            return self._drop("unknown interface", source, f"interface {ifindex}")
        try:
            ip = IPv4Datagram.from_bytes(datagram)
            advert = Advertisement.from_bytes(ip.payload)
        except PacketError as error:
            return self._drop(error.reason, source, interface.name, error.detail)
        problem = self._from_the_link(interface, ip, advert, now)
        if problem is not None:
            reason, detail = problem
            return self._drop(reason, source, interface.name, detail)
        entries = [entry for entry in advert.entries if interface.on_link(entry.address)]
        if not entries:
            return self._drop("off-link address", source, interface.name, _off_link(advert, interface))
        refused = [entry for entry in entries if not self._admitted(entry.address)]
        entries = [entry for entry in entries if self._admitted(entry.address)]
        if not entries:
            return self._drop("not in routers", source, interface.name,
                              f"{', '.join(str(e.address) for e in refused[:3])} not in [router] routers")
        self.heard_advertisement = True
        schedule = self.schedules[ifindex]
        schedule.fire(ADVERTISED)
        for entry in entries:
            self._learn(interface, entry.address, entry.preference, advert.lifetime, now, source)
        self._decide()

    def _from_the_link(self, interface: Interface, ip: IPv4Datagram, advert: Advertisement,
                       now: float) -> tuple[str, str] | None:
        """Why this advertisement cannot have come from a router on the link, or None.

        RFC 1256 section 4.1: a router sends to 224.0.0.1 or 255.255.255.255
        (with IP TTL 1), or unicast to a host that solicited; its source is
        its address on the link.  Debian 12's FRR 8.4 writes its source
        byte-swapped (docs/router.md): accepted when the swapped address is
        on the link and is one of the advertised Router Addresses, i.e. the
        sender's own address, as FRR advertises.
        """
        destination = ip.destination
        if destination not in (ALL_SYSTEMS, LIMITED_BROADCAST):
            if not interface.owns(destination):
                return "wrong destination", f"to {destination}, not 224.0.0.1, 255.255.255.255 or this host"
            schedule = self.schedules.get(interface.index)
            last = schedule.last_sent if schedule is not None else None
            if last is None or now - last > SOLICITED_REPLY_WINDOW:
                return "unsolicited unicast", f"to {destination}, no solicitation of ours in the last " \
                                              f"{SOLICITED_REPLY_WINDOW:g} s"
        source = ip.source
        if interface.on_link(source):
            return None
        swapped = IPv4(source.packed[::-1])
        if interface.on_link(swapped) and any(entry.address == swapped for entry in advert.entries):
            return None
        return "off-link source", f"{source} not on {', '.join(str(own.network) for own in interface.addresses)}"

    def _admitted(self, address: IPv4) -> bool:
        allowed = self.settings.allowed
        return not allowed or any(address in network for network in allowed)

    def kernel_routes_observed(self, routes: list[KernelRoute] | tuple[KernelRoute, ...]) -> None:
        """The IPv4 default routes in the kernel's main table right now."""
        self.kernel_routes = tuple(routes)
        self._decide()

    def timer_fired(self, now: float) -> None:
        for index, schedule in self.schedules.items():
            if schedule.due is not None and schedule.due <= now:
                self._solicit(self.interfaces[index], schedule, now)
        for router in list(self.routers.values()):
            if router.expires_at <= now:
                self._forget(router, "lifetime ran out")
        self._decide()

    # --- outputs

    def deadline(self) -> float | None:
        times = [s.due for s in self.schedules.values() if s.due is not None]
        times += [r.expires_at for r in self.routers.values()]
        return min(times, default=None)

    def drain(self) -> list:
        effects, self._effects = self._effects, []
        return effects

    @property
    def default_routers(self) -> tuple[IPv4, ...]:
        return self.chosen[0]

    @property
    def source(self) -> str | None:
        return self.chosen[1]

    def status(self, now: float) -> report.RouterStatus:
        """The router part of status (the service adds ``discovery``, the links it skips and the IPv6 routes)."""
        routers, source = self.chosen
        return report.RouterStatus(
            default=str(routers[0]) if routers else None,
            source=source,
            routers=tuple(
                report.RouterEntryStatus(str(r.address), r.interface, r.preference,
                                         round(max(0.0, r.expires_at - now), 1))
                for r in sorted(self.routers.values(), key=_Router.rank)
            ),
            interfaces=tuple(
                report.InterfaceStatus(self.interfaces[i].name, s.state, s.sent)
                for i, s in sorted(self.schedules.items())
            ),
            default_routes=tuple(
                report.KernelRouteStatus(str(r.gateway) if r.gateway else None, r.ifindex, r.proto == RTPROT_RA)
                for r in self.kernel_routes or ()
            ),
            dropped=dict(sorted(self.dropped.items())),
        )

    # --- internals

    def _solicit(self, interface: Interface, schedule: _Schedule, now: float) -> None:
        last = schedule.sent + 1 >= MAX_SOLICITATIONS
        schedule.fire(SEND_LAST if last else SEND)
        schedule.sent += 1
        schedule.last_sent = now
        if not last:
            schedule.due = now + SOLICITATION_INTERVAL
        destination = ALL_ROUTERS if interface.multicast else LIMITED_BROADCAST
        self._effects.append(SendSolicitation(interface.index, destination, bytes(Solicitation())))

    def _learn(self, interface: Interface, address: IPv4, preference: int, lifetime: int, now: float,
               source: IPv4) -> None:
        known = self.routers.get(address)
        if lifetime == 0:
            if known is not None:
                self._forget(known, "advertised lifetime 0")
            return
        if known is None:
            newcomer = _Router(address, interface.index, interface.name, preference, now + lifetime)
            if len(self.routers) >= self.capacity and not self._evict_worse_than(newcomer):
                return self._drop("router table full", source, interface.name,
                                  f"{address} not admitted: {self.capacity} routers known, none worse")
            self.routers[address] = newcomer
            eligibility = "" if newcomer.may_be_default else ", never a default (preference 0x80000000)"
            self._log(INFO, f"router {address} learned on {interface.name}, preference {preference}{eligibility}")
            return
        known.ifindex, known.interface = interface.index, interface.name
        known.preference, known.expires_at = preference, now + lifetime

    def _evict_worse_than(self, newcomer: _Router) -> bool:
        worst = max(self.routers.values(), key=_Router.rank)
        # Only a strictly better preference evicts, so a flood of equals cannot churn the table.
        if worst.rank()[:2] <= newcomer.rank()[:2]:
            return False
        del self.routers[worst.address]
        return True

    def _forget(self, router: _Router, why: str) -> None:
        del self.routers[router.address]
        self._log(INFO, f"router {router.address} on {router.interface} lost: {why}")

    def _drop(self, reason: str, source: IPv4 | None, where: str, detail: str = "") -> None:
        """Count a dropped advertisement; say why in one line per (source, reason), DROP_LOG_LIMIT at most."""
        self.dropped[reason] = self.dropped.get(reason, 0) + 1
        key = (source, reason)
        if key in self._drop_logged or self._drop_log_full:
            return
        if len(self._drop_logged) >= DROP_LOG_LIMIT:
            self._drop_log_full = True
            self._log(WARNING, f"{DROP_LOG_LIMIT} kinds of dropped router advertisement logged; from now on "
                               "they are only counted (router.dropped in status)")
            return
        self._drop_logged.add(key)
        sender = f"from {source}" if source is not None else "shorter than an IP header"
        self._log(WARNING, f"router advertisement {sender} on {where} ignored: {reason}"
                           + (f" ({detail})" if detail else ""))

    def _log(self, level: int, message: str) -> None:
        self._effects.append(Log(level, message))

    def _choose(self) -> tuple[tuple[IPv4, ...], str | None, tuple[IPv4, int | None] | None]:
        """(default routers best first, their source, the route bootres should hold or None)."""
        usable = [r for r in sorted(self.routers.values(), key=_Router.rank) if r.may_be_default]
        foreign = [r for r in self.kernel_routes or () if r.proto != RTPROT_RA]
        if foreign:
            first = tuple(r.gateway for r in foreign if r.gateway is not None)
            rest = tuple(r.address for r in usable if r.address not in first)
            return first + rest, "netlink", None
        if usable:
            return tuple(r.address for r in usable), "rdisc", (usable[0].address, usable[0].ifindex)
        if self.remembered and not self.heard_advertisement:
            return self.remembered, "file", (self.remembered[0], None)
        static = self.settings.static
        if static:
            return static, "static", (static[0], None)
        return (), None, None

    def _decide(self) -> None:
        routers, source, wanted = self._choose()
        if (routers, source) != self.chosen:
            self.chosen = (routers, source)
            self._effects.append(RoutersChanged(routers, source))
        if self.kernel_routes is None:
            return
        # With install_route off bootres holds no route: one of ours in the
        # kernel (from before a reload, or left by an earlier run) goes.
        if not self.settings.install_route:
            self._steer_route(None, "install_route = no")
        elif source == "netlink":
            self._steer_route(None, "a default route bootres did not install is in place")
        else:
            self._steer_route(wanted, "no default router known")

    def _steer_route(self, wanted: tuple[IPv4, int | None] | None, why_none: str) -> None:
        """Compare the route we want with what the kernel has, and ask for the difference.

        Runs after every decision and after every netlink observation, so a
        route that failed to install is asked for again at the next one.
        """
        own = [r for r in self.kernel_routes if r.proto == RTPROT_RA]
        if wanted is None:
            if own:
                self._effects.append(ClearDefaultRoute(why_none))
                self.kernel_routes = tuple(r for r in self.kernel_routes if r.proto != RTPROT_RA)
            return
        gateway, ifindex = wanted
        if len(own) == 1 and own[0].gateway == gateway and ifindex in (None, own[0].ifindex):
            return
        self._effects.append(SetDefaultRoute(gateway, ifindex))
        # Assume it worked until the next observation says otherwise.
        others = tuple(r for r in self.kernel_routes if r.proto != RTPROT_RA)
        self.kernel_routes = others + (KernelRoute(gateway, ifindex, RTPROT_RA),)


def _off_link(advert: Advertisement, interface: Interface) -> str:
    """Why no advertised address counts: the first few of them against the interface's subnets."""
    shown = ", ".join(str(entry.address) for entry in advert.entries[:3])
    more = f" and {len(advert.entries) - 3} more" if len(advert.entries) > 3 else ""
    subnets = ", ".join(str(own.network) for own in interface.addresses)
    return f"{shown}{more} not on {subnets}"


def describe_ipv6_defaults(routes, names: dict[int, str]) -> tuple[report.Ipv6RouteStatus, ...]:
    """The kernel's IPv6 default routes as ``status`` shows them; bootres only reads them.

    ``routes`` are ``netlink.DefaultRoute6`` (gateway, ifindex, proto,
    metric); ``names`` maps ifindex to interface name.  ``origin`` is how
    the kernel got the route: ``ra`` (learned from an IPv6 Router
    Advertisement), ``dhcp``, ``static``, ``boot``, ``kernel``, else the
    protocol number as text (one JSON type for the field).
    """
    return tuple(
        report.Ipv6RouteStatus(
            gateway=str(route.gateway) if route.gateway else None,
            interface=names.get(route.ifindex),
            origin=ROUTE_ORIGINS.get(route.proto, str(route.proto)),
            metric=route.metric,
        )
        for route in routes
    )
