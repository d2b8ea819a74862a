"""Notifications are delivered, not just recorded (integration §6, R-NOTE-1, R-NOTE-2): recorded in the
cause's transaction, published to the `billing-notifications` topic by background work (the drain and
the scheduled `notification_retry`), marked `sent`; a topic outage loses nothing and sends nothing twice."""
from __future__ import annotations

import json
import os
import re

import boto3
import pytest

from tests import support
from tests.support import order_paid

TOPIC = "billing-notifications"


def _client(service):
    return boto3.client(service, region_name=os.environ["AWS_DEFAULT_REGION"], endpoint_url=os.environ["AWS_ENDPOINT_URL"])


def subscribe_queue(name: str = "notification-subscriber") -> str:
    """An SQS queue subscribed to the topic: what a real subscriber of the notifications sees."""
    sns, sqs = _client("sns"), _client("sqs")
    arn = sns.create_topic(Name=TOPIC)["TopicArn"]
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=queue_arn)
    return url


def received(url: str) -> list[dict]:
    """Every message in the queue (SNS envelopes), read until the queue answers empty."""
    return support.take_messages(url)


def expire(api, server_id: str = "srv-1") -> None:
    """A monthly server bought 2026-03-03 10:00 for one month, stopped by the sweep of 2026-04-05."""
    api.buy_monthly(server_id, "2026-03-03T10:00:00+08:00", months=1)
    assert api.sweep("2026-04-05T00:10:00+08:00")["expire"] == 1


def stopped_notes(api, server_id: str = "srv-1") -> list[dict]:
    return [n for n in api.server(server_id)["notifications"] if n["kind"] == "stopped"]


def test_contract_6_R_NOTE_1_a_stopped_notification_leaves_the_system_once_and_shows_sent(priced):
    """integration §6 / R-NOTE-1: the sweep records `stopped` (status recorded, nothing published on the
    request path); one drain publishes it to the topic with its notification_id attribute and its
    target and cause in the body, marks it sent; a second drain publishes nothing."""
    url = subscribe_queue()
    expire(priced)
    [note] = stopped_notes(priced)
    assert note["status"] == "recorded"
    assert received(url) == []
    assert priced.drain_background() == {"ran": 1, "succeeded": 1, "failed": 0, "more": False}
    [message] = received(url)
    assert message["MessageAttributes"]["notification_id"] == {"Type": "String", "Value": note["notification_id"]}
    body = json.loads(message["Message"])
    assert (body["notification_id"], body["target"], body["cause"], body["kind"]) == (
        note["notification_id"], "server#srv-1",
        "stopped#expired#2026-04-03T02:00:00.000000Z#sweep:expiry:2026-04-04T16:10:00.000000Z", "stopped")
    assert body["details"] == {"reason": "expired", "retain_until": "2026-04-11T00:00:00+08:00"}
    assert stopped_notes(priced)[0]["status"] == "sent"
    assert priced.drain_background() == {"ran": 0, "succeeded": 0, "failed": 0, "more": False}
    assert received(url) == []


def test_contract_6_topic_outage_loses_nothing_and_sends_nothing_twice(priced):
    """integration §6: with the topic deleted an expiry sweep still answers 200 and `stopped` stays
    recorded (a drain fails to publish it and keeps it); once the topic exists again (same ARN) one
    drain publishes it exactly once and it shows sent; a further drain publishes nothing."""
    sns = _client("sns")
    arn = sns.create_topic(Name=TOPIC)["TopicArn"]
    sns.delete_topic(TopicArn=arn)
    expire(priced)  # the sweep answers 200 (asserted inside)
    assert stopped_notes(priced)[0]["status"] == "recorded"
    assert priced.drain_background() == {"ran": 1, "succeeded": 0, "failed": 1, "more": False}
    assert stopped_notes(priced)[0]["status"] == "recorded"

    url = subscribe_queue()
    assert sns.create_topic(Name=TOPIC)["TopicArn"] == arn
    assert priced.drain_background() == {"ran": 1, "succeeded": 1, "failed": 0, "more": False}
    messages = received(url)
    assert len(messages) == 1
    note = stopped_notes(priced)[0]
    assert note["status"] == "sent"
    assert messages[0]["MessageAttributes"]["notification_id"]["Value"] == note["notification_id"]
    assert priced.drain_background() == {"ran": 0, "succeeded": 0, "failed": 0, "more": False}
    assert received(url) == []


def test_R_NOTE_1_R_NOTE_2_account_notifications_carry_status_in_the_account_view(priced):
    """integration §6: the account view lists the account's own notifications (arrears R-PAY-7/R-NOTE-1,
    price_change R-NOTE-2) with their status; the scheduled `notification_retry` sends them."""
    priced.pay("order.paid", order_paid("ord-p", "acc-p", "srv-p", "new", "2026-01-01T00:00:00+08:00", 0,
                                        billing_mode="payg", plan_id="std", region="cn-north-1"))
    priced.meter("2026-01-01T01:30:00+08:00")  # two hours at 20 fen: balance -40, arrears
    assert priced.plan("std", 11000, 22, "2099-01-01T00:00:00+08:00")["announced_to"] is None  # queued (§7)
    from chalicelib import background
    from tests.integration.test_fanout import queued_tasks

    [announcement] = queued_tasks()  # run as `background_work` would, without the drain's publishing
    assert background.run(announcement)["announced"] == 1
    notes = priced.account("acc-p")["notifications"]
    assert [(n["kind"], n["status"]) for n in notes] == [("arrears", "recorded"), ("price_change", "recorded")]
    url = subscribe_queue()
    result = priced.client.lambda_.invoke("notification_retry", priced.client.events.generate_cw_event(
        source="aws.events", detail_type="Scheduled Event", detail={}, resources=[]))
    # the account's two and the server's `stopped` (arrears)
    assert result.payload == {"ran": 3, "succeeded": 3, "failed": 0, "handed_on": 0}
    notes = priced.account("acc-p")["notifications"]
    assert [(n["kind"], n["status"]) for n in notes] == [("arrears", "sent"), ("price_change", "sent")]
    server_notes = priced.server("srv-p")["notifications"]
    assert [(n["kind"], n["reason"], n["status"]) for n in server_notes] == [("stopped", "arrears", "sent")]
    ids = sorted(m["MessageAttributes"]["notification_id"]["Value"] for m in received(url))
    assert ids == sorted(n["notification_id"] for n in notes + server_notes)


def test_contract_6_racing_publishers_mark_a_notification_sent_once(priced):
    """Two publishers that both read the same recorded notification: the conditional update marks it
    once; the loser's message is a repeat with the same notification_id (the subscriber drops it)."""
    from chalicelib.notify import outbox
    from chalicelib.store import session as store

    expire(priced)
    rows = [row for shard in map(str, range(store.SHARDS)) for row in store.recorded_notifications(shard, 10)]
    [row] = [r for r in rows if r.doc["kind"] == "stopped"]
    shard = row.pending_shard
    again = next(r for r in store.recorded_notifications(shard, 10) if r.cause == row.cause)
    assert outbox._mark_sent(row) is True
    assert outbox._mark_sent(again) is False
    assert stopped_notes(priced)[0]["status"] == "sent"
    assert [r.cause for r in store.recorded_notifications(shard, 10)] == []


def test_contract_6_the_drain_needs_an_ops_token(priced):
    status, body = priced.ops("POST", "/ops/background/drain", token="wrong")
    assert (status, body["error"]["code"]) == (401, "unauthorized")


def test_contract_6_retry_reads_the_outbox_in_pages(priced):
    """integration §6 / R-NOTE-1: four notifications of one server (one index shard) read one per page:
    all published, each once."""
    from chalicelib.notify import outbox

    url = subscribe_queue()
    priced.buy_monthly("srv-1", "2026-03-03T10:00:00+08:00", months=1)
    for now in ("2026-03-28T00:10:00+08:00", "2026-04-05T00:10:00+08:00", "2026-04-10T00:10:00+08:00",
                "2026-04-11T00:10:00+08:00"):
        priced.sweep(now)
    kinds = [n["kind"] for n in priced.server("srv-1")["notifications"]]
    assert kinds == ["renewal_reminder", "stopped", "destruction_warning", "destroyed"]
    assert outbox.retry_recorded(page_size=1) == {"ran": 4, "succeeded": 4, "failed": 0, "handed_on": 0}
    assert sorted(json.loads(m["Message"])["kind"] for m in received(url)) == sorted(kinds)
    assert {n["status"] for n in priced.server("srv-1")["notifications"]} == {"sent"}
    assert outbox.retry_recorded(page_size=1) == {"ran": 0, "succeeded": 0, "failed": 0, "handed_on": 0}


RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})?")
ALL_KINDS = {"renewal_reminder", "stopped", "destruction_warning", "destroyed", "free_period_granted",
             "free_period_denied", "arrears", "price_change"}


def times_in(value, where: str = "") -> list[tuple[str, str]]:
    """Every RFC 3339 time in a JSON value, with where it is. `cause` is left out: it is the notification's
    key (UTC store keys inside), not a time it tells, and stays as it is so notification ids are stable."""
    if isinstance(value, dict):
        return [t for k, v in value.items() if k != "cause" for t in times_in(v, f"{where}.{k}")]
    if isinstance(value, list):
        return [t for i, v in enumerate(value) for t in times_in(v, f"{where}[{i}]")]
    return [(where, m.group()) for m in RFC3339.finditer(value)] if isinstance(value, str) else []


def test_contract_7_every_time_in_every_notification_kind_is_at_plus_0800(priced):
    """integration §7: every time in a view or a published message is RFC 3339 with +08:00. One of each
    kind, in the server and account views and in the bodies published to the topic (the sweep's `stopped`
    carried its expiry as `2026-04-03T02:00:00Z`)."""
    url = subscribe_queue()
    priced.buy_monthly("srv-1", "2026-03-03T10:00:00+08:00", months=1)  # expires 04-03T10:00
    priced.buy_monthly("srv-g", "2026-03-01T10:00:00+08:00", months=3)
    for kind, at in (("submitted", "2026-03-02T09:00:00+08:00"), ("approved", "2026-03-05T09:00:00+08:00")):
        data = {"filing_id": "f-g", f"{kind}_at": at}
        if kind == "submitted":
            data.update(server_id="srv-g", website="g.example.cn", is_change=False)
        assert priced.ticket(f"filing.{kind}", data)[0] == 200
    for ticket, server_id in (("t-g", "srv-g"), ("t-d", "srv-1")):  # granted; denied server_mismatch
        assert priced.ticket("compensation.requested", {"ticket_id": ticket, "filing_id": "f-g", "server_id": server_id,
                                                        "requested_at": "2026-03-06T09:00:00+08:00"})[0] == 200
        assert priced.ticket("compensation.accepted", {"ticket_id": ticket, "engineer_id": "eng-1",
                                                       "accepted_at": "2026-03-06T10:00:00+08:00"})[0] == 200
    for now in ("2026-03-28T00:10:00+08:00", "2026-04-05T00:10:00+08:00", "2026-04-10T00:10:00+08:00",
                "2026-04-11T00:10:00+08:00"):  # reminder, stopped, warning, destroyed
        priced.sweep(now)
    priced.pay("order.paid", order_paid("ord-p", "acc-p", "srv-p", "new", "2026-01-01T00:00:00+08:00", 0,
                                        billing_mode="payg", plan_id="std", region="cn-north-1"))
    priced.meter("2026-01-01T01:30:00+08:00")  # arrears, and the payg server's `stopped`
    assert priced.plan("std", 11000, 22, "2099-01-01T00:00:00+08:00")["announced_to"] is None  # queued (§7)
    priced.drain_background()  # announces the price change (to acc-1 for srv-g, and acc-p) and publishes everything

    views = [priced.server(sid)["notifications"] for sid in ("srv-1", "srv-g", "srv-p")]
    views += [priced.account(aid)["notifications"] for aid in ("acc-1", "acc-p")]
    shown = [n for notes in views for n in notes]
    bodies = [json.loads(m["Message"]) for m in received(url)]
    assert {n["kind"] for n in shown} == {b["kind"] for b in bodies} == ALL_KINDS
    assert len(bodies) == len(shown)
    found = times_in(shown, "views") + times_in(bodies, "published")
    assert len(found) >= 2 * len(shown)  # at least each one's `at`, twice
    assert [(where, text) for where, text in found if not text.endswith("+08:00")] == []
