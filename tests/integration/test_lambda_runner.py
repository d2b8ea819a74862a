"""The local stack's Lambda (infra/local/lambda_runner.py) against moto's queues, created by bootstrap
with the template's attributes: SQS deliveries as Lambda's poller makes them (delete on success, back
after the visibility timeout on failure, the redrive policy's `maxReceiveCount` then the dead-letter
queue), the function's timeout and concurrency, the schedules' instants and events (integration §3, §7
"The local stack", NOTES.md "what AWS does that the local stack must model")."""
from __future__ import annotations

import json
import socket
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import boto3
import pytest

from infra.local import bootstrap, lambda_runner
from tests.integration import runner_app

UTC = timezone.utc
START = datetime(2026, 12, 5, 15, 58, tzinfo=UTC)
TEST_APP = "tests.integration.runner_app"


@pytest.fixture
def sqs(aws):
    import os

    return boto3.client("sqs", region_name=os.environ["AWS_DEFAULT_REGION"], endpoint_url=os.environ["AWS_ENDPOINT_URL"])


@pytest.fixture
def test_config(tmp_path) -> Path:
    """The test app's functions in a `dev` stage of their own: `flaky` with a 1 s timeout, `held` with two
    reserved slots, `partial` reporting batch item failures (set, as in AWS, on the template's trigger)."""
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"version": "2.0", "app_name": "runner-test", "stages": {"dev": {"lambda_functions": {
        "flaky": {"lambda_timeout": 1, "reserved_concurrency": 1},
        "held": {"lambda_timeout": 60, "reserved_concurrency": 2},
        "partial": {"lambda_timeout": 60, "reserved_concurrency": 1}}}}}))
    return config


@pytest.fixture
def test_template(tmp_path) -> Path:
    template = json.loads(bootstrap.TEMPLATE.read_text())
    template["Resources"]["Partial"] = {"Type": "AWS::Serverless::Function", "Properties": {"Events": {
        "PartialSqsEventSource": {"Properties": {"FunctionResponseTypes": ["ReportBatchItemFailures"]}}}}}
    path = tmp_path / "resources.json"
    path.write_text(json.dumps(template))
    return path


@pytest.fixture
def runner(aws, test_config, test_template):
    import os

    made = []

    def make(*names: str, **kwargs) -> lambda_runner.Runner:
        made.append(lambda_runner.Runner(runner_app.app, region=os.environ["AWS_DEFAULT_REGION"],
                                         endpoint=os.environ["AWS_ENDPOINT_URL"], module=TEST_APP,
                                         config_path=test_config, template_path=test_template, only=set(names),
                                         clock=lambda: START, **kwargs))
        return made[-1]
    yield make
    for r in made:
        r.stop()


class Gate:
    """Invocations that `hold` connect here and wait until the gate opens; it counts how many wait at once."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.waiting: list[socket.socket] = []
        self.most_at_once = 0
        self.changed = threading.Condition()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with self.changed:
                self.waiting.append(conn)
                self.most_at_once = max(self.most_at_once, len(self.waiting))
                self.changed.notify_all()

    def wait_for(self, n: int) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.waiting) >= n, timeout=120), len(self.waiting)

    def open(self) -> None:
        with self.changed:
            for conn in self.waiting:
                conn.sendall(b"!")
                conn.close()
            self.waiting.clear()

    def close(self) -> None:
        self.open()
        self.server.close()


def send(sqs, queue: str, *orders: dict) -> str:
    url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
    for order in orders:
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(order))
    return url


def waiting(sqs, url: str) -> tuple[int, int]:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages",
                                                                        "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]), int(attributes["ApproximateNumberOfMessagesNotVisible"])


def test_settings_come_from_the_app_the_stage_config_and_the_template():
    """The deployed values, read at run time: .chalice/config.json's dev stage and the app's triggers."""
    import app as real_app

    sources = {s.name: s for s in real_app.app.event_sources}
    actions = lambda_runner.function_settings("cluster_actions", sources["cluster_actions"].handler_string)
    assert (actions.handler, actions.timeout, actions.memory, actions.reserved_concurrency) == ("cluster_actions", 900, 512, 10)
    assert actions.environment["CLUSTER_ACTIONS_QUEUE"] == "billing-cluster-actions"
    assert "CLUSTER_ACTIONS_INLINE" not in actions.environment  # the API's setting, not this function's
    sweep = lambda_runner.function_settings("expiry_sweep", "app.expiry_sweep")
    assert (sweep.timeout, sweep.reserved_concurrency, sweep.dead_letter_queue) == (60, 1, "billing-scheduled-dlq")


def test_a_message_is_delivered_in_lambdas_event_and_deleted_on_success(runner, sqs):
    url = send(sqs, "billing-cluster-actions", {"do": "ok"})
    trigger = runner("flaky").triggers["flaky"]
    assert trigger.poll_once() == 1
    assert waiting(sqs, url) == (0, 0)
    assert (trigger.counts.invocations, trigger.counts.deleted, trigger.counts.failed) == (1, 1, 0)


def test_the_event_has_lambdas_sqs_shape():
    message = {"MessageId": "m-1", "ReceiptHandle": "r-1", "Body": "{}", "MD5OfBody": "99914b932bd37a50b983c5e7c90ae93b",
               "Attributes": {"ApproximateReceiveCount": "2", "SentTimestamp": "1796478169928"},
               "MessageAttributes": {"kind": {"StringValue": "wake", "DataType": "String"}}}
    event = lambda_runner.sqs_event([message], "arn:aws:sqs:us-east-1:123456789012:q", "us-east-1")
    assert event == {"Records": [{
        "messageId": "m-1", "receiptHandle": "r-1", "body": "{}",
        "attributes": {"ApproximateReceiveCount": "2", "SentTimestamp": "1796478169928"},
        "messageAttributes": {"kind": {"stringValue": "wake", "binaryValue": None, "stringListValues": [],
                                       "binaryListValues": [], "dataType": "String"}},
        "md5OfBody": "99914b932bd37a50b983c5e7c90ae93b", "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q", "awsRegion": "us-east-1"}]}


def test_a_failing_message_comes_back_until_max_receive_count_then_lands_in_the_dead_letter_queue(runner, sqs):
    """The template's redrive policy on billing-cluster-actions: maxReceiveCount 8. Visibility 0 here so
    each failure is visible again at once (the template's 960 s would hold it for 16 minutes)."""
    url = send(sqs, "billing-cluster-actions", {"do": "fail", "n": 1})
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "0"})
    trigger = runner("flaky").triggers["flaky"]
    received = [trigger.poll_once() for _ in range(10)]
    assert received == [1] * 8 + [0, 0]
    assert (trigger.counts.invocations, trigger.counts.failed, trigger.counts.deleted, trigger.counts.most_receives) == (8, 8, 0, 8)
    dlq = sqs.get_queue_url(QueueName="billing-cluster-actions-dlq")["QueueUrl"]
    [dead] = sqs.receive_message(QueueUrl=dlq, AttributeNames=["All"])["Messages"]
    assert json.loads(dead["Body"]) == {"do": "fail", "n": 1}
    assert waiting(sqs, url) == (0, 0)


def test_a_failed_message_waits_out_the_template_visibility_timeout(runner, sqs):
    url = send(sqs, "billing-cluster-actions", {"do": "fail"})
    trigger = runner("flaky").triggers["flaky"]
    assert (trigger.poll_once(), trigger.poll_once()) == (1, 0)
    assert waiting(sqs, url) == (0, 1)  # in flight for 960 s, not deleted


def one_record(order: dict) -> dict:
    return lambda_runner.sqs_event([{"MessageId": "m", "ReceiptHandle": "r", "Body": json.dumps(order), "MD5OfBody": "",
                                     "Attributes": {"ApproximateReceiveCount": "1"}}], "arn:test", "us-east-1")


def test_an_invocation_past_its_timeout_is_cut_and_the_next_one_starts_a_fresh_environment(runner, sqs):
    """`flaky` has a 1 s timeout: the hanging invocation is cut, its (warm) process killed, its message
    kept for the visibility timeout; the next invocation runs in a new process whose context counts
    down from 1 000 ms."""
    trigger = runner("flaky").triggers["flaky"]
    warm = trigger.function.invoke(one_record({"do": "ok"}))
    url = send(sqs, "billing-cluster-actions", {"do": "hang"})
    assert trigger.poll_once() == 1
    assert (trigger.counts.invocations, trigger.counts.failed, trigger.counts.deleted) == (1, 1, 0)
    assert waiting(sqs, url) == (0, 1)
    fresh = trigger.function.invoke(one_record({"do": "ok"}))
    assert (warm.status, fresh.status, trigger.function.started) == ("ok", "ok", 2)
    assert fresh.pid != warm.pid
    [answer] = fresh.result
    assert 0 < answer["remaining_ms"] <= 1000
    cut = trigger.function.invoke(one_record({"do": "hang"}))
    assert (cut.status, cut.error, cut.pid) == ("timeout", "Task timed out after 1.00 seconds", fresh.pid)


def test_reserved_concurrency_caps_invocations_and_each_slot_keeps_its_environment_warm(runner, sqs):
    """`held`: two reserved slots, `maximum_concurrency` 2 (two pollers). Six messages that each wait at
    the gate: never more than two at once, all six done, in two environments."""
    gate = Gate()
    try:
        url = send(sqs, "billing-background", *({"do": "hold", "gate": gate.port} for _ in range(6)))
        r = runner("held").start()
        for _ in range(3):
            gate.wait_for(2)
            gate.open()
        trigger = r.triggers["held"]
        r.stop()
    finally:
        gate.close()
    assert (gate.most_at_once, trigger.pollers, trigger.function.started) == (2, 2, 2)
    assert (trigger.counts.invocations, trigger.counts.deleted, trigger.counts.throttled) == (6, 6, 0)
    assert waiting(sqs, url) == (0, 0)


def test_a_poller_finding_every_slot_busy_is_throttled_and_its_message_counts_a_receive(runner, sqs):
    """Without `maximum_concurrency` the trigger polls whatever the reserved concurrency: a batch received
    while the one slot is busy goes back for the visibility timeout, its receive counted (NOTES.md)."""
    gate = Gate()
    r = runner("flaky")
    trigger = r.triggers["flaky"]
    busy = threading.Thread(target=trigger.function.invoke, args=(one_record({"do": "hold", "gate": gate.port}),))
    try:
        busy.start()
        gate.wait_for(1)
        url = send(sqs, "billing-cluster-actions", {"do": "ok"})
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "0"})
        assert trigger.poll_once() == 1
        assert (trigger.counts.throttled, trigger.counts.invocations) == (1, 0)
    finally:
        gate.close()
        busy.join()
    [message] = sqs.receive_message(QueueUrl=url, AttributeNames=["All"])["Messages"]
    assert message["Attributes"]["ApproximateReceiveCount"] == "2"


def test_report_batch_item_failures_keeps_only_the_failed_messages(runner, sqs):
    url = send(sqs, "billing-background", {"do": "ok", "n": 1}, {"do": "fail", "n": 2}, {"do": "ok", "n": 3})
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "0"})
    trigger = runner("partial").triggers["partial"]
    assert trigger.function.settings.report_batch_item_failures
    assert trigger.poll_once() == 3
    assert (trigger.counts.deleted, trigger.counts.failed) == (2, 0)
    [left] = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert json.loads(left["Body"]) == {"do": "fail", "n": 2}


def test_contract_3_schedules_fire_at_their_instants_on_the_injected_clock():
    """expiry_sweep daily at 00:10 Asia/Shanghai (16:10 UTC); metering hourly; notification retries at
    least every 5 minutes (integration §6); stale cluster actions woken every 5 minutes (integration §3):
    instants from the app's own schedules, on a clock given."""
    import app as real_app

    expressions = {s.name: s.schedule_expression for s in real_app.app.event_sources if hasattr(s, "schedule_expression")}
    schedules = lambda_runner.Schedules(expressions, START)
    assert schedules.due(START) == []
    day = schedules.due(START + timedelta(days=1))
    by_name = {name: [t for n, t in day if n == name] for name in expressions}
    assert sorted(by_name) == ["cluster_actions_rewake", "expiry_sweep", "notification_retry", "payg_metering"]
    assert len(by_name["cluster_actions_rewake"]) == 24 * 12  # every 5 minutes: a lost wake-up waits no longer
    assert by_name["expiry_sweep"] == [datetime(2026, 12, 5, 16, 10, tzinfo=UTC)]
    assert len(by_name["payg_metering"]) == 24
    assert {b - a for a, b in zip(by_name["payg_metering"], by_name["payg_metering"][1:])} == {timedelta(hours=1)}
    assert {t.minute for t in by_name["payg_metering"]} == {0}  # cron(0 * * * ? *): on the hour
    retries = [START] + by_name["notification_retry"]
    assert max(b - a for a, b in zip(retries, retries[1:])) <= timedelta(minutes=5)
    assert [t for n, t in schedules.due(datetime(2026, 12, 7, 16, 10, tzinfo=UTC)) if n == "expiry_sweep"] == [
        datetime(2026, 12, 6, 16, 10, tzinfo=UTC), datetime(2026, 12, 7, 16, 10, tzinfo=UTC)]
    assert day == sorted(day, key=lambda pair: pair[1])


def test_a_scheduled_function_gets_eventbridges_event_with_the_scheduled_instant(runner):
    r = runner("tick")
    assert r.schedules.due(START + timedelta(minutes=1)) == [("tick", START + timedelta(minutes=1))]
    outcome = r.fire("tick", datetime(2026, 12, 5, 16, 10, tzinfo=UTC))
    assert outcome.result == {"time": "2026-12-05T16:10:00Z", "detail_type": "Scheduled Event", "source": "aws.events"}


def test_the_real_expiry_sweep_fans_out_and_background_work_runs_its_shards_recording_no_audit(priced, aws):
    """integration §3/§7 through the deployed handlers: `expiry_sweep` fired at 00:10 Asia/Shanghai on
    2026-05-01 queues its shards, `background_work` takes them off billing-background, and the server
    paid until 2026-04-30T10:00+08:00 is stopped as expired (R-LIFE-1). A run the runner starts is no
    operator's: the ops audit trail holds only the plan's price version."""
    import os

    assert priced.buy_monthly("srv-run", "2026-01-31T10:00:00+08:00", months=3)[0] == 200
    import app as real_app

    r = lambda_runner.Runner(real_app.app, region=os.environ["AWS_DEFAULT_REGION"], endpoint=os.environ["AWS_ENDPOINT_URL"],
                             only={"expiry_sweep", "background_work"}, clock=lambda: START)
    try:
        assert r.fire("expiry_sweep", datetime(2026, 4, 30, 16, 10, tzinfo=UTC)).ok
        trigger = r.triggers["background_work"]
        while trigger.poll_once():
            pass
    finally:
        r.stop()
    from chalicelib.store.session import SHARDS

    # one invocation per shard (batch size 1), each deleted
    assert (trigger.counts.invocations, trigger.counts.deleted, trigger.counts.failed) == (SHARDS, SHARDS, 0)
    view = priced.server("srv-run")
    assert (view["state"], view["stop_reason"]) == ("stopped", "expired")
    status, audit = priced.ops("GET", "/ops/audit")
    assert (status, [(e["action"], e["actor"]) for e in audit["items"]]) == (200, [("price_version", "operator")])
