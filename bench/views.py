"""What reading a view costs as its histories grow (integration §6 "Volume"): a server with a year of hourly
metering (8 760 ledger rows) and 500 notifications, cluster actions and audit entries, on an account with
1 000 payg servers, against a server and an account with one of each. Counts DynamoDB requests and items
read at botocore's _make_api_call, and the size of the answer.

Target: the same requests for both (one read of the record, one query of at most 101 items per list), and
an answer far below Lambda's 6 MB."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import _common as c

LEDGER, OTHERS, SERVERS = 8_760, 500, 1_000
START = datetime(2026, 1, 1, tzinfo=timezone.utc)


def seed(server_id: str, account_id: str, ledger: int, others: int, servers: int) -> None:
    """The rows as the app writes them (keys from the same helpers), stored by BatchWriteItem."""
    from chalicelib.domain.records import Account, AuditEntry, ClusterAction, LedgerRow, Notification, Server
    from chalicelib.store import models as m
    from chalicelib.timeutil import store_key

    def doc(record):
        return record.model_dump(mode="json", exclude_none=True)

    ids = [server_id] + [f"{server_id}-{i:04d}" for i in range(1, servers)]
    server = Server(server_id=server_id, account_id=account_id, billing_mode="payg", plan_id="std",
                    region="cn-north-1", service_start=START)
    m.ServerRow(server_id, account_id=account_id, plan_id="std", state="active", doc=doc(server)).save()
    m.AccountRow(account_id, doc=doc(Account(account_id=account_id, balance=-ledger * 20, server_ids=ids)),
                 ).save()
    with m.LedgerRowModel.batch_write() as batch:
        for i in range(ledger):
            at = START + timedelta(hours=i)
            row = LedgerRow(at=at, kind="payg_hours", rule="R-PAY-6", account_id=account_id, server_id=server_id,
                            amount=-20, balance_before=-20 * i, balance_after=-20 * (i + 1), hours=1,
                            cause=f"sweep:metering:{store_key(at)}", note=f"hours {at.isoformat()} .. {at.isoformat()}")
            batch.save(m.LedgerRowModel(account_id, f"{store_key(at)}#{row.cause}#{server_id}#001",
                                        server_id=server_id, doc=doc(row)))
    with m.NotificationRow.batch_write() as batch:
        for i in range(others):
            at = START + timedelta(days=i)
            for target, kind in ((f"server#{server_id}", "renewal_reminder"), (f"account#{account_id}", "arrears")):
                cause = f"{kind}#{store_key(at)}"
                note = Notification(target=target, cause=cause, kind=kind, at=at, account_id=account_id,
                                    server_id=server_id, details={"balance": -i})
                batch.save(m.NotificationRow(target, cause, status="sent", at_key=f"{store_key(at)}#{cause}",
                                             doc=doc(note)))
    with m.ClusterActionRow.batch_write() as batch:
        for i in range(others):
            kind = ("stop", "start")[i % 2]
            action = ClusterAction(action_id=f"{i:020d}-{kind}", server_id=server_id, kind=kind, status="succeeded",
                                   attempts=1, created_at=START, cause="bench")
            batch.save(m.ClusterActionRow(server_id, action.action_id, doc=doc(action)))
    with m.AuditRow.batch_write() as batch:
        for i in range(others):
            at = START + timedelta(days=i)
            for target in (f"server#{server_id}", f"account#{account_id}"):
                entry = AuditEntry(target=target, at=at, action="suspend", actor="alice",
                                   fields={"reason": "violation", "note": "a note of ordinary length"})
                batch.save(m.AuditRow(target, f"{store_key(at)}#{i:020d}#bench", doc=doc(entry)))


def main() -> int:
    server, _ = c.start_emulator()
    results = {}
    try:
        t0 = time.perf_counter()
        seed("srv-busy", "acc-busy", LEDGER, OTHERS, SERVERS)
        seed("srv-quiet", "acc-quiet", 1, 1, 1)
        print(f"seeded {LEDGER} ledger rows, {OTHERS} notifications / cluster actions / audit entries per "
              f"target and {SERVERS} server ids in {time.perf_counter() - t0:.1f} s")
        counter = c.CallCounter()
        with c.test_client() as client:
            api = c.InProcessApi(client)
            for label, path in (("server busy", "/ops/servers/srv-busy"), ("server quiet", "/ops/servers/srv-quiet"),
                                ("account busy", "/ops/accounts/acc-busy"),
                                ("account quiet", "/ops/accounts/acc-quiet")):
                api.ops("GET", path)  # warm the clients
                counter.reset()
                t0 = time.perf_counter()
                response = client.http.get(path, headers={"Authorization": f"Bearer {c.OPS_TOKEN}"})
                elapsed = time.perf_counter() - t0
                assert response.status_code == 200, response.body[:300]
                ddb, _ = counter.snapshot()
                results[label] = (ddb, counter.returned, len(response.body), elapsed)
    finally:
        server.stop()

    for label, (ddb, returned, size, elapsed) in results.items():
        print(f"{label:14s} {sum(ddb.values())} DynamoDB requests ({c.fmt_ops(ddb)}), {returned} items read, "
              f"{size / 1024:.1f} KiB, {elapsed * 1000:.0f} ms")
    for kind in ("server", "account"):
        busy, quiet = results[f"{kind} busy"], results[f"{kind} quiet"]
        same = busy[0] == quiet[0]
        c.summary("views", f"{kind} view, {LEDGER} ledger rows + {OTHERS} per other list"
                  + (f" + {SERVERS} servers" if kind == "account" else ""),
                  f"{sum(busy[0].values())} requests ({c.fmt_ops(busy[0])}), {busy[1]} items read, "
                  f"{busy[2] / 1024:.0f} KiB (quiet: {sum(quiet[0].values())} requests, {quiet[2] / 1024:.1f} KiB)",
                  "same requests as a quiet one; << 6 MB", same and busy[2] < 1024 * 1024)
    return 0


if __name__ == "__main__":
    c.finish(main())
