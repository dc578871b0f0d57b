"""settings: every key a core uses reaches it from the configuration, and the defaults are the schema's alone."""

import dataclasses
import ipaddress

from bootres import config, settings
from bootres.core import resolver, router, stubfiles
from bootres.core.routing import Routing

CHANGED = """\
[resolver]
strategy = race
hedge_delay = 70ms
timeout = 2s
serve_stale = no
stale_answer_after = 250ms
boot_stale_after = 35ms
allow = 198.18.0.0/15
max_inflight = 77
prefetch = no
prefetch_rate = 9
trust_ad = yes

[hosts]
file = /tmp/bootres-test-hosts
self = no
router_names = gw
pin = nfs1.example.test
refresh_interval = 42s

[router]
solicit = no
install_route = no
static = 198.18.1.9
defaultrouter_file = /tmp/bootres-test-defaultrouter
routers = 198.18.1.0/24
"""


def test_each_core_gets_every_changed_key():
    cfg = config.parse([("bootres.conf", CHANGED)])
    default = config.defaults()
    routing = Routing()
    stub = settings.resolver_settings(cfg.resolver, routing)
    assert stub == resolver.ResolverSettings(
        routing=routing, strategy="race", hedge_delay=0.07, timeout=2.0, serve_stale=False,
        stale_answer_after=0.25, boot_stale_after=0.035, allow=(ipaddress.ip_network("198.18.0.0/15"),),
        max_inflight=77, prefetch=False, prefetch_rate=9, trust_ad=True)
    assert settings.stubfiles_settings(cfg.hosts, cfg.router, 30.0) == stubfiles.Settings(
        hosts_file="/tmp/bootres-test-hosts", defaultrouter_file="/tmp/bootres-test-defaultrouter",
        self_entry=False, router_names=("gw",), pin=("nfs1.example.test",), refresh_interval=42.0,
        retry_interval=30.0)
    assert settings.router_settings(cfg.router) == router.Settings(
        solicit=False, install_route=False, static=(ipaddress.IPv4Address("198.18.1.9"),),
        allowed=(ipaddress.IPv4Network("198.18.1.0/24"),))
    # And every one of those differs from its default: the test would notice a key wired to a constant.
    defaults = settings.resolver_settings(default.resolver, routing)
    assert all(getattr(stub, f.name) != getattr(defaults, f.name)
               for f in dataclasses.fields(stub) if f.name != "routing")


def test_the_cores_settings_types_have_no_defaults_of_their_own():
    for kind in (resolver.ResolverSettings, stubfiles.Settings, router.Settings):
        assert all(f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
                   for f in dataclasses.fields(kind)), kind
