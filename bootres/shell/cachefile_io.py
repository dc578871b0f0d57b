"""The cache file on disk and the clocks that date it (``core/cachefile.py`` decides what they mean)."""

from __future__ import annotations

import ctypes
import errno
import os
import stat
import time

from bootres.core.cachefile import NO_BOOT_ID, ClockReading
from bootres.shell.fileio import atomic_write, open_regular, stray_temporaries

BOOT_ID = "/proc/sys/kernel/random/boot_id"
BOOT_ID_VARIABLE = "BOOTRES_BOOT_ID"  # the unit's Environment= (%b): its ProcSubset=pid hides /proc/sys
TIMESYNC_FLAG = "/run/systemd/timesync/synchronized"  # systemd-timesyncd's, once it has synchronised the clock
_UNSYNCED_ERROR_US = 16_000_000  # systemd's ntp_synced(): a maximum error of 16 s means "not synchronised"


class _Timex(ctypes.Structure):
    """The start of ``struct timex`` (adjtimex(2)); the rest is room the kernel may fill."""

    _fields_ = [("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
                ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long), ("status", ctypes.c_int),
                ("rest", ctypes.c_char * 256)]


def read_clock() -> ClockReading:
    return ClockReading(time.time(), clock_synchronized(), boot_id(), time.clock_gettime(time.CLOCK_BOOTTIME))


def clock_synchronized() -> bool:
    """Whether the clock is known to be synchronised: timesyncd's flag file, or the kernel says so.

    The kernel is asked with adjtimex and no modes (it only reads), as
    systemd's ntp_synced() does; in the unit, ProtectClock= refuses the call
    (EPERM), so there only timesyncd's flag counts (docs/resolver.md).  Any
    failure means "not known to be synchronised".
    """
    if os.path.exists(TIMESYNC_FLAG):
        return True
    timex = _Timex()
    try:
        if ctypes.CDLL(None, use_errno=True).adjtimex(ctypes.byref(timex)) < 0:
            return False
    except (OSError, AttributeError):
        return False
    return timex.maxerror < _UNSYNCED_ERROR_US


def boot_id() -> bytes:
    """This boot's ID, 16 bytes: from the unit's variable, else the kernel (the UUID's hex digits; not the uuid
    module, 1.5 ms to import); NO_BOOT_ID when neither says."""
    digits = os.environ.get(BOOT_ID_VARIABLE)
    if digits is None:
        try:
            with open(BOOT_ID, encoding="ascii") as handle:
                digits = handle.read(64)
        except OSError:
            return NO_BOOT_ID
    digits = digits.strip().replace("-", "")
    try:
        return bytes.fromhex(digits) if len(digits) == 32 else NO_BOOT_ID
    except ValueError:
        return NO_BOOT_ID


def limit(cache_size: int) -> int:
    """The largest cache file read at start: ~40 times what an average entry takes, checked before reading."""
    return (1 << 20) + cache_size * 4096


def read(path: str, cache_size: int) -> tuple[bytes, float] | None:
    """The file's bytes and mtime; None when there is none.  OSError when it cannot be read or is over ``limit``."""
    largest = limit(cache_size)
    try:
        with open_regular(path, follow=False) as (handle, st):
            if st.st_size > largest:
                raise OSError(errno.EFBIG, f"{st.st_size} bytes, more than {largest} for cache_size {cache_size}")
            return handle.read(largest + 1), st.st_mtime
    except FileNotFoundError:
        return None


def is_regular(path: str) -> bool:
    """Whether ``path`` is a regular file (not followed: a link there is not one)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def write(path: str, data: bytes) -> None:
    """On a worker thread: the directory (state_dir may not exist yet), then the file, readable by root alone."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    atomic_write(path, data, mode=0o600)


def remove_leftovers(path: str) -> str | None:
    """Remove the temporary files a save cut short left beside ``path``; why one could not be, or None."""
    for leftover in stray_temporaries(path):
        try:
            os.unlink(leftover)
        except FileNotFoundError:
            pass
        except OSError as exc:
            return f"cannot remove the leftover {leftover}: {exc.strerror or exc}"
    return None
