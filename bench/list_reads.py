"""DynamoDB requests and items read per page of the operators' lists, with many servers stored: 10 000
monthly servers (expiries spread over ~10 weeks, 1 000 of them stopped and awaiting destruction) and 2 000
accounts (200 in arrears). Each list is read page by page (50 items) through the ops API, counting every
DynamoDB request at botocore's _make_api_call.

Target: a page costs a handful of requests (one Query per shard) whatever the number stored, and reads
at most shards x (page + 1) items."""
from __future__ import annotations

import sys
import time
from datetime import timedelta

import _common as c

STORED = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
ACCOUNTS, IN_ARREARS, STOPPED = 2_000, 200, 1_000
AT = "2026-06-01T00:00:00+08:00"
PLAN = "std-2c4g"
PAGE = 50


def build_rows():
    """Server and account rows with the attributes `Session.put_server` / `put_account` write."""
    from chalicelib.domain.records import Account, Period, PlanUse, Server
    from chalicelib.lifecycle import rules
    from chalicelib.store import lists
    from chalicelib.store import models as m
    from chalicelib.timeutil import add_months, parse_rfc3339

    first = parse_rfc3339("2026-04-25T10:00:00+08:00")
    for i in range(STORED):
        paid = first + timedelta(minutes=10 * i)  # expiries from 2026-05-25, ~10 weeks
        sid = f"srv-{i:05d}"
        server = Server(server_id=sid, account_id=f"acc-{i % ACCOUNTS:04d}", billing_mode="monthly", plan_id=PLAN,
                        region="cn-north-1", service_start=paid, plan_history=[PlanUse(plan_id=PLAN, since=paid)])
        server.expires_at = add_months(paid, 1)
        server.periods.append(Period(order_id=f"ord-{sid}", start=paid, end=server.expires_at, amount=10000,
                                     months=1, monthly_price=10000))
        if i < STOPPED:  # expired and stopped by a sweep
            server.stop_reasons["expired"] = server.expires_at
        rules.refresh(server)
        yield m.ServerRow(sid, account_id=server.account_id, plan_id=PLAN, state=server.state,
                          doc=server.model_dump(mode="json", exclude_none=True), version=1,
                          **lists.server_keys(server))
    for i in range(ACCOUNTS):
        account = Account(account_id=f"acc-{i:04d}", balance=-(i + 1) * 100 if i < IN_ARREARS else 5000)
        yield m.AccountRow(account.account_id, doc=account.model_dump(mode="json"), version=1,
                           **lists.account_keys(account))


def main() -> int:
    server, _ = c.start_emulator()
    results = []
    try:
        t0 = time.perf_counter()
        rows = list(build_rows())
        by_table = {}
        for row in rows:
            by_table.setdefault(type(row), []).append(row)
        for model, table_rows in by_table.items():
            with model.batch_write() as batch:
                for row in table_rows:
                    batch.save(row)
        print(f"stored {STORED} servers ({STOPPED} stopped) and {ACCOUNTS} accounts ({IN_ARREARS} in arrears) "
              f"in {time.perf_counter() - t0:.1f} s by BatchWriteItem")
        counter = c.CallCounter()
        with c.test_client() as client:
            api = c.InProcessApi(client)
            for name, query in (("expiring", f"days=7&at={AT.replace('+', '%2B')}"),
                                ("awaiting-destruction", ""), ("arrears", "")):
                cursor, pages = None, 0
                while pages < 3:
                    path = f"/ops/lists/{name}?limit={PAGE}" + (f"&{query}" if query else "") + \
                           (f"&cursor={cursor}" if cursor else "")
                    counter.reset()
                    t0 = time.perf_counter()
                    status, body = api.ops("GET", path)
                    elapsed = time.perf_counter() - t0
                    assert status == 200, body
                    ddb, _ = counter.snapshot()
                    pages += 1
                    results.append((name, pages, len(body["items"]), ddb, counter.scanned, elapsed))
                    cursor = body["next"]
                    if not cursor:
                        break
    finally:
        server.stop()

    from chalicelib.store.lists import LIST_SHARDS

    worst_requests = worst_read = 0
    for name, page, items, ddb, scanned, elapsed in results:
        print(f"{name} page {page}: {items} items, DynamoDB requests {sum(ddb.values())} ({c.fmt_ops(ddb)}), "
              f"items read {scanned}, {elapsed * 1000:.0f} ms")
        worst_requests, worst_read = max(worst_requests, sum(ddb.values())), max(worst_read, scanned)
    ok = worst_requests <= LIST_SHARDS and worst_read <= LIST_SHARDS * (PAGE + 1)
    c.summary("list_reads", f"a list page of {PAGE}, {STORED} servers / {ACCOUNTS} accounts stored",
              f"{worst_requests} Query requests, at most {worst_read} items read",
              f"<= {LIST_SHARDS} requests, <= {LIST_SHARDS * (PAGE + 1)} items", ok)
    return 0


if __name__ == "__main__":
    c.finish(main())
