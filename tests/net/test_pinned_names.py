"""Pinned names follow DNS with the shipped defaults: the block file is also the resolver's hosts file.

The real ``bootres run`` in a lab namespace, asking Debian's nsd in
another.  ``[hosts] file`` and ``[resolver] hosts_files`` name the same file
(the namespace's own /etc/hosts), as the shipped configuration does with
/etc/hosts: a pin refreshed through the resolver's hosts files would be
answered from bootres's own block and never move.  The name is moved by
rewriting nsd's zone and sending it SIGHUP (nsd reloads a zone file whose
mtime changed); the move counts from the moment nsd answers the new
address.  The zone's TTL is 300 s, so an answer taken from the cache, fresh
or stale, would show.  ``-s`` prints the figures.
"""

import os
import signal
import time

import dns.rdatatype

from bootres.core.stubfiles import START_SPREAD
from bootres_process import BootresProcess

REFRESH = 2.0  # [hosts] refresh_interval
SERVER, HOST = "198.18.0.10", "198.18.0.2"
NAME = "nfs1.example.test"
ALLOWANCE = 0.25  # the lookup (one round trip) and the atomic write, on a loaded 2-core machine


def zone_text(serial: int, address: str) -> str:
    return (f"$ORIGIN example.test.\n$TTL 300\n@ IN SOA ns1 hostmaster {serial} 3600 600 86400 300\n"
            f"@ IN NS ns1\nns1 IN A {SERVER}\nnfs1 IN A {address}\n")


class Nameserver:
    """nsd authoritative for example.test; ``move`` points nfs1 elsewhere and returns when nsd answers so."""

    def __init__(self, lab, ns):
        self.ns = ns
        self.serial = 1
        self.daemon = lab.nsd(ns, SERVER, records={"nfs1": "198.18.0.20"}, ttl=300, wildcard=None)

    def answers(self) -> list[str]:
        reply = self.ns.dns_query(SERVER, NAME, timeout=0.5)
        return [rd.address for rrset in reply.answer if rrset.rdtype == dns.rdatatype.A for rd in rrset]

    def move(self, address: str) -> float:
        self.serial += 1
        zone = self.daemon.workdir / "zone"
        zone.write_text(zone_text(self.serial, address))
        stamp = time.time() + self.serial  # nsd compares mtimes: make each one newer, whatever the clock's grain
        os.utime(zone, (stamp, stamp))
        os.kill(self.daemon.proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # bounded: nsd reloads in a few ms
            if self.answers() == [address]:
                return time.monotonic()
            time.sleep(0.005)
        raise AssertionError(f"nsd did not reload its zone:\n{self.daemon.log()}")


class Bootres(BootresProcess):
    """``python -m bootres run`` inside ``ns`` with the lab's configuration, once its stub files run."""

    def __init__(self, ns, conf, state_dir):
        super().__init__(conf, ns=ns)
        assert self.state_dir == str(state_dir)
        self.ready = self.wait(lambda: self.status().get("files", {}).get("hosts") and time.monotonic(), 20,
                               "the control socket and the stub files")

    def stop(self) -> int:
        status = super().stop()
        assert status == 0, self.log()
        return status


def pinned(hosts) -> list[str]:
    """The addresses the block gives the pinned name."""
    text = hosts.read_text() if hosts.exists() else ""
    block = text.split("# BEGIN bootres\n", 1)[-1].split("# END bootres", 1)[0] if "# END bootres" in text else ""
    return [line.split()[0] for line in block.splitlines() if line.split()[1:] == [NAME]]


def test_a_pinned_name_follows_dns_within_one_refresh_interval_and_at_once_at_start(lab, tmp_path):
    host, servers = lab.netns("host"), lab.netns("servers")
    lab.link(host, f"{HOST}/24", servers, f"{SERVER}/24")
    nameserver = Nameserver(lab, servers)
    hosts = host.etc / "hosts"  # what glibc reads as /etc/hosts inside the namespace
    hosts.write_text("127.0.0.1\tlocalhost\n198.18.9.9\tprinter # the admin's\n")
    conf = tmp_path / "bootres.conf"
    conf.write_text(
        f"[resolver]\nlisten = 127.0.0.35:53\nupstreams = {SERVER}\nmanage_resolv_conf = no\n"
        f"cache_file = {tmp_path / 'cache.db'}\nhosts_files = {hosts}\n"
        f"[hosts]\nfile = {hosts}\npin = {NAME}\nrefresh_interval = {REFRESH:g}s\n"
        f"[router]\ndiscovery = no\nsolicit = no\ninstall_route = no\ndefaultrouter_file = {tmp_path / 'defaultrouter'}\n"
        f"[service]\nstate_dir = {tmp_path / 'state'}\nmetrics_file =\n"
    )
    state = str(tmp_path / "state")
    figures = {}

    # First start: the pin is asked at once.
    bootres = Bootres(host, conf, state)
    bootres.wait(lambda: pinned(hosts) == ["198.18.0.20"], 5, "the first address")
    figures["first start: in the block after start"] = time.monotonic() - bootres.started

    # The name moves at the nameserver: the block follows within one refresh interval.
    moved = nameserver.move("198.18.0.21")
    bootres.wait(lambda: pinned(hosts) == ["198.18.0.21"], REFRESH + 2, "the moved address")
    figures["moved: in the block after"] = elapsed = time.monotonic() - moved
    assert elapsed < REFRESH + ALLOWANCE, figures
    # dig and glibc agree on one answer on the host: the block's.
    bootres.wait(lambda: [rd.address for rrset in host.dns_query("127.0.0.35", NAME).answer for rd in rrset]
                 == ["198.18.0.21"], 2, "the resolver answering from the block")
    assert host.run("getent", "hosts", NAME).stdout.split() == ["198.18.0.21", NAME]
    assert hosts.read_text().startswith("127.0.0.1\tlocalhost\n198.18.9.9\tprinter # the admin's\n# BEGIN bootres\n")
    # A refresh with the same answer leaves it in the cache, which the stop saves: last boot's entry for next start.
    time.sleep(REFRESH + 0.5)
    entry = bootres.status()["files"]["hosts"]["pinned"][0]
    assert entry["source"] == "dns" and entry["last_lookup"] == "answered" and entry["confirmed_s_ago"] < REFRESH + 0.1
    bootres.stop()
    cache = (tmp_path / "cache.db").read_bytes()
    assert b"\x04nfs1\x07example\x04test\x00" in cache and bytes([198, 18, 0, 21]) in cache

    # Moved again while bootres was down: at start the block takes the nameserver's answer, not the cache's.
    nameserver.move("198.18.0.22")
    bootres = Bootres(host, conf, state)
    bootres.wait(lambda: pinned(hosts) == ["198.18.0.22"], 5, "the address moved while bootres was down")
    figures["restart: in the block after start"] = time.monotonic() - bootres.started
    figures["restart: in the block after the control socket answered"] = after_ready = time.monotonic() - bootres.ready
    assert after_ready < START_SPREAD + ALLOWANCE, figures  # each pin's first lookup waits up to START_SPREAD
    assert "cache file" in bootres.log() and "198.18.0.21" not in hosts.read_text()
    bootres.stop()

    # Restart with no nameserver answering: the block keeps the last addresses, the status says why.
    lab.blackhole(servers)
    written = hosts.stat().st_mtime_ns
    bootres = Bootres(host, conf, state)
    entry = bootres.wait(lambda: (e := bootres.status()["files"]["hosts"]["pinned"][0])["last_lookup"] == "no answer"
                         and e, 10, "the failed lookup")
    assert entry["addresses"] == ["198.18.0.22"] and entry["source"] == "last block"
    time.sleep(0.5)
    assert pinned(hosts) == ["198.18.0.22"] and hosts.stat().st_mtime_ns == written  # not even rewritten
    assert f"pinned name {NAME}: no nameserver answered; keeping 198.18.0.22" in bootres.log()
    bootres.stop()
    for what, seconds in figures.items():
        print(f"{what}: {seconds:.3f} s")
