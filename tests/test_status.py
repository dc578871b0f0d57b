"""The status model and its renderers (pure: no daemon needed)."""

from __future__ import annotations

import json

from bootres import status
from bootres.core.report import (
    CacheStatus,
    ContainerListenStatus,
    ErrorEntry,
    FilesStatus,
    Health,
    HostsFileStatus,
    Ipv6RouteStatus,
    Report,
    ResolvConfStatus,
    ResolverStatus,
    RewriteStatus,
    RouterEntryStatus,
    RouterFileStatus,
    RouterStatus,
    RouteStatus,
    SelfStatus,
    ServiceStatus,
    SourceStatus,
    UpstreamStatus,
    to_json,
)

COUNTERS = dict(inflight=0, refused=0, malformed=0, servfail=0, bad_replies=0, internal_errors=0)
RESOLVER = ResolverStatus(
    listen=("127.0.0.35:53",),
    queries=42,
    cache=CacheStatus(entries=17, hits=8, misses=2, stale_served=1, refreshes=3, refreshes_skipped=1),
    upstreams=(
        UpstreamStatus(address="198.18.0.10:53", state="up", srtt_ms=1.23, queries=40, wins=30, timeouts=0,
                       bad_replies=0, source="dhclient eth0", domains=("example.test",)),
        UpstreamStatus(address="198.18.0.11:5353", state="down", srtt_ms=None, queries=40, wins=0, timeouts=4,
                       bad_replies=0, source="config", domains=("corp.test",)),
    ),
    routes=(RouteStatus("example.test", ("198.18.0.10:53",)), RouteStatus("corp.test", ("198.18.0.11:5353",))),
    sources=(
        SourceStatus(name="dhclient eth0", path="/run/bootres/dhclient/eth0.inet", nameservers=("198.18.0.10",),
                     in_use=True),
        SourceStatus(name="networkd eth1", path="/run/systemd/netif/links/3", nameservers=(), in_use=True,
                     error="not UTF-8"),
        SourceStatus(name="file /etc/bootres/upstream-resolv.conf", path="/etc/bootres/upstream-resolv.conf",
                     nameservers=("198.18.0.9",), in_use=False),
    ),
    **COUNTERS,
)
ROUTER = RouterStatus(
    discovery=True,
    default="198.18.1.1",
    source="rdisc",
    routers=(
        RouterEntryStatus(address="198.18.1.1", interface="eth0", preference=0, expires_in_s=1790.0),
        RouterEntryStatus(address="198.18.1.2", interface="eth0", preference=-5, expires_in_s=600.0),
    ),
    ipv6_default_routes=(
        Ipv6RouteStatus(gateway="fe80::1", interface="eth0", origin="ra", metric=1024),
        Ipv6RouteStatus(gateway="2001:db8::1", interface="eth1", origin="static", metric=50),
    ),
)
FILES = FilesStatus(
    hosts=HostsFileStatus(path="/etc/hosts", written_at="2026-11-21T02:00:00+00:00", entries=3,
                          self=SelfStatus((), ()), pinned=()),
    defaultrouter=RouterFileStatus(path="/etc/defaultrouter", written_at=None, content=("198.18.1.1",)),
)
SERVICE = ServiceStatus(
    control="/run/bootres/control.sock",
    resolv_conf=ResolvConfStatus(path="/etc/resolv.conf", managed=True, in_path=True, behind=None,
                                 saved="/var/lib/bootres/resolv.conf.orig", conflict=None,
                                 last_rewrite=RewriteStatus(at="2026-11-21T01:59:00+00:00",
                                                            nameservers=("198.18.0.99",), says="")),
)


def report(conditions=(), **changes) -> Report:
    parts = {"resolver": RESOLVER, "router": ROUTER, "files": FILES, "errors": (), "service": SERVICE}
    parts.update(changes)
    return status.build_report(version="0.1.0", pid=1234, uptime_s=12.54, config="/etc/bootres/bootres.conf",
                               conditions=conditions, **parts)


def all_down(resolver: ResolverStatus) -> ResolverStatus:
    return resolver._replace(upstreams=tuple(u._replace(state="down")
                                                         for u in resolver.upstreams))


def test_the_report_is_json_and_healthy_when_names_and_the_route_work():
    got = json.loads(json.dumps(to_json(report())))
    assert got["running"] is True and got["pid"] == 1234 and got["uptime_s"] == 12.5
    assert got["health"] == {"healthy": True, "problems": []}
    assert got["resolver"]["sources"][0] == {"name": "dhclient eth0", "path": "/run/bootres/dhclient/eth0.inet",
                                             "nameservers": ["198.18.0.10"], "in_use": True}  # no error: no key
    assert "error" not in got["files"]["hosts"] and got["files"]["defaultrouter"]["written_at"] is None


def test_degraded_when_every_upstream_is_down_or_no_router():
    got = report(resolver=all_down(RESOLVER), router=ROUTER._replace(default=None, routers=()))
    assert got.health == Health(False, ("no upstream answering", "no default router"))


def test_no_upstream_at_all_is_its_own_problem():
    got = report(resolver=RESOLVER._replace(upstreams=(), routes=()))
    assert got.health.problems == ("no upstream nameserver configured",)


def test_no_router_is_fine_without_discovery():
    assert report(router=RouterStatus(discovery=False)).health.healthy


def test_file_errors_and_daemon_conditions_degrade():
    files = FilesStatus(hosts=FILES.hosts._replace(error="Read-only file system"))
    got = report(files=files, conditions=["control socket /run/bootres/control.sock: Read-only file system"])
    assert got.health.problems == (
        "/etc/hosts: Read-only file system",
        "control socket /run/bootres/control.sock: Read-only file system",
    )
    assert "/etc/hosts error: Read-only file system" in status.render_human(got).splitlines()[-1]


def test_human_view_verdict_first_keys_aligned():
    text = status.render_human(
        report(errors=[ErrorEntry("2026-11-21T02:00:00+00:00", "upstream 198.18.0.11:5353 down")])
    )
    assert text == """\
    Verdict: healthy
    Service: running · pid 1234 · up 12s · 0.1.0
     Config: /etc/bootres/bootres.conf
Resolv.conf: /etc/resolv.conf points at bootres (original saved in /var/lib/bootres/resolv.conf.orig)
             rewritten by another program at 2026-11-21T01:59:00+00:00: nameservers 198.18.0.99
   Resolver: 127.0.0.35:53 · 42 queries · cache 17 (80% hits, 1 stale, 3 refreshed ahead)
  Upstreams: 198.18.0.10:53    up    1.2 ms  wins 30              from dhclient eth0
             198.18.0.11:5353  down  -       wins 0   timeouts 4  from config
  Split DNS: example.test -> 198.18.0.10:53
             corp.test -> 198.18.0.11:5353
    Sources: dhclient eth0: 198.18.0.10
             networkd eth1: no nameserver (not UTF-8)
             file /etc/bootres/upstream-resolv.conf: 198.18.0.9 (not used)
Default via: 198.18.1.1 dev eth0 (rdisc, pref 0, expires in 29 min)
    Routers: 198.18.1.2  eth0  pref -5  expires in 10 min
   IPv6 via: fe80::1 dev eth0 (ra, metric 1024)
             2001:db8::1 dev eth1 (static, metric 50)
      Files: /etc/defaultrouter 198.18.1.1
             /etc/hosts 3 entries
     Errors: 2026-11-21T02:00:00+00:00 upstream 198.18.0.11:5353 down"""


def test_human_view_names_search_only_domains():
    text = status.render_human(report(resolver=RESOLVER._replace(search_only=("com", "co.uk"))))
    assert "Search only: com co.uk (public suffixes: searched, never routed)" in text.splitlines()


def test_human_view_says_why_degraded():
    assert status.render_human(report(resolver=all_down(RESOLVER))).splitlines()[0] == "    Verdict: degraded: no upstream answering"


def test_status_line_for_systemd():
    assert status.status_line(report()) == "1/2 upstreams up, default via 198.18.1.1"
    no_router = report(router=ROUTER._replace(default=None))
    assert status.status_line(no_router) == "1/2 upstreams up, no default router"
    fresh = RESOLVER._replace(upstreams=tuple(u._replace(state="unknown")
                                                          for u in RESOLVER.upstreams))
    assert status.status_line(report(resolver=fresh)) == "0/2 upstreams up (2 not tried yet), default via 198.18.1.1"


def test_render_query():
    reply = {"answered": True, "name": "www.example.test", "type": "A", "rcode": "NOERROR",
             "answers": ["www.example.test. 300 IN A 198.18.5.5"], "upstream": "198.18.0.10:53",
             "source": "upstream", "ms": 1.234}
    assert status.render_query(reply) == (
        "www.example.test. 300 IN A 198.18.5.5\n-- upstream 198.18.0.10:53 in 1.2 ms, rcode NOERROR"
    )
    failed = {"answered": False, "name": "x.test", "rcode": "SERVFAIL", "answers": [], "upstream": None,
              "source": "upstream", "ms": 3000.0}
    assert status.render_query(failed).splitlines() == ["x.test: SERVFAIL", "-- upstream in 3000.0 ms, rcode SERVFAIL"]


def test_prometheus_text_is_well_formed():
    text = status.to_prometheus(report())
    samples = {}
    for line in text.splitlines():
        if line.startswith("#"):
            assert line.split()[1] in ("HELP", "TYPE")
            continue
        name, value = line.rsplit(" ", 1)
        samples[name] = float(value)
    assert samples["bootres_healthy"] == 1
    assert samples["bootres_queries_total"] == 42
    assert samples["bootres_cache_refreshes_total"] == 3 and samples["bootres_cache_refreshes_skipped_total"] == 1
    assert samples['bootres_upstream_up{upstream="198.18.0.11:5353"}'] == 0
    assert samples['bootres_upstream_srtt_seconds{upstream="198.18.0.10:53"}'] == 0.00123
    assert samples['bootres_default_router_info{address="198.18.1.1",source="rdisc"}'] == 1
    assert text.endswith("\n")


def test_container_address_in_the_human_view_and_the_metrics():
    container = ContainerListenStatus(address="169.254.0.53", answering=True, on_lo=True,
                                      container_networks=("198.18.100.0/24", "198.18.104.0/24"), outside=2)
    text = status.render_human(report(resolver=RESOLVER._replace(container_listen=container)))
    assert (" Containers: 169.254.0.53 (on lo, answering) · container networks 198.18.100.0/24 198.18.104.0/24"
            " · 2 queries from outside") in text.splitlines()
    missing = container._replace(on_lo=False, answering=False, container_networks=())
    assert "169.254.0.53 (NOT on lo, waiting for netlink) · container networks none yet" in status.render_human(
        report(resolver=RESOLVER._replace(container_listen=missing)))
    assert "bootres_container_outside_queries_total 2\n" in status.to_prometheus(
        report(resolver=RESOLVER._replace(container_listen=container)))
    # container_listen = no: no line, no sample.
    assert "Containers" not in status.render_human(report(resolver=RESOLVER._replace(container_listen=None)))
    assert "\nbootres_container_outside_queries_total " not in status.to_prometheus(report())
