"""The control socket: the daemon's server half against the CLI's client half, on real AF_UNIX sockets."""

from __future__ import annotations

import asyncio
import grp
import logging
import os
import socket
import subprocess
import sys
import time

import pytest

from bootres.shell import control

LOG = logging.getLogger("test")


async def echo(message: dict) -> dict:
    return {"echo": message}


async def broken(message: dict) -> dict:
    raise RuntimeError("our bug")


async def serve_and_ask(state_dir: str, *messages, handlers=None) -> tuple[str | None, list]:
    server = control.ControlServer(handlers or {"status": echo, "query": echo, "broken": broken}, LOG)
    problem = await server.start(state_dir)
    try:
        replies = [await asyncio.to_thread(control.request, state_dir, m, 5) for m in messages]
    finally:
        await server.stop()
    return problem, replies


def test_request_reply(tmp_path):
    problem, replies = asyncio.run(serve_and_ask(str(tmp_path / "state"), {"cmd": "status"}))
    assert problem is None
    assert replies == [{"echo": {"cmd": "status"}}]
    assert not (tmp_path / "state" / "control.sock").exists()  # removed on stop


def test_bad_requests_and_our_bugs_get_an_error_reply(tmp_path, caplog):
    _, replies = asyncio.run(serve_and_ask(str(tmp_path), {"cmd": "nope"}, {"no": "cmd"}, {"cmd": "broken"}))
    assert replies[0]["error"].startswith("bad request; commands: broken, query, status")
    assert replies[1]["error"].startswith("bad request")
    assert replies[2] == {"error": "internal error: our bug"}
    assert "control request 'broken' failed" in caplog.text


def test_junk_line_does_not_stop_the_server(tmp_path):
    async def scenario():
        server = control.ControlServer({"status": echo}, LOG)
        await server.start(str(tmp_path))

        def junk_then_real():
            with socket.socket(socket.AF_UNIX) as sock:
                sock.connect(control.socket_path(str(tmp_path)))
                sock.sendall(b"\xff\xfe not json\n")
                junk = sock.makefile("rb").readline()
            return junk, control.request(str(tmp_path), {"cmd": "status"}, 5)

        try:
            return await asyncio.to_thread(junk_then_real)
        finally:
            await server.stop()

    junk, real = asyncio.run(scenario())
    assert b"bad request" in junk and real == {"echo": {"cmd": "status"}}


def test_unusable_state_dir_is_a_problem_and_nothing_else_is_served(tmp_path):
    """No fallback name another user could bind first (issue 21): the client says not running."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    state_dir = str(blocker / "state")  # under a regular file: cannot exist
    server = control.ControlServer({"status": echo}, LOG)
    problem = asyncio.run(server.start(state_dir))
    assert problem.startswith(f"control socket {state_dir}/control.sock: ")
    assert server.server is None
    with pytest.raises(control.NotRunning):
        control.request(state_dir, {"cmd": "status"})


def test_not_running(tmp_path):
    with pytest.raises(control.NotRunning, match="bootres is not running"):
        control.request(str(tmp_path), {"cmd": "status"})


def test_stale_socket_is_replaced_and_a_live_one_refused(tmp_path):
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(tmp_path / "control.sock"))
    stale.close()  # the file stays: what a killed daemon leaves

    async def scenario():
        first = control.ControlServer({"status": echo}, LOG)
        assert await first.start(str(tmp_path)) is None
        try:
            with pytest.raises(control.AlreadyRunning):
                await control.ControlServer({"status": echo}, LOG).start(str(tmp_path))
        finally:
            await first.stop()

    asyncio.run(scenario())


def as_nobody(code: str) -> subprocess.Popen:
    """Python ``code`` run as uid/gid 65534 with no supplementary group (a local user, not in group bootres)."""
    return subprocess.Popen(["/usr/bin/python3", "-c", code], user=65534, group=65534, extra_groups=[], cwd="/",
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="switches to uid 65534")


@needs_root
def test_the_socket_is_for_root_and_group_bootres_only(open_dir):
    tmp_path = open_dir
    async def scenario():
        server = control.ControlServer({"status": echo}, LOG)
        assert await server.start(str(tmp_path)) is None
        try:
            path = control.socket_path(str(tmp_path))
            mode = os.stat(path).st_mode & 0o777
            other = await asyncio.to_thread(lambda: as_nobody(
                "import socket, sys\n"
                "s = socket.socket(socket.AF_UNIX)\n"
                f"try: s.connect({path!r})\n"
                "except PermissionError: print('EACCES')\n").communicate(timeout=20))
            return mode, other
        finally:
            await server.stop()

    mode, (out, err) = asyncio.run(scenario())
    assert out.strip() == "EACCES", err
    try:
        grp.getgrnam(control.GROUP)
        assert mode == 0o660
    except KeyError:
        assert mode == 0o600  # no bootres group on this machine: root only


@needs_root
def test_a_squatter_on_the_socket_is_never_believed(open_dir):
    """Another user serving the path (a state_dir it can write): `bootres status` says not running, shows nothing."""
    tmp_path = open_dir
    state = tmp_path / "state"
    state.mkdir()
    os.chown(state, 65534, 65534)
    path = control.socket_path(str(state))
    # First the old fallback name, which any user can bind: never asked any more.
    abstract = as_nobody(
        "import socket\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        f"s.bind({chr(0) + 'bootres:' + str(state)!r}); s.listen(8); print('ready', flush=True)\n"
        "while True:\n"
        "    c, _ = s.accept(); c.recv(4096)\n"
        "    c.sendall(b'{\"running\": true, \"forged\": true}\\n'); c.close()\n")
    try:
        assert abstract.stdout.readline().strip() == "ready"
        cli = subprocess.run([sys.executable, "-m", "bootres", "status", "--config", str(write_config(tmp_path, state)),
                              "--json"], capture_output=True, text=True, timeout=60)
        assert cli.returncode == 3 and "forged" not in cli.stdout and "No such file" in cli.stdout, cli.stdout
    finally:
        abstract.kill()
        abstract.wait()
    squatter = as_nobody(
        "import socket, os\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        f"s.bind({path!r}); os.chmod({path!r}, 0o666); s.listen(8); print('ready', flush=True)\n"
        "while True:\n"
        "    c, _ = s.accept(); c.recv(4096)\n"
        "    c.sendall(b'{\"running\": true, \"forged\": true}\\n'); c.close()\n")
    try:
        assert squatter.stdout.readline().strip() == "ready"
        with pytest.raises(control.NotRunning, match="served by uid 65534"):
            control.request(str(state), {"cmd": "status"}, 5)
        cli = subprocess.run([sys.executable, "-m", "bootres", "status", "--config", str(write_config(tmp_path, state)),
                              "--json"], capture_output=True, text=True, timeout=60)
        assert cli.returncode == 3 and "forged" not in cli.stdout, cli.stdout
    finally:
        squatter.kill()
        squatter.wait()


def write_config(tmp_path, state):
    conf = tmp_path / "bootres.conf"
    conf.write_text(f"[service]\nstate_dir = {state}\n")
    return conf


def test_a_flood_of_idle_clients_is_bounded_and_one_log_line(tmp_path, caplog, monkeypatch):
    """MAX_CLIENTS at once, the rest closed unanswered; idle ones time out; status keeps answering after."""
    monkeypatch.setattr(control.ControlServer, "REQUEST_TIMEOUT", 0.5)

    async def scenario():
        server = control.ControlServer({"status": echo}, LOG)
        await server.start(str(tmp_path))
        path = control.socket_path(str(tmp_path))

        def flood():
            held = []
            for _ in range(control.ControlServer.MAX_CLIENTS + 40):
                sock = socket.socket(socket.AF_UNIX)
                sock.connect(path)
                held.append(sock)
            time.sleep(0.2)
            closed_at_once = 0
            for sock in held[control.ControlServer.MAX_CLIENTS:]:
                sock.settimeout(0.3)
                try:
                    closed_at_once += sock.recv(1) == b""
                except (socket.timeout, ConnectionResetError):
                    closed_at_once += 1 if isinstance(sys.exc_info()[1], ConnectionResetError) else 0
            time.sleep(0.8)  # past REQUEST_TIMEOUT: the idle ones are gone too
            reply = control.request(str(tmp_path), {"cmd": "status"}, 5)
            for sock in held:
                sock.close()
            return closed_at_once, reply

        try:
            return await asyncio.to_thread(flood), server
        finally:
            await server.stop()

    (closed_at_once, reply), server = asyncio.run(scenario())
    assert closed_at_once == 40
    assert reply == {"echo": {"cmd": "status"}}
    assert server.turned_away == 40 and server.timed_out == control.ControlServer.MAX_CLIENTS
    assert caplog.text.count("clients at once") == 1
