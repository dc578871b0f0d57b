"""prefetch: the refresh window, one refresh per name per batch, and the bounds on how many start."""

from bootres.core import prefetch
from bootres.core.hostsdb import local_answer
from bootres.core.prefetch import Prefetch


def cached(lifetime: float, stored_at: float = 0.0):
    answer = local_answer([(1, "198.18.0.80")], int(lifetime), 60)
    answer.lifetime, answer.stored_at, answer.expires_at = lifetime, stored_at, stored_at + lifetime
    return answer


def test_the_window_is_the_last_tenth_opened_a_little_early_and_off_means_expiry():
    answer = cached(300.0)
    assert Prefetch.refresh_at(answer, True) == 300.0 - 30.0 - prefetch.DELAY
    assert Prefetch.refresh_at(answer, False) == 300.0


def test_short_ttls_get_at_least_a_second_up_to_half_the_ttl():
    # TTL 4 s: the tenth (0.4 s) would hold no ask of a client asking once a second on most expiries.
    assert Prefetch.refresh_at(cached(4.0), True) == 4.0 - prefetch.MIN_WINDOW - prefetch.DELAY
    assert Prefetch.refresh_at(cached(10.0), True) == 10.0 - 1.0 - prefetch.DELAY  # the tenth is the second
    assert Prefetch.refresh_at(cached(1.0), True) == 1.0 - 0.5 - prefetch.DELAY  # never more than half


def test_a_name_is_due_once_per_batch_and_the_first_asks_for_the_wake_up():
    policy = Prefetch(rate=100)
    assert policy.want(b"a") is True
    assert policy.want(b"b") is False and policy.want(b"a") is False
    assert policy.take_due() == [b"a", b"b"] and policy.take_due() == []
    assert policy.want(b"a") is True  # a new batch


def test_the_rate_is_a_bucket_of_one_seconds_worth_and_misses_keep_half_of_max_inflight():
    policy = Prefetch(rate=2)
    assert [policy.admit(10.0, 2, 0, 100) for _ in range(3)] == [True, True, False]  # full at start
    assert policy.admit(10.5, 2, 0, 100) is True  # half a second: one more token
    assert policy.admit(20.0, 2, 50, 100) is False  # half of max_inflight in flight
    assert (policy.refreshes, policy.skipped) == (3, 2)
