"""Scheduled work fanned out on the background queue (integration §3 schedules, §6 Background work and Volume;
issue 9 items 1, 2, 5): one message per shard, shard workers that hand over before their budget, repeated
pieces that change nothing twice, POST /ops/background/drain, queued price announcements (R-NOTE-2), and a
sweep run that goes on past a failing server (R-LIFE-1 retried by the next run)."""
from __future__ import annotations

import json
from collections import Counter

import pytest

from tests import seed, support
from tests.support import order_paid

NOW = "2026-02-02T00:10:00+08:00"      # a sweep after the expiry of servers bought 2026-01-01T10:00 for a month
PAID = "2026-01-01T10:00:00+08:00"


def _t(text):
    from chalicelib.timeutil import parse_rfc3339

    return parse_rfc3339(text)


def queued_tasks() -> list[dict]:
    """Everything on the background queue now, taken off it."""
    from chalicelib import aws
    from chalicelib.settings import get_settings

    return support.take_messages(aws.queue_url(get_settings().background_queue))


def servers_in_one_shard(count: int, prefix: str = "srv") -> tuple[str, list[str]]:
    from chalicelib.store.session import shard_of

    ids = [f"{prefix}-{i}" for i in range(count * 64)]
    shard = shard_of(ids[0])
    return shard, [sid for sid in ids if shard_of(sid) == shard][:count]


# ---- the scheduled functions queue one message per shard -------------------------------------------------
def test_scheduled_sweep_and_metering_queue_one_message_per_shard(api):
    """integration §3: `expiry_sweep` and `payg_metering` hand each shard to `background_work` (SendMessageBatch)."""
    from chalicelib.store.session import SHARDS

    event = api.client.events.generate_cw_event("aws.events", "Scheduled Event", {}, [])
    event["time"] = "2026-02-01T16:10:00Z"
    expiry = api.client.lambda_.invoke("expiry_sweep", event).payload
    metering = api.client.lambda_.invoke("payg_metering", event).payload
    assert (expiry["queued"], metering["queued"]) == (SHARDS, SHARDS)
    tasks = queued_tasks()
    assert Counter(t["kind"] for t in tasks) == {"expiry_shard": SHARDS, "metering_shard": SHARDS}
    for kind in ("expiry_shard", "metering_shard"):
        assert sorted(int(t["args"]["shard"]) for t in tasks if t["kind"] == kind) == list(range(SHARDS))
        assert {t["args"]["now"] for t in tasks if t["kind"] == kind} == {"2026-02-02T00:10:00+08:00"}


def test_background_work_function_runs_a_shard_message(priced):
    """The SQS consumer `background_work` runs one shard; the run's summary counts it."""
    from chalicelib import background
    from chalicelib.store import runs

    shard, ids = servers_in_one_shard(2)
    for sid in ids:
        priced.buy_monthly(sid, PAID, order_id=f"o-{sid}")
    body = json.dumps(background.task("expiry_shard", now=NOW, shard=shard))
    event = priced.client.events.generate_sqs_event([body], queue_name="billing-background")
    priced.client.lambda_.invoke("background_work", event)
    priced.drain_background()  # the test context gives a Lambda 3 s: a continuation, if one was queued, finishes here
    assert [priced.server(sid)["stop_reason"] for sid in ids] == ["expired", "expired"]
    summary = runs.get("sweep:expiry:2026-02-01T16:10:00.000000Z")
    assert (summary["expire"], summary["shards_done"], summary["errors"]) == (2, 1, 0)


# ---- hand-over, repeats, drain ----------------------------------------------------------------------------
def test_a_shard_worker_near_its_budget_hands_over_and_the_continuation_finishes(priced):
    """Issue 9 item 1: a worker stops before its time limit and queues its own continuation; each
    server is stopped once (R-LIFE-1, R-CLU-1)."""
    from chalicelib import background
    from chalicelib.store import runs

    shard, ids = servers_in_one_shard(5)
    for sid in ids:
        priced.buy_monthly(sid, PAID, order_id=f"o-{sid}")
    nearly_out = background.Budget(remaining_ms=lambda: 500, reserve_ms=1000)  # out of time after one server
    piece = background.run(background.task("expiry_shard", now=NOW, shard=shard), nearly_out)
    assert (piece["complete"], piece["expire"], piece["visited"]) == (False, 1, 1)
    [continuation] = queued_tasks()
    assert continuation["kind"] == "expiry_shard" and continuation["args"]["piece"] == 2
    assert continuation["args"]["after"] == piece["next"]
    # the continuation, again nearly out of time, hands over once more; then a drain finishes the shard
    second = background.run(continuation, nearly_out)
    assert (second["complete"], second["expire"]) == (False, 1)
    # one queued piece, then the five `stopped` notifications published (R-NOTE-1, integration §6)
    assert priced.drain_background() == {"ran": 1 + 5, "succeeded": 1 + 5, "failed": 0, "more": False}
    for sid in ids:
        view = priced.server(sid)
        assert view["stop_reason"] == "expired"
        assert [a["kind"] for a in view["cluster_actions"]] == ["stop"]
        assert [n["kind"] for n in view["notifications"]].count("stopped") == 1
    summary = runs.get("sweep:expiry:2026-02-01T16:10:00.000000Z")
    assert (summary["expire"], summary["visited"], summary["shards_done"]) == (5, 5, 1)


def test_a_repeated_shard_message_stops_nothing_twice(priced):
    """SQS delivers at least once: the same shard message run again finds nothing due (R-LIFE-1)."""
    from chalicelib import background

    shard, ids = servers_in_one_shard(3)
    for sid in ids:
        priced.buy_monthly(sid, PAID, order_id=f"o-{sid}")
    message = background.task("expiry_shard", now=NOW, shard=shard)
    first, again = background.run(message), background.run(message)
    assert (first["expire"], again["expire"], again["read"]) == (3, 0, 0)
    for sid in ids:
        assert [a["kind"] for a in priced.server(sid)["cluster_actions"]] == ["stop"]


def test_a_repeated_metering_shard_charges_each_hour_once(priced):
    """R-PAY-6: a metering shard run twice (and the whole run after it) charges every started hour once."""
    from chalicelib import background
    from chalicelib.store.session import shard_of

    priced.pay("order.paid", order_paid("ord-p", "acc-p", "srv-p", "new", "2026-01-01T00:00:00+08:00", 1000,
                                        billing_mode="payg", plan_id="std", region="cn-north-1"))
    message = background.task("metering_shard", now="2026-01-01T03:30:00+08:00", shard=shard_of("acc-p"))
    first, again = background.run(message), background.run(message)
    assert (first["hours"], again["hours"]) == (4, 0)  # 00:00, 01:00, 02:00, 03:00 at 20 fen
    assert priced.meter("2026-01-01T03:30:00+08:00")["hours"] == 0
    account = priced.account("acc-p")
    assert account["balance"] == 1000 - 4 * 20
    assert [r["hours"] for r in account["ledger"] if r["kind"] == "payg_hours"] == [4]


def test_the_same_metering_shard_run_twice_at_once_charges_each_hour_once(priced):
    """R-PAY-6, R-LIFE-7: SQS may hand one message to two invocations at the same time."""
    from concurrent.futures import ThreadPoolExecutor

    from chalicelib import background
    from chalicelib.store.session import shard_of

    for i in range(3):  # one account: its servers share the shard, and every charge moves its balance
        priced.pay("order.paid", order_paid(f"ord-{i}", "acc-c", f"srv-{i}", "new", "2026-01-01T00:00:00+08:00",
                                            1000 if i == 0 else 0, billing_mode="payg", plan_id="std",
                                            region="cn-north-1"))
    message = background.task("metering_shard", now="2026-01-01T01:30:00+08:00", shard=shard_of("acc-c"))
    with ThreadPoolExecutor(2) as pool:
        pieces = list(pool.map(lambda _: background.run(message), range(2)))
    assert sum(p["hours"] for p in pieces) == 3 * 2 and sum(p["errors"] for p in pieces) == 0
    account = priced.account("acc-c")
    assert account["balance"] == 1000 - 3 * 2 * 20
    assert sum(r.get("amount") or 0 for r in account["ledger"]) == account["balance"]
    assert sorted(r["server_id"] for r in account["ledger"] if r["kind"] == "payg_hours") == ["srv-0", "srv-1", "srv-2"]


def test_drain_runs_every_queued_shard_of_a_scheduled_run(priced):
    """integration §6: POST /ops/background/drain runs the shards `payg_metering` queued (R-PAY-6)."""
    from chalicelib.store import runs
    from chalicelib.store.session import SHARDS

    for i in range(3):
        priced.pay("order.paid", order_paid(f"ord-{i}", f"acc-{i}", f"srv-{i}", "new", "2026-01-01T00:00:00+08:00",
                                            1000, billing_mode="payg", plan_id="std", region="cn-north-1"))
    event = priced.client.events.generate_cw_event("aws.events", "Scheduled Event", {}, [])
    event["time"] = "2026-01-01T01:00:00Z"  # 09:00 +08:00: hours 00:00 … 09:00 started
    run = priced.client.lambda_.invoke("payg_metering", event).payload
    assert priced.drain_background() == {"ran": SHARDS, "succeeded": SHARDS, "failed": 0, "more": False}
    assert priced.drain_background() == {"ran": 0, "succeeded": 0, "failed": 0, "more": False}
    for i in range(3):
        assert priced.account(f"acc-{i}")["balance"] == 1000 - 10 * 20
    summary = runs.get(run["run_id"])
    assert (summary["servers"], summary["hours"], summary["complete"], summary["errors"]) == (3, 30, True, 0)


def test_ops_sweep_that_fits_its_budget_finishes_the_whole_run_before_answering(priced):
    """integration §7: POST /ops/sweeps/expiry visits every shard itself when they fit; nothing is left queued."""
    seed.monthly_servers([f"srv-{i}" for i in range(40)], _t(PAID))
    body = priced.sweep(NOW)
    assert (body["expire"], body["complete"], body["errors"], body["error_ids"], body["queued"]) == (40, True, 0, [], 0)
    assert queued_tasks() == []


# ---- volume -----------------------------------------------------------------------------------------------
def test_one_sweep_stops_300_due_servers(priced, monkeypatch):
    """Issue 9 done-when: one sweep stops 300 due servers (R-LIFE-1), each once (in one call: the route's
    budget, tests/integration/test_budgets.py, is lifted so that a loaded machine cannot split the run)."""
    from chalicelib import background
    from chalicelib.store import session as store

    monkeypatch.setattr(background.Budget, "for_route", lambda: background.Budget())

    ids = [f"srv-{i:03d}" for i in range(300)]
    seed.monthly_servers(ids, _t(PAID))
    body = priced.sweep(NOW)
    assert (body["expire"], body["visited"], body["errors"], body["complete"]) == (300, 300, 0, True)
    assert priced.sweep(NOW)["read"] == 0
    for sid in ids[::37]:
        view = priced.server(sid)
        assert (view["state"], view["stop_reason"]) == ("stopped", "expired")
        assert [a["kind"] for a in view["cluster_actions"]] == ["stop"]
    assert sum(1 for _ in store.m.ClusterActionRow.by_open.query("open")) == 300


def test_price_change_announcements_page_the_plans_servers_in_pieces_and_a_drain_delivers_them(priced):
    """R-NOTE-2, E-7, integration §7: PUT /ops/plans queues one task; each piece, out of time after one
    server, announces what that server's account needs and queues its continuation from that server;
    five accounts are announced once each, and the announcement's run counts them."""
    from chalicelib import background

    accounts = [f"acc-{i}" for i in range(5)]
    for i, account in enumerate(accounts):
        priced.buy_monthly(f"srv-{i}", PAID, account=account)
    body = priced.plan("std", 11000, 22, "2099-01-01T00:00:00+08:00")
    assert [priced.account(a)["notifications"] for a in accounts] == [[]] * 5
    [task] = queued_tasks()
    assert (task["kind"], task["args"].get("after")) == ("price_announcement", None)
    out_of_time = background.Budget(remaining_ms=lambda: 0, reserve_ms=1)
    pieces = []
    while task:
        pieces.append(background.run(task, out_of_time))
        task = next(iter(queued_tasks()), None)
    assert [(p["servers"], p["announced"], p["complete"]) for p in pieces] == [(1, 1, False)] * 4 + [(1, 1, True)]
    # the same PUT again queues the work again; it announces nothing twice, and the drain publishes the five
    priced.plan("std", 11000, 22, "2099-01-01T00:00:00+08:00")
    assert priced.drain_background() == {"ran": 1 + 5, "succeeded": 1 + 5, "failed": 0, "more": False}
    for account in accounts:
        notes = priced.account(account)["notifications"]
        assert [(n["kind"], n["plan_id"], n["monthly_price"], n["hourly_price"], n["status"]) for n in notes] == [
            ("price_change", "std", 11000, 22, "sent")]
    status, run = priced.ops("GET", f"/ops/runs/{body['announcement_run']}")
    assert (status, run["announced"], run["servers"], run["complete"]) == (200, 5, 10, True)


# ---- one failure stays one failure -----------------------------------------------------------------------
def test_a_failing_server_does_not_stop_the_sweep_and_is_retried_by_the_next_run(priced, monkeypatch):
    """Issue 9 item 5: the failure is counted and named; the others are stopped (R-LIFE-1); the next run
    with the same `now` stops the one that failed."""
    from chalicelib.lifecycle import effects

    ids = [f"srv-{i}" for i in range(4)]
    for sid in ids:
        priced.buy_monthly(sid, PAID, order_id=f"o-{sid}")
    real_stop = effects.stop

    def failing_stop(s, server, *args, **kwargs):
        if server.server_id == "srv-2":
            raise RuntimeError("the store refused this one")
        return real_stop(s, server, *args, **kwargs)

    monkeypatch.setattr(effects, "stop", failing_stop)
    body = priced.sweep(NOW)
    assert (body["expire"], body["errors"], body["error_ids"], body["complete"]) == (3, 1, ["srv-2"], True)
    assert [priced.server(sid)["stop_reason"] for sid in ids] == ["expired", "expired", None, "expired"]
    monkeypatch.setattr(effects, "stop", real_stop)
    again = priced.sweep(NOW)
    assert (again["expire"], again["errors"], again["read"]) == (1, 0, 1)
    view = priced.server("srv-2")
    assert view["stop_reason"] == "expired" and [a["kind"] for a in view["cluster_actions"]] == ["stop"]
    from chalicelib.store import runs

    summary = runs.get("sweep:expiry:2026-02-01T16:10:00.000000Z")
    assert (summary["expire"], summary["errors"], summary["error_ids"]) == (4, 1, ["srv-2"])


def test_a_500_never_claims_nothing_was_changed(priced, monkeypatch):
    """Issue 9 item 5: a run may have committed part of its work before a fault; the answer must not deny it."""
    from chalicelib.lifecycle import sweep

    def broken(now, **kwargs):
        raise RuntimeError("fault after some servers were stopped")

    monkeypatch.setattr(sweep, "run_expiry_sweep", broken)
    status, body = priced.ops("POST", "/ops/sweeps/expiry", {"now": NOW})
    assert status == 500 and body["error"]["code"] == "internal_error"
    assert "nothing was changed" not in body["error"]["message"]


def test_drain_counts_a_failed_task_keeps_it_queued_and_drops_a_message_it_cannot_read(priced, monkeypatch):
    """integration §6: the drain answers {"ran", "succeeded", "failed"}; a task that failed is tried again later
    (SQS's consumer or the next drain), one that no handler understands is dropped."""
    from chalicelib import aws, background
    from chalicelib.billing import plans
    from chalicelib.settings import get_settings

    sqs, url = aws.client("sqs"), aws.queue_url(get_settings().background_queue)
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"kind": "no_such_task", "args": {}}))
    background.enqueue("price_announcement", at=NOW, cause="price_change#std#x", price={"plan_id": "std"})

    def broken(args, budget):
        raise RuntimeError("the topic is down")

    monkeypatch.setattr(plans, "announce_piece", broken)
    assert priced.drain_background() == {"ran": 2, "succeeded": 0, "failed": 2, "more": False}
    counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    assert (counts["ApproximateNumberOfMessages"], counts["ApproximateNumberOfMessagesNotVisible"]) == ("0", "1")
