"""R-PAY-6, R-PAY-7 and R-LIFE-7 at volume (integration §6 "Volume"): a balance that crosses zero moves
every payg server of the account before the call answers, however many it has; a cut-off settlement is
finished by the next run or a redelivery; one account's failure stays one failure inside metering;
repeated and concurrent metering runs charge each hour once."""
from __future__ import annotations

import threading

import pytest

from tests.support import envelope, order_paid

START = "2026-01-01T00:00:00+08:00"
HOURLY = 20  # the standard plan of the `priced` fixture (tests/integration/conftest.py)


def seed_payg(account_id: str, n: int, start: str = START) -> list[str]:
    """n active payg servers on one account, written in bulk (BatchWriteItem) with the keys the store
    itself would give them; the account lists them with a balance of 0 (funded later by a top-up)."""
    from chalicelib.domain.records import Account, PaygSegment, PlanUse, Server
    from chalicelib.lifecycle import effects
    from chalicelib.store import models as m
    from chalicelib.store.session import Session
    from chalicelib.timeutil import parse_rfc3339

    at = parse_rfc3339(start)
    ids = [f"{account_id}-s{i:04d}" for i in range(n)]
    s = Session()
    for sid in ids:
        effects.save_server(s, Server(server_id=sid, account_id=account_id, billing_mode="payg", plan_id="std",
                                      region="cn-north-1", service_start=at,
                                      plan_history=[PlanUse(plan_id="std", since=at)],
                                      payg_segments=[PaygSegment(anchor=at)]))
    s.put_account(Account(account_id=account_id, server_ids=ids))
    with m.ServerRow.batch_write() as batch:
        for _, row, _ in s._writes[:-1]:
            batch.save(row)
    s._writes[-1][1].save()
    return ids


def servers(ids):
    from chalicelib.domain.records import Server
    from chalicelib.store import models as m
    from chalicelib.store import session as store

    rows = store.batch_rows(m.ServerRow, ids)
    return [Server.model_validate(rows[sid].doc) for sid in ids]


def ledger(account_id: str) -> list[dict]:
    from chalicelib.store import models as m

    return [r.doc for r in m.LedgerRowModel.query(account_id, consistent_read=True)]


def stored_balance(account_id: str) -> int:
    from chalicelib.store import models as m

    return m.AccountRow.get(account_id, consistent_read=True).doc.get("balance", 0)


def pending(account_id: str) -> list[str]:
    from chalicelib.store import session as store

    return [a for a in store.pending_settlements(store.shard_of(account_id)) if a == account_id]


def assert_ledger_chain(account_id: str) -> None:
    """R-LIFE-7: balance = sum of the ledger, and each balance change starts where another ended."""
    rows = [r for r in ledger(account_id) if r.get("amount") is not None]
    balance = stored_balance(account_id)
    assert sum(r["amount"] for r in rows) == balance
    for r in rows:
        assert r["balance_after"] - r["balance_before"] == r["amount"]
    # one chain 0 -> ... -> balance: each row starts where another ended (none lost, none doubled)
    befores, afters = sorted(r["balance_before"] for r in rows), sorted(r["balance_after"] for r in rows)
    befores.remove(0)
    afters.remove(balance)
    assert befores == afters


def top_up(api, account_id: str, amount: int, at: str, event_id: str | None = None):
    return api.pay("account.topped_up", {"account_id": account_id, "amount": amount, "topped_up_at": at}, event_id)


@pytest.mark.parametrize("n", [120, 300, 1000])
def test_R_PAY_7_crossing_zero_moves_every_payg_server_of_the_account(priced, n, monkeypatch):
    """integration §6 Volume: the metering run that crosses zero suspends all n payg servers before it
    answers; the top-up that brings the balance back to 0 resumes all of them (R-PAY-6 grid restarts)."""
    from chalicelib import background

    # the route's 20 s budget (integration §7, tests/integration/test_budgets.py) is not what this checks:
    # on a loaded machine 1 000 servers may not fit it, and the run would rightly answer complete: false
    monkeypatch.setattr(background.Budget, "for_route", lambda: background.Budget())
    ids = seed_payg("acc-big", n)
    status, _ = top_up(priced, "acc-big", n * HOURLY, START)
    assert status == 200
    # 01:00: hours 00:00 and 01:00 of every server (R-PAY-6) -> n*20 - 2*n*20 = -n*20 (R-PAY-7: arrears)
    summary = priced.meter("2026-01-01T01:00:00+08:00")
    assert (summary["servers"], summary["hours"], summary["errors"], summary["complete"]) == (n, 2 * n, 0, True)
    assert stored_balance("acc-big") == -n * HOURLY
    suspended = servers(ids)
    assert {(sv.state, tuple(sv.stop_reasons)) for sv in suspended} == {("stopped", ("arrears",))}
    assert {sv.retain_until.isoformat() for sv in suspended} == {"2026-01-09T00:00:00+08:00"}
    assert pending("acc-big") == []
    # a later run charges nothing: no hour starts while stopped
    assert priced.meter("2026-01-01T05:00:00+08:00")["hours"] == 0
    # the top-up that brings the balance to exactly 0 lifts every arrears suspension (>= 0)
    status, body = top_up(priced, "acc-big", n * HOURLY, "2026-01-01T06:30:00+08:00")
    assert (status, body["outcome"]["account"]) == (200, {"account_id": "acc-big", "balance": 0, "in_arrears": False})
    if body["outcome"].get("follow_up") == "queued":  # integration §7: past the call's budget, background work
        assert priced.ops("POST", "/ops/background/drain")[0] == 200
    resumed = servers(ids)
    assert {(sv.state, tuple(sv.stop_reasons)) for sv in resumed} == {("active", ())}
    assert pending("acc-big") == []
    # R-PAY-6: the hour grid restarted at the resume; the hours before the stop are all charged
    assert {(sv.payg_segments[-1].anchor.isoformat(), sv.payg_segments[-1].charged) for sv in resumed} == {
        ("2026-01-01T06:30:00+08:00", 0)}
    assert len([r for r in ledger("acc-big") if r["kind"] == "payg_hours"]) == n
    assert_ledger_chain("acc-big")


def test_R_PAY_7_views_show_120_suspended_and_resumed_servers(priced):
    """The same through the operators' views: each server stopped for arrears with one stop action, then
    started again; the account notified of arrears once."""
    ids = seed_payg("acc-v", 120)
    top_up(priced, "acc-v", 120 * HOURLY, START)
    priced.meter("2026-01-01T01:00:00+08:00")
    account = priced.account("acc-v")
    assert (account["balance"], account["in_arrears"]) == (-120 * HOURLY, True)
    assert [n["kind"] for n in account["notifications"]] == ["arrears"]
    for sid in ids:
        view = priced.server(sid)
        assert (view["state"], view["stop_reason"]) == ("stopped", "arrears")
        assert [a["kind"] for a in view["cluster_actions"]] == ["stop"]
    top_up(priced, "acc-v", 120 * HOURLY, "2026-01-01T03:00:00+08:00")
    for sid in ids:
        view = priced.server(sid)
        assert (view["state"], view["stop_reason"]) == ("active", None)
        assert [a["kind"] for a in view["cluster_actions"]] == ["stop", "start"]


def test_R_PAY_7_a_cut_off_settlement_is_finished_by_the_next_run(priced):
    """A metering shard stopped between settlement chunks leaves the account listed as pending; the next
    run suspends the rest (as of the crossing) before charging, and charges nothing again (R-PAY-6)."""
    from chalicelib.accounts import money
    from chalicelib.billing import metering
    from chalicelib.store.session import shard_of
    from chalicelib.timeutil import parse_rfc3339

    ids = seed_payg("acc-cut", 120)
    top_up(priced, "acc-cut", 120 * HOURLY, START)
    calls = []

    def should_stop():  # 1: before the account, 2: before the first chunk, 3: before the second
        calls.append(1)
        return len(calls) >= 3

    now = parse_rfc3339("2026-01-01T01:00:00+08:00")
    first = metering.run_metering_shard(now, shard_of("acc-cut"), should_stop)
    assert (first["hours"], first["complete"], first["errors"]) == (240, False, 0)
    states = [sv.state for sv in servers(ids)]
    assert (states.count("stopped"), states.count("active")) == (money.SETTLE_CHUNK, 120 - money.SETTLE_CHUNK)
    assert pending("acc-cut") == ["acc-cut"]
    # two hours later: the pending suspension (at 01:00) comes first, so no hour that started after the
    # crossing is charged on the servers the cut-off run had not reached yet (R-PAY-6)
    second = priced.meter("2026-01-01T03:00:00+08:00")
    assert (second["hours"], second["settlements"], second["errors"], second["complete"]) == (0, 1, 0, True)
    assert {sv.state for sv in servers(ids)} == {"stopped"}
    assert pending("acc-cut") == []
    assert stored_balance("acc-cut") == -120 * HOURLY
    assert_ledger_chain("acc-cut")


def test_R_PAY_7_a_top_up_whose_follow_up_is_cut_off_is_answered_200_queued_and_finished_by_a_redelivery(
        priced, monkeypatch):
    """integration §7: the top-up's own transaction (marker, balance, ledger) commits first; when its
    follow-up chunks cannot finish, the answer is still 200 with `"follow_up": "queued"` (never a 4xx
    after a commit); the sender's redelivery finishes them and answers duplicate."""
    from chalicelib.accounts import money

    ids = seed_payg("acc-re", 120)
    top_up(priced, "acc-re", 120 * HOURLY, START)
    priced.meter("2026-01-01T01:00:00+08:00")
    original, parts = money._settle_part, []

    def failing_after_one(*args, **kwargs):
        parts.append(1)
        if len(parts) == 2:
            raise RuntimeError("Lambda cut off")
        return original(*args, **kwargs)

    monkeypatch.setattr(money, "_settle_part", failing_after_one)
    event = envelope("account.topped_up", {"account_id": "acc-re", "amount": 120 * HOURLY,
                                           "topped_up_at": "2026-01-01T02:00:00+08:00"})
    status, body = priced.deliver("/webhooks/payments", event, "pay_test_secret")
    assert (status, body["result"], body["outcome"]["follow_up"]) == (200, "processed", "queued")
    assert body["outcome"]["account"] == {"account_id": "acc-re", "balance": 0, "in_arrears": False}
    assert stored_balance("acc-re") == 0  # the top-up itself is applied, once
    states = [sv.state for sv in servers(ids)]
    assert states.count("active") == money.SETTLE_CHUNK
    monkeypatch.setattr(money, "_settle_part", original)
    status, body = priced.deliver("/webhooks/payments", event, "pay_test_secret")
    assert (status, body["result"], body["outcome"]["account"]["balance"]) == (200, "duplicate", 0)
    assert "follow_up" not in body["outcome"]
    assert {sv.state for sv in servers(ids)} == {"active"}
    assert pending("acc-re") == []
    assert stored_balance("acc-re") == 0
    assert_ledger_chain("acc-re")
    # the task queued by the first delivery finds nothing left to do
    assert priced.ops("POST", "/ops/background/drain")[1]["failed"] == 0


def test_R_PAY_7_a_queued_follow_up_is_finished_by_background_work(priced, monkeypatch):
    """integration §7: a follow-up past the call's budget answers 200 `"follow_up": "queued"`; the
    background task `arrears_settlement` moves the rest (here all 120 servers: none fit the budget)."""
    from chalicelib.accounts import money

    ids = seed_payg("acc-bg", 120)
    top_up(priced, "acc-bg", 120 * HOURLY, START)
    priced.meter("2026-01-01T01:00:00+08:00")
    monkeypatch.setattr(money, "FOLLOW_UP_SECONDS", -1.0)  # spent before it starts
    status, body = top_up(priced, "acc-bg", 120 * HOURLY, "2026-01-01T02:00:00+08:00")
    assert (status, body["outcome"]["follow_up"], body["outcome"]["account"]["balance"]) == (200, "queued", 0)
    assert {sv.state for sv in servers(ids)} == {"stopped"}
    assert pending("acc-bg") == ["acc-bg"]
    status, drained = priced.ops("POST", "/ops/background/drain")
    assert (status, drained["failed"]) == (200, 0)
    assert {(sv.state, tuple(sv.stop_reasons)) for sv in servers(ids)} == {("active", ())}
    assert pending("acc-bg") == []


def test_issue_17_one_failing_server_never_blocks_the_settlement_of_the_others(priced, monkeypatch):
    """R-PAY-7: a server whose move fails even alone is left (the settlement stays pending for the next
    run, which finishes it once it can be moved); the account's 39 other servers are suspended."""
    from chalicelib.accounts import money
    from chalicelib.billing import metering
    from chalicelib.store.session import shard_of
    from chalicelib.timeutil import parse_rfc3339

    ids = seed_payg("acc-f", 40)
    top_up(priced, "acc-f", 40 * HOURLY, START)
    broken = ids[7]
    original = money._move

    def move(s, in_arrears, server, at, cause):
        if server.server_id == broken:
            raise RuntimeError("this server cannot be moved")
        return original(s, in_arrears, server, at, cause)

    monkeypatch.setattr(money, "_move", move)
    summary = metering.run_metering_shard(parse_rfc3339("2026-01-01T01:00:00+08:00"), shard_of("acc-f"))
    assert (summary["hours"], summary["errors"], summary["error_ids"]) == (80, 1, ["acc-f"])
    states = {sv.server_id: sv.state for sv in servers(ids)}
    assert states.pop(broken) == "active"
    assert set(states.values()) == {"stopped"} and len(states) == 39
    assert pending("acc-f") == ["acc-f"]
    monkeypatch.setattr(money, "_move", original)
    # 02:00: the pending suspension (as of 01:00) first, so the broken server's 02:00 hour is not charged
    second = priced.meter("2026-01-01T02:00:00+08:00")
    assert (second["hours"], second["settlements"], second["errors"]) == (0, 1, 0)
    assert {sv.state for sv in servers(ids)} == {"stopped"}
    assert pending("acc-f") == []
    assert stored_balance("acc-f") == 40 * HOURLY - 80 * HOURLY
    assert_ledger_chain("acc-f")


def test_R_PAY_7_a_refund_of_a_payg_top_up_that_crosses_zero_suspends_every_server(priced):
    """order.refunded of a new payg order's top-up, below zero: all 41 payg servers of the account are
    suspended before it answers (more than fit one transaction with the refund: follow-up chunks)."""
    ids = seed_payg("acc-rf", 40)
    priced.pay("order.paid", order_paid("ord-rf", "acc-rf", "srv-rf", "new", START, 900, billing_mode="payg",
                                        plan_id="std", region="cn-north-1"))
    assert priced.meter("2026-01-01T00:30:00+08:00")["hours"] == 41
    assert stored_balance("acc-rf") == 900 - 41 * HOURLY
    status, body = priced.pay("order.refunded", {"order_id": "ord-rf", "account_id": "acc-rf", "server_id": "srv-rf",
                                                 "amount": 900, "refunded_at": "2026-01-01T00:40:00+08:00"})
    assert (status, body["outcome"]["decision"]) == (200, "applied")
    assert stored_balance("acc-rf") == -41 * HOURLY
    assert {(sv.state, tuple(sv.stop_reasons)) for sv in servers(ids)} == {("stopped", ("arrears",))}
    assert sorted(servers(["srv-rf"])[0].stop_reasons) == ["arrears", "terminated"]
    assert pending("acc-rf") == []
    assert_ledger_chain("acc-rf")


def test_issue_9_one_crossing_account_does_not_cost_the_others_their_charge(priced):
    """The issue's reproduction: 8 funded accounts with one payg server each and one account with 60 payg
    servers crossing zero in the same run: 200, all 8 charged, all 60 suspended."""
    for i in range(8):
        priced.pay("order.paid", order_paid(f"o-f{i}", f"acc-f{i}", f"srv-f{i}", "new", START, 1000,
                                            billing_mode="payg", plan_id="std", region="cn-north-1"))
    ids = seed_payg("acc-x", 60)
    top_up(priced, "acc-x", 60 * HOURLY, START)
    summary = priced.meter("2026-01-01T02:00:00+08:00")
    assert (summary["servers"], summary["hours"], summary["errors"]) == (68, 68 * 3, 0)
    for i in range(8):
        assert priced.account(f"acc-f{i}")["balance"] == 1000 - 3 * HOURLY
    assert stored_balance("acc-x") == 60 * HOURLY - 60 * 3 * HOURLY
    assert {sv.state for sv in servers(ids)} == {"stopped"}


def test_one_failing_account_is_recorded_counted_and_retried_by_the_next_run(priced):
    """Issue 9 item 5: an account whose change fails is named in the summary and counted; the run charges
    the others; its servers keep their meter keys, so the next run charges its hours, once."""
    from chalicelib.store import models as m

    for acc in ("acc-a", "acc-b", "acc-c"):
        priced.pay("order.paid", order_paid(f"o-{acc}", acc, f"srv-{acc}", "new", START, 1000,
                                            billing_mode="payg", plan_id="std", region="cn-north-1"))
    good = m.AccountRow.get("acc-b", consistent_read=True)
    broken = m.AccountRow.get("acc-b", consistent_read=True)
    broken.doc = {**broken.doc, "balance": "not a number"}
    broken.save()
    summary = priced.meter("2026-01-01T01:00:00+08:00")
    assert (summary["errors"], summary["error_ids"], summary["hours"]) == (1, ["acc-b"], 4)
    assert [priced.account(a)["balance"] for a in ("acc-a", "acc-c")] == [960, 960]
    repaired = m.AccountRow.get("acc-b", consistent_read=True)
    repaired.doc = good.doc
    repaired.save()
    summary = priced.meter("2026-01-01T01:00:00+08:00")
    assert (summary["errors"], summary["error_ids"], summary["hours"]) == (0, [], 2)
    assert [priced.account(a)["balance"] for a in ("acc-a", "acc-b", "acc-c")] == [960, 960, 960]


def test_R_PAY_6_two_concurrent_metering_runs_charge_each_hour_once(priced):
    """Two whole runs at the same `now` in two threads against the emulator: version conditions make the
    loser of each race read again and find nothing left to charge; one crossing account is settled once."""
    from chalicelib.billing import metering
    from chalicelib.timeutil import parse_rfc3339

    funded = {f"acc-c{i}": seed_payg(f"acc-c{i}", 5) for i in range(20)}
    for acc in funded:
        top_up(priced, acc, 10_000, START)
    crossing = seed_payg("acc-cx", 40)
    top_up(priced, "acc-cx", 40 * HOURLY, START)
    now = parse_rfc3339("2026-01-01T02:00:00+08:00")
    barrier, results, failures = threading.Barrier(2), [], []

    def run():
        barrier.wait()
        try:
            results.append(metering.run_metering(now))
        except Exception as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert sum(r["hours"] for r in results) == (100 + 40) * 3
    assert [r["errors"] for r in results] == [0, 0]
    for acc in funded:
        assert stored_balance(acc) == 10_000 - 5 * 3 * HOURLY
        rows = [r for r in ledger(acc) if r["kind"] == "payg_hours"]
        assert sorted(r["server_id"] for r in rows) == sorted(funded[acc])  # one row per server
        assert_ledger_chain(acc)
    assert stored_balance("acc-cx") == 40 * HOURLY - 40 * 3 * HOURLY
    assert {sv.state for sv in servers(crossing)} == {"stopped"}
    for sv in servers(crossing):
        assert list(sv.stop_reasons) == ["arrears"]
    # and a third run at the same time finds nothing
    assert priced.meter("2026-01-01T02:00:00+08:00")["hours"] == 0


def test_issue_17_the_arrears_notice_carries_the_balance_the_run_ends_with(priced):
    """R-PAY-7, R-NOTE-1: 30 fen and three payg servers charged their 00:00 hour (20 fen each) in one change:
    30 -> 10 -> -10 (the crossing) -> -30; the account is told -30, not the -10 of the crossing."""
    seed_payg("acc-n", 3)
    top_up(priced, "acc-n", 30, START)
    summary = priced.meter("2026-01-01T00:30:00+08:00")
    assert (summary["hours"], stored_balance("acc-n")) == (3, -30)
    notes = priced.account("acc-n")["notifications"]
    assert [(n["kind"], n["balance"]) for n in notes] == [("arrears", -30)]


def test_R_PAY_7_a_payg_server_the_crossing_missed_is_suspended_by_the_next_metering_run(priced):
    """The settlement finds an account's servers through the eventually consistent by_account index: a payg
    server created just before the crossing may be missing from it. Modelled by putting the account in
    arrears with no settlement while its server runs: the next metering run charges the server's started
    hours (R-PAY-6) and suspends it for arrears (R-PAY-7), before it answers."""
    from chalicelib.store.session import Session

    status, _ = priced.pay("order.paid", order_paid("ord-m", "acc-m", "srv-m", "new", START, 0, billing_mode="payg",
                                                    plan_id="std", region="cn-north-1"))
    assert status == 200
    s = Session()
    account = s.account("acc-m")
    account.balance = -100  # in arrears; the crossing that put it there did not see srv-m
    s.put_account(account)
    s.commit()
    summary = priced.meter("2026-01-01T01:30:00+08:00")  # hours 00:00 and 01:00 have started
    assert (summary["hours"], summary["errors"]) == (2, 0)
    [server] = servers(["srv-m"])
    assert (server.state, sorted(server.stop_reasons)) == ("stopped", ["arrears"])
    assert stored_balance("acc-m") == -100 - 2 * HOURLY
    assert pending("acc-m") == []
