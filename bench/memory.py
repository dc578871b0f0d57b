#!/usr/bin/env python3
"""Where ``bootres run``'s memory goes: the whole service at three stages, by mapping and by module, and per cached name.

1. The service, in the lab of bench/resolver_qps.py (nsd authoritative for
   example.test on 198.18.0.10; ``bootres run`` with router discovery on,
   every file under a temporary directory, on 127.0.0.38): VmRSS, RssAnon,
   RssFile, Pss and the threads at its first answer, 2 s later (router
   discovery and the stub files running, pyroute2 imported), and once
   --names names are cached (dnsperf asks each once; the cache's size is
   read back from ``bootres status``).  Each stage's RSS and Pss is split by
   mapping (/proc/PID/smaps): the interpreter's binary, libssl/libcrypto,
   other shared libraries, thread stacks (anonymous 8 MiB mappings with a
   guard page), the heap (every other anonymous mapping: Python's objects).
2. By module, in a fresh interpreter (``--stages``, no lab needed): VmRSS
   after each step of what the service loads, in its order: the interpreter
   and site, the command line and configuration, asyncio (made without ssl,
   as ``bootres run`` makes it, and with ssl for comparison), bootres's
   service modules, systemd-python's journal handler (used under systemd
   only), pyroute2 as netlink imports it and as the whole package,
   dnspython (only ``bootres query``, pinned names and unusual queries load
   it), the service's worker threads.
3. The cache per name: --names real replies from nsd (read in step 1) go
   through ``read_reply`` and into a ``Cache`` as a miss puts them, in
   three caches: the first reuses what reading the replies freed, the
   second's RSS growth and the third's ``tracemalloc`` growth are the cost
   per entry (the cache's table included); and the objects of one entry by
   ``sys.getsizeof``.

Needs root, nsd, dnsperf.  Run (as root, from the repository root):

    flock /tmp/bench.lock env PYTHON=/usr/bin/python3 /usr/bin/python3 bench/memory.py [--names 10000]

Prints the figures and writes bench/results/memory-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import record
from resolver_qps import ROOT, SERVERS, UPSTREAM, bootres_config, dnsperf, names_file, start_bootres
from lab import Lab  # noqa: E402 (resolver_qps put tests/ on the path)

SERVING = 2.0  # seconds after the first answer: router discovery and the stub files are up
THREADS = 4  # the service's worker threads: netlink, files, resolv.conf, asyncio's default executor


def kib(path: Path, keys: tuple[str, ...]) -> dict[str, int]:
    found = {}
    for line in path.read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in keys:
            found[name] = int(rest.split()[0]) if name != "Threads" else int(rest)
    return found


def smaps_groups(pid: int) -> dict[str, dict[str, int]]:
    """Rss and Pss (KiB) of the process's mappings, grouped as the module docstring says."""
    groups: dict[str, dict[str, int]] = {}
    mapping: dict = {}
    previous_guard = False

    def close(entry: dict) -> None:
        path, size = entry.get("path", ""), entry.get("Size", 0)
        if "libssl" in path or "libcrypto" in path or "/_ssl." in path or "/_hashlib." in path:
            group = "libssl, libcrypto (+ _ssl, _hashlib)"
        elif path.endswith(("/python3.11", "/python3")) or "libpython" in path:
            group = "python binary"
        elif ".so" in path:
            group = "other shared libraries"
        elif path == "[stack]":
            group = "main stack"
        elif path == "" and entry.get("after_guard") and 1024 <= size <= 16384:  # glibc: 8 MiB less the guard
            group = "thread stacks"
        elif path in ("", "[heap]"):
            group = "heap (Python objects, malloc)"
        else:
            group = "other mappings"
        totals = groups.setdefault(group, {"rss_kib": 0, "pss_kib": 0})
        totals["rss_kib"] += entry.get("Rss", 0)
        totals["pss_kib"] += entry.get("Pss", 0)

    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        fields = line.split()
        if "-" in fields[0] and len(fields) >= 5:  # a mapping's header line
            if mapping:
                close(mapping)
            previous_guard = mapping.get("perms") == "---p" and mapping.get("Size") == 4
            mapping = {"perms": fields[1], "path": " ".join(fields[5:]), "after_guard": previous_guard}
        elif fields[0] in ("Size:", "Rss:", "Pss:"):
            mapping[fields[0][:-1]] = int(fields[1])
    if mapping:
        close(mapping)
    return dict(sorted(groups.items(), key=lambda kv: -kv[1]["rss_kib"]))


def stage(pid: int) -> dict:
    status = kib(Path(f"/proc/{pid}/status"), ("VmRSS", "RssAnon", "RssFile", "Threads"))
    rollup = kib(Path(f"/proc/{pid}/smaps_rollup"), ("Pss", "Pss_Anon", "Pss_File"))
    return {**status, **rollup, "by_mapping": smaps_groups(pid)}


def fetch_replies(ns, names: list[str]) -> list[tuple[bytes, bytes]]:
    """(query, reply) from nsd for every name, plain queries as a stub sends them (RD, EDNS 1232)."""

    def ask() -> list[tuple[bytes, bytes]]:
        pairs = []
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(2)
            for n, name in enumerate(names):  # bounded: one query each, a 2 s timeout
                wire = b"".join(bytes([len(label)]) + label.encode() for label in name.split(".")) + b"\x00"
                query = struct.pack(">HHHHHH", n & 0xFFFF, 0x0100, 1, 0, 0, 1) + wire + struct.pack(">HH", 1, 1) \
                    + b"\x00" + struct.pack(">HHIH", 41, 1232, 0, 0)
                sock.sendto(query, (UPSTREAM, 53))
                pairs.append((query, sock.recv(4096)))
        return pairs

    return ns.call(ask)


def service_run(args, work: Path) -> tuple[dict, list[tuple[bytes, bytes]]]:
    from bootres.shell import control

    results: dict = {}
    with Lab(work) as lab:
        client, servers = lab.netns("client"), lab.netns("servers")
        lab.link(client, "198.18.0.2/24", servers, f"{UPSTREAM}/24")
        lab.nsd(servers, UPSTREAM, ttl=86400, rate_limit=False)
        env = dict(os.environ, PYTHONPYCACHEPREFIX=str(work / "pycache"))
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        address = SERVERS["bootres"]
        argv = [args.python, "-m", "bootres", "run", "-c", str(bootres_config(work, "bootres", address))]
        proc, _ = start_bootres(client, argv, address, env, "bytecode", ROOT)  # writes the bytecode
        proc.terminate()
        proc.wait(timeout=10)
        proc, ms = start_bootres(client, argv, address, env, "memory", ROOT)
        results["first_answer_ms"] = round(ms, 1)
        results["first answer"] = stage(proc.pid)
        time.sleep(SERVING)
        results["serving, empty cache"] = stage(proc.pid)
        names = names_file(work, args.names, "fill")
        dnsperf(client, address, names, once=True)
        report = control.request(str(work / "bootres" / "state"), {"cmd": "status"})
        results["cache_entries"] = report["resolver"]["cache"]["entries"]
        results[f"{args.names} names asked"] = stage(proc.pid)
        replies = fetch_replies(client, [line.split()[0] for line in names.read_text().splitlines()])
    return results, replies


STAGES = r'''
import gc, importlib, json, os, sys, threading, time, tracemalloc
sys.path.insert(0, os.getcwd())

def rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])

steps = [("interpreter and site", rss())]
def step(name, fn):
    fn()
    gc.collect()
    steps.append((name, rss()))

mode, replies_path = sys.argv[1], sys.argv[2]
step("command line, configuration (bootres.shell.cli, bootres.config)", lambda: importlib.import_module("bootres.shell.cli"))
def make_asyncio():
    if mode == "with-ssl":
        import asyncio
        return
    sys.modules["ssl"] = None
    import asyncio
    del sys.modules["ssl"]
step("asyncio" + (" (with ssl)" if mode == "with-ssl" else " (without ssl, as bootres run makes it)"), make_asyncio)
step("bootres service modules (daemon, resolver_service, clientwire_io, upstreamwire_io, the cores)",
     lambda: [importlib.import_module(m) for m in ("bootres.shell.daemon", "bootres.shell.resolver_service")])
def journal():
    from systemd.journal import JournalHandler
step("systemd-python journal handler (under systemd only)", journal)
def netlink():
    if mode == "whole-pyroute2":
        import pyroute2
    from bootres.shell import netlink, netwatch, router_service, stubfiles_service
    netlink.Netlink().snapshot()
step("pyroute2 " + ("(the whole package)" if mode == "whole-pyroute2" else "(what netlink imports)")
     + ", router discovery, stub files", netlink)
step("dnspython (dns.message: bootres query, pinned names, unusual queries)", lambda: importlib.import_module("dns.message"))
def threads():
    import concurrent.futures
    pools = [concurrent.futures.ThreadPoolExecutor(1) for _ in range(%(threads)d)]
    for pool in pools:
        pool.submit(sum, range(1000)).result()
    steps_threads.extend(pools)
steps_threads = []
step("%(threads)d worker threads", threads)

from bootres.core import clientwire, upstreamwire
from bootres.core.cache import Cache
with open(replies_path, "rb") as f:
    pairs = json.load(f)
pairs = [(bytes.fromhex(q), bytes.fromhex(r)) for q, r in pairs]

def fill():
    cache = Cache(len(pairs), 86400.0)
    for n, (query, reply) in enumerate(pairs):
        cache.put(clientwire.peek_query(query)[0], upstreamwire.read_reply(reply).answer, 1000.0 + n * 0.001)
    return cache

# Three caches of the same entries: the first takes up what reading the
# replies freed, the second's RSS growth and the third's tracemalloc
# growth are the cost of a cache of that many entries, its table included.
caches = [fill()]
gc.collect()
before = rss()
caches.append(fill())
gc.collect()
after = rss()
tracemalloc.start()
before_traced = tracemalloc.get_traced_memory()[0]
caches.append(fill())
gc.collect()
traced = tracemalloc.get_traced_memory()[0] - before_traced
tracemalloc.stop()
cache = caches[-1]
key, answer = next(iter(cache._entries.items()))
parts = {"key bytes": sys.getsizeof(key), "Answer object": sys.getsizeof(answer),
         "body bytes": sys.getsizeof(answer.body), "lifetime int": sys.getsizeof(answer.lifetime),
         "3 floats (stored_at, expires_at, stale_until)": 3 * sys.getsizeof(answer.expires_at)}
print(json.dumps({"steps": steps, "entries": len(pairs), "rss_kib_cache": after - before,
                  "traced_bytes_per_entry": traced / len(pairs), "rss_bytes_per_entry": (after - before) * 1024 / len(pairs),
                  "one_entry": parts, "body_len": len(answer.body)}))
'''


def stages(python: str, replies: list[tuple[bytes, bytes]], work: Path) -> dict:
    path = work / "replies.json"
    path.write_text(json.dumps([(q.hex(), r.hex()) for q, r in replies]))
    found = {}
    for mode in ("as-run", "with-ssl", "whole-pyroute2"):
        out = subprocess.run([python, "-c", STAGES % {"threads": THREADS}, mode, str(path)], cwd=ROOT,
                             capture_output=True, text=True, timeout=120)
        if out.returncode:
            raise RuntimeError(out.stderr)
        found[mode] = json.loads(out.stdout)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--names", type=int, default=10000)
    parser.add_argument("--python", default=os.environ.get("PYTHON", sys.executable),
                        help="interpreter for bootres (default: $PYTHON or this one)")
    args = parser.parse_args()
    results = record.start(python=args.python, names=args.names)
    with tempfile.TemporaryDirectory(prefix="bootres-memory-") as tmp:
        work = Path(tmp)
        service, replies = service_run(args, work)
        results["service"] = service
        results["stages"] = stages(args.python, replies, work)

    print(f"bootres run, {service['cache_entries']} names cached at the end")
    for name in ("first answer", "serving, empty cache", f"{args.names} names asked"):
        s = service[name]
        print(f"\n{name}: VmRSS {s['VmRSS'] / 1024:.1f} MiB (anon {s['RssAnon'] / 1024:.1f}, file "
              f"{s['RssFile'] / 1024:.1f}), Pss {s['Pss'] / 1024:.1f} MiB, {s['Threads']} threads")
        for group, sizes in s["by_mapping"].items():
            print(f"  {group:42} RSS {sizes['rss_kib'] / 1024:6.2f} MiB  Pss {sizes['pss_kib'] / 1024:6.2f} MiB")
    for mode, found in results["stages"].items():
        print(f"\nby module ({mode}):")
        last = 0
        for name, value in found["steps"]:
            print(f"  {value / 1024:6.1f} MiB  {'+' if last else ' '}{(value - last) / 1024:5.1f}  {name}")
            last = value
        print(f"  cache: {found['entries']} entries, +{found['rss_kib_cache'] / 1024:.1f} MiB RSS, "
              f"{found['rss_bytes_per_entry']:.0f} B/entry RSS, {found['traced_bytes_per_entry']:.0f} B/entry traced; "
              f"one entry: {found['one_entry']} (body {found['body_len']} bytes), the table and LRU links "
              f"{found['traced_bytes_per_entry'] - sum(found['one_entry'].values()):.0f}")
    record.write("memory", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
