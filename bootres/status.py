"""Status: gather -> model -> renderers.

The model is ``bootres.core.report``'s records, whose JSON form
is what ``bootres status --json`` prints (the SPEC's schema); the daemon
builds a ``Report`` with ``build_report`` from what each service says about
itself, and everything else here renders it: the human view, the one-line
systemd ``STATUS=``, Prometheus text.  Nothing here does I/O, so the CLI
(which reads the JSON back into the model) and the tests use the same
functions the daemon does.

The human layout follows ``resolvectl status``: verdict first, right-aligned
keys, empty fields left out.  It is for eyes only and may change; ``--json``
is the machine interface.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bootres.core.report import ErrorEntry, FilesStatus, Report, ResolverStatus, RouterStatus, ServiceStatus

KEY_WIDTH = 12  # like resolvectl's minimum column, so sections line up


def build_report(
    *,
    version: str,
    pid: int,
    uptime_s: float,
    config: str,
    resolver: ResolverStatus,
    router: RouterStatus,
    files: FilesStatus,
    errors: tuple[ErrorEntry, ...],
    service: ServiceStatus,
    conditions: list[str] = (),
) -> Report:
    """The whole status, from each service's part.

    ``service``: the daemon's own facts (control socket address, managed
    resolv.conf); ``conditions``: daemon-level problems (e.g. an unwritable
    state dir).
    """
    from bootres.core.report import Health, Report  # here: the daemon's first answer does not wait for the model

    found = problems(resolver, router, files) + list(conditions)
    return Report(running=True, pid=pid, uptime_s=round(uptime_s, 1), version=version, config=config,
                  health=Health(healthy=not found, problems=tuple(found)), service=service,
                  resolver=resolver, router=router, files=files, errors=tuple(errors))


def problems(resolver: ResolverStatus, router: RouterStatus, files: FilesStatus) -> list[str]:
    """Why the service is degraded; empty when names and the default route both work."""
    found = []
    if not resolver.upstreams:
        found.append("no upstream nameserver configured")
    elif all(u.state == "down" for u in resolver.upstreams):
        found.append("no upstream answering")
    if resolver.cache_file is not None and resolver.cache_file.problem:
        found.append(f"cache file {resolver.cache_file.path}: {resolver.cache_file.problem}")
    if router.discovery and not router.default:
        found.append("no default router")
    for entry in (files.defaultrouter, files.hosts):
        if entry is not None and entry.error:
            found.append(f"{entry.path}: {entry.error}")
    return found


# --- the one-line summary for systemd's STATUS=


def status_line(report: Report) -> str:
    upstreams = report.resolver.upstreams
    up = sum(1 for u in upstreams if u.state == "up")
    untried = sum(1 for u in upstreams if u.state == "unknown")
    parts = [f"{up}/{len(upstreams)} upstreams up" + (f" ({untried} not tried yet)" if untried else "")]
    default = report.router.default
    parts.append(f"default via {default}" if default else "no default router")
    return ", ".join(parts)


# --- human view


def _ms(value) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"


def _table(rows: list[list[str]]) -> list[str]:
    """Columns padded to their widest cell, trailing blanks dropped."""
    if not rows:
        return []
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]


def _field(lines: list[str], key: str, values: list[str] | str | None) -> None:
    if not values:
        return
    values = [values] if isinstance(values, str) else values
    lines.append(f"{key + ':':>{KEY_WIDTH}} {values[0]}")
    lines.extend(f"{'':>{KEY_WIDTH}} {value}" for value in values[1:])


def render_human(report: Report) -> str:
    lines: list[str] = []
    health = report.health
    verdict = "healthy" if health.healthy else "degraded: " + "; ".join(health.problems)
    _field(lines, "Verdict", verdict)
    _field(lines, "Service", f"running · pid {report.pid} · up {_duration(report.uptime_s)} · {report.version}")
    _field(lines, "Config", report.config)
    resolv_conf = report.service.resolv_conf
    if resolv_conf:
        if resolv_conf.behind:
            state = [f"{resolv_conf.path} belongs to {resolv_conf.behind}, which asks bootres"]
        elif resolv_conf.in_path:
            state = [f"{resolv_conf.path} points at bootres (original saved in {resolv_conf.saved})"]
        else:
            state = [resolv_conf.conflict or f"{resolv_conf.path} not taken over yet"]
        rewrite = resolv_conf.last_rewrite
        if rewrite:
            state.append(f"rewritten by another program at {rewrite.at}: "
                         f"nameservers {' '.join(rewrite.nameservers) or 'none'}")
        _field(lines, "Resolv.conf", state)

    resolver = report.resolver
    cache = resolver.cache
    lookups = cache.hits + cache.misses
    hit_rate = f"{100 * cache.hits // lookups}% hits" if lookups else "no lookups yet"
    _field(
        lines,
        "Resolver",
        f"{' '.join(resolver.listen)} · {resolver.queries} queries"
        f" · cache {cache.entries} ({hit_rate}, {cache.stale_served} stale, {cache.refreshes} refreshed ahead)",
    )
    saved = resolver.cache_file
    if saved:
        loaded = f"{saved.loaded} loaded" + ("" if saved.age_trusted is not False else " (age not trusted)")
        last = f"last save {saved.saved_at}, {saved.saved_entries} answers" if saved.saved_at else "not saved yet"
        _field(lines, "Cache file", f"{saved.path} · {loaded} · {last}"
                                    + (f" · {saved.problem}" if saved.problem else ""))
    container = resolver.container_listen
    if container:
        where = "on lo" if container.on_lo else "NOT on lo"
        state = "answering" if container.answering else "waiting for netlink"
        nets = " ".join(container.container_networks) or "none yet"
        _field(lines, "Containers", f"{container.address} ({where}, {state}) · container networks {nets}"
                                    f" · {container.outside} queries from outside")
    _field(
        lines,
        "Upstreams",
        _table(
            [
                [
                    u.address,
                    u.state,
                    _ms(u.srtt_ms),
                    f"wins {u.wins}",
                    f"timeouts {u.timeouts}" if u.timeouts else "",
                    f"from {u.source}" if u.source else "",
                ]
                for u in resolver.upstreams
            ]
        ),
    )
    _field(lines, "Split DNS", [f"{r.domain} -> {' '.join(r.upstreams) or 'no upstream'}" for r in resolver.routes])
    if resolver.search_only:
        _field(lines, "Search only", [" ".join(resolver.search_only) + " (public suffixes: searched, never routed)"])
    _field(lines, "Sources", [
        f"{s.name}: {' '.join(s.nameservers) or 'no nameserver'}" + (f" ({s.error})" if s.error else "")
        + ("" if s.in_use else " (not used)")
        for s in resolver.sources
    ])

    router = report.router
    default = router.default
    if default:
        detail = [router.source or "unknown source"]
        chosen = next((r for r in router.routers if r.address == default), None)
        where = f" dev {chosen.interface}" if chosen and chosen.interface else ""
        if chosen:
            detail.append(f"pref {chosen.preference}")
            detail.append(f"expires in {_duration(chosen.expires_in_s)}")
        _field(lines, "Default via", f"{default}{where} ({', '.join(detail)})")
    else:
        _field(lines, "Default via", "none" + ("" if router.discovery else " (discovery off)"))
    others = [r for r in router.routers if r.address != default]
    _field(lines, "Routers", _table([[r.address, r.interface or "", f"pref {r.preference}",
                                      f"expires in {_duration(r.expires_in_s)}"] for r in others]))
    # The kernel's own IPv6 default routes (from Router Advertisements, DHCPv6, ...): shown, never changed.
    _field(lines, "IPv6 via", [
        (r.gateway or "no gateway") + (f" dev {r.interface}" if r.interface else "") + f" ({r.origin}, metric {r.metric})"
        for r in router.ipv6_default_routes
    ])

    file_lines = []
    if report.files.defaultrouter is not None:
        entry = report.files.defaultrouter
        summary = f"error: {entry.error}" if entry.error else " ".join(entry.content) or "empty"
        file_lines.append(f"{entry.path} {summary}")
    if report.files.hosts is not None:
        entry = report.files.hosts
        file_lines.append(f"{entry.path} " + (f"error: {entry.error}" if entry.error else f"{entry.entries} entries"))
    _field(lines, "Files", file_lines)
    _field(lines, "Errors", [f"{e.at} {e.message}" for e in report.errors[-5:]])
    return "\n".join(lines)


def render_query(reply: dict) -> str:
    """``bootres query`` output: the answer, then where it came from, like resolvectl query."""
    lines = list(reply.get("answers") or [])
    if not reply.get("answered"):
        reason = f" ({reply['reason']})" if reply.get("reason") else ""
        lines.append(f"{reply.get('name', '')}: {reply.get('error') or reply.get('rcode') or 'no answer'}{reason}")
    elif not lines:
        lines.append(f"{reply.get('name', '')}: {reply.get('rcode', 'NOERROR')}, no records")
    source = reply.get("source") or "unknown"
    via = f"upstream {reply['upstream']}" if reply.get("upstream") else source
    if reply.get("upstream") and source != "upstream":
        via = f"{source} (upstream {reply['upstream']})"
    ms = reply.get("ms")
    lines.append(f"-- {via}" + (f" in {ms:.1f} ms" if ms is not None else "") + f", rcode {reply.get('rcode', '?')}")
    return "\n".join(lines)


# --- Prometheus text format (node_exporter textfile collector)


def _label(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def to_prometheus(report: Report) -> str:
    out: list[str] = []

    def metric(name: str, kind: str, help_text: str, samples: list[tuple[dict, float]]) -> None:
        out.append(f"# HELP bootres_{name} {help_text}")
        out.append(f"# TYPE bootres_{name} {kind}")
        for labels, value in samples:
            rendered = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
            out.append(f"bootres_{name}{{{rendered}}} {value:g}" if rendered else f"bootres_{name} {value:g}")

    resolver, router, cache = report.resolver, report.router, report.resolver.cache
    upstreams = resolver.upstreams
    metric("healthy", "gauge", "1 when names and the default route work.", [({}, int(report.health.healthy))])
    metric("uptime_seconds", "gauge", "Seconds since the service started.", [({}, report.uptime_s)])
    metric("queries_total", "counter", "Client queries received.", [({}, resolver.queries)])
    metric("cache_entries", "gauge", "Answers in the cache.", [({}, cache.entries)])
    for key in ("hits", "misses", "stale_served"):
        metric(f"cache_{key}_total", "counter", f"Cache {key.replace('_', ' ')}.", [({}, getattr(cache, key))])
    metric("cache_refreshes_total", "counter", "Names refreshed ahead of expiry (prefetch).",
           [({}, cache.refreshes)])
    metric("cache_refreshes_skipped_total", "counter",
           "Refreshes ahead not started: over prefetch_rate or the in-flight share.",
           [({}, cache.refreshes_skipped)])
    metric("upstream_up", "gauge", "1 when the upstream answers (unknown counts as up).",
           [({"upstream": u.address}, int(u.state != "down")) for u in upstreams])
    metric("upstream_srtt_seconds", "gauge", "Smoothed round-trip time of the upstream.",
           [({"upstream": u.address}, u.srtt_ms / 1000) for u in upstreams if u.srtt_ms is not None])
    for key in ("queries", "wins", "timeouts"):
        metric(f"upstream_{key}_total", "counter", f"Upstream {key}.",
               [({"upstream": u.address}, getattr(u, key)) for u in upstreams])
    default = router.default
    metric("default_router_info", "gauge", "The default router in use and how it was learnt.",
           [({"address": default, "source": router.source or "unknown"}, 1)] if default else [])
    metric("routers", "gauge", "Routers known from discovery.", [({}, len(router.routers))])
    container = resolver.container_listen
    metric("container_outside_queries_total", "counter",
           "Queries to container_listen that arrived from beyond this host and its containers.",
           [({}, container.outside)] if container else [])
    metric("errors", "gauge", "Recent errors listed in bootres status.", [({}, len(report.errors))])
    return "\n".join(out) + "\n"

