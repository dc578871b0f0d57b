"""The states of a question in flight: the table, and nothing outside it."""

from __future__ import annotations

import itertools

import pytest

from bootres.core import pending
from bootres.core.pending import (
    ASKING,
    SETTLE,
    SETTLED,
    STALE_ARMED,
    STALE_DUE,
    STALE_EXPIRED,
    STALE_SENT,
    STALE_SERVED,
    BadTransition,
    Pending,
)

STATES = (ASKING, STALE_DUE, STALE_SENT, SETTLED)
EVENTS = (STALE_ARMED, STALE_SERVED, STALE_EXPIRED, SETTLE)


def in_state(state: str) -> Pending:
    """A Pending brought to ``state`` through the table itself."""
    path = {ASKING: (ASKING, ()), STALE_DUE: (ASKING, (STALE_ARMED,)), STALE_SENT: (STALE_SENT, ()),
            SETTLED: (ASKING, (SETTLE,))}
    start, events = path[state]
    item = Pending(b"key", race=None, group=None, state=start)
    for event in events:
        item.fire(event, 10.0)
    assert item.state == state
    return item


@pytest.mark.parametrize("state, event", list(itertools.product(STATES, EVENTS)))
def test_every_event_in_every_state_is_the_tables_or_refused(state, event):
    item = in_state(state)
    expected = pending.TRANSITIONS.get((state, event))
    if expected is None:
        with pytest.raises(BadTransition, match=f"'{event}' while '{state}'"):
            item.fire(event)
        assert item.state == state  # a refused event changes nothing
    else:
        item.fire(event, 12.5)
        assert item.state == expected
        assert item.stale_at == (12.5 if expected == STALE_DUE else None)


def test_the_stale_answer_goes_out_once_and_every_state_ends_settled():
    item = in_state(STALE_DUE)
    item.fire(STALE_SERVED)
    with pytest.raises(BadTransition):
        item.fire(STALE_ARMED, 20.0)  # later askers get it at once: nothing to arm
    for state in (ASKING, STALE_DUE, STALE_SENT):
        done = in_state(state)
        done.fire(SETTLE)
        assert done.state == SETTLED
    assert not any(key[0] == SETTLED for key in pending.TRANSITIONS)  # the end: nothing leaves it


def test_a_question_starts_asking_or_with_the_stale_answer_sent():
    assert Pending(b"k", None, None).state == ASKING
    assert Pending(b"k", None, None, STALE_SENT).state == STALE_SENT
    for state in (STALE_DUE, SETTLED):
        with pytest.raises(BadTransition):
            Pending(b"k", None, None, state)
