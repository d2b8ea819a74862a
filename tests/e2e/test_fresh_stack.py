"""End to end, integration §7 "The local stack" and "A fresh execution environment": the first requests a
freshly started API serves may arrive together; none answers 5xx and the API keeps serving.

`make run` (support.local_stack) makes its own first requests before it says it is ready (it waits for the
API to answer, then seeds the plans), so the test starts a second API process with the stack's own server
command (`python -m infra.local.api_server --stage local`) on the stack's emulator and sends it its very
first requests, all at once. That API has no secret or token in its environment: the `local` stage names
the Secrets Manager secret (WEBHOOK_SECRETS_ID), which the test puts in the stack's emulator."""
from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import threading

import boto3
import requests

from tests import support

SECRET_ID = "billing/webhook-secrets"  # the one functions/.chalice/config.json names
PAY_SECRET, TOKEN = "sm-e2e-pay", "sm-e2e-token"
EACH = 15  # 15 signed top-ups and 15 ops calls


def fresh_api(aws_endpoint: str):
    """The stack's API server in a new process on a free port, secrets only in Secrets Manager; its URL
    once it listens (it prints "Serving on" after binding), and the process."""
    port = support.free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PAYMENT_", "TICKETING_", "OPS_", "AWS_ENDPOINT", "DYNAMODB", "TABLE_PREFIX"))}
    env["AWS_ENDPOINT_URL"] = aws_endpoint
    proc = subprocess.Popen([sys.executable, "-m", "infra.local.api_server", "--stage", "local", "--host", "127.0.0.1",
                             "--port", str(port)], cwd=support.ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines = collections.deque(maxlen=400)
    for line in proc.stdout:
        lines.append(line)
        if "Serving on" in line:
            break
    else:
        raise RuntimeError("the API did not start:\n" + "".join(lines))
    # keep reading its output so the server, which logs every request, never blocks on a full pipe
    reader = threading.Thread(target=lines.extend, args=(proc.stdout,), daemon=True)
    reader.start()
    return f"http://127.0.0.1:{port}", proc, lines


def test_contract_7_thirty_first_requests_at_once_are_answered_and_the_api_keeps_serving():
    """R-PAY-7 top-ups of 100 fen to 15 new accounts, mixed with 15 `GET /ops/audit`, released at once by a
    barrier as the new API's first requests: every one 200; afterwards each account holds exactly 100 fen
    (applied once) and the API process still runs and answers."""
    with support.local_stack("moto") as stack:
        boto3.client("secretsmanager", endpoint_url=stack["aws"], region_name=os.environ["AWS_DEFAULT_REGION"]
                     ).create_secret(Name=SECRET_ID, SecretString=json.dumps({"payments": PAY_SECRET, "ops": TOKEN}))
        api, proc, output = fresh_api(stack["aws"])
        try:
            barrier, answers = threading.Barrier(2 * EACH), {}

            def top_up(i: int) -> None:
                body = support.dumps(support.envelope("account.topped_up", {
                    "account_id": f"acc-fresh-{i}", "amount": 100, "topped_up_at": "2026-12-05T10:00:00+08:00"}))
                barrier.wait()
                answers[("webhook", i)] = requests.post(api + "/webhooks/payments", data=body, timeout=120, headers={
                    "Content-Type": "application/json", "X-Signature": support.sign(body, PAY_SECRET)})

            def audit(i: int) -> None:
                barrier.wait()
                answers[("ops", i)] = requests.get(api + "/ops/audit", timeout=120,
                                                   headers={"Authorization": f"Bearer {TOKEN}"})

            threads = [threading.Thread(target=f, args=(i,)) for i in range(EACH) for f in (top_up, audit)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=300)

            assert len(answers) == 2 * EACH
            assert {key: (r.status_code, r.text[:300]) for key, r in answers.items() if r.status_code != 200} == {}
            assert all(r.json()["result"] == "processed" for (kind, _), r in answers.items() if kind == "webhook")
            for i in range(EACH):
                view = requests.get(api + f"/ops/accounts/acc-fresh-{i}", timeout=60,
                                    headers={"Authorization": f"Bearer {TOKEN}"})
                assert (view.status_code, view.json()["balance"]) == (200, 100), view.text
            assert proc.poll() is None, "".join(list(output)[-40:])
        finally:
            proc.terminate()
            proc.wait(timeout=30)
