"""Nothing lost after a power cut (issue 24): the cache file across a wrong clock, damage, a kill -9 and a full disk.

The shipped daemon in a lab namespace, asking nsd (wildcard zone, TTL 300
or more) in another; "silent" upstreams are black-holed (no reply, no
ICMP), as nameservers still down after the power came back.  The clocks and
the boot a run sees are made up by ``bootres_clock.py`` (time.time shifted
for the whole process, a boot name standing for the boot ID, the
synchronisation flag), and it shortens the periodic save where a test waits
for one.  ``-s`` prints the figures.
"""

from __future__ import annotations

import os
import random
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import dns.message
import dns.name
import dns.rcode
import pytest

from bootres.core import cachefile
from resolver_harness import LISTEN, UPSTREAMS, Client, ResolverProcess, resolver_config, silence, upstream_lab

CLOCK = Path(__file__).with_name("bootres_clock.py")
YEARS_30 = 30 * 365 * 86400.0


def run(host, conf, tmp_path, *, shift=0.0, synced="yes", boot="real", save_every=0.0) -> ResolverProcess:
    return ResolverProcess(host, conf, tmp_path, entry=(str(CLOCK), str(shift), synced, boot, str(save_every)))


def lab_with_nsd(lab, ttl=300):
    host, servers = upstream_lab(lab)
    for address in UPSTREAMS[:2]:
        lab.nsd(servers, address, ttl=ttl, rate_limit=False)
    return host, servers


def silence_all(servers, on=True):
    for address in UPSTREAMS[:2]:
        silence(servers, address, on)


def ask_many(ns, names: list[str], window: int = 200, timeout: float = 30.0) -> dict[str, tuple[int, int | None]]:
    """Each name's (RCODE, TTL of the first answer RRset) from bootres, ``window`` questions outstanding at once."""
    sock = ns.socket()
    sock.connect((LISTEN, 53))
    sock.settimeout(0.5)
    got, waiting, todo = {}, {}, list(reversed(names))
    deadline = time.monotonic() + timeout
    free = list(range(1, 65536))
    while (todo or waiting) and time.monotonic() < deadline:
        while todo and len(waiting) < window:
            name, qid = todo.pop(), free.pop()
            sock.send(dns.message.make_query(name, "A", id=qid).to_wire())
            waiting[qid] = (name, time.monotonic())
        try:
            reply = dns.message.from_wire(sock.recv(4096))
        except TimeoutError:
            reply = None
        if reply is not None and reply.id in waiting:
            name, _ = waiting.pop(reply.id)
            free.append(reply.id)
            got[name] = (reply.rcode(), reply.answer[0].ttl if reply.answer else None)
        for qid, (name, at) in list(waiting.items()):  # lost on the way: asked again (UDP clients retry)
            if time.monotonic() - at > 3.0:
                del waiting[qid]
                todo.append(name)
    sock.close()
    return got


def warnings(proc, text: str) -> list[str]:
    return [line for line in proc.log().splitlines() if "WARNING" in line and text in line]


def bootres_status(conf) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bootres", "status", "-c", str(conf)], capture_output=True,
                          text=True, timeout=30)


# --- a wrong clock at restart


def test_yesterdays_names_survive_a_clock_30_years_off_and_a_touched_file(lab, tmp_path):
    host, servers = lab_with_nsd(lab)
    cache = tmp_path / "state" / "cache.db"
    conf = resolver_config(tmp_path, cache_file=str(cache), stale_answer_after="200ms")
    names = [f"saved{i}.example.test" for i in range(200)]
    first = run(host, conf, tmp_path, boot="boot-1")
    assert all(rcode == dns.rcode.NOERROR for rcode, _ in ask_many(host, names).values())
    assert first.stop() == 0
    silence_all(servers)  # the power came back before the nameservers did
    client = Client(host)
    figures = {}
    cases = [  # (what, wall clock shift, synchronised, warning expected)
        ("right clock, next boot", 0.0, "yes", None),
        ("30 years ahead of the save", YEARS_30, "no", "a wrong clock"),
        ("right clock after a save 30 years ahead", 0.0, "yes", "later than the clock reads now"),
        ("30 years behind the save", -YEARS_30, "no", "later than the clock reads now"),
        ("right clock after a save 30 years behind", 0.0, "yes", "a wrong clock"),
    ]
    for n, (what, shift, synced, warned) in enumerate(cases, start=2):
        proc = run(host, conf, tmp_path, shift=shift, synced=synced, boot=f"boot-{n}")
        times, hiccups = [], []
        for name in names:
            reply, ms = client.ask_once_more_if_slow(name, hiccups)
            assert reply.rcode() == dns.rcode.NOERROR and reply.answer[0].ttl == 30, (what, name)  # stale
            times.append(ms)
        loaded = proc.status()["cache_file"]
        lines = warnings(proc, "age not trusted")
        assert proc.stop() == 0
        figures[what] = (f"{len(times)}/200 stale, max {max(times):.2f} ms (first tries over 5 ms: {[round(h, 1) for h in hiccups]}), "
                         f"loaded {loaded['loaded']}, age trusted {loaded['age_trusted']}, warnings {len(lines)}")
        assert max(times) <= 5.0 and len(hiccups) <= 2, (what, hiccups)
        assert loaded["loaded"] == 200
        if warned is None:
            assert lines == [] and loaded["age_trusted"] is True, proc.log()
        else:
            assert len(lines) == 1 and warned in lines[0] and loaded["age_trusted"] is False, proc.log()
    # The file's mtime means nothing now: set 30 years either way, the names are there and nothing warns.
    for shift in (YEARS_30, -YEARS_30):
        os.utime(cache, (time.time() + shift, time.time() + shift))
        proc = run(host, conf, tmp_path, boot=f"touched{shift:+.0f}")
        answered = ask_many(host, names)
        assert sum(rcode == dns.rcode.NOERROR and ttl == 30 for rcode, ttl in answered.values()) == 200
        assert warnings(proc, "cache file") == [] and proc.stop() == 0
        figures[f"mtime {'ahead' if shift > 0 else 'behind'} 30 years"] = "200/200 stale, no warning"
    print("\n" + "\n".join(f"{what}: {figure}" for what, figure in figures.items()))


# --- damage


def record_spans(blob: bytes) -> list[tuple[int, int, str]]:
    """Each record of a format 3 file: its start, its end and its name."""
    spans, pos = [], len(cachefile.MAGIC) + 37
    while pos < len(blob):
        length = struct.unpack_from(">I", blob, pos + 4)[0]
        entry = blob[pos + 12:pos + 12 + length]
        klen = struct.unpack_from(">H", entry)[0]
        key = entry[cachefile._ENTRY.size:cachefile._ENTRY.size + klen]
        spans.append((pos, pos + 12 + length, dns.name.from_wire(key, 0)[0].to_text(omit_final_dot=True)))
        pos += 12 + length
    return spans


DAMAGE = {
    "cut in half": lambda blob: blob[:len(blob) // 2],
    "8 bytes overwritten mid-file": lambda blob: blob[:len(blob) // 2] + b"\xa5" * 8 + blob[len(blob) // 2 + 8:],
    "last byte cut": lambda blob: blob[:-1],
}


def untouched(spans, good: bytes, damaged: bytes) -> list[str]:
    """The names whose records are byte for byte where they were."""
    return [name for start, end, name in spans if damaged[start:end] == good[start:end]]


def test_a_damaged_file_of_10000_answers_loses_only_what_is_damaged_and_says_so_until_a_save(lab, tmp_path):
    host, servers = lab_with_nsd(lab, ttl=3600)
    cache = tmp_path / "state" / "cache.db"
    conf = resolver_config(tmp_path, cache_file=str(cache), cache_size="20000", stale_answer_after="200ms")
    names = [f"n{i}.example.test" for i in range(10_000)]
    first = run(host, conf, tmp_path)
    assert sum(rcode == dns.rcode.NOERROR for rcode, _ in ask_many(host, names).values()) == 10_000
    assert first.stop() == 0
    good = cache.read_bytes()
    spans = record_spans(good)
    assert len({name for _, _, name in spans} & set(names)) == 10_000
    figures = []
    for what, damage in DAMAGE.items():
        silence_all(servers)
        damaged = damage(good)
        cache.write_bytes(damaged)
        whole = untouched(spans, good, damaged)
        proc = run(host, conf, tmp_path, save_every=2.5)  # the first save is due after the checks below
        status = proc.status()["cache_file"]
        degraded = bootres_status(conf)
        answered = ask_many(host, whole)
        stale = sum(rcode == dns.rcode.NOERROR and ttl == 30 for rcode, ttl in answered.values())
        lines = warnings(proc, "cache file")
        figures.append(f"{what}: {len(whole)} undamaged, {stale} served stale ({100 * stale / len(whole):.2f}%), "
                       f"{status['damaged']} damaged region(s), {len(lines)} warning; status exit {degraded.returncode}")
        assert stale >= 0.99 * len(whole) and len(lines) == 1, (what, stale, len(whole), lines)
        assert status["damaged"] == 1 and status["problem"].startswith("damaged")
        assert degraded.returncode == 1 and "cache file" in degraded.stdout and "damaged" in degraded.stdout
        # The nameservers come back; the next periodic save holds every answer: healthy again.
        silence_all(servers, on=False)
        proc.wait(lambda: (c := proc.status()["cache_file"])["problem"] is None and c["saved_at"], 15,
                  "a save that clears the damage")
        asked = iter(range(100))
        proc.wait(lambda: ask_many(host, [f"back{next(asked)}.example.test"], timeout=2) and
                  bootres_status(conf).returncode == 0, 15, "bootres status exit 0 (the upstreams back too)",
                  interval=0.2)
        assert proc.stop() == 0
        assert len(cachefile.read(cache.read_bytes(), 0.0).records) >= stale
    print("\n" + "\n".join(figures))


def test_kill_9_during_saves_never_leaves_fewer_answers_than_the_older_file(lab, tmp_path):
    host, _ = lab_with_nsd(lab, ttl=3600)
    cache = tmp_path / "state" / "cache.db"
    conf = resolver_config(tmp_path, cache_file=str(cache), cache_size="20000")
    names = [f"k{i}.example.test" for i in range(10_000)]
    first = run(host, conf, tmp_path)
    assert sum(rcode == dns.rcode.NOERROR for rcode, _ in ask_many(host, names).values()) == 10_000
    assert first.stop() == 0
    rng = random.Random(24)
    leftovers, loaded = 0, []
    for n in range(21):  # each start reads what the kill before it left; the last one stops cleanly
        older = len(cachefile.read(cache.read_bytes(), 0.0).records)
        proc = run(host, conf, tmp_path, save_every=0.3)  # saves back to back: a 10,000-answer save takes ~0.2 s
        loaded.append(proc.status()["cache_file"]["loaded"])
        assert loaded[-1] >= older, (loaded, older)
        assert not list(cache.parent.glob(".cache.db.bootres-*"))  # a leftover is gone by READY
        if n == 20:
            assert proc.stop() == 0
            break
        if n % 2:  # at a random moment: the snapshot in memory, mostly
            time.sleep(rng.uniform(0.1, 0.6))  # two saves a second
        else:  # while the temporary file is being written: the moment a torn file could happen
            proc.wait(lambda: list(cache.parent.glob(".cache.db.bootres-*")), 10, "a save's temporary file",
                      interval=0.0002)
            time.sleep(rng.uniform(0, 0.002))
        proc.proc.send_signal(signal.SIGKILL)
        proc.proc.wait(10)
        leftovers += bool(list(cache.parent.glob(".cache.db.bootres-*")))
    print(f"\nkill -9 x20 during back-to-back saves (10 at random, 10 while the file was written): loaded after each "
          f"restart {sorted(set(loaded))}; {leftovers} kills left a temporary file, removed at the next start")
    assert leftovers >= 1  # some kills did land mid-write


# --- a cache that cannot be saved


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs under tmp_path, mounted here (the daemon's namespace sees it) and unmounted after."""
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0755", "tmpfs", str(disk)], check=True)
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_read_only_or_full_disk_is_a_problem_in_status_until_a_save_succeeds(lab, tmp_path, small_disk):
    host, _ = lab_with_nsd(lab)
    conf = resolver_config(tmp_path, cache_file=str(small_disk / "cache.db"))
    proc = run(host, conf, tmp_path, save_every=0.5)
    assert sum(rcode == dns.rcode.NOERROR for rcode, _ in ask_many(
        host, [f"d{i}.example.test" for i in range(2000)]).values()) == 2000

    def saved() -> bool:
        c = proc.status()["cache_file"]
        return c["problem"] is None and c["saved_entries"] == 2000

    def failing(reason: str):
        problem = proc.status()["cache_file"]["problem"]
        return problem if problem and reason in problem else None

    figures = {}
    proc.wait(saved, 10, "a first save")
    assert bootres_status(conf).returncode == 0
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    figures["read-only"] = proc.wait(lambda: failing("Read-only file system"), 10, "the read-only save failing")
    degraded = bootres_status(conf)
    assert degraded.returncode == 1 and "cannot save: Read-only file system" in degraded.stdout, degraded.stdout
    subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    proc.wait(saved, 10, "a save once writable again")
    assert bootres_status(conf).returncode == 0
    filler = small_disk / "filler"
    with open(filler, "wb") as handle:  # the disk fills up
        try:
            while True:
                handle.write(b"\0" * 65536)
        except OSError:
            pass
    figures["full"] = proc.wait(lambda: failing("No space left on device"), 10, "the save on a full disk failing")
    degraded = bootres_status(conf)
    assert degraded.returncode == 1 and "No space left on device" in degraded.stdout
    assert len(cachefile.read((small_disk / "cache.db").read_bytes(), 0.0).records) == 2000  # the last good file
    filler.unlink()
    proc.wait(saved, 10, "a save once there is room")
    assert bootres_status(conf).returncode == 0
    assert not list(small_disk.glob(".cache.db.bootres-*")) and proc.stop() == 0
    warned = warnings(proc, "cannot save")
    assert len(warned) == 2, warned  # one line per fault, not one per failed save
    print("\n" + "\n".join(f"{what}: status said {problem!r}, exit 1; exit 0 after the next save"
                           for what, problem in figures.items()))
