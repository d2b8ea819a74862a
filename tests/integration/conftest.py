"""Integration harness: a moto server over real HTTP on loopback, tables created from
infra/resources.json, and the Chalice app driven through `chalice.test.Client`.

With the `backend` fixture (tests/conftest.py) at "dynamodb-local", DynamoDB requests go to Amazon's
DynamoDB Local instead; SQS, SNS, EKS and Secrets Manager stay on moto either way."""
from __future__ import annotations

import collections
import itertools
import json
import logging
import os
from pathlib import Path

import pytest
import requests

from tests import support

_table_prefixes = (f"t{n}-" for n in itertools.count())


@pytest.fixture(scope="session")
def emulator():
    from moto.server import ThreadedMotoServer

    from infra.local.emulator import serialize_dynamodb

    serialize_dynamodb()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = support.free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    os.environ["AWS_ENDPOINT_URL"] = url
    yield url
    server.stop()


@pytest.fixture
def aws(emulator, backend, request):
    """A clean emulator for each test, with every table, queue and topic of the template. On DynamoDB
    Local each test gets tables of its own (a fresh prefix: faster than emptying), dropped after it."""
    from chalicelib import aws as aws_clients
    from chalicelib.settings import reset_settings
    from chalicelib.store import session
    from infra.local import bootstrap

    requests.post(f"{emulator}/moto-api/reset", timeout=10)
    tables = {}
    if backend == "dynamodb-local":
        tables = {"dynamodb_endpoint": request.getfixturevalue("dynamodb_local"), "table_prefix": next(_table_prefixes)}
        os.environ.update(AWS_ENDPOINT_URL_DYNAMODB=tables["dynamodb_endpoint"], TABLE_PREFIX=tables["table_prefix"])
    else:
        os.environ.pop("AWS_ENDPOINT_URL_DYNAMODB", None)
        os.environ.pop("TABLE_PREFIX", None)
    os.environ.update({
        "PAYMENT_WEBHOOK_SECRETS": f"{support.PAY_SECRET},{support.PAY_SECRET_OLD}",
        "TICKETING_WEBHOOK_SECRETS": support.TICKET_SECRET,
        "OPS_API_TOKENS": support.OPS_TOKEN,
        "ALLOW_CLOCK_OVERRIDE": "1",
        "CLUSTER_RETRY_BASE_SECONDS": "0",
    })
    reset_settings()
    aws_clients.queue_url.cache_clear()
    aws_clients.topic_arn.cache_clear()
    created = bootstrap.create_all(os.environ["AWS_DEFAULT_REGION"], emulator, **tables)
    session.reconfigure()
    yield created
    if tables:
        _drop_tables(**tables)
        os.environ.pop("AWS_ENDPOINT_URL_DYNAMODB", None)
        os.environ.pop("TABLE_PREFIX", None)
        reset_settings()


def _drop_tables(dynamodb_endpoint: str, table_prefix: str) -> None:
    import boto3

    ddb = boto3.client("dynamodb", endpoint_url=dynamodb_endpoint, region_name=os.environ["AWS_DEFAULT_REGION"])
    for page in ddb.get_paginator("list_tables").paginate():
        for name in page["TableNames"]:
            if name.startswith(table_prefix):
                ddb.delete_table(TableName=name)


class Api:
    """The contract as the gateway, the ticketing system and an operator use it."""

    def __init__(self, client):
        self.client = client

    def _json(self, response):
        return response.status_code, json.loads(response.body) if response.body else None

    def deliver(self, path: str, event: dict, secret: str, *, raw: bytes | None = None, headers: dict | None = None):
        body = raw if raw is not None else support.dumps(event)
        h = {"Content-Type": "application/json", "X-Signature": support.sign(body, secret)}
        h.update(headers or {})
        return self._json(self.client.http.post(path, headers=h, body=body))

    def pay(self, event_type: str, data: dict, event_id: str | None = None):
        return self.deliver("/webhooks/payments", support.envelope(event_type, data, event_id), support.PAY_SECRET)

    def ticket(self, event_type: str, data: dict, event_id: str | None = None):
        return self.deliver("/webhooks/ticketing", support.envelope(event_type, data, event_id), support.TICKET_SECRET)

    def ops(self, method: str, path: str, body: dict | None = None, token: str = support.OPS_TOKEN):
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        call = getattr(self.client.http, method.lower())
        kwargs = {"headers": headers}
        if body is not None:
            kwargs["body"] = json.dumps(body)
        return self._json(call(path, **kwargs))

    def server(self, server_id: str) -> dict:
        status, body = self.ops("GET", f"/ops/servers/{server_id}")
        assert status == 200, body
        return body

    def account(self, account_id: str) -> dict:
        status, body = self.ops("GET", f"/ops/accounts/{account_id}")
        assert status == 200, body
        return body

    def plan(self, plan_id: str, monthly: int, hourly: int, effective_from: str = "2020-01-01T00:00:00+08:00"):
        status, body = self.ops("PUT", f"/ops/plans/{plan_id}",
                                {"monthly_price": monthly, "hourly_price": hourly, "effective_from": effective_from})
        assert status == 200, body
        return body

    def sweep(self, now: str):
        status, body = self.ops("POST", "/ops/sweeps/expiry", {"now": now})
        assert status == 200, body
        return body

    def meter(self, now: str):
        status, body = self.ops("POST", "/ops/sweeps/metering", {"now": now})
        assert status == 200, body
        return body

    def drain_background(self) -> dict:
        """POST /ops/background/drain: queued shards, announcements, settlements, notification retries."""
        status, body = self.ops("POST", "/ops/background/drain")
        assert status == 200, body
        return body

    def run(self, run_id: str) -> dict:
        """GET /ops/runs/{run_id}: a run's summary so far (integration §7)."""
        status, body = self.ops("GET", f"/ops/runs/{run_id}")
        assert status == 200, body
        return body

    def buy_monthly(self, server_id: str, paid_at: str, months: int = 1, plan: str = "std", amount: int | None = None,
                    account: str = "acc-1", region: str = "cn-north-1", order_id: str | None = None):
        return self.pay("order.paid", support.order_paid(
            order_id or f"ord-{server_id}-new", account, server_id, "new", paid_at,
            amount if amount is not None else 10000 * months, billing_mode="monthly", plan_id=plan,
            region=region, months=months))


@pytest.fixture
def dynamodb_requests(monkeypatch):
    """Counts the DynamoDB requests the app makes (every boto3 and PynamoDB client passes here)."""
    import botocore.client

    counted = collections.Counter()
    original = botocore.client.BaseClient._make_api_call

    def counting(self, operation, params):
        if self.meta.service_model.service_name == "dynamodb":
            counted[operation] += 1
        return original(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", counting)
    return counted


@pytest.fixture
def api(aws):
    from chalice.test import Client

    import app as chalice_app

    # project_dir without a .chalice/: the tests set the environment themselves, and a stage's variables
    # (dev: CLUSTER_ACTIONS_INLINE=0, as in AWS) must not leak in from whatever folder pytest runs in
    with Client(chalice_app.app, project_dir=str(Path(__file__).parent)) as client:
        yield Api(client)


@pytest.fixture
def priced(api):
    """The app with the standard plan: 100.00 yuan a month, 0.20 yuan an hour."""
    api.plan("std", 10000, 20)
    return api


@pytest.fixture
def shop(api):
    """The app with the standard plan and the pro plan (300.00 yuan a month, 0.60 yuan an hour)."""
    api.plan("std", 10000, 20)
    api.plan("pro", 30000, 60)
    return api


@pytest.fixture
def http_api(api):
    """The app behind the local stack's own HTTP server (infra/local/api_server.py) on a free port, in
    this process, so concurrent requests go through real sockets and the app's answers."""
    import threading

    from chalice.config import Config

    import app as chalice_app
    from infra.local import api_server

    original_class = chalice_app.app.__class__  # make_server swaps it for a thread-local-request subclass
    server = api_server.make_server("127.0.0.1", support.free_port(), app_object=chalice_app.app, config=Config.create())
    thread = threading.Thread(target=server.server.serve_forever, daemon=True)  # skips the "Serving on" print
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.shutdown()
        server.server.server_close()
        thread.join(timeout=10)
        chalice_app.app.__class__ = original_class
