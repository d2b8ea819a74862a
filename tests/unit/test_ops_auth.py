"""integration §6 "Operators are named": which bearer tokens authorize, and who the actor is; §7 "The
local stack": a token configuration that reads two ways is refused, not half-used."""
from __future__ import annotations

import pytest

from chalicelib.errors import Unauthorized
from chalicelib.ops import auth

ENTRIES = ("alice:tok-a", "tok-plain", "bob:tok-b", " carol : tok-c ")


def test_entries_are_token_or_name_colon_token():
    assert auth.named_tokens(ENTRIES) == [("alice", "tok-a"), ("operator", "tok-plain"), ("bob", "tok-b"),
                                          ("carol", "tok-c")]


def test_one_operator_may_hold_two_tokens_while_one_is_rotated():
    assert auth.named_tokens(["alice:old", "alice:new"]) == [("alice", "old"), ("alice", "new")]


@pytest.mark.parametrize("header, actor", [
    ("Bearer tok-a", "alice"), ("bearer tok-b", "bob"), ("Bearer tok-plain", "operator"), ("Bearer tok-c", "carol"),
])
def test_the_token_names_the_actor(header, actor):
    assert auth.actor_for_bearer(header, ENTRIES) == actor


@pytest.mark.parametrize("header", [
    None, "", "Bearer", "Bearer ", "tok-a", "Basic tok-a", "Bearer alice", "Bearer alice:tok-a", "Bearer tok-a ",
    "Bearer  tok-a", "Bearer tok-ab", "Bearer tok-", "Bearer operator", "Bearer carol", "Bearer  tok-c ",
])
def test_names_entries_and_near_misses_are_refused(header):
    with pytest.raises(Unauthorized):
        auth.actor_for_bearer(header, ENTRIES)


def test_no_configured_tokens_refuse_everything():
    with pytest.raises(Unauthorized):
        auth.actor_for_bearer("Bearer anything", ())


@pytest.mark.parametrize("entries, message", [
    (["alice:t1", "bob:t1"], "entry 2 repeats the token of entry 1 (names 'alice' and 'bob')"),
    (["t1", "alice:t1"], "entry 2 repeats the token of entry 1 (names 'operator' and 'alice')"),
    (["alice:t1", "alice:t1"], "entry 2 repeats the token of entry 1 (names 'alice' and 'alice')"),
    (["alice:t:1"], "entry 1 (name 'alice') has a token containing `:`"),
    (["ok:t0", "broken:"], "entry 2 has an empty token"),
    ([":no-name"], "entry 1 has an empty name"),
])
def test_a_configuration_that_reads_two_ways_is_refused_with_its_reason(entries, message):
    with pytest.raises(auth.TokenConfigurationError) as refused:
        auth.named_tokens(entries)
    assert str(refused.value).startswith("OPS_API_TOKENS is misconfigured: ")
    assert message in str(refused.value)
    secrets = {e.partition(":")[2] or e for e in entries} - {""}
    assert not any(f"{s!r}" in str(refused.value) for s in secrets)  # positions and names only, no token


def test_a_misconfigured_list_authorizes_no_one_not_even_its_good_entries(caplog):
    """The deployed API cannot refuse to start: every ops call fails closed (500 through the routes'
    fault handler, with this log line), a good token included."""
    with pytest.raises(auth.TokenConfigurationError):
        auth.actor_for_bearer("Bearer t2", ["alice:t1", "bob:t1", "carol:t2"])
    assert "every ops call answers 500 until the configuration is fixed" in caplog.text


def test_iam_actor_is_the_callers_arn():
    arn = "arn:aws:sts::123456789012:assumed-role/oncall/alice"
    assert auth.actor_for_iam({"identity": {"userArn": arn, "sourceIp": "10.0.0.1"}}) == arn
    for context in (None, {}, {"identity": {}}, {"identity": {"userArn": None}}):
        with pytest.raises(Unauthorized):
            auth.actor_for_iam(context)
