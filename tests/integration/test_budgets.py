"""Every call answers inside API Gateway's limit (integration §7): the operators' sweeps stop at the route's
budget and hand the rest to background work (`complete: false`, `GET /ops/runs/{run_id}`), the background
drain says `more`, `PUT /ops/plans` reads no server (E-12: a corrected future price is announced again),
`notification_retry` hands the shards it cannot reach to the queue, and no summary, answer or audit entry
carries more than the first 100 failed ids (the counts stay exact)."""
from __future__ import annotations

import itertools

import pytest

from tests import seed, support

NOW = "2026-02-02T00:10:00+08:00"      # after the expiry of servers bought 2026-01-01T10:00 for a month
PAID = "2026-01-01T10:00:00+08:00"
RUN_ID = "sweep:expiry:2026-02-01T16:10:00.000000Z"
FUTURE = "2099-01-01T00:00:00+08:00"


def _t(text):
    from chalicelib.timeutil import parse_rfc3339

    return parse_rfc3339(text)


def ids_in_shard(shard: str, count: int, prefix: str = "srv", width: int = 0) -> list[str]:
    from chalicelib.store.session import shard_of

    ids = (f"{prefix}-{i:0{width}d}" for i in itertools.count())
    return list(itertools.islice((i for i in ids if shard_of(i) == shard), count))


def ticking_route_budget(monkeypatch, seconds: float = 20.0) -> None:
    """The route's budget on an injected clock that moves 1 s each time it is read: `seconds` checks of
    the budget pass, the next one says stop (a slow store, without waiting for one)."""
    from chalicelib import background

    real = background.Budget.for_route
    ticks = itertools.count()
    monkeypatch.setattr(background.Budget, "for_route", lambda: real(seconds, clock=lambda: float(next(ticks))))


def out_of_time():
    """A budget that is spent from the start: each piece still moves on by one row (sharded.walk)."""
    from chalicelib import background

    return background.Budget(remaining_ms=lambda: 0, reserve_ms=1)


def queued(api) -> list[dict]:
    from chalicelib import aws
    from chalicelib.settings import get_settings

    return support.take_messages(aws.queue_url(get_settings().background_queue))


# ---- the sweeps by hand ---------------------------------------------------------------------------------
def test_contract_7_a_sweep_over_its_budget_answers_incomplete_and_the_drain_finishes_the_same_run(priced, monkeypatch):
    """integration §7, R-LIFE-1: 30 due servers of shard 0; the route's budget lets 20 checks pass, so the
    call stops 21 of them (the check after the 21st visit says stop), answers `complete: false` with the
    run id, and queues shard 0's continuation plus the 31 shards it did not start. The drain finishes the
    same run: one `runs` row (30 stopped, 32 shards done) and one audit entry, for the call."""
    from chalicelib.store.session import SHARDS

    ids = ids_in_shard("0", 30)
    seed.monthly_servers(ids, _t(PAID))
    with monkeypatch.context() as m:
        ticking_route_budget(m)
        body = priced.sweep(NOW)
    assert (body["run_id"], body["complete"], body["expire"], body["visited"], body["queued"]) == (
        RUN_ID, False, 21, 21, SHARDS)
    so_far = priced.run(RUN_ID)
    assert (so_far["complete"], so_far["expire"], so_far["shards_done"], so_far["shards"]) == (False, 21, 0, SHARDS)

    drained = priced.drain_background()
    assert drained == {"ran": SHARDS + 30, "succeeded": SHARDS + 30, "failed": 0, "more": False}  # + 30 `stopped`
    done = priced.run(RUN_ID)
    assert (done["complete"], done["expire"], done["visited"], done["shards_done"], done["errors"]) == (
        True, 30, 30, SHARDS, 0)
    assert {priced.server(sid)["stop_reason"] for sid in ids} == {"expired"}
    assert [a["kind"] for a in priced.server(ids[20])["cluster_actions"]] == ["stop"]
    _, trail = priced.ops("GET", "/ops/audit")
    sweeps = [i for i in trail["items"] if i["action"] == "sweep_expiry"]
    assert len(sweeps) == 1
    assert {k: sweeps[0]["result"][k] for k in ("run_id", "complete", "expire", "queued")} == {
        "run_id": RUN_ID, "complete": False, "expire": 21, "queued": SHARDS}


def test_contract_7_a_sweep_that_fits_answers_complete_and_queues_nothing(priced):
    body = priced.sweep(NOW)  # nothing due: every shard read inside the budget
    assert (body["complete"], body["queued"], body["visited"]) == (True, 0, 0)
    assert queued(priced) == []
    assert priced.run(RUN_ID)["complete"] is True


def test_contract_7_a_metering_run_over_its_budget_hands_on_and_charges_each_hour_once(priced, monkeypatch):
    """R-PAY-6: 3 payg accounts of shard 0 (one server each, 10 started hours at 20 fen); a budget of 2
    checks charges the first two accounts, the drain the third; every account pays 200 fen once."""
    from chalicelib.store.session import SHARDS

    accounts = ids_in_shard("0", 3, prefix="acc")
    seed.payg_accounts({a: [f"srv-{a}"] for a in accounts}, _t("2026-01-01T00:00:00+08:00"), balance=1000)
    with monkeypatch.context() as m:
        ticking_route_budget(m, seconds=2)
        body = priced.meter("2026-01-01T09:30:00+08:00")
    assert (body["complete"], body["accounts"], body["hours"], body["queued"]) == (False, 2, 20, SHARDS)
    priced.drain_background()
    summary = priced.run(body["run_id"])
    assert (summary["complete"], summary["accounts"], summary["hours"], summary["errors"]) == (True, 3, 30, 0)
    assert [priced.account(a)["balance"] for a in accounts] == [1000 - 10 * 20] * 3


def test_contract_7_an_operators_sweep_in_which_hundreds_fail_answers_200_with_exact_counts(priced, monkeypatch):
    """Issue 20: 250 servers with 128-character ids all fail; the answer, the audit entry and the run's row
    count 250 errors and name the first 100 ids (sorted), marked truncated; the others stay due. (The
    route's budget is lifted: the run is one call however loaded the machine is.)"""
    from chalicelib import background
    from chalicelib.lifecycle import effects

    monkeypatch.setattr(background.Budget, "for_route", lambda: background.Budget())

    ids = [f"srv-{i:03d}-" + "x" * 120 for i in range(250)]
    seed.monthly_servers(ids, _t(PAID))

    def failing_stop(*args, **kwargs):
        raise RuntimeError("the store refused it")

    monkeypatch.setattr(effects, "stop", failing_stop)
    body = priced.sweep(NOW)
    assert (body["errors"], body["expire"], body["complete"]) == (250, 0, True)
    assert (body["error_ids"], body["error_ids_truncated"]) == (sorted(ids)[:100], True)
    _, trail = priced.ops("GET", "/ops/audit")
    [entry] = [i for i in trail["items"] if i["action"] == "sweep_expiry"]
    assert (entry["result"]["errors"], entry["result"]["error_ids"]) == (250, sorted(ids)[:100])
    summary = priced.run(RUN_ID)
    assert (summary["errors"], len(summary["error_ids"]), summary["error_ids_truncated"]) == (250, 100, True)
    assert priced.server(ids[-1])["state"] == "active"  # still due: the next run tries it again


def test_contract_7_get_run_answers_404_for_an_unknown_or_impossible_id_and_needs_a_token(priced):
    assert priced.ops("GET", "/ops/runs/sweep:expiry:nothing")[0] == 404
    assert priced.ops("GET", "/ops/runs/" + "x" * 129)[0] == 404
    assert priced.ops("GET", f"/ops/runs/{RUN_ID}", token="wrong")[0] == 401


# ---- the background drain --------------------------------------------------------------------------------
def test_contract_7_the_background_drain_stops_at_its_budget_and_says_more(priced, monkeypatch):
    """integration §7: three queued tasks, a budget of 2 checks: two run, `more` is true; the next drain
    runs the third and answers `more: false`."""
    from chalicelib import background

    background.enqueue_many(background.task("notification_retry", shard=str(i)) for i in range(3))
    with monkeypatch.context() as m:
        ticking_route_budget(m, seconds=2)
        assert priced.drain_background() == {"ran": 2, "succeeded": 2, "failed": 0, "more": True}
    assert priced.drain_background() == {"ran": 1, "succeeded": 1, "failed": 0, "more": False}


# ---- price versions (R-NOTE-2, E-7, E-12) ---------------------------------------------------------------
def test_E_12_a_corrected_future_price_is_announced_again_and_the_put_reads_no_server(priced, monkeypatch):
    """integration §7: the PUT answers without reading the plan's servers (the index query fails if it
    is tried); the queued work announces to acc-1 (two servers) and acc-2, not to acc-3 (its only
    server terminated, E-7). The correction 11 500 / 23 at the same effective_from is announced again
    with the new prices (E-12); the same correction once more announces nothing."""
    from chalicelib.store import session as store

    priced.buy_monthly("srv-1", PAID, account="acc-1")
    priced.buy_monthly("srv-2", PAID, account="acc-1")
    priced.buy_monthly("srv-3", PAID, account="acc-2")
    priced.buy_monthly("srv-4", PAID, account="acc-3")
    status, _ = priced.ops("POST", "/ops/servers/srv-4/terminate", {"reason": "user_closed"})
    assert status == 200
    priced.drain_background()  # the `destroyed`-side notifications of the termination, out of the way

    def no_reads(*args, **kwargs):
        raise AssertionError("PUT /ops/plans read the plan's servers")

    with monkeypatch.context() as m:
        m.setattr(store, "servers_on_plan", no_reads)
        first = priced.plan("std", 11000, 22, FUTURE)
        corrected = priced.plan("std", 11500, 23, FUTURE)
    assert (first["announced_to"], corrected["announced_to"]) == (None, None)
    assert first["announcement_run"] != corrected["announcement_run"]
    assert [(v["monthly_price"], v["effective_from"]) for v in corrected["plan"]["versions"]] == [
        (10000, "2020-01-01T00:00:00+08:00"), (11500, "2099-01-01T00:00:00+08:00")]
    assert priced.drain_background()["more"] is False

    def announced(account):
        return [(n["monthly_price"], n["hourly_price"], n["effective_from"])
                for n in priced.account(account)["notifications"] if n["kind"] == "price_change"]

    both = [(11000, 22, FUTURE), (11500, 23, FUTURE)]
    assert [announced(a) for a in ("acc-1", "acc-2", "acc-3")] == [both, both, []]
    summary = priced.run(corrected["announcement_run"])
    assert (summary["kind"], summary["complete"], summary["announced"], summary["servers"]) == (
        "price_announcement", True, 2, 4)

    priced.plan("std", 11500, 23, FUTURE)
    priced.drain_background()
    assert [announced(a) for a in ("acc-1", "acc-2")] == [both, both]


def test_R_NOTE_2_a_past_price_version_queues_nothing(priced):
    body = priced.plan("std", 10500, 21, "2025-06-01T00:00:00+08:00")
    assert (body["announced_to"], body["announcement_run"]) == (0, None)
    assert queued(priced) == []


# ---- notification retries -------------------------------------------------------------------------------
def expire_servers(api, server_ids: list[str]) -> None:
    for sid in server_ids:
        api.buy_monthly(sid, PAID, order_id=f"o-{sid}", account=f"acc-{sid}")
    assert api.sweep(NOW)["expire"] == len(server_ids)


def test_contract_6_7_notification_retry_out_of_time_hands_the_other_shards_to_background_work(priced):
    """integration §6: three `stopped` notifications outside shard 0; a retry run out of time from the
    start reads shard 0 (empty) and queues shards 1…31; the drain runs those 31 tasks, which publish all
    three, and nothing is left recorded."""
    from chalicelib.notify import outbox
    from chalicelib.store.session import SHARDS, shard_of

    servers = [sid for sid in (f"srv-{i}" for i in range(20)) if shard_of(f"server#{sid}") != "0"][:3]
    expire_servers(priced, servers)
    assert outbox.retry_recorded(out_of_time()) == {"ran": 0, "succeeded": 0, "failed": 0, "handed_on": SHARDS - 1}
    assert priced.drain_background() == {"ran": SHARDS - 1, "succeeded": SHARDS - 1, "failed": 0, "more": False}
    for sid in servers:
        assert [n["status"] for n in priced.server(sid)["notifications"] if n["kind"] == "stopped"] == ["sent"]


def test_contract_6_a_retry_piece_continues_its_shard_from_its_cursor(priced):
    """Four notifications of srv-1 (one shard): each piece out of time publishes one and queues the rest of
    the shard from after it; four pieces publish all four, each once."""
    from chalicelib import background
    from chalicelib.store.session import shard_of

    priced.buy_monthly("srv-1", "2026-03-03T10:00:00+08:00", months=1)
    for now in ("2026-03-28T00:10:00+08:00", "2026-04-05T00:10:00+08:00", "2026-04-10T00:10:00+08:00",
                "2026-04-11T00:10:00+08:00"):
        priced.sweep(now)
    queued(priced)  # the sweeps' (empty) hand-overs, if any
    piece = background.task("notification_retry", shard=shard_of("server#srv-1"))
    cursors = []
    for _ in range(4):
        result = background.run(piece, out_of_time())
        assert (result["ran"], result["succeeded"]) == (1, 1)
        left = queued(priced)
        if result["handed_on"]:
            [piece] = left
            cursors.append(piece["args"]["after"])
    assert len(cursors) == 3 and None not in cursors
    assert {n["status"] for n in priced.server("srv-1")["notifications"]} == {"sent"}


@pytest.mark.parametrize("stuck_after_days, stuck", [(0, 1), (36500, 0)])
def test_R_NOTE_1_only_a_publish_failing_after_the_stuck_delay_counts_as_stuck(priced, monkeypatch, stuck_after_days, stuck):
    """NotificationsStuckAlarm watches NotificationsStuck: a failed publish of a notification recorded
    longer ago than STUCK_AFTER counts; one still inside it (a backlog being worked through) does not."""
    from datetime import timedelta

    from chalicelib import observability
    from chalicelib.notify import outbox

    expire_servers(priced, ["srv-1"])
    counted = []
    monkeypatch.setattr(outbox, "STUCK_AFTER", timedelta(days=stuck_after_days))
    monkeypatch.setattr(observability, "notification_stuck", lambda: counted.append(1))
    monkeypatch.setattr(outbox, "message", lambda doc: (_ for _ in ()).throw(RuntimeError("topic down")))
    assert outbox.retry_recorded() == {"ran": 1, "succeeded": 0, "failed": 1, "handed_on": 0}
    assert len(counted) == stuck
