"""bootres on a demo network, built in network namespaces on this machine.

    demo host  ── lan 198.18.0.0/24 ──┬── ns1     198.18.0.10  nsd, dead (black hole)
     (bootres)     198.18.0.2         ├── ns2     198.18.0.11  nsd, healthy
                                      └── router  198.18.0.1   RFC 1256 advertisements

bootres runs in the demo host with ns1 (dead) listed first, like a site
whose first nameserver just died. The demo shows a query answered at once
anyway, the default route learned by router discovery, the stub files and
`bootres status`, then keeps bootres running until Ctrl-C (or exits at once
with --once). Nothing outside the namespaces is touched: the host's files
live under /etc/netns/NAME and the demo's work directory.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "net")]

from lab import Lab  # noqa: E402  (the test lab, reused as is)
from rdisc_lab import TestRouter  # noqa: E402

CONFIG = """\
[resolver]
listen = 127.0.0.35:53
manage_resolv_conf = no
upstreams = 198.18.0.10 198.18.0.11
cache_file = {work}/cache.db
hosts_files =

[hosts]
file = /etc/netns/{ns}/hosts
router_names = site-router
pin = nfs1.demo.test

[router]
static = 198.18.0.254
defaultrouter_file = {work}/defaultrouter

[service]
state_dir = {work}/run
"""


def show(ns, *argv: str) -> None:
    print(f"\n$ {' '.join(argv)}", flush=True)
    result = ns.run(*argv, check=False, timeout=20)
    print((result.stdout + result.stderr).rstrip(), flush=True)


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise SystemExit(f"demo: gave up waiting for {what}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--once", action="store_true", help="show everything, then stop")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bootres-demo-"))
    with Lab(work) as lab:
        lan = lab.switch()
        host, ns1, ns2, gw = (lab.netns(label) for label in ("host", "ns1", "ns2", "router"))
        lab.attach(host, lan, "198.18.0.2/24")
        lab.attach(ns1, lan, "198.18.0.10/24")
        lab.attach(ns2, lan, "198.18.0.11/24")
        gw_if = lab.attach(gw, lan, "198.18.0.1/24")
        records = {"www": "198.18.0.80", "nfs1": "198.18.0.20"}
        for ns, address in ((ns1, "198.18.0.10"), (ns2, "198.18.0.11")):
            lab.nsd(ns, address, zone="demo.test.", records=records)
        lab.blackhole(ns1)
        router = TestRouter(gw, gw_if, "198.18.0.1", preference=10, lifetime=1800)
        lab.cleanup.callback(router.close)
        router.interval = 60.0

        conf = work / "bootres.conf"
        conf.write_text(CONFIG.format(work=work, ns=host.name))
        (work / "run").mkdir()
        bootres = [sys.executable, "-m", "bootres"]
        os.environ["PYTHONPATH"] = str(ROOT)  # every command below runs this tree's bootres
        print(f"demo: bootres run -c {conf}  (in namespace {host.name}, log {work}/bootres.log)")
        log = open(work / "bootres.log", "w")
        daemon = host.popen(*bootres, "run", "-c", str(conf), stdout=log, stderr=subprocess.STDOUT)

        def status_ok() -> bool:
            return host.run(*bootres, "status", "-c", str(conf), check=False).returncode in (0, 1)

        wait_for(status_ok, 20, "bootres to answer on its control socket")
        wait_for(lambda: "198.18.0.1" in host.run("ip", "route", "show", "default").stdout, 10,
                 "the default route from router discovery")
        for name in ("www.demo.test", "www.demo.test", "nfs1.demo.test"):
            show(host, *bootres, "query", "-c", str(conf), name)
        show(host, "dig", "+noall", "+answer", "+stats", "@127.0.0.35", "www.demo.test")
        show(host, "ip", "route", "show", "default")
        show(host, "cat", str(work / "defaultrouter"))
        show(host, "getent", "hosts", "site-router")
        show(host, "cat", f"/etc/netns/{host.name}/hosts")
        show(host, *bootres, "status", "-c", str(conf))
        if not args.once:
            print("\ndemo: bootres keeps running; Ctrl-C stops it and removes the demo network", flush=True)
            signal.signal(signal.SIGTERM, signal.default_int_handler)
            try:
                while daemon.poll() is None:
                    time.sleep(1)
            except KeyboardInterrupt:
                pass
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(timeout=10)
        print(f"demo: bootres stopped with status {code}; removing the demo network")
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
