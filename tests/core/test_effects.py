"""effects: what cores emit is plain, immutable data, and its log levels are logging's own numbers."""

import dataclasses
import logging

import pytest

from bootres.core import effects


def test_levels_are_loggings():
    # The driver hands ``Log.level`` to the logger as it is.
    assert (effects.INFO, effects.WARNING) == (logging.INFO, logging.WARNING)


@pytest.mark.parametrize("kind, fields", [
    (effects.Respond, ("c", b"\x00", "cache")),
    (effects.SendUpstream, (1, ("198.18.0.10", 53), b"\x00")),
    (effects.CloseUpstream, (1,)),
    (effects.Log, (effects.INFO, "said once")),
])
def test_effects_cannot_be_changed_once_emitted(kind, fields):
    effect = kind(*fields)
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(effect, dataclasses.fields(kind)[0].name, None)
    assert effect == kind(*fields)  # tests compare what a core emitted by value
