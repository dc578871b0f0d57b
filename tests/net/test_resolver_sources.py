"""Upstreams from the host's sources, followed live, and split DNS (issue 9), over real sockets.

bootres runs alone (``python -m bootres run``) in a lab
namespace with ``--sources-under``: the dhclient hook's and networkd's files
live below a temporary directory, written here the way those programs write
them.  Upstreams are fake servers in the ``servers`` namespace.
"""

from __future__ import annotations

import os
import time

import pytest

from resolver_harness import UPSTREAMS, Client, ResolverProcess, resolver_config, slow_upstream_process, upstream_lab

DEFAULT, INTERNAL, OTHER = UPSTREAMS
INTERNAL_ANSWER = "198.19.0.1"  # what slow_upstream_process answers
CORP_NAMES = 50


def write_atomically(path, text: str | bytes) -> None:
    """As the dhclient hook and networkd do: a temporary file beside it, renamed over."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.parent / f".{path.name}.new"
    temp.write_bytes(text if isinstance(text, bytes) else text.encode())
    os.rename(temp, path)


def addresses(reply) -> list[str]:
    return [rd.to_text() for rrset in reply.answer for rd in rrset if rd.rdtype == 1]


def wait_for(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:  # bounded by timeout
        result = check()
        if result or time.monotonic() > deadline:
            assert result, f"not within {timeout} s: {what}"
            return result
        time.sleep(0.02)


def corp_test(default_fake, client) -> list[float]:
    """Every corp.test name gets the internal server's answer; the default server sees none of them."""
    times = []
    for i in range(CORP_NAMES):
        reply, ms = client.ask(f"host{i}.corp.test")
        assert reply.rcode() == 0 and addresses(reply) == [INTERNAL_ANSWER], reply
        times.append(ms)
    reply, _ = client.ask("www.public.test")  # outside corp.test: the default server's NXDOMAIN
    assert reply.rcode() == 3
    assert not [name for name in default_fake.qnames if "corp.test" in name], default_fake.qnames
    assert any("public.test" in name for name in default_fake.qnames)
    return times


@pytest.fixture
def split_lab(lab):
    """A default server that says NXDOMAIN at once, an internal one that knows corp.test 20 ms later."""
    host, servers = upstream_lab(lab)
    default_fake = lab.fakedns(servers, DEFAULT)  # no answers: NXDOMAIN for everything, at once
    internal = slow_upstream_process(servers, INTERNAL, 20, INTERNAL_ANSWER)
    yield host, default_fake
    internal.terminate()
    internal.wait(5)


def test_split_dns_from_the_configuration(split_lab, tmp_path):
    host, default_fake = split_lab
    conf = resolver_config(tmp_path, upstreams=f"{DEFAULT} corp.test={INTERNAL}")
    resolver = ResolverProcess(host, conf, tmp_path)
    times = corp_test(default_fake, Client(host))
    routes = resolver.status()["routes"]
    assert resolver.stop() == 0
    print(f"\nsplit DNS (config): corp.test p50 {sorted(times)[len(times) // 2]:.1f} ms, max {max(times):.1f} ms")
    assert routes == [{"domain": "corp.test", "upstreams": [f"{INTERNAL}:53"]}]


def test_split_dns_from_networkd_and_dhclient_sources(split_lab, tmp_path):
    host, default_fake = split_lab
    root = tmp_path / "root"
    # A VPN-like link whose server alone knows corp.test (networkd Domains=~corp.test),
    # and a DHCP lease with the default server.
    write_atomically(root / "run/systemd/netif/links/7",
                     "# This is private data. Do not parse.\nADMIN_STATE=configured\nOPER_STATE=routable\n"
                     f"DNS={INTERNAL}\nDOMAINS=\nROUTE_DOMAINS=corp.test\n")
    write_atomically(root / "run/bootres/dhclient/eth0.inet", f"nameserver {DEFAULT}\nsearch public.test\n")
    conf = resolver_config(tmp_path, upstreams="", upstreams_file="")
    resolver = ResolverProcess(host, conf, tmp_path, sources_under=root)
    corp_test(default_fake, Client(host))
    status = resolver.status()
    upstreams, resolver_sources = {u["address"]: u for u in status["upstreams"]}, status["sources"]
    assert resolver.stop() == 0
    assert upstreams[f"{DEFAULT}:53"]["source"] == "dhclient eth0"
    assert upstreams[f"{INTERNAL}:53"]["source"].startswith("networkd")
    assert upstreams[f"{INTERNAL}:53"]["domains"] == ["corp.test"]
    assert all(source["in_use"] for source in resolver_sources)


def test_a_new_lease_is_in_use_within_a_second_and_the_cache_stays(lab, tmp_path):
    host, servers = upstream_lab(lab)
    first = lab.fakedns(servers, DEFAULT, default_address="198.19.1.1")
    second = lab.fakedns(servers, OTHER, default_address="198.19.2.2")
    root = tmp_path / "root"
    lease = root / "run/bootres/dhclient/eth0.inet"
    write_atomically(lease, f"nameserver {DEFAULT}\n")
    resolver = ResolverProcess(host, resolver_config(tmp_path, upstreams="", upstreams_file=""), tmp_path,
                               sources_under=root)
    client = Client(host)
    reply, _ = client.ask("before.example.test")
    assert addresses(reply) == ["198.19.1.1"]

    write_atomically(lease, f"nameserver {OTHER}\n")  # the renewal brings a new list
    changed = time.monotonic()
    wait_for(lambda: [u["address"] for u in resolver.status()["upstreams"]] == [f"{OTHER}:53"], 1.0,
             "the new nameserver in use")
    print(f"\nnew lease in use after {(time.monotonic() - changed) * 1000:.0f} ms")
    first.silent = True  # the old server is decommissioned
    reply, ms = client.ask("after.example.test")
    assert addresses(reply) == ["198.19.2.2"] and ms < 100
    assert resolver.query("before.example.test")["source"] == "cache"  # the cache survived the change
    assert not [n for n in first.qnames if "after" in n]

    lease.unlink()  # lease released: its nameservers leave with it
    wait_for(lambda: resolver.status()["upstreams"] == [], 1.0, "the released lease's nameserver gone")
    answer = resolver.query("gone.example.test")
    assert resolver.stop() == 0
    assert not answer["answered"] and answer["reason"] == "no upstream configured"
    assert not [n for n in second.qnames if "gone" in n]


def test_a_malformed_source_keeps_the_last_good_list(lab, tmp_path):
    host, servers = upstream_lab(lab)
    lab.fakedns(servers, DEFAULT, default_address="198.19.1.1")
    root = tmp_path / "root"
    link = root / "run/systemd/netif/links/3"
    write_atomically(link, f"ADMIN_STATE=configured\nOPER_STATE=routable\nDNS={DEFAULT}\n")
    resolver = ResolverProcess(host, resolver_config(tmp_path, upstreams="", upstreams_file=""), tmp_path,
                               sources_under=root)
    client = Client(host)
    for n, garbage in enumerate((b"DNS=\x00\xff\xfe garbage\n", b"x" * 70000, b"DNS=not-an-address ::: 999.1.1.1\n")):
        write_atomically(link, garbage)
        lines = wait_for(lambda: [line for line in resolver.log().splitlines() if f"ignored: {link}:" in line][n:],
                         2.0, "one log line for the unusable file")
        reply, ms = client.ask(f"still{len(garbage)}.example.test")
        assert addresses(reply) == ["198.19.1.1"], lines
        source = resolver.status()["sources"][0]
        assert source["error"] and source["nameservers"] == [DEFAULT]
        assert [u["address"] for u in resolver.status()["upstreams"]] == [f"{DEFAULT}:53"]
        write_atomically(link, f"ADMIN_STATE=configured\nOPER_STATE=routable\nDNS={DEFAULT}\n")
        wait_for(lambda: "error" not in resolver.status()["sources"][0], 2.0, "the file usable again")
    assert resolver.alive() and resolver.stop() == 0


def test_search_domains_that_are_public_suffixes_never_route(lab, tmp_path):
    """A rogue DHCP server offering `search com net` must not own those names (issue 21)."""
    host, servers = upstream_lab(lab)
    lease_server = lab.fakedns(servers, DEFAULT, default_address="198.18.0.80")
    other = lab.fakedns(servers, OTHER, default_address="198.18.0.81")
    root = tmp_path / "root"
    # A DHCP lease as the dhclient hook writes it, and a networkd link with the same search list.
    write_atomically(root / "run/bootres/dhclient/eth1.inet",
                     f"nameserver {DEFAULT}\nsearch com net co.uk corp.example\n")
    write_atomically(root / "run/systemd/netif/links/7",
                     "# This is private data. Do not parse.\nADMIN_STATE=configured\nOPER_STATE=routable\n"
                     f"DNS={OTHER}\nDOMAINS=com net co.uk corp.example\nROUTE_DOMAINS=\n")
    resolver = ResolverProcess(host, resolver_config(tmp_path, upstreams="", upstreams_file=""), tmp_path,
                               sources_under=root)
    status = wait_for(lambda: (s := resolver.status())["routes"] and s, 2.0, "the sources read")
    assert status["routes"] == [{"domain": "corp.example", "upstreams": [f"{DEFAULT}:53", f"{OTHER}:53"]}]
    assert status["search_only"] == ["com", "net", "co.uk"]
    # Names under com and co.uk go to the default group (here both), not to one source's servers only.
    client = Client(host)
    for name in ("www.bank.com", "shop.example.co.uk"):
        reply, _ = client.ask(name)
        assert addresses(reply) in (["198.18.0.80"], ["198.18.0.81"])
    assert resolver.stop() == 0
    assert lease_server.qnames or other.qnames
