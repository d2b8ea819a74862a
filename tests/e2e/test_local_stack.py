"""End to end: start the local stack exactly as the README does (`make run`, and `DYNAMODB=local make
run`), on free ports, send signed events over HTTP, read the views, stop it with Ctrl-C (SIGINT to its
process group). Each test brings its own servers and accounts, so none depends on another's data or
on the order they run in."""
from __future__ import annotations

import json
import os
import signal
import socket
import threading
from pathlib import Path

import pytest
import requests

from tests import support

ROOT = Path(__file__).resolve().parents[2]
LOCAL_PAY_SECRET = "local_payments_secret"
LOCAL_TOKEN = "local-ops-token"
BURST = 150


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def moto_stack():
    with support.local_stack("moto") as running:
        yield running


@pytest.fixture(scope="module")
def dynamodb_local_stack():
    with support.local_stack("dynamodb-local") as running:
        yield running


@pytest.fixture(params=["moto", "dynamodb-local"])
def stack(request):
    """One stack per backend for the module; two fixtures rather than one parametrized one, so a shuffled
    test order never stops and restarts them."""
    return request.getfixturevalue(request.param.replace("-", "_") + "_stack")


def send(stack, event: dict, secret=LOCAL_PAY_SECRET, path="/webhooks/payments"):
    body = json.dumps(event).encode()
    return requests.post(stack["api"] + path, data=body, timeout=120,
                         headers={"Content-Type": "application/json", "X-Signature": support.sign(body, secret)})


def ops(stack, method, path, body=None):
    return requests.request(method, stack["api"] + path, json=body, timeout=60,
                            headers={"Authorization": f"Bearer {LOCAL_TOKEN}"})


def new_monthly(server: str, account: str, paid_at="2026-01-31T10:00:00+08:00", months=3) -> dict:
    return support.envelope("order.paid", support.order_paid(
        f"ord-{server}", account, server, "new", paid_at, 10000 * months,
        billing_mode="monthly", plan_id="std-2c4g", region="cn-north-1", months=months), f"evt-{server}")


def test_signed_order_then_server_view_over_http(stack):
    event = new_monthly("srv-e2e", "acc-e2e")
    response = send(stack, event)
    assert response.status_code == 200, response.text
    assert response.json()["outcome"]["server"] == {"server_id": "srv-e2e", "state": "active",
                                                    "expires_at": "2026-04-30T10:00:00+08:00"}
    assert send(stack, event).json()["result"] == "duplicate"
    view = ops(stack, "GET", "/ops/servers/srv-e2e").json()
    assert (view["plan_id"], view["expires_at"], view["ledger"][0]["cash"]) == ("std-2c4g", "2026-04-30T10:00:00+08:00", 30000)


def test_local_defaults_allow_the_clock_override_and_refuse_bad_input(stack):
    """R-LIFE-1 through the local defaults: an ops `now` is honoured (ALLOW_CLOCK_OVERRIDE=1)."""
    assert send(stack, new_monthly("srv-clock", "acc-clock")).status_code == 200
    summary = ops(stack, "POST", "/ops/sweeps/expiry", {"now": "2026-05-01T00:10:00+08:00"}).json()
    assert summary["now"] == "2026-05-01T00:10:00+08:00" and summary["errors"] == 0
    view = ops(stack, "GET", "/ops/servers/srv-clock").json()
    assert (view["state"], view["stop_reason"]) == ("stopped", "expired")
    assert send(stack, {"id": "x"}, secret="wrong").status_code == 401
    assert requests.get(stack["api"] + "/ops/servers/srv-clock", timeout=10).status_code == 401


def test_contract_6_R_NOTE_1_a_notification_leaves_the_stack_on_a_background_drain(stack):
    """integration §6 / R-NOTE-1 through `make run` (schedules off): the sweep records `stopped`; one
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
    assert ops(stack, "POST", "/ops/background/drain").json() == {"ran": 0, "succeeded": 0, "failed": 0, "more": False}


def test_a_burst_of_150_new_orders_is_taken_and_applied(stack):
    """integration §6 "Volume": 150 simultaneous connections, each a new order (alternately a monthly and a
    pay-as-you-go server, 10 accounts); none refused or reset; each answers 200, or 429 busy (integration
    §7: distinct events racing on one account) which the sender retries; every server is then applied
    exactly once."""
    barrier, answers, failures = threading.Barrier(BURST), {}, []

    def order(i: int) -> None:
        server, account = f"srv-burst-{i}", f"acc-burst-{i % 10}"
        if i % 2:
            event = new_monthly(server, account, paid_at="2026-06-01T10:00:00+08:00", months=1)
        else:
            event = support.envelope("order.paid", support.order_paid(
                f"ord-{server}", account, server, "new", "2026-06-01T10:00:00+08:00", 0,
                billing_mode="payg", plan_id="std-2c4g", region="cn-north-1"), f"evt-{server}")
        barrier.wait()
        try:
            statuses = []
            for _ in range(20):  # a sender's retries of busy
                response = send(stack, event)
                statuses.append(response.status_code)
                if response.status_code != 429:
                    break
                assert response.json()["error"]["code"] == "busy", response.text
            answers[i] = (statuses, response.json())
        except Exception as exc:  # noqa: BLE001 - a refused or reset connection lands here
            failures.append(f"{i}: {exc!r}")

    threads = [threading.Thread(target=order, args=(i,)) for i in range(BURST)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert sorted(answers) == list(range(BURST))
    for i, (statuses, body) in answers.items():
        assert statuses[-1] == 200 and set(statuses[:-1]) <= {429}, (i, statuses, body)
        assert body["result"] == "processed", (i, body)
        assert body["outcome"]["server"] == {"server_id": f"srv-burst-{i}", "state": "active",
                                             "expires_at": "2026-07-01T10:00:00+08:00" if i % 2 else None}, (i, body)
    for a in range(10):  # R-LIFE-7: each account's ledger holds exactly one order row per server
        view = ops(stack, "GET", f"/ops/accounts/acc-burst-{a}").json()
        mine = [i for i in range(BURST) if i % 10 == a]
        assert sorted(view["servers"]) == sorted(f"srv-burst-{i}" for i in mine)
        assert sorted((r["server_id"], r["kind"], r["cash"]) for r in view["ledger"]) == sorted(
            (f"srv-burst-{i}", "order_paid", 10000 if i % 2 else 0) for i in mine)


def test_unknown_methods_answer_405_in_json(stack):
    """Methods the API does not serve (TRACE, CONNECT, …) answer 405 with the contract's error body, not 501."""
    for method in ("TRACE", "PROPFIND"):
        response = requests.request(method, stack["api"] + "/ops/servers/srv-any", timeout=10)
        assert response.status_code == 405
        assert response.json()["error"]["code"] == "method_not_allowed"
        assert "GET" in response.headers["Allow"]


def test_ctrl_c_stops_everything_it_started():
    """A stack of its own (the other tests keep theirs running): Ctrl-C stops the API and moto. Every
    stack the tests start, DYNAMODB=local ones included, is also checked on the way out
    (support.local_stack: no port left listening)."""
    with support.local_stack("moto") as running:
        ports = [running["api_port"], running["aws_port"]]
        assert all(_port_open(port) for port in ports)
        os.killpg(running["proc"].pid, signal.SIGINT)
        assert running["proc"].wait(timeout=30) is not None
        assert [port for port in ports if _port_open(port)] == []


def test_contract_7_a_bad_token_configuration_refuses_to_start():
    """integration §7 "The local stack" / §6 "Operators are named": one token under two names is refused
    with the reason, before anything is started."""
    with pytest.raises(RuntimeError) as refused:
        with support.local_stack("moto", OPS_API_TOKENS="alice:t1,bob:t1"):
            pass
    message = str(refused.value)
    assert "local stack did not start (exit 2)" in message
    assert ("[local-stack] refusing to start: OPS_API_TOKENS is misconfigured: entry 2 repeats the token of "
            "entry 1 (names 'alice' and 'bob'); each token must name one operator") in message


@pytest.mark.parametrize("dynamodb", ["moto", "dynamodb-local"])
def test_contract_7_named_tokens_only_and_the_stacks_own_work_is_no_operators(dynamodb):
    """integration §7 "The local stack": `OPS_API_TOKENS=alice:t1,bob:t2` starts the stack with its functions
    on; the seed plans are recorded under `local-stack`; a price change alice makes is announced by
    `background_work` fed from its queue (no drain by hand), and the ops audit trail then holds the seed,
    alice's change and nothing the stack ran by itself (R-NOTE-2: the account is told of the new price)."""
    with support.local_stack(dynamodb, OPS_API_TOKENS="alice:t1,bob:t2", LOCAL_SCHEDULES="1") as running:
        def as_(token, method, path, body=None):
            return requests.request(method, running["api"] + path, json=body, timeout=60,
                                    headers={"Authorization": f"Bearer {token}"})

        assert as_(LOCAL_TOKEN, "GET", "/ops/audit").status_code == 401  # the default is not added to named ones
        assert send(running, new_monthly("srv-named", "acc-named")).status_code == 200
        changed = as_("t1", "PUT", "/ops/plans/std-2c4g",
                      {"monthly_price": 12000, "hourly_price": 24, "effective_from": "2030-01-01T00:00:00+08:00"})
        # integration §7: queued without reading the plan's servers; the run counts what was announced
        assert changed.status_code == 200 and changed.json()["announced_to"] is None
        assert changed.json()["announcement_run"]
        running["wait_for_log"]("[local-stack] background_work: 1 message(s) ok")
        notes = as_("t2", "GET", "/ops/accounts/acc-named").json()["notifications"]
        assert [(n["kind"], n["monthly_price"], n["effective_from"]) for n in notes] == [
            ("price_change", 12000, "2030-01-01T00:00:00+08:00")]
        audit = as_("t2", "GET", "/ops/audit").json()
        assert [(e["action"], e["actor"], e.get("plan_id")) for e in audit["items"]] == [
            ("price_version", "local-stack", "std-2c4g"), ("price_version", "local-stack", "pro-4c8g"),
            ("price_version", "alice", "std-2c4g")]
