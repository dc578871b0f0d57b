"""Never-seen names, a fixed number outstanding: ``python dns_flood.py SERVER COUNT OUTSTANDING PREFIX [RATE LOG]``.

Run as a process of its own inside a lab namespace, so its CPU is not the
measuring client's.  Bytes only: each query is a fixed header, the name
``PREFIX-N.example.test`` and type A; a reply is matched by its ID and
question.  A query unanswered after ``LOST_AFTER`` seconds is lost (never
sent again).  RATE (queries a second, 0: as fast as the replies allow)
paces the sending; LOG, a path, gets one line per query: when it was sent
(time.monotonic(), the same clock in every process), its RCODE (-1: lost)
and its latency in ms.  Prints one JSON line: answered, lost, SERVFAIL,
latency percentiles (ms), seconds taken.
"""

import json
import select
import socket
import statistics
import struct
import sys
import time

LOST_AFTER = 5.0
DEADLINE = 120.0  # the whole run, whatever happens


def question(prefix: str, n: int) -> bytes:
    wire = b"".join(bytes([len(label)]) + label.encode() for label in (f"{prefix}-{n}", "example", "test"))
    return wire + b"\x00\x00\x01\x00\x01"


def main() -> None:
    server, count, outstanding, prefix = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    rate = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0
    log = open(sys.argv[6], "w") if len(sys.argv) > 6 else None
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.connect((server, 53))
    sock.setblocking(False)
    waiting: dict[int, tuple[int, float]] = {}  # ID -> (n, sent at)
    free_ids = list(range(65536))
    latencies, rcodes, lost = [], {}, 0
    sent = 0
    started = time.monotonic()
    while (sent < count or waiting) and time.monotonic() - started < DEADLINE:
        while sent < count and len(waiting) < outstanding and (not rate or sent < (time.monotonic() - started) * rate):
            qid = free_ids.pop()
            try:
                sock.send(struct.pack(">6H", qid, 0x0100, 1, 0, 0, 0) + question(prefix, sent))
            except BlockingIOError:
                free_ids.append(qid)
                break
            waiting[qid] = (sent, time.monotonic())
            sent += 1
        select.select([sock], [], [], 0.002 if rate else 0.05)
        now = time.monotonic()
        while True:
            try:
                data = sock.recv(4096)
            except BlockingIOError:
                break
            qid = int.from_bytes(data[:2], "big")
            entry = waiting.get(qid)
            if entry is None or data[12:12 + len(question(prefix, entry[0]))] != question(prefix, entry[0]):
                continue
            del waiting[qid]
            free_ids.append(qid)
            latencies.append((now - entry[1]) * 1000)
            rcodes[data[3] & 0x0F] = rcodes.get(data[3] & 0x0F, 0) + 1
            if log:
                log.write(f"{entry[1]:.6f} {data[3] & 0x0F} {latencies[-1]:.3f}\n")
        for qid, (_, at) in list(waiting.items()):
            if now - at > LOST_AFTER:
                del waiting[qid]
                free_ids.append(qid)
                lost += 1
                if log:
                    log.write(f"{at:.6f} -1 -1\n")
    lost += len(waiting)
    if log:
        log.close()
    latencies.sort()
    pick = (lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]) if latencies else (lambda q: None)
    print(json.dumps({"sent": sent, "answered": len(latencies), "lost": lost, "servfail": rcodes.get(2, 0),
                      "noerror": rcodes.get(0, 0), "p50_ms": pick(0.5), "p99_ms": pick(0.99),
                      "max_ms": latencies[-1] if latencies else None,
                      "mean_ms": statistics.fmean(latencies) if latencies else None,
                      "seconds": time.monotonic() - started}), flush=True)


if __name__ == "__main__":
    main()
