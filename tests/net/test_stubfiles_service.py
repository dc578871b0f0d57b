"""StubFilesService on real files: pinned names survive a dead DNS, admin bytes survive rewrites, read-only /etc degrades.

The adapter around ``core/stubfiles.py``: its effects carried out on real
files in tmp_path, lookups through a stand-in for
``ResolverService.lookup_pinned``, netlink through ``observe`` with a
``netlink.Snapshot`` as the daemon hands it over.
"""

import asyncio
import dataclasses
import ipaddress
import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time

from bootres import config
from bootres.core.report import to_json
from bootres.shell import stubfiles_service
from bootres.shell.netlink import Snapshot
from bootres.shell.stubfiles_service import StubFilesService

ADMIN_BEFORE = "127.0.0.1\tlocalhost\n# notes\t kept  byte for byte\n"
ADMIN_AFTER = "198.18.9.9 printer\n# last line without newline"
LAST_BOOT = (
    "# BEGIN bootres\n# Managed by bootres (an older header)\n"
    "198.18.1.77\tsite-router\n198.18.0.20\tnfs1.example.com\n2001:db8::20\tnfs1.example.com\n"
    "198.18.0.30\tnot-pinned-any-more.example.com\n# END bootres\n"
)


def configs(tmp_path, pin=("nfs1.example.com", "mailhub.example.com"), self_entry=False, refresh_interval=300.0):
    default = config.defaults()
    hosts = dataclasses.replace(default.hosts, file=str(tmp_path / "hosts"), self_entry=self_entry,
                                router_names=("site-router",), pin=pin, refresh_interval=refresh_interval)
    router = dataclasses.replace(default.router, defaultrouter_file=str(tmp_path / "defaultrouter"))
    return hosts, router


class Resolver:
    """Stands in for ResolverService.lookup_pinned: answers from ``table``; None (no answer) for a missing name."""

    def __init__(self, table):
        self.table, self.asked = table, []

    async def lookup(self, name):
        self.asked.append(name)
        found = self.table.get(name)
        return None if found is None else list(found)


async def run_files(hosts, router, resolver, steps, **options):
    files = StubFilesService(hosts, router, logging.getLogger("bootres.files"), resolver.lookup, **options)
    await files.start()
    try:
        for step in steps:
            await step(files)
    finally:
        await files.stop()
    return files


def read(path) -> str:
    """The file's text, "" while it does not exist yet."""
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


async def until(condition, what="condition"):
    for _ in range(100):  # bounded: 5 s
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_last_boot_block_seeds_router_and_pins_while_dns_is_down(tmp_path):
    (tmp_path / "hosts").write_text(ADMIN_BEFORE + LAST_BOOT + ADMIN_AFTER)
    (tmp_path / "defaultrouter").write_text("198.18.1.50\n")
    hosts, router = configs(tmp_path)
    dead = Resolver({})

    async def settle(files):
        await until(lambda: len(dead.asked) == 2 and "not-pinned" not in read(tmp_path / "hosts"))
        await asyncio.sleep(0.1)  # a write after the failed lookups would happen now

    files = asyncio.run(run_files(hosts, router, dead, [settle]))
    text = (tmp_path / "hosts").read_text()
    assert text.startswith(ADMIN_BEFORE + "# BEGIN bootres\n") and text.endswith("# END bootres\n" + ADMIN_AFTER)
    # The router is last boot's /etc/defaultrouter; pinned names keep last boot's addresses; unpinned ones go.
    assert "198.18.1.50\tsite-router\n" in text
    assert "198.18.0.20\tnfs1.example.com\n2001:db8::20\tnfs1.example.com\n" in text
    assert "not-pinned-any-more" not in text and "mailhub" not in text
    assert sorted(dead.asked) == ["mailhub.example.com", "nfs1.example.com"]
    status = to_json(files.status())["hosts"]
    assert status["entries"] == 3
    assert status["pinned"][0]["source"] == "last block" and status["pinned"][0]["last_lookup"] == "no answer"


def test_pins_follow_dns_and_routers_follow_discovery_keeping_admin_bytes(tmp_path):
    (tmp_path / "hosts").write_text(ADMIN_BEFORE + LAST_BOOT + ADMIN_AFTER)
    hosts, router = configs(tmp_path, refresh_interval=0.05)
    resolver = Resolver({"nfs1.example.com": ["198.18.0.21"], "mailhub.example.com": ["198.18.0.40", "2001:db8::40"]})
    snapshots = []

    async def hosts_has(text):
        await until(lambda: text in read(tmp_path / "hosts"), text)
        snapshots.append((tmp_path / "hosts").read_text())

    async def new_router(files):
        files.set_routers(["198.18.1.1", "198.18.1.2"])
        await hosts_has("198.18.1.1\tsite-router\n198.18.0.21\tnfs1.example.com\n198.18.0.40\tmailhub.example.com\n")

    async def dns_dies_then_router_changes(files):
        resolver.table = {"mailhub.example.com": []}  # NXDOMAIN for one, no answer for the other
        asked = len(resolver.asked)
        await until(lambda: len(resolver.asked) >= asked + 2, "a refresh with DNS down")
        files.set_routers(["198.18.1.2"])
        await hosts_has("198.18.1.2\tsite-router\n")

    files = asyncio.run(run_files(hosts, router, resolver, [new_router, dns_dies_then_router_changes]))
    for text in snapshots:
        assert text.startswith(ADMIN_BEFORE) and text.endswith(ADMIN_AFTER)
    assert "198.18.0.40\tmailhub.example.com\n2001:db8::40\tmailhub.example.com\n" in snapshots[0]
    # Both kept what DNS said last.
    assert ("198.18.1.2\tsite-router\n198.18.0.21\tnfs1.example.com\n"
            "198.18.0.40\tmailhub.example.com\n2001:db8::40\tmailhub.example.com\n") in snapshots[1]
    assert (tmp_path / "defaultrouter").read_text() == "198.18.1.2\n"
    status = to_json(files.status())
    assert status["defaultrouter"]["content"] == ["198.18.1.2"] and status["hosts"]["written_at"]
    assert [p["last_lookup"] for p in status["hosts"]["pinned"]] == ["no answer", "no address"]
    assert "error" not in status["hosts"]


def test_an_admins_edit_made_just_before_a_write_is_kept(tmp_path):
    (tmp_path / "hosts").write_text(ADMIN_BEFORE)
    hosts, router = configs(tmp_path, pin=())

    async def edit_then_change(files):
        await until(lambda: "# END bootres" in read(tmp_path / "hosts"))
        with open(tmp_path / "hosts", "a") as handle:
            handle.write("198.18.9.7 added-by-admin\n")
        files.set_routers(["198.18.1.1"])
        await until(lambda: "198.18.1.1\tsite-router" in read(tmp_path / "hosts"))

    asyncio.run(run_files(hosts, router, Resolver({}), [edit_then_change]))
    assert (tmp_path / "hosts").read_text().endswith("# END bootres\n198.18.9.7 added-by-admin\n")


def test_unchanged_content_is_not_rewritten_at_restart(tmp_path):
    (tmp_path / "hosts").write_text(ADMIN_BEFORE)
    hosts, router = configs(tmp_path, pin=())

    async def route(files):
        files.set_routers(["198.18.1.1"])
        await until(lambda: (tmp_path / "defaultrouter").exists() and "site-router" in read(tmp_path / "hosts"))

    asyncio.run(run_files(hosts, router, Resolver({}), [route]))
    before = {name: os.stat(tmp_path / name) for name in ("hosts", "defaultrouter")}
    files = asyncio.run(run_files(hosts, router, Resolver({}), [route]))
    for name, info in before.items():
        after = os.stat(tmp_path / name)
        assert (after.st_ino, after.st_mtime_ns) == (info.st_ino, info.st_mtime_ns), name
    assert to_json(files.status())["hosts"]["written_at"]  # the file's time, though this run wrote nothing


def snapshot(v4=None, v6=None) -> Snapshot:
    return Snapshot(links=(), default_routes=(), primary_address=v4 and ipaddress.IPv4Address(v4),
                    primary_address6=v6 and ipaddress.IPv6Address(v6))


def test_self_entry_names_this_host_with_its_ipv4_and_ipv6_address(tmp_path):
    hosts, router = configs(tmp_path, pin=(), self_entry=True)
    name = socket.gethostname()
    names = f"{name} {name.split('.')[0]}" if "." in name else f"{name}.corp.example.test {name}"

    async def addresses(files):
        files.set_search_domains(("corp.example.test",))
        files.observe(snapshot("198.18.1.10", "2001:db8::10"))
        await until(lambda: f"2001:db8::10\t{names}\n" in read(tmp_path / "hosts"))
        assert f"198.18.1.10\t{names}\n2001:db8::10\t{names}\n" in (tmp_path / "hosts").read_text()
        files.observe(snapshot("198.18.1.11", None))
        await until(lambda: "2001:db8::10" not in read(tmp_path / "hosts"))

    files = asyncio.run(run_files(hosts, router, Resolver({}), [addresses]))
    assert f"198.18.1.11\t{names}\n" in (tmp_path / "hosts").read_text()
    assert to_json(files.status())["hosts"]["self"]["addresses"] == ["198.18.1.11"]


def test_files_are_read_and_written_off_the_event_loop_and_stop_is_clean(tmp_path, monkeypatch):
    hosts, router = configs(tmp_path, pin=("slow.example.com",))
    threads = set()

    def on_thread(job):
        def recording(*args):
            threads.add(threading.current_thread().name)
            return job(*args)
        return recording

    for job in ("read_file", "write_file"):
        monkeypatch.setattr(stubfiles_service, job, on_thread(getattr(stubfiles_service, job)))

    class Stuck(Resolver):
        async def lookup(self, name):
            self.asked.append(name)
            await asyncio.sleep(60)  # a lookup still under way when stop comes: cancelled, never fed back

    async def scenario():
        stuck = Stuck({})
        files = StubFilesService(hosts, router, logging.getLogger("bootres.files"), stuck.lookup)
        await files.start()
        await until(lambda: stuck.asked and (tmp_path / "hosts").exists())
        started = time.monotonic()
        await files.stop()
        stopped_in = time.monotonic() - started
        mtime = os.stat(tmp_path / "hosts").st_mtime_ns
        files.set_routers(["198.18.1.1"])  # after stop: no job submitted, no timer armed
        files.observe(snapshot("198.18.1.10"))
        await asyncio.sleep(0.2)
        assert files.driver.armed is None and not files._jobs
        assert os.stat(tmp_path / "hosts").st_mtime_ns == mtime and not (tmp_path / "defaultrouter").exists()
        return stopped_in

    stopped_in = asyncio.run(scenario())
    assert threads == {"bootres-files_0"}
    assert stopped_in < 0.5


READ_ONLY_CHILD = textwrap.dedent("""
    import asyncio, json, logging, subprocess, sys
    sys.path.insert(0, sys.argv[2])
    from test_stubfiles_service import configs, run_files, to_json, until, Resolver
    from pathlib import Path
    tmp = Path(sys.argv[1])
    hosts, router = configs(tmp, pin=())
    result = {}

    async def steps(files):
        files.set_routers(["198.18.1.1"])
        await until(lambda: all("error" in entry for entry in to_json(files.status()).values()))
        result["while_ro"] = to_json(files.status())
        subprocess.run(["mount", "-o", "remount,bind,rw", str(tmp)], check=True)
        await until(lambda: not any("error" in entry for entry in to_json(files.status()).values()))  # retry every 0.2 s
        await asyncio.sleep(0.5)  # more retries would show up as more log lines
        result["after_rw"] = to_json(files.status())

    asyncio.run(run_files(hosts, router, Resolver({}), [steps], retry_interval=0.2))
    print(json.dumps(result))
""")


def test_read_only_etc_is_reported_and_retried_never_a_crash(tmp_path):
    (tmp_path / "hosts").write_text(ADMIN_BEFORE)
    script = (f"mount --bind {tmp_path} {tmp_path} && mount -o remount,bind,ro {tmp_path} && "
              f'exec {sys.executable} -c "$CHILD" {tmp_path} {os.path.dirname(__file__)}')
    done = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                          env={**os.environ, "CHILD": READ_ONLY_CHILD}, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["while_ro"]["hosts"]["error"] == f"cannot write {tmp_path}/hosts: Read-only file system"
    assert "error" in result["while_ro"]["defaultrouter"]
    assert "error" not in result["after_rw"]["hosts"] and "error" not in result["after_rw"]["defaultrouter"]
    assert "Traceback" not in done.stderr
    assert done.stderr.count("Read-only file system") == 2  # one line per file, not one per retry
    # The private mount namespace is gone; the writes it made after the remount are in the directory.
    assert (tmp_path / "hosts").read_text().startswith(ADMIN_BEFORE + "# BEGIN bootres\n")
    assert (tmp_path / "defaultrouter").read_text() == "198.18.1.1\n"


def test_reload_with_a_new_pin_looks_it_up_at_once(tmp_path):
    hosts, router = configs(tmp_path, pin=())
    resolver = Resolver({"new.example.com": ["198.18.0.77"]})

    async def pin_it(files):
        files.prepare_reconfigure(dataclasses.replace(hosts, self_entry=False, pin=("new.example.com",),
                                                     refresh_interval=300.0), router)()
        # Far below the 300 s refresh interval.
        await until(lambda: "198.18.0.77\tnew.example.com\n" in read(tmp_path / "hosts"), "the new pin")

    asyncio.run(run_files(hosts, router, resolver, [pin_it]))
