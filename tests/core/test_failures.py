"""failures: a name that got no answer is not asked again for a second; the upstreams' own errors back off."""

from bootres.core import failures
from bootres.core.failures import Failures


def test_no_answer_is_remembered_for_one_second():
    seen = Failures()
    seen.failed(b"k", "timeout", 10.0, upstreams_said=False)
    assert seen.reason(b"k", 10.5) == "timeout"
    assert seen.reason(b"k", 10.0 + failures.FIRST) is None
    seen.failed(b"k", "timeout", 11.0, upstreams_said=False)  # nothing answered again: still one second
    assert seen.reason(b"k", 11.9) == "timeout" and seen.reason(b"k", 12.0) is None


def test_the_upstreams_own_error_doubles_up_to_five_minutes_and_an_answer_ends_it():
    seen = Failures()
    now, kept = 0.0, []
    for _ in range(12):  # bounded: asked again the moment it may be
        seen.failed(b"k", "every upstream answered SERVFAIL", now, upstreams_said=True)
        later = now
        while seen.reason(b"k", later) is not None:  # bounded: by LONGEST
            later += 0.5
        kept.append(later - now)
        now = later
    assert kept[:4] == [1.0, 2.0, 4.0, 8.0] and kept[-1] == failures.LONGEST
    seen.answered(b"k")
    seen.failed(b"k", "every upstream answered SERVFAIL", now, upstreams_said=True)
    assert seen.reason(b"k", now + 1.0) is None  # a fresh start after an answer


def test_a_failure_long_after_the_last_starts_over():
    seen = Failures()
    seen.failed(b"k", "every upstream answered SERVFAIL", 0.0, upstreams_said=True)
    seen.failed(b"k", "every upstream answered SERVFAIL", 1.0, upstreams_said=True)  # 2 s
    seen.failed(b"k", "every upstream answered SERVFAIL", 100.0, upstreams_said=True)
    assert seen.reason(b"k", 100.9) is not None and seen.reason(b"k", 101.0) is None


def test_a_network_change_forgets_what_nothing_answered_but_not_what_the_upstreams_said():
    seen = Failures()
    seen.failed(b"lost", "all upstreams down", 0.0, upstreams_said=False)
    seen.failed(b"broken", "every upstream answered SERVFAIL", 0.0, upstreams_said=True)
    seen.forget_unanswered()
    assert seen.reason(b"lost", 0.5) is None and seen.reason(b"broken", 0.5) is not None


def test_the_number_of_names_is_bounded_oldest_failure_first():
    seen = Failures(max_names=2)
    for i, key in enumerate((b"a", b"b", b"c")):
        seen.failed(key, "timeout", float(i), upstreams_said=False)
    assert len(seen) == 2 and seen.reason(b"a", 2.0) is None and seen.reason(b"c", 2.0) == "timeout"
