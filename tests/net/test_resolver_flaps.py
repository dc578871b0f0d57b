"""Health counts only what it saw (issue 24): a nameserver killed and restarted six times under 500 queries a second.

bootres with one upstream, Debian's nsd, killed (SIGTERM: its port closes,
and the kernel rate-limits the ICMP errors, so most queries sent meanwhile
simply time out) and started again six times, 1.5 s down and 3 s up, while
``dns_flood.py`` asks 500 never-seen names a second.  What an operator
sees: at most one "down" and one "up again" line per outage (queries sent
while it was dead that time out after it answers again no longer count),
and fresh answers within 3 s of each return.  ``-s`` prints the figures.
"""

import json
import sys
import time
from pathlib import Path

from resolver_harness import LISTEN, UPSTREAMS, ResolverProcess, resolver_config, upstream_lab

FLOOD = Path(__file__).with_name("dns_flood.py")
OUTAGES, DOWN_S, UP_S, RATE = 6, 1.5, 3.0, 500


def test_six_outages_under_load_log_one_down_up_pair_each_and_fresh_answers_follow_within_3_s(lab, tmp_path):
    host, servers = upstream_lab(lab)
    server = lab.nsd(servers, UPSTREAMS[0], rate_limit=False)
    resolver = ResolverProcess(host, resolver_config(tmp_path, upstreams=UPSTREAMS[0]), tmp_path)
    seconds = 1.0 + OUTAGES * (DOWN_S + UP_S)
    log = tmp_path / "queries.log"
    flood = host.popen(sys.executable, str(FLOOD), LISTEN, str(int(seconds * RATE)), "1000", "flap", str(RATE),
                       str(log))
    returns = []
    time.sleep(1.0)
    for _ in range(OUTAGES):
        server.stop()
        time.sleep(DOWN_S)
        server = lab.nsd(servers, UPSTREAMS[0], rate_limit=False)
        returns.append(time.monotonic())
        time.sleep(max(0.0, returns[-1] + UP_S - time.monotonic()))
    flood.wait(30)
    result = json.loads(flood.log_path.read_text().splitlines()[-1])
    lines = resolver.log().splitlines()
    assert resolver.stop() == 0

    queries = sorted((float(at), int(rcode)) for at, rcode, _ in (line.split() for line in log.read_text().splitlines()))
    fresh_after = []
    for back in returns:
        first = next((at for at, rcode in queries if at >= back and rcode == 0), None)
        fresh_after.append(None if first is None else round(first - back, 2))
    label = f"upstream {UPSTREAMS[0]}:53"
    down = [line for line in lines if f"{label} is down" in line]
    up = [line for line in lines if f"{label} is up again" in line]
    print(f"\n{OUTAGES} outages under {RATE} q/s: {result['answered']} answered ({result['noerror']} NOERROR, "
          f"{result['servfail']} SERVFAIL), {result['lost']} lost; {len(down)} down and {len(up)} up lines; "
          f"fresh answers after each return: {fresh_after} s")
    assert result["lost"] == 0 and result["answered"] == result["sent"]
    assert 1 <= len(down) <= OUTAGES and len(up) <= OUTAGES, down + up
    assert all(after is not None and after <= 3.0 for after in fresh_after), fresh_after
