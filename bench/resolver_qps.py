#!/usr/bin/env python3
"""Cache-hit throughput, startup time and memory: bootres vs dnsmasq vs unbound, in one run.

Builds a network-namespace lab (tests/lab.py): nsd authoritative for
example.test on 198.18.0.10 in one namespace; in another, caching
forwarders in front of it, each on its own loopback address:

    bootres           127.0.0.35   python -m bootres run (what users run: resolver, control socket,
                                   stub files, router discovery on, every file under the temporary directory)
    dnsmasq           127.0.0.36   --cache-size=10000
    unbound           127.0.0.37   num-threads: 1, forward-zone "." to nsd
    bootres-baseline  127.0.0.38   with --baseline DIR: the same command from another checkout (an
                                   earlier commit), so a change is measured against it in the same run

Every server gets one thread, as bootres has.  For each, dnsperf first walks
the 1000 names once (filling the cache), then measures ROUNDS runs of
SECONDS each, interleaved across the servers so drift hits all alike; the
best run counts.  Then the resident memory of each server with 10,000 names
cached.

Startup: exec -> first answer is a query for a name nsd answers, retried
every millisecond from the moment of exec; each bootres is started once
untimed (which writes its bytecode, as the .deb's install does), then
--starts times, and the median is reported.

Needs root, nsd, dnsmasq, unbound, dnsperf.  Run:

    sudo PYTHON=/usr/bin/python3 bench/resolver_qps.py [--seconds 10] [--rounds 3] [--starts 5] [--baseline DIR]

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
BASELINE = "127.0.0.38"  # bootres run from --baseline DIR


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


def bootres_config(workdir: Path, name: str, address: str) -> Path:
    """``bootres run``'s configuration for one instance: its own address and files, nothing of the machine's."""
    path = workdir / f"{name}.conf"
    files = workdir / name
    files.mkdir()
    path.write_text(f"""[resolver]
listen = {address}:53
container_listen = no
manage_resolv_conf = no
upstreams = {UPSTREAM}
upstreams_file =
cache_size = 20000
cache_file =
hosts_files = {files}/hosts
[hosts]
file = {files}/hosts
[router]
discovery = yes
defaultrouter_file = {files}/defaultrouter
[service]
state_dir = {files}/state
""")
    return path


def start_bootres(ns, argv: list[str], address: str, env: dict, tag: str, cwd: Path):
    """Start ``argv`` in ``cwd`` (whose bootres ``python -m`` runs); return it and the milliseconds from exec to
    its first answer."""
    query = dns.message.make_query(f"startup-{tag}.example.test", "A").to_wire()
    probe = ns.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.setblocking(False)
    started = time.monotonic()
    proc = ns.popen(*argv, cwd=str(cwd), env=env)
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


def timed_starts(ns, commands: dict[str, tuple[list[str], str, Path]], env: dict, count: int):
    """Per command (``name: (argv, address, cwd)``): one untimed start, then ``count`` timed ones, the commands
    taking turns so drift hits all alike; the last start of each keeps running."""
    kept, times = {}, {name: [] for name in commands}
    for run in range(count + 1):
        for name, (argv, address, cwd) in commands.items():
            proc, ms = start_bootres(ns, argv, address, env, f"{name}-{run}", cwd)
            if run:
                times[name].append(round(ms, 1))
            if run < count:
                proc.terminate()
                proc.wait(timeout=10)
            else:
                kept[name] = proc
    return kept, times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--starts", type=int, default=5, help="timed starts of each bootres command")
    parser.add_argument("--python", default=os.environ.get("PYTHON", sys.executable),
                        help="interpreter for bootres (default: $PYTHON or this one)")
    parser.add_argument("--baseline", type=Path, metavar="DIR",
                        help="also run bootres from this checkout (e.g. git worktree add DIR COMMIT) as bootres-baseline")
    args = parser.parse_args()
    addresses = dict(SERVERS, **({"bootres-baseline": BASELINE} if args.baseline else {}))
    trees = {"bootres": ROOT, **({"bootres-baseline": args.baseline.resolve()} if args.baseline else {})}
    results = record.start(python=args.python, cpus=os.cpu_count(), seconds=args.seconds, rounds=args.rounds,
                           starts=args.starts, baseline=str(args.baseline) if args.baseline else None)
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
        commands = {name: ([args.python, "-m", "bootres", "run", "-c", str(bootres_config(work, name, addresses[name]))],
                           addresses[name], tree) for name, tree in trees.items()}
        kept, startup = timed_starts(client, commands, env, args.starts)
        dnsmasq = lab.dnsmasq(client, SERVERS["dnsmasq"], forward_to=[UPSTREAM], cache_size=10000)
        unbound = lab.unbound(client, SERVERS["unbound"], forward_to=[UPSTREAM],
                              extra="  msg-cache-size: 64m\n  rrset-cache-size: 128m")
        time.sleep(1)  # bootres run imports pyroute2 after READY: let it finish
        results["rss_kib_empty"] = {name: rss_kib(proc.pid) for name, proc in kept.items()}
        pids = {**{name: proc.pid for name, proc in kept.items()}, "dnsmasq": dnsmasq.proc.pid,
                "unbound": unbound.proc.pid}
        results["startup_ms"] = {name: statistics.median(times) for name, times in startup.items()}
        results["startup_ms_all"] = startup

        hot = names_file(work, 1000, "hot")
        for address in addresses.values():
            dnsperf(client, address, hot, once=True)  # fill the caches
        runs: dict[str, list[dict]] = {name: [] for name in addresses}
        for _ in range(args.rounds):
            for name, address in addresses.items():
                runs[name].append(dnsperf(client, address, hot, seconds=args.seconds))
        results["qps"] = {name: max(r["qps"] for r in rs) for name, rs in runs.items()}
        results["qps_median"] = {name: statistics.median(r["qps"] for r in rs) for name, rs in runs.items()}
        results["lost"] = {name: sum(r["lost"] or 0 for r in rs) for name, rs in runs.items()}
        results["ratios"] = {
            f"bootres/{peer}": round(results["qps"]["bootres"] / results["qps"][peer], 3)
            for peer in addresses if peer != "bootres"
        }

        many = names_file(work, 10000, "fill")
        for address in addresses.values():
            dnsperf(client, address, many, once=True)
        results["rss_kib_10k_names"] = {name: rss_kib(pid) for name, pid in pids.items()}

    print(f"{'server':16} {'QPS best':>10} {'QPS median':>11} {'lost':>6} {'RSS 10k names':>14}")
    for name in addresses:
        print(f"{name:16} {results['qps'][name]:10.0f} {results['qps_median'][name]:11.0f} "
              f"{results['lost'][name]:6.0f} {results['rss_kib_10k_names'][name] / 1024:11.1f} MiB")
    print("  ".join(f"{ratio} {value:.3f}" for ratio, value in results["ratios"].items()))
    for name in kept:
        print(f"{name}: exec -> first answer {results['startup_ms'][name]:.0f} ms (median of "
              f"{results['startup_ms_all'][name]}), RSS empty {results['rss_kib_empty'][name] / 1024:.1f} MiB, "
              f"10k names {results['rss_kib_10k_names'][name] / 1024:.1f} MiB")
    record.write("resolver_qps", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
