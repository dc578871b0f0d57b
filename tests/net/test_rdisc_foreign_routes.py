"""Routes bootres did not install: reported, never replaced, never removed."""

import time

from rdisc_host import BootresHost
from rdisc_lab import TestRouter

ROUTER = "198.18.1.1"


def wire(lab):
    host, router_ns = lab.netns("host"), lab.netns("router")
    _, router_if = lab.link(host, "198.18.1.10/24", router_ns, f"{ROUTER}/24")
    router = TestRouter(router_ns, router_if, ROUTER, answer_solicitations=True, lifetime=30)
    lab.cleanup.callback(router.close)
    return host, router


def test_existing_dhcp_route_is_reported_not_replaced(lab, tmp_path):
    host, router = wire(lab)
    host.run("ip", "route", "add", "default", "via", "198.18.1.254", "proto", "dhcp")
    bootres = BootresHost(host, tmp_path).start()
    bootres.wait(lambda: router.adverts_sent, timeout=3, what="an advertisement")
    status = bootres.wait(lambda: bootres.status().get("router", {}).get("routers") and bootres.status(), timeout=2)
    assert status["router"]["source"] == "netlink" and status["router"]["default"] == "198.18.1.254"
    assert [r["address"] for r in status["router"]["routers"]] == [ROUTER]  # heard, not used
    time.sleep(1.0)  # nothing was fought meanwhile
    routes = bootres.default_routes()
    assert [(r["gateway"], r["protocol"]) for r in routes] == [("198.18.1.254", "dhcp")]
    bootres.wait(lambda: bootres.defaultrouter.exists() and bootres.defaultrouter.read_text(), timeout=1)
    assert bootres.defaultrouter.read_text() == f"198.18.1.254\n{ROUTER}\n"


def test_route_not_installed_by_bootres_is_never_removed(lab, tmp_path):
    host, router = wire(lab)
    bootres = BootresHost(host, tmp_path).start()
    bootres.wait(lambda: bootres.route_via(ROUTER), timeout=3, what="bootres's route")

    # An admin adds a static default route: bootres withdraws its own and leaves that one alone.
    host.run("ip", "route", "add", "default", "via", "198.18.1.253", "metric", "50", "proto", "static")
    bootres.wait(lambda: [r["gateway"] for r in bootres.default_routes()] == ["198.18.1.253"], timeout=2,
                 what="bootres's own route withdrawn")
    bootres.wait(lambda: bootres.status()["router"]["source"] == "netlink", timeout=1)

    # The router withdraws itself; the admin's route stays, and stays after bootres stops.
    router.advertise(lifetime=0)
    bootres.wait(lambda: bootres.status()["router"]["routers"] == [], timeout=1)
    time.sleep(1.0)
    assert [(r["gateway"], r["protocol"]) for r in bootres.default_routes()] == [("198.18.1.253", "static")]
    bootres.stop()
    assert [(r["gateway"], r["protocol"]) for r in bootres.default_routes()] == [("198.18.1.253", "static")]
    assert "Traceback" not in bootres.log()
