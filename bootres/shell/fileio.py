"""Atomic file replacement: the only way bootres writes a file.

A reader (the resolver of some boot script, ``getent``, an admin's ``cat``)
must see either the old file or the new one, never a mixture, even when the
writer is killed half-way or the power fails.  The recipe: write a temporary
file in the same directory (rename is only atomic within one file system),
fsync it, give it the old file's mode and owner, rename it over the target,
then fsync the directory so the rename itself is durable.

The temporary file has a fixed name (``.hosts.bootres-tmp`` beside
``hosts``), so a write cut short by a power failure leaves at most one stray
file that the next write reuses, instead of a pile of them in ``/etc``.  That
assumes one writer per path, which holds: each file has one owner in bootres.

Errors (read-only ``/etc``, a missing directory, no space) are raised as
``OSError``; callers record them and try again later.

``read_changed`` is the reading side of files bootres follows (hosts files,
nameserver sources): a plain function of paths and the signatures seen
last, touching nothing but the file system, so services run it on a worker
thread and keep the event loop for answers.
"""

from __future__ import annotations

import os
from typing import Iterable, Mapping, NamedTuple

Signature = tuple[int, int, int]  # inode, mtime (ns), size: a file replaced, rewritten or grown looks different
_UNSEEN = object()


class FileRead(NamedTuple):
    """One file as ``read_changed`` found it."""

    signature: Signature | None  # None: it could not even be stat'ed (missing, most often)
    data: bytes | None  # None: it could not be read, and ``error`` says why
    error: str | None


def read_bytes(path: str) -> bytes | None:
    """The file's content, or None when it does not exist."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
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
            with open(path, "rb") as handle:
                found[path] = FileRead(signature, handle.read(limit), None)
        except OSError as exc:
            found[path] = FileRead(signature, None, exc.strerror or str(exc))
    return found


def atomic_write(path: str, data: bytes | str, mode: int | None = None) -> bool:
    """Replace ``path`` with ``data``; return False (and touch nothing) when unchanged.

    ``mode`` applies only when the file is new; an existing file keeps its
    mode and owner.  A symlink is followed, so the link stays a link.  Text
    is written as UTF-8.
    """
    path = os.path.realpath(path)
    if isinstance(data, str):
        data = data.encode("utf-8")
    if read_bytes(path) == data:
        return False
    directory = os.path.dirname(os.path.abspath(path))
    try:
        current = os.stat(path)
    except FileNotFoundError:
        current = None
    temp = os.path.join(directory, f".{os.path.basename(path)}.bootres-tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
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
