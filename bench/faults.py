"""Faults in DynamoDB, nothing lost or doubled after the senders' retries. The app runs in-process
(chalice.test.Client) against a moto server; botocore's _make_api_call is wrapped (above botocore's own
retries) so that, from a seeded RNG, ~20 % of TransactWriteItems/TransactGetItems fail before reaching
the emulator (ProvisionedThroughputExceeded / Throttling / InternalServerError: nothing applied) and
~5 % of TransactWriteItems are applied and then answered with an InternalServerError (lost response).
Each event is re-sent (same id, same body) until a 2xx; then the ledger is read back fault-free.

Target: lost = 0, doubled = 0 (each event has exactly one ledger row; the balance counts each top-up once),
and no 409 event_id_reused."""
from __future__ import annotations

import json
import random
import sys
import time
from collections import Counter

import _common as c

SEED = int(sys.argv[1]) if len(sys.argv) > 1 else 20240611
P_FAIL, P_LOST = 0.20, 0.05
N_NEW, N_RENEW, N_TOPUP, ACCOUNTS, TOPUP_ACCOUNT = 120, 40, 60, 20, "acc-f-topup"
FAIL_CODES = ("ProvisionedThroughputExceededException", "ThrottlingException", "InternalServerError")
MAX_ATTEMPTS = 40


class Faults:
    def __init__(self, seed: int):
        self.rng, self.active, self.injected = random.Random(seed), False, Counter()

    def __call__(self, service, operation, params, call):
        if not self.active or service != "dynamodb" or operation not in ("TransactWriteItems", "TransactGetItems"):
            return call()
        from botocore.exceptions import ClientError

        roll = self.rng.random()
        if roll < P_FAIL:
            code = self.rng.choice(FAIL_CODES)
            self.injected[f"{operation} {code} (not applied)"] += 1
            raise ClientError({"Error": {"Code": code, "Message": "injected by bench/faults.py"},
                               "ResponseMetadata": {"HTTPStatusCode": 500 if code == "InternalServerError" else 400}},
                              operation)
        if operation == "TransactWriteItems" and roll < P_FAIL + P_LOST:
            call()  # applied; the answer never reaches the app
            self.injected["TransactWriteItems applied, response lost"] += 1
            raise ClientError({"Error": {"Code": "InternalServerError", "Message": "injected: response lost"},
                               "ResponseMetadata": {"HTTPStatusCode": 500}}, operation)
        return call()


def events(rng: random.Random) -> list[dict]:
    paid = "2026-01-10T10:00:00+08:00"
    out = [c.envelope("order.paid", c.order_paid(f"ord-f-{i}", f"acc-f-{i % ACCOUNTS}", f"srv-f-{i}", "new", paid,
                                                 10000, billing_mode="monthly", plan_id="std", region="cn-north-1",
                                                 months=1)) for i in range(N_NEW)]
    out += [c.envelope("order.paid", c.order_paid(f"ord-f-{i}-ren", f"acc-f-{i % ACCOUNTS}", f"srv-f-{i}", "renewal",
                                                  "2026-01-20T10:00:00+08:00", 10000, months=1))
            for i in rng.sample(range(N_NEW), N_RENEW)]
    out += [c.envelope("account.topped_up", {"account_id": TOPUP_ACCOUNT, "amount": 100 + i,
                                             "topped_up_at": "2026-01-10T11:00:00+08:00"}) for i in range(N_TOPUP)]
    return out


def main() -> int:
    server, _ = c.start_emulator()
    faults = Faults(SEED)
    c.add_middleware(faults)
    sent = events(random.Random(SEED))
    stats = Counter()
    try:
        with c.test_client() as client:
            api = c.InProcessApi(client)
            status, body = api.ops("PUT", "/ops/plans/std", {"monthly_price": 10000, "hourly_price": 20,
                                                              "effective_from": "2020-01-01T00:00:00+08:00"})
            assert status == 200, body
            faults.active = True
            t0 = time.perf_counter()
            for event in sent:
                raw = json.dumps(event).encode()
                for attempt in range(MAX_ATTEMPTS):
                    status, body = api.post_raw("/webhooks/payments", raw, c.PAY_SECRET)
                    stats["requests"] += 1
                    stats["retries"] += attempt > 0
                    code = (body or {}).get("error", {}).get("code")
                    if status < 300:
                        stats[f"final {body.get('result')}"] += 1
                        break
                    stats[f"{status} {code}"] += 1
                    if code == "event_id_reused" or (400 <= status < 500 and code != "event_in_progress"):
                        stats["gave up (4xx)"] += 1
                        break
                else:
                    stats["gave up (attempts)"] += 1
            elapsed = time.perf_counter() - t0
            faults.active = False
            accounts = sorted({e["data"]["account_id"] for e in sent})
            views = {a: api.ops("GET", f"/ops/accounts/{a}") for a in accounts}
            servers = {e["data"]["server_id"]: api.ops("GET", f"/ops/servers/{e['data']['server_id']}")
                       for e in sent if e["type"] == "order.paid"}
    finally:
        server.stop()

    rows = Counter(r.get("event_id") for st, v in views.values() if st == 200 for r in v["ledger"])
    lost = [e["id"] for e in sent if rows[e["id"]] == 0]
    doubled = [e["id"] for e in sent if rows[e["id"]] > 1]
    listed = Counter(s for st, v in views.values() if st == 200 for s in v["servers"])
    missing_servers = sum(st != 200 or listed[sid] != 1 for sid, (st, _) in servers.items())
    want_balance = sum(e["data"]["amount"] for e in sent if e["type"] == "account.topped_up")
    balance = views[TOPUP_ACCOUNT][1].get("balance")
    fivexx = sum(n for k, n in stats.items() if k[:1] == "5")
    print(f"{len(sent)} events ({N_NEW} new orders, {N_RENEW} renewals, {N_TOPUP} top-ups), seed {SEED}, "
          f"{elapsed:.1f} s; {stats['requests']} requests, {stats['retries']} retries, 5xx seen {fivexx}")
    print(f"injected faults ({sum(faults.injected.values())}): " + ", ".join(f"{k} {n}" for k, n in
                                                                                sorted(faults.injected.items())))
    print("answers: " + ", ".join(f"{k} {n}" for k, n in sorted(stats.items()) if k not in ("requests", "retries")))
    print(f"top-up balance = {balance} / expected = {want_balance}; servers missing or listed twice = {missing_servers}")
    print(f"lost = {len(lost)}, doubled = {len(doubled)}" + (f"  lost {lost[:5]} doubled {doubled[:5]}"
                                                              if lost or doubled else ""))
    reused = stats.get("409 event_id_reused", 0)
    ok = not lost and not doubled and balance == want_balance and not missing_servers and not reused
    c.summary("faults", "injected faults / retries / 5xx seen",
              f"{sum(faults.injected.values())} / {stats['retries']} / {fivexx}")
    c.summary("faults", "lost / doubled after retries", f"{len(lost)} / {len(doubled)} (balance {balance}/"
              f"{want_balance}, 409 reused {reused})", "0 / 0", ok)
    return 0


if __name__ == "__main__":
    c.finish(main())
