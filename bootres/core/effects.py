"""What a core asks its shell to do: plain data, carried out by bootres/shell.

Cores never touch sockets, files or loggers; they return these instead and
tests assert on them.  Each shell performs only the kinds its core emits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# ``logging`` level numbers, so a core can say how loud an event is without logging.
INFO = 20
WARNING = 30


@dataclass(frozen=True, slots=True)
class Respond:
    """Send ``wire`` to the client that asked (``client`` is the shell's own handle).

    ``source`` (hosts, cache, stale, upstream, local), ``upstream`` (the
    winner's label or None) and ``reason`` (why a failure, e.g. SERVFAIL, was
    answered, or None) are for ``bootres query``; clients never see them.
    """

    client: Any
    wire: bytes
    source: str
    upstream: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class SendUpstream:
    """Send one query to an upstream from a fresh socket (new random source port).

    Replies come back to the core tagged with ``token``; over UDP the shell
    connects the socket to ``address`` so only that peer's datagrams arrive.
    Over TCP (``tcp``) the shell frames the message and reads one reply.
    """

    token: int
    address: tuple[str, int]
    wire: bytes
    tcp: bool = False


@dataclass(frozen=True, slots=True)
class CloseUpstream:
    """The core is done with this query's socket; close it."""

    token: int


@dataclass(frozen=True, slots=True)
class Log:
    """One operator-relevant event for the shell's logger; ``level`` is INFO or WARNING."""

    level: int
    message: str
