#!/usr/bin/env python3
"""How long the resolver's event loop stalls while it saves a 10,000-entry cache: HEAD's way against issue 11's.

Builds a network-namespace lab (tests/lab.py): nsd authoritative for
example.test on 198.18.0.10 in one namespace; in another, this script again
(``--serve``), running a ResolverService on 127.0.0.35 in its own event
loop, as ``bootres run`` does (its interpreter lock switch interval too),
with hosts_files, an upstreams_file and a dhclient lease under a temporary
directory, so the periodic file checks (every 0.5 s) stat real files.

A client process (``--client``) fills the cache with 10,000 names by real
queries through nsd, then asks for a cached name every millisecond and
records each reply's latency.  Meanwhile the service's loop runs a lag
monitor (a callback due 0.5 ms after its previous run, recording how late
it ran) and goes through ROUNDS rounds of three phases, SECONDS each:

    idle   no cache save
    head   the cache saved every INTERVAL seconds as HEAD does it: the
           whole snapshot, then the write with its fsyncs, on the loop
    steps  the same saves through ResolverService.save_cache (issue 11):
           the key list in a turn of its own, then SAVE_STEP entries per
           turn with SAVE_PAUSE after each, the write on a worker thread

For each phase: the loop's lateness (max, p99.9, p99), the client's reply
latency (max, p99.9, p99, lost), per save the worst lateness while it ran
(for the stepped saves also by part: key list, steps, write), and the
garbage collector's pauses (gc.callbacks), so a stall can be told apart
from a save.  Also what the stepped save spends on the loop in one go (the
key list, each step) and how long the written file takes to load at start.

Needs root and nsd.  Run:

    sudo PYTHON=/usr/bin/python3 /usr/bin/python3 bench/loop_stall.py [--seconds 10] [--rounds 3] [--interval 0.5]

Prints a table and writes bench/results/loop_stall-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import bisect
import datetime
import gc
import json
import logging
import os
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

UPSTREAM = "198.18.0.10"
LISTEN = "127.0.0.35"
NAMES = 10_000
LAG_PERIOD = 0.0005  # the lag monitor's callback is due this long after its previous run
PROBE_PERIOD = 0.001  # the client asks once a millisecond
SWITCH_INTERVAL = 0.0005  # what `bootres run` sets (bootres/shell/daemon.py run())
PHASES = ("idle", "head", "steps")


# --- the client (a process of its own: its waits are not the service's)

def query(name: str, qid: int) -> bytes:
    labels = b"".join(bytes([len(part)]) + part.encode() for part in name.split("."))
    return struct.pack(">6H", qid, 0x0100, 1, 0, 0, 0) + labels + b"\x00\x00\x01\x00\x01"


def fill(server: str) -> int:
    """Ask for fill0..fill9999.example.test, 200 at a time, until every one is answered; the rounds it took."""
    missing = set(range(NAMES))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect((server, 53))
        sock.settimeout(2.0)
        for attempt in range(1, 6):  # bounded: five passes
            for start in range(0, NAMES, 200):
                batch = [i for i in range(start, start + 200) if i in missing]
                for i in batch:
                    sock.send(query(f"fill{i}.example.test", i))
                for _ in batch:
                    try:
                        missing.discard(struct.unpack(">H", sock.recv(4096)[:2])[0])
                    except socket.timeout:
                        break
            if not missing:
                return attempt
    raise SystemExit(f"{len(missing)} names never answered")


def probe(server: str, seconds: float, out: Path) -> None:
    """A cached name every PROBE_PERIOD for ``seconds``; (send time, latency) pairs to ``out`` (latency -1: lost)."""
    samples = array.array("d")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect((server, 53))
        sock.settimeout(1.0)
        wires = [query(f"fill{i}.example.test", i) for i in range(NAMES)]
        end = time.monotonic() + seconds
        due = time.monotonic()
        n = 0
        while due < end:  # bounded by ``seconds``
            qid = n % NAMES
            sent = time.monotonic()
            sock.send(wires[qid])
            try:
                while struct.unpack(">H", sock.recv(4096)[:2])[0] != qid:
                    pass  # a late reply to an earlier query
                samples.extend((sent, time.monotonic() - sent))
            except socket.timeout:
                samples.extend((sent, -1.0))
            n += 1
            due = max(due + PROBE_PERIOD, time.monotonic())  # after a stall, no burst to catch up
            time.sleep(max(0.0, due - time.monotonic()))
    out.write_bytes(samples.tobytes())


# --- the service side (--serve), inside the lab's namespace

class LagMonitor:
    """A callback due LAG_PERIOD after its previous run; how late each run was, at what loop time."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.samples = array.array("d")  # (loop time, lateness) pairs
        self._due = 0.0
        self._handle = None

    def start(self) -> None:
        self._due = self.loop.time() + LAG_PERIOD
        self._handle = self.loop.call_at(self._due, self._run)

    def stop(self) -> None:
        self._handle.cancel()

    def _run(self) -> None:
        now = self.loop.time()
        self.samples.extend((now, now - self._due))
        self._due = now + LAG_PERIOD
        self._handle = self.loop.call_at(self._due, self._run)


class GcPauses:
    """Every garbage collection: (start, seconds, generation), on the loop's clock."""

    def __init__(self):
        self.pauses: list[tuple[float, float, int]] = []
        self._started = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.monotonic()
        else:
            self.pauses.append((self._started, time.monotonic() - self._started, info["generation"]))


def save_as_head(service, now: float) -> None:
    """HEAD's save_cache (git show 4fbcb24:bootres/shell/resolver_service.py): snapshot and write, both on the loop."""
    from bootres.shell.fileio import atomic_write

    path = service.cfg.cache_file
    os.makedirs(os.path.dirname(path), exist_ok=True)
    atomic_write(path, service.core.cache.snapshot(now), mode=0o600)


def time_snapshots() -> tuple[array.array, array.array, list]:
    """Time the service's own snapshots from now on.

    (seconds to take each key list, seconds per step, and per snapshot the
    loop times its key list and its last step ended): what the loop spends
    on a save in one go, and when the save's parts end.
    """
    from bootres.shell import resolver_service

    key_lists, steps, parts = array.array("d"), array.array("d"), []

    class TimedSnapshot(resolver_service.Snapshot):
        def __init__(self, cache):
            started = time.perf_counter()
            super().__init__(cache)
            key_lists.append(time.perf_counter() - started)
            parts.append([time.monotonic(), None])

        def step(self, now: float, limit: int) -> bool:
            started = time.perf_counter()
            try:
                return super().step(now, limit)
            finally:
                steps.append(time.perf_counter() - started)
                parts[-1][1] = time.monotonic()

    resolver_service.Snapshot = TimedSnapshot
    return key_lists, steps, parts


def service_files(work: Path) -> Path:
    """The configuration, and the files the service's periodic checks look at."""
    (work / "hosts").write_text("127.0.0.1\tlocalhost\n198.18.0.5\tfiler.example.test filer\n")
    (work / "upstream-resolv.conf").write_text(f"nameserver {UPSTREAM}\n")
    lease = work / "sources/run/bootres/dhclient/eth0.inet"
    lease.parent.mkdir(parents=True)
    lease.write_text(f"nameserver {UPSTREAM}\nsearch example.test\n")
    conf = work / "resolver.conf"
    conf.write_text(f"""[resolver]
listen = {LISTEN}:53
upstreams_file = {work}/upstream-resolv.conf
cache_size = 20000
cache_file = {work}/state/cache.db
hosts_files = {work}/hosts
""")
    return conf


async def run_phases(service, args) -> tuple[list, list]:
    """ROUNDS rounds of the phases: [(phase, start, end)] and [(phase, save start, save end)], in loop time."""
    loop = asyncio.get_running_loop()
    windows, saves = [], []
    for _ in range(args.rounds):
        for phase in PHASES:
            began = loop.time()
            while loop.time() < began + args.seconds:  # bounded by --seconds
                await asyncio.sleep(args.interval)
                started = loop.time()
                if phase == "head":
                    save_as_head(service, started)
                elif phase == "steps":
                    await service.save_cache()
                else:
                    continue
                saves.append((phase, started, loop.time()))
            await asyncio.sleep(0.05)  # the last save's stall shows in its own phase
            windows.append((phase, began, loop.time()))
    return windows, saves


async def serve(args) -> dict:
    from bootres import config
    from bootres.core.cache import Cache
    from bootres.shell.resolver_service import SAVE_PAUSE, SAVE_STEP, ResolverService
    from bootres.shell.sources_io import SourcePaths

    key_lists, steps, parts = time_snapshots()
    work = Path(args.serve)
    cfg = config.load(str(service_files(work))).resolver
    service = ResolverService(cfg, logging.getLogger("bootres.resolver"),
                              source_paths=SourcePaths.under(str(work / "sources")))
    await service.start()
    client = [args.python, __file__, "--client", LISTEN]
    filler = await asyncio.create_subprocess_exec(*client, "fill")
    if await filler.wait() != 0:
        raise SystemExit("the client could not fill the cache")
    cached = len(service.core.cache)

    monitor, pauses = LagMonitor(asyncio.get_running_loop()), GcPauses()
    gc.callbacks.append(pauses)
    probes = work / "probes.bin"
    seconds = args.rounds * len(PHASES) * (args.seconds + args.interval) + 1.0
    prober = await asyncio.create_subprocess_exec(*client, "probe", str(seconds), str(probes))
    monitor.start()
    await asyncio.sleep(0.5)  # the client is asking
    windows, saves = await run_phases(service, args)
    monitor.stop()
    gc.callbacks.remove(pauses)
    await prober.wait()

    blob = Path(cfg.cache_file).read_bytes()
    started = time.monotonic()
    loaded = Cache(cfg.cache_size, cfg.stale_max_age).restore(blob, started, 0.0)  # what start() does first
    load_ms = (time.monotonic() - started) * 1000
    await service.stop()
    probe_samples = array.array("d")
    probe_samples.frombytes(probes.read_bytes())
    return {
        "cached": cached, "save_step": SAVE_STEP, "save_pause": SAVE_PAUSE, "cache_file_bytes": len(blob),
        "key_list_ms": {"median": ms(statistics.median(key_lists)), "max": ms(max(key_lists))},
        "step_ms": {"steps": len(steps), "median": ms(statistics.median(steps)),
                    "p99": ms(quantile(steps, 0.99)), "max": ms(max(steps))},
        "load_ms": round(load_ms, 1), "loaded": loaded,
        "windows": windows, "saves": saves, "save_parts": parts, "gc": pauses.pauses,
        "lag": list(monitor.samples), "probes": list(probe_samples),
    }


# --- the figures

def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


# A stall shows at the lag monitor's next run, which is due at most
# LAG_PERIOD later: samples this long after a span still belong to it.
SHOWS_WITHIN = 0.002


def during(lag: list, times: list, start: float, end: float) -> list:
    """The lag samples of ``start`` to ``end`` and the SHOWS_WITHIN after it (``times``: theirs, in order)."""
    return lag[bisect.bisect_left(times, start):bisect.bisect_right(times, end + SHOWS_WITHIN)]


def summarize(raw: dict) -> dict:
    """Per phase: lag and reply latency quantiles, the worst lateness during each save, GC pauses."""
    lag = list(zip(raw["lag"][::2], raw["lag"][1::2]))
    times = [t for t, _ in lag]  # in order: each monitor run comes after the previous one
    probes = list(zip(raw["probes"][::2], raw["probes"][1::2]))
    out = {}
    for phase in PHASES:
        windows = [(a, b) for name, a, b in raw["windows"] if name == phase]

        def inside(t: float) -> bool:
            return any(a <= t < b for a, b in windows)

        lateness = [late for t, late in lag if inside(t)]
        replies = [latency for t, latency in probes if inside(t) and latency >= 0]
        saves = [(a, b) for name, a, b in raw["saves"] if name == phase]
        worst = [max([late for _, late in during(lag, times, a, b)] or [0.0]) for a, b in saves]
        gcs = [(t, d, g) for t, d, g in raw["gc"] if inside(t)]
        out[phase] = {
            "lag_ms": {"max": ms(max(lateness)), "p99.9": ms(quantile(lateness, 0.999)),
                       "p99": ms(quantile(lateness, 0.99)), "samples": len(lateness),
                       "over_2ms": sum(1 for late in lateness if late > 0.002)},
            "reply_ms": {"max": ms(max(replies)), "p99.9": ms(quantile(replies, 0.999)),
                         "p99": ms(quantile(replies, 0.99)), "median": ms(statistics.median(replies)),
                         "samples": len(replies),
                         "lost": sum(1 for t, latency in probes if inside(t) and latency < 0)},
            "saves": len(saves),
            "save_ms": {"median": ms(statistics.median(b - a for a, b in saves)),
                        "max": ms(max(b - a for a, b in saves))} if saves else None,
            "worst_lag_per_save_ms": {"median": ms(statistics.median(worst)), "max": ms(max(worst)),
                                      "over_2ms": sum(1 for w in worst if w > 0.002)} if saves else None,
            "gc": {"collections": len(gcs), "gen2": sum(1 for _, _, g in gcs if g == 2),
                   "max_ms": ms(max([d for _, d, _ in gcs] or [0.0]))},
        }
    out["steps"]["worst_lag_by_part_ms"] = worst_by_part(raw, lag, times)
    head, steps = out["head"], out["steps"]
    out["ratios_head_over_steps"] = {
        "lag_max": round(head["lag_ms"]["max"] / steps["lag_ms"]["max"], 1),
        "lag_p99.9": round(head["lag_ms"]["p99.9"] / steps["lag_ms"]["p99.9"], 1),
        "reply_max": round(head["reply_ms"]["max"] / steps["reply_ms"]["max"], 1),
        "reply_p99.9": round(head["reply_ms"]["p99.9"] / steps["reply_ms"]["p99.9"], 1),
    }
    return out


def worst_by_part(raw: dict, lag: list, times: list) -> dict:
    """The worst lateness during the stepped saves' key lists, steps and writes (worker thread)."""
    worst = {"key list": 0.0, "steps": 0.0, "write": 0.0}
    for name, start, end in raw["saves"]:
        if name != "steps":
            continue
        keys, last = next((keys, last) for keys, last in raw["save_parts"] if start <= keys <= end)
        for t, late in during(lag, times, start, end):
            part = "key list" if t <= keys + SHOWS_WITHIN else "steps" if t <= last + SHOWS_WITHIN else "write"
            worst[part] = max(worst[part], late)
    return {part: ms(late) for part, late in worst.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between saves in the save phases")
    parser.add_argument("--switch-interval", type=float, default=SWITCH_INTERVAL,
                        help="sys.setswitchinterval of the service (default: what `bootres run` sets)")
    parser.add_argument("--python", default=os.environ.get("PYTHON", sys.executable),
                        help="interpreter for the service and the client (default: $PYTHON or this one)")
    parser.add_argument("--serve", metavar="DIR", help=argparse.SUPPRESS)
    parser.add_argument("--client", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.client:
        server, mode, *rest = args.client
        if mode == "fill":
            fill(server)
        else:
            probe(server, float(rest[0]), Path(rest[1]))
        return 0
    if args.serve:
        sys.setswitchinterval(args.switch_interval)
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(name)s: %(message)s")
        raw = asyncio.run(serve(args))
        (Path(args.serve) / "raw.json").write_text(json.dumps(raw))
        return 0

    from lab import Lab

    results: dict = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                     "command": " ".join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:]),
                     "commit": subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                              capture_output=True, text=True).stdout.strip(),
                     "python": args.python, "cpus": os.cpu_count(), "seconds": args.seconds,
                     "rounds": args.rounds, "interval": args.interval, "switch_interval": args.switch_interval}
    with tempfile.TemporaryDirectory(prefix="bootres-bench-") as tmp, Lab(Path(tmp)) as lab:
        work = Path(tmp) / "service"
        work.mkdir()
        host, servers = lab.netns("host"), lab.netns("servers")
        lab.link(host, "198.18.0.2/24", servers, f"{UPSTREAM}/24")
        lab.nsd(servers, UPSTREAM, ttl=86400, rate_limit=False)
        service = host.popen(args.python, __file__, "--serve", str(work), "--rounds", str(args.rounds),
                             "--seconds", str(args.seconds), "--interval", str(args.interval),
                             "--switch-interval", str(args.switch_interval), "--python", args.python,
                             cwd=str(ROOT))
        budget = args.rounds * len(PHASES) * args.seconds + 120
        if service.wait(timeout=budget) != 0:
            raise SystemExit(f"the service side failed:\n{service.log_path.read_text()}")
        raw = json.loads((work / "raw.json").read_text())
    results.update({key: raw[key] for key in ("cached", "save_step", "save_pause", "key_list_ms", "step_ms",
                                               "cache_file_bytes", "load_ms", "loaded")})
    results["phases"] = summarize(raw)

    phases = results["phases"]
    print(f"{results['cached']} names cached, cache file {results['cache_file_bytes'] / 1e6:.2f} MB, "
          f"loading it at start: {results['load_ms']} ms")
    print(f"saving in steps: key list median {results['key_list_ms']['median']} ms, max "
          f"{results['key_list_ms']['max']} ms; {results['save_step']} entries per step "
          f"({results['save_pause'] * 1000:g} ms pause after each), median "
          f"{results['step_ms']['median']} ms, p99 {results['step_ms']['p99']} ms, max {results['step_ms']['max']} ms")
    print(f"{'phase':6} {'saves':>5} {'save ms':>8} {'lag max':>8} {'p99.9':>6} {'>2ms':>5} "
          f"{'worst/save':>10} {'reply max':>9} {'p99.9':>6} {'lost':>4} {'gc max':>6}")
    for name in PHASES:
        p = phases[name]
        save = p["save_ms"]["median"] if p["save_ms"] else "-"
        worst = p["worst_lag_per_save_ms"]["max"] if p["worst_lag_per_save_ms"] else "-"
        print(f"{name:6} {p['saves']:5} {save:>8} {p['lag_ms']['max']:8} {p['lag_ms']['p99.9']:6} "
              f"{p['lag_ms']['over_2ms']:5} {worst:>10} {p['reply_ms']['max']:9} {p['reply_ms']['p99.9']:6} "
              f"{p['reply_ms']['lost']:4} {p['gc']['max_ms']:6}")
    print("steps, worst lateness in each part of the saves:",
          ", ".join(f"{k} {v} ms" for k, v in phases["steps"]["worst_lag_by_part_ms"].items()))
    print("head / steps:", ", ".join(f"{k} {v}" for k, v in phases["ratios_head_over_steps"].items()))
    out = ROOT / "bench" / "results" / f"loop_stall-{results['date'].replace(':', '').replace('+0000', 'Z')}.json"
    out.parent.mkdir(exist_ok=True)  # bench/results/ is not committed: absent in a fresh clone
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
