"""Status: gather -> model -> renderers.

The model is the plain dict that ``bootres status --json`` prints (the
SPEC's schema plus ``health``); the daemon builds it with ``build_report``
from what each service says about itself, and everything else here renders
it: the human view, the one-line systemd ``STATUS=``, Prometheus text.
Nothing here does I/O, so the CLI and the tests use the same functions the
daemon does.

The human layout follows ``resolvectl status``: verdict first, right-aligned
keys, empty fields left out.  It is for eyes only and may change; ``--json``
is the machine interface.
"""

from __future__ import annotations

KEY_WIDTH = 12  # like resolvectl's minimum column, so sections line up


def build_report(
    *,
    version: str,
    pid: int,
    uptime_s: float,
    config: str,
    resolver: dict,
    router: dict,
    files: dict,
    errors: list[dict],
    service: dict | None = None,
    conditions: list[str] = (),
) -> dict:
    """The whole status object.

    ``service``: the daemon's own facts (control socket address, managed
    resolv.conf); ``conditions``: daemon-level problems (e.g. an unwritable
    state dir).
    """
    report = {
        "running": True,
        "pid": pid,
        "uptime_s": round(uptime_s, 1),
        "version": version,
        "config": config,
        "service": service or {},
        "resolver": resolver,
        "router": router,
        "files": files,
        "errors": list(errors),
    }
    found = problems(report) + list(conditions)
    report["health"] = {"healthy": not found, "problems": found}
    return report


def problems(report: dict) -> list[str]:
    """Why the service is degraded; empty when names and the default route both work."""
    found = []
    upstreams = report.get("resolver", {}).get("upstreams", [])
    if not upstreams:
        found.append("no upstream nameserver configured")
    elif all(u.get("state") == "down" for u in upstreams):
        found.append("no upstream answering")
    router = report.get("router", {})
    if router.get("discovery") and not router.get("default"):
        found.append("no default router")
    for name, entry in sorted(report.get("files", {}).items()):
        if isinstance(entry, dict) and entry.get("error"):
            found.append(f"{entry.get('path', name)}: {entry['error']}")
    return found


def is_healthy(report: dict) -> bool:
    """Exit status 0 of ``bootres status``; the daemon's own verdict when it gave one."""
    if not report.get("running"):
        return False
    health = report.get("health")
    return health["healthy"] if health else not problems(report)


# --- the one-line summary for systemd's STATUS=


def status_line(report: dict) -> str:
    upstreams = report["resolver"].get("upstreams", [])
    up = sum(1 for u in upstreams if u.get("state") == "up")
    untried = sum(1 for u in upstreams if u.get("state") == "unknown")
    parts = [f"{up}/{len(upstreams)} upstreams up" + (f" ({untried} not tried yet)" if untried else "")]
    default = report["router"].get("default")
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


def render_human(report: dict) -> str:
    health = report.get("health") or {"healthy": is_healthy(report), "problems": problems(report)}
    lines: list[str] = []
    verdict = "healthy" if health["healthy"] else "degraded: " + "; ".join(health["problems"])
    _field(lines, "Verdict", verdict)
    _field(
        lines,
        "Service",
        f"running · pid {report['pid']} · up {_duration(report['uptime_s'])} · {report['version']}",
    )
    _field(lines, "Config", report.get("config"))
    resolv_conf = report.get("service", {}).get("resolv_conf")
    if resolv_conf:
        if resolv_conf.get("behind"):
            state = [f"{resolv_conf['path']} belongs to {resolv_conf['behind']}, which asks bootres"]
        elif resolv_conf.get("in_path"):
            state = [f"{resolv_conf['path']} points at bootres (original saved in {resolv_conf['saved']})"]
        else:
            state = [resolv_conf.get("conflict") or f"{resolv_conf['path']} not taken over yet"]
        rewrite = resolv_conf.get("last_rewrite")
        if rewrite:
            state.append(f"rewritten by another program at {rewrite['at']}: "
                         f"nameservers {' '.join(rewrite['nameservers']) or 'none'}")
        _field(lines, "Resolv.conf", state)

    resolver = report["resolver"]
    cache = resolver.get("cache", {})
    lookups = cache.get("hits", 0) + cache.get("misses", 0)
    hit_rate = f"{100 * cache.get('hits', 0) // lookups}% hits" if lookups else "no lookups yet"
    _field(
        lines,
        "Resolver",
        f"{' '.join(resolver.get('listen', []))} · {resolver.get('queries', 0)} queries"
        f" · cache {cache.get('entries', 0)} ({hit_rate}, {cache.get('stale_served', 0)} stale,"
        f" {cache.get('refreshes', 0)} refreshed ahead)",
    )
    container = resolver.get("container_listen")
    if container:
        where = "on lo" if container.get("on_lo") else "NOT on lo"
        state = "answering" if container.get("answering") else "waiting for netlink"
        nets = " ".join(container.get("container_networks", [])) or "none yet"
        _field(lines, "Containers", f"{container.get('address')} ({where}, {state}) · container networks {nets}"
                                    f" · {container.get('outside', 0)} queries from outside")
    _field(
        lines,
        "Upstreams",
        _table(
            [
                [
                    u["address"],
                    u.get("state", "unknown"),
                    _ms(u.get("srtt_ms")),
                    f"wins {u.get('wins', 0)}",
                    f"timeouts {u.get('timeouts', 0)}" if u.get("timeouts") else "",
                    f"from {u['source']}" if u.get("source") else "",
                ]
                for u in resolver.get("upstreams", [])
            ]
        ),
    )
    _field(lines, "Split DNS", [f"{r['domain']} -> {' '.join(r['upstreams']) or 'no upstream'}"
                                for r in resolver.get("routes", [])])
    if resolver.get("search_only"):
        _field(lines, "Search only", [" ".join(resolver["search_only"]) + " (public suffixes: searched, never routed)"])
    _field(lines, "Sources", [
        f"{s['name']}: {' '.join(s['nameservers']) or 'no nameserver'}" + (f" ({s['error']})" if s.get("error") else "")
        + (" (not used)" if s.get("in_use") is False else "")
        for s in resolver.get("sources", [])
    ])

    router = report["router"]
    routers = router.get("routers", [])
    default = router.get("default")
    if default:
        detail = [router.get("source") or "unknown source"]
        chosen = next((r for r in routers if r.get("address") == default), None)
        where = f" dev {chosen['interface']}" if chosen and chosen.get("interface") else ""
        if chosen:
            if chosen.get("preference") is not None:
                detail.append(f"pref {chosen['preference']}")
            if chosen.get("expires_in_s") is not None:
                detail.append(f"expires in {_duration(chosen['expires_in_s'])}")
        _field(lines, "Default via", f"{default}{where} ({', '.join(detail)})")
    else:
        _field(lines, "Default via", "none" + ("" if router.get("discovery") else " (discovery off)"))
    others = [r for r in routers if r.get("address") != default]
    _field(
        lines,
        "Routers",
        _table(
            [
                [r["address"], r.get("interface") or "", f"pref {r.get('preference')}",
                 f"expires in {_duration(r['expires_in_s'])}" if r.get("expires_in_s") is not None else ""]
                for r in others
            ]
        ),
    )
    # The kernel's own IPv6 default routes (from Router Advertisements, DHCPv6, ...): shown, never changed.
    _field(lines, "IPv6 via", [
        (r.get("gateway") or "no gateway") + (f" dev {r['interface']}" if r.get("interface") else "")
        + f" ({r.get('origin')}, metric {r.get('metric')})"
        for r in router.get("ipv6_default_routes", [])
    ])

    file_lines = []
    for name, entry in sorted(report.get("files", {}).items()):
        if not isinstance(entry, dict) or not entry.get("path"):
            continue
        if entry.get("error"):
            summary = f"error: {entry['error']}"
        elif "entries" in entry:
            summary = f"{entry['entries']} entries"
        elif entry.get("content") is not None:
            summary = " ".join(entry["content"]) or "empty"
        else:
            summary = ""
        file_lines.append(f"{entry['path']} {summary}".rstrip())
    _field(lines, "Files", file_lines)
    _field(lines, "Errors", [f"{e['at']} {e['message']}" for e in report.get("errors", [])[-5:]])
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


def to_prometheus(report: dict) -> str:
    out: list[str] = []

    def metric(name: str, kind: str, help_text: str, samples: list[tuple[dict, float]]) -> None:
        out.append(f"# HELP bootres_{name} {help_text}")
        out.append(f"# TYPE bootres_{name} {kind}")
        for labels, value in samples:
            rendered = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
            out.append(f"bootres_{name}{{{rendered}}} {value:g}" if rendered else f"bootres_{name} {value:g}")

    resolver, router = report["resolver"], report["router"]
    cache = resolver.get("cache", {})
    upstreams = resolver.get("upstreams", [])
    metric("healthy", "gauge", "1 when names and the default route work.", [({}, int(is_healthy(report)))])
    metric("uptime_seconds", "gauge", "Seconds since the service started.", [({}, report["uptime_s"])])
    metric("queries_total", "counter", "Client queries received.", [({}, resolver.get("queries", 0))])
    metric("cache_entries", "gauge", "Answers in the cache.", [({}, cache.get("entries", 0))])
    for key in ("hits", "misses", "stale_served"):
        metric(f"cache_{key}_total", "counter", f"Cache {key.replace('_', ' ')}.", [({}, cache.get(key, 0))])
    metric("cache_refreshes_total", "counter", "Names refreshed ahead of expiry (prefetch).",
           [({}, cache.get("refreshes", 0))])
    metric("cache_refreshes_skipped_total", "counter",
           "Refreshes ahead not started: over prefetch_rate or the in-flight share.",
           [({}, cache.get("refreshes_skipped", 0))])
    metric("upstream_up", "gauge", "1 when the upstream answers (unknown counts as up).",
           [({"upstream": u["address"]}, int(u.get("state") != "down")) for u in upstreams])
    metric("upstream_srtt_seconds", "gauge", "Smoothed round-trip time of the upstream.",
           [({"upstream": u["address"]}, u["srtt_ms"] / 1000) for u in upstreams if u.get("srtt_ms") is not None])
    for key in ("queries", "wins", "timeouts"):
        metric(f"upstream_{key}_total", "counter", f"Upstream {key}.",
               [({"upstream": u["address"]}, u.get(key, 0)) for u in upstreams])
    default = router.get("default")
    metric("default_router_info", "gauge", "The default router in use and how it was learnt.",
           [({"address": default, "source": router.get("source") or "unknown"}, 1)] if default else [])
    metric("routers", "gauge", "Routers known from discovery.", [({}, len(router.get("routers", [])))])
    container = resolver.get("container_listen") or {}
    metric("container_outside_queries_total", "counter",
           "Queries to container_listen that arrived from beyond this host and its containers.",
           [({}, container.get("outside", 0))] if container else [])
    metric("errors", "gauge", "Recent errors listed in bootres status.", [({}, len(report.get("errors", [])))])
    return "\n".join(out) + "\n"

