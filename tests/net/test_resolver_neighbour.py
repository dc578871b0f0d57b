"""A good neighbour (issue 23): what the shipped defaults send upstream, healthy, dead and back, counted on the wire.

Two nsd upstreams in their own namespace; every packet bootres sends them is
counted by an iptables rule in theirs that comes before the DROP which
black-holes them (so dropped queries count too).  bootres runs with the
shipped ``[resolver]`` defaults (``strategy``, ``timeout``,
``stale_answer_after``, ``hedge_delay``).  One client asks never-seen names:

1. 100 of them with both upstreams healthy: upstream queries per miss;
2. both black-holed for 20 s while the client asks 10 new names a second:
   the packets each dead upstream gets per second (RFC 9520's budget, not the
   client's demand, decides), and what the client gets (SERVFAIL at once
   once they are known down);
3. both back: how long until a new name is answered fresh.
"""

import time

import dns.rcode

from bootres import config
from resolver_harness import UPSTREAMS, Client, ResolverProcess, resolver_config, silence, upstream_lab

DEAD_SECONDS = 20
NAMES_PER_SECOND = 10
SHIPPED = {key: config.SCHEMA["resolver"][key].default
           for key in ("strategy", "timeout", "stale_answer_after", "hedge_delay")}


def count_packets(servers) -> None:
    for address in UPSTREAMS[:2]:
        servers.iptables("-I", "INPUT", "-d", address, "-p", "udp", "--dport", "53")  # no target: it counts


def packets(servers) -> dict[str, int]:
    """Packets each upstream address got so far, per the topmost counting rule (the newest)."""
    out = servers.iptables("-L", "INPUT", "-n", "-v", "-x").stdout
    counted = {}
    for line in out.splitlines():
        fields = line.split()  # pkts bytes [target] prot opt in out source destination udp dpt:53
        address = next((f for f in fields if f in UPSTREAMS[:2]), None)
        if address and "dpt:53" in fields and "DROP" not in fields and address not in counted:
            counted[address] = int(fields[0])
    return counted


def test_one_query_per_miss_a_dead_site_gets_a_budget_and_its_return_is_seen_within_3_s(lab, tmp_path):
    host, servers = upstream_lab(lab)
    for address in UPSTREAMS[:2]:
        lab.nsd(servers, address, rate_limit=False)
    resolver = ResolverProcess(host, resolver_config(tmp_path, **SHIPPED), tmp_path)
    client = Client(host)
    count_packets(servers)

    start = packets(servers)
    for i in range(100):
        assert client.ask(f"healthy{i}.example.test")[0].rcode() == dns.rcode.NOERROR
    healthy = packets(servers)
    per_miss = sum(healthy[a] - start[a] for a in UPSTREAMS[:2]) / 100

    for address in UPSTREAMS[:2]:
        silence(servers, address)
    count_packets(servers)  # new counting rules above the DROPs: what is dropped is counted first
    replies, slow = [], 0
    began = time.monotonic()
    for i in range(DEAD_SECONDS * NAMES_PER_SECOND):  # bounded: 200 names on a fixed pace
        time.sleep(max(0.0, began + i / NAMES_PER_SECOND - time.monotonic()))
        reply, ms = client.ask(f"dead{i}.example.test", timeout=5.0)
        replies.append(reply.rcode())
        slow += ms > 100
    dead_for = time.monotonic() - began
    dead = packets(servers)
    per_second = {a: dead[a] / dead_for for a in UPSTREAMS[:2]}

    for address in UPSTREAMS[:2]:
        silence(servers, address, on=False)
    back = time.monotonic()
    fresh_after = None
    for i in range(100):  # bounded: 10 s at 10 names a second
        time.sleep(max(0.0, back + i / NAMES_PER_SECOND - time.monotonic()))
        if client.ask(f"back{i}.example.test")[0].rcode() == dns.rcode.NOERROR:
            fresh_after = time.monotonic() - back
            break
    assert resolver.stop() == 0
    print(f"\nhealthy: {per_miss:.2f} upstream queries per miss; dead {dead_for:.1f} s: "
          + ", ".join(f"{a} {r:.2f} packets/s" for a, r in per_second.items())
          + f", {replies.count(dns.rcode.SERVFAIL)}/{len(replies)} SERVFAIL, {slow} over 100 ms; "
          f"back: a new name answered fresh after {fresh_after} s")
    assert per_miss <= 1.1
    assert all(rate <= 1.0 for rate in per_second.values()), per_second
    assert replies.count(dns.rcode.SERVFAIL) == len(replies)
    assert fresh_after is not None and fresh_after <= 3.0
