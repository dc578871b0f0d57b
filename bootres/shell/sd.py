"""systemd integration with the standard library only: sd_notify and logging.

The notify protocol (sd_notify(3)) is one datagram of ``KEY=VALUE`` lines to
the AF_UNIX socket named in ``NOTIFY_SOCKET``; a name starting with ``@`` is
in the abstract namespace.  Nothing here depends on python3-systemd, so
``bootres run`` outside systemd, or without that package, behaves the same
minus the journal fields.
"""

from __future__ import annotations

import array
import logging
import os
import socket
import sys
import time
from typing import MutableMapping

LOG_NAME = "bootres"


class Notifier:
    """Sends state changes to the service manager; a silent no-op outside systemd.

    The environment variables are *popped*, so children (none today, but a
    hook script tomorrow) cannot talk to systemd in bootres's name.
    """

    def __init__(self, environ: MutableMapping[str, str] = os.environ):
        address = environ.pop("NOTIFY_SOCKET", "")
        if address.startswith("@"):
            address = "\0" + address[1:]
        self.address = address or None
        self.watchdog_usec = _watchdog_usec(environ)

    def notify(self, *fields: str) -> bool:
        """Send one datagram; False when there is no manager or it is gone."""
        if not self.address:
            return False
        message = "\n".join(fields).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message, self.address)
        except OSError:
            # The manager went away or the socket is full: nothing useful to
            # do about it, and the service itself must keep running.
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.notify("READY=1", *_status(status))

    def reloading(self) -> bool:
        # RELOADING=1 together with MONOTONIC_USEC in one datagram: what
        # Type=notify-reload (systemd 253) requires, harmless before it.
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def stopping(self, status: str | None = None) -> bool:
        return self.notify("STOPPING=1", *_status(status))

    def status(self, text: str) -> bool:
        return self.notify(*_status(text))

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def store_fds(self, socks: list[socket.socket], name: str) -> bool:
        """Replace the fds stored under ``name`` in systemd's fd store (FileDescriptorStoreMax=).

        systemd keeps them open while the service restarts and hands them back
        through ``listen_fds()``: datagrams sent meanwhile wait in the socket
        buffer instead of being lost.
        """
        if not self.address:
            return False
        self.notify("FDSTOREREMOVE=1", f"FDNAME={name}")
        if not socks:
            return True
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                # sendmsg, not socket.send_fds: that one drops its address argument (3.11).
                rights = array.array("i", [s.fileno() for s in socks])
                sock.sendmsg([f"FDSTORE=1\nFDNAME={name}".encode()],
                             [(socket.SOL_SOCKET, socket.SCM_RIGHTS, rights)], 0, self.address)
        except OSError:
            return False
        return True

    def watchdog_interval(self) -> float | None:
        """Seconds between pings (half the timeout, as sd_watchdog_enabled(3) advises), or None."""
        if not self.watchdog_usec:
            return None
        return self.watchdog_usec / 2e6


def _status(text: str | None) -> list[str]:
    return [] if text is None else ["STATUS=" + text.replace("\n", " ")]


def _watchdog_usec(environ: MutableMapping[str, str]) -> int | None:
    usec = environ.pop("WATCHDOG_USEC", "")
    pid = environ.pop("WATCHDOG_PID", "")
    # WATCHDOG_PID names the process the watchdog is meant for; when it is
    # another one (we were started by a wrapper), the pings are not ours.
    if pid and pid != str(os.getpid()):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value if value > 0 else None


def listen_fds(environ: MutableMapping[str, str] = os.environ) -> list[tuple[str, socket.socket]]:
    """(name, socket) passed by systemd (sd_listen_fds_with_names(3)): from fd 3 on, when ``LISTEN_PID`` is us.

    The name is the socket unit's (``bootres.socket``) or the ``FDNAME`` the
    fds were stored under; "unknown" when systemd gave none.  The variables
    are popped so a child cannot mistake the fds for its own.
    """
    pid = environ.pop("LISTEN_PID", "")
    count = environ.pop("LISTEN_FDS", "")
    names = environ.pop("LISTEN_FDNAMES", "").split(":")
    if pid != str(os.getpid()) or not count.isdigit():
        return []
    found = []
    for index, fd in enumerate(range(3, 3 + int(count))):
        os.set_inheritable(fd, False)
        try:
            sock = socket.socket(fileno=fd)
        except OSError:  # not a socket: nothing of ours
            os.close(fd)
            continue
        found.append((names[index] if index < len(names) and names[index] else "unknown", sock))
    return found


# --- logging


def journal_stream_matches(environ: MutableMapping[str, str] = os.environ, stream=None) -> bool:
    """True when stderr is the journal stream systemd.exec(5) set up for us."""
    expected = environ.get("JOURNAL_STREAM", "")
    stream = stream if stream is not None else sys.stderr
    try:
        device, inode = (int(part) for part in expected.split(":"))
        st = os.fstat(stream.fileno())
    except (ValueError, OSError, AttributeError):
        return False
    return (st.st_dev, st.st_ino) == (device, inode)


class _PriorityPrefix(logging.Formatter):
    """sd-daemon(3) ``<N>`` prefixes: the journal files each line at its level."""

    PRIORITIES = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}

    def format(self, record: logging.LogRecord) -> str:
        priority = self.PRIORITIES.get(record.levelno, 6)
        return f"<{priority}>{super().format(record)}"


def setup_logging(verbose: bool = False, environ: MutableMapping[str, str] = os.environ) -> logging.Logger:
    """The ``bootres`` logger: the journal under systemd, plain lines on stderr otherwise."""
    logger = logging.getLogger(LOG_NAME)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    handler: logging.Handler
    if journal_stream_matches(environ):
        try:
            from systemd.journal import JournalHandler
        except ImportError:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(_PriorityPrefix("%(message)s"))
        else:
            handler = JournalHandler(SYSLOG_IDENTIFIER=LOG_NAME)
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("bootres: %(levelname)s: %(message)s"))
    logger.addHandler(handler)
    return logger
