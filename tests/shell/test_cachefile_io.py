"""cachefile_io and the resolver service's cache file (issue 24): clocks, leftovers, faults in status, no emptier file.

A real ResolverService on loopback (test_resolver_service's helpers), every
file under tmp_path; the clock reading the service takes is replaced where a
test needs another boot or a wrong clock.
"""

from __future__ import annotations

import logging
import os
import uuid

import pytest

from bootres.core import cachefile
from bootres.core.cache import Cache
from bootres.shell import cachefile_io, resolver_service
from bootres.shell.resolver_service import ResolverService
from bootres.shell.sources_io import SourcePaths
from test_resolver_service import a_record, on_a_loop, resolver_config

DAY = 86400.0


def test_the_clock_reading_names_this_boot():
    reading = cachefile_io.read_clock()
    with open("/proc/sys/kernel/random/boot_id") as handle:
        assert reading.boot_id == uuid.UUID(handle.read().strip()).bytes
    assert isinstance(reading.synchronized, bool)
    assert cachefile_io.read_clock().boottime >= reading.boottime


def test_the_units_boot_id_wins_and_timesyncds_flag_means_synchronised(monkeypatch, tmp_path):
    monkeypatch.setenv("BOOTRES_BOOT_ID", "0123456789abcdef0123456789abcdef")  # as %b gives it
    assert cachefile_io.boot_id() == bytes.fromhex("0123456789abcdef0123456789abcdef")
    flag = tmp_path / "synchronized"
    monkeypatch.setattr(cachefile_io, "TIMESYNC_FLAG", str(flag))
    monkeypatch.setattr(cachefile_io.ctypes, "CDLL", lambda *_a, **_k: (_ for _ in ()).throw(OSError("EPERM")))
    assert cachefile_io.clock_synchronized() is False  # no flag, adjtimex refused (the unit's ProtectClock=)
    flag.touch()
    assert cachefile_io.clock_synchronized() is True


def test_an_unreadable_boot_id_or_a_refused_adjtimex_mean_unknown(monkeypatch, tmp_path):
    monkeypatch.delenv("BOOTRES_BOOT_ID", raising=False)
    monkeypatch.setattr(cachefile_io, "TIMESYNC_FLAG", str(tmp_path / "no-flag"))
    monkeypatch.setattr(cachefile_io, "BOOT_ID", str(tmp_path / "missing"))
    assert cachefile_io.boot_id() == cachefile.NO_BOOT_ID
    (tmp_path / "garbage").write_text("not a uuid\n")
    monkeypatch.setattr(cachefile_io, "BOOT_ID", str(tmp_path / "garbage"))
    assert cachefile_io.boot_id() == cachefile.NO_BOOT_ID

    def refused(*_args, **_kwargs):
        raise OSError("seccomp said no")

    monkeypatch.setattr(cachefile_io.ctypes, "CDLL", refused)
    assert cachefile_io.clock_synchronized() is False


def test_leftovers_are_removed_and_one_that_cannot_be_is_named(tmp_path):
    path = tmp_path / "cache.db"
    (tmp_path / ".cache.db.bootres-1a2b3c4d").write_bytes(b"x" * 100)
    (tmp_path / ".other.bootres-1a2b3c4d").write_bytes(b"not ours")
    assert cachefile_io.remove_leftovers(str(path)) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.bootres-1a2b3c4d"]
    stuck = tmp_path / ".cache.db.bootres-deadbeef"
    stuck.mkdir()
    (stuck / "inside").write_text("")  # a directory: unlink fails, as on a read-only file system
    problem = cachefile_io.remove_leftovers(str(path))
    assert problem is not None and str(stuck) in problem


# --- the service


def service(tmp_path) -> ResolverService:
    return ResolverService(resolver_config(tmp_path), logging.getLogger("test.cachefile"),
                           source_paths=SourcePaths.under(str(tmp_path)))


def saved_file(tmp_path, entries: int, clock: cachefile.ClockReading) -> bytes:
    cache = Cache(20000, 3 * DAY)
    for i in range(entries):
        cache.put(*a_record(i), now=0.0)
    blob = cache.snapshot(now=10.0, clock=clock)
    (tmp_path / "state").mkdir(exist_ok=True)
    (tmp_path / "state" / "cache.db").write_bytes(blob)
    return blob


NOW = cachefile.ClockReading(1_800_000_000.0, False, b"n" * 16, 20.0)  # a boot, its clock not yet confirmed


@pytest.mark.parametrize("saved_wall, level, says", [
    (NOW.wall + 30 * 365 * DAY, "WARNING", "later than the clock reads now"),  # the clock at boot is 30 years behind
    (NOW.wall - 30 * 365 * DAY, "WARNING", "a wrong clock"),  # 30 years ahead
    (NOW.wall - 600.0, "INFO", "not synchronised yet"),  # an ordinary reboot before NTP answered
])
@on_a_loop
async def test_an_untrusted_age_keeps_every_entry_and_says_why_once(tmp_path, monkeypatch, caplog, saved_wall,
                                                                    level, says):
    saved_file(tmp_path, 200, cachefile.ClockReading(saved_wall, True, b"s" * 16, 900.0))
    monkeypatch.setattr(cachefile_io, "read_clock", lambda: NOW)
    resolver = service(tmp_path)
    with caplog.at_level(logging.INFO, logger="test.cachefile"):
        await resolver.start()
    lines = [r for r in caplog.records if "age not trusted" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelname == level and says in lines[0].getMessage()
    assert len(resolver.core.cache) == 200
    status = resolver.status().cache_file
    assert (status.loaded, status.age_trusted, status.problem) == (200, False, None)
    await resolver.stop()
    again = cachefile.read((tmp_path / "state" / "cache.db").read_bytes(), 0.0)
    assert len(again.records) == 200 and again.saved.boot_id == b"n" * 16  # saved with this boot's reading


@on_a_loop
async def test_a_damaged_file_is_a_problem_until_a_save_succeeds(tmp_path, monkeypatch, caplog):
    blob = saved_file(tmp_path, 1000, NOW)
    middle = len(blob) // 2
    (tmp_path / "state" / "cache.db").write_bytes(blob[:middle] + b"\xff" * 8 + blob[middle + 8:])
    monkeypatch.setattr(cachefile_io, "read_clock", lambda: NOW._replace(boottime=NOW.boottime + 5))  # same boot
    resolver = service(tmp_path)
    with caplog.at_level(logging.INFO, logger="test.cachefile"):
        await resolver.start()
    status = resolver.status().cache_file
    assert status.damaged == 1 and 998 <= status.loaded <= 999 and status.problem.startswith("damaged")
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "5 s old (saved during this boot)" in warnings[0] and "1 damaged region" in warnings[0]
    await resolver.save_cache()
    status = resolver.status().cache_file
    assert status.problem is None and status.saved_entries == status.loaded
    await resolver.stop()


@on_a_loop
async def test_a_save_that_fails_is_a_problem_until_one_succeeds(tmp_path, caplog):
    resolver = service(tmp_path)
    await resolver.start()
    resolver.core.cache.put(*a_record(1), now=resolver.driver.now())
    (tmp_path / "state").write_text("a file where the directory should be\n")
    with caplog.at_level(logging.INFO, logger="test.cachefile"):
        await resolver.save_cache()
        await resolver.save_cache()
    assert resolver.status().cache_file.problem.startswith("cannot save")
    assert sum("cannot save" in r.getMessage() for r in caplog.records) == 1  # once per fault, not per save
    (tmp_path / "state").unlink()
    await resolver.save_cache()
    assert resolver.status().cache_file.problem is None and resolver.status().cache_file.saved_entries == 1
    await resolver.stop()


@on_a_loop
async def test_an_empty_cache_never_replaces_a_file_and_leftovers_go_at_start(tmp_path, monkeypatch):
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "cache.db").write_bytes(b"SQLite format 3\x00")  # not ours: nothing loads from it
    (tmp_path / "state" / ".cache.db.bootres-0badc0de").write_bytes(b"half a save")
    resolver = service(tmp_path)
    await resolver.start()
    assert not (tmp_path / "state" / ".cache.db.bootres-0badc0de").exists()
    assert resolver.status().cache_file.problem.startswith("ignored: not a bootres cache file")
    await resolver.save_cache()  # nothing cached: the file stays as it is
    assert (tmp_path / "state" / "cache.db").read_bytes() == b"SQLite format 3\x00"
    resolver.core.cache.put(*a_record(7), now=resolver.driver.now())
    await resolver.stop()  # an answer: now it is replaced
    assert len(cachefile.read((tmp_path / "state" / "cache.db").read_bytes(), 0.0).records) == 1
    assert resolver_service.SAVE_STEP > 0 and os.path.exists(tmp_path / "state" / "cache.db")
