"""Runs RouterService and StubFilesService alone, as `bootres run` composes them, for the network tests.

    python rdisc_driver.py CONFIG STATUS_JSON

Started inside a lab namespace with ``ip netns exec``.  One NetlinkWatch
feeds both services, started and stopped in the daemon's order (watch,
files, router; then router, watch, files).  The status of both services is
written to STATUS_JSON every 50 ms (atomically), so tests can watch it;
logs go to stderr.  SIGHUP reloads CONFIG (``RouterService.reconfigure``,
``StubFilesService.reconfigure``); SIGTERM stops both cleanly.
"""

import asyncio
import json
import logging
import signal
import sys

from bootres import config
from bootres.core.report import to_json
from bootres.shell.fileio import atomic_write
from bootres.shell.netwatch import NetlinkWatch
from bootres.shell.router_service import RouterService
from bootres.shell.stubfiles_service import StubFilesService


async def main(config_path: str, status_path: str) -> None:
    cfg = config.load(config_path)
    files = StubFilesService(cfg.hosts, cfg.router, logging.getLogger("bootres.files"), lookup=None, retry_interval=0.5)
    watch = NetlinkWatch(logging.getLogger("bootres.netlink"))
    watch.subscribe(files.observe)
    await watch.start()
    await files.start()
    router = RouterService(cfg.router, logging.getLogger("bootres.router"), files.set_routers, watch,
                           remembered=files.routers)
    await router.start()

    def reload() -> None:
        new = config.load(config_path)
        steps = [files.prepare_reconfigure(new.hosts, new.router), router.prepare_reconfigure(new.router)]
        for commit in steps:
            commit()
        logging.getLogger("bootres").info("reloaded %s", config_path)

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reload)
    while not stop.is_set():
        atomic_write(status_path, json.dumps({"router": to_json(router.status()), "files": to_json(files.status())}))
        try:
            await asyncio.wait_for(stop.wait(), 0.05)
        except asyncio.TimeoutError:
            pass
    await router.stop()
    await watch.stop()
    await files.stop()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    logging.getLogger("bootres").setLevel(logging.DEBUG)
    asyncio.run(main(sys.argv[1], sys.argv[2]))
