"""The control socket: one JSON request line in, one JSON reply line out.

The daemon serves it in ``state_dir``; ``bootres status`` and ``bootres query``
are its clients.  JSON keeps the CLI free of any knowledge of the daemon's
internals and gives ``status --json`` for free.
"""

from __future__ import annotations

import json
import os
import socket

SOCKET_NAME = "control.sock"


class NotRunning(Exception):
    """Nothing listens on the control socket."""


def socket_path(state_dir: str) -> str:
    return os.path.join(state_dir, SOCKET_NAME)


def request(state_dir: str, message: dict, timeout: float = 10.0) -> dict:
    """Send one request to the running daemon and return its reply."""
    path = socket_path(state_dir)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(path)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise NotRunning(f"bootres is not running (no service on {path}: {exc.strerror})") from None
        sock.sendall(json.dumps(message).encode() + b"\n")
        with sock.makefile("rb") as reply:
            line = reply.readline(16 * 1024 * 1024)
    if not line:
        raise NotRunning(f"bootres closed {path} without answering")
    return json.loads(line)
