"""Structured logs and embedded metrics (issue 11 item 3): every line an invocation prints is one JSON object
carrying its correlation keys, and the counts an on-call engineer alarms on appear in the CloudWatch
embedded-metric (EMF) objects it prints, in the namespace and dimensions the alarms of infra/resources.json use."""
from __future__ import annotations

import json
import logging
import sys
import threading
from collections import Counter

import pytest
import requests

from tests import support

NAMESPACE, SERVICE = "K8sBilling", "k8s-billing"


def printed(capfd) -> list[dict]:
    """Everything the invocations printed since the last call: each line must be one JSON object."""
    lines = [line for line in capfd.readouterr().out.splitlines() if line.strip()]
    objects = []
    for line in lines:
        value = json.loads(line)
        assert isinstance(value, dict), line
        objects.append(value)
    return objects


def metrics(objects: list[dict]) -> Counter:
    """(metric name, extra dimensions) → summed value, from the EMF objects among the printed lines."""
    totals: Counter = Counter()
    for obj in objects:
        for directive in obj.get("_aws", {}).get("CloudWatchMetrics", []):
            assert directive["Namespace"] == NAMESPACE
            [dimensions] = directive["Dimensions"]
            assert "service" in dimensions and obj["service"] == SERVICE
            extra = tuple(sorted((d, obj[d]) for d in dimensions if d != "service"))
            for metric in directive["Metrics"]:
                assert metric["Unit"] == "Count"
                value = obj[metric["Name"]]
                totals[(metric["Name"], extra)] += sum(value) if isinstance(value, list) else value
    return totals


def logs(objects: list[dict], message: str) -> list[dict]:
    return [o for o in objects if o.get("message") == message]


@pytest.fixture
def plans(api, capfd):
    api.plan("std", 10000, 20)
    printed(capfd)
    return api


def test_a_webhook_logs_one_json_line_with_its_event_id_and_counts_processed_then_duplicate(plans, capfd):
    """R-PAY-1 delivery, then its duplicate (integration §2 idempotency): `webhook processed` / `webhook duplicate`
    lines carry the event id; WebhooksProcessed 1, then WebhooksDuplicate 1."""
    event = support.envelope("order.paid", support.order_paid(
        "ord-o1", "acc-1", "srv-o1", "new", "2026-01-31T10:00:00+08:00", 10000,
        billing_mode="monthly", plan_id="std", region="cn-north-1", months=1), "evt-obs-1")
    assert plans.deliver("/webhooks/payments", event, support.PAY_SECRET)[0] == 200
    first = printed(capfd)
    [line] = logs(first, "webhook processed")
    assert (line["event_id"], line["event_type"], line["source"], line["level"], line["service"]) == (
        "evt-obs-1", "order.paid", "payments", "INFO", SERVICE)
    assert metrics(first) == Counter({("WebhooksProcessed", ()): 1})

    assert plans.deliver("/webhooks/payments", event, support.PAY_SECRET)[0] == 200
    again = printed(capfd)
    [line] = logs(again, "webhook duplicate")
    assert line["event_id"] == "evt-obs-1"
    assert metrics(again) == Counter({("WebhooksDuplicate", ()): 1})


def test_R_PAY_2_a_held_payment_is_counted_and_logged_with_its_reason(plans, capfd):
    status, body = plans.buy_monthly("srv-h", "2026-01-10T10:00:00+08:00", months=3, amount=29999)
    assert (status, body["outcome"]["decision"]) == (200, "held_for_review")
    objects = printed(capfd)
    [line] = logs(objects, "webhook processed")
    assert (line["held"], line["reason"], line["event_id"]) == (True, "amount_mismatch", body["event_id"])
    assert metrics(objects) == Counter({("WebhooksProcessed", ()): 1, ("PaymentsHeld", ()): 1})


def test_rejected_webhooks_are_counted_by_error_code(plans, capfd):
    """integration §2: a bad signature is 401 invalid_signature, a body that is not an envelope 400 invalid_payload."""
    event = support.envelope("order.paid", {}, "evt-obs-bad")
    assert plans.deliver("/webhooks/payments", event, "wrong-secret")[0] == 401
    assert plans.deliver("/webhooks/payments", event, support.PAY_SECRET)[0] == 400
    objects = printed(capfd)
    assert metrics(objects) == Counter({("WebhooksRejected", (("code", "invalid_signature"),)): 1,
                                        ("WebhooksRejected", (("code", "invalid_payload"),)): 1})
    assert [o["code"] for o in logs(objects, "webhook rejected")] == ["invalid_signature", "invalid_payload"]
    # the envelope parsed before the payload failed, so its line names the event
    assert logs(objects, "webhook rejected")[1]["event_id"] == "evt-obs-bad"


def test_R_LIFE_1_R_NOTE_1_R_CLU_4_a_sweep_counts_visits_notifications_and_a_dead_action(plans, capfd, monkeypatch):
    """The sweep at expiry stops the server (R-LIFE-1) with its notification (R-NOTE-1); the stop action has
    no kubeconfig, and with one attempt allowed it is dead at once (R-CLU-4)."""
    from chalicelib.settings import reset_settings

    plans.buy_monthly("srv-s", "2026-01-01T10:00:00+08:00")
    printed(capfd)
    summary = plans.sweep("2026-02-02T00:10:00+08:00")
    objects = printed(capfd)
    notes = plans.server("srv-s")["notifications"]
    assert (summary["visited"], summary["errors"]) == (1, 0) and notes
    # integration §6: the sweep records its notifications; publishing them is background work (below)
    assert metrics(objects) == Counter({("SweepServersVisited", ()): 1, ("SweepErrors", ()): 0,
                                        ("NotificationsRecorded", ()): len(notes)})
    [line] = logs(objects, "expiry run finished")
    assert line["run_id"] == "sweep:expiry:2026-02-01T16:10:00.000000Z" and "shard" not in line  # all shards
    assert line["summary"]["expire"] == 1
    assert plans.ops("POST", "/ops/background/drain")[1]["succeeded"] == len(notes)
    assert metrics(printed(capfd)) == Counter({("NotificationsSent", ()): len(notes)})

    monkeypatch.setenv("CLUSTER_ACTION_MAX_ATTEMPTS", "1")
    reset_settings()
    printed(capfd)
    status, result = plans.ops("POST", "/ops/cluster-actions/drain")
    assert (status, result["failed"], result["dead"]) == (200, 1, 1)
    objects = printed(capfd)
    assert metrics(objects) == Counter({("ClusterActionsFailed", ()): 1, ("ClusterActionsDead", ()): 1})
    [line] = logs(objects, "cluster action dead")
    action = plans.server("srv-s")["cluster_actions"][0]
    assert (line["action_id"], line["server_id"], line["kind"]) == (action["id"], "srv-s", "stop")
    assert "no kubeconfig for server srv-s" in line["error"]


def test_R_PAY_6_the_scheduled_metering_function_flushes_its_counts(plans, capfd):
    """Two started hours at 20 fen (R-PAY-6) are charged by the `payg_metering` schedule's run: it fans out
    (issue 9) and the shard pieces, run by a background drain, print MeteringHoursCharged 2 in all, each
    piece's log line naming the run and its shard."""
    plans.pay("order.paid", support.order_paid("ord-p", "acc-p", "srv-p", "new", "2026-01-01T00:00:00+08:00", 500,
                                               billing_mode="payg", plan_id="std", region="cn-north-1"))
    printed(capfd)
    event = plans.client.events.generate_cw_event("aws.events", "Scheduled Event", {}, [])
    event["time"] = "2025-12-31T17:30:00Z"  # 01:30 in Asia/Shanghai
    plans.client.lambda_.invoke("payg_metering", event)
    plans.ops("POST", "/ops/background/drain")
    objects = printed(capfd)
    assert metrics(objects) == Counter({("MeteringServersVisited", ()): 1, ("MeteringHoursCharged", ()): 2,
                                        ("MeteringErrors", ()): 0})
    [line] = [line for line in logs(objects, "metering run finished") if line["summary"]["hours"]]
    assert (line["run_id"], line["summary"]["hours"]) == ("sweep:metering:2025-12-31T17:30:00.000000Z", 2)
    assert line["shard"] == line["summary"]["shard"]


def fresh_observability() -> None:
    """observability as a new process has it: Powertools not set up, the app's logger never configured (two
    set-ups in one process were the fault: the second found the logger configured, added no handler, and
    removed the first's)."""
    from aws_lambda_powertools.logging.constants import LOGGER_ATTRIBUTE_PRECONFIGURED

    from chalicelib import observability

    logger = logging.getLogger(SERVICE)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    if hasattr(logger, LOGGER_ATTRIBUTE_PRECONFIGURED):
        delattr(logger, LOGGER_ATTRIBUTE_PRECONFIGURED)
    observability._tools = None


def test_contract_7_the_first_requests_of_a_fresh_app_arriving_together_answer_and_print_well_formed_lines(
        http_api, capfd, monkeypatch):
    """30 first requests at once (15 signed top-ups, 15 ops calls; thread switches every 100 µs) to the app in a
    fresh state: Powertools not set up, no secret read, the secrets only in Secrets Manager. Every one is
    answered 200; Secrets Manager is read once; every printed line is one JSON object; the counts are each
    invocation's own (WebhooksProcessed exactly 15: none lost or counted twice by another request's flush);
    each `webhook processed` line carries its own event id (R-PAY-7 top-ups of 100 fen)."""
    import botocore.client

    from chalicelib import aws, observability
    from chalicelib.settings import reset_settings
    from chalicelib.webhooks import secrets

    aws.client("secretsmanager").create_secret(Name="billing/webhook-secrets", SecretString=json.dumps(
        {"payments": support.PAY_SECRET, "ops": support.OPS_TOKEN}))
    reads, original = [], botocore.client.BaseClient._make_api_call

    def recording(self, operation, params):
        if operation == "GetSecretValue":
            reads.append(params["SecretId"])
        return original(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", recording)
    fresh_observability()
    secrets.reset()
    events = [support.envelope("account.topped_up", {"account_id": f"acc-h{i}", "amount": 100,
                                                     "topped_up_at": "2026-12-05T10:00:00+08:00"}, f"evt-h{i}")
              for i in range(15)]
    barrier, answers = threading.Barrier(30), []

    def webhook(event):
        body = support.dumps(event)
        barrier.wait()
        answers.append(requests.post(http_api + "/webhooks/payments", data=body, timeout=60, headers={
            "Content-Type": "application/json", "X-Signature": support.sign(body, support.PAY_SECRET)}).status_code)

    def ops_call():
        barrier.wait()
        answers.append(requests.get(http_api + "/ops/audit", timeout=60,
                                    headers={"Authorization": f"Bearer {support.OPS_TOKEN}"}).status_code)

    threads = [threading.Thread(target=webhook, args=(e,)) for e in events]
    threads += [threading.Thread(target=ops_call) for _ in range(15)]
    interval = sys.getswitchinterval()
    try:
        with support.environment(PAYMENT_WEBHOOK_SECRETS=None, OPS_API_TOKENS=None,
                                 WEBHOOK_SECRETS_ID="billing/webhook-secrets"):
            reset_settings()
            capfd.readouterr()
            sys.setswitchinterval(1e-4)
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=120)
            objects = printed(capfd)
    finally:
        sys.setswitchinterval(interval)
        secrets.reset()
        reset_settings()
    assert answers == [200] * 30
    assert reads == ["billing/webhook-secrets"]
    assert metrics(objects) == Counter({("WebhooksProcessed", ()): 15})
    assert sorted(line["event_id"] for line in logs(objects, "webhook processed")) == sorted(
        e["id"] for e in events)


def test_each_invocation_prints_its_own_counts_whichever_ends_first(capfd):
    """Two invocations on two threads, interleaved by events: the one that ends first prints only its own
    count, and the other's counts, added before and after that, are printed when it ends."""
    from chalicelib import observability

    counted, first_ended = threading.Event(), threading.Event()

    def long_invocation():
        with observability.invocation():
            observability.count("ClusterActionsSucceeded")
            counted.set()
            first_ended.wait(timeout=60)
            observability.count("ClusterActionsSucceeded")

    thread = threading.Thread(target=long_invocation)
    thread.start()
    assert counted.wait(timeout=60)
    capfd.readouterr()
    with observability.invocation():
        observability.count("NotificationsSent", 3)
    assert metrics(printed(capfd)) == Counter({("NotificationsSent", ()): 3})
    first_ended.set()
    thread.join(timeout=60)
    assert metrics(printed(capfd)) == Counter({("ClusterActionsSucceeded", ()): 2})
