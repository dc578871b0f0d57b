"""dnswire: the ``Answer`` a reply becomes, its shared layouts, and names in wire form."""

import pytest

from bootres.core import dnswire
from bootres.core.hostsdb import local_answer


def ttls_of(answer: dnswire.Answer, body: bytes) -> list[int]:
    return [dnswire.TTL.unpack_from(body, offset)[0] for offset in answer.ttl_offsets]


def test_ages_lower_every_ttl_and_stop_at_zero():
    answer = local_answer([(dnswire.A, "198.18.0.1"), (dnswire.A, "198.18.0.2")], 300, 60)
    assert answer.ttls == (300, 300)
    assert ttls_of(answer, answer.body_at(0)) == [300, 300]
    assert ttls_of(answer, answer.body_at(299)) == [1, 1]
    assert ttls_of(answer, answer.body_at(301)) == [0, 0]
    assert ttls_of(answer, answer.body_stale()) == [dnswire.STALE_TTL] * 2
    assert answer.body_at(5)[:6] == answer.body[:6]  # only the TTLs change


def test_answers_of_one_shape_share_one_layout():
    one = local_answer([(dnswire.A, "198.18.0.1")], 300, 60)
    other = local_answer([(dnswire.A, "198.18.0.99")], 60, 60)
    assert one.layout is other.layout
    assert local_answer([(dnswire.AAAA, "2001:db8::1")], 300, 60).layout is one.layout  # same shape, other type
    assert local_answer([], 300, 60).layout is not one.layout  # NODATA: an SOA in the authority section


def test_rare_shapes_beyond_the_limit_get_a_layout_of_their_own(monkeypatch):
    monkeypatch.setattr(dnswire, "_layouts", {})
    for offset in range(dnswire._LAYOUTS_MAX):
        dnswire.shared_layout(0, False, 1, 0, 0, (offset,))
    rare = (0, False, 1, 0, 0, (10_000,))
    assert dnswire.shared_layout(*rare) is not dnswire.shared_layout(*rare)
    assert len(dnswire._layouts) == dnswire._LAYOUTS_MAX


@pytest.mark.parametrize("text, wire", [
    ("www.Example.TEST", b"\x03www\x07example\x04test\x00"),
    ("example.test.", b"\x07example\x04test\x00"),
    (".", b"\x00"),
])
def test_names_in_wire_form_are_lower_case(text, wire):
    assert dnswire.wire_name(text) == wire


@pytest.mark.parametrize("text", ["a..b", "x" * 64 + ".test", ".".join(["x" * 63] * 4) + ".test"])
def test_names_that_cannot_be_are_refused(text):
    with pytest.raises(ValueError):
        dnswire.wire_name(text)
