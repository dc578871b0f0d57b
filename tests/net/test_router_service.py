"""RFC 1256 on real veth links: solicitations on the wire, the route and the stub files after the first advertisement."""

import time

from rdisc_host import BootresHost
from rdisc_lab import TestRouter

HOST, ROUTER = "198.18.1.10/24", "198.18.1.1/24"


def wire(lab, tmp_path, **router_options):
    host, router_ns = lab.netns("host"), lab.netns("router")
    _, router_if = lab.link(host, HOST, router_ns, ROUTER)
    router = TestRouter(router_ns, router_if, "198.18.1.1", **router_options)
    lab.cleanup.callback(router.close)
    return host, router


def test_route_and_stub_files_within_a_second_of_the_first_advertisement(lab, tmp_path):
    host, router = wire(lab, tmp_path, answer_solicitations=True)
    admin_before = "127.0.0.1\tlocalhost\n# admin's own line, kept   as is\n198.18.9.9 printer\n"
    admin_after = "\n198.18.9.8 scanner # after the block, no final newline"
    last_boot_block = "# BEGIN bootres\n198.18.1.77\tsite-router gw\n# END bootres\n"
    (host.etc / "hosts").write_text(admin_before + last_boot_block + admin_after)
    bootres = BootresHost(host, tmp_path).start()

    route = bootres.wait(lambda: bootres.route_via("198.18.1.1"), timeout=5, what="the default route")
    route_seen = time.monotonic()
    first_advert = router.adverts_sent[0]
    assert route_seen - first_advert < 1.0, f"route {route_seen - first_advert:.3f} s after the advertisement"
    assert route["protocol"] in ("ra", "9") and route["dev"] == "eth0"
    # The solicitation came after the random 0..1 s delay, to the all-routers group, and only one was needed.
    first_solicitation, destination = router.solicitations[0]
    assert destination == "224.0.0.2"
    assert first_solicitation - bootres.started < 1.0 + 1.0  # delay plus interpreter start-up

    bootres.wait(lambda: bootres.defaultrouter.exists() and bootres.defaultrouter.read_text() == "198.18.1.1\n",
                 timeout=2, what="/etc/defaultrouter")
    hosts = bootres.wait(lambda: "198.18.1.1\tsite-router" in (text := (host.etc / "hosts").read_text()) and text,
                         timeout=2, what="the hosts block")
    assert hosts.startswith(admin_before + "# BEGIN bootres\n")
    assert hosts.endswith("# END bootres\n" + admin_after)
    assert "198.18.1.1\tsite-router gw\n" in hosts
    # Resolved from the written file alone: the namespace has no nameserver at all.
    assert host.run("getent", "hosts", "site-router").stdout.split() == ["198.18.1.1", "site-router", "gw"]

    status = bootres.wait(lambda: bootres.status().get("router", {}).get("routers") and bootres.status(), timeout=2)
    assert status["router"]["default"] == "198.18.1.1" and status["router"]["source"] == "rdisc"
    assert status["router"]["routers"][0]["interface"] == "eth0"
    time.sleep(3.5)  # past the second solicitation's time: none was sent
    assert len(router.solicitations) == 1
    print(f"route {route_seen - first_advert:.3f} s after the first advertisement")


def test_solicitation_schedule_on_the_wire_then_late_advertisement(lab, tmp_path):
    host, router = wire(lab, tmp_path, answer_solicitations=False)
    bootres = BootresHost(host, tmp_path).start()
    bootres.wait(lambda: len(router.solicitations) >= 3, timeout=10, interval=0.05, what="three solicitations")
    time.sleep(3.5)  # long enough for a fourth, which must not come
    times = [t for t, _ in router.solicitations]
    assert len(times) == 3
    assert {d for _, d in router.solicitations} == {"224.0.0.2"}
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert all(2.9 < gap < 3.3 for gap in gaps), gaps
    assert bootres.default_routes() == []

    sent = router.advertise()
    bootres.wait(lambda: bootres.route_via("198.18.1.1"), timeout=1.0, what="route after a late advertisement")
    print(f"solicitation gaps {[round(g, 3) for g in gaps]}; route {time.monotonic() - sent:.3f} s after the advert")


def test_link_down_forgets_the_router_and_link_up_solicits_again(lab, tmp_path):
    host, router = wire(lab, tmp_path, answer_solicitations=True)
    bootres = BootresHost(host, tmp_path).start()
    bootres.wait(lambda: bootres.route_via("198.18.1.1"), timeout=5, what="the default route")
    host.run("ip", "link", "set", "eth0", "down")
    # The interface leaving the status (not just an empty table, which a status
    # written before the router was learned would show too) proves bootres noticed.
    bootres.wait(lambda: bootres.status()["router"]["interfaces"] == [], timeout=2, what="eth0 dropped")
    assert bootres.status()["router"]["routers"] == []
    assert bootres.default_routes() == []
    host.run("ip", "link", "set", "eth0", "up")
    bootres.wait(lambda: bootres.route_via("198.18.1.1"), timeout=5, what="the route after link up")
    assert len(router.solicitations) == 2  # one per time the link came up
    assert "198.18.1.1 on eth0 lost: eth0 is gone" in bootres.log()


def test_interface_without_multicast_solicits_and_listens_by_broadcast(lab, tmp_path):
    host, router = wire(lab, tmp_path, answer_solicitations=True, answer_to="255.255.255.255")
    host.run("ip", "link", "set", "eth0", "multicast", "off")
    bootres = BootresHost(host, tmp_path).start()
    bootres.wait(lambda: bootres.route_via("198.18.1.1"), timeout=5, what="the route from a broadcast advertisement")
    assert [destination for _, destination in router.solicitations] == ["255.255.255.255"]
