"""Fan-out of the scheduled runs (issue 9 item 7): metering over N payg servers and an expiry sweep over N due
servers against the local emulator, with 25 ms injected per DynamoDB request (a botocore `before-send` hook in
every worker process: slower than DynamoDB on purpose, so that waiting dominates here as it does on Lambda,
where every invocation has its own CPU), once sequentially (one process runs the whole run, shard after
shard, as `POST /ops/sweeps/...` does) and once fanned out (the scheduled function's `fan_out` queues one
message per shard on the background queue; 8 worker processes each take messages one at a time and run
them, as the `background_work` Lambda would). Prints both wall times, their ratio (target >= 3x) and the
CPU milliseconds the workers spent per server (the emulator's own CPU is not counted).

    .venv/bin/python bench/fanout.py                 # 5 000 servers per run (several minutes)
    .venv/bin/python bench/fanout.py --servers 400   # a quick check

Each mode gets its own freshly seeded servers with the same work per server (one hour to charge; one
expiry to stop), so the two runs do the same number of requests per server."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import _common as c

HERE = Path(__file__).resolve().parent
WORKERS = 8
LATENCY_MS = 25
PER_ACCOUNT = 5                      # payg servers per account
T0 = "2026-03-01T00:00:00+08:00"     # payg servers run from here; monthly ones are paid here for a month
EXPIRED = "2026-04-02T00:10:00+08:00"


def inject_latency(ms: float) -> None:
    """Every DynamoDB client made in this process waits `ms` before each request it sends."""
    import botocore.session

    original = botocore.session.Session.create_client
    if getattr(original, "_delayed", False):
        return

    def delay(**_):
        time.sleep(ms / 1000)

    def create_client(self, service_name, *args, **kwargs):
        client = original(self, service_name, *args, **kwargs)
        if service_name == "dynamodb":
            client.meta.events.register("before-send.dynamodb.*", delay)
        return client

    create_client._delayed = True
    botocore.session.Session.create_client = create_client


# ---- worker processes ------------------------------------------------------------------------------------
def worker(mode: str, kind: str, now: str) -> None:
    """`sequential`: the whole run here; `queue`: take background messages one at a time until none is left."""
    inject_latency(LATENCY_MS)
    c.quiet_app_logs()
    from chalicelib import aws, background
    from chalicelib.settings import get_settings
    from chalicelib.timeutil import parse_rfc3339

    from chalicelib.billing import metering  # noqa: F401 - imported before the clock starts, as in a warm Lambda
    from chalicelib.lifecycle import sweep  # noqa: F401

    print("ready", flush=True)
    sys.stdin.readline()  # started and imported, like a warm Lambda: the clock starts when all are
    cpu0, ran = time.process_time(), 0
    if mode == "sequential":
        if kind == "metering":
            from chalicelib.billing import metering

            metering.run_metering(parse_rfc3339(now))
        else:
            from chalicelib.lifecycle import sweep

            sweep.run_expiry_sweep(parse_rfc3339(now))
        ran = 1
    else:
        sqs, url = aws.client("sqs"), aws.queue_url(get_settings().background_queue)
        while True:
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, WaitTimeSeconds=1,
                                           VisibilityTimeout=900).get("Messages", [])
            if not messages:
                attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
                    "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
                if attrs["ApproximateNumberOfMessages"] == attrs["ApproximateNumberOfMessagesNotVisible"] == "0":
                    break
                continue
            background.run(messages[0]["Body"])  # the Lambda's handler, without a time limit
            sqs.delete_message(QueueUrl=url, ReceiptHandle=messages[0]["ReceiptHandle"])
            ran += 1
    print(json.dumps({"cpu_s": time.process_time() - cpu0, "ran": ran}), flush=True)


def run_workers(count: int, mode: str, kind: str, now: str) -> tuple[float, float]:
    """Start `count` worker processes, let them import, then start them all at once and wait for all;
    answers (wall seconds from the start to the last one's end, CPU seconds of all workers meanwhile)."""
    procs = [subprocess.Popen([sys.executable, str(HERE / "fanout.py"), "--worker", mode, "--kind", kind,
                               "--now", now], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ))
             for _ in range(count)]
    for proc in procs:
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"a {mode} worker did not start")
    t0 = time.perf_counter()
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    cpu = 0.0
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"a {mode} worker failed (exit {proc.returncode})")
        cpu += json.loads(out.strip().splitlines()[-1])["cpu_s"]
    return time.perf_counter() - t0, cpu


# ---- the parent: emulator, seeding, the four runs --------------------------------------------------------
def _wait_until_up(url: str, proc: subprocess.Popen, what: str) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"{what} did not start")
            time.sleep(0.2)


def start_emulators(dynamodb_local: Path | None) -> list[subprocess.Popen]:
    """The project's emulator (moto with DynamoDB serialised) in its own process, so that it does not
    share a GIL with anything measured; with `dynamodb_local` (the folder holding DynamoDBLocal.jar),
    Amazon's DynamoDB Local serves DynamoDB instead (no global lock). The template's tables and queues."""
    c.set_env()
    os.environ.pop("AWS_ENDPOINT_URL_DYNAMODB", None)
    port = c.free_port()
    url = f"http://{c.LOOPBACK}:{port}"
    procs = [subprocess.Popen([sys.executable, "-m", "infra.local.emulator", "-H", c.LOOPBACK, "-p", str(port)],
                              cwd=c.ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    _wait_until_up(url + "/moto-api/", procs[0], "moto")
    os.environ["AWS_ENDPOINT_URL"] = url
    if dynamodb_local:
        ddb_port = c.free_port()
        procs.append(subprocess.Popen(["java", "-Djava.library.path=./DynamoDBLocal_lib", "-jar", "DynamoDBLocal.jar",
                                       "-inMemory", "-sharedDb", "-port", str(ddb_port)], cwd=dynamodb_local,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = f"http://{c.LOOPBACK}:{ddb_port}"
        _wait_until_up(os.environ["AWS_ENDPOINT_URL_DYNAMODB"], procs[1], "DynamoDB Local")
    from chalicelib import aws as aws_clients
    from chalicelib.settings import reset_settings
    from chalicelib.store import session
    from infra.local import bootstrap

    reset_settings()
    aws_clients.reset_clients()
    bootstrap.create_all(os.environ["AWS_DEFAULT_REGION"])  # each service at its AWS_ENDPOINT_URL[_<SERVICE>]
    session.reconfigure()
    return procs


def seed_payg(tag: str, servers: int) -> None:
    from tests import seed
    from chalicelib.timeutil import parse_rfc3339

    accounts = {}
    for i in range(servers):
        accounts.setdefault(f"acc-{tag}-{i // PER_ACCOUNT:05d}", []).append(f"srv-{tag}-{i:05d}")
    seed.payg_accounts(accounts, parse_rfc3339(T0), balance=1_000_000, plan_id="std-2c4g")


def seed_monthly(tag: str, servers: int) -> None:
    from tests import seed
    from chalicelib.timeutil import parse_rfc3339

    seed.monthly_servers([f"srv-{tag}-{i:05d}" for i in range(servers)], parse_rfc3339(T0),
                         account_id=f"acc-{tag}", plan_id="std-2c4g")


def measure(kind: str, servers: int) -> dict:
    """Sequential on one set of servers, fanned out on a fresh one; the runs' own summaries are checked."""
    from chalicelib.background import sharded
    from chalicelib.store import runs
    from chalicelib.timeutil import fmt, parse_rfc3339

    base = parse_rfc3339(T0 if kind == "metering" else EXPIRED)
    if kind == "metering":
        base += timedelta(minutes=30)  # one started hour per server
    result = {}
    for mode, minute in (("sequential", 0), ("fanned", 1)):
        tag = f"{kind[0]}{mode[0]}"
        t0 = time.perf_counter()
        (seed_payg if kind == "metering" else seed_monthly)(tag, servers)
        print(f"  seeded {servers} servers for the {mode} {kind} run in {time.perf_counter() - t0:.1f} s", flush=True)
        now = base + timedelta(minutes=minute)  # a minute later: the first set has nothing due any more
        if mode == "sequential":
            wall, cpu = run_workers(1, "sequential", kind, fmt(now))
        else:
            sharded.fan_out(kind, now)
            wall, cpu = run_workers(WORKERS, "queue", kind, fmt(now))
        summary = runs.get(sharded.run_id(kind, now))
        done = summary.get("servers" if kind == "metering" else "expire", 0)
        ok = done == servers and summary.get("errors", 0) == 0 and summary["complete"]
        print(f"  {mode:10s} {kind}: {wall:6.1f} s wall, {1000 * cpu / servers:5.1f} CPU ms/server, "
              f"{done} done, errors {summary.get('errors', 0)}, complete {summary['complete']}", flush=True)
        result[mode] = {"wall": wall, "cpu_ms": 1000 * cpu / servers, "ok": ok}
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--servers", type=int, default=5000)
    parser.add_argument("--worker", choices=["sequential", "queue"])
    parser.add_argument("--kind", choices=["metering", "expiry"])
    parser.add_argument("--now")
    parser.add_argument("--dynamodb-local", nargs="?", type=Path, const=c.ROOT / ".local" / "dynamodb-local",
                        metavar="DIR", help="serve DynamoDB with DynamoDB Local from DIR (the folder of "
                                            "DynamoDBLocal.jar; default .local/dynamodb-local) instead of moto")
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.kind, args.now)
        return 0
    emulators = start_emulators(args.dynamodb_local)
    emulator_name = "DynamoDB Local" if args.dynamodb_local else "moto (DynamoDB serialised)"
    try:
        from chalicelib.store.session import SHARDS

        with c.test_client() as client:
            api = c.InProcessApi(client)
            for plan_id, body in {"std-2c4g": {"monthly_price": 10000, "hourly_price": 20,
                                               "effective_from": "2020-01-01T00:00:00+08:00"}}.items():
                assert api.ops("PUT", f"/ops/plans/{plan_id}", body)[0] == 200
        print(f"{args.servers} servers per run, {LATENCY_MS} ms injected per DynamoDB request, {emulator_name}, "
              f"{SHARDS} shards, {WORKERS} worker processes; {os.cpu_count()} cores", flush=True)
        results = {kind: measure(kind, args.servers) for kind in ("metering", "expiry")}
    finally:
        for proc in emulators:
            proc.terminate()
            proc.wait(timeout=30)
    for kind, r in results.items():
        ratio = r["sequential"]["wall"] / r["fanned"]["wall"]
        label = "metering" if kind == "metering" else "expiry sweep"
        print(f"{label}: sequential {r['sequential']['wall']:.1f} s, fanned out {r['fanned']['wall']:.1f} s, "
              f"ratio {ratio:.1f}x; CPU {r['sequential']['cpu_ms']:.0f} / {r['fanned']['cpu_ms']:.0f} ms per server")
        c.summary("fanout", f"{label}, {args.servers} servers, {LATENCY_MS} ms/request, {emulator_name}: "
                            f"sequential vs {WORKERS} workers",
                  f"{r['sequential']['wall']:.1f} s vs {r['fanned']['wall']:.1f} s = {ratio:.1f}x",
                  ">= 3x", ratio >= 3 and r["sequential"]["ok"] and r["fanned"]["ok"])
        c.summary("fanout", f"{label}: CPU per server (workers)",
                  f"{r['sequential']['cpu_ms']:.0f} ms sequential, {r['fanned']['cpu_ms']:.0f} ms fanned out")
    return 0


if __name__ == "__main__":
    c.finish(main())
