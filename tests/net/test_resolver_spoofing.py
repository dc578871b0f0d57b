"""RFC 5452: a flood of forged or broken replies before the real one cannot win or end the wait."""

import dns.message
import dns.rrset

from fakedns import OtherPort, garbage_for
from resolver_harness import UPSTREAMS, Client, ResolverProcess, resolver_config, upstream_lab

REAL, FORGED = "198.18.0.80", "198.18.0.66"
EACH = 50


def forged_reply(query: dns.message.Message, address: str) -> dns.message.Message:
    reply = dns.message.make_response(query)
    reply.answer.append(dns.rrset.from_text(query.question[0].name, 300, "IN", "A", address))
    return reply


def flood_then_truth(query, peer):
    """Bad replies of every kind, then the real one, all to the same query."""
    wrong_id = forged_reply(query, FORGED)
    wrong_id.id = (query.id + 1) % 65536
    other_question = forged_reply(dns.message.make_query("evil.example.test", "A"), FORGED)
    other_question.id = query.id
    return (
        [wrong_id] * EACH
        + [OtherPort(forged_reply(query, FORGED))] * EACH  # right ID and question, wrong source port
        + [other_question] * EACH
        + [garbage_for(query.id)] * EACH
        + [forged_reply(query, REAL)]
    )


def test_the_real_reply_wins_after_a_flood_of_bad_ones(lab, tmp_path):
    host, servers = upstream_lab(lab)
    upstream = lab.fakedns(servers, UPSTREAMS[0])
    upstream.handle = flood_then_truth
    resolver = ResolverProcess(host, resolver_config(tmp_path, upstreams=UPSTREAMS[0]), tmp_path)
    client = Client(host)
    for i in range(5):
        reply, ms = client.ask(f"target{i}.example.test")
        assert [rd.to_text() for rrset in reply.answer for rd in rrset] == [REAL]
    status = resolver.status()
    assert resolver.stop() == 0
    # Wrong ID, wrong question and garbage reach us and are counted.  Datagrams
    # from the wrong port never do: the per-query socket is connected, so the
    # kernel drops them before bootres could count them.
    assert status["bad_replies"] == 5 * 3 * EACH
    assert status["upstreams"][0]["bad_replies"] == 5 * 3 * EACH
    assert status["upstreams"][0]["wins"] == 5


def test_ids_and_source_ports_differ_for_every_upstream_query(lab, tmp_path):
    host, servers = upstream_lab(lab)
    upstream = lab.fakedns(servers, UPSTREAMS[0], default_address=REAL)
    resolver = ResolverProcess(host, resolver_config(tmp_path, upstreams=UPSTREAMS[0]), tmp_path)
    client = Client(host)
    for i in range(100):
        client.ask(f"n{i}.example.test")
    assert resolver.stop() == 0
    received = [r for r in upstream.received if r.qname.startswith("n")]
    assert len(received) == 100
    assert len({r.peer[1] for r in received}) >= 95  # fresh random source port per query
    assert len({r.id for r in received}) >= 95  # random IDs (a few birthday collisions allowed)
