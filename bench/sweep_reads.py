"""Items the daily expiry sweep reads vs servers stored: 10 000 monthly servers, 50 of them due at the
sweep time (25 owe a renewal reminder, 25 have expired). Counts Query ScannedCount/Count and every
DynamoDB request at botocore's _make_api_call; then runs the same sweep again (must read 0 items).

Target: items read <= 2 x due count (the sparse, sharded `by_due` index reads only what is due)."""
from __future__ import annotations

import sys
import time
from datetime import timedelta

import _common as c

STORED = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
DUE_REMIND, DUE_EXPIRE = 25, 25
NOW = "2026-06-01T00:10:00+08:00"
PLAN = "std-2c4g"


def build_rows():
    """ServerRows as a new monthly order stores them (payments._new_order + effects.save_server)."""
    from chalicelib.domain.records import Period, PlanUse, Server
    from chalicelib.lifecycle import rules
    from chalicelib.store import models as m
    from chalicelib.store.session import shard_of
    from chalicelib.timeutil import add_months, parse_rfc3339, store_key

    remind_paid = parse_rfc3339("2026-05-05T10:00:00+08:00")  # expires 06-05: reminder due 05-29
    expire_paid = parse_rfc3339("2026-04-28T10:00:00+08:00")  # expired 05-28
    later_paid = parse_rfc3339("2026-05-10T10:00:00+08:00")   # expires >= 06-10: nothing due on 06-01
    for i in range(STORED):
        if i < DUE_REMIND:
            paid = remind_paid
        elif i < DUE_REMIND + DUE_EXPIRE:
            paid = expire_paid
        else:
            paid = later_paid + timedelta(minutes=7 * i)  # spread over ~7 weeks
        sid = f"srv-{i:05d}"
        server = Server(server_id=sid, account_id=f"acc-{i % 997}", billing_mode="monthly", plan_id=PLAN,
                        region="cn-north-1", service_start=paid, plan_history=[PlanUse(plan_id=PLAN, since=paid)])
        server.expires_at = add_months(paid, 1)
        server.periods.append(Period(order_id=f"ord-{sid}", start=paid, end=server.expires_at, amount=10000,
                                     months=1, monthly_price=10000))
        rules.refresh(server)
        due = rules.next_due(server)
        yield m.ServerRow(sid, account_id=server.account_id, plan_id=PLAN, state=server.state,
                          doc=server.model_dump(mode="json", exclude_none=True),
                          due_shard=shard_of(sid) if due else None, due_at=store_key(due) if due else None,
                          version=1)


def main() -> int:
    server, _ = c.start_emulator()
    try:
        from chalicelib.store import models as m

        t0 = time.perf_counter()
        with m.ServerRow.batch_write() as batch:
            for row in build_rows():
                batch.save(row)
        print(f"stored {STORED} monthly servers ({DUE_REMIND + DUE_EXPIRE} due at {NOW}) "
              f"in {time.perf_counter() - t0:.1f} s by BatchWriteItem")
        counter = c.CallCounter()
        results = []
        with c.test_client() as client:
            api = c.InProcessApi(client)
            for run in (1, 2):
                counter.reset()
                t0 = time.perf_counter()
                status, body = api.ops("POST", "/ops/sweeps/expiry", {"now": NOW})
                elapsed = time.perf_counter() - t0
                ddb, other = counter.snapshot()
                assert status == 200, body
                results.append((run, body, ddb, other, counter.scanned, counter.returned, elapsed))
    finally:
        server.stop()

    due = DUE_REMIND + DUE_EXPIRE
    for run, body, ddb, other, scanned, returned, elapsed in results:
        steps = {k: body.get(k) for k in ("remind", "expire", "warn", "destroy")}
        print(f"\nsweep run {run} at {NOW}: {elapsed:.2f} s; visited {body['visited']} (app's 'read' {body['read']}), "
              f"steps {steps}, errors {body['errors']}")
        print(f"  items read (Query ScannedCount) = {scanned}, returned (Count) = {returned}, "
              f"servers stored = {STORED}, due = {due if run == 1 else 0}")
        print(f"  DynamoDB requests = {sum(ddb.values())}: {c.fmt_ops(ddb)}")
        print(f"  other AWS calls = {sum(other.values())}: {c.fmt_ops(other)}")
    (_, first, ddb1, _, scanned1, _, t1), (_, second, ddb2, _, scanned2, _, _) = results
    ok1 = scanned1 <= 2 * due and first["visited"] == due
    ok2 = scanned2 == 0 and second["visited"] == 0
    print(f"\nfirst run: items read {scanned1} vs 2 x due = {2 * due}: {'meets' if ok1 else 'MISSES'} the target; "
          f"second run read {scanned2} items and visited {second['visited']}: {'did nothing' if ok2 else 'NOT idle'}")
    c.summary("sweep_reads", f"items read, {STORED} stored / {due} due",
              f"{scanned1} read, {first['visited']} visited, {sum(ddb1.values())} DDB requests, {t1:.1f} s",
              f"<= {2 * due}", ok1)
    c.summary("sweep_reads", "second sweep, same now", f"{scanned2} read, {second['visited']} visited, "
              f"{sum(ddb2.values())} DDB requests ({c.fmt_ops(ddb2)})", "0 read", ok2)
    return 0


if __name__ == "__main__":
    c.finish(main())
