"""integration §6 "Identifiers and limits", the pure parts: the id alphabet, JSON nesting depth, the latest
time from which a service may end."""
from __future__ import annotations

from datetime import datetime

import pytest
from pydantic import TypeAdapter, ValidationError

from chalicelib.domain.limits import MAX_DEPTH, depth, loads_object
from chalicelib.lifecycle.rules import service_may_end_at
from chalicelib.domain.types import Id, is_id
from chalicelib.errors import InvalidPayload


@pytest.mark.parametrize("value, ok", [
    ("a", True), ("A-z_0.9:x", True), ("x" * 128, True), ("x" * 129, False), ("", False), ("a#b", False),
    ("a/b", False), ("a%b", False), ("a b", False), ("中", False), ("a\n", False), ("é", False), (5, False)])
def test_CONTRACT_6_ids_are_1_to_128_characters_of_the_alphabet(value, ok):
    assert is_id(value) is ok
    if isinstance(value, str):
        try:
            TypeAdapter(Id).validate_python(value)
            accepted = True
        except ValidationError:
            accepted = False
        assert accepted is ok  # the payload type and the path check agree


@pytest.mark.parametrize("text, levels", [("1", 0), ("{}", 1), ("[]", 1), ('{"a": [1, {"b": []}]}', 4),
                                          ("[" * 32 + "]" * 32, 32)])
def test_CONTRACT_6_depth(text, levels):
    import json

    assert depth(json.loads(text)) == levels
    assert depth(json.loads("[" * 900 + "]" * 900)) > MAX_DEPTH  # counting stops past the limit


def test_CONTRACT_6_bodies_nested_past_the_limit_are_invalid_payload():
    assert loads_object('{"a":' * (MAX_DEPTH - 1) + "1" + "}" * (MAX_DEPTH - 1)) is not None
    for text in ('{"a":' * MAX_DEPTH + "{}" + "}" * MAX_DEPTH, "[" * 100_000 + "]" * 100_000,
                 '{"a":' * 5000 + "1" + "}" * 5000, "[1]", "nope", b"\xff"):
        with pytest.raises(InvalidPayload) as raised:
            loads_object(text)
        assert raised.value.fields == ["body"]


@pytest.mark.parametrize("at, ok", [
    ("2199-12-24T23:59:59.999999+08:00", True),   # retention to 2200-01-01T00:00+08:00 = 2199-12-31T16:00Z
    ("2199-12-24T15:59:59+00:00", True),          # the same local day, written in UTC
    ("2199-12-25T00:00:00+08:00", False),         # retention to 2200-01-02T00:00+08:00
    ("2199-12-24T16:00:00+00:00", False),         # that instant in UTC
    ("2199-12-31T20:00:00+08:00", False),         # the payg order of issue 17
    ("2000-01-01T00:00:00+00:00", True),
])
def test_CONTRACT_6_a_time_from_which_a_service_may_end_leaves_its_retention_storable(at, ok):
    """R-LIFE-3: kept through the 7th local day after the end; the retention must end before 2200-01-01T00:00Z."""
    value = datetime.fromisoformat(at)
    if ok:
        assert service_may_end_at(value, "data.paid_at") == value
    else:
        with pytest.raises(InvalidPayload) as caught:
            service_may_end_at(value, "data.paid_at")
        assert caught.value.fields == ["data.paid_at"]
