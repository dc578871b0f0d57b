"""A stop answers everyone (issue 24): SIGTERM with 300 misses waiting on silent nameservers.

bootres in a lab namespace with both nsd upstreams black-holed after 50
names were cached with TTL 1 (expired by the time they are asked again).
300 questions (the 50 expired, 250 never seen) are sent at once and SIGTERM
follows 50 ms later: before the first retransmission (MIN_RTO, 200 ms), so
no upstream is known down yet and every question is waiting.  Each client
gets a reply: the expired names their stale answer, the others SERVFAIL.
"""

import socket
import time

import dns.message
import dns.rcode

from resolver_harness import LISTEN, UPSTREAMS, ResolverProcess, resolver_config, silence, upstream_lab


def test_sigterm_with_300_misses_waiting_answers_all_300(lab, tmp_path):
    host, servers = upstream_lab(lab)
    for address in UPSTREAMS[:2]:
        lab.nsd(servers, address, ttl=1, rate_limit=False)
    resolver = ResolverProcess(host, resolver_config(tmp_path, timeout="10s", stale_answer_after="9s"), tmp_path)
    sock = host.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)  # 300 replies at once: the default holds ~256
    sock.connect((LISTEN, 53))
    sock.settimeout(3)
    for i in range(50):
        sock.send(dns.message.make_query(f"old{i}.example.test", "A", id=i).to_wire())
        assert dns.message.from_wire(sock.recv(4096)).rcode() == dns.rcode.NOERROR
    for address in UPSTREAMS[:2]:
        silence(servers, address)
    time.sleep(1.2)  # the 50 answers expire

    names = [f"old{i}.example.test" for i in range(50)] + [f"new{i}.example.test" for i in range(250)]
    wires = [dns.message.make_query(name, "A", id=qid).to_wire() for qid, name in enumerate(names, start=1000)]
    for wire in wires:
        sock.send(wire)
    time.sleep(0.05)
    resolver.proc.terminate()
    stopped = time.monotonic()
    sock.settimeout(3)
    replies = {}
    while len(replies) < len(names):  # bounded by the socket timeout
        try:
            reply = dns.message.from_wire(sock.recv(4096))
        except (TimeoutError, socket.timeout):
            break
        replies[names[reply.id - 1000]] = reply
    took = time.monotonic() - stopped
    assert resolver.proc.wait(10) == 0
    log = resolver.log()
    stale = sum(r.rcode() == dns.rcode.NOERROR and r.answer[0].ttl == 30 for n, r in replies.items() if "old" in n)
    failed = sum(r.rcode() == dns.rcode.SERVFAIL for n, r in replies.items() if "new" in n)
    print(f"\nSIGTERM with 300 waiting: {len(replies)} replies within {took:.2f} s ({stale} stale, {failed} SERVFAIL)")
    assert len(replies) == 300 and stale == 50 and failed == 250
    assert "stopping: 300 clients still waiting answered (stale or SERVFAIL)" in log, log  # none answered before
