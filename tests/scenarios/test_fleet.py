"""The fleet simulation of bench/fleet.py at 1,000 hosts: bootres is a better neighbour than glibc's stub.

Each host is the real resolver core on a virtual clock (no sockets), so this
runs in seconds; the 10,000-host figures are in docs/fleet.md.
"""

from bench.fleet import Scenario, simulate


def test_a_thousand_hosts_after_a_power_cut_load_their_nameservers_less_than_glibc_and_get_answers():
    results = simulate(Scenario(hosts=1000))
    bootres, race, glibc = results["bootres"], results["bootres-race"], results["glibc"]
    print("\n" + "; ".join(f"{label}: peak {r['peak_qps']} q/s, total {r['total_queries']}, "
                           f"recovery ≤100 ms {r['recovery_within_100ms']:.2%}" for label, r in results.items()))
    assert bootres["peak_qps"] <= glibc["peak_qps"] and bootres["total_queries"] <= glibc["total_queries"]
    assert bootres["total_queries"] < race["total_queries"]  # hedge: about one query per miss
    assert bootres["recovery_within_100ms"] >= 0.99
    assert bootres["lookups"] > 100_000  # a real workload: ~1 lookup a second per host for up to 2 minutes
