"""RouterService.stop() on the real NetlinkWatch: nothing armed, sent or submitted afterwards.

The service runs in this process, on a thread inside the host namespace
(``Netns.call``), so the test can look at it between ``stop()`` and the
watch's own ``stop()``, which the daemon calls after it.
"""

import asyncio
import json
import logging
import subprocess
import time

from bootres import config
from rdisc_lab import TestRouter


class Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


def default_routes() -> list[str]:
    # Run from the namespaced thread, so it sees the host namespace's table.
    out = subprocess.run(["ip", "-j", "-4", "route", "show", "default"], capture_output=True, text=True,
                         check=True, timeout=5).stdout
    return [route["gateway"] for route in json.loads(out or "[]")]


async def start_and_stop(cfg: config.RouterConfig, log: logging.Logger) -> dict:
    from bootres.shell.netwatch import NetlinkWatch
    from bootres.shell.router_service import RouterService

    watch = NetlinkWatch(log.getChild("netlink"))
    await watch.start()
    routers: list[list[str]] = []
    service = RouterService(cfg, log, routers.append, watch)
    await service.start()
    # start() found eth0 (a socket, a solicitation due within 1 s) and asked for the static route.
    seen = {"armed": service.driver.armed is not None, "route changes": len(service._route_tasks),
            "sockets": len(service.sockets)}
    await service.stop()
    seen["after stop"] = {"armed": service.driver.armed is not None or service._retry is not None,
                          "route changes": len(service._route_tasks), "sockets": len(service.sockets),
                          "routes": default_routes()}
    told, dumps = len(routers), watch.dumps
    # The kernel changes under the watch, which is still running: the service must not react.
    subprocess.run(["ip", "route", "del", "default"], check=True, timeout=5)
    subprocess.run(["ip", "addr", "add", "198.18.1.11/24", "dev", "eth0"], check=True, timeout=5)
    await asyncio.sleep(1.5)  # past the latest solicitation time and a few snapshots
    seen["later"] = {"routes": default_routes(), "told": len(routers) - told, "snapshots": watch.dumps - dumps,
                     "armed": service.driver.armed is not None or service._retry is not None}
    await watch.stop()
    return seen


def test_after_stop_nothing_is_armed_sent_or_submitted(lab, tmp_path):
    host, router_ns = lab.netns("host"), lab.netns("router")
    _, router_if = lab.link(host, "198.18.1.10/24", router_ns, "198.18.1.1/24")
    router = TestRouter(router_ns, router_if, "198.18.1.1", answer_solicitations=False)
    lab.cleanup.callback(router.close)
    conf = tmp_path / "bootres.conf"
    conf.write_text("[router]\nstatic = 198.18.1.99\ndefaultrouter_file =\n")
    log = logging.getLogger("bootres.test-stop")
    records = Records()
    log.addHandler(records)
    log.setLevel(logging.DEBUG)
    try:
        seen = host.call(asyncio.run, start_and_stop(config.load(str(conf)).router, log))
    finally:
        log.removeHandler(records)
        log.setLevel(logging.NOTSET)

    assert seen["armed"] and seen["route changes"] == 1 and seen["sockets"] == 1
    # The change asked for before stop() was awaited (the route stays on stop), the rest undone.
    assert seen["after stop"] == {"armed": False, "route changes": 0, "sockets": 0, "routes": ["198.18.1.99"]}
    # The watch delivered new snapshots, and nothing followed: no route put back, no solicitation, no timer.
    assert seen["later"]["snapshots"] >= 1
    assert seen["later"] == {"routes": [], "told": 0, "snapshots": seen["later"]["snapshots"], "armed": False}
    time.sleep(0.1)
    assert router.solicitations == []
    assert [r.getMessage() for r in records.records if r.levelno >= logging.WARNING] == []
    assert "default route via 198.18.1.99 installed" in [r.getMessage() for r in records.records]
