"""Busy account (integration §7): many senders on ONE account over real HTTP (the local stack's API server,
in this process): 16 senders x 500 new monthly orders, with 4 senders topping the same account up 50 times
each meanwhile; then 40 senders topping it up at once. Run on moto (DynamoDB serialised, as the local
stack runs it) and on DynamoDB Local (real transaction conflicts), each in its own process.

A sender retries 429 busy, 409 event_in_progress and 5xx after a short random pause (a gateway would wait
the Retry-After; the pause keeps the bench short). Prints answers by code, orders and top-ups per second,
and checks: no 409 event_in_progress (every event here is distinct), no 4xx after a commit (no event that
was answered 4xx ends as `duplicate`, none answered 4xx other than 429), every event processed exactly
once, the account's server_count and balance exact.

  .venv/bin/python bench/busy_account.py [--senders 16] [--orders 500] [--backend moto|dynamodb-local|both]"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import _common as c

ACCOUNT = "acc-busy"
PAID = "2026-01-10T10:00:00+08:00"
DDB_LOCAL = c.ROOT / ".local" / "dynamodb-local"


class Senders:
    """Counts every answer; per event, what its tries were."""

    def __init__(self, api: str):
        self.api, self.lock = api, threading.Lock()
        self.codes: Counter = Counter()
        self.bad: list[str] = []
        self.local = threading.local()

    def _http(self):
        import requests

        if not hasattr(self.local, "s"):
            self.local.s = requests.Session()
            self.local.s.trust_env = False  # loopback only, never a proxy
        return self.local.s

    def send(self, event: dict) -> None:
        body = json.dumps(event).encode()
        tries = []
        for _ in range(60):
            r = self._http().post(self.api + "/webhooks/payments", data=body,
                                  headers=c.signed_headers(body, c.PAY_SECRET), timeout=60)
            answer = r.json()
            code = answer.get("result") if r.status_code < 300 else answer.get("error", {}).get("code")
            tries.append((r.status_code, code))
            with self.lock:
                self.codes[f"{r.status_code} {code}"] += 1
            if r.status_code == 429 and r.headers.get("Retry-After") is None:
                self._bad(event, tries, "429 without Retry-After")
            if r.status_code < 300 or (400 <= r.status_code < 500 and r.status_code not in (409, 429)):
                break
            time.sleep(random.uniform(0.01, 0.1))
        earlier = {status // 100 for status, _ in tries[:-1]}
        if tries[-1] == (200, "duplicate"):  # an earlier try committed although it was answered an error
            self._bad(event, tries, "4xx after a commit" if 4 in earlier else "5xx after a commit")
        elif tries[-1] != (200, "processed"):
            self._bad(event, tries, "never applied")
        if any(status == 409 and code == "event_in_progress" for status, code in tries):
            self._bad(event, tries, "409 event_in_progress for a distinct event")

    def _bad(self, event: dict, tries: list, why: str) -> None:
        with self.lock:
            self.bad.append(f"{event['id']}: {why}: {tries}")

    def count(self, why: str) -> int:
        return sum(f": {why}:" in line for line in self.bad)


def run_phase(senders: Senders, plans: list[list[dict]]) -> float:
    barrier = threading.Barrier(len(plans))

    def sender(events: list[dict]) -> None:
        barrier.wait()
        for event in events:
            senders.send(event)

    threads = [threading.Thread(target=sender, args=(events,)) for events in plans]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


def order(sender: int, k: int) -> dict:
    sid = f"srv-busy-{sender:02d}-{k:04d}"
    return c.envelope("order.paid", c.order_paid(f"ord-{sid}", ACCOUNT, sid, "new", PAID, 10000,
                                                 billing_mode="monthly", plan_id="std-2c4g", region="cn-north-1",
                                                 months=1), f"evt-{sid}")


def top_up(tag: str, k: int, amount: int) -> dict:
    return c.envelope("account.topped_up", {"account_id": ACCOUNT, "amount": amount, "topped_up_at": PAID},
                      f"evt-top-{tag}-{k:04d}")


def measure(backend: str, n_senders: int, n_orders: int) -> int:
    import fanout  # its emulator start-up: moto in its own process, DynamoDB Local beside it on demand

    emulators = fanout.start_emulators(DDB_LOCAL if backend == "dynamodb-local" else None)
    server = thread = None
    try:
        from chalice.config import Config

        import app as chalice_app
        from infra.local import api_server

        c.quiet_app_logs()
        c.test_client().http.put("/ops/plans/std-2c4g", headers={"Authorization": f"Bearer {c.OPS_TOKEN}",
                                                                 "Content-Type": "application/json"},
                                 body=json.dumps({"monthly_price": 10000, "hourly_price": 20,
                                                  "effective_from": "2020-01-01T00:00:00+08:00"}))
        server = api_server.make_server(c.LOOPBACK, c.free_port(), app_object=chalice_app.app, config=Config.create())
        thread = threading.Thread(target=server.server.serve_forever, daemon=True)
        thread.start()
        senders = Senders(f"http://{c.LOOPBACK}:{server.port}")

        mixed_tops = 4, 50
        plans = [[order(s, k) for k in range(n_orders)] for s in range(n_senders)]
        plans += [[top_up(f"m{s}", k, 100) for k in range(mixed_tops[1])] for s in range(mixed_tops[0])]
        wall_orders = run_phase(senders, plans)
        order_codes = Counter(senders.codes)
        senders.codes.clear()
        burst = 40
        wall_tops = run_phase(senders, [[top_up(f"b{s}", 0, 7)] for s in range(burst)])
        burst_codes = Counter(senders.codes)

        view = json.loads(c.test_client().http.get(f"/ops/accounts/{ACCOUNT}", headers={
            "Authorization": f"Bearer {c.OPS_TOKEN}"}).body)
        expected_count = n_senders * n_orders
        expected_balance = mixed_tops[0] * mixed_tops[1] * 100 + burst * 7
        n_events = expected_count + mixed_tops[0] * mixed_tops[1]
        print(f"[{backend}] {n_senders} senders x {n_orders} orders + {mixed_tops[0]} x {mixed_tops[1]} top-ups on "
              f"one account: {wall_orders:.1f} s, {expected_count / wall_orders:.1f} orders/s, "
              f"{n_events / wall_orders:.1f} events/s")
        print(f"[{backend}]   answers: {dict(sorted(order_codes.items()))}")
        print(f"[{backend}] {burst} concurrent top-ups: {wall_tops:.2f} s; answers: {dict(sorted(burst_codes.items()))}")
        print(f"[{backend}] account: server_count {view['server_count']} (expected {expected_count}), "
              f"balance {view['balance']} (expected {expected_balance}), problems {len(senders.bad)}")
        for line in senders.bad[:10]:
            print(f"[{backend}]   {line}")
        in_progress = order_codes["409 event_in_progress"] + burst_codes["409 event_in_progress"]
        ok = not senders.bad and view["server_count"] == expected_count and view["balance"] == expected_balance
        c.summary(f"busy_account ({backend})", f"orders/s ({n_senders} senders, one account)",
                  f"{expected_count / wall_orders:.1f}")
        c.summary(f"busy_account ({backend})", "429 busy answers: orders+top-ups phase / 40 top-ups at once",
                  f"{order_codes['429 busy']} / {burst_codes['429 busy']}")
        c.summary(f"busy_account ({backend})", "409 event_in_progress / 4xx after a commit / 5xx after a commit / "
                  "never applied / server_count and balance exact",
                  f"{in_progress} / {senders.count('4xx after a commit')} / {senders.count('5xx after a commit')} / "
                  f"{senders.count('never applied')} / {view['server_count'] == expected_count and view['balance'] == expected_balance}",
                  "0 / 0 / 0 / 0 / True", ok and in_progress == 0)
        return 0 if ok and in_progress == 0 else 1
    finally:
        if server is not None:
            server.shutdown()
            server.server.server_close()
        for proc in emulators:
            proc.terminate()
            proc.wait(timeout=20)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--senders", type=int, default=16)
    parser.add_argument("--orders", type=int, default=500, help="new orders per sender")
    parser.add_argument("--backend", choices=["moto", "dynamodb-local", "both"], default="both")
    args = parser.parse_args()
    if args.backend != "both":
        return measure(args.backend, args.senders, args.orders)
    backends = ["moto"] + (["dynamodb-local"] if (DDB_LOCAL / "DynamoDBLocal.jar").exists() else [])
    rc = 0
    for backend in backends:  # one process each: the app's clients and tables are set up once per process
        proc = subprocess.Popen([sys.executable, str(Path(__file__)), "--senders", str(args.senders),
                                 "--orders", str(args.orders), "--backend", backend], cwd=c.ROOT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        for line in proc.stdout:  # without the app's JSON lines and the API server's access log
            if not line.startswith(("{", f"{c.LOOPBACK} - -")):
                print(line, end="", flush=True)
        rc |= proc.wait()
    return rc


if __name__ == "__main__":
    rc = main()
    c.finish(rc)
