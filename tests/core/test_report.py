"""The status model's JSON: the same keys, types and nesting as docs/spec.md, read back strictly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bootres.core import report
from bootres.core.report import Report, from_json, to_json

SPEC = Path(__file__).resolve().parents[2] / "docs" / "spec.md"


def spec_example() -> dict:
    """The JSON object the spec shows after "`bootres status --json` prints one JSON object"."""
    text = SPEC.read_text()
    after = text[text.index("`bootres status --json` prints one JSON object"):]
    return json.loads(after.split("```")[1])


def test_the_spec_example_is_the_model_key_for_key():
    # Every documented key is a field of the right type (from_json), and every
    # field is documented: the round trip would add a missing one.
    example = spec_example()
    assert to_json(from_json(Report, example)) == example


def test_a_record_cannot_be_changed_in_place():
    entry = report.ErrorEntry("2026-12-07T00:00:00+00:00", "x")
    with pytest.raises(AttributeError):
        entry.message = "y"
    assert report.RouterStatus().dropped == {}
    with pytest.raises(TypeError):  # the shared default of every RouterStatus
        report.RouterStatus().dropped["x"] = 1


@pytest.mark.parametrize("change, message", [
    (lambda r: r.pop("pid"), "status.pid: missing"),
    (lambda r: r.update(pid="1234"), "status.pid: int expected, not str"),
    (lambda r: r.update(pid=True), "status.pid: int expected, not bool"),
    (lambda r: r["resolver"].update(upstreams={}), "status.resolver.upstreams: a list expected, not dict"),
    (lambda r: r["resolver"]["upstreams"][0].update(srtt_ms="1.2"),
     "status.resolver.upstreams[0].srtt_ms: float expected, not str"),
    (lambda r: r["router"].update(dropped=[]), "status.router.dropped: an object expected, not list"),
    (lambda r: r["router"]["dropped"].update(x="1"), "status.router.dropped.x: int expected, not str"),
    (lambda r: r.update(service=None), "status.service: an object expected, not NoneType"),
])
def test_a_reply_that_does_not_fit_is_refused_naming_the_key(change, message):
    data = spec_example()
    change(data)
    with pytest.raises(ValueError) as raised:
        from_json(Report, data)
    assert str(raised.value) == message


def test_what_may_vary_is_read():
    data = spec_example()
    data["resolver"]["upstreams"][0]["srtt_ms"] = None  # not measured yet
    data["resolver"]["upstreams"][0]["wins"] = 3
    data["uptime_s"] = 12  # a whole number is a float too
    data["later"] = {"added": "by a newer bootres"}  # ignored
    del data["resolver"]["sources"][0]["error"]  # omitted while None
    got = from_json(Report, data)
    assert got.resolver.upstreams[0].srtt_ms is None and got.uptime_s == 12.0
    assert got.resolver.sources[0].error is None and "error" not in to_json(got)["resolver"]["sources"][0]
    assert "later" not in to_json(got)


def test_omitted_when_none_leaves_the_key_out_and_keeps_other_nulls():
    files = report.FilesStatus(defaultrouter=report.RouterFileStatus("/etc/defaultrouter", None, ("198.18.1.1",)))
    assert to_json(files) == {"defaultrouter": {"path": "/etc/defaultrouter", "written_at": None,
                                                "content": ["198.18.1.1"]}}
