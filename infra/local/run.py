"""The local stack: an AWS emulator (moto) on 127.0.0.1:5000, every table/queue/topic created from
infra/resources.json, the API (Chalice's local gateway with API Gateway's limits, infra/local/api_server.py)
on 127.0.0.1:8000, the seed plans, and the app's own Lambda functions run as Lambda runs them
(infra/local/lambda_runner.py): the queue-triggered ones (`cluster_actions`, `background_work`) fed by
their queues, the scheduled ones (`expiry_sweep` daily at 00:10 Asia/Shanghai, `payg_metering`,
`notification_retry`, and any other) fired at their schedules. With DYNAMODB=local the tables live in
DynamoDB Local (127.0.0.1:8001, kept under .local/dynamodb-data/ unless DYNAMODB_DATA=memory) and
everything else stays on moto. Ctrl-C (or SIGTERM) stops everything it started.

The stack's own calls through the API (seeding the plans) use a token of its own, recorded under the
actor `local-stack`, never an operator's."""
from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ROOT / "functions"
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(PROJECT))

from infra.local import bootstrap, dynamodb_local  # noqa: E402

LOCAL_DEFAULTS = {
    "PAYMENT_WEBHOOK_SECRETS": "local_payments_secret",
    "TICKETING_WEBHOOK_SECRETS": "local_ticketing_secret",
    "OPS_API_TOKENS": "local-ops-token",
    "ALLOW_CLOCK_OVERRIDE": "1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
}
STACK_ACTOR = "local-stack"


def log(message: str) -> None:
    print(f"[local-stack] {message}", flush=True)


def wait_for(url: str, timeout: float = 60.0, expect_any_status: bool = True) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            if expect_any_status:
                return
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


def call(api: str, token: str, method: str, path: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(api + path, method=method, data=json.dumps(body or {}).encode(),
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read() or b"{}")


def stack_token(configured: str) -> tuple[str, str, list[str]]:
    """A token of the stack's own, the API's OPS_API_TOKENS with it added as `local-stack:<token>`, and
    the operators' names. A configuration that reads two ways raises TokenConfigurationError (ops/auth.py
    says why): the stack refuses to start rather than serve it."""
    from chalicelib.ops import auth
    from chalicelib.settings import _csv

    entries = list(_csv(configured))
    operators = sorted({name for name, _ in auth.named_tokens(entries)})
    token = secrets.token_urlsafe(24)
    return token, ",".join(entries + [f"{STACK_ACTOR}:{token}"]), operators


def start_functions(env: dict):
    """The app's queue-triggered and scheduled functions, run as Lambda runs them, in processes of
    their own with the stack's environment."""
    import logging

    from infra.local import lambda_runner

    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("[local-stack] %(message)s"))
    lambda_runner.log.addHandler(handler)
    lambda_runner.log.setLevel(logging.INFO)

    os.chdir(PROJECT)  # app.py is imported from here, as Chalice does
    try:
        import app as chalice_app
    finally:
        os.chdir(ROOT)
    runner = lambda_runner.Runner(chalice_app.app, region=env["AWS_DEFAULT_REGION"], endpoint=env["AWS_ENDPOINT_URL"],
                                  environment=env)
    for line in runner.describe():
        log(f"  {line}")
    return runner.start()


def start_dynamodb_local(env: dict, children: list[subprocess.Popen]) -> str:
    """DynamoDB Local for the tables (DYNAMODB=local); its endpoint, also set for the API."""
    port = int(env.get("DYNAMODB_LOCAL_PORT", "8001"))
    data = None if env.get("DYNAMODB_DATA") == "memory" else dynamodb_local.DATA
    children.append(dynamodb_local.start(port, data))
    dynamodb_local.wait_ready(port, children[-1])
    url = f"http://127.0.0.1:{port}"
    env["AWS_ENDPOINT_URL_DYNAMODB"] = url
    log(f"DynamoDB Local on {url}, " + ("in memory" if data is None else f"data kept in {data.relative_to(ROOT)}/"))
    return url


def main() -> int:
    env = dict(os.environ)
    for key, value in LOCAL_DEFAULTS.items():
        env.setdefault(key, value)
    api_port = int(env.get("API_PORT", "8000"))
    aws_port = int(env.get("AWS_EMULATOR_PORT", "5000"))
    endpoint = f"http://127.0.0.1:{aws_port}"
    env["AWS_ENDPOINT_URL"] = endpoint
    os.environ.update({k: env[k] for k in ("AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")})
    python = sys.executable
    from chalicelib.ops.auth import TokenConfigurationError

    try:
        token, env["OPS_API_TOKENS"], operators = stack_token(env["OPS_API_TOKENS"])
    except TokenConfigurationError as exc:
        log(f"refusing to start: {exc}")
        return 2
    children: list[subprocess.Popen] = []
    runner = None

    def shutdown(*_):
        for child in reversed(children):
            if child.poll() is None:
                child.terminate()
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()

    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        children.append(subprocess.Popen([python, "-m", "infra.local.emulator", "-H", "127.0.0.1", "-p", str(aws_port)],
                                         env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_for(endpoint + "/moto-api/")
        tables_at = endpoint
        if env.get("DYNAMODB", "moto") == "local":
            tables_at = start_dynamodb_local(env, children)
        created = bootstrap.create_all(env["AWS_DEFAULT_REGION"], endpoint, dynamodb_endpoint=tables_at)
        log(f"AWS emulator on {endpoint}: queues {sorted(created['queues'])}, topics {sorted(created['topics'])}; "
            f"tables on {tables_at}")
        # the `local` stage: a drain or replay by hand runs cluster actions in the API itself, so it works with
        # LOCAL_SCHEDULES=0 too (the deployed `dev` API only wakes `cluster_actions` through its queue,
        # CLUSTER_ACTIONS_INLINE=0, which the runner consumes here as Lambda's poller does in AWS)
        children.append(subprocess.Popen([python, "-m", "infra.local.api_server", "--stage", "local", "--host", "127.0.0.1",
                                          "--port", str(api_port)], cwd=ROOT, env=env))
        api = f"http://127.0.0.1:{api_port}"
        wait_for(api + "/ops/dead-letters")
        bootstrap.seed_plans(lambda plan_id, body: call(api, token, "PUT", f"/ops/plans/{plan_id}", body))
        log(f"API on {api}; seed plans {sorted(bootstrap.SEED_PLANS)} (actor {STACK_ACTOR}); operators {operators}")
        if env.get("LOCAL_SCHEDULES", "1") != "0":
            log("functions on: queue-triggered and scheduled, as Lambda runs them")
            runner = start_functions(env)
        else:
            log("functions off (LOCAL_SCHEDULES=0): nothing runs by itself; POST /ops/background/drain and "
                "/ops/cluster-actions/drain run queued work")
        log("ready")
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        log("a component exited; stopping")
        return 1
    except KeyboardInterrupt:
        log("stopping")
        return 0
    finally:
        if runner is not None:
            runner.stop()
        shutdown()


if __name__ == "__main__":
    sys.exit(main())
