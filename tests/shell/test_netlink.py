"""netlink imports only the part of pyroute2 it uses, and leaves the real package importable."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent

PROBE = """
import sys
from bootres.shell import netlink
snapshot = netlink.Netlink().snapshot()  # this namespace's own links: no root needed
assert any(link.loopback for link in snapshot.links), snapshot
print(sorted(sys.modules))
import pyroute2
assert pyroute2.IPRoute is netlink.IPRoute
"""


def test_netlink_dump_without_the_pyroute2_package():
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    modules = set(eval(out))  # noqa: S307 (our own child's repr of a list of strings)
    assert "pyroute2" not in modules, "the package's __init__ ran, or was left half-made in sys.modules"
    assert "pyroute2.iproute.linux" in modules
    # What the package's __init__ would have loaded: none of it is needed for IPRoute.
    assert not {"pyroute2.ndb", "pyroute2.ipdb", "pyroute2.nftables", "pyroute2.ipset"} & modules


HIDDEN_PSCHED = """
import builtins, logging, sys
logging.basicConfig(stream=sys.stdout, format="%(name)s %(levelname)s %(message)s")
real_open = builtins.open
def open_(path, *args, **kwargs):  # as under bootres.service's ProcSubset=pid
    if path == "/proc/net/psched":
        raise FileNotFoundError(2, "No such file or directory", path)
    return real_open(path, *args, **kwargs)
builtins.open = open_
from bootres.shell import netlink
import pyroute2.netlink.rtnl.tcmsg.common as tc
assert tc.clock_res == 0  # the file was unreadable indeed
logging.getLogger("pyroute2.netlink.rtnl.tcmsg.common").warning("still heard")
"""


def test_pyroute2s_tc_warnings_stay_out_of_the_journal():
    """Issue 19: every boot logged "tcmsg: [Errno 2] ... /proc/net/psched" and "the tc subsystem ... limited"."""
    out = subprocess.run([sys.executable, "-c", HIDDEN_PSCHED], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    assert out == "pyroute2.netlink.rtnl.tcmsg.common WARNING still heard\n"  # silenced only while importing
