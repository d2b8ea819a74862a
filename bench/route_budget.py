"""Route budgets (integration §7, issue 19 §2): `POST /ops/sweeps/expiry` over enough due servers to overrun
API Gateway's limit, with the 25 ms injected per DynamoDB request of bench/fanout.py (its `inject_latency`,
its emulators and its seeding). The call must answer inside 25 s with `complete: false` and its run id; then
`POST /ops/background/drain`, called until it answers `more: false` (each call inside 25 s too), finishes the
same run. Prints the answer time, the servers stopped inside the call, the drains and the time to finish,
and checks one `runs` summary (every server stopped, every shard done) and one audit entry for the sweep.

    .venv/bin/python bench/route_budget.py                    # 1 500 servers, moto
    .venv/bin/python bench/route_budget.py --dynamodb-local   # DynamoDB Local serves DynamoDB

The calls run in a child process (the latency hook must be in place before its first client is made), in
process through chalice.test.Client, one after the other, as an operator would make them."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import _common as c
import fanout

HERE = Path(__file__).resolve().parent
LIMIT_S = 25.0


def worker(now: str) -> None:
    """The operator's calls, timed; prints one JSON line."""
    fanout.inject_latency(fanout.LATENCY_MS)
    with c.test_client() as client:
        api = c.InProcessApi(client)
        t0 = time.perf_counter()
        status, sweep = api.ops("POST", "/ops/sweeps/expiry", {"now": now})
        answered = time.perf_counter() - t0
        assert status == 200, sweep
        drains = []
        while True:
            t1 = time.perf_counter()
            status, drained = api.ops("POST", "/ops/background/drain")
            assert status == 200, drained
            drains.append({"seconds": time.perf_counter() - t1, **drained})
            if not drained["more"]:
                break
        finished = time.perf_counter() - t0
        _, run = api.ops("GET", f"/ops/runs/{sweep['run_id']}")
        _, trail = api.ops("GET", "/ops/audit")
    audits = [e for e in trail["items"] if e["action"] == "sweep_expiry"]
    print(json.dumps({"answered_s": answered, "sweep": {k: sweep.get(k) for k in ("run_id", "complete", "expire", "queued")},
                      "drains": drains, "finished_s": finished, "run": run, "audit_entries": len(audits)}), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--servers", type=int, default=1500)
    parser.add_argument("--worker", action="store_true")
    parser.add_argument("--now")
    parser.add_argument("--dynamodb-local", nargs="?", type=Path, const=c.ROOT / ".local" / "dynamodb-local",
                        metavar="DIR", help="serve DynamoDB with DynamoDB Local from DIR instead of moto")
    args = parser.parse_args()
    if args.worker:
        c.quiet_app_logs()
        worker(args.now)
        return 0
    emulators = fanout.start_emulators(args.dynamodb_local)
    emulator_name = "DynamoDB Local" if args.dynamodb_local else "moto (DynamoDB serialised)"
    try:
        with c.test_client() as client:
            status, _ = c.InProcessApi(client).ops("PUT", "/ops/plans/std-2c4g", {
                "monthly_price": 10000, "hourly_price": 20, "effective_from": "2020-01-01T00:00:00+08:00"})
            assert status == 200
        t0 = time.perf_counter()
        fanout.seed_monthly("rb", args.servers)
        print(f"seeded {args.servers} due servers in {time.perf_counter() - t0:.1f} s; {fanout.LATENCY_MS} ms injected "
              f"per DynamoDB request, {emulator_name}, {os.cpu_count()} cores", flush=True)
        proc = subprocess.run([sys.executable, str(HERE / "route_budget.py"), "--worker", "--now", fanout.EXPIRED],
                              stdout=subprocess.PIPE, text=True, env=dict(os.environ), check=True)
        result = json.loads(proc.stdout.strip().splitlines()[-1])
    finally:
        for proc in emulators:
            proc.terminate()
            proc.wait(timeout=30)
    sweep, run, drains = result["sweep"], result["run"], result["drains"]
    slowest_drain = max(d["seconds"] for d in drains)
    print(f"POST /ops/sweeps/expiry answered in {result['answered_s']:.1f} s: complete {sweep['complete']}, "
          f"{sweep['expire']} of {args.servers} servers stopped in the call, {sweep['queued']} pieces queued")
    for i, d in enumerate(drains, 1):
        print(f"  drain {i}: {d['seconds']:.1f} s, ran {d['ran']}, failed {d['failed']}, more {d['more']}")
    print(f"run finished {result['finished_s']:.1f} s after the sweep was called; run summary: expire {run.get('expire')}, "
          f"shards {run['shards_done']}/{run['shards']}, complete {run['complete']}, errors {run.get('errors')}; "
          f"audit entries for the sweep: {result['audit_entries']}")
    in_time = result["answered_s"] < LIMIT_S and slowest_drain < LIMIT_S
    whole = (sweep["complete"] is False and run["complete"] and run.get("expire") == args.servers
             and run.get("errors", 0) == 0 and result["audit_entries"] == 1)
    c.summary("route_budget", f"POST /ops/sweeps/expiry over {args.servers} due servers, {fanout.LATENCY_MS} ms/request, "
                              f"{emulator_name}: answer time",
              f"{result['answered_s']:.1f} s ({sweep['expire']} stopped in the call, complete false)", "< 25 s", in_time)
    c.summary("route_budget", "the same run finished by POST /ops/background/drain",
              f"{len(drains)} drains (slowest {slowest_drain:.1f} s), {result['finished_s']:.1f} s in all; "
              f"one run summary, {result['audit_entries']} audit entry", "every server, one audit entry", whole)
    return 0 if in_time and whole else 1


if __name__ == "__main__":
    c.finish(main())
