"""StubFiles on real files: pinned names survive a dead DNS, admin bytes survive rewrites, read-only /etc degrades."""

import asyncio
import json
import logging
import os
import socket
import subprocess
import sys
import textwrap

from bootres.config import HostsConfig, RouterConfig
from bootres.shell.stubfiles import StubFiles

ADMIN_BEFORE = "127.0.0.1\tlocalhost\n# notes\t kept  byte for byte\n"
ADMIN_AFTER = "198.18.9.9 printer\n# last line without newline"
LAST_BOOT = (
    "# BEGIN bootres\n# Managed by bootres (an older header)\n"
    "198.18.1.77\tsite-router\n198.18.0.20\tnfs1.example.com\n2001:db8::20\tnfs1.example.com\n"
    "198.18.0.30\tnot-pinned-any-more.example.com\n# END bootres\n"
)


def configs(tmp_path, pin=("nfs1.example.com", "mailhub.example.com"), self_entry=False):
    hosts = HostsConfig(file=str(tmp_path / "hosts"), self_entry=self_entry, router_names=("site-router",), pin=pin)
    router = RouterConfig(discovery=True, interfaces=(), solicit=True, install_route=True, static=(),
                          defaultrouter_file=str(tmp_path / "defaultrouter"))
    return hosts, router


class Resolver:
    """Stands in for ResolverService.lookup_addresses: answers from ``table``, [] when "down"."""

    def __init__(self, table):
        self.table, self.asked = table, []

    async def lookup(self, name):
        self.asked.append(name)
        return list(self.table.get(name, []))


async def run_files(hosts, router, resolver, steps, **options):
    files = StubFiles(hosts, router, logging.getLogger("bootres.files"), resolver.lookup, **options)
    await files.start()
    try:
        for step in steps:
            await step(files)
    finally:
        await files.stop()
    return files


def test_last_boot_block_seeds_router_and_pins_while_dns_is_down(tmp_path):
    (tmp_path / "hosts").write_text(ADMIN_BEFORE + LAST_BOOT + ADMIN_AFTER)
    (tmp_path / "defaultrouter").write_text("198.18.1.50\n")
    hosts, router = configs(tmp_path)
    dead = Resolver({})

    async def settle(files):
        for _ in range(100):  # bounded: 5 s
            if len(dead.asked) == 2:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.1)  # a write after the failed lookups would happen now

    files = asyncio.run(run_files(hosts, router, dead, [settle]))
    text = (tmp_path / "hosts").read_text()
    assert text.startswith(ADMIN_BEFORE + "# BEGIN bootres\n") and text.endswith("# END bootres\n" + ADMIN_AFTER)
    # The router is last boot's /etc/defaultrouter; pinned names keep last boot's addresses; unpinned ones go.
    assert "198.18.1.50\tsite-router\n" in text
    assert "198.18.0.20\tnfs1.example.com\n2001:db8::20\tnfs1.example.com\n" in text
    assert "not-pinned-any-more" not in text and "mailhub" not in text
    assert dead.asked == ["nfs1.example.com", "mailhub.example.com"]
    assert files.status()["hosts"]["entries"] == 3


def test_pins_follow_dns_and_routers_follow_discovery_keeping_admin_bytes(tmp_path):
    (tmp_path / "hosts").write_text(ADMIN_BEFORE + LAST_BOOT + ADMIN_AFTER)
    hosts, router = configs(tmp_path)
    resolver = Resolver({"nfs1.example.com": ["198.18.0.21"], "mailhub.example.com": ["198.18.0.40", "2001:db8::40"]})
    snapshots = []

    async def hosts_has(text):
        for _ in range(100):  # bounded: 5 s
            if text in (tmp_path / "hosts").read_text():
                break
            await asyncio.sleep(0.05)
        snapshots.append((tmp_path / "hosts").read_text())

    async def new_router(files):
        files.set_routers(["198.18.1.1", "198.18.1.2"])
        await hosts_has("198.18.0.40\tmailhub.example.com\n")

    async def dns_dies_then_router_changes(files):
        resolver.table = {}
        asked = len(resolver.asked)
        for _ in range(100):  # bounded: a refresh (every 0.05 s) with DNS down keeps what is known
            if len(resolver.asked) >= asked + 2:
                break
            await asyncio.sleep(0.05)
        files.set_routers(["198.18.1.2"])
        await hosts_has("198.18.1.2\tsite-router\n")

    files = asyncio.run(run_files(hosts, router, resolver, [new_router, dns_dies_then_router_changes],
                                  refresh_interval=0.05))
    for text in snapshots:
        assert text.startswith(ADMIN_BEFORE) and text.endswith(ADMIN_AFTER)
    assert "198.18.1.1\tsite-router\n198.18.0.21\tnfs1.example.com\n" in snapshots[0]
    assert "198.18.0.40\tmailhub.example.com\n2001:db8::40\tmailhub.example.com\n" in snapshots[0]
    assert "198.18.1.2\tsite-router\n198.18.0.21\tnfs1.example.com\n" in snapshots[1]
    assert (tmp_path / "defaultrouter").read_text() == "198.18.1.2\n"
    status = files.status()
    assert status["defaultrouter"]["content"] == ["198.18.1.2"] and status["hosts"]["written_at"]
    assert "error" not in status["hosts"]


def test_unchanged_content_is_not_rewritten_at_restart(tmp_path):
    (tmp_path / "hosts").write_text(ADMIN_BEFORE)
    hosts, router = configs(tmp_path, pin=())

    async def route(files):
        files.set_routers(["198.18.1.1"])
        await asyncio.sleep(0.1)

    asyncio.run(run_files(hosts, router, Resolver({}), [route]))
    before = {name: os.stat(tmp_path / name) for name in ("hosts", "defaultrouter")}
    asyncio.run(run_files(hosts, router, Resolver({}), [route]))
    for name, info in before.items():
        after = os.stat(tmp_path / name)
        assert (after.st_ino, after.st_mtime_ns) == (info.st_ino, info.st_mtime_ns), name


def test_self_entry_names_this_host(tmp_path):
    hosts, router = configs(tmp_path, pin=(), self_entry=True)

    async def address_known(files):
        for _ in range(100):  # bounded: 5 s for the netlink read
            if files.primary_address and files.primary_address in (tmp_path / "hosts").read_text():
                return
            await asyncio.sleep(0.05)

    files = asyncio.run(run_files(hosts, router, Resolver({}), [address_known]))
    assert files.primary_address, "this machine has an IPv4 address; netlink should have found it"
    line = next(line for line in (tmp_path / "hosts").read_text().splitlines() if line.startswith(files.primary_address))
    assert socket.gethostname().split(".")[0] in line.split()[1:]


READ_ONLY_CHILD = textwrap.dedent("""
    import asyncio, json, logging, subprocess, sys
    sys.path.insert(0, sys.argv[2])
    from test_stubfiles import configs, run_files, Resolver
    from pathlib import Path
    tmp = Path(sys.argv[1])
    hosts, router = configs(tmp, pin=())
    result = {}

    async def until(condition):
        for _ in range(100):  # bounded: 5 s
            if condition():
                return
            await asyncio.sleep(0.05)

    async def steps(files):
        files.set_routers(["198.18.1.1"])
        await until(lambda: len(files.failing) == 2)
        result["while_ro"] = files.status()
        subprocess.run(["mount", "-o", "remount,bind,rw", str(tmp)], check=True)
        await until(lambda: not files.failing)  # retry_interval is 0.2 s
        await asyncio.sleep(0.5)  # more retries would show up as more log lines
        result["after_rw"] = files.status()

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
    assert result["while_ro"]["hosts"]["error"].startswith(f"cannot write {tmp_path}/hosts: Read-only file system")
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
        files.reconfigure(HostsConfig(hosts.file, False, hosts.router_names, ("new.example.com",)), router)
        for _ in range(100):  # bounded: 5 s, far below the 300 s refresh interval
            if "198.18.0.77\tnew.example.com\n" in (tmp_path / "hosts").read_text():
                return
            await asyncio.sleep(0.05)
        raise AssertionError("the new pin was not looked up")

    asyncio.run(run_files(hosts, router, resolver, [pin_it]))
