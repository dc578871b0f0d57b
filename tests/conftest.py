"""Fixtures shared by every test: the namespace lab and fake upstreams.

tests/ is on sys.path (``pythonpath = tests`` in tox.ini's [pytest]), so
test modules import helpers as ``from lab import Lab`` and
``from fakedns import FakeDNS``.
"""

import os
import pathlib
import shutil
import tempfile

import pytest

import lab as lab_module
from fakedns import FakeDNS


@pytest.fixture
def lab(tmp_path):
    """A fresh ``lab.Lab``; everything it made is gone after the test, pass or fail.

    Skipped when not root or without iproute2, unless BOOTRES_REQUIRE_LAB
    is set (CI sets it), where that is a failure instead: a CI run that
    silently skips the network tests must not pass.
    """
    reason = lab_module.unavailable()
    if reason:
        if os.environ.get("BOOTRES_REQUIRE_LAB"):
            pytest.fail(f"{reason} (and BOOTRES_REQUIRE_LAB is set)")
        pytest.skip(reason)
    with lab_module.Lab(tmp_path) as the_lab:
        yield the_lab
    _assert_no_handler_errors(the_lab.fakes)


@pytest.fixture
def fake_upstream_factory():
    """``make(**knobs) -> FakeDNS``: a started fake upstream on 127.0.0.1 (no root needed)."""
    servers = []

    def make(**knobs):
        server = FakeDNS.bind("127.0.0.1", **knobs)
        servers.append(server)
        return server.start()

    yield make
    for server in servers:
        server.stop()
    _assert_no_handler_errors(servers)


def _assert_no_handler_errors(servers):
    # A test's handle() that raised was answered with SERVFAIL; that must
    # not pass unnoticed as an upstream behaviour.
    errors = [error for server in servers for error in server.errors]
    assert not errors, f"fake upstream errors: {errors!r}"


@pytest.fixture(scope="session", autouse=True)
def no_namespace_left_behind():
    """Fail the run if any namespace it made outlived its test."""
    yield
    left = lab_module.leftovers()
    assert not left, f"network namespaces left behind: {left}"


# Files of this machine that no test may change (the tests' own copies live in
# namespaces, containers and tmp_path), and bootres's state directory, which a
# daemon started with the host's defaults would create.
_HOST_FILES = ("/etc/resolv.conf", "/etc/hosts", "/etc/defaultrouter", "/var/lib/bootres", "/run/bootres")


def _host_snapshot() -> dict:
    snapshot = {}
    for path in _HOST_FILES:
        if os.path.isdir(path):
            snapshot[path] = sorted(os.listdir(path))
        elif os.path.lexists(path):
            snapshot[path] = (os.readlink(path) if os.path.islink(path) else None, open(path, "rb").read())
        else:
            snapshot[path] = None
    return snapshot


@pytest.fixture(scope="session", autouse=True)
def host_files_untouched():
    """Fail the run if any test changed this machine's resolver files or bootres state."""
    before = _host_snapshot()
    yield
    after = _host_snapshot()
    changed = [path for path in _HOST_FILES if before[path] != after[path]]
    assert not changed, f"a test changed this machine's {changed}"


@pytest.fixture
def open_dir():
    """A directory uid 65534 can reach (pytest's tmp_path is under a 0700 directory), removed after the test."""
    path = pathlib.Path(tempfile.mkdtemp(prefix="bootres-test-"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)
