"""Bounded load over real HTTP on loopback: infra/local/run.py (moto + the local API server, free ports,
LOCAL_SCHEDULES=0, seed plan std-2c4g) takes N signed deliveries (default 300) from 16 threads: new monthly
orders for distinct servers, ~20 % duplicates (same id and body, half of them sent right behind the
original so both are in flight) and ~10 % top-ups of one account. A 409 event_in_progress or a 5xx is
retried like a gateway would. Prints throughput, p50/p99 latency, answers by status, then checks the
effects through GET /ops/servers/{id} and GET /ops/accounts/{id}.

Targets: 5xx = 0; effects applied = expected (each server once with one order_paid ledger row, the
top-up account's balance = sum of distinct top-ups). Stops after N deliveries or 90 s."""
from __future__ import annotations

import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import requests

import _common as c

ARGS = [a for a in sys.argv[1:] if not a.startswith("--")]
N = int(ARGS[0]) if ARGS else 300
MODE = "local stack"  # its emulator serialises DynamoDB requests (infra/local/emulator.py)
THREADS, DEADLINE_S, ACCOUNTS, TOPUP_ACCOUNT = 16, 90.0, 50, "acc-load-topup"


def start_stack():
    api_port, aws_port = c.free_port(), c.free_port()
    env = {**os.environ, **c.BENCH_ENV, "API_PORT": str(api_port), "AWS_EMULATOR_PORT": str(aws_port),
           "LOCAL_SCHEDULES": "0", "PYTHONUNBUFFERED": "1"}
    env.pop("PYTHONPATH", None)
    err = tempfile.TemporaryFile()
    proc = subprocess.Popen([sys.executable, str(c.ROOT / "infra" / "local" / "run.py")], cwd=c.ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=err, text=True, start_new_session=True)
    ready = threading.Event()

    def pump():
        for line in proc.stdout:
            if "[local-stack] ready" in line:
                ready.set()
    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + 60
    while not ready.is_set() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    if not ready.is_set():
        stop_stack(proc)
        err.seek(0)
        raise RuntimeError("local stack did not get ready:\n" + err.read().decode(errors="replace")[-2000:])
    return proc, f"http://{c.LOOPBACK}:{api_port}", err


def stop_stack(proc) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)  # run.py stops its own children (moto, the API server)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the process group this script started
            proc.wait(timeout=5)


def build_deliveries(rng: random.Random):
    n_top, n_dup = N // 10, N // 5
    n_new = N - n_top - n_dup
    firsts = [("/webhooks/payments", json.dumps(c.envelope("order.paid", c.order_paid(
        f"ord-load-{i}", f"acc-load-{i % ACCOUNTS}", f"srv-load-{i}", "new", "2026-01-10T10:00:00+08:00", 10000,
        billing_mode="monthly", plan_id="std-2c4g", region="cn-north-1", months=1))).encode()) for i in range(n_new)]
    firsts += [("/webhooks/payments", json.dumps(c.envelope("account.topped_up", {
        "account_id": TOPUP_ACCOUNT, "amount": 100 + i, "topped_up_at": "2026-01-10T11:00:00+08:00"})).encode())
        for i in range(n_top)]
    rng.shuffle(firsts)
    queue = list(firsts)
    for k, original in enumerate(rng.sample(firsts, n_dup)):
        if k % 2 == 0:
            queue.insert(queue.index(original) + 1, original)  # in flight together with the original
        else:
            queue.insert(rng.randrange(queue.index(original) + 1, len(queue) + 1), original)
    return firsts, queue


def main() -> int:
    rng = random.Random(7)
    firsts, queue = build_deliveries(rng)
    c.set_env()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally below: stop the stack
    proc, api, err = start_stack()
    local = threading.local()
    stats = {"lat": [], "status": Counter(), "result": Counter(), "skipped": 0, "gave_up": 0, "5xx": []}
    lock = threading.Lock()

    def http():
        if not hasattr(local, "s"):
            local.s = requests.Session()
            local.s.trust_env = False  # loopback only, never a proxy
        return local.s

    def send(path: str, body: bytes, stop_at: float):
        for attempt in range(12):
            if time.monotonic() > stop_at:
                with lock:
                    stats["skipped" if attempt == 0 else "gave_up"] += 1
                return
            t0 = time.perf_counter()
            r = http().post(api + path, data=body, headers=c.signed_headers(body, c.PAY_SECRET), timeout=30)
            with lock:
                stats["lat"].append(time.perf_counter() - t0)
                stats["status"][r.status_code] += 1
            code = r.json().get("error", {}).get("code") if r.status_code >= 400 else None
            if r.status_code >= 500:
                with lock:
                    stats["5xx"].append(r.text[:200])
            if r.status_code < 300 or not (r.status_code >= 500 or code in ("event_in_progress", "busy")):
                with lock:
                    stats["result"][r.json().get("result") or code] += 1
                return
            time.sleep(0.05 * (attempt + 1))
        with lock:
            stats["gave_up"] += 1

    try:
        t0 = time.perf_counter()
        stop_at = time.monotonic() + DEADLINE_S
        with ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(lambda d: send(*d, stop_at), queue))
        wall = time.perf_counter() - t0

        def get(path):
            r = http().get(api + path, headers={"Authorization": f"Bearer {c.OPS_TOKEN}"}, timeout=30)
            return r.status_code, r.json()
        orders = [json.loads(b) for p, b in firsts if json.loads(b)["type"] == "order.paid"]
        top_ups = [json.loads(b) for p, b in firsts if json.loads(b)["type"] == "account.topped_up"]
        with ThreadPoolExecutor(THREADS) as pool:
            views = list(pool.map(lambda e: get(f"/ops/servers/{e['data']['server_id']}"), orders))
            accounts = dict(pool.map(lambda a: (a, get(f"/ops/accounts/{a}")),
                                     sorted({e["data"]["account_id"] for e in orders} | {TOPUP_ACCOUNT})))
    finally:
        stop_stack(proc)

    paid_rows = [sum(r["kind"] == "order_paid" for r in v.get("ledger", [])) if st == 200 else 0 for st, v in views]
    listed = Counter(s for st, a in accounts.values() if st == 200 for s in a.get("servers", []))
    servers_ok = sum(n == 1 and listed[e["data"]["server_id"]] == 1 for n, e in zip(paid_rows, orders))
    for n, e, (st_, v) in zip(paid_rows, orders, views):
        sid = e["data"]["server_id"]
        if n != 1 or listed[sid] != 1:
            print(f"  NOT OK {sid} ({e['data']['account_id']}): GET {st_}, order_paid rows {n}, "
                  f"listed on account {listed[sid]} time(s)" + ("" if st_ == 200 else f" {v}"))
    doubled = sum(n > 1 for n in paid_rows) + sum(n > 1 for n in listed.values())
    st, acct = accounts[TOPUP_ACCOUNT]
    rows = Counter(r.get("event_id") for r in acct.get("ledger", []) if r["kind"] == "top_up") if st == 200 else {}
    expected_balance = sum(e["data"]["amount"] for e in top_ups)
    topups_ok = sum(rows.get(e["id"]) == 1 for e in top_ups)
    doubled += sum(n > 1 for n in rows.values())
    balance = acct.get("balance") if st == 200 else None
    applied, expected = servers_ok + topups_ok, len(orders) + len(top_ups)
    lat = sorted(stats["lat"])
    p50, p99 = (statistics.median(lat) * 1000, lat[min(len(lat) - 1, int(0.99 * len(lat)))] * 1000) if lat else (0, 0)
    done = len(queue) - stats["skipped"] - stats["gave_up"]
    fivexx = sum(n for s, n in stats["status"].items() if s >= 500)
    print(f"[{MODE}] {len(queue)} deliveries ({len(orders)} new orders, {len(top_ups)} top-ups, "
          f"{len(queue) - len(firsts)} duplicates) from {THREADS} threads in {wall:.1f} s: "
          f"{done / wall:.1f} deliveries/s, {len(lat)} HTTP requests")
    print(f"latency p50 = {p50:.0f} ms, p99 = {p99:.0f} ms; statuses {dict(stats['status'])}; "
          f"final answers {dict(stats['result'])}; skipped {stats['skipped']}, gave up {stats['gave_up']}")
    print(f"top-up account balance = {balance} / expected = {expected_balance}")
    print(f"effects applied = {applied} / expected = {expected}, doubled = {doubled}")
    print(f"5xx = {fivexx}")
    if fivexx:
        err.seek(0)
        causes = Counter(line for line in err.read().decode(errors="replace").splitlines()
                         if line and not line.startswith((" ", "Traceback", "During", "The above")) and ":" in line
                         and ("Error" in line.split(":")[0] or "Exception" in line.split(":")[0]))
        print("  5xx causes in the stack's log: " + "; ".join(f"{n} x {m[:160]}" for m, n in causes.most_common(4)))
    ok = applied == expected and doubled == 0 and balance == expected_balance
    c.summary(f"load ({MODE})", f"throughput ({len(queue)} deliveries, {THREADS} threads)",
              f"{done / wall:.1f}/s, p50 {p50:.0f} ms, p99 {p99:.0f} ms")
    c.summary(f"load ({MODE})", "5xx / 409 in-progress answers", f"{fivexx} / {stats['status'].get(409, 0)}", "5xx = 0",
              fivexx == 0)
    c.summary(f"load ({MODE})", "effects applied / expected", f"{applied} / {expected}, doubled {doubled}, balance "
              f"{balance}/{expected_balance}", "all, once", ok)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
