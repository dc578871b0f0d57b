"""netlinkio imports only the part of pyroute2 it uses, and leaves the real package importable."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent

PROBE = """
import sys
from bootres.shell import netlinkio
snapshot = netlinkio.Netlink().snapshot()  # this namespace's own links: no root needed
assert any(link.loopback for link in snapshot.links), snapshot
print(sorted(sys.modules))
import pyroute2
assert pyroute2.IPRoute is netlinkio.IPRoute
"""


def test_netlink_dump_without_the_pyroute2_package():
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    modules = set(eval(out))  # noqa: S307 (our own child's repr of a list of strings)
    assert "pyroute2" not in modules, "the package's __init__ ran, or was left half-made in sys.modules"
    assert "pyroute2.iproute.linux" in modules
    # What the package's __init__ would have loaded: none of it is needed for IPRoute.
    assert not {"pyroute2.ndb", "pyroute2.ipdb", "pyroute2.nftables", "pyroute2.ipset"} & modules
