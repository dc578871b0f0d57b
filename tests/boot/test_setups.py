"""Issues 9's and 19's must-show, on real boots: installed with its shipped configuration, bootres takes effect.

One container per setup (tests/boot/sitelab.py's SETUPS: Debian 12 with
ifupdown + isc-dhcp-client, systemd-networkd, NetworkManager, a static
/etc/resolv.conf, networkd + systemd-resolved; Debian 13 with ifupdown +
dhcpcd, dhcpcd.service alone, ifupdown + isc-dhcp-client, networkd,
NetworkManager, networkd + resolved, the cloud layout, static), all booted
at once by the module's fixture, each with its test site inside: a DHCP
server handing out two nameservers, the first silent.  The .deb is
installed at image build with nothing added to its configuration.

The phases: right after the boot; glibc without bootres (baseline); the
renewal to a new list, the old healthy server then decommissioned; late,
at least LATE_S after the boot and three renewals after the change; another
program's rewrite; the purge.

Each phase runs on every container at once where waiting dominates (the
baseline's 5 s timeouts, the DHCP renewal, the purge); lookups are timed
one container at a time, so that one container's load never shows in
another's latencies.  Every phase's figures (p50/max, glibc's packets) are
printed at the end for docs/setups.md.

Budget: ~3 min for the thirteen cached bases on the first run of the day,
then ~30 s of package build and images, ~10 s of boots, LATE_S (5 min)
until the late phase and about two minutes of other phases.  Runs as root
only; as root every missing tool is a failure.
"""

from __future__ import annotations

import json
import os
import re
import time

import pytest

import bootlab
import sitelab
from sitelab import DEAD, DHCP_SETUPS, GOOD, NEW, SETUPS, WILDCARD

pytestmark = [
    pytest.mark.boot,
    # The first test's setup builds the package and, once a day, thirteen
    # base images; the late phase waits LATE_S: more than tox.ini's 120 s backstop.
    pytest.mark.timeout(1200),
    pytest.mark.skipif(os.geteuid() != 0, reason="booting a container needs root"),
]

P50_MS = 10.0
MAX_MS = 100.0
NOTICE_S = 1.0  # another program's /etc/resolv.conf noticed and logged within
HEALTHY_S = 1.0  # `bootres status` exits 0 within this long of a nameserver answering (a change is in use in 1 s)
# The late phase: at least this long after the boot (issue 19: "after at least 5 minutes and 3 renewals").
LATE_S = float(os.environ.get("BOOTRES_SETUPS_LATE_S", "300"))
LATE_RENEWALS = 3
NSS_RESOLVE = [name for name, setup in SETUPS.items() if setup.nss_resolve]
GLIBC_DNS = [name for name in SETUPS if name not in NSS_RESOLVE]
FIGURES: list[str] = []
# The renewed lease's search list: two top-level domains and a domain below one (issue 21).
RENEWED_SEARCH = (sitelab.ZONE, "com", "net", "corp.example")


@pytest.fixture(scope="module")
def boxes(tmp_path_factory):
    missing = bootlab.missing_tools()
    assert not missing, f"install these for the boot test: {missing} (see .ci/setup)"
    started = time.monotonic()
    deb, _, _ = bootlab.build_deb(tmp_path_factory.mktemp("deb"))
    print(f"\ndpkg-buildpackage: {time.monotonic() - started:.1f} s")
    started = time.monotonic()
    booted = sitelab.boot_all(list(SETUPS.values()), tmp_path_factory.mktemp("setups"), deb)
    print(f"images and boots: {time.monotonic() - started:.1f} s")
    try:
        for box in booted.values():
            box.install_counters()
        yield booted
    finally:
        print("\n" + "\n".join(FIGURES))
        sitelab.in_parallel(sitelab.shutdown, booted.values())


def measure(box, phase: str, **kwargs) -> sitelab.Lookups:
    batch = box.lookups(phase, **kwargs)
    FIGURES.append(f"{box.name:9} {batch.summary()}")
    return batch


def assert_fast_and_never_the_dead_server(box, batch: sitelab.Lookups) -> None:
    context = f"{box.name} {batch.summary()}\nslowest: {sorted(batch.results, key=lambda r: -r[1])[:5]}"
    assert len(batch.results) == batch.asked and not batch.failed, context + f"\n{box.diagnostics()}"
    assert batch.p50 <= P50_MS and batch.max <= MAX_MS, context
    assert batch.packets["to_dead"] == 0, context


def sources_not_naming(report: dict, word: str) -> list[str]:
    """The upstreams whose "source" does not name ``word``: empty when each one does."""
    return [f"{u['address']} from {u.get('source')!r}" for u in report.get("resolver", {}).get("upstreams", [])
            if word not in (u.get("source") or "")]


# --- the phases, each run on every container once


def healthy_status(box, timeout: float) -> tuple[int, dict, float, list]:
    """`bootres status --json` once it exits 0, or its last answer after ``timeout``; the seconds waited; the
    problems it named meanwhile."""
    named = []

    def exited_0():
        status = box.status()
        problems = status[1].get("health", {}).get("problems")
        if status[0] != 0 and problems not in named:
            named.append(problems)
        return status if status[0] == 0 else None

    started = time.monotonic()
    code, report = sitelab.wait_for(exited_0, timeout) or box.status()
    return code, report, time.monotonic() - started, named


@pytest.fixture(scope="module")
def first(boxes):
    """After the boot: once status lists the first list (10 s at most), 50 never-seen names; then status.

    The names answered mean a nameserver answered: status must say healthy.
    """
    def listed(box):
        if sitelab.wait_for(lambda: set(sitelab.upstream_addresses(box.status()[1])) == {DEAD, GOOD}, timeout=10):
            return f"{time.monotonic() - box.booted_at:.1f} s after the boot finished"
        return "not within 10 s"

    waited = dict(zip(boxes, sitelab.in_parallel(listed, boxes.values())))
    batches = {name: measure(box, "first") for name, box in boxes.items()}
    statuses = dict(zip(boxes, sitelab.in_parallel(lambda box: healthy_status(box, HEALTHY_S), boxes.values())))
    for name, (code, _, seconds, named) in statuses.items():
        FIGURES.append(f"{name:9} status: first list shown {waited[name]} (at most); exit {code}"
                       f" {seconds:.1f} s after the lookups (problems named before: {named}); the dead server got"
                       f" {boxes[name].dead_server_packets()} packets since the boot, from bootres"
                       f" (glibc's: {batches[name].packets['to_dead']})")
    return {name: {"lookups": batches[name], "status_code": statuses[name][0], "report": statuses[name][1]}
            for name in boxes}


@pytest.fixture(scope="module")
def baseline(boxes, first):
    """glibc alone with the list DHCP gave (bootres bypassed for this one unit): one lookup each."""
    def one(box):
        box.run("sh", "-c", f"printf '{sitelab.PLAIN_RESOLV_CONF}' > /run/site-baseline-resolv.conf")
        return box.lookups("baseline", count=1, budget=8, resolv_conf="/run/site-baseline-resolv.conf")

    glibc = [boxes[name] for name in GLIBC_DNS]
    results = dict(zip(GLIBC_DNS, sitelab.in_parallel(one, glibc)))
    for name, batch in results.items():
        FIGURES.append(f"{name:9} {batch.summary()} (glibc without bootres)")
    return results


@pytest.fixture(scope="module")
def renewed(boxes, baseline):
    """The DHCP server hands out (DEAD, NEW); once status shows it (or after 3 renewals), GOOD is black-holed.

    The renewed lease's search list adds two top-level domains and a domain below one (issue 21).
    """
    def renew(box):
        options = sitelab.dhcp_options(sitelab.RENEWED_LIST, RENEWED_SEARCH)
        box.sh(f"printf '{options}' > /etc/site/dhcp-options"
               " && systemctl reload site-dhcp.service")
        since = box.now()
        seen = sitelab.wait_for(lambda: set(sitelab.upstream_addresses(box.status()[1])) == {DEAD, NEW}
                                and box.now(), timeout=3 * sitelab.RENEW_S)
        acks = [at for at, message in box.journal("site-dhcp.service", since) if "DHCPACK" in message]
        code, report = box.status()
        box.site("iptables", "-I", "INPUT", "-d", GOOD, "-j", "DROP")
        return {"ack_s": acks[0] - since if acks else None, "seen_s": seen - since if seen else None,
                "status_code": code, "report": report, "changed_at": since}

    dhcp_boxes = [boxes[name] for name in DHCP_SETUPS]
    results = dict(zip(DHCP_SETUPS, sitelab.in_parallel(renew, dhcp_boxes)))
    for name, result in results.items():
        result["lookups"] = measure(boxes[name], "renewed")
        ack, seen = result["ack_s"], result["seen_s"]
        upstreams = [(u["address"], u.get("source"))
                     for u in result["report"].get("resolver", {}).get("upstreams", [])]
        FIGURES.append(f"{name:9} renewal: DHCPACK {ack and f'{ack:.2f}'} s after the server's reload, new list in "
                       f"status {seen and f'{seen:.2f}'} s after it: {upstreams}")
    return results


@pytest.fixture(scope="module")
def late(boxes, renewed):
    """At least LATE_S after the boot and LATE_RENEWALS renewals after the change: lookups, then status."""
    def wait(box):
        deadline = box.booted_at + LATE_S
        renewals = []
        while True:
            if box.setup.dhcp:
                renewals = [at for at, message in box.journal("site-dhcp.service", renewed[box.name]["changed_at"])
                            if "DHCPACK" in message]
            if time.monotonic() >= deadline and (len(renewals) >= LATE_RENEWALS or not box.setup.dhcp):
                return len(renewals)
            assert time.monotonic() < deadline + 10 * sitelab.RENEW_S, f"{box.name}: {len(renewals)} renewals"
            time.sleep(2)

    renewals = dict(zip(boxes, sitelab.in_parallel(wait, boxes.values())))
    results = {}
    for name, box in boxes.items():
        batch = measure(box, "late")
        code, report = box.status()
        results[name] = {"lookups": batch, "status_code": code, "report": report}
        FIGURES.append(f"{name:9} late: {time.monotonic() - box.booted_at:.0f} s after the boot, {renewals[name]}"
                       f" DHCPACKs since the change; status exit {code}, last_rewrite"
                       f" {report.get('service', {}).get('resolv_conf', {}).get('last_rewrite')}")
    return results


@pytest.fixture(scope="module")
def rewritten(boxes, late):
    """Another program writes /etc/resolv.conf; what bootres logs within 3 s, its status, then lookups."""
    def rewrite(box):
        healthy = NEW if box.setup.dhcp else GOOD
        text = f"# written by another program\nnameserver {DEAD}\nnameserver {healthy}\n"
        since = box.now()
        box.sh(f"printf '{text}' > /etc/resolv.conf")
        lines = sitelab.wait_for(lambda: [(at - since, message) for at, message
                                          in box.journal("bootres.service", since) if "resolv.conf" in message],
                                 timeout=3) or []
        time.sleep(0.5)  # the restore, if any, follows the log line
        code, report = box.status()
        return {"written": (DEAD, healthy), "lines": lines, "status_code": code, "report": report,
                "resolv_conf": box.run("cat", "/etc/resolv.conf").stdout}

    results = dict(zip(boxes, sitelab.in_parallel(rewrite, boxes.values())))
    for name, result in results.items():
        result["lookups"] = measure(boxes[name], "rewritten", count=20)
        delay, line = result["lines"][0] if result["lines"] else (None, None)
        FIGURES.append(f"{name:9} rewrite noticed in the journal {delay and f'{delay:.2f}'} s after the write:"
                       f" {line!r}")
    return results


@pytest.fixture(scope="module")
def purged(boxes, rewritten):
    """`apt-get purge bootres` on each, the DHCP server silenced first so no client rewrites resolv.conf meanwhile.

    Returns (apt-get's process, what KEPT_FILES must hold, what they hold).
    """
    def purge(box):
        if box.setup.dhcp:
            box.site("iptables", "-I", "INPUT", "-p", "udp", "--dport", "67", "-j", "DROP")
        proc = box.sh("DEBIAN_FRONTEND=noninteractive apt-get purge -y bootres", timeout=120, check=False)
        expected = dict(box.before)
        if box.setup.resolv_conf_owner_copy:
            def owners_text():
                return box.run("cat", box.setup.resolv_conf_owner_copy, check=False).stdout.encode()

            # The stack writes /etc/resolv.conf once it is told it owns it again.
            sitelab.wait_for(lambda: owners_text() == sitelab.snapshot(box.container.root)["etc/resolv.conf"], 3)
            expected["etc/resolv.conf"] = owners_text()
        return proc, expected, sitelab.snapshot(box.container.root)

    return dict(zip(boxes, sitelab.in_parallel(purge, boxes.values())))


# --- the harness itself: the site works, the black hole is one


@pytest.mark.parametrize("name", SETUPS)
def test_site_is_up_and_the_host_has_its_address(boxes, name):
    box = boxes[name]
    # dhcpcd.service goes to the background before its lease, and nothing in the boot waits for it.
    shown = sitelab.wait_for(lambda: box.run("ip", "-4", "-o", "address", "show", "dev", sitelab.IFACE).stdout, 20)
    assert shown, box.diagnostics()
    address = shown.split()[3].split("/")[0]
    route = box.run("ip", "-4", "route", "show", "default").stdout
    assert f"default via {sitelab.ROUTER} dev {sitelab.IFACE}" in route, box.diagnostics()
    if box.setup.dhcp:
        leases = box.run("cat", "/run/site-dhcp/leases").stdout
        assert f" {address} " in leases, f"{address} not leased by the site:\n{leases}"
    else:
        assert address == sitelab.STATIC_ADDRESS
    assert box.run("systemctl", "is-active", "site-dns.service").stdout.strip() == "active"
    argv, shows = box.setup.configured_by
    assert shows in box.run(*argv, check=False).stdout, f"{sitelab.IFACE} not configured by the {name} stack"


@pytest.mark.parametrize("name", GLIBC_DNS)
def test_without_bootres_glibc_waits_5s_for_the_dead_server(baseline, name):
    batch = baseline[name]
    assert len(batch.results) == 1 and batch.results[0][2] == WILDCARD, batch.summary()
    # glibc's default: 5 s for the first nameserver, then the second answers.
    assert 4900 <= batch.max <= 6000, batch.summary()
    # The packet counter sees glibc's queries when they do go to the dead server.
    assert batch.packets["to_dead"] >= 1, batch.summary()


# --- installed with its shipped configuration: bootres takes effect


@pytest.mark.parametrize("name", SETUPS)
def test_status_lists_the_nameservers_with_their_source(boxes, first, name):
    report = first[name]["report"]
    assert set(sitelab.upstream_addresses(report)) == {DEAD, GOOD}, json.dumps(report.get("resolver"), indent=1)
    assert not sources_not_naming(report, boxes[name].setup.source_word)


@pytest.mark.parametrize("name", SETUPS)
def test_never_seen_names_fast_and_glibc_never_asks_the_dead_server(boxes, first, name):
    assert_fast_and_never_the_dead_server(boxes[name], first[name]["lookups"])


@pytest.mark.parametrize("name", SETUPS)
def test_status_exits_0_once_a_nameserver_answered(first, name):
    assert first[name]["status_code"] == 0, json.dumps(first[name]["report"].get("health"), indent=1)


@pytest.mark.parametrize("name", DHCP_SETUPS)
def test_renewal_new_list_in_status_with_its_source(boxes, renewed, name):
    report = renewed[name]["report"]
    assert renewed[name]["ack_s"] is not None, "no DHCPACK after the server's new list"
    assert set(sitelab.upstream_addresses(report)) == {DEAD, NEW}, json.dumps(report.get("resolver"), indent=1)
    assert not sources_not_naming(report, boxes[name].setup.source_word)


@pytest.mark.parametrize("name", DHCP_SETUPS)
def test_renewal_search_domains_that_are_top_level_domains_stay_search_only(renewed, name):
    """A lease offering `search com net` must not make its servers the only ones for those names (issue 21)."""
    resolver = renewed[name]["report"]["resolver"]
    routes = {route["domain"] for route in resolver.get("routes", [])}
    assert not routes & {"com", "net"}, resolver.get("routes")
    if sitelab.ZONE in routes:  # this DHCP client hands the lease's search list on (networkd: UseDomains=no)
        assert "corp.example" in routes and resolver.get("search_only") == ["com", "net"], resolver


def test_some_dhcp_client_hands_the_search_list_on(renewed):
    """So the test above is not vacuous: the clients that pass search domains (dhclient, dhcpcd, NetworkManager)."""
    passing = [name for name in DHCP_SETUPS
               if resolver_routes(renewed[name]["report"]) >= {sitelab.ZONE, "corp.example"}]
    FIGURES.append(f"search-only com, net after the renewal: {', '.join(passing)}")
    assert passing, {name: renewed[name]["report"]["resolver"].get("routes") for name in DHCP_SETUPS}


def resolver_routes(report: dict) -> set[str]:
    return {route["domain"] for route in report.get("resolver", {}).get("routes", [])}


@pytest.mark.parametrize("name", DHCP_SETUPS)
def test_renewal_then_old_server_gone_lookups_stay_fast(boxes, renewed, name):
    assert_fast_and_never_the_dead_server(boxes[name], renewed[name]["lookups"])


@pytest.mark.parametrize("name", DHCP_SETUPS)
def test_renewal_new_list_in_status_within_1s_of_the_dhcpack(renewed, name):
    """The status is polled every 0.25 s and takes a moment to answer: up to 0.5 s of the figure is the test's."""
    ack, seen = renewed[name]["ack_s"], renewed[name]["seen_s"]
    assert ack is not None and seen is not None and seen - ack <= 1.0 + 0.5, (ack, seen)


@pytest.mark.parametrize("name", SETUPS)
def test_late_lookups_fast_status_healthy_and_nobody_rewrote_resolv_conf(boxes, late, name):
    result = late[name]
    assert_fast_and_never_the_dead_server(boxes[name], result["lookups"])
    assert result["status_code"] == 0, json.dumps(result["report"].get("health"), indent=1)
    resolv_conf = result["report"].get("service", {}).get("resolv_conf") or {}
    assert resolv_conf.get("in_path") and resolv_conf.get("last_rewrite") is None, json.dumps(resolv_conf)
    if boxes[name].setup.dhcp:
        assert set(sitelab.upstream_addresses(result["report"])) == {DEAD, NEW}


@pytest.mark.parametrize("name", NSS_RESOLVE)
def test_systemd_resolved_keeps_its_file_and_asks_bootres(boxes, first, name):
    report = first[name]["report"]
    assert report["service"]["resolv_conf"]["behind"] == "systemd-resolved", json.dumps(report["service"])
    assert boxes[name].run("readlink", "/etc/resolv.conf").stdout.strip() == "../run/systemd/resolve/stub-resolv.conf"
    listed = boxes[name].run("cat", "/run/systemd/resolve/resolv.conf").stdout
    assert "nameserver 127.0.0.35" in listed, listed


# With systemd-resolved's stub the file is a symlink to resolved's own, and the write goes into that: resolved's
# business (it writes its file again), bootres's guard has no rewrite of its file to notice.
@pytest.mark.parametrize("name", GLIBC_DNS)
def test_resolv_conf_rewritten_is_noticed_logged_and_shown(rewritten, name):
    result = rewritten[name]
    assert result["lines"] and result["lines"][0][0] <= NOTICE_S, f"bootres's log since the write: {result['lines']}"
    rewrite = result["report"].get("service", {}).get("resolv_conf", {}).get("last_rewrite") or {}
    assert set(result["written"]) <= set(rewrite.get("nameservers", [])), json.dumps(result["report"].get("service"))


@pytest.mark.parametrize("name", SETUPS)
def test_resolv_conf_rewritten_lookups_through_bootres_or_status_says_not(rewritten, name):
    result = rewritten[name]
    batch = result["lookups"]
    resolv_conf = result["report"].get("service", {}).get("resolv_conf", {})
    through_bootres = ((result["resolv_conf"].startswith("# managed by bootres")
                        or resolv_conf.get("behind") == "systemd-resolved")
                       and len(batch.results) == batch.asked and not batch.failed
                       and batch.packets["udp_not_bootres"] == batch.packets["tcp_not_bootres"] == 0)
    says_not = resolv_conf.get("in_path") is False and result["status_code"] != 0
    assert through_bootres or says_not, (f"{batch.summary()}\n/etc/resolv.conf:\n{result['resolv_conf']}\n"
                                         f"status {result['status_code']}: {json.dumps(resolv_conf)}")


@pytest.mark.parametrize("name", SETUPS)
def test_purge_restores_resolv_conf_hosts_and_defaultrouter_byte_for_byte(boxes, purged, name):
    proc, expected, after = purged[name]
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    # Issue 19: with the units under /lib, trixie's dpkg said "directory '/lib/systemd/system' not empty so not
    # removed". (Debian 12's dpkg still says so of /usr/lib/systemd/system-generators, which no bookworm package
    # but bootres lists: one .deb cannot name the generator directory each release's systemd owns; docs/install.md.)
    units_dir = re.search(r"directory '(/usr)?/lib/systemd/system' not empty", proc.stdout + proc.stderr)
    assert units_dir is None, proc.stdout[-2000:] + proc.stderr[-2000:]
    state = boxes[name].run("dpkg-query", "-W", "-f=${db:Status-Abbrev}", "bootres", check=False).stdout
    assert state.strip() in ("", "un"), state  # purged: unknown to dpkg
    for path, want in expected.items():
        assert after[path] == want, f"/{path}: want {want!r}, after purge {after[path]!r}"
