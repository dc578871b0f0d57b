"""What a user of the resolver sees: dig and dnspython over UDP and TCP, truncation, EDNS,
hosts files, the allow list, ``bootres query`` data and the status object."""

import time

import dns.flags
import dns.message
import dns.rcode
import dns.rrset

from resolver_harness import HOST, LISTEN, UPSTREAMS, Client, ResolverProcess, resolver_config, upstream_lab


def test_dig_and_tcp_clients_get_answers_from_a_real_nsd(lab, tmp_path):
    host, servers = upstream_lab(lab)
    lab.nsd(servers, UPSTREAMS[0], records={"www": "198.18.0.80", "v6": "2001:db8::80"}, rate_limit=False)
    conf = resolver_config(tmp_path, upstreams=UPSTREAMS[0], listen=f"{LISTEN}:53 [::1]:53")
    resolver = ResolverProcess(host, conf, tmp_path)
    dig = host.run("dig", "+short", "+time=2", "+tries=1", f"@{LISTEN}", "www.example.test")
    assert dig.stdout.split() == ["198.18.0.80"]
    for _ in range(2):  # over IPv6 loopback: a miss, then a hit from the batched UDP path
        dig = host.run("dig", "+short", "+time=2", "+tries=1", "@::1", "v6.example.test", "AAAA")
        assert dig.stdout.split() == ["2001:db8::80"]
    dig6 = host.run("dig", "+short", "+time=2", "+tries=1", "+tcp", f"@{LISTEN}", "v6.example.test", "AAAA")
    assert dig6.stdout.split() == ["2001:db8::80"]
    reply = host.dns_query(LISTEN, "www.example.test", tcp=True)
    assert [rd.to_text() for rd in reply.answer[0]] == ["198.18.0.80"]
    nx = host.dns_query(LISTEN, "nope.nowhere.test")  # outside the zone: nsd refuses, we pass it on
    assert nx.rcode() == dns.rcode.REFUSED
    assert resolver.stop() == 0


def test_truncated_upstream_reply_is_fetched_over_tcp(lab, tmp_path):
    host, servers = upstream_lab(lab)
    many = [f"198.18.1.{i}" for i in range(1, 120)]  # ~2 KB of A records
    upstream = lab.fakedns(servers, UPSTREAMS[0], answers={"big.example.test": many}, truncate=True)
    resolver = ResolverProcess(host, resolver_config(tmp_path, upstreams=UPSTREAMS[0]), tmp_path)
    reply = host.dns_query(LISTEN, "big.example.test", tcp=True)
    assert sorted(rd.to_text() for rd in reply.answer[0]) == sorted(many)
    assert upstream.tcp_queries == 1
    # A UDP client without EDNS gets TC from us (the answer is in the cache now) and can retry over TCP.
    udp = host.dns_query(LISTEN, "big.example.test")
    assert udp.flags & dns.flags.TC
    assert resolver.stop() == 0


def test_edns_do_bit_goes_upstream_and_keys_the_cache(lab, tmp_path):
    host, servers = upstream_lab(lab)
    upstream = lab.fakedns(servers, UPSTREAMS[0], default_address="198.18.0.80")
    seen = []

    def record(query, peer):
        seen.append((query.edns, bool(query.ednsflags & dns.flags.DO)))
        reply = upstream.answer(query)
        reply.use_edns(0, query.ednsflags & dns.flags.DO, 1232)
        return reply

    upstream.handle = record
    resolver = ResolverProcess(host, resolver_config(tmp_path, upstreams=UPSTREAMS[0]), tmp_path)
    client = Client(host)
    plain, _ = client.ask("signed.example.test")
    assert plain.edns == -1  # no OPT asked, none given
    secure, _ = client.ask("signed.example.test", use_edns=0, want_dnssec=True)
    assert secure.edns == 0 and secure.ednsflags & dns.flags.DO
    again, _ = client.ask("signed.example.test", use_edns=0, want_dnssec=True)
    assert seen == [(0, False), (0, True)]  # DO=1 is its own cache entry; the repeat was a hit
    assert again.answer == secure.answer
    assert resolver.stop() == 0


def test_hosts_files_answer_locally_and_are_reread_when_changed(lab, tmp_path):
    host, servers = upstream_lab(lab)
    upstream = lab.fakedns(servers, UPSTREAMS[0], default_address="198.18.0.80")
    hosts = tmp_path / "hosts"
    hosts.write_text("198.18.0.5 nfs1.example.test nfs1\n")
    resolver = ResolverProcess(host, resolver_config(tmp_path, upstreams=UPSTREAMS[0], hosts_files=str(hosts)),
                               tmp_path)
    client = Client(host)
    reply, _ = client.ask("NFS1.example.test")
    assert [rd.to_text() for rd in reply.answer[0]] == ["198.18.0.5"]
    ptr, _ = client.ask("5.0.18.198.in-addr.arpa", "PTR")
    assert [rd.to_text() for rd in ptr.answer[0]] == ["nfs1.example.test."]
    assert client.ask("mail.example.test")[0].answer[0][0].to_text() == "198.18.0.80"  # not listed: forwarded
    assert "nfs1.example.test." not in upstream.qnames

    hosts.write_text("198.18.0.6 nfs1.example.test\n198.18.0.7 mail.example.test\n")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # bounded: the files are checked every second
        if client.ask("nfs1.example.test")[0].answer[0][0].to_text() == "198.18.0.6":
            break
        time.sleep(0.1)
    assert client.ask("nfs1.example.test")[0].answer[0][0].to_text() == "198.18.0.6"
    assert client.ask("mail.example.test")[0].answer[0][0].to_text() == "198.18.0.7"  # beats the cache
    assert resolver.stop() == 0


def test_clients_outside_allow_are_refused(lab, tmp_path):
    host, servers = upstream_lab(lab)
    lab.fakedns(servers, UPSTREAMS[0], default_address="198.18.0.80")
    resolver = ResolverProcess(host, resolver_config(tmp_path, upstreams=UPSTREAMS[0]), tmp_path)
    # servers (198.18.0.10) is not in the default allow list (loopback only)
    outsider = servers.dns_query(HOST, "www.example.test")
    assert outsider.rcode() == dns.rcode.REFUSED and not outsider.answer
    assert host.dns_query(LISTEN, "www.example.test").rcode() == dns.rcode.NOERROR  # from loopback
    status = resolver.status()
    assert resolver.stop() == 0
    assert status["refused"] == 1


def test_query_and_status_report_what_happened(lab, tmp_path):
    host, servers = upstream_lab(lab)
    lab.fakedns(servers, UPSTREAMS[0], default_address="198.18.0.80")
    resolver = ResolverProcess(host, resolver_config(tmp_path, upstreams=UPSTREAMS[0]), tmp_path)
    first = resolver.query("www.example.test")
    assert first["answered"] and first["rcode"] == "NOERROR"
    assert first["source"] == "upstream" and first["upstream"] == f"{UPSTREAMS[0]}:53"
    assert first["answers"] == ["www.example.test. 300 IN A 198.18.0.80"]
    assert first["ms"] >= 0
    second = resolver.query("www.example.test")
    assert second["source"] == "cache" and second["upstream"] is None

    status = resolver.status()
    assert status["listen"] == [f"{LISTEN}:53", f"{HOST}:53"]
    assert status["queries"] == 2
    assert status["cache"] == {"entries": 1, "hits": 1, "misses": 1, "stale_served": 0, "refreshes": 0,
                               "refreshes_skipped": 0}
    (upstream,) = status["upstreams"]
    assert upstream["address"] == f"{UPSTREAMS[0]}:53" and upstream["state"] == "up"
    assert upstream["queries"] == 1 and upstream["wins"] == 1 and upstream["timeouts"] == 0
    assert upstream["srtt_ms"] > 0
    assert resolver.stop() == 0


def test_upstreams_file_is_followed_when_it_changes(lab, tmp_path):
    host, servers = upstream_lab(lab)
    first = lab.fakedns(servers, UPSTREAMS[0], default_address="198.18.0.80")
    second = lab.fakedns(servers, UPSTREAMS[1], default_address="198.18.0.81")
    resolv = tmp_path / "upstream-resolv.conf"
    resolv.write_text(f"search example.test\nnameserver {UPSTREAMS[0]}\nnameserver {LISTEN}\n")  # ourselves: skipped
    conf = resolver_config(tmp_path, upstreams="", upstreams_file=str(resolv))
    resolver = ResolverProcess(host, conf, tmp_path)
    client = Client(host)
    assert client.ask("one.example.test")[0].answer[0][0].to_text() == "198.18.0.80"
    assert [u["address"] for u in resolver.status()["upstreams"]] == [f"{UPSTREAMS[0]}:53"]

    resolv.write_text(f"nameserver {UPSTREAMS[1]}\n")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # bounded: the file is checked every second
        if [u["address"] for u in resolver.status()["upstreams"]] == [f"{UPSTREAMS[1]}:53"]:
            break
        time.sleep(0.1)
    assert client.ask("two.example.test")[0].answer[0][0].to_text() == "198.18.0.81"
    assert "two.example.test." not in first.qnames and "two.example.test." in second.qnames
    assert resolver.stop() == 0


def test_the_upstreams_ad_bit_reaches_clients_only_with_trust_ad(lab, tmp_path):
    """bootres validates nothing: an upstream's AD bit (forgeable on a plain-UDP path) is cleared unless trusted."""
    host, servers = upstream_lab(lab)
    upstream = lab.fakedns(servers, UPSTREAMS[0], default_address="198.18.0.80")

    def authenticated(query, peer):
        reply = upstream.answer(query)
        reply.flags |= dns.flags.AD  # what a rogue or on-path server can say about a forged SSHFP
        return reply

    upstream.handle = authenticated
    for trust_ad, want in (("no", ""), ("yes", "ad")):
        resolver = ResolverProcess(host, resolver_config(tmp_path, upstreams=UPSTREAMS[0], trust_ad=trust_ad),
                                   tmp_path)
        for name in ("sshfp.example.test", "sshfp.example.test"):  # a miss, then a cache hit
            dig = host.run("dig", "+adflag", "+time=2", "+tries=1", f"@{LISTEN}", name, "A")
            flags = dig.stdout.split(";; flags:")[1].split(";")[0].split()
            assert ("ad" in flags) == (want == "ad"), dig.stdout
            assert "198.18.0.80" in dig.stdout
        assert resolver.stop() == 0
