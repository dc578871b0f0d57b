"""sd_notify against a real AF_UNIX datagram socket, and journal detection."""

from __future__ import annotations

import logging
import os
import socket
import time

import pytest

from bootres.shell import sd


@pytest.fixture
def manager(tmp_path):
    """A datagram socket standing in for systemd's notify socket."""
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(2)
        yield path, sock


def received(sock) -> list[str]:
    return sock.recv(4096).decode().split("\n")


def test_ready_and_status_in_one_datagram(manager):
    path, sock = manager
    env = {"NOTIFY_SOCKET": path}
    notifier = sd.Notifier(env)
    assert "NOTIFY_SOCKET" not in env  # popped: children must not inherit it
    assert notifier.ready("1/1 upstreams up")
    assert received(sock) == ["READY=1", "STATUS=1/1 upstreams up"]


def test_reloading_carries_monotonic_usec(manager):
    path, sock = manager
    notifier = sd.Notifier({"NOTIFY_SOCKET": path})
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    notifier.reloading()
    fields = received(sock)
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert fields[0] == "RELOADING=1"
    key, value = fields[1].split("=")
    assert key == "MONOTONIC_USEC" and before <= int(value) <= after


def test_stopping_watchdog_and_status(manager):
    path, sock = manager
    notifier = sd.Notifier({"NOTIFY_SOCKET": path})
    notifier.stopping()
    assert received(sock) == ["STOPPING=1"]
    notifier.watchdog()
    assert received(sock) == ["WATCHDOG=1"]
    notifier.status("line one\nline two")
    assert received(sock) == ["STATUS=line one line two"]


def test_abstract_socket_name():
    name = f"bootres-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2)
        assert sd.Notifier({"NOTIFY_SOCKET": "@" + name}).ready()
        assert received(sock) == ["READY=1"]


def test_no_manager_is_a_silent_no_op():
    assert sd.Notifier({}).ready() is False


def test_vanished_manager_does_not_raise(tmp_path):
    assert sd.Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone")}).ready() is False


@pytest.mark.parametrize(
    "env, interval",
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),  # meant for another process
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval(env, interval):
    notifier = sd.Notifier(env)
    assert notifier.watchdog_interval() == interval
    assert "WATCHDOG_USEC" not in env and "WATCHDOG_PID" not in env


def test_journal_stream_detection(tmp_path):
    with open(tmp_path / "stream", "w") as stream:
        st = os.fstat(stream.fileno())
        assert sd.journal_stream_matches({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}, stream)
        assert not sd.journal_stream_matches({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino + 1}"}, stream)
        assert not sd.journal_stream_matches({"JOURNAL_STREAM": "junk"}, stream)
        assert not sd.journal_stream_matches({}, stream)


def test_plain_stderr_logging_outside_systemd(capsys):
    logger = sd.setup_logging(environ={})
    logger.warning("upstream 198.18.0.10:53 down")
    assert capsys.readouterr().err == "bootres: WARNING: upstream 198.18.0.10:53 down\n"


def test_priority_prefixes_when_journal_lacks_python_systemd():
    record = logging.LogRecord("bootres", logging.ERROR, __file__, 1, "cannot bind", None, None)
    assert sd._PriorityPrefix("%(message)s").format(record) == "<3>cannot bind"


def test_store_fds_replaces_the_named_set(manager):
    path, sock = manager
    notifier = sd.Notifier({"NOTIFY_SOCKET": path})
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as one, socket.socket() as two:
        assert notifier.store_fds([one, two], "listen")
        assert received(sock) == ["FDSTOREREMOVE=1", "FDNAME=listen"]
        data, fds, _, _ = socket.recv_fds(sock, 4096, 4)
    try:
        assert data.decode().split("\n") == ["FDSTORE=1", "FDNAME=listen"]
        assert len(fds) == 2
        with socket.socket(fileno=os.dup(fds[0])) as copy:
            assert copy.type == socket.SOCK_DGRAM
    finally:
        for fd in fds:
            os.close(fd)


def test_listen_fds_only_when_meant_for_us():
    env = {"LISTEN_PID": "1", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "listen:listen"}
    assert sd.listen_fds(env) == []
    assert env == {}  # popped either way
    assert sd.listen_fds({"LISTEN_PID": str(os.getpid()), "LISTEN_FDS": "0"}) == []
