"""Shared by the bench scripts: paths, a fake local AWS environment, a moto server on loopback with the
tables of infra/resources.json, signed deliveries, and one botocore hook (counting, fault injection).
Every script ends with `summary(...)` lines, which bench/run_all.py collects into one table."""
from __future__ import annotations

import functools
import hashlib
import hmac
import json
import os
import socket
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS = ROOT / "functions"
for _p in (str(ROOT), str(FUNCTIONS)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

PAY_SECRET = "bench_pay_secret"
TICKET_SECRET = "bench_ticket_secret"
OPS_TOKEN = "bench-ops-token"
LOOPBACK = "127.0.0.1"

BENCH_ENV = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_EC2_METADATA_DISABLED": "true",  # never probe the instance metadata service
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
    "PAYMENT_WEBHOOK_SECRETS": PAY_SECRET,
    "TICKETING_WEBHOOK_SECRETS": TICKET_SECRET,
    "OPS_API_TOKENS": OPS_TOKEN,
    "ALLOW_CLOCK_OVERRIDE": "1",
    "CLUSTER_RETRY_BASE_SECONDS": "0",
}


def set_env() -> None:
    os.environ.update(BENCH_ENV)
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "WEBHOOK_SECRETS_ID", "TABLE_PREFIX"):
        os.environ.pop(key, None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def start_emulator():
    """A moto server on a free loopback port, the template's tables/queues/topics, the app pointed at it;
    its DynamoDB requests serialised as in the local stack (moto's transactions are not atomic under
    concurrent requests, see infra/local/emulator.py)."""
    set_env()
    import logging

    from infra.local.emulator import serialize_dynamodb

    serialize_dynamodb()

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request access log
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address=LOOPBACK, port=port, verbose=False)
    server.start()
    url = f"http://{LOOPBACK}:{port}"
    os.environ["AWS_ENDPOINT_URL"] = url

    from chalicelib import aws as aws_clients
    from chalicelib.settings import reset_settings
    from chalicelib.store import session
    from infra.local import bootstrap

    reset_settings()
    aws_clients.reset_clients()
    bootstrap.create_all(os.environ["AWS_DEFAULT_REGION"], url)
    session.reconfigure()
    return server, url


def test_client():
    """The app in-process (chalice.test.Client); run from the repository root, so no stage config is applied."""
    from chalice.test import Client

    import app as chalice_app

    quiet_app_logs()  # after the import: app.py sets its logger's level
    return Client(chalice_app.app, project_dir=str(ROOT / "bench"))  # no stage's variables: the bench sets them


# ---- signed deliveries -------------------------------------------------------------------------
def sign(body: bytes, secret: str, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},v1=" + hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()


def envelope(event_type: str, data: dict, event_id: str | None = None,
             created_at: str = "2026-01-01T00:00:00+08:00") -> dict:
    return {"id": event_id or f"evt_{uuid.uuid4().hex[:12]}", "type": event_type, "created_at": created_at,
            "data": data}


def signed_headers(body: bytes, secret: str) -> dict:
    return {"Content-Type": "application/json", "X-Signature": sign(body, secret)}


def order_paid(order_id, account_id, server_id, kind, paid_at, amount, **extra) -> dict:
    return {"order_id": order_id, "account_id": account_id, "server_id": server_id, "kind": kind,
            "paid_at": paid_at, "amount": amount, "currency": "CNY", **extra}


class InProcessApi:
    """Deliveries and ops calls through chalice.test.Client; answers (status, json)."""

    def __init__(self, client):
        self.client = client

    @staticmethod
    def _json(response):
        try:
            return response.status_code, json.loads(response.body) if response.body else None
        except ValueError:
            return response.status_code, {"raw": response.body[:200]}

    def post_raw(self, path: str, body: bytes, secret: str):
        return self._json(self.client.http.post(path, headers=signed_headers(body, secret), body=body))

    def pay(self, event: dict):
        return self.post_raw("/webhooks/payments", json.dumps(event).encode(), PAY_SECRET)

    def ticket(self, event: dict):
        return self.post_raw("/webhooks/ticketing", json.dumps(event).encode(), TICKET_SECRET)

    def ops(self, method: str, path: str, body: dict | None = None):
        kwargs = {"headers": {"Authorization": f"Bearer {OPS_TOKEN}", "Content-Type": "application/json"}}
        kwargs.update({} if body is None else {"body": json.dumps(body)})
        return self._json(getattr(self.client.http, method.lower())(path, **kwargs))


# ---- one botocore hook: every AWS call of boto3 and PynamoDB passes through it --------------------
_middlewares: list = []
_original = None


def install_hook() -> None:
    """Wrap botocore.client.BaseClient._make_api_call (PynamoDB's own clients call it too)."""
    global _original
    if _original is not None:
        return
    from botocore.client import BaseClient

    _original = BaseClient._make_api_call

    def patched(self, operation_name, api_params):
        service = self.meta.service_model.service_name
        call = functools.partial(_original, self, operation_name, api_params)
        for mw in reversed(list(_middlewares)):
            call = functools.partial(mw, service, operation_name, api_params, call)
        return call()

    BaseClient._make_api_call = patched


def add_middleware(mw) -> None:
    """`mw(service, operation, params, call)` -> response; `call()` goes on to the real request."""
    install_hook()
    _middlewares.append(mw)


class CallCounter:
    """Counts DynamoDB (and other AWS) calls by operation, and items read by Query/Scan."""

    def __init__(self):
        self.lock = threading.Lock()
        self.reset()
        add_middleware(self)

    def reset(self):
        with self.lock:
            self.ddb, self.other = Counter(), Counter()
            self.scanned = self.returned = 0
            self.txn_items: list[int] = []  # items per TransactWriteItems

    def __call__(self, service, operation, params, call):
        response = None
        try:
            response = call()
            return response
        finally:
            with self.lock:
                if service == "dynamodb":
                    self.ddb[operation] += 1
                    if operation == "TransactWriteItems":
                        self.txn_items.append(len(params.get("TransactItems", ())))
                    if response and operation in ("Query", "Scan"):
                        self.scanned += response.get("ScannedCount", 0)
                        self.returned += response.get("Count", 0)
                else:
                    self.other[f"{service}.{operation}"] += 1

    def snapshot(self) -> tuple[Counter, Counter]:
        with self.lock:
            return Counter(self.ddb), Counter(self.other)


def fmt_ops(counter: Counter) -> str:
    return ", ".join(f"{op} {n}" for op, n in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))) or "-"


# ---- the summary lines run_all.py collects ----------------------------------------------------------
def summary(bench: str, figure: str, value, target: str = "", ok: bool | None = None) -> None:
    row = {"bench": bench, "figure": figure, "value": str(value), "target": target,
           "ok": "" if ok is None else ("yes" if ok else "NO")}
    print("SUMMARY " + json.dumps(row), flush=True)


def finish(rc: int = 0) -> None:
    """Exit without the interpreter's teardown (freeing a 10 000-item emulator takes ~10 s)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)


def quiet_app_logs() -> None:
    """The app logs every 5xx with a traceback; the benches count them instead."""
    import logging

    for name in ("k8s-billing", "chalicelib", "app", "werkzeug", "botocore", "pynamodb"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
