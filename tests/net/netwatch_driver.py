"""Runs a NetlinkWatch alone, for tests/net/test_netwatch.py.

    ip netns exec NS python netwatch_driver.py

Prints one JSON line per snapshot delivered (``time.monotonic()`` at
delivery, which is the same clock in every process, and what the snapshot
says), and ``{"dumps": N}`` for every line read on stdin.  Ends at EOF.
"""

import asyncio
import json
import logging
import sys
import time

from bootres.shell.netwatch import NetlinkWatch


def describe(snapshot, watch) -> dict:
    return {
        "t": time.monotonic(),
        "dumps": watch.dumps,
        "primary": str(snapshot.primary_address) if snapshot.primary_address else None,
        "primary6": str(snapshot.primary_address6) if snapshot.primary_address6 else None,
        "routes": [str(route.gateway) for route in snapshot.default_routes],
        "routes6": [[str(route.gateway), route.proto] for route in snapshot.default_routes6],
        "links": {link.name: {"up": link.up, "addresses": [str(a) for a in link.addresses],
                              "addresses6": [str(a) for a in link.addresses6]} for link in snapshot.links},
    }


async def main() -> None:
    watch = NetlinkWatch(logging.getLogger("bootres.netwatch"))
    watch.subscribe(lambda snapshot: print(json.dumps(describe(snapshot, watch)), flush=True))
    await watch.start()
    loop = asyncio.get_running_loop()
    done = asyncio.Event()

    def command() -> None:
        if sys.stdin.readline():
            print(json.dumps({"dumps": watch.dumps}), flush=True)
        else:
            loop.remove_reader(sys.stdin.fileno())
            done.set()

    loop.add_reader(sys.stdin.fileno(), command)
    await done.wait()
    await watch.stop()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    asyncio.run(main())
