"""NetlinkWatch: one event-driven view of the kernel's links, addresses and default routes.

Router discovery and the stub files both need to know the interfaces,
this host's addresses and the default routes, and need to know at once
when a DHCP client or an admin changes them.  One watch serves both:

- a netlink socket subscribed to link, IPv4/IPv6 address and route
  notifications is a doorbell.  The notifications themselves are never
  parsed: any of them (or an overrun, ENOBUFS, which means some were lost)
  schedules a fresh dump a few milliseconds later, so a burst (a DHCP lease
  adds an address, then routes) costs one dump and a lost notification can
  never leave a stale view;
- the dump is ``netlink.Netlink.snapshot`` (pyroute2), run on the one
  worker thread that also carries out route changes, so they stay in
  order.  The worker returns an immutable ``Snapshot``; subscribers are
  called with it on the event loop, only when it differs from the last.

Nothing is polled.  A dump that fails is logged once and retried every
``retry_interval`` until one works.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ipaddress
import logging
import socket
from typing import Callable

from bootres.shell import netlink
from bootres.shell.errorlog import Problems

# linux/rtnetlink.h multicast groups (the legacy bitmask form, which bind() takes).
_RTMGRP_LINK = 0x1
_RTMGRP_IPV4_IFADDR = 0x10
_RTMGRP_IPV4_ROUTE = 0x40
_RTMGRP_IPV6_IFADDR = 0x100
_RTMGRP_IPV6_ROUTE = 0x400
_GROUPS = _RTMGRP_LINK | _RTMGRP_IPV4_IFADDR | _RTMGRP_IPV4_ROUTE | _RTMGRP_IPV6_IFADDR | _RTMGRP_IPV6_ROUTE

# A DHCP client adds the address and then its routes within a few ms: wait
# this long after the first notification so one dump sees them all.
DEFAULT_SETTLE = 0.01
DEFAULT_RETRY_INTERVAL = 5.0
_RECEIVE_BUFFER = 1 << 20  # notifications are read only to be dropped; an overrun just means one more dump

Subscriber = Callable[[netlink.Snapshot], None]


class NetlinkWatch:
    """See the module docstring.  ``latest`` is the last snapshot (None before ``start``)."""

    def __init__(self, log: logging.Logger, *, settle: float = DEFAULT_SETTLE,
                 retry_interval: float = DEFAULT_RETRY_INTERVAL, problems: Problems | None = None):
        """``problems``: where an unreadable netlink is reported (``status``'s errors); default: the log only."""
        self.log = log
        self.problems = problems or Problems(log)
        self.settle = settle
        self.retry_interval = retry_interval
        self.latest: netlink.Snapshot | None = None
        self.dumps = 0  # for status and tests: how many times the kernel's state was read
        self._subscribers: list[Subscriber] = []
        self._netlink = netlink.Netlink()  # used on the worker thread only
        self._worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="bootres-netlink")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._doorbell: socket.socket | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._reading: asyncio.Task | None = None
        self._again = False  # rung while a dump was running: dump once more after it
        self._failing = False
        self._stopped = False

    def subscribe(self, subscriber: Subscriber) -> None:
        """Call ``subscriber(snapshot)`` on the loop with every new snapshot (and the current one, if any)."""
        self._subscribers.append(subscriber)
        if self.latest is not None:
            subscriber(self.latest)

    # --- lifecycle

    async def start(self) -> None:
        """Subscribe, then read the kernel's state once; OSError when netlink cannot be used at all."""
        self._loop = asyncio.get_running_loop()
        doorbell = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC,
                                 socket.NETLINK_ROUTE)
        try:
            doorbell.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RECEIVE_BUFFER)
            # Bound before the first dump: a change between the two still rings.
            doorbell.bind((0, _GROUPS))
        except OSError:
            doorbell.close()
            raise
        self._doorbell = doorbell
        self._loop.add_reader(doorbell.fileno(), self._rang)
        self._reading = asyncio.current_task()
        try:
            snapshot = await self._dump()
        finally:
            self._reading = None
        self._deliver(snapshot)
        if self._again:
            self._again = False
            self._schedule(0.0)

    async def stop(self) -> None:
        """Stop listening; route changes already asked for finish first.  Nothing is scheduled afterwards."""
        self._stopped = True
        if self._doorbell is not None:
            self._loop.remove_reader(self._doorbell.fileno())
            self._doorbell.close()
            self._doorbell = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._reading is not None and self._reading is not asyncio.current_task():
            await asyncio.gather(self._reading, return_exceptions=True)
        if self._loop is not None:
            await self._loop.run_in_executor(self._worker, self._netlink.close)
        self._worker.shutdown(wait=True)

    # --- route changes, in order with the dumps

    async def set_default_route(self, gateway: ipaddress.IPv4Address, ifindex: int | None) -> None:
        await self._on_worker(self._netlink.set_default_route, gateway, ifindex)

    async def clear_default_route(self) -> int:
        return await self._on_worker(self._netlink.clear_default_route)

    async def add_host_address(self, address: ipaddress.IPv4Address, ifindex: int) -> None:
        await self._on_worker(self._netlink.add_host_address, address, ifindex)

    async def _on_worker(self, operation, *args):
        if self._stopped:
            raise RuntimeError("the netlink watch is stopped")
        return await self._loop.run_in_executor(self._worker, operation, *args)

    # --- the doorbell

    def _rang(self) -> None:
        while True:
            try:
                if not self._doorbell.recv(65536):
                    break
            except BlockingIOError:
                break
            except OSError:  # ENOBUFS: notifications were lost, which a dump makes up for
                break
        self._schedule(self.settle)

    def _schedule(self, delay: float) -> None:
        if self._stopped:
            return
        if self._reading is not None:
            self._again = True
        elif self._timer is None:
            self._timer = self._loop.call_later(delay, self._begin)

    def _begin(self) -> None:
        self._timer = None
        self._reading = asyncio.ensure_future(self._refresh())

    async def _refresh(self) -> None:
        try:
            snapshot = await self._dump()
        except Exception as error:  # pyroute2's NetlinkError is not an OSError
            if not self._failing:
                self.problems.problem("netlink", "cannot read interfaces and routes over netlink: %s; retrying"
                                      " every %g s", getattr(error, "strerror", None) or error, self.retry_interval)
            self._failing = True
            snapshot = None
        finally:
            self._reading = None
        if snapshot is None:
            self._schedule(self.retry_interval)
            return
        if self._failing:
            self._failing = False
            self.problems.solved("netlink", "netlink readable again")
        self._deliver(snapshot)
        if self._again:
            self._again = False
            self._schedule(0.0)

    async def _dump(self) -> netlink.Snapshot:
        snapshot = await self._loop.run_in_executor(self._worker, self._netlink.snapshot)
        self.dumps += 1
        return snapshot

    def _deliver(self, snapshot: netlink.Snapshot) -> None:
        if self._stopped or snapshot == self.latest:
            return
        self.latest = snapshot
        for subscriber in self._subscribers:
            try:
                subscriber(snapshot)
            except Exception:  # our bug in one user must not starve the other
                self.log.exception("handling a netlink change failed")
