"""Issue 11: the resolver's file I/O stays off its event loop, by construction.

Structure, not timing (the timing is bench/loop_stall.py's): the cache is
serialized a bounded number of entries per turn of the loop, with the loop
free in between; the file is written on another thread; saves do not
overlap; stop saves, without pausing; hosts files and nameserver sources are
stat'ed and read on another thread and parsed on the loop.  A real ResolverService on
loopback, every file under tmp_path.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import os
import struct
import threading

from bootres import config
from bootres.core import clientwire, dnswire, upstreamwire
from bootres.core.cache import Cache
from bootres.shell import cachefile_io, resolver_service, sources_io
from bootres.shell.resolver_service import SAVE_STEP, ResolverService
from bootres.shell.sources_io import SourcePaths
from lab import free_port

ENTRIES = 10_000


def resolver_config(tmp_path) -> config.ResolverConfig:
    path = str(tmp_path / "bootres.conf")
    text = f"""[resolver]
listen = 127.0.0.1:{free_port()}
container_listen = no
upstreams = 198.18.0.10
cache_size = 20000
cache_file = {tmp_path}/state/cache.db
hosts_files = {tmp_path}/hosts
allow = 127.0.0.0/8
"""
    return config.parse([(path, text)], main_path=path).resolver


def a_record(i: int) -> tuple[bytes, dnswire.Answer]:
    """(key, answer) for n<i>.example.test A, built from bytes."""
    question = b"\x06n%05d\x07example\x04test\x00\x00\x01\x00\x01" % i
    record = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 86400, 4) + bytes([198, 18, i >> 8, i & 255])
    reply = struct.pack(">6H", i, 0x8180, 1, 1, 0, 0) + question + record
    return clientwire.peek_query(struct.pack(">6H", i, 0x0100, 1, 0, 0, 0) + question)[0], upstreamwire.read_reply(reply).answer


def service_with_cache(tmp_path, entries: int = ENTRIES) -> ResolverService:
    service = ResolverService(resolver_config(tmp_path), logging.getLogger("test.resolver"),
                              source_paths=SourcePaths.under(str(tmp_path)))
    for i in range(entries):
        service.core.cache.put(*a_record(i), now=0.0)
    return service


def on_a_loop(test):
    """Run the ``async def`` test with asyncio.run, for pytest without an asyncio plugin."""
    @functools.wraps(test)
    def run(*args, **kwargs):
        return asyncio.run(test(*args, **kwargs))
    return run


def record_threads(monkeypatch, module, name: str) -> list[threading.Thread]:
    """Replace ``module.name`` with a pass-through that notes the thread of every call."""
    threads = []
    real = getattr(module, name)

    def noting(*args, **kwargs):
        threads.append(threading.current_thread())
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, noting)
    return threads


@on_a_loop
async def test_the_cache_is_serialized_in_bounded_steps_with_the_loop_free_between_them(tmp_path, monkeypatch):
    service = service_with_cache(tmp_path)
    await service.start()
    turns = 0  # a callback that runs once per turn of the loop, as a datagram's would

    def turn() -> None:
        nonlocal turns
        turns += 1
        handle[0] = loop.call_soon(turn)

    loop = asyncio.get_running_loop()
    handle = [loop.call_soon(turn)]
    steps = []  # (entries asked for, turns of the loop so far)

    class Watched(resolver_service.Snapshot):
        def step(self, now, limit):
            steps.append((limit, turns))
            return super().step(now, limit)

    monkeypatch.setattr(resolver_service, "Snapshot", Watched)
    await service.save_cache()
    handle[0].cancel()
    assert len(steps) == math.ceil(ENTRIES / SAVE_STEP) and {limit for limit, _ in steps} == {SAVE_STEP}
    assert all(later > earlier for (_, earlier), (_, later) in zip(steps, steps[1:]))  # other callbacks ran
    await service.stop()


@on_a_loop
async def test_the_file_is_written_on_another_thread_and_restores_exactly(tmp_path, monkeypatch):
    service = service_with_cache(tmp_path)
    await service.start()
    writers = record_threads(monkeypatch, cachefile_io, "write")
    await service.save_cache()
    assert len(writers) == 1 and writers[0] is not threading.current_thread()
    await service.stop()

    blob = (tmp_path / "state" / "cache.db").read_bytes()
    assert os.stat(tmp_path / "state" / "cache.db").st_mode & 0o777 == 0o600
    restored = Cache(20000, 86400)
    assert restored.restore(blob, now=0.0, age=0.0) == ENTRIES
    original = service.core.cache._entries
    assert list(restored._entries) == list(original)
    assert all(restored._entries[key].body == answer.body for key, answer in original.items())


@on_a_loop
async def test_a_save_asked_for_during_a_save_is_not_started_twice(tmp_path, monkeypatch):
    service = service_with_cache(tmp_path)
    await service.start()
    writers = record_threads(monkeypatch, cachefile_io, "write")
    await asyncio.gather(service.save_cache(), service.save_cache(), service.save_cache())
    assert len(writers) == 1
    await service.save_cache()  # the first is over: this one is a save of its own
    assert len(writers) == 2
    await service.stop()


@on_a_loop
async def test_stop_saves_and_follows_a_save_in_progress_with_its_own(tmp_path, monkeypatch):
    service = service_with_cache(tmp_path, 1000)
    await service.start()
    writers = record_threads(monkeypatch, cachefile_io, "write")
    periodic = asyncio.ensure_future(service.save_cache())
    await asyncio.sleep(0)  # it has begun: one step taken
    ticker_cancelled = asyncio.ensure_future(service.save_cache())
    await asyncio.sleep(0)
    ticker_cancelled.cancel()  # as the daemon cancels its ticker at stop: the save goes on
    await service.stop()
    assert periodic.done() and len(writers) == 2  # the periodic one, then the final one
    assert Cache(2000, 86400).restore((tmp_path / "state" / "cache.db").read_bytes(), 0.0, 0.0) == 1000


@on_a_loop
async def test_the_final_save_at_stop_does_not_pause_between_steps(tmp_path, monkeypatch):
    monkeypatch.setattr(resolver_service, "SAVE_PAUSE", 3600.0)  # a periodic save would take days
    service = service_with_cache(tmp_path, 1000)
    await service.start()
    await asyncio.wait_for(service.stop(), 30)
    assert Cache(2000, 86400).restore((tmp_path / "state" / "cache.db").read_bytes(), 0.0, 0.0) == 1000


@on_a_loop
async def test_hosts_files_and_sources_are_read_on_another_thread_and_parsed_on_the_loop(tmp_path, monkeypatch):
    monkeypatch.setattr(resolver_service, "WATCH_INTERVAL", 0.01)
    (tmp_path / "hosts").write_text("198.18.0.5\tbefore.test\n")
    service = ResolverService(resolver_config(tmp_path), logging.getLogger("test.resolver"),
                              source_paths=SourcePaths.under(str(tmp_path)))
    await service.start()
    readers = record_threads(monkeypatch, resolver_service, "read_changed")
    scanners = record_threads(monkeypatch, sources_io, "read_changed")
    parsers = record_threads(monkeypatch, resolver_service, "parse_hosts")
    sources_parsed = record_threads(monkeypatch, sources_io.sources, "read_resolv_conf_record")

    (tmp_path / "hosts").write_text("198.18.0.6\tafter.test\n")
    lease = tmp_path / "run/bootres/dhclient/eth0.inet"
    lease.parent.mkdir(parents=True)
    lease.write_text("nameserver 198.18.0.53\nsearch lease.test\n")
    after = b"\x05after\x04test\x00"
    for _ in range(500):  # bounded: 5 s at most
        if service.sources.status(used=()) and after in service.core.hosts.names():
            break
        await asyncio.sleep(0.01)
    await service.stop()

    assert [e.nameservers for e in service.sources.status(used=())] == [("198.18.0.53",)]
    assert service.core.hosts.names() == {after, b"\x016\x010\x0218\x03198\x07in-addr\x04arpa\x00"}
    loop_thread = threading.current_thread()
    assert readers and scanners and loop_thread not in readers + scanners
    assert set(parsers) == set(sources_parsed) == {loop_thread}
