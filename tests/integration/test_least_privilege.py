"""In AWS only `cluster_actions` may touch EKS and read kubeconfigs (issue 11 item 2), so the API function
(CLUSTER_ACTIONS_INLINE=0 in its Chalice config) hands a replayed dead letter or a drain by hand to that
function through the billing-cluster-actions queue instead of running it itself (R-CLU-4)."""
from __future__ import annotations

import json

import pytest


@pytest.fixture
def dead_stop(api, monkeypatch):
    """srv-r's stop action (R-LIFE-1 at expiry) is dead: no kubeconfig and a single attempt allowed."""
    from chalicelib.settings import reset_settings

    api.plan("std", 10000, 20)
    api.buy_monthly("srv-r", "2026-01-01T10:00:00+08:00")
    api.sweep("2026-02-02T00:10:00+08:00")
    monkeypatch.setenv("CLUSTER_ACTION_MAX_ATTEMPTS", "1")
    reset_settings()
    assert api.ops("POST", "/ops/cluster-actions/drain")[1]["dead"] == 1
    monkeypatch.setenv("CLUSTER_ACTIONS_INLINE", "0")
    reset_settings()
    return api


def queued(aws_created) -> list[dict]:
    import boto3

    sqs = boto3.client("sqs")
    url = aws_created["queues"]["billing-cluster-actions"]
    bodies = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not got:
            return bodies
        for message in got:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def test_R_CLU_4_replay_in_the_api_function_wakes_cluster_actions_instead_of_running_it(dead_stop, aws):
    api = dead_stop
    queued(aws)  # the sweep's own wake-up
    [letter] = api.ops("GET", "/ops/dead-letters")[1]["items"]
    status, replayed = api.ops("POST", f"/ops/dead-letters/{letter['id']}/replay")
    assert status == 200
    assert (replayed["ran"], replayed["queued"]) == (0, 1)
    assert {k: replayed["action"][k] for k in ("status", "attempts", "error")} == {
        "status": "pending", "attempts": 0, "error": letter["error"]}
    assert queued(aws) == [{"server_id": "srv-r"}]
    assert api.ops("GET", "/ops/dead-letters")[1]["items"] == []

    # the queue's consumer runs it: still no kubeconfig, so with one attempt allowed it is dead again
    event = api.client.events.generate_sqs_event(['{"server_id": "srv-r"}'], queue_name="billing-cluster-actions")
    api.client.lambda_.invoke("cluster_actions", event)
    action = api.server("srv-r")["cluster_actions"][0]
    assert (action["status"], action["attempts"]) == ("dead", 1)
    assert "no kubeconfig for server srv-r" in action["error"]


def test_R_CLU_4_a_drain_by_hand_in_the_api_function_only_wakes_the_open_servers(api, aws, monkeypatch):
    from chalicelib.settings import reset_settings

    api.plan("std", 10000, 20)
    api.buy_monthly("srv-a", "2026-01-01T10:00:00+08:00")
    api.buy_monthly("srv-b", "2026-01-01T10:00:00+08:00", order_id="ord-b")
    api.sweep("2026-02-02T00:10:00+08:00")
    queued(aws)
    monkeypatch.setenv("CLUSTER_ACTIONS_INLINE", "0")
    reset_settings()
    status, result = api.ops("POST", "/ops/cluster-actions/drain")
    assert (status, result) == (200, {"ran": 0, "succeeded": 0, "failed": 0, "dead": 0, "queued": 2})
    assert sorted(m["server_id"] for m in queued(aws)) == ["srv-a", "srv-b"]
    assert [a["status"] for a in api.server("srv-a")["cluster_actions"]] == ["pending"]
