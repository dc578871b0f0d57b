"""The one place the configuration becomes each core's settings.

A core takes a frozen settings type of its own, with no defaults: every
default is config.SCHEMA's, and tests build their settings from
``config.defaults()`` through these functions, so a default changed in the
schema changes it everywhere.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bootres.config import HostsConfig, ResolverConfig, RouterConfig
from bootres.core.resolver import ResolverSettings
from bootres.core.routing import Routing

# The stub files' and router discovery's cores are imported where their settings are built: those services
# start after READY, and importing them here put them before the first answer (bench/startup.py: warm 75.1
# against 68.5 ms, docs/boot.md).
if TYPE_CHECKING:
    from bootres.core import router, stubfiles


def resolver_settings(cfg: ResolverConfig, routing: Routing) -> ResolverSettings:
    """[resolver] for the resolver core; ``routing``: the upstreams the sources and ``upstreams`` select."""
    return ResolverSettings(
        routing=routing,
        strategy=cfg.strategy,
        hedge_delay=cfg.hedge_delay,
        timeout=cfg.timeout,
        serve_stale=cfg.serve_stale,
        stale_answer_after=cfg.stale_answer_after,
        boot_stale_after=cfg.boot_stale_after,
        allow=cfg.allow,
        max_inflight=cfg.max_inflight,
        prefetch=cfg.prefetch,
        prefetch_rate=cfg.prefetch_rate,
        trust_ad=cfg.trust_ad,
    )


def stubfiles_settings(hosts: HostsConfig, router_cfg: RouterConfig, retry_interval: float) -> stubfiles.Settings:
    """[hosts], and [router]'s defaultrouter_file, for the stub files' core."""
    from bootres.core import stubfiles

    return stubfiles.Settings(
        hosts_file=hosts.file,
        defaultrouter_file=router_cfg.defaultrouter_file,
        self_entry=hosts.self_entry,
        router_names=hosts.router_names,
        pin=hosts.pin,
        refresh_interval=hosts.refresh_interval,
        retry_interval=retry_interval,
    )


def router_settings(cfg: RouterConfig) -> router.Settings:
    """[router] for router discovery's core."""
    from bootres.core import router

    return router.Settings(solicit=cfg.solicit, install_route=cfg.install_route, static=cfg.static,
                           allowed=cfg.routers)
