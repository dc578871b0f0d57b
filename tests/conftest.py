"""Fixtures shared by every test: the namespace lab and fake upstreams.

tests/ is on sys.path (``pythonpath = tests`` in tox.ini's [pytest]), so
test modules import helpers as ``from lab import Lab`` and
``from fakedns import FakeDNS``.
"""

import os

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
