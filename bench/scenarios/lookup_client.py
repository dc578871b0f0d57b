"""The measuring client: what an application sees, one getaddrinfo() at a time.

Run inside the client namespace (`ip netns exec`), so glibc reads that
namespace's resolv.conf with its stock options (timeout 5 s, 2 attempts):
every resolver is judged by the latency a real program gets, retries and
all.  Lock-step over pipes: one name per stdin line, one JSON line per
answer on stdout, so the orchestrator can act between two lookups (kill an
upstream after the 20th, ...).  Only A is asked (AF_INET), one query per
lookup.  Imports nothing from bench.
"""

import json
import socket
import sys
import time


def lookup(name: str) -> dict:
    start = time.perf_counter()
    try:
        infos = socket.getaddrinfo(name, None, socket.AF_INET, socket.SOCK_DGRAM)
        result = {"ok": True, "address": infos[0][4][0]}
    except socket.gaierror as exc:
        result = {"ok": False, "error": exc.strerror}
    result["ms"] = (time.perf_counter() - start) * 1000
    return result


def main() -> None:
    for line in sys.stdin:
        print(json.dumps(lookup(line.strip())), flush=True)


if __name__ == "__main__":
    main()
