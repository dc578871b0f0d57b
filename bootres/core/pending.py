"""A question in flight: the clients waiting on its race, and when a stale answer beats the race's (RFC 8767).

Rule: every move of a ``Pending`` between its states is in ``TRANSITIONS``
(h11's ``_state.py`` shape); the resolver fires events and asks the state,
and an event the table does not list for the current state is our bug
(``BadTransition``), which the resolver's guard turns into SERVFAIL for the
clients concerned.

States:

- ``ASKING``: the race runs and its clients wait for its outcome (no stale
  answer to give them, or none due yet);
- ``STALE_DUE``: a stale answer is in the cache, and the waiting clients get
  it at ``stale_at``, or as soon as every upstream of the group is down or
  silent, unless the race settles first;
- ``STALE_SENT``: the stale answer went out; a client asking now gets it at
  once, and the race goes on as a refresh of the cache;
- ``SETTLED``: the race is over and its clients were answered (or it was
  stopped by a bug).

Events: ``STALE_ARMED`` (a client waits with a stale answer in the cache),
``STALE_SERVED`` (the time for it came: it went out), ``STALE_EXPIRED``
(the time came, but the answer had aged out of the cache: back to the race),
``SETTLE`` (the race's outcome, or a bug's clean-up).  A race started for a
client that got the stale answer at once starts in ``STALE_SENT``; every
other starts in ``ASKING``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bootres.core.clientwire import ClientQuery

ASKING = "asking"
STALE_DUE = "stale due"
STALE_SENT = "stale sent"
SETTLED = "settled"

STALE_ARMED = "stale armed"
STALE_SERVED = "stale served"
STALE_EXPIRED = "stale expired"
SETTLE = "settle"

TRANSITIONS: dict[tuple[str, str], str] = {
    (ASKING, STALE_ARMED): STALE_DUE,
    (ASKING, SETTLE): SETTLED,
    (STALE_DUE, STALE_SERVED): STALE_SENT,
    (STALE_DUE, STALE_EXPIRED): ASKING,
    (STALE_DUE, SETTLE): SETTLED,
    (STALE_SENT, SETTLE): SETTLED,
}


class BadTransition(Exception):
    """An event the state does not take: a bug of the resolver's, never the network's."""


@dataclass(slots=True, eq=False)
class Waiter:
    client: Any
    query: ClientQuery
    tcp: bool
    answered: bool = False  # so a bug's clean-up answers only those still waiting
    upstream_only: bool = False  # ask_upstreams: an upstream's answer or a failure, never a stale one


class Pending:
    """One question's race, its waiting clients, and where it is in ``TRANSITIONS``."""

    __slots__ = ("key", "race", "group", "waiters", "state", "stale_at")

    def __init__(self, key: bytes, race, group, state: str = ASKING):
        if state not in (ASKING, STALE_SENT):
            raise BadTransition(f"a question in flight cannot start {state}")
        self.key = key
        self.race = race
        self.group = group
        self.waiters: list[Waiter] = []
        self.state = state
        self.stale_at: float | None = None  # while STALE_DUE: when the waiting clients get the stale answer

    def fire(self, event: str, stale_at: float | None = None) -> None:
        """Take ``event``; ``stale_at`` goes with STALE_ARMED."""
        try:
            self.state = TRANSITIONS[(self.state, event)]
        except KeyError:
            raise BadTransition(f"{event!r} while {self.state!r}") from None
        self.stale_at = stale_at if self.state == STALE_DUE else None
