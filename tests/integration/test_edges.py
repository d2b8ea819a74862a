"""rules §6 edges E-1 … E-14 through the contract (webhooks, ops API, sweeps); E-10 and E-12 are
tested beside the agreement and the price announcements."""
from __future__ import annotations

import pytest

from tests.support import apply, filing, order_paid


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
    # R-PAY-8 on time during the hold: E-9's 8 days before 04-03T10:00 is 03-26T10:00, first sweep after is 03-27
    assert priced.sweep("2026-03-26T00:10:00+08:00")["remind"] == 0
    assert priced.sweep("2026-03-27T00:10:00+08:00")["remind"] == 1
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


@pytest.mark.parametrize("paid_at, decision", [
    ("2026-04-10T23:59:59+08:00", "applied"),
    ("2026-04-11T00:00:00+08:00", "held_for_review"),
    ("2026-04-12T09:00:00+08:00", "held_for_review"),
])
def test_E_6_without_a_sweep_retention_ends_at_retain_until_from_the_expirys_local_date(priced, paid_at, decision):
    """No sweep ever stopped the server: expired 2026-04-03T10:00 (local 04-03) → kept through 04-10 →
    retain_until 2026-04-11T00:00+08:00 all the same (R-LIFE-3); a renewal at or after it was applied."""
    priced.buy_monthly("srv-6", "2026-03-03T10:00:00+08:00", months=1)
    status, body = priced.pay("order.paid", order_paid("ord-6r", "acc-1", "srv-6", "renewal", paid_at, 10000, months=1))
    assert (status, body["outcome"]["decision"]) == (200, decision)
    view = priced.server("srv-6")
    if decision == "applied":  # R-PAY-3: counted from the payment, 1 month
        assert (view["state"], view["expires_at"], actions(view)) == ("active", "2026-05-10T23:59:59+08:00", [])
        return
    assert body["outcome"]["reason"] == "server_destroyed"
    assert (view["state"], view["expires_at"], actions(view)) == ("active", "2026-04-03T10:00:00+08:00", [])
    assert [(r["kind"], r.get("cash"), r.get("note")) for r in view["ledger"]][-1] == (
        "held_for_review", 10000, "server_destroyed")
    # the next sweep stops and destroys it in one visit; the held money stays on the ledger
    summary = priced.sweep("2026-04-12T00:10:00+08:00")
    assert (summary["expire"], summary["destroy"]) == (1, 1)
    assert priced.server("srv-6")["state"] == "destroyed"


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


@pytest.mark.parametrize("end, accepted_at, due_by, state", [
    # refunded 06-16 (unsubscribed: terminated), accepted 06-17 (Wed) → due Thu 06-18
    ("refund", "2026-06-17T10:00:00+08:00", "2026-06-18T10:00:00+08:00", "stopped"),
    # closed 06-16 → kept through 06-23, destroyed by the sweep of 06-24; accepted Thu 06-25 → due Fri 06-26
    ("destroyed", "2026-06-25T10:00:00+08:00", "2026-06-26T10:00:00+08:00", "destroyed"),
])
def test_E_8_a_server_whose_service_ended_after_the_approval_is_denied_service_ended(priced, end, accepted_at,
                                                                                      due_by, state):
    """Filing 06-06T09:00 → approved 06-15T09:00 (9 days, eligible when requested); the service ends on
    06-16, after the approval and before the acceptance: denied `service_ended`, expiry unmoved, no ledger
    row, no "granted" notification (was: granted 9 days, even to a destroyed server)."""
    priced.buy_monthly("srv-8", "2026-06-01T10:00:00+08:00", months=1)  # expires 2026-07-01T10:00
    assert filing(priced, "f-8", "srv-8", [("submitted", "2026-06-06T09:00:00+08:00"),
                                          ("approved", "2026-06-15T09:00:00+08:00")])["filing_days"] == 9
    status, body = priced.ticket("compensation.requested", {"ticket_id": "t-8", "filing_id": "f-8",
                                                            "server_id": "srv-8",
                                                            "requested_at": "2026-06-15T12:00:00+08:00"})
    assert (status, body["outcome"]["decision"], body["outcome"]["days"]) == (200, "eligible", 9)
    if end == "refund":
        status, _ = priced.pay("order.refunded", {"order_id": "ord-srv-8-new", "account_id": "acc-1",
                                                  "server_id": "srv-8", "amount": 10000,
                                                  "refunded_at": "2026-06-16T10:00:00+08:00"})
    else:
        status, _ = priced.ops("POST", "/ops/servers/srv-8/terminate", {"reason": "user_closed",
                                                                      "at": "2026-06-16T10:00:00+08:00"})
        assert priced.sweep("2026-06-24T00:10:00+08:00")["destroy"] == 1
    assert status == 200
    status, body = priced.ticket("compensation.accepted", {"ticket_id": "t-8", "engineer_id": "eng-1",
                                                           "accepted_at": accepted_at})
    assert (status, body["outcome"]) == (200, {"decision": "denied", "reason": "service_ended", "due_by": due_by})
    view = priced.server("srv-8")
    assert (view["state"], view["expires_at"]) == (state, "2026-07-01T10:00:00+08:00")
    assert (view["free_period"]["decision"], view["free_period"]["reason"]) == ("denied", "service_ended")
    assert [r for r in view["ledger"] if r["kind"] == "free_period"] == []
    kinds = [n["kind"] for n in view["notifications"]]
    assert ("free_period_denied" in kinds, "free_period_granted" in kinds) == (True, False)


def test_E_9_the_reminder_comes_7_to_8_days_ahead_once_per_expiry_date(priced):
    """Expires 2026-04-03T10:00; the customer must pay by 03-27T10:00 (7 days ahead, T2.2.1.2). Within the
    next 8 days from 03-26T10:00: the sweep of 03-26 00:10 does not remind, the one of 03-27 00:10 does
    (7 d 9 h 50 min ahead, before the deadline), the one of 03-28 not again."""
    priced.buy_monthly("srv-9", "2026-03-03T10:00:00+08:00", months=1)
    assert priced.sweep("2026-03-26T00:10:00+08:00")["remind"] == 0
    assert priced.sweep("2026-03-27T00:10:00+08:00")["remind"] == 1
    assert priced.sweep("2026-03-28T00:10:00+08:00")["remind"] == 0
    [note] = [n for n in priced.server("srv-9")["notifications"] if n["kind"] == "renewal_reminder"]
    assert (note["at"], note["expires_at"]) == ("2026-03-27T00:10:00+08:00", "2026-04-03T10:00:00+08:00")


def _stopped(view):
    return [(n["at"], n["reason"], n["retain_until"]) for n in view["notifications"] if n["kind"] == "stopped"]


def test_E_11_a_termination_under_a_hold_tells_the_destruction_date(priced):
    priced.buy_monthly("srv-11", "2026-01-10T10:00:00+08:00", months=3)
    priced.ops("POST", "/ops/servers/srv-11/suspend", {"reason": "security_incident", "at": "2026-02-01T09:00:00+08:00"})
    status, _ = priced.ops("POST", "/ops/servers/srv-11/terminate", {"reason": "breach", "at": "2026-02-05T15:00:00+08:00"})
    assert status == 200
    # E-1: ended 02-05 → kept through 02-12 → destroyed from 02-13T00:00
    assert _stopped(priced.server("srv-11")) == [
        ("2026-02-01T09:00:00+08:00", "security_incident", None),
        ("2026-02-05T15:00:00+08:00", "terminated", "2026-02-13T00:00:00+08:00")]


def test_E_11_a_hold_lifted_leaving_it_expired_tells_the_destruction_date_once(priced):
    priced.buy_monthly("srv-11", "2026-03-03T10:00:00+08:00", months=1)  # expires 2026-04-03T10:00
    priced.ops("POST", "/ops/servers/srv-11/suspend", {"reason": "violation", "at": "2026-03-20T09:00:00+08:00"})
    assert priced.sweep("2026-04-04T00:10:00+08:00")["expire"] == 1  # E-2: beside the hold, no notification
    priced.ops("POST", "/ops/servers/srv-11/resume", {"at": "2026-04-06T12:00:00+08:00"})
    told = [("2026-03-20T09:00:00+08:00", "violation", None),
            ("2026-04-06T12:00:00+08:00", "expired", "2026-04-14T00:00:00+08:00")]  # 7 days from the lift's day
    assert _stopped(priced.server("srv-11")) == told
    # held and lifted again the same day: the same reason and date, not told twice
    priced.ops("POST", "/ops/servers/srv-11/suspend", {"reason": "violation", "at": "2026-04-06T13:00:00+08:00"})
    status, view = priced.ops("POST", "/ops/servers/srv-11/resume", {"at": "2026-04-06T14:00:00+08:00"})
    assert (status, view["retain_until"]) == (200, "2026-04-14T00:00:00+08:00")
    assert _stopped(priced.server("srv-11")) == told


def test_E_11_free_days_moving_an_expired_servers_end_tell_the_new_date(priced):
    priced.buy_monthly("srv-11", "2026-01-01T10:00:00+08:00", months=1)  # expires 2026-02-01T10:00
    filing(priced, "f-11", "srv-11", [("submitted", "2026-01-05T09:00:00+08:00"), ("approved", "2026-01-08T09:00:00+08:00")])
    priced.sweep("2026-02-02T00:10:00+08:00")
    _, outcome = apply(priced, "t-11", "f-11", "srv-11", "2026-02-04T10:00:00+08:00", "2026-02-05T10:00:00+08:00")
    assert (outcome["days"], outcome["expires_at"]) == (3, "2026-02-04T10:00:00+08:00")  # still past (E-5)
    assert _stopped(priced.server("srv-11")) == [
        ("2026-02-01T10:00:00+08:00", "expired", "2026-02-09T00:00:00+08:00"),
        ("2026-02-05T10:00:00+08:00", "expired", "2026-02-12T00:00:00+08:00")]


def test_E_13_a_second_approval_moves_neither_the_length_nor_which_website_was_first(priced):
    """Website A: 01-05 → approved 01-15 (10 days); website B: 01-06 → approved 01-20. A second approval of
    A on 01-25 is answered with A as it stands; B stays "not first", A earns its 10 days (was: A's approval
    moved to 01-25, so B became first and was granted 14)."""
    priced.buy_monthly("srv-13", "2026-01-01T10:00:00+08:00", months=6)  # expires 2026-07-01T10:00
    filing(priced, "f-a", "srv-13", [("submitted", "2026-01-05T09:00:00+08:00"), ("approved", "2026-01-15T09:00:00+08:00")])
    filing(priced, "f-b", "srv-13", [("submitted", "2026-01-06T09:00:00+08:00"), ("approved", "2026-01-20T09:00:00+08:00")])
    status, body = priced.ticket("filing.approved", {"filing_id": "f-a", "approved_at": "2026-01-25T09:00:00+08:00"})
    assert (status, body["result"], body["outcome"]) == (200, "processed", {
        "filing_id": "f-a", "server_id": "srv-13", "clock_start": "2026-01-05T09:00:00+08:00",
        "approved_at": "2026-01-15T09:00:00+08:00", "filing_days": 10})
    _, b = apply(priced, "t-b", "f-b", "srv-13", "2026-01-26T09:00:00+08:00", "2026-01-26T10:00:00+08:00")
    assert (b["decision"], b["reason"]) == ("denied", "not_first_website")
    _, a = apply(priced, "t-a", "f-a", "srv-13", "2026-01-26T11:00:00+08:00", "2026-01-26T12:00:00+08:00")
    assert (a["decision"], a["days"], a["expires_at"]) == ("granted", 10, "2026-07-11T10:00:00+08:00")


def test_E_14_a_payg_order_with_no_price_in_force_is_held_like_a_monthly_one(api):
    """The plan's first price takes effect 2026-06-01; orders paid on 05-01 are held `no_price_in_force`, payg
    as monthly: no server, the money on the account's ledger as held, the balance untouched (R-PAY-2)."""
    api.plan("later", 10000, 20, "2026-06-01T00:00:00+08:00")
    for mode, paid_at, extra in (("payg", "2026-05-01T10:00:00+08:00", {}),
                                 ("monthly", "2026-05-01T11:00:00+08:00", {"months": 1})):
        status, body = api.pay("order.paid", order_paid(f"ord-{mode}", "acc-14", f"srv-{mode}", "new",
                                                        paid_at, 5000 if mode == "payg" else 10000,
                                                        billing_mode=mode, plan_id="later", region="cn-north-1", **extra))
        assert (status, body["outcome"]["decision"], body["outcome"]["reason"]) == (
            200, "held_for_review", "no_price_in_force")
        assert api.ops("GET", f"/ops/servers/srv-{mode}")[0] == 404
    account = api.account("acc-14")
    assert (account["balance"], account["servers"]) == (0, [])
    assert [(r["kind"], r.get("cash"), r.get("amount"), r.get("note")) for r in account["ledger"]] == [
        ("held_for_review", 5000, None, "no_price_in_force"), ("held_for_review", 10000, None, "no_price_in_force")]
