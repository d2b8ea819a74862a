"""End to end: start the local stack exactly as the README does (`make run`), on free ports, send
signed events over HTTP, read the views, stop it with Ctrl-C (SIGINT to its process group)."""
from __future__ import annotations

import json
import os
import signal
import socket
from pathlib import Path

import pytest
import requests

from tests import support

ROOT = Path(__file__).resolve().parents[2]
LOCAL_PAY_SECRET = "local_payments_secret"
LOCAL_TOKEN = "local-ops-token"


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def stack():
    with support.local_stack() as running:
        yield running


def send(stack, event: dict, secret=LOCAL_PAY_SECRET, path="/webhooks/payments"):
    body = json.dumps(event).encode()
    return requests.post(stack["api"] + path, data=body, timeout=30,
                         headers={"Content-Type": "application/json", "X-Signature": support.sign(body, secret)})


def ops(stack, method, path, body=None):
    return requests.request(method, stack["api"] + path, json=body, timeout=60,
                            headers={"Authorization": f"Bearer {LOCAL_TOKEN}"})


def test_signed_order_then_server_view_over_http(stack):
    event = support.envelope("order.paid", support.order_paid(
        "ord-e2e", "acc-e2e", "srv-e2e", "new", "2026-01-31T10:00:00+08:00", 30000,
        billing_mode="monthly", plan_id="std-2c4g", region="cn-north-1", months=3), "evt-e2e-1")
    response = send(stack, event)
    assert response.status_code == 200, response.text
    assert response.json()["outcome"]["server"] == {"server_id": "srv-e2e", "state": "active",
                                                    "expires_at": "2026-04-30T10:00:00+08:00"}
    assert send(stack, event).json()["result"] == "duplicate"
    view = ops(stack, "GET", "/ops/servers/srv-e2e").json()
    assert (view["plan_id"], view["expires_at"], view["ledger"][0]["cash"]) == ("std-2c4g", "2026-04-30T10:00:00+08:00", 30000)


def test_local_defaults_allow_the_clock_override_and_refuse_bad_input(stack):
    summary = ops(stack, "POST", "/ops/sweeps/expiry", {"now": "2026-05-01T00:10:00+08:00"}).json()
    assert summary["expire"] >= 1
    assert ops(stack, "GET", "/ops/servers/srv-e2e").json()["stop_reason"] == "expired"
    assert send(stack, {"id": "x"}, secret="wrong").status_code == 401
    assert requests.get(stack["api"] + "/ops/servers/srv-e2e", timeout=10).status_code == 401


def test_contract_6_R_NOTE_1_a_notification_leaves_the_stack_on_a_background_drain(stack):
    """CONTRACT §6 / R-NOTE-1 through `make run` (schedules off): the sweep records `stopped`; one
    `POST /ops/background/drain` publishes it to the emulator's `billing-notifications` topic, where a
    subscribed queue receives it once with its notification_id; the view then shows it sent."""
    import boto3

    session = boto3.session.Session(region_name="us-east-1", aws_access_key_id="local", aws_secret_access_key="local")
    sns, sqs = (session.client(name, endpoint_url=stack["aws"]) for name in ("sns", "sqs"))
    url = sqs.create_queue(QueueName="e2e-notifications")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=sns.create_topic(Name="billing-notifications")["TopicArn"], Protocol="sqs", Endpoint=queue_arn)
    event = support.envelope("order.paid", support.order_paid(
        "ord-e2e-n", "acc-e2e-n", "srv-e2e-n", "new", "2026-01-31T10:00:00+08:00", 10000,
        billing_mode="monthly", plan_id="std-2c4g", region="cn-north-1", months=1), "evt-e2e-n")
    assert send(stack, event).status_code == 200
    assert ops(stack, "POST", "/ops/sweeps/expiry", {"now": "2026-03-01T00:10:00+08:00"}).status_code == 200
    [note] = [n for n in ops(stack, "GET", "/ops/servers/srv-e2e-n").json()["notifications"] if n["kind"] == "stopped"]
    assert note["status"] == "recorded"
    drained = ops(stack, "POST", "/ops/background/drain").json()
    assert drained["succeeded"] >= 1 and drained["failed"] == 0
    bodies = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        bodies += [json.loads(m["Body"]) for m in batch]
        for m in batch:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    mine = [b for b in bodies if b["MessageAttributes"]["notification_id"]["Value"] == note["notification_id"]]
    assert len(mine) == 1 and json.loads(mine[0]["Message"])["target"] == "server#srv-e2e-n"
    [note] = [n for n in ops(stack, "GET", "/ops/servers/srv-e2e-n").json()["notifications"] if n["kind"] == "stopped"]
    assert note["status"] == "sent"
    assert ops(stack, "POST", "/ops/background/drain").json() == {"ran": 0, "succeeded": 0, "failed": 0}


def test_ctrl_c_stops_everything_it_started(stack):
    os.killpg(stack["proc"].pid, signal.SIGINT)
    assert stack["proc"].wait(timeout=30) is not None
    assert not _port_open(stack["api_port"])
    assert not _port_open(stack["aws_port"])
