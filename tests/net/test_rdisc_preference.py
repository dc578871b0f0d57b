"""Several routers on one LAN: preference, takeover on expiry, lifetime 0, and 0x80000000 never used."""

import threading
import time

from rdisc_host import BootresHost
from rdisc_lab import TestRouter

NOT_A_DEFAULT = -0x80000000


def test_preference_takeover_lifetime_zero_and_never_default(lab, tmp_path):
    switch = lab.switch()
    host = lab.netns("host")
    lab.attach(host, switch, "198.18.1.10/24")
    routers = {}
    for name, address, preference, lifetime in (("high", "198.18.1.1", 10, 2), ("low", "198.18.1.2", 5, 30),
                                                ("never", "198.18.1.3", NOT_A_DEFAULT, 30)):
        ns = lab.netns(name)
        ifname = lab.attach(ns, switch, f"{address}/24")
        routers[name] = TestRouter(ns, ifname, address, preference=preference, lifetime=lifetime,
                                   answer_solicitations=False)
        lab.cleanup.callback(routers[name].close)
        routers[name].interval = 0.5
    bootres = BootresHost(host, tmp_path).start()

    # Watch the kernel's default route all along: 198.18.1.3 must never appear.
    seen, failures, stop = [], [], threading.Event()

    def watch():
        while not stop.is_set():
            try:
                seen.extend(r.get("gateway") for r in bootres.default_routes())
            except Exception as error:  # reported below instead of ending the watch
                failures.append(error)
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    lab.cleanup.callback(stop.set)

    bootres.wait(lambda: bootres.route_via("198.18.1.1"), timeout=5, what="route via the preferred router")
    status = bootres.wait(lambda: len(bootres.status()["router"]["routers"]) == 3 and bootres.status(), timeout=3)
    assert [r["preference"] for r in status["router"]["routers"]] == [10, 5, NOT_A_DEFAULT]
    bootres.wait(lambda: bootres.defaultrouter.read_text() == "198.18.1.1\n198.18.1.2\n", timeout=2)

    # The preferred router goes quiet: its 2 s lifetime runs out and the other takes over.
    routers["high"].interval = None
    silent_since = routers["high"].adverts_sent[-1]
    bootres.wait(lambda: bootres.route_via("198.18.1.2"), timeout=4, what="takeover by 198.18.1.2")
    takeover = time.monotonic() - silent_since
    assert 1.9 < takeover < 2.6, takeover
    assert [r["gateway"] for r in bootres.default_routes()] == ["198.18.1.2"]
    bootres.wait(lambda: bootres.defaultrouter.read_text() == "198.18.1.2\n", timeout=2)
    bootres.wait(lambda: "198.18.1.2\tsite-router gw\n" in (host.etc / "hosts").read_text(), timeout=2)

    # Lifetime 0 withdraws it at once, long before its 30 s lifetime.
    routers["low"].interval = None
    withdrawn = routers["low"].advertise(lifetime=0)
    bootres.wait(lambda: not bootres.default_routes(), timeout=1, what="route removed after lifetime 0")
    removal = time.monotonic() - withdrawn
    status = bootres.wait(lambda: bootres.status()["router"]["default"] is None and bootres.status(), timeout=1)
    assert [r["address"] for r in status["router"]["routers"]] == ["198.18.1.3"]  # known, never used
    # With no router left, /etc/defaultrouter keeps the last one as next boot's first guess.
    assert bootres.defaultrouter.read_text() == "198.18.1.2\n"

    time.sleep(1.0)  # 0x80000000 keeps advertising: still no route
    stop.set()
    watcher.join(timeout=2)
    assert bootres.default_routes() == []
    assert not failures
    assert seen and "198.18.1.3" not in seen
    print(f"takeover {takeover:.3f} s after the last advertisement (lifetime 2 s); "
          f"lifetime-0 removal {removal:.3f} s")
