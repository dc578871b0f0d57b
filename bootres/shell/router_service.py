"""RouterService: RFC 1256 discovery and the default route, as an asyncio service.

The thin shell around ``bootres.core.router.RouterDiscovery``: it feeds the
core advertisements from the ICMP sockets, the kernel's state from the
daemon's ``NetlinkWatch`` and timer ticks, and carries out the core's
effects (send a solicitation, set or clear the route, tell ``on_change``
about the router list, log).

It owns no netlink socket and no thread.  Links, addresses and default
routes arrive as snapshots the watch delivers on the loop when they change;
route changes are coroutines of the watch, run on its one worker thread so
they stay in order with its dumps.  What failed (a route change, opening an
ICMP socket) is tried again ``RETRY_INTERVAL`` later: the kernel did not
change, so no snapshot would come to retry it.

Lifecycle: the daemon starts the watch, then ``start()``; on the way down
``stop()``, then the watch's ``stop()``.  After ``stop()`` nothing is armed,
sent or submitted; route changes under way are awaited.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import ipaddress
import logging
import os
import random
from typing import Callable

from bootres.config import RouterConfig
from bootres.core import report
from bootres.core.rdisc import MAX_SOLICITATION_DELAY
from bootres.core.router import (
    ClearDefaultRoute,
    Interface,
    RouterDiscovery,
    RoutersChanged,
    SendSolicitation,
    SetDefaultRoute,
    describe_ipv6_defaults,
    discovery_links,
)
from bootres.settings import router_settings
from bootres.shell import netlink, rdisc_io
from bootres.shell.core_driver import CoreDriver
from bootres.shell.errorlog import Problems
from bootres.shell.netwatch import NetlinkWatch

RETRY_INTERVAL = 5.0  # seconds before a failed route change or ICMP socket is tried again


class RouterService:
    """Router discovery and the default route; see docs/internals.md for how the daemon uses it.

    ``on_change(routers)`` gets the default router list (addresses as text,
    most preferred first) at start and whenever it changes.  ``netlink`` is
    the daemon's one ``NetlinkWatch``, started before ``start()`` and
    stopped after ``stop()``.  ``remembered``: last boot's routers, the
    first guess until discovery knows better (source ``file``); the stub
    files read them from /etc/defaultrouter, the file they own.
    """

    def __init__(self, cfg: RouterConfig, log: logging.Logger, on_change: Callable[[list[str]], None],
                 netlink: NetlinkWatch, remembered: tuple[ipaddress.IPv4Address, ...] = (),
                 problems: Problems | None = None):
        self.cfg = cfg
        self.remembered = tuple(remembered)
        self.log = log
        self.problems = problems or Problems(log)  # the route that cannot be installed, no router known
        self.on_change = on_change
        self.rng = random.SystemRandom()  # draws each interface's solicitation delay for the core
        self.core = RouterDiscovery(router_settings(cfg), remembered=self.remembered)
        self.driver = CoreDriver(self.core, log)
        self.sockets: dict[int, rdisc_io.IcmpSocket] = {}
        self._netlink = netlink
        self._snapshot: netlink.Snapshot | None = None  # the last one observed
        self._loop: asyncio.AbstractEventLoop | None = None
        self._retry: asyncio.TimerHandle | None = None
        self._route_tasks: set[asyncio.Task] = set()  # referenced so they are not collected mid-flight
        self._route_problem: str | None = None
        self._socket_failed: set[int] = set()
        self._skipped: dict[str, str] = {}  # interface name -> why discovery does not run there (said once)

    # --- lifecycle

    async def start(self) -> None:
        """Start from last boot's routers, then follow the watch's snapshots and the ICMP sockets."""
        self._loop = asyncio.get_running_loop()
        self.driver.start(self._loop, {
            SendSolicitation: self._send,
            SetDefaultRoute: lambda effect: self._change_route(self._set_route(effect)),
            ClearDefaultRoute: lambda effect: self._change_route(self._clear_route(effect)),
            RoutersChanged: self._routers_changed,
        })
        self._netlink.subscribe(self._observe)  # delivers the current snapshot at once

    async def stop(self) -> None:
        """Close the sockets, disarm the timers, let route changes under way finish.

        The route stays: a restart must not cut the host off (the next start
        reconciles it).
        """
        self.driver.stop()
        if self._retry is not None:
            self._retry.cancel()
        self._retry = None
        for index in list(self.sockets):
            self._close_socket(index)
        # The watch runs them on its worker, which outlives us: wait, so a
        # change asked for is done (and logged) before the watch goes.
        await asyncio.gather(*self._route_tasks, return_exceptions=True)

    def prepare_reconfigure(self, cfg: RouterConfig) -> Callable[[], None]:
        """Everything a new [router] section needs, built now; the returned step takes it (the daemon's reload).

        The step keeps the router table; interfaces and the route follow at once.
        """
        settings = router_settings(cfg)

        def commit() -> None:
            self.cfg = cfg
            self.core.reconfigure(settings)
            self.driver.pump()
            if self._snapshot is not None:
                self._observe(self._snapshot)

        return commit

    # --- what the daemon reads

    def status(self) -> report.RouterStatus:
        """The SPEC's ``router`` object, plus interfaces, kernel default routes (IPv4 and IPv6) and drops."""
        snapshot = self._snapshot
        ipv6 = ()
        if snapshot is not None:
            names = {link.index: link.name for link in snapshot.links}
            ipv6 = describe_ipv6_defaults(snapshot.default_routes6, names)
        return self.core.status(self.driver.now())._replace(
            discovery=self.cfg.discovery, skipped_interfaces=dict(sorted(self._skipped.items())),
            ipv6_default_routes=ipv6)

    # --- inputs

    def _observe(self, snapshot: netlink.Snapshot) -> None:
        """A new view of the kernel (the watch calls this on the loop)."""
        if not self.driver.running:
            return
        self._snapshot = snapshot
        now = self.driver.now()
        wanted = {link.index: link for link in self._eligible(snapshot)}
        for index in [i for i in self.core.interfaces if i not in wanted]:
            self._close_socket(index)
            self.core.remove_interface(index)
        for link in wanted.values():
            interface = Interface(link.index, link.name, link.addresses, link.multicast)
            if link.index not in self.sockets and not self._open_socket(link):
                continue
            if self.core.interfaces.get(link.index) != interface:
                self.core.set_interface(interface, now, self.rng.uniform(0.0, MAX_SOLICITATION_DELAY))
        self.core.kernel_routes_observed(snapshot.default_routes)
        self.driver.pump()

    def _eligible(self, snapshot: netlink.Snapshot) -> list[netlink.Link]:
        """The links discovery runs on: those named in ``interfaces``, else the host's uplinks (``discovery_links``).

        A link left out for being the container or VM side is said once, by
        name: its packets are never read, so nothing there is logged later.
        """
        if not self.cfg.discovery:
            return []
        if self.cfg.interfaces:
            return [link for link in snapshot.links
                    if link.up and link.addresses and link.name in self.cfg.interfaces]
        uplinks = {route.ifindex for route in (*snapshot.default_routes, *snapshot.default_routes6)}
        verdicts = discovery_links(list(snapshot.links), uplinks)
        skipped = {link.name: verdicts[link.index] for link in snapshot.links if verdicts.get(link.index)}
        for name, why in skipped.items():
            if self._skipped.get(name) != why:
                self.log.info("router discovery not on %s: %s (name it in [router] interfaces to run there)",
                              name, why)
        self._skipped = skipped
        return [link for link in snapshot.links if link.index in verdicts and verdicts[link.index] is None]

    def _open_socket(self, link: netlink.Link) -> bool:
        try:
            icmp = rdisc_io.IcmpSocket(link.index, link.name, link.multicast)
        except OSError as error:
            if link.index not in self._socket_failed:  # said once, tried again every RETRY_INTERVAL
                self.log.warning("cannot open an ICMP socket on %s: %s", link.name, error.strerror or error)
            self._socket_failed.add(link.index)
            self._retry_later()
            return False
        self._socket_failed.discard(link.index)
        rdisc_io.attach(self._loop, icmp, functools.partial(self.driver.feed, self.core.datagram_received))
        self.sockets[link.index] = icmp
        return True

    def _close_socket(self, index: int) -> None:
        icmp = self.sockets.pop(index, None)
        if icmp is not None:
            rdisc_io.detach(self._loop, icmp)

    def _retry_later(self) -> None:
        if self._retry is None and self.driver.running:
            self._retry = self._loop.call_later(RETRY_INTERVAL, self._retry_now)

    def _retry_now(self) -> None:
        # The kernel still looks like the last snapshot: observing it again
        # reopens missing sockets and has the core ask for the route again.
        self._retry = None
        if self._snapshot is not None:
            self._observe(self._snapshot)

    # --- effects (the driver calls these)

    def _send(self, effect: SendSolicitation) -> None:
        icmp = self.sockets.get(effect.ifindex)
        if icmp is None:
            return
        try:
            icmp.send(effect.destination, effect.payload)
        except OSError as error:
            self.log.warning("cannot send a router solicitation on %s: %s", icmp.ifname, error.strerror or error)
            return
        self.log.debug("router solicitation sent on %s to %s", icmp.ifname, effect.destination)

    def _change_route(self, change) -> None:
        task = self._loop.create_task(change, name="bootres-default-route")
        self._route_tasks.add(task)
        task.add_done_callback(self._route_tasks.discard)

    async def _set_route(self, effect: SetDefaultRoute) -> None:
        icmp = self.sockets.get(effect.ifindex)
        where = f" dev {icmp.ifname}" if icmp is not None else ""
        try:
            await self._netlink.set_default_route(effect.gateway, effect.ifindex)
        except Exception as error:  # pyroute2's NetlinkError is not an OSError
            if _code(error) == errno.ENETUNREACH:
                # No link has an address on the router's network yet: at boot, last boot's router before
                # DHCP has configured the link.  Expected, and retried when the addresses change.
                return self._route_waits(f"default route via {effect.gateway}{where} waits for an address "
                                         "on its network")
            return self._route_failed(f"cannot install the default route via {effect.gateway}{where}: "
                                      f"{_why(error)}")
        self._route_problem = None
        self.problems.solved("default-route", "default route via %s%s installed", effect.gateway, where)

    async def _clear_route(self, effect: ClearDefaultRoute) -> None:
        try:
            removed = await self._netlink.clear_default_route()
        except Exception as error:  # pyroute2's NetlinkError is not an OSError
            return self._route_failed(f"cannot remove bootres's default route: {_why(error)}")
        self._route_problem = None
        if removed:
            self.problems.solved("default-route", "bootres's default route removed: %s", effect.why)

    def _route_failed(self, problem: str) -> None:
        # Tried again every RETRY_INTERVAL; said once until something changes.
        if problem != self._route_problem:
            self.problems.problem("default-route", "%s", problem)
        self._route_problem = problem
        self._retry_later()

    def _route_waits(self, why: str) -> None:
        """Not a fault: said once at INFO, kept out of status errors, tried again as a failure is."""
        if why != self._route_problem:
            self.log.info("%s", why)
        self._route_problem = why
        self._retry_later()

    def _routers_changed(self, effect: RoutersChanged) -> None:
        routers = [str(r) for r in effect.routers]
        if routers:
            self.problems.solved("no-router", "default router %s (from %s)", routers[0], effect.source)
            if effect.source == "netlink":
                # A route that exists now, installed or found, ends any earlier failure to install one.
                self.problems.solved("default-route")
        else:
            self.problems.problem("no-router", "no default router known")
        self.on_change(routers)


def _code(error: Exception) -> int | None:
    """An OSError's errno or a pyroute2 NetlinkError's code."""
    code = getattr(error, "errno", None) or getattr(error, "code", None)
    return code if isinstance(code, int) and code > 0 else None


def _why(error: Exception) -> str:
    """An OSError's or pyroute2 NetlinkError's reason in words, not a tuple."""
    if getattr(error, "strerror", None):
        return error.strerror
    code = _code(error)
    return os.strerror(code) if code else str(error)
