"""bench/fleet.py's simulation against the real thing: three `bootres run` with yesterday's cache, two nsd.

The same scenario (seeded: boots, lookups, names) runs twice: simulated,
and for real in a namespace lab, where the nameservers are black-holed
until ``back`` and the queries arriving at them are counted by iptables,
sampled every second.  The counts per phase (outage, the seconds after the
return, the rest) must agree within 20%, and each second's within 20% or
2 queries (a few a second, and the edges of a second are the machine's).
Three daemons in one namespace on their own addresses stand for three
hosts: each has its own cache, health and probes, which is what differs.
"""

import os
import socket
import time

from bench.fleet import Scenario, query_wire, run_bootres, workload
from bootres import config
from bootres_process import BootresProcess
from net.resolver_harness import UPSTREAMS, Client, resolver_config, silence, upstream_lab

S = Scenario(hosts=3, rate=5.0, names=50, cached=20, boot_window=2.0, back=8.0, end=16.0, seed=7)
LISTENS = ("127.0.0.41", "127.0.0.42", "127.0.0.43")
PHASES = {"outage": (0, 8), "return": (8, 11), "after": (11, 16)}
SHIPPED = {key: config.SCHEMA["resolver"][key].default
           for key in ("strategy", "timeout", "stale_answer_after", "hedge_delay")}


def counted(servers) -> int:
    out = servers.iptables("-L", "INPUT", "-n", "-v", "-x").stdout
    total = 0
    for line in out.splitlines():
        fields = line.split()
        if any(f in UPSTREAMS[:2] for f in fields) and "dpt:53" in fields and "DROP" not in fields:
            total += int(fields[0])
    return total


def test_the_simulation_counts_what_real_daemons_send(lab, tmp_path):
    host, servers = upstream_lab(lab)
    for address in UPSTREAMS[:2]:
        lab.nsd(servers, address, rate_limit=False)
    confs = [resolver_config(tmp_path, listen=f"{LISTENS[i]}:53", cache_file=str(tmp_path / f"h{i}.db"), **SHIPPED)
             for i in range(S.hosts)]
    no_sources = tmp_path / "no-sources"  # the machine's own leases are not the lab's
    no_sources.mkdir()
    env = {"BOOTRES_SOURCES_ROOT": str(no_sources)}
    # Yesterday: each host asks the site's top names and saves its cache on stop; then the night passes.
    for i, conf in enumerate(confs):
        day = BootresProcess(conf, ns=host, env=env)
        day.wait_for_log("ready: resolver on")
        client = Client(host, LISTENS[i])
        for rank in range(S.cached):
            client.ask(f"n{rank}.example.test")
        assert day.stop() == 0
        night = time.time() - 12 * 3600
        os.utime(tmp_path / f"h{i}.db", (night, night))

    for address in UPSTREAMS[:2]:
        silence(servers, address)
    for address in UPSTREAMS[:2]:  # counting rules above the DROPs
        servers.iptables("-I", "INPUT", "-d", address, "-p", "udp", "--dport", "53")
    boots, asks = workload(S)
    sock = host.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    started, daemons, per_second = time.monotonic(), [None] * S.hosts, []
    events = sorted([(t, "boot", h, None) for h, t in enumerate(boots)] + [(t, "ask", h, n) for t, h, n in asks]
                    + [(float(s), "count", None, None) for s in range(int(S.end) + 1)] + [(S.back, "back", None, None)])
    for when, kind, host_index, name in events:  # bounded: a fixed list over S.end seconds
        time.sleep(max(0.0, started + when - time.monotonic()))
        if kind == "boot":
            daemons[host_index] = BootresProcess(confs[host_index], ns=host, env=env)
        elif kind == "ask" and daemons[host_index] is not None:
            sock.sendto(query_wire(name, 7), (LISTENS[host_index], 53))
        elif kind == "back":
            for address in UPSTREAMS[:2]:
                silence(servers, address, on=False)
        elif kind == "count":
            per_second.append(counted(servers))
    for daemon in daemons:
        assert daemon.stop() == 0

    real = [b - a for a, b in zip(per_second, per_second[1:])]
    simulated = [sum(counts) for counts in zip(*run_bootres(S, "hedge")[0].arrived.values())]
    phases = {phase: (sum(real[a:b]), sum(simulated[a:b])) for phase, (a, b) in PHASES.items()}
    print(f"\nper second, real: {real}\nper second, simulated: {simulated[:len(real)]}\nper phase: {phases}")
    for phase, (got, predicted) in phases.items():
        assert abs(got - predicted) <= 0.2 * predicted, (phase, got, predicted)
    # Each second too, within 20% or 2 queries (a handful a second: one query either side of a second's edge).
    assert all(abs(got - predicted) <= max(0.2 * predicted, 2) for got, predicted in zip(real, simulated)), phases
