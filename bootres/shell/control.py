"""The control socket: one JSON request line in, one JSON reply line out.

The daemon serves it in ``state_dir``; ``bootres status`` and ``bootres query``
are its clients.  JSON keeps the CLI free of any knowledge of the daemon's
internals and gives ``status --json`` for free.

Who may talk to it (docs/security.md): root and the members of group
``bootres`` (the socket is 0660, group ``bootres``; 0600 where that group
does not exist).  The client trusts only a server run by root, by the
``bootres`` user or by itself (SO_PEERCRED), and never looks anywhere but
``state_dir``: a name another user could bind first is never asked.  The
server bounds what one local user can take: MAX_CLIENTS connections at
once (more are closed at once), REQUEST_TIMEOUT to send a request line of
at most MAX_REQUEST bytes, and a flood is one log line.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import struct
from typing import Awaitable, Callable, NamedTuple

SOCKET_NAME = "control.sock"
GROUP = "bootres"  # debian/bootres.postinst creates it (and the user of the same name)
_UCRED = struct.Struct("=iII")  # struct ucred: pid, uid, gid


class NotRunning(Exception):
    """Nothing bootres's own listens on the control socket."""


class AlreadyRunning(Exception):
    """Another daemon answers on this state directory's control socket."""


class Forbidden(Exception):
    """This user may not talk to the control socket."""


def socket_path(state_dir: str) -> str:
    return os.path.join(state_dir, SOCKET_NAME)


def trusted_uids() -> set[int]:
    """Who may serve the control socket: root, the ``bootres`` user, the caller (a ``bootres run`` of its own)."""
    import pwd

    uids = {0, os.geteuid()}
    try:
        uids.add(pwd.getpwnam(GROUP).pw_uid)
    except KeyError:
        pass
    return uids


def peer_uid(sock: socket.socket) -> int:
    return _UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))[1]


def request(state_dir: str, message: dict, timeout: float = 10.0) -> dict:
    """Send one request to the running daemon and return its reply."""
    import json  # json is imported where used: the daemon starts serving names before any request

    path = socket_path(state_dir)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(path)
        except PermissionError:
            raise Forbidden(f"permission denied on {path}: run as root or as a member of group {GROUP}") from None
        except OSError as exc:
            raise NotRunning(f"bootres is not running (no service on {path}: {exc.strerror})") from None
        uid = peer_uid(sock)
        if uid not in trusted_uids():
            raise NotRunning(f"bootres is not running ({path} is served by uid {uid}, not by bootres;"
                             " not asked)")
        sock.sendall(json.dumps(message).encode() + b"\n")
        with sock.makefile("rb") as reply:
            line = reply.readline(16 * 1024 * 1024)
    if not line:
        raise NotRunning(f"bootres closed {path} without answering")
    return json.loads(line)


# --- the server half, run by the daemon

Handler = Callable[[dict], Awaitable[dict]]


class ControlServer:
    """Answers JSON-line requests by ``cmd`` with the given coroutine functions."""

    MAX_REQUEST = 4096  # {"cmd": "query", "name": <255 bytes>, "type": ...} and room to spare
    MAX_CLIENTS = 32  # at once; `bootres status` holds one for milliseconds
    REQUEST_TIMEOUT = 2.0  # seconds to send the request line

    def __init__(self, handlers: dict[str, Handler], log: logging.Logger):
        self.handlers = handlers
        self.log = log
        self.server: socket.socket | None = None  # the listening socket, accepted from on the loop
        self.address: str | None = None
        self._connections: set[asyncio.Task] = set()
        self.clients = 0
        self.turned_away = 0  # connections closed at once: MAX_CLIENTS were open
        self.timed_out = 0
        self._flood_logged = False  # one line per flood: reset once a connection is served normally

    async def start(self, state_dir: str, bound: Bound | None = None) -> str | None:
        """Serve the socket ``bind`` made (now, unless it was made before the daemon gave up root); return why
        there is none (the daemon runs on without a control socket)."""
        bound = bound or bind(state_dir)
        if bound.problem is not None:
            self.log.error("%s", bound.problem)
            return bound.problem
        # Accepted by hand, not asyncio.start_unix_server: that calls listen() again, and SO_PEERCRED, which
        # clients check, would then name the daemon's user instead of root, who made the socket.
        self.server = bound.sock
        asyncio.get_running_loop().add_reader(self.server.fileno(), self._accept)
        self.address = socket_path(state_dir)
        return None

    async def stop(self) -> None:
        if self.server is None:
            return
        asyncio.get_running_loop().remove_reader(self.server.fileno())
        self.server.close()
        for task in self._connections:
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self.address:
            _remove_stale(self.address)

    def _accept(self) -> None:
        for _ in range(self.MAX_CLIENTS):  # a burst per wake-up, so a flood cannot hold the loop
            try:
                conn, _ = self.server.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of descriptors: the queries matter more; tried at the next wake-up
                if not self._flood_logged:
                    self._flood_logged = True
                    self.log.warning("control socket: cannot accept: %s", exc.strerror or exc)
                return
            task = asyncio.get_running_loop().create_task(self._connection(conn))
            self._connections.add(task)
            task.add_done_callback(self._connections.discard)

    async def _connection(self, conn: socket.socket) -> None:
        try:
            reader, writer = await asyncio.open_connection(sock=conn, limit=self.MAX_REQUEST)
        except OSError:
            conn.close()
            return
        await self._serve(reader, writer)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        import json

        if self.clients >= self.MAX_CLIENTS:
            self.turned_away += 1
            if not self._flood_logged:
                self._flood_logged = True
                self.log.warning("control socket: %d clients at once; more are closed unanswered until they go",
                                 self.MAX_CLIENTS)
            writer.transport.abort()
            return
        self.clients += 1
        try:
            line = await asyncio.wait_for(reader.readline(), self.REQUEST_TIMEOUT)
            reply = await self._dispatch(line)
            # drain() waits until the reply has left entirely: a client that does not read keeps nothing here.
            writer.transport.set_write_buffer_limits(high=0)
            writer.write(json.dumps(reply).encode() + b"\n")
            await asyncio.wait_for(writer.drain(), self.REQUEST_TIMEOUT)
            if self.clients == 1:
                self._flood_logged = False
        except asyncio.TimeoutError:
            self.timed_out += 1
        except (ConnectionError, asyncio.LimitOverrunError, asyncio.IncompleteReadError, ValueError):
            pass  # a client that went away or sent junk: nothing to answer
        finally:
            self.clients -= 1
            writer.transport.abort()  # the reply is out (or the client lost it): nothing left to flush

    async def _dispatch(self, line: bytes) -> dict:
        import json

        try:
            message = json.loads(line)
            handler = self.handlers[message["cmd"]]
        except (ValueError, KeyError, TypeError):
            return {"error": f"bad request; commands: {', '.join(sorted(self.handlers))}"}
        try:
            return await handler(message)
        except Exception as exc:  # our bug: answer and log it, never crash the service
            self.log.exception("control request %r failed", message.get("cmd"))
            return {"error": f"internal error: {exc}"}


class Bound(NamedTuple):
    sock: socket.socket | None
    problem: str | None  # why there is no socket


def bind(state_dir: str) -> Bound:
    """The control socket in ``state_dir``, listening; raises AlreadyRunning when another daemon answers there.

    Made by root before the daemon becomes user bootres (``privsep``): the
    state directory stays root's, for the hooks' files in it.
    """
    path = socket_path(state_dir)
    if _answering(path):
        raise AlreadyRunning(f"another bootres is already serving {path}")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        if not os.path.isdir(state_dir):  # systemd makes it; `bootres run` by hand may not
            os.makedirs(state_dir, exist_ok=True)
            os.chmod(state_dir, 0o755)  # whatever the umask: the group's members reach the socket in it
        _remove_stale(path)
        # Created 0600 (umask) and opened to the group only once it is ours: no moment where anyone else can connect.
        # Made with group bootres as the effective group rather than chown'd to it after (the unit has no
        # CAP_CHOWN): under the unit it already is (Group=bootres); `bootres run` by hand as root switches to it.
        gid = _group_id()
        old_umask, old_gid = os.umask(0o177), os.getegid()
        try:
            if gid is not None and gid != old_gid:
                try:
                    os.setegid(gid)
                except PermissionError:
                    gid = None  # not root: this user's own socket, 0600
            sock.bind(path)
        finally:
            os.umask(old_umask)
            if os.getegid() != old_gid:
                os.setegid(old_gid)
        if gid is not None:
            os.chmod(path, 0o660)
        sock.listen(ControlServer.MAX_CLIENTS)
        sock.setblocking(False)
        return Bound(sock, None)
    except OSError as exc:
        sock.close()
        return Bound(None, f"control socket {path}: {exc.strerror or exc}; `bootres status` cannot reach this daemon")


def _group_id() -> int | None:
    import grp

    try:
        return grp.getgrnam(GROUP).gr_gid
    except KeyError:
        return None


def _answering(path: str) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as sock:
        try:
            sock.connect(path)
        except OSError:
            return False
    return True


def _remove_stale(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except PermissionError:
        pass  # at stop, as user bootres in root's state directory: the next start (root) removes it
