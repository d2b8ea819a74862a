"""rules §6 edges E-1 … E-7 through the contract (webhooks, ops API, sweeps)."""
from __future__ import annotations

import pytest

from tests.support import order_paid


def actions(view):
    return [a["kind"] for a in view["cluster_actions"]]


def test_E_1_terminated_during_a_security_hold_is_destroyed_seven_days_later(priced):
    priced.buy_monthly("srv-1", "2026-01-10T10:00:00+08:00", months=3)
    status, _ = priced.ops("POST", "/ops/servers/srv-1/suspend", {"reason": "security_incident",
                                                                 "at": "2026-02-01T09:00:00+08:00"})
    assert status == 200
    assert priced.server("srv-1")["retain_until"] is None  # the hold keeps the data
    status, body = priced.ops("POST", "/ops/servers/srv-1/terminate", {"reason": "breach",
                                                                      "at": "2026-02-05T15:00:00+08:00"})
    assert status == 200, body
    # ended 2026-02-05 → kept through 02-12 → retain_until 2026-02-13T00:00 (was null forever before E-1)
    assert body["server"]["retain_until"] == "2026-02-13T00:00:00+08:00"
    assert priced.sweep("2026-02-12T00:10:00+08:00")["warn"] == 1
    assert priced.sweep("2026-02-12T23:59:59+08:00")["destroy"] == 0
    assert priced.sweep("2026-02-13T00:10:00+08:00")["destroy"] == 1
    view = priced.server("srv-1")
    assert (view["state"], actions(view)) == ("destroyed", ["stop", "destroy"])


def test_E_2_reminder_and_expiry_during_a_hold_then_lifting_leaves_it_expired(priced):
    priced.buy_monthly("srv-2", "2026-03-03T10:00:00+08:00", months=1)  # expires 2026-04-03T10:00
    priced.ops("POST", "/ops/servers/srv-2/suspend", {"reason": "violation", "at": "2026-03-20T09:00:00+08:00"})
    # R-PAY-8 on time during the hold: 7 days before 04-03T10:00 is 03-27T10:00, first sweep after is 03-28
    assert priced.sweep("2026-03-27T00:10:00+08:00")["remind"] == 0
    assert priced.sweep("2026-03-28T00:10:00+08:00")["remind"] == 1
    assert priced.sweep("2026-04-04T00:10:00+08:00")["expire"] == 1
    view = priced.server("srv-2")
    assert (view["state"], view["stop_reason"], view["stop_reasons"]) == ("stopped", "violation", ["violation", "expired"])
    assert view["retain_until"] is None
    assert [n["kind"] for n in view["notifications"]] == ["stopped", "renewal_reminder"]
    # lifting the hold: stopped as expired, no cluster start; retained 7 days from the lift's day
    status, view = priced.ops("POST", "/ops/servers/srv-2/resume", {"at": "2026-04-06T12:00:00+08:00"})
    assert status == 200, view
    assert (view["state"], view["stop_reason"], actions(view)) == ("stopped", "expired", ["stop"])
    assert view["retain_until"] == "2026-04-14T00:00:00+08:00"
    assert priced.sweep("2026-04-14T00:10:00+08:00")["destroy"] == 1


@pytest.mark.parametrize("at, refund", [
    ("2026-01-10T10:00:00+08:00", 30000 - 10000),      # at the start instant: 1 month used (was 0)
    ("2026-02-10T10:00:00+08:00", 30000 - 2 * 10000),  # exactly one month later: 2 used
])
def test_E_3_security_incident_refund_at_a_period_start_counts_the_started_month(priced, at, refund):
    priced.buy_monthly("srv-3", "2026-01-10T10:00:00+08:00", months=3)
    status, body = priced.ops("POST", "/ops/servers/srv-3/terminate", {"reason": "security_incident", "at": at})
    assert (status, body["refund"]) == (200, refund)
    assert priced.account("acc-1")["balance"] == refund


def test_E_4_approved_after_a_withdrawal_counts_from_the_last_submission(priced):
    priced.buy_monthly("srv-4", "2026-01-01T10:00:00+08:00", months=6)
    for kind, at in [("submitted", "2026-01-05T09:00:00+08:00"), ("withdrawn", "2026-01-08T09:00:00+08:00"),
                     ("approved", "2026-01-15T09:00:00+08:00")]:
        data = {"filing_id": "f-4", f"{kind}_at": at}
        if kind == "submitted":
            data.update(server_id="srv-4", website="four.example.cn", is_change=False)
        status, body = priced.ticket(f"filing.{kind}", data)
        assert status == 200, body
    assert (body["outcome"]["clock_start"], body["outcome"]["filing_days"]) == ("2026-01-05T09:00:00+08:00", 10)
    status, body = priced.ticket("compensation.requested", {"ticket_id": "t-4", "filing_id": "f-4", "server_id": "srv-4",
                                                            "requested_at": "2026-01-16T10:00:00+08:00"})
    assert (status, body["outcome"]) == (200, {"ticket_id": "t-4", "status": "requested", "decision": "eligible",
                                               "days": 10})  # was a 500 (TypeError)
    status, body = priced.ticket("compensation.accepted", {"ticket_id": "t-4", "engineer_id": "eng-1",
                                                           "accepted_at": "2026-01-16T15:00:00+08:00"})
    assert (status, body["outcome"]["days"], body["outcome"]["expires_at"]) == (200, 10, "2026-07-11T10:00:00+08:00")


def test_E_5_free_days_that_leave_the_expiry_past_move_the_retention(priced):
    priced.buy_monthly("srv-5", "2026-01-01T10:00:00+08:00", months=1)  # expires 2026-02-01T10:00
    for kind, at in [("submitted", "2026-01-05T09:00:00+08:00"), ("approved", "2026-01-08T09:00:00+08:00")]:
        data = {"filing_id": "f-5", f"{kind}_at": at}
        if kind == "submitted":
            data.update(server_id="srv-5", website="five.example.cn", is_change=False)
        assert priced.ticket(f"filing.{kind}", data)[0] == 200
    priced.sweep("2026-02-02T00:10:00+08:00")
    assert priced.server("srv-5")["retain_until"] == "2026-02-09T00:00:00+08:00"
    priced.ticket("compensation.requested", {"ticket_id": "t-5", "filing_id": "f-5", "server_id": "srv-5",
                                             "requested_at": "2026-02-04T10:00:00+08:00"})
    status, body = priced.ticket("compensation.accepted", {"ticket_id": "t-5", "engineer_id": "eng-1",
                                                           "accepted_at": "2026-02-05T10:00:00+08:00"})
    # 3 days: 2026-02-04T10:00, still before the acceptance: stays stopped, retained from 02-04
    assert (status, body["outcome"]["days"], body["outcome"]["expires_at"]) == (200, 3, "2026-02-04T10:00:00+08:00")
    view = priced.server("srv-5")
    assert (view["state"], view["stop_reason"], view["retain_until"]) == ("stopped", "expired", "2026-02-12T00:00:00+08:00")
    assert actions(view) == ["stop"]
    assert priced.sweep("2026-02-09T00:10:00+08:00")["destroy"] == 0
    assert priced.sweep("2026-02-12T00:10:00+08:00")["destroy"] == 1


@pytest.mark.parametrize("paid_at, decision", [
    ("2026-04-10T23:59:59+08:00", "applied"),
    ("2026-04-11T00:00:00+08:00", "held_for_review"),  # at retain_until, before any sweep destroyed it
    ("2026-04-12T09:00:00+08:00", "held_for_review"),
])
def test_E_6_a_renewal_at_or_after_retain_until_is_held_as_server_destroyed(priced, paid_at, decision):
    priced.buy_monthly("srv-6", "2026-03-03T10:00:00+08:00", months=1)
    priced.sweep("2026-04-04T00:10:00+08:00")
    assert priced.server("srv-6")["retain_until"] == "2026-04-11T00:00:00+08:00"
    status, body = priced.pay("order.paid", order_paid("ord-6r", "acc-1", "srv-6", "renewal", paid_at, 10000, months=1))
    assert (status, body["outcome"]["decision"]) == (200, decision)
    view = priced.server("srv-6")
    if decision == "applied":
        assert (view["state"], actions(view)) == ("active", ["stop", "start"])
    else:
        assert body["outcome"]["reason"] == "server_destroyed"
        assert (view["state"], view["stop_reason"], actions(view)) == ("stopped", "expired", ["stop"])
        assert [(r["kind"], r.get("cash")) for r in view["ledger"]][-1] == ("held_for_review", 10000)


def test_E_7_price_changes_are_announced_only_to_accounts_with_a_live_server_on_the_plan(priced):
    priced.buy_monthly("srv-live", "2026-01-01T10:00:00+08:00", account="acc-live")
    priced.buy_monthly("srv-term", "2026-01-01T10:00:00+08:00", account="acc-term")
    priced.buy_monthly("srv-gone", "2026-01-01T10:00:00+08:00", account="acc-gone")
    priced.buy_monthly("srv-mixed-1", "2026-01-01T10:00:00+08:00", account="acc-mixed")
    priced.buy_monthly("srv-mixed-2", "2026-01-01T10:00:00+08:00", account="acc-mixed")
    for server_id in ("srv-term", "srv-mixed-1"):
        status, _ = priced.ops("POST", f"/ops/servers/{server_id}/terminate", {"reason": "user_closed",
                                                                             "at": "2026-01-05T00:00:00+08:00"})
        assert status == 200
    priced.ops("POST", "/ops/servers/srv-gone/terminate", {"reason": "user_closed", "at": "2026-01-02T00:00:00+08:00"})
    priced.sweep("2026-01-10T00:10:00+08:00")
    assert priced.server("srv-gone")["state"] == "destroyed"
    assert priced.server("srv-live")["state"] == "active"
    body = priced.plan("std", 11000, 22, "2099-01-01T00:00:00+08:00")
    priced.ops("POST", "/ops/background/drain")  # announcements are queued background work (integration §6)
    assert priced.ops("GET", f"/ops/runs/{body['announcement_run']}")[1]["announced"] == 2
    announced = {a: [n["kind"] for n in priced.account(a)["notifications"]]
                 for a in ("acc-live", "acc-term", "acc-gone", "acc-mixed")}
    assert announced == {"acc-live": ["price_change"], "acc-term": [], "acc-gone": [], "acc-mixed": ["price_change"]}
