"""Upstreams with no route to them (a booting host before DHCP): the log says so, not "refused"."""

import time

from resolver_harness import ResolverProcess, resolver_config


def test_no_route_is_logged_as_unreachable_not_refused(lab, tmp_path):
    host = lab.netns("host")  # loopback only: no route anywhere, as before the first lease
    conf = resolver_config(tmp_path, listen="127.0.0.35:53", upstreams="198.18.0.10")
    bootres = ResolverProcess(host, conf, tmp_path)
    deadline = time.monotonic() + 10
    while bootres.upstream("198.18.0.10")["state"] != "down" and time.monotonic() < deadline:
        bootres.query(f"n{time.monotonic_ns()}.example.com")
    line = bootres.wait_for_log("upstream 198.18.0.10:53 is down")
    assert "unreachable (no route to its network)" in line, line
    assert "refused" not in line
    assert bootres.stop() == 0
