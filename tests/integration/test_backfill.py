"""The backfill (issue 18, docs/operations.md): rows written before an index existed join it once re-saved.
Rows here lose the `by_expiry` attributes, as if written by code older than the index; the backfill re-saves
them through the store's own put_server, scanning parallel segments, resuming from its checkpoint, and a
change committed while it runs wins."""
from __future__ import annotations

import json
import os

import boto3
import pytest

from tests.integration.test_fanout import queued_tasks
from tests.support import order_paid

SERVERS = ["srv-a", "srv-b", "srv-c", "srv-d", "srv-e"]
# R-PAY-1: a month bought at 2026-01-01T10:00+08:00 runs to 2026-02-01T10:00+08:00 (02:00 UTC)
EXPIRY_KEY = "2026-02-01T02:00:00.000000Z#{}"


def _raw_servers():
    from chalicelib.store import models as m

    endpoint = os.environ.get("AWS_ENDPOINT_URL_DYNAMODB") or os.environ["AWS_ENDPOINT_URL"]
    return boto3.client("dynamodb", endpoint_url=endpoint, region_name=os.environ["AWS_DEFAULT_REGION"]), \
        m.ServerRow.Meta.table_name


@pytest.fixture
def old_rows(api):
    """Five monthly servers whose rows carry no by_expiry attributes (written before the index existed)."""
    api.plan("std", 10000, 20)
    for sid in SERVERS:
        api.buy_monthly(sid, "2026-01-01T10:00:00+08:00", order_id=f"ord-{sid}")
    ddb, table = _raw_servers()
    for sid in SERVERS:
        ddb.update_item(TableName=table, Key={"server_id": {"S": sid}}, UpdateExpression="REMOVE expiry_shard, expires_key")
    assert _indexed() == {}
    return api


def _indexed() -> dict[str, str]:
    """server id → its by_expiry key, for every row the index holds."""
    from chalicelib.store import lists
    from chalicelib.store import models as m
    from chalicelib.store.session import ensure_configured

    ensure_configured()
    return {row.server_id: row.expires_key for shard in map(str, range(lists.LIST_SHARDS)) for row in m.ServerRow.by_expiry.query(shard)}


def _versions() -> dict[str, int]:
    ddb, table = _raw_servers()
    return {sid: int(ddb.get_item(TableName=table, Key={"server_id": {"S": sid}}, ConsistentRead=True)["Item"]["version"]["N"])
            for sid in SERVERS}


def _run_queued(budget=None) -> int:
    """Run the backfill's queued pieces (and the continuations they queue) one at a time; answers how many ran."""
    from chalicelib import background

    pieces = 0
    while tasks := queued_tasks():
        for task in tasks:
            assert task["kind"] == "backfill_segment"
            background.run(task, budget)
            pieces += 1
    return pieces


@pytest.mark.both_backends
def test_rows_written_before_their_index_join_it_after_the_backfill(old_rows, backend):
    from chalicelib.background import backfill
    from chalicelib.store import runs

    before = _versions()
    status, started = old_rows.ops("POST", "/ops/backfills", {"table": "servers"})
    assert status == 200
    assert {k: started[k] for k in ("table", "segments", "queued")} == {"table": "servers", "segments": 8, "queued": 8}
    assert started["run_id"].startswith("backfill:servers:")
    assert _run_queued() == backfill.SEGMENTS
    assert _indexed() == {sid: EXPIRY_KEY.format(sid) for sid in SERVERS}
    assert _versions() == {sid: v + 1 for sid, v in before.items()}  # each row saved once
    summary = runs.get(started["run_id"])
    assert {k: summary[k] for k in ("kind", "shards", "shards_done", "complete", "visited", "resaved", "overtaken",
                                    "errors", "error_ids")} == {
        "kind": "backfill", "shards": 8, "shards_done": 8, "complete": True, "visited": 5, "resaved": 5,
        "overtaken": 0, "errors": 0, "error_ids": []}
    # integration §6: started by hand, so in the operators' trail with its answer
    [entry] = [e for e in old_rows.ops("GET", "/ops/audit")[1]["items"] if e["action"] == "backfill"]
    assert (entry["table"], entry["result"]["run_id"]) == ("servers", started["run_id"])


@pytest.mark.both_backends
def test_a_backfill_resumes_from_its_checkpoint_and_a_concurrent_change_wins(old_rows, backend, monkeypatch):
    """One segment, a budget that runs out after every row: each piece re-saves one row and queues its
    continuation with the scan's LastEvaluatedKey. srv-c is renewed (R-PAY-3) between the scan's read and its
    re-save: the renewal's keys stay, the stale re-save is refused and counted `overtaken`."""
    from chalicelib import background
    from chalicelib.background import backfill
    from chalicelib.store import runs

    monkeypatch.setattr(backfill, "SEGMENTS", 1)
    real_resave = backfill.TABLES["servers"][1]

    def racing(row):
        if row.server_id == "srv-c":
            status, _ = old_rows.pay("order.paid", order_paid("ord-ren-c", "acc-1", "srv-c", "renewal",
                                                              "2026-01-20T10:00:00+08:00", 10000, months=1))
            assert status == 200
        real_resave(row)

    monkeypatch.setitem(backfill.TABLES, "servers", (backfill.TABLES["servers"][0], racing))
    before = _versions()
    rid = old_rows.ops("POST", "/ops/backfills", {"table": "servers"})[1]["run_id"]
    spent = background.Budget(remaining_ms=lambda: 0, reserve_ms=1)
    pieces = _run_queued(spent)
    # one row per piece, each resumed after the row before; the last piece ends the scan (no LastEvaluatedKey)
    assert pieces == len(SERVERS)
    # srv-c: renewed to 2026-03-01T10:00+08:00 while the backfill ran; the renewal's own write indexed it
    assert _indexed() == {**{sid: EXPIRY_KEY.format(sid) for sid in SERVERS},
                          "srv-c": "2026-03-01T02:00:00.000000Z#srv-c"}
    assert _versions() == {sid: v + 1 for sid, v in before.items()}  # srv-c: the renewal's save, not a second one
    summary = runs.get(rid)
    assert {k: summary[k] for k in ("shards", "shards_done", "complete", "visited", "resaved", "overtaken", "errors")} == {
        "shards": 1, "shards_done": 1, "complete": True, "visited": 5, "resaved": 4, "overtaken": 1, "errors": 0}
    assert old_rows.server("srv-c")["expires_at"] == "2026-03-01T10:00:00+08:00"


def test_a_backfill_of_a_table_it_does_not_know_is_400(api):
    status, body = api.ops("POST", "/ops/backfills", {"table": "ledger"})
    assert (status, body["error"]["code"], body["error"]["fields"]) == (400, "invalid_payload", ["table"])
    assert api.ops("POST", "/ops/backfills", {"table": ["servers"]})[0] == 400
    assert queued_tasks() == []


def test_billing_backfill_starts_the_run_over_http(http_api, capsys):
    """docs/cli.md: `billing backfill servers` is POST /ops/backfills; a table it does not know is refused locally."""
    from cli.main import main
    from tests import support

    code = main(["backfill", "servers", "--api", http_api, "--token", support.OPS_TOKEN])
    out = capsys.readouterr().out
    assert code == 0, out
    answer = json.loads(out[out.index("{"):])
    assert (answer["table"], answer["segments"], answer["queued"]) == ("servers", 8, 8)
    assert sorted(t["args"]["segment"] for t in queued_tasks()) == list(range(8))
    with pytest.raises(SystemExit):
        main(["backfill", "ledger", "--api", http_api, "--token", support.OPS_TOKEN])


def test_accounts_in_arrears_join_the_arrears_index_after_the_backfill(priced):
    """R-PAY-7: an account below zero is in `by_arrears`, deepest first; its row lost the index attributes, and
    the backfill of `accounts` puts them back from the account's document (balance -40: two hours at 20 fen)."""
    from chalicelib.store import lists, runs
    from chalicelib.store import models as m

    def in_arrears() -> list[str]:
        return [row.account_id for shard in map(str, range(lists.LIST_SHARDS)) for row in m.AccountRow.by_arrears.query(shard)]

    priced.pay("order.paid", order_paid("ord-p", "acc-p", "srv-p", "new", "2026-01-01T00:00:00+08:00", 0,
                                        billing_mode="payg", plan_id="std", region="cn-north-1"))
    priced.meter("2026-01-01T01:30:00+08:00")
    assert priced.account("acc-p")["balance"] == -40
    ddb, _ = _raw_servers()
    ddb.update_item(TableName=m.AccountRow.Meta.table_name, Key={"account_id": {"S": "acc-p"}},
                    UpdateExpression="REMOVE arrears_shard, arrears_key")
    assert in_arrears() == []
    rid = priced.ops("POST", "/ops/backfills", {"table": "accounts"})[1]["run_id"]
    assert _run_queued() == 8
    assert in_arrears() == ["acc-p"]
    assert lists.balance_of(m.AccountRow.get("acc-p").arrears_key) == -40
    assert {k: runs.get(rid)[k] for k in ("visited", "resaved", "overtaken", "errors", "complete")} == {
        "visited": 1, "resaved": 1, "overtaken": 0, "errors": 0, "complete": True}
