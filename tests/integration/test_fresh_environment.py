"""Integration §7 "A fresh execution environment": the first request a new process serves, on a machine booted
moments ago (Lambda boots a new microVM per execution environment, so its monotonic clock starts near 0), is
authenticated with the secrets from Secrets Manager like any later one (integration §1, §6). The secrets are
only in Secrets Manager (moto), none in the environment.

The process runs in a Linux time namespace whose monotonic clock starts at ~2 s where one can be made (root,
as here and in CI), else with its monotonic clock shifted in-process (tests/integration/fresh_process.py);
the second test always runs the latter. Either way the test checks the child's clock did start near 0."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter

import pytest

from tests import support
from tests.integration import fresh_process
from tests.integration.test_observability import logs, metrics, printed

SECRET_ID = "billing/webhook-secrets"
NEAR_ZERO = 2  # seconds on the child's monotonic clock when it starts


@pytest.fixture
def secrets_in_secrets_manager(aws):
    """The secret in moto, and an environment for the child with no secret or token of its own."""
    from chalicelib import aws as aws_clients

    aws_clients.client("secretsmanager").create_secret(Name=SECRET_ID, SecretString=json.dumps(fresh_process.SECRETS))
    env = {k: v for k, v in os.environ.items()
           if k not in ("PAYMENT_WEBHOOK_SECRETS", "TICKETING_WEBHOOK_SECRETS", "OPS_API_TOKENS")}
    env["WEBHOOK_SECRETS_ID"] = SECRET_ID
    return env


def time_namespace() -> list[str] | None:
    """The command prefix that starts a child in a time namespace with its monotonic clock at ~2 s, or None
    where this machine cannot make one (no unshare, not root, no CONFIG_TIME_NS)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return None
    prefix = [unshare, "-T", "--monotonic", str(NEAR_ZERO - int(time.monotonic()))]
    if subprocess.run(prefix + ["true"], capture_output=True).returncode != 0:
        return None
    return prefix


def first_requests(env: dict, account: str, prefix: list[str] | None) -> dict:
    """Run the fresh process; its result line (its other lines are the app's JSON logs)."""
    if prefix is None:
        env = dict(env, FRESH_MONOTONIC_AT_START=str(NEAR_ZERO))
    run = subprocess.run((prefix or []) + [sys.executable, "-m", "tests.integration.fresh_process", account],
                         cwd=support.ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    [result] = [json.loads(line) for line in run.stdout.splitlines() if '"monotonic_at_start"' in line]
    # started near 0 (not the machine's clock): the case the cache must not mistake for "read moments ago"
    assert NEAR_ZERO <= result["monotonic_at_start"] < NEAR_ZERO + 10, result
    return result


def assert_both_answered(result: dict, account: str) -> None:
    """The signed top-up is processed (R-PAY-7: +12 345 fen) and the operator `eve` reads the account."""
    [(webhook_status, webhook), (view_status, view)] = result["answers"]
    assert (webhook_status, webhook.get("result")) == (200, "processed"), webhook
    assert (view_status, view.get("account_id"), view.get("balance")) == (200, account, 12345), view


def test_contract_7_a_fresh_process_authenticates_its_first_webhook_and_ops_call(secrets_in_secrets_manager):
    """In a time namespace where one can be made, else with the injected clock (never skipped)."""
    prefix = time_namespace()
    result = first_requests(secrets_in_secrets_manager, "acc-fresh-ns", prefix)
    assert_both_answered(result, "acc-fresh-ns")


def test_contract_7_a_fresh_process_with_an_injected_clock_near_0_authenticates_too(secrets_in_secrets_manager):
    result = first_requests(secrets_in_secrets_manager, "acc-fresh-clock", None)
    assert_both_answered(result, "acc-fresh-clock")


def test_contract_1_a_secrets_manager_outage_is_a_5xx_never_the_senders_bad_signature(aws, api, capfd):
    """No value read yet and Secrets Manager cannot give one (here: the secret does not exist yet): the
    webhook and the ops call answer 500 internal_error (the sender retries; a 401 would blame its signature),
    SecretsUnavailable is counted; the next request after the secret appears reads it (no failure cached)."""
    from chalicelib import aws as aws_clients
    from chalicelib.settings import reset_settings
    from chalicelib.webhooks import secrets

    event = support.envelope("account.topped_up", {"account_id": "acc-outage", "amount": 500,
                                                   "topped_up_at": "2026-12-05T10:00:00+08:00"}, "evt-outage")
    secrets.reset()
    try:
        with support.environment(PAYMENT_WEBHOOK_SECRETS=None, OPS_API_TOKENS=None, WEBHOOK_SECRETS_ID=SECRET_ID):
            reset_settings()
            capfd.readouterr()
            status, body = api.deliver("/webhooks/payments", event, "sm-pay-new")
            assert (status, body["error"]["code"]) == (500, "internal_error")
            status, body = api.ops("GET", "/ops/accounts/acc-outage", token="sm-ops-token")
            assert (status, body["error"]["code"]) == (500, "internal_error")
            lines = printed(capfd)
            assert metrics(lines) == Counter({("SecretsUnavailable", ()): 2})
            assert [line["serving"] for line in logs(lines, "secrets unavailable")] == ["nothing", "nothing"]

            aws_clients.client("secretsmanager").create_secret(Name=SECRET_ID,
                                                               SecretString=json.dumps(fresh_process.SECRETS))
            assert api.deliver("/webhooks/payments", event, "sm-pay-new")[0] == 200
            status, view = api.ops("GET", "/ops/accounts/acc-outage", token="sm-ops-token")
            assert (status, view["balance"]) == (200, 500)
    finally:
        secrets.reset()
        reset_settings()
