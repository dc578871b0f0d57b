"""Bad advertisements on a real link change nothing; a flood keeps memory bounded."""

import time

import pytest

from lab import rss_kib
from rdisc_host import BootresHost
from rdisc_lab import TestRouter, fast_advert, icmp_advert

ROUTER = "198.18.1.1"
GOOD = [(ROUTER, 0)]
BAD = {
    "bad checksum": lambda: icmp_advert(GOOD, checksum_ok=False),
    "bad code": lambda: icmp_advert(GOOD, code=1),
    "no addresses": lambda: icmp_advert([], num_addrs=0),
    "bad entry size": lambda: icmp_advert(GOOD, entry_size=1),
    "short": lambda: icmp_advert(GOOD, num_addrs=2),  # claims two entries, carries one
    "off-link address": lambda: icmp_advert([("203.0.113.1", 0)]),
}


@pytest.fixture
def rig(lab, tmp_path):
    host, router_ns = lab.netns("host"), lab.netns("router")
    # A /16, so a flood can name thousands of distinct on-link routers.
    _, router_if = lab.link(host, "198.18.1.10/16", router_ns, f"{ROUTER}/16")
    router_ns.run("ip", "addr", "add", "198.19.7.7/24", "dev", router_if)  # an off-link source for the host
    router = TestRouter(router_ns, router_if, ROUTER, answer_solicitations=False)
    lab.cleanup.callback(router.close)
    bootres = BootresHost(host, tmp_path, router="solicit = no").start()
    bootres.wait(lambda: bootres.status().get("router", {}).get("interfaces"), timeout=5, what="the service")
    return bootres, router


def driver_pid(bootres) -> int:
    # popen runs `ip netns exec ... python`; ip execs python in place, so the pid is python's.
    return bootres.proc.pid


def test_each_malformed_advertisement_is_dropped_without_effect(rig):
    bootres, router = rig
    expected = {}
    for reason, build in BAD.items():
        router.send(build())
        expected[reason] = 1
    status = bootres.wait(lambda: bootres.status()["router"]["dropped"] == expected and bootres.status(),
                          timeout=3, what=f"drop counters {expected}")
    assert status["router"]["routers"] == [] and status["router"]["default"] is None
    time.sleep(0.5)  # nothing comes late either
    assert bootres.default_routes() == []
    assert not bootres.defaultrouter.exists()
    # Each logged once, with the address it came from.
    log = bootres.log()
    for reason in BAD:
        assert log.count(f"router advertisement from {ROUTER} on eth0 ignored: {reason}") == 1, (reason, log)
    assert "ignored: off-link address (203.0.113.1 not on 198.18.0.0/16)" in log
    # The service is unharmed: a good advertisement still works.
    router.send(icmp_advert(GOOD))
    bootres.wait(lambda: bootres.route_via(ROUTER), timeout=1, what="route after the bad ones")
    assert "Traceback" not in bootres.log()


def test_the_ip_source_must_be_on_the_link_and_the_advertised_addresses_too(rig):
    """Nothing from off the link is legitimate (issue 21); section 5.3 checks the Router Addresses."""
    bootres, router = rig
    # Off-link source, on-link router address: dropped, logged once with the sender.
    router.send(icmp_advert(GOOD), src="198.19.7.7")
    router.send(icmp_advert(GOOD), src="198.19.7.7")
    bootres.wait(lambda: bootres.status()["router"]["dropped"] == {"off-link source": 2}, timeout=2)
    assert bootres.log().count("router advertisement from 198.19.7.7 on eth0 ignored: off-link source "
                               "(198.19.7.7 not on 198.18.0.0/16)") == 1
    # FRR 8.4's byte-swapped source (1.1.18.198 for 198.18.1.1): its swapped form is on-link and advertised.
    router.send(icmp_advert(GOOD), src="1.1.18.198")
    bootres.wait(lambda: bootres.route_via(ROUTER), timeout=2, what="the route from FRR's swapped source")
    # On-link source, every router address off-link: dropped, and logged with its source.
    router.send(icmp_advert([("203.0.113.9", 100), ("198.20.0.1", 100)]), src=ROUTER)
    bootres.wait(lambda: bootres.status()["router"]["dropped"].get("off-link address") == 1, timeout=2)
    assert (f"router advertisement from {ROUTER} on eth0 ignored: off-link address "
            "(203.0.113.9, 198.20.0.1 not on 198.18.0.0/16)") in bootres.log()
    assert [r["gateway"] for r in bootres.default_routes()] == [ROUTER]


def test_advertisement_flood_keeps_the_table_and_memory_bounded(rig):
    bootres, router = rig
    router.send(icmp_advert(GOOD, lifetime=1800))
    bootres.wait(lambda: bootres.route_via(ROUTER), timeout=2, what="the real router's route")
    before = rss_kib(driver_pid(bootres))
    count = 5000
    for n in range(count):
        # Every advertisement names two new on-link routers.
        first, second = (f"198.18.{2 + m // 250}.{1 + m % 250}" for m in (2 * n, 2 * n + 1))
        router.send(fast_advert([(first, n % 3 - 1), (second, 0)], lifetime=1800))
        if n % 100 == 99:
            time.sleep(0.02)  # let the service keep up: the test is about its table, not the socket buffer
    time.sleep(1.0)
    status = bootres.status()["router"]
    after = rss_kib(driver_pid(bootres))
    assert len(status["routers"]) <= 32
    assert status["dropped"]["router table full"] > 2000  # the bound was really tested, many times over
    assert status["default"] == ROUTER or status["routers"][0]["preference"] >= 0
    assert after - before < 8 * 1024, f"RSS grew {after - before} KiB during the flood"
    assert bootres.proc.poll() is None
    print(f"flood of {count}: table {len(status['routers'])}, RSS {before} -> {after} KiB, "
          f"dropped {status['dropped']}")
