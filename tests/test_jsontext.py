"""Parsing JSON from outside the process with a bound on nesting."""

from __future__ import annotations

import pytest

from numaflow_rdma import jsontext


def test_loads_returns_ordinary_values() -> None:
    assert jsontext.loads('{"a": [1, 2.5, "x", null, true]}') == {"a": [1, 2.5, "x", None, True]}
    assert jsontext.loads(b"[]") == []


def test_depth_limit_is_inclusive() -> None:
    at_limit = "[" * jsontext.MAX_DEPTH + "]" * jsontext.MAX_DEPTH

    assert jsontext.nesting_depth(jsontext.loads(at_limit)) == jsontext.MAX_DEPTH
    with pytest.raises(ValueError, match="nests deeper than 100 levels"):
        jsontext.loads("[" + at_limit + "]")


@pytest.mark.parametrize("depth", [101, 990, 5_000, 200_000])
def test_deep_text_raises_value_error(depth: int) -> None:
    with pytest.raises(ValueError, match="nests deeper than"):
        jsontext.loads('{"a":' * depth + "1" + "}" * depth)


@pytest.mark.parametrize("text", ["NaN", "[Infinity]", '{"a": -Infinity}'])
def test_non_json_constants_are_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="is not a JSON value"):
        jsontext.loads(text)


def test_invalid_text_raises_value_error() -> None:
    with pytest.raises(ValueError):
        jsontext.loads(b"\xff\xfe{")
    with pytest.raises(ValueError):
        jsontext.loads("[1,")


def test_nesting_depth_counts_arrays_and_objects() -> None:
    assert jsontext.nesting_depth(7) == 0
    assert jsontext.nesting_depth({"a": [1, {"b": []}]}) == 4
    assert jsontext.nesting_depth([[], [[[]]]]) == 4
