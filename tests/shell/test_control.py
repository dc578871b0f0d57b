"""The control socket: the daemon's server half against the CLI's client half, on real AF_UNIX sockets."""

from __future__ import annotations

import asyncio
import logging
import socket

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


def test_unusable_state_dir_falls_back_to_an_abstract_socket(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    state_dir = str(blocker / "state")  # under a regular file: cannot exist
    problem, replies = asyncio.run(serve_and_ask(state_dir, {"cmd": "status"}))
    assert problem.startswith(f"control socket {state_dir}/control.sock: ")
    assert replies == [{"echo": {"cmd": "status"}}]  # the client found the fallback


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
