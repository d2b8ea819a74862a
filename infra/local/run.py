"""The local stack: an AWS emulator (moto) on 127.0.0.1:5000, every table/queue/topic created from
infra/resources.json, the API (Chalice's local gateway, infra/local/api_server.py) on 127.0.0.1:8000,
the seed plans, and the schedules: the expiry sweep daily at 00:10 Asia/Shanghai, metering hourly,
cluster actions and background work drained every few seconds. With DYNAMODB=local the tables live in
DynamoDB Local (127.0.0.1:8001, kept under .local/dynamodb-data/ unless DYNAMODB_DATA=memory) and
everything else stays on moto. Ctrl-C (or SIGTERM) stops everything it started."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

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
DRAIN_EVERY_SECONDS = 5


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


def next_daily(now: datetime) -> datetime:
    local = now.astimezone(ZoneInfo("Asia/Shanghai"))
    target = local.replace(hour=0, minute=10, second=0, microsecond=0)
    return target if target > local else target + timedelta(days=1)


def next_hour(now: datetime) -> datetime:
    return now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)


def schedules(api: str, token: str, stop: threading.Event) -> None:
    """Fires the two schedules at their wall-clock times and drains the cluster-action and background queues."""
    now = datetime.now(ZoneInfo("UTC"))
    due = {"/ops/sweeps/expiry": next_daily(now), "/ops/sweeps/metering": next_hour(now)}
    while not stop.wait(DRAIN_EVERY_SECONDS):
        try:
            drained = call(api, token, "POST", "/ops/cluster-actions/drain")
            if drained.get("ran"):
                log(f"cluster actions: {drained}")
            background = call(api, token, "POST", "/ops/background/drain")  # queued shards, announcements, recorded notifications
            if background.get("ran"):
                log(f"background work: {background}")
            now = datetime.now(ZoneInfo("UTC"))
            for path, when in due.items():
                if now >= when:
                    log(f"{path}: {call(api, token, 'POST', path)}")
                    due[path] = next_daily(now) if path.endswith("expiry") else next_hour(now)
        except Exception as exc:  # noqa: BLE001 - keep the loop alive; the next tick tries again
            log(f"schedule tick failed: {exc}")


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
    children: list[subprocess.Popen] = []

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
    stop = threading.Event()
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
        # the `local` stage: the API runs cluster actions itself (the deployed `dev` API only wakes the
        # `cluster_actions` function through its queue, CLUSTER_ACTIONS_INLINE=0, which nothing consumes here)
        children.append(subprocess.Popen([python, "-m", "infra.local.api_server", "--stage", "local", "--host", "127.0.0.1",
                                          "--port", str(api_port)], cwd=ROOT, env=env))
        api = f"http://127.0.0.1:{api_port}"
        wait_for(api + "/ops/dead-letters")
        token = env["OPS_API_TOKENS"].split(",")[0].strip()
        bootstrap.seed_plans(lambda plan_id, body: call(api, token, "PUT", f"/ops/plans/{plan_id}", body))
        log(f"API on {api}; seed plans {sorted(bootstrap.SEED_PLANS)}; ops token {token!r}")
        if env.get("LOCAL_SCHEDULES", "1") != "0":
            threading.Thread(target=schedules, args=(api, token, stop), daemon=True).start()
            log("schedules on: expiry sweep daily 00:10 Asia/Shanghai, metering hourly, cluster actions and background work every 5 s")
        else:
            log("schedules off (LOCAL_SCHEDULES=0)")
        log("ready")
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        log("a component exited; stopping")
        return 1
    except KeyboardInterrupt:
        log("stopping")
        return 0
    finally:
        stop.set()
        shutdown()


if __name__ == "__main__":
    sys.exit(main())
