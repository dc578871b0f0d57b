"""ContainerAddress: ``[resolver] container_listen`` kept on lo, and the container side told to the resolver.

A NetlinkWatch subscriber (bootres/core/containerside.py decides, from each
snapshot, which interfaces are the container side and whether the address
is on lo).  bootres.socket's ExecStartPre puts the address on lo before
anything runs; this puts it back whenever it goes (``ip address flush dev
lo``, a network manager that manages lo), with one log line, so containers'
queries never leave the host for a router that does not know the address.
It stays on lo when bootres stops (docs/containers.md): a container's query
then fails at once (port unreachable) instead of going out through the
default route.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

from bootres.config import Endpoint
from bootres.core import containerside


class ContainerAddress:
    def __init__(self, endpoint: Endpoint, log: logging.Logger, watch,
                 on_side: Callable[[containerside.ContainerSide], Awaitable[None]],
                 on_problem: Callable[[str | None], None]):
        """``watch``: the NetlinkWatch; ``on_side``: the resolver's ``container_side_changed``;
        ``on_problem``: a standing problem for status (None: gone)."""
        self.address = endpoint.host
        self.log = log
        self._watch = watch
        self._on_side = on_side
        self._on_problem = on_problem
        self._adding = None  # the running add, if any
        self._tasks = set()

    def observe(self, snapshot) -> None:
        """A NetlinkWatch subscriber: called on the loop with every new snapshot."""
        uplinks = [route.ifindex for route in snapshot.default_routes]
        uplinks += [route.ifindex for route in snapshot.default_routes6]
        side = containerside.container_side(snapshot.links, uplinks, self.address)
        self._spawn(self._on_side(side))
        if side.address_on_lo or self._adding is not None:
            return
        lo = next((link for link in snapshot.links if link.loopback), None)
        if lo is None:
            self._on_problem(f"container_listen {self.address}: no loopback interface to put it on")
            return
        self._adding = self._spawn(self._add(lo.index, lo.name))

    async def _add(self, ifindex: int, name: str) -> None:
        try:
            await self._watch.add_host_address(self.address, ifindex)
        except Exception as exc:  # pyroute2's NetlinkError is no OSError
            reason = getattr(exc, "strerror", None) or exc
            self._on_problem(f"cannot put container_listen {self.address} on {name}: {reason}; containers' lookups"
                             " fail until it is there")
        else:
            self.log.info("%s put on %s: containers reach bootres there", self.address, name)
            self._on_problem(None)
        finally:
            self._adding = None

    def _spawn(self, coroutine):
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)  # a reference until done: the loop keeps only weak ones
        task.add_done_callback(self._tasks.discard)
        return task
