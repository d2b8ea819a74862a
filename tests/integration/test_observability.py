"""Structured logs and embedded metrics (issue 11 item 3): every line an invocation prints is one JSON object
carrying its correlation keys, and the counts an on-call engineer alarms on appear in the CloudWatch
embedded-metric (EMF) objects it prints, in the namespace and dimensions the alarms of infra/resources.json use."""
from __future__ import annotations

import json
from collections import Counter

import pytest

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
