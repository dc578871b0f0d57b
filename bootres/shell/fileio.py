"""Atomic file replacement: the only way bootres writes a file.

A reader (the resolver of some boot script, ``getent``, an admin's ``cat``)
must see either the old file or the new one, never a mixture, even when the
writer is killed half-way or the power fails.  The recipe: write a temporary
file in the same directory (rename is only atomic within one file system),
fsync it, give it the old file's mode and owner, rename it over the target,
then fsync the directory so the rename itself is durable.

Files other users can reach are hostile (docs/security.md): a metrics file
in node_exporter's textfile directory, say, where anyone in its group can
plant a symlink, a FIFO or a file of the temporary name.  So the target is
never followed when it is a symlink (the link itself is replaced; only
``/etc/hosts`` follows one, ``follow=True``, as every editor of that file
does), a FIFO, socket or device is never opened (reads open with
O_NONBLOCK and check the type before reading; such a target is refused),
and the temporary file has an unpredictable name (``.hosts.bootres-XXXXXX``)
created with O_EXCL|O_NOFOLLOW.  A write cut short by a power failure leaves
one stray file; the next write of the same target removes it, so they do
not pile up in ``/etc``.

Errors (read-only ``/etc``, a missing directory, no space) are raised as
``OSError``; callers record them and try again later.

``read_changed`` is the reading side of files bootres follows (hosts files,
nameserver sources): a plain function of paths and the signatures seen
last, touching nothing but the file system, so services run it on a worker
thread and keep the event loop for answers.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from typing import BinaryIO, Iterable, Iterator, Mapping, NamedTuple

Signature = tuple[int, int, int]  # inode, mtime (ns), size: a file replaced, rewritten or grown looks different
_UNSEEN = object()


class FileRead(NamedTuple):
    """One file as ``read_changed`` found it."""

    signature: Signature | None  # None: it could not even be stat'ed (missing, most often)
    data: bytes | None  # None: it could not be read, and ``error`` says why
    error: str | None


@contextlib.contextmanager
def open_regular(path: str, follow: bool = True) -> Iterator[tuple[BinaryIO, os.stat_result]]:
    """The open file and its stat, once it is known to be a regular file; FileNotFoundError when missing.

    OSError when it is not a regular file: a FIFO planted there is never
    opened for a blocking read (it would hang the reader), nor a device.
    ``follow=False``: a symlink is refused too (ELOOP).
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW))
    with os.fdopen(fd, "rb") as handle:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", path)
        yield handle, st


def read_bytes(path: str, limit: int = -1, follow: bool = True) -> bytes | None:
    """The file's content (at most ``limit`` bytes), or None when it does not exist; ``open_regular``'s errors."""
    try:
        with open_regular(path, follow) as (handle, _):
            return handle.read(limit)
    except FileNotFoundError:
        return None


def read_changed(paths: Iterable[str], seen: Mapping[str, Signature | None], limit: int = -1) -> dict[str, FileRead]:
    """Each of ``paths`` whose signature is not ``seen[path]`` (or that ``seen`` lacks), read (at most ``limit`` bytes).

    A file missing now and missing before (``seen[path]`` None) is unchanged.
    """
    found = {}
    for path in paths:
        before = seen.get(path, _UNSEEN)
        try:
            st = os.stat(path)
        except OSError as exc:
            if before is not None:
                found[path] = FileRead(None, None, exc.strerror or str(exc))
            continue
        signature = (st.st_ino, st.st_mtime_ns, st.st_size)
        if signature == before:
            continue
        try:
            data = read_bytes(path, limit)
            found[path] = FileRead(signature, data, None if data is not None else "No such file or directory")
        except OSError as exc:
            found[path] = FileRead(signature, None, exc.strerror or str(exc))
    return found


def atomic_write(path: str, data: bytes | str, mode: int | None = None, follow: bool = False) -> bool:
    """Replace ``path`` with ``data``; return False (and touch nothing) when unchanged.

    ``mode`` applies only when the file is new (or replaces a symlink); an
    existing file keeps its mode and owner.  A symlink at ``path`` is
    replaced by the file, unless ``follow`` (then the link stays a link and
    its target is replaced).  Anything else that is not a regular file is
    refused (OSError).  Text is written as UTF-8.
    """
    if follow:
        path = os.path.realpath(path)
    if isinstance(data, str):
        data = data.encode("utf-8")
    directory = os.path.dirname(os.path.abspath(path))
    try:
        current = os.lstat(path)
    except FileNotFoundError:
        current = None
    if current is not None and stat.S_ISLNK(current.st_mode):
        current = None  # the link goes: what it pointed at is never read nor written
    elif current is not None and not stat.S_ISREG(current.st_mode):
        raise OSError(errno.EINVAL, "not a regular file; left alone", path)
    elif current is not None and read_bytes(path, follow=False) == data:
        return False
    base = os.path.basename(path)
    _remove_strays(directory, base)
    temp = os.path.join(directory, f".{base}{_TEMP_MARK}{secrets.token_hex(4)}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if current is not None:
                _keep_owner(handle.fileno(), current)  # before chmod: chown clears set-id bits
                os.fchmod(handle.fileno(), current.st_mode & 0o7777)
            else:
                os.fchmod(handle.fileno(), 0o644 if mode is None else mode)
            os.fsync(handle.fileno())
        os.rename(temp, path)
    except BaseException:
        _remove_quietly(temp)
        raise
    _fsync_directory(directory)
    return True


_TEMP_MARK = ".bootres-"


def temporary_name(path: str) -> str:
    """An unpredictable name beside ``path`` for a file or link about to be renamed over it."""
    directory, base = os.path.split(path)
    _remove_strays(directory or ".", base)
    return os.path.join(directory, f".{base}{_TEMP_MARK}{secrets.token_hex(4)}")


def stray_temporaries(path: str) -> list[str]:
    """The temporary files of ``path`` that an earlier write, cut short, left behind (none when unreadable)."""
    directory, base = os.path.split(os.path.abspath(path))
    prefix = f".{base}{_TEMP_MARK}"
    try:
        return [os.path.join(directory, name) for name in os.listdir(directory) if name.startswith(prefix)]
    except OSError:
        return []


def _remove_strays(directory: str, base: str) -> None:
    """Remove ``stray_temporaries`` (names only: unlink follows nothing)."""
    for stray in stray_temporaries(os.path.join(directory, base)):
        _remove_quietly(stray)


def _keep_owner(fd: int, current: os.stat_result) -> None:
    if (current.st_uid, current.st_gid) == (os.geteuid(), os.getegid()):
        return
    try:
        os.fchown(fd, current.st_uid, current.st_gid)
    except PermissionError:
        # Without CAP_CHOWN the new file stays ours; the content matters more.
        pass


def _fsync_directory(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
