"""Runs RouterService and StubFiles alone, as `bootres run` composes them, for the network tests.

    python rdisc_driver.py CONFIG STATUS_JSON [POLL_INTERVAL]

Started inside a lab namespace with ``ip netns exec``.  The status of both
services is written to STATUS_JSON every 50 ms (atomically), so tests can
watch it; logs go to stderr.  SIGTERM stops both cleanly.
"""

import asyncio
import json
import logging
import signal
import sys

from bootres import config
from bootres.shell.fileio import atomic_write
from bootres.shell.routerd import RouterService
from bootres.shell.stubfiles import StubFiles


async def main(config_path: str, status_path: str, poll_interval: float) -> None:
    cfg = config.load(config_path)
    files = StubFiles(cfg.hosts, cfg.router, logging.getLogger("bootres.files"), lookup=None, retry_interval=0.5)
    router = RouterService(cfg.router, logging.getLogger("bootres.router"), files.set_routers,
                           poll_interval=poll_interval)
    await files.start()
    await router.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    while not stop.is_set():
        atomic_write(status_path, json.dumps({"router": router.status(), "files": files.status()}))
        try:
            await asyncio.wait_for(stop.wait(), 0.05)
        except asyncio.TimeoutError:
            pass
    await router.stop()
    await files.stop()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    logging.getLogger("bootres").setLevel(logging.DEBUG)
    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3]) if len(sys.argv) > 3 else 0.5))
