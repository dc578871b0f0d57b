#!/usr/bin/env python3
"""Cache-hit throughput, startup time and memory: bootres vs dnsmasq vs unbound, in one run.

Builds a network-namespace lab (tests/lab.py): nsd authoritative for
example.test on 198.18.0.10 in one namespace; in another, three caching
forwarders in front of it, each on its own loopback address:

    bootres   127.0.0.35   python -m bootres.shell.resolver_service (the resolver alone)
    dnsmasq   127.0.0.36   --cache-size=10000
    unbound   127.0.0.37   num-threads: 1, forward-zone "." to nsd

Every server gets one thread, as bootres has.  For each, dnsperf first walks
the 1000 names once (filling the cache), then measures ROUNDS runs of
SECONDS each, interleaved across the servers so drift hits all alike; the
best run counts.  Then the resident memory of each server with 10,000 names
cached.

Startup and memory are also measured for what users run, the whole service:
``python -m bootres run`` (resolver, control socket, stub files, router
discovery on, all files under the temporary directory) on 127.0.0.38, in
the same namespace.  Exec -> first answer is a query for a name nsd answers,
retried every millisecond from the moment of exec; each command is started
once untimed (which writes its bytecode, as the .deb's install does), then
--starts times, and the median is reported.

Needs root, nsd, dnsmasq, unbound, dnsperf.  Run:

    sudo PYTHON=/usr/bin/python3 bench/resolver_qps.py [--seconds 10] [--rounds 3] [--starts 5]

Prints a table and writes bench/results/resolver_qps-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import dns.message  # noqa: E402

import record  # noqa: E402 (bench/, this script's directory)
from lab import Lab  # noqa: E402

UPSTREAM = "198.18.0.10"
SERVERS = {"bootres": "127.0.0.35", "dnsmasq": "127.0.0.36", "unbound": "127.0.0.37"}
SERVICE = "127.0.0.38"  # bootres run


def names_file(directory: Path, count: int, prefix: str) -> Path:
    path = directory / f"{prefix}-{count}.txt"
    path.write_text("".join(f"{prefix}{i}.example.test A\n" for i in range(count)))
    return path


def dnsperf(ns, server: str, names: Path, *, seconds: float | None = None, once: bool = False) -> dict:
    argv = ["dnsperf", "-s", server, "-d", str(names), "-c", "8", "-T", "1", "-q", "200", "-t", "2"]
    argv += ["-n", "1"] if once else ["-l", str(seconds)]
    out = ns.run(*argv, timeout=120).stdout

    def number(label):
        match = re.search(rf"{label}:\s+([\d.]+)", out)
        return float(match.group(1)) if match else None

    return {"qps": number("Queries per second"), "lost": number("Queries lost"),
            "sent": number("Queries sent"), "completed": number("Queries completed")}


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def bootres_commands(workdir: Path, python: str) -> dict[str, tuple[list[str], str]]:
    """``name: (argv, address)`` for the resolver alone and for the whole service."""
    alone = workdir / "resolver_service.conf"
    alone.write_text(f"""[resolver]
listen = {SERVERS['bootres']}:53
upstreams = {UPSTREAM}
cache_size = 20000
cache_file =
hosts_files =
""")
    service = workdir / "service.conf"
    service.write_text(f"""[resolver]
listen = {SERVICE}:53
manage_resolv_conf = no
upstreams = {UPSTREAM}
upstreams_file =
cache_size = 20000
cache_file =
hosts_files = {workdir}/hosts
[hosts]
file = {workdir}/hosts
[router]
discovery = yes
defaultrouter_file = {workdir}/defaultrouter
[service]
state_dir = {workdir}/state
""")
    return {
        "resolver_service": ([python, "-m", "bootres.shell.resolver_service", "-c", str(alone)], SERVERS["bootres"]),
        "bootres run": ([python, "-m", "bootres", "run", "-c", str(service)], SERVICE),
    }


def start_bootres(ns, argv: list[str], address: str, env: dict, tag: str):
    """Start ``argv``; return it and the milliseconds from exec to its first answer."""
    query = dns.message.make_query(f"startup-{tag}.example.test", "A").to_wire()
    probe = ns.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.setblocking(False)
    started = time.monotonic()
    proc = ns.popen(*argv, cwd=str(ROOT), env=env)
    while True:  # bounded below: 10 s
        try:
            probe.sendto(query, (address, 53))
        except OSError:
            pass
        time.sleep(0.001)
        try:
            data = probe.recv(4096)
            if data[:2] == query[:2]:
                break
        except BlockingIOError:
            pass
        if time.monotonic() - started > 10:
            raise RuntimeError(f"bootres gave no answer in 10 s:\n{proc.log_path.read_text()}")
    probe.close()
    return proc, (time.monotonic() - started) * 1000


def timed_starts(ns, argv: list[str], address: str, env: dict, count: int):
    """One untimed start, then ``count`` timed ones; the last keeps running."""
    times = []
    for run in range(count + 1):
        proc, ms = start_bootres(ns, argv, address, env, str(run))
        if run:
            times.append(round(ms, 1))
        if run < count:
            proc.terminate()
            proc.wait(timeout=10)
    return proc, times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--starts", type=int, default=5, help="timed starts of each bootres command")
    parser.add_argument("--python", default=os.environ.get("PYTHON", sys.executable),
                        help="interpreter for bootres (default: $PYTHON or this one)")
    args = parser.parse_args()
    results = record.start(python=args.python, cpus=os.cpu_count(), seconds=args.seconds, rounds=args.rounds,
                           starts=args.starts)
    with tempfile.TemporaryDirectory(prefix="bootres-bench-") as tmp, Lab(Path(tmp)) as lab:
        work = Path(tmp)
        client, servers = lab.netns("client"), lab.netns("servers")
        lab.link(client, "198.18.0.2/24", servers, f"{UPSTREAM}/24")
        lab.nsd(servers, UPSTREAM, ttl=86400, rate_limit=False)
        # Bytecode under the temporary directory, written by the untimed
        # start: a PYTHONDONTWRITEBYTECODE environment would otherwise make
        # every timed start compile bootres from source.
        env = dict(os.environ, PYTHONPYCACHEPREFIX=str(work / "pycache"))
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        kept, startup = {}, {}
        for name, (argv, address) in bootres_commands(work, args.python).items():
            kept[name], startup[name] = timed_starts(client, argv, address, env, args.starts)
        bootres = kept["resolver_service"]
        dnsmasq = lab.dnsmasq(client, SERVERS["dnsmasq"], forward_to=[UPSTREAM], cache_size=10000)
        unbound = lab.unbound(client, SERVERS["unbound"], forward_to=[UPSTREAM],
                              extra="  msg-cache-size: 64m\n  rrset-cache-size: 128m")
        time.sleep(1)  # bootres run imports pyroute2 after READY: let it finish
        results["rss_kib_empty"] = {"bootres": rss_kib(bootres.pid), "bootres run": rss_kib(kept["bootres run"].pid)}
        pids = {"bootres": bootres.pid, "dnsmasq": dnsmasq.proc.pid, "unbound": unbound.proc.pid}
        results["startup_ms"] = {name: statistics.median(times) for name, times in startup.items()}
        results["startup_ms_all"] = startup

        hot = names_file(work, 1000, "hot")
        for address in SERVERS.values():
            dnsperf(client, address, hot, once=True)  # fill the caches
        runs: dict[str, list[dict]] = {name: [] for name in SERVERS}
        for _ in range(args.rounds):
            for name, address in SERVERS.items():
                runs[name].append(dnsperf(client, address, hot, seconds=args.seconds))
        results["qps"] = {name: max(r["qps"] for r in rs) for name, rs in runs.items()}
        results["qps_median"] = {name: statistics.median(r["qps"] for r in rs) for name, rs in runs.items()}
        results["lost"] = {name: sum(r["lost"] or 0 for r in rs) for name, rs in runs.items()}
        results["ratios"] = {
            "bootres/unbound": round(results["qps"]["bootres"] / results["qps"]["unbound"], 3),
            "bootres/dnsmasq": round(results["qps"]["bootres"] / results["qps"]["dnsmasq"], 3),
        }

        service = kept["bootres run"]
        many = names_file(work, 10000, "fill")
        for address in [*SERVERS.values(), SERVICE]:
            dnsperf(client, address, many, once=True)
        results["rss_kib_10k_names"] = {name: rss_kib(pid) for name, pid in pids.items()}
        results["rss_kib_10k_names"]["bootres run"] = rss_kib(service.pid)

    print(f"{'server':10} {'QPS best':>10} {'QPS median':>11} {'lost':>6} {'RSS 10k names':>14}")
    for name in SERVERS:
        print(f"{name:10} {results['qps'][name]:10.0f} {results['qps_median'][name]:11.0f} "
              f"{results['lost'][name]:6.0f} {results['rss_kib_10k_names'][name] / 1024:11.1f} MiB")
    print(f"bootres/unbound {results['ratios']['bootres/unbound']:.2f}  "
          f"bootres/dnsmasq {results['ratios']['bootres/dnsmasq']:.2f}")
    for name, key in (("resolver_service", "bootres"), ("bootres run", "bootres run")):
        print(f"{name}: exec -> first answer {results['startup_ms'][name]:.0f} ms (median of "
              f"{results['startup_ms_all'][name]}), RSS empty {results['rss_kib_empty'][key] / 1024:.1f} MiB, "
              f"10k names {results['rss_kib_10k_names'][key] / 1024:.1f} MiB")
    record.write("resolver_qps", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
