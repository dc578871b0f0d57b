"""TCP abuse (issue 10, RFC 7766 sections 6.2 and 10): honest clients are still answered, memory stays put.

The real service (``python -m bootres run``, shipped TCP
defaults) runs in a namespace with nsd upstream.  An abuser process of its
own in the same namespace (it raises its own descriptor limit) starts four
pipelining clients that send 5,000 queries each for a ~53 KB cached answer
and never read, reconnecting when dropped; for TRICKLE_AFTER seconds they
are alone, so only backpressure bounds what they cost.  Then 1,000
connections join that trickle 2-byte messages, each reconnecting a second
after the resolver drops it.  Meanwhile the test asks over TCP (a new
connection per query, timed from connect to the whole reply) and over UDP,
and samples the resolver's VmRSS.  Before the fix every honest TCP query
was refused once the tricklers came, and VmRSS grew by about 1 GB.
"""

from __future__ import annotations

import json
import re
import socket
import struct
import sys
import time
from pathlib import Path

import dns.message
import dns.query
import dns.rdatatype

from resolver_harness import LISTEN, UPSTREAMS, Client, ResolverProcess, resolver_config, upstream_lab

BIG = "big.example.test"
BIG_RECORDS = 200  # TXT records of one 255-byte string each: a ~53 KB answer
HONEST = "honest.example.test"
TRICKLERS = 1000
PIPELINERS = 4
PIPELINED_QUERIES = 5000
ABUSE_SECONDS = 12.0
TRICKLE_AFTER = 3.0  # the pipeliners alone first: nothing evicts them, only backpressure bounds them

# The abuser: plain sockets and one selector, bounded by its own deadline.
# It prints "started" once the pipeliners are connecting, and at the end one
# JSON line of what it did.
_ABUSER = r"""
import heapq, itertools, json, resource, selectors, socket, struct, sys, time
args = json.loads(sys.argv[1])
server = (args["server"], 53)
query = bytes.fromhex(args["query"])
blob = b"".join(struct.pack(">HH", len(query), i) + query[2:] for i in range(args["queries"]))
query_size = 2 + len(query)
needed = args["tricklers"] + args["pipeliners"] + 64
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if soft < needed:
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))
TINY = b"\x00\x02\x00\x00"  # a whole 2-byte message: not even a DNS header
stats = dict(trickle_connects=0, trickle_dropped=0, tiny_messages=0,
             pipeline_connects=0, pipeline_dropped=0, pipelined_queries=0)
sel = selectors.DefaultSelector()
due, order = [], itertools.count()  # (when, n, slot, socket or None): a trickler's next send or reconnect
trickle = [None] * args["tricklers"]

def connect():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    sock.connect_ex(server)
    return sock

def open_trickler(slot, now):
    sock = trickle[slot] = connect()
    sel.register(sock, selectors.EVENT_READ, slot)
    stats["trickle_connects"] += 1
    heapq.heappush(due, (now + 0.02 + (slot % 10) / 100, next(order), slot, sock))  # then every second

def drop_trickler(slot, now):
    sel.unregister(trickle[slot])
    trickle[slot].close()
    trickle[slot] = None
    stats["trickle_dropped"] += 1
    heapq.heappush(due, (now + 1.0, next(order), slot, None))

pipes = []  # [sock, bytes sent]

def open_pipeliner():
    sock = connect()
    stats["pipeline_connects"] += 1
    return [sock, 0]

start = time.monotonic()
pipes = [open_pipeliner() for _ in range(args["pipeliners"])]
print("started", flush=True)
trickle_at, deadline = start + args["trickle_after"], start + args["seconds"]
while time.monotonic() < deadline:
    if trickle_at is not None and time.monotonic() >= trickle_at:
        trickle_at = None
        for slot in range(len(trickle)):
            open_trickler(slot, time.monotonic())
    for key, _ in sel.select(0.01):
        try:
            gone = not key.fileobj.recv(4096)
        except BlockingIOError:
            gone = False
        except OSError:
            gone = True
        if gone:
            drop_trickler(key.data, time.monotonic())
    now = time.monotonic()
    while due and due[0][0] <= now:
        _, _, slot, sock = heapq.heappop(due)
        if sock is not trickle[slot]:
            continue  # a send for a connection since dropped
        if sock is None:
            open_trickler(slot, now)
            continue
        try:
            trickle[slot].send(TINY)
            stats["tiny_messages"] += 1
        except BlockingIOError:
            pass  # still connecting
        except OSError:
            drop_trickler(slot, now)
            continue
        heapq.heappush(due, (now + 1.0, next(order), slot, sock))
    for pipe in pipes:
        sock, sent = pipe
        state = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]
        if state not in (1, 2):  # neither ESTABLISHED nor SYN_SENT: the resolver dropped it
            sock.close()
            stats["pipeline_dropped"] += 1
            pipe[:] = open_pipeliner()
            continue
        if sent < len(blob):
            try:
                pipe[1] += sock.send(blob[sent:sent + 65536])
            except (BlockingIOError, OSError):
                pass
            stats["pipelined_queries"] += pipe[1] // query_size - sent // query_size
print(json.dumps(stats), flush=True)
"""


def vm_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.M).group(1)) / 1024


def summary(ms: list[float]) -> str:
    if not ms:
        return "0 answered"
    return f"{len(ms)} answered, median {sorted(ms)[len(ms) // 2]:.2f} ms, max {max(ms):.1f} ms"


def tcp_ask(ns, name: str, qid: int) -> float:
    """Milliseconds from connect to the whole reply, on a new connection."""
    query = dns.message.make_query(name, "A")
    query.id = qid
    wire = query.to_wire()
    sock = ns.call(socket.socket, socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.settimeout(3.0)
        started = time.perf_counter()
        sock.connect((LISTEN, 53))
        sock.sendall(struct.pack(">H", len(wire)) + wire)
        data = b""
        while len(data) < 2 or len(data) < 2 + struct.unpack(">H", data[:2])[0]:  # bounded by the timeout
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionResetError("the resolver closed an honest connection")
            data += chunk
        ms = (time.perf_counter() - started) * 1000
    finally:
        sock.close()
    reply = dns.message.from_wire(data[2:])
    assert query.is_response(reply) and reply.rcode() == 0 and reply.answer, reply
    return ms


def test_tricklers_and_a_pipeliner_that_never_reads_do_not_starve_honest_clients(lab, tmp_path):
    host, servers = upstream_lab(lab)
    txt = "".join(f'big IN TXT "{i:03d}{"x" * 252}"\n' for i in range(BIG_RECORDS))
    lab.nsd(servers, UPSTREAMS[0], extra=txt, rate_limit=False)
    resolver = ResolverProcess(host, resolver_config(tmp_path, upstreams=UPSTREAMS[0]), tmp_path)
    pid = resolver.proc.pid
    assert b"-m\x00bootres\x00run\x00" in Path(f"/proc/{pid}/cmdline").read_bytes()  # ip netns exec execs

    big = dns.message.make_query(BIG, "TXT")  # no EDNS: the whole answer comes over TCP
    with host.call(socket.socket, socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect((LISTEN, 53))
        answer = dns.query.tcp(big, LISTEN, 5, sock=sock)
    size = len(answer.to_wire())
    assert answer.answer[0].rdtype == dns.rdatatype.TXT and size > 50_000
    udp = Client(host)
    udp.ask(HONEST)
    tcp_ask(host, HONEST, 1)
    time.sleep(0.5)
    before = vm_rss_mb(pid)

    args = {"server": LISTEN, "tricklers": TRICKLERS, "pipeliners": PIPELINERS, "seconds": ABUSE_SECONDS,
            "trickle_after": TRICKLE_AFTER,
            "query": big.to_wire().hex(), "queries": PIPELINED_QUERIES}
    abuser = host.popen(sys.executable, "-c", _ABUSER, json.dumps(args))
    deadline = time.monotonic() + 10
    while "started" not in abuser.log_path.read_text():  # bounded: 10 s
        assert abuser.poll() is None and time.monotonic() < deadline, abuser.log_path.read_text()
        time.sleep(0.01)

    tcp_ms, tcp_failed, udp_ms, rss = [], [], [], [before]
    started = time.monotonic()
    for i in range(1000):  # bounded in count and by the abuse's own length
        if abuser.poll() is not None or time.monotonic() - started > ABUSE_SECONDS - 0.5:
            break
        try:
            tcp_ms.append(tcp_ask(host, HONEST, 1000 + i))
        except OSError as exc:  # dropped before its answer: reported with the figures below
            tcp_failed.append(f"{time.monotonic() - started:.2f} s: {exc}")
        for _ in range(3):
            udp_ms.append(udp.ask(HONEST)[1])
        rss.append(vm_rss_mb(pid))
        time.sleep(0.05)
    abuser.wait(ABUSE_SECONDS + 10)
    stats = json.loads(abuser.log_path.read_text().splitlines()[-1])
    tcp = resolver.status()["tcp"]
    peak = max(rss)

    print(f"\nbig answer {size} bytes; abuser: {stats}")
    print(f"resolver tcp: {tcp}")
    print(f"honest TCP (new connection each): {summary(tcp_ms)}; failed: {len(tcp_failed)} {tcp_failed[:5]}")
    print(f"honest UDP: {summary(udp_ms)}")
    print(f"VmRSS: {before:.1f} MB before, peak {peak:.1f} MB during (+{peak - before:.1f} MB), "
          f"{rss[-1]:.1f} MB at the end")

    # The abuse happened as described...
    assert stats["trickle_connects"] >= TRICKLERS and stats["tiny_messages"] >= TRICKLERS
    assert stats["pipelined_queries"] >= PIPELINED_QUERIES
    assert tcp["evicted"] > 0 and tcp["backpressured"] > 0
    # ...and the honest clients did not notice much.
    assert not tcp_failed and len(tcp_ms) >= 20 and max(tcp_ms) < 1000
    assert max(udp_ms) < 50
    assert peak - before < 50
    assert resolver.alive()
    assert resolver.stop() == 0
