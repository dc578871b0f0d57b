"""RouterService: RFC 1256 discovery and the default route, as an asyncio service.

The thin shell around ``bootres.core.router.RouterDiscovery``: it feeds the
core advertisements from the ICMP sockets, netlink snapshots and timer
ticks, and carries out the core's effects (send a solicitation, set or
clear the route, tell ``on_change`` about the router list, log).

Netlink is polled every ``poll_interval`` seconds (links, addresses,
default routes) on one worker thread; a poll is cheap and works the same
with every pyroute2 version, where event subscriptions do not.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import random
from typing import Callable

from bootres.config import RouterConfig
from bootres.core import etcfiles
from bootres.core.rdisc import MAX_SOLICITATION_DELAY
from bootres.core.router import (
    ClearDefaultRoute,
    Interface,
    Log,
    RouterDiscovery,
    RoutersChanged,
    SendSolicitation,
    SetDefaultRoute,
)
from bootres.shell import icmpio, netlinkio
from bootres.shell.fileio import read_bytes

# A DHCP client's route shows in status at most this late (measured in tests/boot/test_setups.py:
# NetworkManager adds it after bootres started). Netlink events would make it immediate.
DEFAULT_POLL_INTERVAL = 1.0


class RouterService:
    """Router discovery and the default route; see docs/internals.md for how the daemon uses it.

    ``on_change(routers)`` gets the default router list (addresses as text,
    most preferred first) at start and whenever it changes.
    """

    def __init__(
        self,
        cfg: RouterConfig,
        log: logging.Logger,
        on_change: Callable[[list[str]], None],
        *,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
    ):
        self.cfg = cfg
        self.log = log
        self.on_change = on_change
        self.poll_interval = poll_interval
        self.rng = random.SystemRandom()  # draws each interface's solicitation delay for the core
        self.core: RouterDiscovery | None = None
        self.sockets: dict[int, icmpio.IcmpSocket] = {}
        self._netlink = netlinkio.Netlink()
        self._worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="bootres-netlink")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._poller: asyncio.Task | None = None
        self._route_ops: set[asyncio.Future] = set()
        self._extra_polls: set[asyncio.Task] = set()  # referenced so they are not collected mid-flight
        self._netlink_failing = False
        self._route_problem: str | None = None
        self._socket_failed: set[int] = set()

    # --- lifecycle

    async def start(self) -> None:
        """Read last boot's /etc/defaultrouter, the kernel's state, open sockets, start soliciting."""
        self._loop = asyncio.get_running_loop()
        self.core = RouterDiscovery(
            solicit=self.cfg.solicit,
            install_route=self.cfg.install_route,
            static=self.cfg.static,
            remembered=self._remembered_routers(),
        )
        self._pump()
        await self._poll_once()
        self._poller = asyncio.create_task(self._poll_forever(), name="bootres-router-poll")

    async def stop(self) -> None:
        """Close sockets and stop polling.  The route stays: a restart must not cut the host off."""
        polls = [t for t in (self._poller, *self._extra_polls) if t is not None]
        for task in polls:
            task.cancel()
        await asyncio.gather(*polls, return_exceptions=True)
        if self._timer is not None:
            self._timer.cancel()
        if self._route_ops:
            await asyncio.gather(*self._route_ops, return_exceptions=True)
        for index in list(self.sockets):
            icmpio.detach(self._loop, self.sockets.pop(index))
        await self._loop.run_in_executor(self._worker, self._netlink.close)
        self._worker.shutdown(wait=False)

    def reconfigure(self, cfg: RouterConfig) -> None:
        """Take a new [router] section, keeping the router table; interfaces follow at the next poll."""
        self.cfg = cfg
        self.core.reconfigure(solicit=cfg.solicit, install_route=cfg.install_route, static=cfg.static)
        self._pump()
        task = asyncio.ensure_future(self._poll_once())
        self._extra_polls.add(task)
        task.add_done_callback(self._extra_polls.discard)

    # --- what the daemon reads

    def status(self) -> dict:
        """The SPEC's ``router`` object, plus interfaces, kernel default routes and drop counts."""
        return {"discovery": self.cfg.discovery, **self.core.status(self._loop.time())}

    # --- inputs

    def _remembered_routers(self) -> tuple:
        path = self.cfg.defaultrouter_file
        if not path:
            return ()
        try:
            data = read_bytes(path)
        except OSError as error:
            self.log.warning(f"cannot read {path}: {error.strerror}")
            return ()
        return etcfiles.parse_defaultrouter(data.decode("ascii", "replace")) if data else ()

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval)
            await self._poll_once()

    async def _poll_once(self) -> None:
        try:
            snapshot = await self._loop.run_in_executor(self._worker, self._netlink.snapshot)
        except Exception as error:  # netlink trouble must not end the service
            if not self._netlink_failing:
                self.log.warning(f"cannot read interfaces and routes over netlink: {error}; retrying")
            self._netlink_failing = True
            return
        self._netlink_failing = False
        now = self._loop.time()
        wanted = {link.index: link for link in snapshot.links if self._eligible(link)}
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
        self._pump()

    def _eligible(self, link: netlinkio.Link) -> bool:
        """SPEC: every up, non-loopback interface with IPv4 broadcast or multicast (or the named ones)."""
        if not self.cfg.discovery or not link.up or not link.addresses:
            return False
        if self.cfg.interfaces:
            return link.name in self.cfg.interfaces
        return not link.loopback and (link.broadcast or link.multicast)

    def _open_socket(self, link: netlinkio.Link) -> bool:
        try:
            icmp = icmpio.IcmpSocket(link.index, link.name, link.multicast)
        except OSError as error:
            if link.index not in self._socket_failed:  # said once, retried at every poll
                self.log.warning(f"cannot open an ICMP socket on {link.name}: {error.strerror or error}")
            self._socket_failed.add(link.index)
            return False
        self._socket_failed.discard(link.index)
        icmpio.attach(self._loop, icmp, self._datagram)
        self.sockets[link.index] = icmp
        return True

    def _close_socket(self, index: int) -> None:
        icmp = self.sockets.pop(index, None)
        if icmp is not None:
            icmpio.detach(self._loop, icmp)

    def _datagram(self, data: bytes, ifindex: int) -> None:
        self.core.datagram_received(data, ifindex, self._loop.time())
        self._pump()

    def _tick(self) -> None:
        self._timer = None
        self.core.timer_fired(self._loop.time())
        self._pump()

    # --- effects

    def _pump(self) -> None:
        """Carry out what the core asked for, then re-arm its one timer."""
        for effect in self.core.drain():
            if isinstance(effect, SendSolicitation):
                self._send(effect)
            elif isinstance(effect, SetDefaultRoute):
                self._route_op(self._netlink.set_default_route, effect.gateway, effect.ifindex)
            elif isinstance(effect, ClearDefaultRoute):
                self._route_op(self._netlink.clear_default_route)
            elif isinstance(effect, RoutersChanged):
                self._routers_changed(effect)
            elif isinstance(effect, Log):
                self.log.log(logging.WARNING if effect.level == "warning" else logging.INFO, effect.message)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self.core.deadline()
        if deadline is not None:
            self._timer = self._loop.call_at(deadline, self._tick)

    def _send(self, effect: SendSolicitation) -> None:
        icmp = self.sockets.get(effect.ifindex)
        if icmp is None:
            return
        try:
            icmp.send(effect.destination, effect.payload)
        except OSError as error:
            self.log.warning(f"cannot send a router solicitation on {icmp.ifname}: {error.strerror or error}")
            return
        self.log.debug("router solicitation sent on %s to %s", icmp.ifname, effect.destination)

    def _route_op(self, operation, *args) -> None:
        future = self._loop.run_in_executor(self._worker, operation, *args)
        self._route_ops.add(future)
        future.add_done_callback(lambda done: self._route_done(done, operation, args))

    def _route_done(self, done: asyncio.Future, operation, args) -> None:
        self._route_ops.discard(done)
        if done.cancelled():
            return
        error = done.exception()
        if operation == self._netlink.set_default_route:
            gateway, ifindex = args
            where = f" dev {self.sockets[ifindex].ifname}" if ifindex in self.sockets else ""
            problem = f"cannot install the default route via {gateway}{where}: {error}"
            success = f"default route via {gateway}{where} installed"
        else:
            problem = f"cannot remove bootres's default route: {error}"
            success = "bootres's default route removed" if error is None and done.result() else None
        if error is not None:
            # The core asks again at every poll; say it once until something changes.
            if problem != self._route_problem:
                self.log.warning("%s", problem, extra={"topic": "default-route"})
            self._route_problem = problem
            return
        self._route_problem = None
        if success:
            self.log.info("%s", success, extra={"resolves": "default-route"})

    def _routers_changed(self, effect: RoutersChanged) -> None:
        routers = [str(r) for r in effect.routers]
        if routers:
            # A route that exists now, installed or found, ends any earlier failure to install one.
            self.log.info("default router %s (from %s)", routers[0], effect.source,
                          extra={"resolves": ("no-router", "default-route") if effect.source == "netlink" else "no-router"})
        else:
            self.log.warning("no default router known", extra={"topic": "no-router"})
        self.on_change(routers)

