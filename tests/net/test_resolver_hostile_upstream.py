"""A hostile upstream over the wire (issue 10): nothing malformed is served or cached, and bootres lives on.

bootres (``python -m bootres run``) in the lab's ``host``
namespace asks one upstream, ``hostile_server.py``, which answers with
mutated and crafted replies (and sometimes the honest one after them).
Clients ask never-seen names in batches; after each batch a probe under
``good.test`` (always answered honestly) must come back right within 100 ms.
Then bootres is restarted with no upstream at all, so everything it saved in
``cache_file`` is served stale: every one of those replies must parse too.

CI runs ``HOSTILE_QUERIES`` (default 4,000) questions; the campaign of the
issue's must-show is the same test with ``BOOTRES_HOSTILE_QUERIES=100000``
(docs/fuzzing.md records it).
"""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

import dns.exception
import dns.message
import dns.rcode

from resolver_harness import LISTEN, UPSTREAMS, ResolverProcess, resolver_config, upstream_lab

HOSTILE_QUERIES = int(os.environ.get("BOOTRES_HOSTILE_QUERIES", "4000"))
BATCH = 250
SERVER = Path(__file__).with_name("hostile_server.py")


def ask_batch(sock: socket.socket, names: list[str], wait: float) -> tuple[list[bytes], int]:
    """Send every name at once; the raw replies, and how many never came within ``wait``."""
    ids = {}
    for n, name in enumerate(names):
        query = dns.message.make_query(name, "A")
        query.id = n
        ids[n] = name
        sock.send(query.to_wire())
    replies, deadline = [], time.monotonic() + wait
    while ids and time.monotonic() < deadline:  # bounded by wait
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            data = sock.recv(65535)
        except socket.timeout:
            break
        if len(data) >= 2 and int.from_bytes(data[:2], "big") in ids:
            del ids[int.from_bytes(data[:2], "big")]
            replies.append(data)
    return replies, len(ids)


def unparseable(replies: list[bytes]) -> list[str]:
    bad = []
    for data in replies:
        try:
            dns.message.from_wire(data)
        except dns.exception.DNSException as exc:
            bad.append(f"{data.hex()}: {exc!r}")
    return bad


def probe(sock: socket.socket, n: int) -> float:
    """A valid question bootres has not seen, answered honestly upstream: right answer, in ms."""
    query = dns.message.make_query(f"probe-{n}.good.test", "A")
    started = time.perf_counter()
    sock.send(query.to_wire())
    sock.settimeout(1.0)
    while True:  # bounded by the timeout: stale batch replies may still come in first
        data = sock.recv(65535)
        if data[:2] == query.to_wire()[:2]:
            break
    ms = (time.perf_counter() - started) * 1000
    reply = dns.message.from_wire(data)
    assert reply.rcode() == dns.rcode.NOERROR and reply.answer[0][0].to_text() == "198.18.99.1", reply
    return ms


def test_hostile_upstream_nothing_malformed_served_or_cached(lab, tmp_path):
    host, servers = upstream_lab(lab)
    hostile = servers.popen(sys.executable, str(SERVER), UPSTREAMS[0], "1")
    deadline = time.monotonic() + 10
    while "ready" not in hostile.log_path.read_text():  # bounded: it binds at once
        assert hostile.poll() is None and time.monotonic() < deadline, hostile.log_path.read_text()
        time.sleep(0.02)
    cache_file = tmp_path / "cache.db"
    conf = resolver_config(tmp_path, upstreams=UPSTREAMS[0], cache_file=str(cache_file), cache_size=str(HOSTILE_QUERIES),
                           timeout="1s", stale_answer_after="300ms")
    resolver = ResolverProcess(host, conf, tmp_path)
    sock = host.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    sock.connect((LISTEN, 53))

    bad, lost, probes, asked = [], 0, [], 0
    started = time.monotonic()
    for batch in range(HOSTILE_QUERIES // BATCH):
        names = [f"h{batch}-{i}.example.test" for i in range(BATCH)]
        replies, missing = ask_batch(sock, names, wait=3.0)
        asked += len(names)
        lost += missing
        bad += unparseable(replies)
        probes.append(probe(sock, batch))
    elapsed = time.monotonic() - started
    status = resolver.status()
    assert resolver.stop() == 0  # saves the cache; no traceback in the log (checked by stop)
    log = resolver.log()

    # Restart with no upstream: everything in the saved cache is served stale.
    stale_conf = resolver_config(tmp_path, upstreams="", upstreams_file="", cache_file=str(cache_file),
                                 cache_size=str(HOSTILE_QUERIES))
    restarted = ResolverProcess(host, stale_conf, tmp_path)
    entries = restarted.status()["cache"]["entries"]
    stale_bad, stale_served = [], 0
    for batch in range(HOSTILE_QUERIES // BATCH):
        replies, _ = ask_batch(sock, [f"h{batch}-{i}.example.test" for i in range(BATCH)], wait=3.0)
        stale_bad += unparseable(replies)
        stale_served += sum(1 for data in replies if data[3] & 0x0F == 0)
    assert restarted.stop() == 0

    print(f"\n{asked} hostile questions in {elapsed:.1f} s: {len(bad)} unparseable replies, {lost} unanswered, "
          f"{status['bad_replies']} bad upstream replies dropped, internal errors {status['internal_errors']}; "
          f"probes max {max(probes):.1f} ms; restart: {entries} cached answers loaded, {stale_served} served stale, "
          f"{len(stale_bad)} unparseable")
    assert not bad, bad[:5]
    assert not stale_bad, stale_bad[:5]
    assert max(probes) <= 100.0
    assert status["internal_errors"] == 0 and "internal error" not in log
    assert lost == 0
