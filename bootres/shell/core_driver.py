"""CoreDriver: runs one sans-I/O core on the event loop; every core of bootres runs under one.

A core has the same doors whatever it does: inputs that take ``now`` last,
``drain()`` for the effects they produced, and ``deadline()`` with
``timer_fired(now)`` for its one clock.  The driver is the only caller of
the last three, so the rules live once (the shape of aioquic's asyncio
protocol):

- ``feed(method, *args)``: ``method(*args, now)`` on the core, then ``pump()``;
- ``pump()``: each effect carried out by the handler for its type (one dict
  lookup, no ``isinstance`` ladder; ``Log`` goes to the logger), then the
  timer re-armed at the core's deadline if that moved;
- the timer: ``timer_fired(now)`` with ``now = max(deadline, loop.time())``:
  the loop may run a timer a hair early (its clock's resolution), and the
  core must see its deadline as reached.

Before ``start`` the core takes input (its state builds up) but nothing is
carried out; after ``stop`` it takes none and nothing is carried out or armed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable

from bootres.core.effects import Log


class CoreDriver:
    def __init__(self, core, log: logging.Logger, *, first: type | None = None):
        """``first``: effects of this type are carried out before the others of the same drain (the resolver's
        replies: a client should not wait for the sockets of the race that answered it to be closed)."""
        self.core = core
        self._handlers: dict[type, Callable[[Any], None]] = {}
        self._first = first
        self._logger = log
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self.after: Callable[[], None] | None = None  # called after each pump while set (a start-up wait)

    def start(self, loop: asyncio.AbstractEventLoop, handlers: dict[type, Callable[[Any], None]]) -> None:
        """Carry out what the core asked for so far, and from now on.

        ``handlers``: the function that carries out each type of effect the
        core emits (``Log`` goes to the logger).
        """
        self._handlers = {Log: self._log, **handlers}
        self._loop = loop
        self.pump()

    def stop(self) -> None:
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._timer_at = None

    @property
    def running(self) -> bool:
        return self._loop is not None and not self._stopped

    @property
    def stopped(self) -> bool:
        return self._stopped

    @property
    def armed(self) -> float | None:
        """When the timer fires (None: not armed)."""
        return self._timer_at

    def now(self) -> float:
        # Before start there is no loop of ours yet; asyncio's clock is time.monotonic.
        return self._loop.time() if self._loop is not None else time.monotonic()

    def feed(self, method: Callable, *args) -> None:
        """``method(*args, now)``: one of the core's inputs; then its effects.  Nothing once stopped."""
        if self._stopped:
            return
        method(*args, self.now())
        self.pump()

    def pump(self) -> None:
        """Carry out the core's effects, then re-arm its timer."""
        if self._loop is None or self._stopped:
            return
        effects = self.core.drain()
        if effects:
            if self._first is not None and len(effects) > 1:
                first = self._first
                effects.sort(key=lambda effect: type(effect) is not first)
            handlers = self._handlers
            for effect in effects:
                handlers[type(effect)](effect)
        if self.after is not None:
            self.after()
        self.arm()

    def arm(self) -> None:
        """The timer at the core's deadline (also after input that bypasses ``feed``, such as cache hits)."""
        when = self.core.deadline()
        if when == self._timer_at or self._loop is None or self._stopped:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when
        self._timer = None if when is None else self._loop.call_at(when, self._fired)

    def _fired(self) -> None:
        when = self._timer_at
        self._timer = self._timer_at = None
        self.core.timer_fired(max(when, self._loop.time()))
        self.pump()

    def _log(self, effect: Log) -> None:
        self._logger.log(effect.level, "%s", effect.message)
