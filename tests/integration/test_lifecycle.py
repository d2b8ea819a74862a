"""Lifecycle through the contract: R-PAY-3/4/6/7/8, R-LIFE-1 … R-LIFE-7, R-NOTE-1, R-CLU-4 (queued actions)."""
from __future__ import annotations

import pytest

from tests.support import environment, order_paid


def kinds(view, kind=None):
    return [n["kind"] for n in view["notifications"] if kind is None or n["kind"] == kind]


def test_monthly_server_lifecycle_end_to_end(priced):
    """R-PAY-8 (E-9), R-LIFE-1, R-LIFE-3, R-PAY-3, R-LIFE-4, R-PAY-4 in one story."""
    priced.buy_monthly("srv-1", "2026-03-03T10:00:00+08:00", months=1)
    # R-PAY-8, E-9: 8 days before 2026-04-03T10:00 is 2026-03-26T10:00; the 00:10 sweep that day is too early
    assert priced.sweep("2026-03-26T00:10:00+08:00")["remind"] == 0
    assert priced.sweep("2026-03-27T00:10:00+08:00")["remind"] == 1
    priced.sweep("2026-03-27T00:10:00+08:00")
    priced.sweep("2026-03-28T00:10:00+08:00")
    view = priced.server("srv-1")
    assert kinds(view) == ["renewal_reminder"]
    # R-LIFE-1 / R-LIFE-3: stopped at the first sweep after expiry; retention counts from the expiry's day
    summary = priced.sweep("2026-04-05T00:10:00+08:00")
    assert summary["expire"] == 1
    view = priced.server("srv-1")
    assert (view["state"], view["stop_reason"]) == ("stopped", "expired")
    assert view["retain_until"] == "2026-04-11T00:00:00+08:00"
    assert [(a["kind"], a["status"]) for a in view["cluster_actions"]] == [("stop", "pending")]
    stopped = [n for n in view["notifications"] if n["kind"] == "stopped"]
    assert stopped[0]["reason"] == "expired" and stopped[0]["retain_until"] == "2026-04-11T00:00:00+08:00"
    # R-PAY-3 (reading): renewed inside retention, counted from the payment; the cluster starts again
    _, body = priced.pay("order.paid", order_paid("ord-r", "acc-1", "srv-1", "renewal", "2026-04-06T12:00:00+08:00", 10000, months=1))
    assert body["outcome"]["server"] == {"server_id": "srv-1", "state": "active", "expires_at": "2026-05-06T12:00:00+08:00"}
    view = priced.server("srv-1")
    assert (view["stop_reason"], view["retain_until"]) == (None, None)
    assert [a["kind"] for a in view["cluster_actions"]] == ["stop", "start"]
    # a new reminder cycle for the new expiry date (R-PAY-8)
    priced.sweep("2026-04-30T00:10:00+08:00")
    assert kinds(priced.server("srv-1"), "renewal_reminder") == ["renewal_reminder", "renewal_reminder"]
    # lapse again: ended 2026-05-06 → kept through 05-13 → destroyed from 2026-05-14T00:00
    priced.sweep("2026-05-07T00:10:00+08:00")
    assert priced.server("srv-1")["retain_until"] == "2026-05-14T00:00:00+08:00"
    assert priced.sweep("2026-05-13T00:10:00+08:00")["warn"] == 1
    assert priced.sweep("2026-05-13T00:10:00+08:00")["warn"] == 0
    assert priced.sweep("2026-05-14T00:10:00+08:00")["destroy"] == 1
    view = priced.server("srv-1")
    assert view["state"] == "destroyed"
    assert kinds(view)[-2:] == ["destruction_warning", "destroyed"]
    assert [a["kind"] for a in view["cluster_actions"]] == ["stop", "start", "stop", "destroy"]
    # R-PAY-4: money after destruction is held, never applied
    _, body = priced.pay("order.paid", order_paid("ord-late", "acc-1", "srv-1", "renewal", "2026-05-20T12:00:00+08:00", 10000, months=1))
    assert (body["outcome"]["decision"], body["outcome"]["reason"]) == ("held_for_review", "server_destroyed")
    assert priced.server("srv-1")["state"] == "destroyed"


def test_R_LIFE_3_spec_example_retention(priced):
    priced.buy_monthly("srv-e", "2026-02-10T23:30:00+08:00", months=1)
    priced.sweep("2026-03-12T00:10:00+08:00")
    assert priced.server("srv-e")["retain_until"] == "2026-03-18T00:00:00+08:00"
    assert priced.sweep("2026-03-17T23:59:00+08:00")["destroy"] == 0
    assert priced.sweep("2026-03-18T00:00:00+08:00")["destroy"] == 1


def test_R_LIFE_3_local_day_of_expiry_not_utc_day(priced):
    """Expiry at 2026-03-10T01:00+08:00 is 03-09 in UTC; the local day counts."""
    priced.buy_monthly("srv-l", "2026-02-10T01:00:00+08:00", months=1)
    priced.sweep("2026-03-11T00:10:00+08:00")
    assert priced.server("srv-l")["retain_until"] == "2026-03-18T00:00:00+08:00"


def test_sweep_twice_for_the_same_now_changes_nothing_more(priced):
    priced.buy_monthly("srv-a", "2026-01-01T10:00:00+08:00")
    first = priced.sweep("2026-02-02T00:10:00+08:00")
    second = priced.sweep("2026-02-02T00:10:00+08:00")
    assert (first["expire"], second["expire"], second["read"]) == (1, 0, 0)
    view = priced.server("srv-a")
    assert kinds(view, "stopped") == ["stopped"] and len(view["cluster_actions"]) == 1


@pytest.mark.both_backends
def test_sweep_killed_half_way_then_rerun_does_everything_exactly_once(priced):
    """The crash case: the sweep dies before its 3rd server; the rerun finishes; nothing twice."""
    from chalicelib.lifecycle import sweep
    from chalicelib.timeutil import parse_rfc3339

    for i in range(5):
        priced.buy_monthly(f"srv-{i}", "2026-01-01T10:00:00+08:00", order_id=f"o{i}")
    seen = []

    def crash_at_third(server_id):
        seen.append(server_id)
        if len(seen) == 3:
            raise RuntimeError("killed")

    now = parse_rfc3339("2026-02-02T00:10:00+08:00")
    with pytest.raises(RuntimeError):
        sweep.run_expiry_sweep(now, before_item=crash_at_third)
    rerun = sweep.run_expiry_sweep(now)
    assert rerun["expire"] == 3
    for i in range(5):
        view = priced.server(f"srv-{i}")
        assert view["state"] == "stopped"
        assert kinds(view, "stopped") == ["stopped"]
        assert [a["kind"] for a in view["cluster_actions"]] == ["stop"]


@pytest.mark.both_backends
def test_sweep_cut_off_by_its_budget_continues_where_it_stopped(priced):
    from chalicelib.lifecycle import sweep
    from chalicelib.timeutil import parse_rfc3339

    for i in range(4):
        priced.buy_monthly(f"srv-{i}", "2026-01-01T10:00:00+08:00", order_id=f"o{i}")
    now = parse_rfc3339("2026-02-02T00:10:00+08:00")
    first = sweep.run_expiry_sweep(now, max_items=3)
    second = sweep.run_expiry_sweep(now)
    assert (first["complete"], first["expire"]) == (False, 3)
    assert (second["complete"], second["expire"], second["read"]) == (True, 1, 1)


def test_scheduled_expiry_sweep_function_uses_the_event_time(api):
    """The scheduled function queues the run's shards (integration §6 Background work); a drain runs them."""
    from chalicelib.store import runs
    from chalicelib.store.session import SHARDS

    api.plan("std", 10000, 20)
    api.buy_monthly("srv-s", "2026-01-01T10:00:00+08:00")
    event = api.client.events.generate_cw_event("aws.events", "Scheduled Event", {}, [])
    event["time"] = "2026-02-01T16:10:00Z"
    result = api.client.lambda_.invoke("expiry_sweep", event).payload
    assert result == {"run_id": "sweep:expiry:2026-02-01T16:10:00.000000Z", "now": "2026-02-02T00:10:00+08:00",
                      "shards": SHARDS, "queued": SHARDS}
    assert api.server("srv-s")["stop_reason"] is None
    status, drained = api.ops("POST", "/ops/background/drain")
    # every queued shard, then the `stopped` notification of srv-s published (integration §6)
    assert (status, drained["failed"], drained["ran"]) == (200, 0, result["queued"] + 1)
    summary = runs.get(result["run_id"])
    assert (summary["expire"], summary["complete"]) == (1, True)
    assert api.server("srv-s")["stop_reason"] == "expired"


# ---- pay-as-you-go --------------------------------------------------------------------------------
def test_R_PAY_6_R_PAY_7_hours_arrears_and_top_up(priced):
    priced.plan("std", 10000, 25, "2026-01-01T02:00:00+08:00")
    priced.pay("order.paid", order_paid("ord-p", "acc-p", "srv-p", "new", "2026-01-01T00:00:00+08:00", 50,
                                        billing_mode="payg", plan_id="std", region="cn-north-1"))
    # hours 00:00 and 01:00 have started by 01:30, at 20 fen each
    assert priced.meter("2026-01-01T01:30:00+08:00")["hours"] == 2
    assert priced.meter("2026-01-01T01:30:00+08:00")["hours"] == 0
    assert priced.account("acc-p")["balance"] == 10
    # a missed run: catch up 02:00 and 03:00 at the price in force when each started (25), into arrears
    assert priced.meter("2026-01-01T03:00:00+08:00")["hours"] == 2
    account = priced.account("acc-p")
    assert (account["balance"], account["in_arrears"]) == (-40, True)
    view = priced.server("srv-p")
    assert (view["state"], view["stop_reason"]) == ("stopped", "arrears")
    assert view["retain_until"] == "2026-01-09T00:00:00+08:00"
    assert priced.meter("2026-01-01T05:00:00+08:00")["hours"] == 0
    # a top-up to >= 0 resumes; the hour grid restarts at the resume time
    _, body = priced.pay("account.topped_up", {"account_id": "acc-p", "amount": 100, "topped_up_at": "2026-01-01T06:30:00+08:00"})
    assert body["outcome"]["account"] == {"account_id": "acc-p", "balance": 60, "in_arrears": False}
    view = priced.server("srv-p")
    assert (view["state"], view["retain_until"]) == ("active", None)
    assert [a["kind"] for a in view["cluster_actions"]] == ["stop", "start"]
    assert priced.meter("2026-01-01T07:29:00+08:00")["hours"] == 1
    account = priced.account("acc-p")
    assert account["balance"] == 35
    assert sum(r.get("amount", 0) for r in account["ledger"]) == account["balance"]
    assert [n["kind"] for n in account["notifications"]] == ["arrears"]


def test_R_PAY_6_hours_started_before_an_operator_stop_are_still_charged(priced):
    priced.pay("account.topped_up", {"account_id": "acc-q", "amount": 1000, "topped_up_at": "2026-01-01T00:00:00+08:00"})
    priced.pay("order.paid", order_paid("ord-q", "acc-q", "srv-q", "new", "2026-01-01T00:00:00+08:00", 0,
                                        billing_mode="payg", plan_id="std", region="cn-north-1"))
    priced.ops("POST", "/ops/servers/srv-q/suspend", {"reason": "violation", "at": "2026-01-01T02:30:00+08:00"})
    # hours 00:00, 01:00, 02:00 started before the stop; none after
    assert priced.meter("2026-01-01T09:00:00+08:00")["hours"] == 3
    priced.ops("POST", "/ops/servers/srv-q/resume", {"at": "2026-01-01T10:15:00+08:00"})
    assert priced.meter("2026-01-01T11:15:00+08:00")["hours"] == 2
    assert priced.account("acc-q")["balance"] == 1000 - 5 * 20


# ---- operators --------------------------------------------------------------------------------------
def test_R_LIFE_2b_lifting_a_violation_of_an_expired_server_leaves_it_expired(priced):
    priced.buy_monthly("srv-v", "2026-01-01T10:00:00+08:00")
    priced.sweep("2026-02-02T00:10:00+08:00")
    status, view = priced.ops("POST", "/ops/servers/srv-v/suspend", {"reason": "violation", "note": "spam",
                                                                      "at": "2026-02-03T00:00:00+08:00"})
    assert status == 200
    assert (view["stop_reason"], view["retain_until"]) == ("violation", None)
    # an operator hold keeps the data: no destruction while it holds
    assert priced.sweep("2026-03-01T00:10:00+08:00")["destroy"] == 0
    status, view = priced.ops("POST", "/ops/servers/srv-v/resume", {"at": "2026-03-02T09:00:00+08:00"})
    assert (view["state"], view["stop_reason"]) == ("stopped", "expired")
    # (reading) retention counts from the lift, so the hold never eats the customer's seven days
    assert view["retain_until"] == "2026-03-10T00:00:00+08:00"


def test_R_LIFE_2_resume_only_lifts_operator_holds(priced):
    priced.buy_monthly("srv-w", "2026-01-01T10:00:00+08:00")
    status, body = priced.ops("POST", "/ops/servers/srv-w/resume", {})
    assert (status, body["error"]["code"]) == (409, "conflict")


@pytest.mark.parametrize("reason, at, refund", [
    # T7.3.4: period [01-10, 04-10) with 2 months used at 02-15 → 30000 − 2 × 10000; the renewal
    # period [04-10, 05-10) has not started → its whole 10000
    ("security_incident", "2026-02-15T00:00:00+08:00", 20000),
    # T7.3.5: remaining/length per period: (04-10 − 02-15)/(04-10 − 01-10) × 30000 + 10000
    ("provider_announcement", "2026-02-15T00:00:00+08:00", round(30000 * (54 * 24 + 10) / (90 * 24)) + 10000),
    ("breach", "2026-02-15T00:00:00+08:00", 0),
    ("user_closed", "2026-02-15T00:00:00+08:00", 0),
])
def test_R_LIFE_5_terminations_and_their_refunds(priced, reason, at, refund):
    priced.buy_monthly("srv-t", "2026-01-10T10:00:00+08:00", months=3)
    priced.pay("order.paid", order_paid("ord-t2", "acc-1", "srv-t", "renewal", "2026-02-01T10:00:00+08:00", 10000, months=1))
    status, body = priced.ops("POST", "/ops/servers/srv-t/terminate", {"reason": reason, "at": at})
    assert status == 200, body
    assert body["refund"] == refund
    assert (body["server"]["state"], body["server"]["stop_reason"], body["server"]["termination_reason"]) == (
        "stopped", "terminated", reason)
    assert body["server"]["retain_until"] == "2026-02-23T00:00:00+08:00"
    account = priced.account("acc-1")
    assert account["balance"] == refund
    assert account["agreement_ended"] is True
    status, again = priced.ops("POST", "/ops/servers/srv-t/terminate", {"reason": reason, "at": at})
    assert status == 409


def test_R_LIFE_5_announcement_refund_rounds_half_up_per_period(priced):
    priced.buy_monthly("srv-r", "2026-01-01T00:00:00+08:00", months=1)
    _, body = priced.ops("POST", "/ops/servers/srv-r/terminate", {"reason": "provider_announcement",
                                                                  "at": "2026-01-11T00:00:00+08:00"})
    assert body["refund"] == 6774  # 10000 × 21/31 = 6774.19


def test_ops_auth_and_clock_override(priced):
    status, body = priced.ops("GET", "/ops/servers/x", token="wrong")
    assert (status, body["error"]["code"]) == (401, "unauthorized")
    response = priced.client.http.get("/ops/servers/x")
    assert response.status_code == 401
    status, _ = priced.ops("GET", "/ops/servers/unknown")
    assert status == 404
    priced.buy_monthly("srv-o", "2026-01-01T10:00:00+08:00")
    from chalicelib.settings import reset_settings

    with environment(ALLOW_CLOCK_OVERRIDE="0"):
        reset_settings()
        status, body = priced.ops("POST", "/ops/servers/srv-o/suspend", {"reason": "violation", "at": "2026-01-02T00:00:00+08:00"})
        assert (status, body["error"]["code"]) == (403, "clock_override_forbidden")
        status, _ = priced.ops("POST", "/ops/sweeps/expiry", {"now": "2026-01-02T00:00:00+08:00"})
        assert status == 403
    reset_settings()
    assert priced.server("srv-o")["state"] == "active"
    status, body = priced.ops("POST", "/ops/servers/srv-o/suspend", {"reason": "holiday"})
    assert (status, body["error"]["fields"]) == (400, ["reason"])


def test_R_NOTE_2_future_price_is_announced_to_affected_accounts_past_one_is_not(priced):
    priced.buy_monthly("srv-n", "2026-01-01T10:00:00+08:00", account="acc-n")
    body = priced.plan("std", 11000, 22, "2099-01-01T00:00:00+08:00")
    assert body["announced_to"] is None  # integration §7: counted by the queued work, not in the call
    priced.plan("std", 11000, 22, "2099-01-01T00:00:00+08:00")
    # queued as background work (integration §6): the drain runs both PUTs' announcements, which record
    # one notification (the cause is the price version), then publishes it
    assert priced.ops("POST", "/ops/background/drain") == (
        200, {"ran": 2 + 1, "succeeded": 2 + 1, "failed": 0, "more": False})
    assert [n["kind"] for n in priced.account("acc-n")["notifications"]] == ["price_change"]
    assert priced.ops("GET", f"/ops/runs/{body['announcement_run']}")[1]["announced"] == 1
    assert priced.plan("std", 10500, 21, "2025-06-01T00:00:00+08:00")["announced_to"] == 0


@pytest.mark.both_backends
def test_R_PAY_3_R_LIFE_1_racing_sweeps_and_renewals_end_the_same_whichever_commits_first(priced):
    """Two expiry sweeps and a renewal for each of 6 expired servers, all at once. Whichever commits
    first, each server ends active until 2026-03-02T00:10 (R-PAY-3: counted from the payment, after
    the expiry 2026-02-01T10:00), with one renewal row, and at most one stop — always followed by its
    start."""
    import threading

    from chalicelib.lifecycle import sweep
    from chalicelib.timeutil import parse_rfc3339
    from chalicelib.webhooks import catalog, delivery
    from tests import support

    servers = [f"srv-{i}" for i in range(6)]
    for server in servers:
        priced.buy_monthly(server, "2026-01-01T10:00:00+08:00", order_id=f"o-{server}")
    now = "2026-02-02T00:10:00+08:00"
    barrier, failures = threading.Barrier(2 + len(servers)), []

    def run_sweep():
        barrier.wait()
        try:
            sweep.run_expiry_sweep(parse_rfc3339(now))
        except Exception as exc:  # noqa: BLE001 - asserted below
            failures.append(exc)

    def renew(server):
        body = support.dumps(support.envelope("order.paid", order_paid(
            f"r-{server}", "acc-1", server, "renewal", now, 10000, months=1), f"evt-r-{server}"))
        headers = {"content-type": "application/json", "x-signature": support.sign(body, support.PAY_SECRET)}
        barrier.wait()
        try:
            answer = delivery.deliver(source="payments", secrets=(support.PAY_SECRET,),
                                      types=catalog.PAYMENT_EVENTS, headers=headers, body=body)
            assert answer["result"] == "processed", answer
        except Exception as exc:  # noqa: BLE001 - asserted below
            failures.append(exc)

    threads = [threading.Thread(target=run_sweep) for _ in range(2)]
    threads += [threading.Thread(target=renew, args=(server,)) for server in servers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    for server in servers:
        view = priced.server(server)
        assert (view["state"], view["expires_at"], view["stop_reason"]) == ("active", "2026-03-02T00:10:00+08:00", None)
        assert [r["kind"] for r in view["ledger"]] == ["order_paid", "renewal"]
        assert [a["kind"] for a in view["cluster_actions"]] in ([], ["stop", "start"])
        assert len(kinds(view, "stopped")) == len(view["cluster_actions"]) // 2
    assert priced.account("acc-1")["balance"] == 0
