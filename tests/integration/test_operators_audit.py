"""integration §6 "Operators are named": named ops tokens, the actor of each change, and the audit trail in
the server view, the account view and GET /ops/audit; refused calls record nothing."""
from __future__ import annotations

import json

import pytest

from tests.support import OPS_TOKEN, environment

TOKENS = f"alice:tok-alice,bob:tok-bob,{OPS_TOKEN}"  # the API helper's default token stays, unnamed
PAID = "2026-01-10T10:00:00+08:00"


@pytest.fixture
def named(api):
    """The API with three operators: alice and bob by name, and one plain token."""
    from chalicelib.settings import reset_settings

    with environment(OPS_API_TOKENS=TOKENS):
        reset_settings()
        api.plan("std", 10000, 20)  # with the plain token: the ops trail's first entry
        api.buy_monthly("s1", PAID)
        yield api
    reset_settings()


def ops_as(api, token, method, path, body=None):
    return api.ops(method, path, body, token=token)


def test_contract_6_alice_suspends_bob_resumes_and_the_server_audit_names_each(named):
    """R-LIFE-2 by two named operators: the view's audit lists both, oldest first, with the bodies' fields."""
    status, view = ops_as(named, "tok-alice", "POST", "/ops/servers/s1/suspend",
                          {"reason": "violation", "note": "phishing site", "at": "2026-01-12T09:00:00+08:00"})
    assert status == 200, view
    assert view["audit"] == [{"at": "2026-01-12T09:00:00+08:00", "action": "suspend", "actor": "alice",
                              "reason": "violation", "note": "phishing site"}]
    status, view = ops_as(named, "tok-bob", "POST", "/ops/servers/s1/resume",
                          {"note": "site removed", "at": "2026-01-13T09:00:00+08:00"})
    assert status == 200, view
    expected = [
        {"at": "2026-01-12T09:00:00+08:00", "action": "suspend", "actor": "alice", "reason": "violation",
         "note": "phishing site"},
        {"at": "2026-01-13T09:00:00+08:00", "action": "resume", "actor": "bob", "note": "site removed",
         "lifted": ["violation"]},
    ]
    assert view["audit"] == expected and view["audit_next"] is None
    assert named.server("s1")["audit"] == expected


def test_contract_6_plain_token_acts_as_operator_and_terminate_records_its_refund(named):
    """A token configured without a name is the actor `operator`; R-LIFE-5's refund is in the entry."""
    status, answer = ops_as(named, OPS_TOKEN, "POST", "/ops/servers/s1/terminate",
                            {"reason": "breach", "note": "fraud", "at": "2026-01-20T10:00:00+08:00"})
    assert status == 200, answer
    assert answer["server"]["audit"] == [{"at": "2026-01-20T10:00:00+08:00", "action": "terminate",
                                          "actor": "operator", "reason": "breach", "note": "fraud", "refund": 0}]
    status, account = ops_as(named, OPS_TOKEN, "POST", "/ops/accounts/acc-1/violation",
                             {"flag": True, "at": "2026-01-21T10:00:00+08:00"})
    assert status == 200, account
    assert account["audit"] == [{"at": "2026-01-21T10:00:00+08:00", "action": "violation", "actor": "operator",
                                 "flag": True}]
    assert named.account("acc-1")["audit_next"] is None


def test_contract_6_the_violation_entry_carries_the_operators_note(named):
    """P-II(6) by a named operator: the account's audit entry keeps the body's flag and note, in the answer and
    in the account view; the ops trail gets nothing of it."""
    status, account = ops_as(named, "tok-alice", "POST", "/ops/accounts/acc-1/violation",
                             {"flag": True, "note": "illegal content", "at": "2026-01-21T10:00:00+08:00"})
    assert status == 200, account
    expected = [{"at": "2026-01-21T10:00:00+08:00", "action": "violation", "actor": "alice", "flag": True,
                 "note": "illegal content"}]
    assert (account["violation"], account["audit"]) == (True, expected)
    assert named.account("acc-1")["audit"] == expected
    assert [i["action"] for i in named.ops("GET", "/ops/audit")[1]["items"]] == ["price_version"]


@pytest.mark.parametrize("call", [
    ("POST", "/ops/servers/s1/suspend", {"reason": "bogus"}),                   # 400 invalid reason
    ("POST", "/ops/servers/s1/suspend", {"reason": "violation", "at": "soon"}),  # 400 bad time
    ("POST", "/ops/servers/s1/resume", {}),                                     # 409 nothing to lift
    ("POST", "/ops/accounts/acc-1/violation", {"note": "no flag"}),             # 400 missing flag
    ("POST", "/ops/servers/nope/suspend", {"reason": "violation"}),             # 404
])
def test_contract_6_a_refused_call_records_nothing(named, call):
    method, path, body = call
    status, answer = ops_as(named, "tok-alice", method, path, body)
    assert 400 <= status < 500, answer
    assert named.server("s1")["audit"] == []
    assert named.account("acc-1")["audit"] == []
    assert [i["action"] for i in named.ops("GET", "/ops/audit", token="tok-bob")[1]["items"]] == ["price_version"]


@pytest.mark.parametrize("token", [
    "alice",            # a name alone
    "alice:tok-alice",  # name:token sent as the token
    "tok-alicex",       # extra characters after
    "xtok-alice",       # extra characters before
    "tok-alic",         # a prefix
    "TOK-ALICE",        # case matters
    "operator",         # the plain token's actor name is not a token either
])
def test_contract_6_names_and_near_miss_tokens_are_401_and_change_nothing(named, token):
    status, answer = ops_as(named, token, "POST", "/ops/servers/s1/suspend", {"reason": "violation"})
    assert status == 401 and answer["error"]["code"] == "unauthorized"
    assert ops_as(named, token, "GET", "/ops/servers/s1")[0] == 401
    view = named.server("s1")
    assert view["state"] == "active" and view["audit"] == []


def test_contract_6_tokens_from_secrets_manager_are_named_too(api):
    """In AWS the tokens come from the Secrets Manager secret; `name:token` entries name the actor there too."""
    from chalicelib import aws
    from chalicelib.settings import reset_settings
    from chalicelib.webhooks import secrets

    aws.client("secretsmanager").create_secret(Name="billing/webhook-secrets",
                                               SecretString=json.dumps({"ops": "carol:tok-carol, tok-sm"}))
    secrets.reset()
    try:
        with environment(OPS_API_TOKENS=None, WEBHOOK_SECRETS_ID="billing/webhook-secrets"):
            reset_settings()
            status, answer = api.ops("PUT", "/ops/plans/std", {"monthly_price": 10000, "hourly_price": 20,
                                                               "effective_from": "2020-01-01T00:00:00+08:00",
                                                               "at": "2026-01-01T00:00:00+08:00"},
                                     token="tok-carol")
            assert status == 200, answer
            assert api.ops("GET", "/ops/audit", token="tok-carol:")[0] == 401
            status, trail = api.ops("GET", "/ops/audit", token="tok-sm")
    finally:
        secrets.reset()
        reset_settings()
    assert status == 200
    assert trail == {"items": [{"at": "2026-01-01T00:00:00+08:00", "action": "price_version", "actor": "carol",
                                "plan_id": "std", "monthly_price": 10000, "hourly_price": 20,
                                "effective_from": "2020-01-01T00:00:00+08:00"}], "next": None}


def test_contract_6_price_versions_runs_by_hand_and_replays_go_to_the_ops_trail(named):
    """Changes about no one server: PUT /ops/plans, both sweeps, the cluster-action drain and a dead-letter
    replay (R-CLU-4), each with its actor; the replay shows on its server too."""
    from chalicelib.settings import reset_settings

    with environment(CLUSTER_ACTION_MAX_ATTEMPTS="1"):
        reset_settings()
        ops_as(named, "tok-alice", "PUT", "/ops/plans/std", {
            "monthly_price": 12000, "hourly_price": 25, "effective_from": "2026-03-01T00:00:00+08:00",
            "at": "2026-02-01T00:00:00+08:00"})
        assert ops_as(named, "tok-bob", "POST", "/ops/sweeps/expiry", {"now": "2026-02-11T00:10:00+08:00"})[0] == 200
        assert ops_as(named, "tok-bob", "POST", "/ops/sweeps/metering", {"now": "2026-02-11T01:00:00+08:00"})[0] == 200
        status, drained = ops_as(named, OPS_TOKEN, "POST", "/ops/cluster-actions/drain")
        assert drained == {"ran": 1, "succeeded": 0, "failed": 1, "dead": 1, "overtaken": 0, "held": 0,
                           "more": False}  # s1 has no kubeconfig
        action_id = named.server("s1")["cluster_actions"][0]["id"]
        status, replayed = ops_as(named, "tok-alice", "POST", f"/ops/dead-letters/{action_id}/replay")
        assert status == 200, replayed
        assert ops_as(named, "tok-alice", "POST", "/ops/dead-letters/none/replay")[0] == 404
    reset_settings()
    status, trail = ops_as(named, "tok-bob", "GET", "/ops/audit")
    assert status == 200 and trail["next"] is None
    items = trail["items"]
    # in the order of their times: the business times given, then the wall clock's (the fixture's plan,
    # the drain and the replay, which take no time)
    assert [(i["action"], i["actor"]) for i in items] == [
        ("price_version", "alice"), ("sweep_expiry", "bob"), ("sweep_metering", "bob"),
        ("price_version", "operator"), ("drain_cluster_actions", "operator"), ("replay_dead_letter", "alice")]
    assert items[0] == {"at": "2026-02-01T00:00:00+08:00", "action": "price_version", "actor": "alice",
                        "plan_id": "std", "monthly_price": 12000, "hourly_price": 25,
                        "effective_from": "2026-03-01T00:00:00+08:00"}
    assert items[1]["at"] == items[1]["now"] == "2026-02-11T00:10:00+08:00"
    assert items[1]["result"]["expire"] == 1
    assert items[2]["now"] == "2026-02-11T01:00:00+08:00"
    assert items[4]["result"] == {"ran": 1, "succeeded": 0, "failed": 1, "dead": 1, "overtaken": 0, "held": 0,
                                  "more": False}
    assert {k: items[5][k] for k in ("action_id", "server_id", "kind")} == {
        "action_id": action_id, "server_id": "s1", "kind": "stop"}
    server_trail = named.server("s1")["audit"]
    assert [(e["action"], e["actor"], e["action_id"]) for e in server_trail] == [
        ("replay_dead_letter", "alice", action_id)]


def test_contract_2_violation_mark_on_an_unknown_account_is_404_naming_it(named):
    """integration §2 (unknown ids: 404) for P-II(6): the answer names the account; the trail records nothing."""
    status, answer = ops_as(named, "tok-alice", "POST", "/ops/accounts/acc-nope/violation",
                            {"flag": True, "at": "2026-01-21T10:00:00+08:00"})
    assert (status, answer) == (404, {"error": {"code": "not_found", "message": "account 'acc-nope' is not known"}})
    assert [i["action"] for i in named.ops("GET", "/ops/audit")[1]["items"]] == ["price_version"]
