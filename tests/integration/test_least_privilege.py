"""Least privilege per function at run time (issue 11 item 2). Every AWS call each function's code paths make is
granted by that function's own policy file. In AWS only `cluster_actions` may touch EKS and read kubeconfigs,
so the API function (CLUSTER_ACTIONS_INLINE=0 in its Chalice config) hands a replayed dead letter or a drain
by hand to that function through the billing-cluster-actions queue instead of running it itself (R-CLU-4)."""
from __future__ import annotations

import json

import pytest

from tests import support


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
    return support.take_messages(aws_created["queues"]["billing-cluster-actions"])


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
    assert (status, result) == (200, {"ran": 0, "succeeded": 0, "failed": 0, "dead": 0, "overtaken": 0, "held": 0,
                                        "queued": 2, "more": False})
    assert sorted(m["server_id"] for m in queued(aws)) == ["srv-a", "srv-b"]
    assert [a["status"] for a in api.server("srv-a")["cluster_actions"]] == ["pending"]


# ---- every AWS call a function makes is allowed by its own policy file ------------------------------
# The packaged roles are checked action by action in tests/infrastructure; here each function's code paths run
# against the emulator with every botocore call recorded, and each call must be granted by that function's
# policy file (action and resource), so a policy that is too tight fails here before it fails in AWS.
from fnmatch import fnmatchcase  # noqa: E402
from pathlib import Path  # noqa: E402
from urllib.parse import urlparse  # noqa: E402

from tests.integration.test_cluster_actions import cluster, fake_kube  # noqa: E402,F401
from tests.integration.test_arrears_volume import seed_payg  # noqa: E402
from tests.support import order_paid  # noqa: E402

CHALICE = Path(__file__).resolve().parents[2] / "functions" / ".chalice"
# GetCallerIdentity needs no permission (AWS answers it even under an explicit deny).
NEEDS_NO_RIGHT = {"sts:GetCallerIdentity"}


def granted(function: str) -> list[tuple[set[str], list[str]]]:
    config = json.loads((CHALICE / "config.json").read_text())
    policy = json.loads((CHALICE / config["stages"]["dev"]["lambda_functions"][function]["iam_policy_file"]).read_text())
    return [(set(s["Action"]), [r["Fn::Sub"].split(":${AWS::AccountId}:", 1)[1] for r in s["Resource"]])
            for s in policy["Statement"]]


def rights(service: str, op: str, params: dict) -> list[tuple[str, str]]:
    """The IAM (action, resource) pairs one API call needs; resources as the part after the account id."""
    if service == "dynamodb" and op in ("TransactWriteItems", "TransactGetItems"):
        pairs = []
        for item in params["TransactItems"]:
            [(kind, body)] = item.items()
            action = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
                      "ConditionCheck": "ConditionCheckItem", "Get": "GetItem"}[kind]
            pairs.append((f"dynamodb:{action}", f"table/{body['TableName']}"))
        return pairs
    if service == "dynamodb" and op in ("BatchGetItem", "BatchWriteItem"):
        return [(f"dynamodb:{op}", f"table/{table}") for table in params["RequestItems"]]
    if service == "dynamodb":
        index = f"/index/{params['IndexName']}" if params.get("IndexName") else ""
        return [(f"dynamodb:{op}", f"table/{params['TableName']}{index}")]
    if service == "sqs":
        name = params.get("QueueName") or urlparse(params["QueueUrl"]).path.rsplit("/", 1)[1]
        # IAM has no batch actions for SQS: SendMessageBatch is authorised as sqs:SendMessage, and so on
        return [(f"sqs:{op.removesuffix('Batch')}", name)]
    if service == "sns":
        return [(f"sns:{op}", params["TopicArn"].rsplit(":", 1)[1])]
    if service == "secretsmanager":
        return [(f"secretsmanager:{op}", f"secret:{params['SecretId']}-AbCdEf")]  # AWS appends 6 characters
    if service == "eks":
        cluster_name = params.get("clusterName") or params["name"]
        group = params.get("nodegroupName")
        return [(f"eks:{op}", f"nodegroup/{cluster_name}/{group}/uuid" if group else f"cluster/{cluster_name}")]
    return [(f"{service}:{op}", "*")]


@pytest.fixture
def recorded(monkeypatch):
    """`with recorded(function):` records the calls made inside the block as that function's."""
    import botocore.client

    calls: dict[str, set] = {}
    current: list[str] = []
    original = botocore.client.BaseClient._make_api_call

    def record(client, op, params):
        if current:
            service = client.meta.service_model.service_name
            if f"{service}:{op}" not in NEEDS_NO_RIGHT:
                calls.setdefault(current[-1], set()).update(rights(service, op, params))
        return original(client, op, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", record)

    class Recorder:
        def __call__(self, function):
            class Block:
                def __enter__(self):
                    current.append(function)

                def __exit__(self, *exc):
                    current.pop()
            return Block()

        calls_of = calls
    return Recorder()


def assert_granted(calls: dict[str, set]) -> None:
    for function, needed in calls.items():
        statements = granted(function)
        missing = sorted((action, resource) for action, resource in needed
                         if not any(action in actions and any(fnmatchcase(resource, r) for r in resources)
                                    for actions, resources in statements))
        assert missing == [], f"{function} needs rights its policy does not grant: {missing}"


def scheduled(api, name: str, time: str):
    event = api.client.events.generate_cw_event("aws.events", "Scheduled Event", {}, [])
    event["time"] = time
    return api.client.lambda_.invoke(name, event).payload


def sqs_wake(api, server_id: str):
    event = api.client.events.generate_sqs_event([json.dumps({"server_id": server_id})], queue_name="billing-cluster-actions")
    return api.client.lambda_.invoke("cluster_actions", event)


def background_work(api, recorded) -> None:
    """What SQS hands `background_work`: every queued message, one invocation each, until none is left."""
    from tests.integration.test_fanout import queued_tasks

    while tasks := queued_tasks():
        with recorded("background_work"):
            for task in tasks:
                event = api.client.events.generate_sqs_event([json.dumps(task)], queue_name="billing-background")
                api.client.lambda_.invoke("background_work", event)


def test_every_call_of_each_function_is_granted_by_its_own_policy(api, cluster, fake_kube, recorded, monkeypatch):
    """R-PAY-1/R-PAY-2/R-PAY-6/R-LIFE-1/R-LIFE-3/R-CLU-1…4 paths, each under the function that runs it in AWS:
    webhooks and operator calls (api_handler), the schedules, and the queue consumer with EKS and a kubeconfig."""
    from chalicelib.settings import reset_settings

    with recorded("api_handler"):
        api.pay("order.paid", order_paid("ord-p", "acc-p", "srv-p", "new", "2026-01-01T00:00:00+08:00", 500,
                                         billing_mode="payg", plan_id="std", region="cn-north-1"))
        api.buy_monthly("srv-h", "2026-01-10T10:00:00+08:00", amount=1)  # held (R-PAY-2)
        api.server("srv-k"), api.account("acc-1"), api.ops("GET", "/ops/dead-letters")
        api.meter("2026-01-01T01:30:00+08:00")
    from chalicelib.store import runs

    with recorded("payg_metering"):
        metering = scheduled(api, "payg_metering", "2025-12-31T18:30:00Z")  # fans the run out (issue 9)
    background_work(api, recorded)
    assert runs.get(metering["run_id"])["hours"] == 1
    with recorded("expiry_sweep"):
        sweep = scheduled(api, "expiry_sweep", "2026-02-01T16:10:00Z")
    background_work(api, recorded)
    assert runs.get(sweep["run_id"])["expire"] == 1  # srv-k stops (R-LIFE-1)
    with recorded("cluster_actions"):
        sqs_wake(api, "srv-k")
    assert api.server("srv-k")["cluster_actions"][0]["status"] == "succeeded"
    with recorded("api_handler"):
        api.pay("order.paid", order_paid("ord-r", "acc-1", "srv-k", "renewal", "2026-02-03T10:00:00+08:00", 10000,
                                         months=1))
    with recorded("cluster_actions"):
        sqs_wake(api, "srv-k")  # start (R-CLU-2)
    assert [a["status"] for a in api.server("srv-k")["cluster_actions"]] == ["succeeded", "succeeded"]
    with recorded("expiry_sweep"):
        scheduled(api, "expiry_sweep", "2026-03-03T16:10:00Z")
    background_work(api, recorded)
    with recorded("expiry_sweep"):
        scheduled(api, "expiry_sweep", "2026-03-11T16:10:00Z")  # destroyed after retention (R-LIFE-3)
    background_work(api, recorded)
    with recorded("cluster_actions"):
        sqs_wake(api, "srv-k")  # node groups and cluster deleted (R-CLU-3)
    assert api.server("srv-k")["state"] == "destroyed" and cluster.list_clusters()["clusters"] == []

    monkeypatch.setenv("CLUSTER_ACTIONS_INLINE", "0")
    monkeypatch.setenv("CLUSTER_ACTION_MAX_ATTEMPTS", "1")
    reset_settings()
    api.buy_monthly("srv-n", "2026-03-01T10:00:00+08:00", order_id="ord-n")
    api.sweep("2026-04-02T00:10:00+08:00")
    sqs_wake(api, "srv-n")  # no kubeconfig: dead at once
    [letter] = api.ops("GET", "/ops/dead-letters")[1]["items"]
    with recorded("api_handler"):
        assert api.ops("POST", f"/ops/dead-letters/{letter['id']}/replay")[1]["queued"] == 1
        assert api.ops("POST", "/ops/cluster-actions/drain")[1]["queued"] == 1
    from chalicelib.clusters import queue

    monkeypatch.setattr(queue, "REWAKE_AFTER_SECONDS", 0)  # srv-n's revived stop counts as waiting too long
    with recorded("cluster_actions_rewake"):  # issue 19
        assert scheduled(api, "cluster_actions_rewake", "2026-04-02T00:20:00Z") == {"woken": 1, "failed": 0}

    # R-PAY-7 over more servers than one transaction moves: batch reads and version checks in the follow-ups
    seed_payg("acc-many", 40)
    with recorded("payg_metering"):
        metering = scheduled(api, "payg_metering", "2025-12-31T17:00:00Z")
    background_work(api, recorded)
    assert runs.get(metering["run_id"])["hours"] == 80  # 00:00 and 01:00 of 40 servers → arrears
    with recorded("api_handler"):
        api.pay("account.topped_up", {"account_id": "acc-many", "amount": 1600, "topped_up_at": "2026-01-01T01:10:00+08:00"})
    assert api.server("acc-many-s0039")["state"] == "active"
    with recorded("notification_retry"):  # integration §6: the outbox published from the schedule
        assert scheduled(api, "notification_retry", "2026-04-02T00:15:00Z")["failed"] == 0
    with recorded("api_handler"):
        api.sweep("2026-05-02T00:10:00+08:00")
        assert api.ops("POST", "/ops/background/drain")[1]["failed"] == 0

    calls = recorded.calls_of
    assert set(calls) == {"api_handler", "payg_metering", "expiry_sweep", "cluster_actions", "background_work",
                          "notification_retry", "cluster_actions_rewake"}
    assert {a for a, _ in calls["cluster_actions"] if a.startswith("eks:")} == {
        "eks:DescribeCluster", "eks:ListNodegroups", "eks:DescribeNodegroup", "eks:UpdateNodegroupConfig",
        "eks:DeleteNodegroup", "eks:DeleteCluster"}
    assert not any(a.startswith(("eks:", "lambda:")) for f in ("api_handler", "expiry_sweep", "payg_metering",
                                                                "background_work")
                   for a, _ in calls[f])
    assert_granted(calls)
