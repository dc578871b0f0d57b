"""The scenario bench's lab, built once for this directory's tests.

The bench (bench/scenarios/) is a package at the repository root, on the
tests' path by tox.ini's ``pythonpath``; its World is the bench's own
network (client, three nameservers, two routers), which these tests reuse
so that what they assert is what the bench measures.
"""

import os

import pytest

import lab as lab_module
from bench.scenarios.world import World


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The bench's World; skipped like the `lab` fixture when the lab cannot run here."""
    reason = lab_module.unavailable()
    if reason:
        if os.environ.get("BOOTRES_REQUIRE_LAB"):
            pytest.fail(f"{reason} (and BOOTRES_REQUIRE_LAB is set)")
        pytest.skip(reason)
    with World(tmp_path_factory.mktemp("scenarios")) as the_world:
        yield the_world
