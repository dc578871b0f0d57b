"""The control socket: one JSON request line in, one JSON reply line out.

The daemon serves it in ``state_dir``; ``bootres status`` and ``bootres query``
are its clients.  JSON keeps the CLI free of any knowledge of the daemon's
internals and gives ``status --json`` for free.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from typing import Awaitable, Callable

SOCKET_NAME = "control.sock"


class NotRunning(Exception):
    """Nothing listens on the control socket."""


class AlreadyRunning(Exception):
    """Another daemon answers on this state directory's control socket."""


def socket_path(state_dir: str) -> str:
    return os.path.join(state_dir, SOCKET_NAME)


def request(state_dir: str, message: dict, timeout: float = 10.0) -> dict:
    """Send one request to the running daemon and return its reply."""
    import json  # json is imported where used: the daemon starts serving names before any request

    path = socket_path(state_dir)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(path)
        except OSError as exc:
            try:
                sock.connect(abstract_name(state_dir))  # the daemon could not use state_dir
            except OSError:
                raise NotRunning(f"bootres is not running (no service on {path}: {exc.strerror})") from None
        sock.sendall(json.dumps(message).encode() + b"\n")
        with sock.makefile("rb") as reply:
            line = reply.readline(16 * 1024 * 1024)
    if not line:
        raise NotRunning(f"bootres closed {path} without answering")
    return json.loads(line)


# --- the server half, run by the daemon


def abstract_name(state_dir: str) -> str:
    """Fallback address when ``state_dir`` is unusable (read-only, missing).

    The abstract namespace needs no writable directory, so ``bootres status``
    keeps working and can report why the state directory is broken.
    """
    return "\0bootres:" + os.path.abspath(state_dir)


Handler = Callable[[dict], Awaitable[dict]]


class ControlServer:
    """Answers JSON-line requests by ``cmd`` with the given coroutine functions."""

    MAX_REQUEST = 64 * 1024  # requests are tiny; anything bigger is not ours

    def __init__(self, handlers: dict[str, Handler], log: logging.Logger):
        self.handlers = handlers
        self.log = log
        self.server: asyncio.AbstractServer | None = None
        self.address: str | None = None

    async def start(self, state_dir: str) -> str | None:
        """Listen in ``state_dir``, or on the abstract fallback; return why the directory was unusable."""
        path = socket_path(state_dir)
        if _answering(path):
            raise AlreadyRunning(f"another bootres is already serving {path}")
        try:
            os.makedirs(state_dir, mode=0o755, exist_ok=True)  # systemd makes it; `bootres run` by hand may not
            _remove_stale(path)
            self.server = await asyncio.start_unix_server(self._serve, path=path, limit=self.MAX_REQUEST)
            # Reading status is harmless and resolvectl answers any user too.
            os.chmod(path, 0o666)
            self.address = path
            return None
        except OSError as exc:
            problem = f"control socket {path}: {exc.strerror or exc}"
            if self.server is not None:
                self.server.close()
        self.server = await asyncio.start_unix_server(
            self._serve, path=abstract_name(state_dir), limit=self.MAX_REQUEST
        )
        self.address = "@" + abstract_name(state_dir)[1:]
        self.log.warning("%s; serving status on %s instead", problem, self.address)
        return problem

    async def stop(self) -> None:
        if self.server is None:
            return
        self.server.close()
        await self.server.wait_closed()
        if self.address and not self.address.startswith("@"):
            _remove_stale(self.address)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        import json

        try:
            line = await reader.readline()
            reply = await self._dispatch(line)
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        except (ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass  # a client that went away or sent junk: nothing to answer
        finally:
            writer.close()

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
