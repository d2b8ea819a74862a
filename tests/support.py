"""Helpers shared by the tests: an emulator over HTTP, signed deliveries, event builders."""
from __future__ import annotations

import collections
import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from contextlib import contextmanager

from pathlib import Path

import stripe

ROOT = Path(__file__).resolve().parents[1]

PAY_SECRET = "pay_test_secret"
PAY_SECRET_OLD = "pay_old_secret"
TICKET_SECRET = "ticket_test_secret"
OPS_TOKEN = "ops-test-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def take_messages(queue_url: str) -> list[dict]:
    """Every message in an emulator's SQS queue (JSON bodies), taken off it, read until it answers empty."""
    import boto3

    sqs = boto3.client("sqs", region_name=os.environ["AWS_DEFAULT_REGION"], endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    bodies = []
    while True:
        batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not batch:
            return bodies
        for message in batch:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def sign(body: bytes, secret: str, timestamp: int | None = None) -> str:
    """An independent signer (Stripe's format is the contract's); raw HMAC for bodies that are not UTF-8."""
    t = timestamp if timestamp is not None else int(time.time())
    try:
        return stripe.WebhookSignature.generate_signature_header(body.decode(), secret, t)
    except UnicodeDecodeError:
        digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
        return f"t={t},v1={digest}"


def envelope(event_type: str, data: dict, event_id: str | None = None,
             created_at: str = "2026-01-01T00:00:00+08:00") -> dict:
    return {"id": event_id or f"evt_{uuid.uuid4().hex[:12]}", "type": event_type, "created_at": created_at, "data": data}


def order_paid(order_id, account_id, server_id, kind, paid_at, amount, **extra) -> dict:
    data = {"order_id": order_id, "account_id": account_id, "server_id": server_id, "kind": kind,
            "paid_at": paid_at, "amount": amount, "currency": "CNY"}
    data.update(extra)
    return data


def filing(api, filing_id, server, steps, is_change=False):
    """A filing's ticketing events through `api` (the integration harness): steps [(kind, at)], kind in
    submitted / withdrawn / rejected / approved; answers the last event's outcome."""
    for kind, at in steps:
        data = {"filing_id": filing_id, f"{kind}_at": at}
        if kind == "submitted":
            data.update(server_id=server, website=f"{filing_id}.example.cn", is_change=is_change)
        status, body = api.ticket(f"filing.{kind}", data)
        assert status == 200, body
    return body["outcome"]


def apply(api, ticket, filing_id, server, requested_at, accepted_at):
    """A free-period application (compensation.requested, then .accepted by an engineer): both outcomes."""
    status, requested = api.ticket("compensation.requested", {"ticket_id": ticket, "filing_id": filing_id,
                                                              "server_id": server, "requested_at": requested_at})
    assert status == 200, requested
    status, accepted = api.ticket("compensation.accepted", {"ticket_id": ticket, "engineer_id": "eng-7",
                                                            "accepted_at": accepted_at})
    assert status == 200, accepted
    return requested["outcome"], accepted["outcome"]


@contextmanager
def environment(**values):
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update({k: v for k, v in values.items() if v is not None})
    for k, v in values.items():
        if v is None:
            os.environ.pop(k, None)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def dumps(value) -> bytes:
    return json.dumps(value).encode()


@contextmanager
def local_stack(dynamodb: str = "moto", **settings: str):
    """The local stack exactly as the README starts it (`make run`, or `DYNAMODB=local make run` with
    dynamodb="dynamodb-local", its data in memory), on free ports, schedules off, the local default
    secrets, unless `settings` (environment variables such as OPS_API_TOKENS or LOCAL_SCHEDULES="1") say
    otherwise; stopped with Ctrl-C (SIGINT to its process group) at the end. A stack that exits before
    it is ready raises RuntimeError with its output."""
    api_port, aws_port, ddb_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PAYMENT_", "TICKETING_", "OPS_", "AWS_ENDPOINT", "DYNAMODB", "TABLE_PREFIX"))}
    env.update(API_PORT=str(api_port), AWS_EMULATOR_PORT=str(aws_port), LOCAL_SCHEDULES="0")
    env.update(settings)
    if dynamodb == "dynamodb-local":
        env.update(DYNAMODB="local", DYNAMODB_DATA="memory", DYNAMODB_LOCAL_PORT=str(ddb_port))
    env.pop("ALLOW_CLOCK_OVERRIDE", None)
    proc = subprocess.Popen(["make", "--no-print-directory", "run"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines = []
    for line in proc.stdout:  # blocks until the stack says it is ready (or exits)
        lines.append(line)
        if "[local-stack] ready" in line:
            break
    else:
        proc.wait(timeout=30)
        raise RuntimeError(f"local stack did not start (exit {proc.returncode}):\n" + "".join(lines))
    # keep reading its output so the API server, which logs every request, never blocks on a full pipe
    tail = collections.deque(lines, maxlen=400)
    seen = {"lines": 0}  # lines read so far, for wait_for_log
    arrived = threading.Condition()

    def read() -> None:
        for line in proc.stdout:
            with arrived:
                tail.append(line)
                seen["lines"] += 1
                arrived.notify_all()

    def wait_for_log(text: str, timeout: float = 120.0) -> str:
        """The first line containing `text` the stack prints from now on (what it prints is the event)."""
        with arrived:
            start = seen["lines"]
            found = []

            def printed() -> bool:
                new = list(tail)[-(seen["lines"] - start):] if seen["lines"] > start else []
                found[:] = [line for line in new if text in line]
                return bool(found)
            if not arrived.wait_for(printed, timeout):
                raise AssertionError(f"the stack printed no line with {text!r} within {timeout} s")
            return found[0]

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        yield {"api": f"http://127.0.0.1:{api_port}", "aws": f"http://127.0.0.1:{aws_port}", "proc": proc,
               "api_port": api_port, "aws_port": aws_port, "log": tail, "dynamodb": dynamodb,
               "dynamodb_port": ddb_port if dynamodb == "dynamodb-local" else None, "wait_for_log": wait_for_log}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(timeout=30)
        reader.join(timeout=30)
        ports = [api_port, aws_port] + ([ddb_port] if dynamodb == "dynamodb-local" else [])
        left = [port for port in ports if _listening(port)]
        if left:  # Ctrl-C must stop everything the stack started (DynamoDB Local's JVM included)
            raise RuntimeError(f"local stack stopped, but ports {left} still listen")


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0
