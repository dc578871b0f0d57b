"""install_route changing under a running or restarted bootres: its own route goes, and comes back."""

import json

from rdisc_host import BootresHost
from rdisc_lab import TestRouter

ROUTER = "198.18.1.1"


def wire(lab):
    host, router_ns = lab.netns("host"), lab.netns("router")
    _, router_if = lab.link(host, "198.18.1.10/24", router_ns, f"{ROUTER}/24")
    router = TestRouter(router_ns, router_if, ROUTER, answer_solicitations=True, lifetime=1800)
    lab.cleanup.callback(router.close)
    return host, router


def routes(bootres):
    return [(r["gateway"], r["protocol"]) for r in bootres.default_routes()]


def test_reload_with_install_route_off_removes_our_route_and_on_puts_it_back(lab, tmp_path):
    host, router = wire(lab)
    bootres = BootresHost(host, tmp_path).start()
    bootres.wait(lambda: routes(bootres) == [(ROUTER, "ra")], timeout=5, what="the discovered route")

    bootres.configure("install_route = no")
    bootres.reload()
    bootres.wait(lambda: routes(bootres) == [], timeout=2, what="bootres's route removed after the reload")
    # Still the default router (status and files follow), only not installed; status lags up to 50 ms.
    bootres.wait(lambda: (bootres.status()["router"]["default"], bootres.status()["router"]["source"])
                 == (ROUTER, "rdisc"), timeout=1, what="the router still in status")
    assert "bootres's default route removed: install_route = no" in bootres.log()

    bootres.configure("install_route = yes")
    bootres.reload()
    bootres.wait(lambda: routes(bootres) == [(ROUTER, "ra")], timeout=2, what="the route installed again")
    assert "Traceback" not in bootres.log()


def test_restart_with_install_route_off_removes_the_route_left_from_before(lab, tmp_path):
    host, router = wire(lab)
    bootres = BootresHost(host, tmp_path).start()
    bootres.wait(lambda: routes(bootres) == [(ROUTER, "ra")], timeout=5, what="the discovered route")
    bootres.stop()
    assert routes(bootres) == [(ROUTER, "ra")]  # a stop keeps it, so a restart does not cut the host off

    bootres.configure("install_route = no")
    bootres.start()
    bootres.wait(lambda: routes(bootres) == [], timeout=3, what="the leftover route removed at start")
    bootres.wait(lambda: bootres.status().get("router", {}).get("default") == ROUTER, timeout=5,
                 what="the router still discovered")
    assert routes(bootres) == []
    assert "bootres's default route removed: install_route = no" in bootres.log()


def test_ipv6_default_routes_are_shown_and_never_touched(lab, tmp_path):
    host, router = wire(lab)
    # IPv6 on the host's eth0 only, without link-local address or solicitations of its own.
    for key, value in (("addr_gen_mode", "1"), ("router_solicitations", "0"), ("disable_ipv6", "0")):
        host.sysctl(f"net.ipv6.conf.eth0.{key}", value)
    host.run("ip", "-6", "addr", "add", "2001:db8:1::10/64", "dev", "eth0", "nodad")
    # What the kernel installs from an IPv6 Router Advertisement carries protocol 9 too: never bootres's.
    host.run("ip", "-6", "route", "add", "default", "via", "2001:db8:1::1", "dev", "eth0", "proto", "ra",
             "metric", "1024")
    bootres = BootresHost(host, tmp_path, router="install_route = no").start()
    expected = [{"gateway": "2001:db8:1::1", "interface": "eth0", "origin": "ra", "metric": 1024}]
    bootres.wait(lambda: bootres.status().get("router", {}).get("ipv6_default_routes") == expected, timeout=5,
                 what="the IPv6 default route in status")
    host.run("ip", "-6", "route", "add", "default", "via", "2001:db8:1::2", "dev", "eth0", "proto", "static",
             "metric", "2048")
    expected.append({"gateway": "2001:db8:1::2", "interface": "eth0", "origin": "static", "metric": 2048})
    bootres.wait(lambda: bootres.status()["router"]["ipv6_default_routes"] == expected, timeout=1,
                 what="a new IPv6 default route in status")
    bootres.wait(lambda: bootres.status()["router"]["default"] == ROUTER, timeout=5, what="the IPv4 router")
    bootres.configure("install_route = yes")
    bootres.reload()
    bootres.wait(lambda: routes(bootres) == [(ROUTER, "ra")], timeout=2, what="the IPv4 route")
    bootres.stop()
    out = host.run("ip", "-j", "-6", "route", "show", "default").stdout
    assert [(r["gateway"], r["protocol"]) for r in json.loads(out)] == [("2001:db8:1::1", "ra"),
                                                                       ("2001:db8:1::2", "static")]
