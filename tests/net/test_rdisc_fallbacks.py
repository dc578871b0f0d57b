"""Before and without discovery: last boot's /etc/defaultrouter, the static fallback, install_route = no."""

from rdisc_host import BootresHost
from rdisc_lab import TestRouter

ROUTER = "198.18.1.1"


def wire(lab):
    host, router_ns = lab.netns("host"), lab.netns("router")
    _, router_if = lab.link(host, "198.18.1.10/24", router_ns, f"{ROUTER}/24")
    router = TestRouter(router_ns, router_if, ROUTER, answer_solicitations=False)
    lab.cleanup.callback(router.close)
    return host, router


def routes(bootres):
    return [(r["gateway"], r["protocol"]) for r in bootres.default_routes()]


def test_last_boot_router_is_the_first_guess_until_an_advertisement(lab, tmp_path):
    host, router = wire(lab)
    bootres = BootresHost(host, tmp_path)
    bootres.defaultrouter.write_text("198.18.1.50\n")
    bootres.start()
    bootres.wait(lambda: routes(bootres) == [("198.18.1.50", "ra")], timeout=5, what="route to last boot's router")
    status = bootres.wait(lambda: bootres.status().get("router"), timeout=2)
    assert (status["default"], status["source"]) == ("198.18.1.50", "file")
    assert "198.18.1.50\tsite-router gw\n" in (host.etc / "hosts").read_text()

    router.advertise()
    bootres.wait(lambda: routes(bootres) == [(ROUTER, "ra")], timeout=1, what="the discovered router replacing it")
    bootres.wait(lambda: bootres.status()["router"]["source"] == "rdisc", timeout=1)  # status lags up to 50 ms
    bootres.wait(lambda: bootres.defaultrouter.read_text() == f"{ROUTER}\n", timeout=1)


def test_static_fallback_recorded_but_not_installed_with_install_route_no(lab, tmp_path):
    host, router = wire(lab)
    bootres = BootresHost(host, tmp_path, router="static = 198.18.1.99\ninstall_route = no\nsolicit = no").start()
    status = bootres.wait(lambda: bootres.status().get("router", {}).get("default") and bootres.status()["router"],
                          timeout=5)
    assert (status["default"], status["source"]) == ("198.18.1.99", "static")
    bootres.wait(lambda: bootres.defaultrouter.exists() and bootres.defaultrouter.read_text() == "198.18.1.99\n",
                 timeout=1)

    router.advertise()
    bootres.wait(lambda: bootres.status()["router"]["source"] == "rdisc", timeout=1, what="the advertisement")
    assert bootres.status()["router"]["default"] == ROUTER
    assert routes(bootres) == []  # install_route = no only records
    bootres.wait(lambda: bootres.defaultrouter.read_text() == f"{ROUTER}\n", timeout=1)


def test_last_boot_router_before_dhcp_waits_quietly_and_is_installed_when_its_network_appears(lab, tmp_path):
    """Issue 19: at every DHCP boot the first guess found no address on its network yet: a warning, an error."""
    host, router_ns = lab.netns("host"), lab.netns("router")
    lab.link(host, None, router_ns, f"{ROUTER}/24")  # the host's link has no address yet: DHCP has not run
    bootres = BootresHost(host, tmp_path)
    bootres.defaultrouter.write_text(f"{ROUTER}\n")
    bootres.start()
    bootres.wait(lambda: "waits for an address on its network" in bootres.log(), timeout=5, what="the route to wait")
    assert f"INFO: default route via {ROUTER} waits for an address on its network" in bootres.log()
    assert "WARNING" not in bootres.log()  # nor in status errors: those are the warnings with a topic
    host.run("ip", "addr", "add", "198.18.1.10/24", "dev", "eth0")  # the lease
    bootres.wait(lambda: routes(bootres) == [(ROUTER, "ra")], timeout=7, what="last boot's router installed")
    assert bootres.log().count("waits for an address") == 1
