"""The privileged writer: the only code that replaces files in /etc for bootres.

The daemon runs as user ``bootres`` (``bootres run --user bootres``,
``bootres.shell.privsep``); the three files in /etc it keeps (the hosts
block, /etc/defaultrouter, /etc/resolv.conf with the saved original beside
it) and bootres-generator's cache, which root copies into a unit, belong to
root.  So a small process forked before the daemon gives up root writes
them, on request, and nothing else (docs/security.md):

- a request names an operation, never a path it chooses: the targets are
  the ones the configuration names, read by this side itself (a path that
  is not the configuration's is refused, after one fresh read of the
  configuration, so a reload that moved a file is followed);
- the content is checked to be exactly what bootres writes there
  (``etcfiles.check_block``, ``check_defaultrouter``, ``resolvconf``'s
  checks), and the files are built here, from the checked parts;
- every write is ``fileio.atomic_write``'s.

``handle(targets, request)`` is that whole policy, a plain function; the
daemon calls it in-process (``LocalWriter``: run without ``--user``, and in
the tests) or through the helper (``HelperWriter``: one socketpair per
daemon thread that writes, JSON lines).  Errors come back as OSError (the
file operation failed: the caller retries as before) or ValueError (the
request was refused).
"""

from __future__ import annotations

import errno
import json
import os
import select
import socket
from dataclasses import dataclass, field, replace

from bootres import config
from bootres.core import etcfiles, resolvconf, sources
from bootres.shell.fileio import atomic_write, read_bytes, temporary_name

RESOLV_CONF = "/etc/resolv.conf"
# debian/bootres.postrm knows this path too: it restores from it on removal.
SAVED = "/var/lib/bootres/resolv.conf.orig"
SOCKET_UNIT = "bootres.socket"
SYSTEMCTL_TIMEOUT = 2.0  # each question to systemd at stop; a stop must not hang on it
# One channel per daemon thread that writes: ManagedResolvConf's worker, StubFilesService' files thread, the daemon's
# generator-cache refresh.
CHANNELS = ("resolv.conf", "files", "service")
MAX_REQUEST = 8 * 1024 * 1024  # a hosts block of 10,000 pins is ~600 KB; JSON escapes add little


@dataclass
class Targets:
    """What the writer may write: the configuration's files, resolv.conf and its saved original, listen."""

    hosts: str | None = None
    defaultrouter: str | None = None
    resolv_conf: str = RESOLV_CONF
    saved: str = SAVED
    listen: tuple[tuple[str, int], ...] = ()
    config_path: str | None = None  # read again when a request names a file it does not list (a reload)
    generator_cache: bool = False  # the configuration is the one bootres-generator reads
    refreshed: set = field(default_factory=set)  # paths already looked up afresh, so each costs one read

    @classmethod
    def from_config(cls, cfg: config.Config, **overrides) -> Targets:
        return cls(hosts=cfg.hosts.file, defaultrouter=cfg.router.defaultrouter_file,
                   listen=tuple(e.sockaddr for e in cfg.resolver.endpoints), config_path=cfg.path,
                   generator_cache=cfg.path == config.DEFAULT_PATH, **overrides)

    def allows(self, kind: str, path: str) -> bool:
        if getattr(self, kind) == path:
            return True
        if self.config_path is None or (kind, path) in self.refreshed:
            return False
        self.refreshed.add((kind, path))
        try:
            cfg = config.load(self.config_path)
        except config.ConfigError:
            return False
        self.hosts, self.defaultrouter = cfg.hosts.file, cfg.router.defaultrouter_file
        return getattr(self, kind) == path


def handle(targets: Targets, request: dict) -> object:
    """Carry out one checked request; its result, or OSError / ValueError."""
    op = request.get("op") if isinstance(request, dict) else None
    if op == "hosts":
        path, block = _path(targets, "hosts", request), request.get("block")
        if not isinstance(block, str):
            raise ValueError("no block")
        etcfiles.check_block(block)
        # At write time, so an admin's edit just now stays; /etc/hosts as a symlink stays one (documented).
        current = read_bytes(path)
        merged = etcfiles.merge_block((current or b"").decode("utf-8", "surrogateescape"), block)
        return atomic_write(path, merged.encode("utf-8", "surrogateescape"), follow=True)
    if op == "defaultrouter":
        path, text = _path(targets, "defaultrouter", request), request.get("text")
        if not isinstance(text, str):
            raise ValueError("no text")
        etcfiles.check_defaultrouter(text)
        return atomic_write(path, text)
    if op == "resolv.conf":
        return _resolv_conf(targets, request)
    if op == "generator":
        if not targets.generator_cache:
            return False
        from bootres.shell import generator

        return generator.refresh_cache()
    raise ValueError(f"unknown operation {str(op)[:40]!r}")


def _path(targets: Targets, kind: str, request: dict) -> str:
    path = request.get("path")
    if not isinstance(path, str) or not targets.allows(kind, path):
        raise ValueError(f"{str(path)[:200]!r} is not the configured {kind} file")
    return path


def _resolv_conf(targets: Targets, request: dict) -> object:
    action = request.get("action")
    search = resolvconf.check_search(request.get("search", ()), sources.normalize_domain)
    trust_ad = request.get("trust_ad", False)
    if not isinstance(trust_ad, bool):
        raise ValueError("trust_ad is not a boolean")
    path, saved = targets.resolv_conf, targets.saved
    if action == "save":
        return save_original(path, saved)
    if action == "write":
        return write_managed(path, saved, targets.listen, search, trust_ad).decode("latin-1")
    if action == "leave":
        nameservers = resolvconf.check_nameservers(request.get("nameservers", ()))
        if request.get("unless_shutting_down") is True and shutting_down_and_back_at_boot():
            return "boot"
        return leave(path, saved, nameservers, search)
    raise ValueError(f"unknown resolv.conf action {str(action)[:40]!r}")


# --- the resolv.conf operations (bootres.shell.resolvguard_io decides when; these do it)


def _original_text(path: str, saved: str) -> str:
    """The admin's resolv.conf: the saved copy when one of ours is in place."""
    current = _text(path)
    if resolvconf.is_bootres(current) and _exists(saved):
        return _text(saved)
    return current


def write_managed(path: str, saved: str, listen: tuple[tuple[str, int], ...], search: tuple[str, ...],
                   trust_ad: bool) -> bytes:
    """Put our file in place (the admin's search list when the sources have none, and their options); its bytes."""
    original = resolvconf.parse(_original_text(path, saved))
    content = resolvconf.render_managed(listen, search or original.search, original.options, trust_ad).encode()
    atomic_write(path, content)  # a symlink there is replaced, never followed
    return content


def save_original(path: str, saved: str) -> None:
    """Keep the file found at takeover for the package's postrm, unless a copy is already there (the first one counts)."""
    if _exists(saved):
        return
    os.makedirs(os.path.dirname(saved), exist_ok=True)
    if os.path.islink(path):
        target = os.readlink(path)
        _replace(saved, lambda temp: os.symlink(target, temp))
    else:
        atomic_write(saved, read_bytes(path) or b"", mode=0o644)


def leave(path: str, saved: str, nameservers: tuple[str, ...], search: tuple[str, ...]) -> str:
    """Put a classic file in place of ours; what was done: ``changed`` (not ours any more: left alone), ``listed``, ``restored``, or ``kept`` (nothing to put back)."""
    if not resolvconf.is_bootres(_text(path)):
        return "changed"
    if nameservers:
        original = resolvconf.parse(_original_text(path, saved))
        atomic_write(path, resolvconf.render_stopped(list(nameservers), search or original.search, original.options))
        return "listed"
    if not _exists(saved):
        return "kept"
    if os.path.islink(saved):
        target = os.readlink(saved)
        _replace(path, lambda temp: os.symlink(target, temp))
    else:
        atomic_write(path, read_bytes(saved) or b"")
    return "restored"


def _exists(path: str) -> bool:
    return os.path.lexists(path)


def _text(path: str) -> str:
    try:
        return (read_bytes(path) or b"").decode("utf-8", "replace")
    except OSError:  # e.g. a dangling symlink's target directory is gone
        return ""


def _replace(path: str, create) -> None:
    """Create a new file or link beside ``path`` with ``create(temp)``, then rename it over ``path``.

    Used where ``path`` must become a symlink (``create`` makes it with
    os.symlink, which never overwrites).
    """
    temp = temporary_name(path)
    create(temp)
    try:
        os.rename(temp, path)
    except BaseException:
        os.unlink(temp)
        raise


def shutting_down_and_back_at_boot() -> bool:
    """This stop is part of a shutdown (systemd says "stopping" once shutdown.target is queued), and
    bootres.socket is enabled, so the next boot listens before anyone asks; False outside systemd."""
    import subprocess  # only here, at stop

    try:
        state = subprocess.run(["systemctl", "is-system-running"], capture_output=True, text=True,
                               timeout=SYSTEMCTL_TIMEOUT).stdout.strip()
        return state == "stopping" and subprocess.run(
            ["systemctl", "--quiet", "is-enabled", SOCKET_UNIT], capture_output=True, timeout=SYSTEMCTL_TIMEOUT,
        ).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


class LocalWriter:
    """``handle`` in this process: the daemon not separated (no ``--user``), and the tests."""

    def __init__(self, targets: Targets):
        self.targets = targets

    def __call__(self, request: dict) -> object:
        return handle(self.targets, request)


class HelperWriter:
    """One end of a socketpair to the helper; used by one thread only."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self._reader = sock.makefile("rb")

    def __call__(self, request: dict) -> object:
        self.sock.sendall(json.dumps(request).encode() + b"\n")
        line = self._reader.readline(MAX_REQUEST)
        if not line:
            # The helper is gone (it never exits first): writes cannot work until a restart.
            raise OSError(errno.EPIPE, "the privileged writer is gone")
        reply = json.loads(line)
        if "oserror" in reply:
            raise OSError(reply["oserror"], reply["message"])
        if "refused" in reply:
            raise ValueError(reply["refused"])
        return reply["result"]

    def close(self) -> None:
        self._reader.close()
        self.sock.close()


def serve(channels: list[socket.socket], targets: Targets, log) -> None:
    """The helper's loop: one request at a time from any channel, until every channel is closed."""
    readers = {sock.fileno(): (sock, sock.makefile("rb")) for sock in channels}
    while readers:
        ready, _, _ = select.select(list(readers), [], [])
        for fd in ready:
            sock, reader = readers[fd]
            line = reader.readline(MAX_REQUEST + 1)
            if not line or not line.endswith(b"\n"):
                del readers[fd]  # the daemon closed it (or sent more than a request may be): done with it
                sock.close()
                continue
            sock.sendall(json.dumps(_reply(targets, line, log)).encode() + b"\n")


def _reply(targets: Targets, line: bytes, log) -> dict:
    try:
        return {"result": handle(targets, json.loads(line))}
    except OSError as exc:
        return {"oserror": exc.errno or errno.EIO, "message": exc.strerror or str(exc)}
    except (ValueError, TypeError, AttributeError) as exc:
        # A request bootres itself never makes: the daemon is broken or not itself any more.
        log.error("privileged writer refused a request: %s", str(exc)[:200])
        return {"refused": str(exc)[:200]}


def writers(targets: Targets, channels: dict[str, socket.socket] | None) -> dict[str, object]:
    """A writer for each of CHANNELS: through the helper's channels, or in-process."""
    if channels is None:
        return {name: LocalWriter(replace(targets, refreshed=set())) for name in CHANNELS}
    return {name: HelperWriter(channels[name]) for name in CHANNELS}
