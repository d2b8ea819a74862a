"""integration §6 "Operators are named": which bearer tokens authorize, and who the actor is."""
from __future__ import annotations

import pytest

from chalicelib.errors import Unauthorized
from chalicelib.ops import auth

ENTRIES = ("alice:tok-a", "tok-plain", "bob:tok-b", "broken:", ":no-name")


def test_entries_are_token_or_name_colon_token():
    assert auth.named_tokens(ENTRIES) == [("alice", "tok-a"), ("operator", "tok-plain"), ("bob", "tok-b")]


@pytest.mark.parametrize("header, actor", [
    ("Bearer tok-a", "alice"), ("bearer tok-b", "bob"), ("Bearer tok-plain", "operator"),
])
def test_the_token_names_the_actor(header, actor):
    assert auth.actor_for_bearer(header, ENTRIES) == actor


@pytest.mark.parametrize("header", [
    None, "", "Bearer", "Bearer ", "tok-a", "Basic tok-a", "Bearer alice", "Bearer alice:tok-a", "Bearer tok-a ",
    "Bearer  tok-a", "Bearer tok-ab", "Bearer tok-", "Bearer operator", "Bearer broken", "Bearer broken:",
    "Bearer no-name", "Bearer :no-name",
])
def test_names_entries_and_near_misses_are_refused(header):
    with pytest.raises(Unauthorized):
        auth.actor_for_bearer(header, ENTRIES)


def test_no_configured_tokens_refuse_everything():
    with pytest.raises(Unauthorized):
        auth.actor_for_bearer("Bearer anything", ())


def test_iam_actor_is_the_callers_arn():
    arn = "arn:aws:sts::123456789012:assumed-role/oncall/alice"
    assert auth.actor_for_iam({"identity": {"userArn": arn, "sourceIp": "10.0.0.1"}}) == arn
    for context in (None, {}, {"identity": {}}, {"identity": {"userArn": None}}):
        with pytest.raises(Unauthorized):
            auth.actor_for_iam(context)
