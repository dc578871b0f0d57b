"""``status``'s ``errors``: the last warnings and errors, each listed until it no longer applies.

Two ways in:

- every WARNING or ERROR line logged under the ``bootres`` logger
  (``ErrorLog`` is a handler there), listed as it is: a cache that could not
  be saved, a source file's warning;
- a problem that lasts and ends, reported by explicit calls through a
  service's ``Problems``: ``problem(topic, message)`` logs it (once per
  message) and lists it under its topic; ``solved(topic, message)`` logs
  that and drops the topic's lines.  The daemon's conditions (a refused
  reload, resolv.conf), a source file ignored, netlink unreadable, the
  default route that cannot be installed, no router known: so status lists
  what is wrong now, not what was wrong at boot.

The list is changed on the event loop's thread only, where status reads it:
a line logged on another thread (a worker's) is handed to the loop
(``attach``), never appended there.  ``Problems`` is called on the loop.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bootres.core.report import ErrorEntry

MAX_ERRORS = 20
_LISTED = "bootres_listed"  # a record attribute: the line is in the list already, under its topic


class ErrorLog(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self._entries: collections.deque[tuple[str | None, ErrorEntry]] = collections.deque(maxlen=MAX_ERRORS)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """From now on, lines from other threads reach the list through ``loop`` (called on its thread)."""
        self._loop, self._loop_thread = loop, threading.get_ident()

    @property
    def entries(self) -> tuple[ErrorEntry, ...]:
        return tuple(entry for _, entry in self._entries)

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, _LISTED, False):
            return
        if self._loop is not None and threading.get_ident() != self._loop_thread:
            try:
                self._loop.call_soon_threadsafe(self._add, None, record)
            except RuntimeError:  # the loop is closed: the process is ending, nothing reads the list
                pass
            return
        self._add(None, record)

    def listed(self, topic: str, text: str) -> None:
        """``text`` goes in the list under ``topic`` (``Problems.problem``, on the loop)."""
        self._entries.append((topic, _entry(iso_time(), text)))

    def drop(self, topic: str) -> None:
        """Every line listed under ``topic`` leaves the list (``Problems.solved``, on the loop)."""
        kept = [(listed, entry) for listed, entry in self._entries if listed != topic]
        if len(kept) != len(self._entries):
            self._entries = collections.deque(kept, maxlen=MAX_ERRORS)

    def _add(self, topic: str | None, record: logging.LogRecord) -> None:
        self._entries.append((topic, _entry(iso_time(record.created), record.getMessage())))


def _entry(at: str, message: str) -> ErrorEntry:
    from bootres.core.report import ErrorEntry  # here: the status model is not needed before the first answer

    return ErrorEntry(at, message)


def iso_time(seconds: float | None = None) -> str:
    """``seconds`` (time.time(); now when None) as ISO 8601 in UTC, to the second: the stamp status shows."""
    import datetime  # here, on the first warning: the first answer need not wait for it

    stamp = datetime.datetime.fromtimestamp(time.time() if seconds is None else seconds, datetime.timezone.utc)
    return stamp.isoformat(timespec="seconds")


class Problems:
    """Where one service reports a problem that lasts, and its end: logged through ``log``, listed in ``errors``.

    ``errors`` None (a service run on its own, in tests): logged only.
    """

    def __init__(self, log: logging.Logger, errors: ErrorLog | None = None):
        self.log = log
        self._errors = errors

    def problem(self, topic: str, message: str, *args, level: int = logging.WARNING, exc_info: bool = False) -> None:
        """``message % args`` is wrong now: logged (with the traceback for ``exc_info``), and listed under ``topic``
        until ``solved(topic)``."""
        self.log.log(level, message, *args, exc_info=exc_info, extra={_LISTED: self._errors is not None},
                     stacklevel=2)
        if self._errors is not None:
            self._errors.listed(topic, message % args if args else message)

    def solved(self, topic: str, message: str | None = None, *args) -> None:
        """``topic`` no longer applies: its lines leave ``errors``; ``message`` (INFO) says why, when given."""
        if message is not None:
            self.log.info(message, *args)
        if self._errors is not None:
            self._errors.drop(topic)
