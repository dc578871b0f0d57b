"""Privilege separation: the daemon gives up root before it reads a byte from the network.

``bootres run --user bootres`` (the shipped unit) starts as root and, before
anything else runs (no thread, no loop, no socket read yet):

1. binds the control socket in the root-owned state directory (the
   package's postinst made the rest: the cache directory the user owns,
   ``/var/lib/bootres/cache``, and group ``bootres`` on ``/var/lib/bootres``
   so the daemon reads the saved resolv.conf there);
2. forks the privileged writer (``etcfiles_io.serve``): it stays uid 0 but
   drops every capability, ignores the stop signals systemd sends the whole
   cgroup (the daemon still needs it to leave resolv.conf behind), closes
   the daemon's sockets (systemd's, the control socket, the daemon's ends
   of the channels), and exits when the daemon closes its channels;
3. becomes the user in the daemon's own process (the service's main PID,
   which notifies systemd and holds its sockets): groups cleared, uid and
   gid switched, and only CAP_NET_BIND_SERVICE, CAP_NET_RAW and
   CAP_NET_ADMIN left, permitted and effective, and in the bounding set.

Without ``--user`` (``bootres run`` by hand, the tests) nothing changes hands
and the writer runs in the daemon.  The standard library has no capset(2)
or prctl(2): they are called through ctypes, with the kernel's v3 layout.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import pwd
import signal
import socket
import sys

from bootres import config
from bootres.shell import etcfiles_io

CAP_NET_BIND_SERVICE, CAP_NET_ADMIN, CAP_NET_RAW = 10, 12, 13
DAEMON_CAPS = (CAP_NET_BIND_SERVICE, CAP_NET_RAW, CAP_NET_ADMIN)
PR_CAPBSET_DROP, PR_SET_KEEPCAPS, PR_SET_NAME = 24, 8, 15
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
_CAP_LAST_POSSIBLE = 63  # /proc/sys/kernel/cap_last_cap is hidden by ProcSubset=pid: drop until EINVAL

class SeparationFailed(Exception):
    """Why the daemon could not become the user; it does not start (a root daemon is not what the unit asked for)."""


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


def _set_caps(caps: tuple[int, ...]) -> None:
    """Permitted and effective become exactly ``caps``; inheritable none."""
    mask = sum(1 << cap for cap in caps)
    data = (_CapData * 2)(_CapData(mask & 0xFFFFFFFF, mask & 0xFFFFFFFF, 0), _CapData(mask >> 32, mask >> 32, 0))
    _check(_libc.capset(ctypes.byref(_CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)), data), "capset")


def _drop_bounding(keep: tuple[int, ...]) -> None:
    for cap in range(_CAP_LAST_POSSIBLE + 1):
        if cap in keep:
            continue
        if _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            if ctypes.get_errno() == errno.EINVAL:
                return  # past the kernel's last capability
            _check(-1, f"dropping capability {cap} from the bounding set")


def _become(user: pwd.struct_passwd) -> None:
    """This process: the user's uid and gid, no other group, only DAEMON_CAPS (needs CAP_SETUID, SETGID, SETPCAP)."""
    _check(_libc.prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0), "PR_SET_KEEPCAPS")
    _drop_bounding(DAEMON_CAPS)
    os.setgroups([])
    os.setresgid(user.pw_gid, user.pw_gid, user.pw_gid)
    os.setresuid(user.pw_uid, user.pw_uid, user.pw_uid)
    _set_caps(DAEMON_CAPS)
    _check(_libc.prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0), "PR_SET_KEEPCAPS")


def separate(cfg: config.Config, user_name: str, log: logging.Logger, control_bind) -> dict[str, socket.socket]:
    """Fork the privileged writer and become ``user_name``; the daemon's ends of the writer's channels.

    ``control_bind()`` binds the control socket while still root and returns
    it (or None).  Raises SeparationFailed, or control.AlreadyRunning from
    ``control_bind``.
    """
    try:
        user = pwd.getpwnam(user_name)
    except KeyError:
        raise SeparationFailed(f"no user {user_name!r} (the package creates it: systemd-sysusers bootres.conf)") \
            from None
    try:
        control = control_bind()
        pairs = {name: socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM) for name in etcfiles_io.CHANNELS}
    except OSError as exc:
        raise SeparationFailed(f"preparing for user {user_name}: {exc.strerror or exc}") from None
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        daemons = [ours.fileno() for ours, _ in pairs.values()] + ([control.fileno()] if control else [])
        _writer_process(cfg, [theirs for _, theirs in pairs.values()], daemons, log)  # never returns
    for ours, theirs in pairs.values():
        theirs.close()
    try:
        _become(user)
    except OSError as exc:
        raise SeparationFailed(f"becoming user {user_name}: {exc.strerror or exc}") from None
    log.info("running as user %s; files in /etc are written by the privileged writer (pid %d)", user_name, pid)
    return {name: ours for name, (ours, _) in pairs.items()}


def _writer_process(cfg: config.Config, channels: list[socket.socket], daemons: list[int],
                    log: logging.Logger) -> None:
    """The forked writer: uid 0, no capability, none of the daemon's sockets; exits when the daemon closes its
    channels."""
    code = 1
    try:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)
        _libc.prctl(PR_SET_NAME, b"bootres-etc", 0, 0, 0)
        # The network sockets systemd passed (LISTEN_FDS, the fd store among them), the control socket and the
        # daemon's channel ends: never the writer's business.
        passed = int(os.environ.get("LISTEN_FDS", "0")) if os.environ.get("LISTEN_PID") == str(os.getppid()) else 0
        for fd in [*range(3, 3 + passed), *daemons]:
            try:
                os.close(fd)
            except OSError:
                pass
        os.setresgid(0, 0, 0)  # the unit starts it in group bootres: its files are root's, group and all
        _drop_bounding(())
        _set_caps(())
        etcfiles_io.serve(channels, etcfiles_io.Targets.from_config(cfg), log)
        code = 0
    except BaseException:  # noqa: BLE001 - a writer that fails must end, never fall back into the daemon's code
        log.exception("the privileged writer failed")
    finally:
        os._exit(code)
