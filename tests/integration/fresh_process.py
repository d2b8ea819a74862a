"""The first requests of a fresh process (run by test_fresh_environment.py as `python -m
tests.integration.fresh_process ACCOUNT`): a signed top-up for ACCOUNT, then the operators' view of it,
through the Chalice app in this new process; prints one JSON line with the process's monotonic clock when it
started and the two answers.

With FRESH_MONOTONIC_AT_START set, the process's monotonic clock is shifted to start there before anything
imports it (the injected clock, for machines where a time namespace cannot be made)."""
from __future__ import annotations

import os
import sys
import time

if os.environ.get("FRESH_MONOTONIC_AT_START"):
    _machine, _started = time.monotonic, time.monotonic()
    _offset = float(os.environ["FRESH_MONOTONIC_AT_START"]) - _started
    time.monotonic = lambda: _machine() + _offset
MONOTONIC_AT_START = time.monotonic()

import json  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "functions"))
sys.path.insert(0, str(ROOT))

from tests import support  # noqa: E402

SECRETS = {"payments": "sm-pay-new,sm-pay-old", "ticketing": "sm-ticket", "ops": "eve:sm-ops-token"}


def main(account: str) -> None:
    from chalice.test import Client

    import app

    body = support.dumps(support.envelope("account.topped_up", {
        "account_id": account, "amount": 12345, "topped_up_at": "2026-12-05T10:00:00+08:00"}))
    with Client(app.app, project_dir=str(Path(__file__).parent)) as client:
        webhook = client.http.post("/webhooks/payments", body=body, headers={
            "Content-Type": "application/json", "X-Signature": support.sign(body, "sm-pay-old")})
        view = client.http.get(f"/ops/accounts/{account}", headers={"Authorization": "Bearer sm-ops-token"})
    print(json.dumps({"monotonic_at_start": MONOTONIC_AT_START, "answers": [
        [webhook.status_code, json.loads(webhook.body)], [view.status_code, json.loads(view.body)]]}))


if __name__ == "__main__":
    main(sys.argv[1])
