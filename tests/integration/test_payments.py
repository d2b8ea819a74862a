"""Payment webhook through the contract: R-PAY-1 … R-PAY-5, R-PAY-7, R-LIFE-5 (unsubscription), R-LIFE-7."""
from __future__ import annotations

import pytest

from tests.support import order_paid


@pytest.fixture
def plans(api):
    api.plan("std", 10000, 20)
    api.plan("pro", 30000, 60)
    return api


def test_R_PAY_1_new_monthly_starts_at_payment_and_clamps_month_end(plans):
    status, body = plans.buy_monthly("srv-1", "2026-01-31T10:00:00+08:00", months=1)
    assert status == 200
    assert body["result"] == "processed"
    assert body["outcome"] == {"decision": "applied", "server": {
        "server_id": "srv-1", "state": "active", "expires_at": "2026-02-28T10:00:00+08:00"}}
    view = plans.server("srv-1")
    assert view["state"] == "active"
    assert view["billing_mode"] == "monthly"
    assert view["expires_at"] == "2026-02-28T10:00:00+08:00"
    assert [(r["kind"], r["cash"], r["rule"]) for r in view["ledger"]] == [("order_paid", 10000, "R-PAY-1")]


def test_R_PAY_2_amount_mismatch_is_held_and_creates_no_server(plans):
    status, body = plans.buy_monthly("srv-2", "2026-01-10T10:00:00+08:00", months=3, amount=29999)
    assert status == 200
    assert body["outcome"]["decision"] == "held_for_review"
    assert body["outcome"]["reason"] == "amount_mismatch"
    status, _ = plans.ops("GET", "/ops/servers/srv-2")
    assert status == 404
    account = plans.account("acc-1")
    assert account["servers"] == []
    assert [(r["kind"], r["cash"], r["note"]) for r in account["ledger"]] == [("held_for_review", 29999, "amount_mismatch")]


def test_R_PAY_2_renewal_takes_price_in_force_at_renewal(plans):
    plans.buy_monthly("srv-3", "2026-01-10T10:00:00+08:00", months=1)
    plans.plan("std", 12000, 25, "2026-02-01T00:00:00+08:00")
    _, old_price = plans.pay("order.paid", order_paid("ord-r1", "acc-1", "srv-3", "renewal", "2026-02-05T10:00:00+08:00", 10000, months=1))
    assert old_price["outcome"]["decision"] == "held_for_review"
    assert old_price["outcome"]["reason"] == "amount_mismatch"
    _, ok = plans.pay("order.paid", order_paid("ord-r2", "acc-1", "srv-3", "renewal", "2026-02-05T10:00:00+08:00", 12000, months=1))
    assert ok["outcome"]["decision"] == "applied"
    assert ok["outcome"]["server"]["expires_at"] == "2026-03-10T10:00:00+08:00"


def test_R_PAY_2_trial_must_be_free(plans):
    _, body = plans.pay("order.paid", order_paid("ord-t", "acc-1", "srv-t", "new", "2026-01-10T10:00:00+08:00", 0,
                                                 billing_mode="trial", plan_id="std", region="cn-north-1", months=1))
    assert body["outcome"]["server"] == {"server_id": "srv-t", "state": "active", "expires_at": "2026-02-10T10:00:00+08:00"}
    _, held = plans.pay("order.paid", order_paid("ord-t2", "acc-1", "srv-t2", "new", "2026-01-10T10:00:00+08:00", 100,
                                                 billing_mode="trial", plan_id="std", region="cn-north-1", months=1))
    assert (held["outcome"]["decision"], held["outcome"]["reason"]) == ("held_for_review", "amount_mismatch")


def test_R_PAY_2_new_payg_amount_is_a_top_up(plans):
    _, body = plans.pay("order.paid", order_paid("ord-p", "acc-9", "srv-p", "new", "2026-01-10T10:00:00+08:00", 5000,
                                                 billing_mode="payg", plan_id="std", region="cn-north-1"))
    assert body["outcome"]["server"] == {"server_id": "srv-p", "state": "active", "expires_at": None}
    account = plans.account("acc-9")
    assert account["balance"] == 5000
    assert account["in_arrears"] is False
    assert sum(r.get("amount", 0) for r in account["ledger"]) == 5000


def test_R_PAY_3_renewal_before_expiry_extends_from_expiry(plans):
    plans.buy_monthly("srv-4", "2026-01-10T10:00:00+08:00", months=1)
    _, body = plans.pay("order.paid", order_paid("ord-4r", "acc-1", "srv-4", "renewal", "2026-02-01T09:00:00+08:00", 20000, months=2))
    assert body["outcome"]["server"]["expires_at"] == "2026-04-10T10:00:00+08:00"
    row = plans.server("srv-4")["ledger"][-1]
    assert (row["kind"], row["expires_at_before"], row["expires_at_after"], row["rule"]) == (
        "renewal", "2026-02-10T10:00:00+08:00", "2026-04-10T10:00:00+08:00", "R-PAY-3")


def test_R_PAY_5_upgrade_changes_plan_and_records_amount_unchecked(plans):
    plans.buy_monthly("srv-5", "2026-01-10T10:00:00+08:00", months=1)
    _, body = plans.pay("order.paid", order_paid("ord-5u", "acc-1", "srv-5", "upgrade", "2026-01-20T10:00:00+08:00", 1234,
                                                 plan_id="pro"), event_id="evt-5u")
    assert body["outcome"] == {"decision": "applied", "server": {
        "server_id": "srv-5", "state": "active", "expires_at": "2026-02-10T10:00:00+08:00"}}
    view = plans.server("srv-5")
    assert view["plan_id"] == "pro"
    # the upgrade's row names the new plan in its note
    assert view["ledger"][-1] == {"at": "2026-01-20T10:00:00+08:00", "kind": "upgrade", "rule": "R-PAY-5",
                                  "account_id": "acc-1", "server_id": "srv-5", "cash": 1234, "note": "pro",
                                  "event_id": "evt-5u"}


def test_R_PAY_7_top_up_creates_account_and_keeps_balance_equal_to_ledger(plans):
    _, body = plans.pay("account.topped_up", {"account_id": "acc-new", "amount": 700, "topped_up_at": "2026-01-01T00:00:00+08:00"})
    assert body["outcome"] == {"decision": "applied", "account": {"account_id": "acc-new", "balance": 700, "in_arrears": False}}
    plans.pay("account.topped_up", {"account_id": "acc-new", "amount": 300, "topped_up_at": "2026-01-02T00:00:00+08:00"})
    account = plans.account("acc-new")
    assert account["balance"] == 1000
    assert [r["balance_after"] for r in account["ledger"]] == [700, 1000]


def test_R_LIFE_5_refund_terminates_as_unsubscribed_and_ends_agreement(plans):
    plans.buy_monthly("srv-6", "2026-01-10T10:00:00+08:00", months=1)
    _, body = plans.pay("order.refunded", {"order_id": "ord-srv-6-new", "account_id": "acc-1", "server_id": "srv-6",
                                           "amount": 8000, "refunded_at": "2026-01-15T10:00:00+08:00"})
    # the answer carries the server as the refund left it
    assert body["outcome"] == {"decision": "applied", "refund": 8000, "server": {
        "server_id": "srv-6", "state": "stopped", "expires_at": "2026-02-10T10:00:00+08:00"}}
    view = plans.server("srv-6")
    assert view["state"] == "stopped"
    assert view["stop_reason"] == "terminated"
    assert view["termination_reason"] == "unsubscribed"
    assert view["retain_until"] == "2026-01-23T00:00:00+08:00"
    assert view["ledger"][-1]["cash"] == -8000
    assert [a["kind"] for a in view["cluster_actions"]] == ["stop"]
    assert plans.account("acc-1")["agreement_ended"] is True


def test_R_LIFE_5_refund_of_a_new_payg_order_takes_its_top_up_back_from_the_balance(plans):
    """R-LIFE-5 with R-PAY-2/R-PAY-7: a new payg order's amount went to the balance; its refund records the
    cash paid back and, as a balance change of its own (R-LIFE-7), the top-up taken back."""
    plans.pay("order.paid", order_paid("ord-p", "acc-9", "srv-p", "new", "2026-01-10T10:00:00+08:00", 5000,
                                       billing_mode="payg", plan_id="std", region="cn-north-1"), event_id="evt-new")
    _, body = plans.pay("order.refunded", {"order_id": "ord-p", "account_id": "acc-9", "server_id": "srv-p",
                                           "amount": 5000, "refunded_at": "2026-01-12T10:00:00+08:00"},
                        event_id="evt-refund")
    assert body["outcome"] == {"decision": "applied", "refund": 5000, "server": {
        "server_id": "srv-p", "state": "stopped", "expires_at": None}}
    account = plans.account("acc-9")
    assert account["balance"] == 0
    refund_rows = [r for r in account["ledger"] if r["event_id"] == "evt-refund"]
    assert refund_rows == [
        {"at": "2026-01-12T10:00:00+08:00", "kind": "refund", "rule": "R-LIFE-5", "account_id": "acc-9",
         "server_id": "srv-p", "cash": -5000, "note": "ord-p", "event_id": "evt-refund"},
        {"at": "2026-01-12T10:00:00+08:00", "kind": "top_up_refunded", "rule": "R-LIFE-5", "account_id": "acc-9",
         "server_id": "srv-p", "amount": -5000, "balance_before": 5000, "balance_after": 0, "event_id": "evt-refund"},
    ]
    assert plans.server("srv-p")["ledger"][-2:] == refund_rows


def test_R_PAY_4_renewal_of_terminated_server_is_held(plans):
    plans.buy_monthly("srv-7", "2026-01-10T10:00:00+08:00", months=1)
    plans.pay("order.refunded", {"order_id": "ord-srv-7-new", "account_id": "acc-1", "server_id": "srv-7",
                                 "amount": 10000, "refunded_at": "2026-01-11T10:00:00+08:00"})
    _, body = plans.pay("order.paid", order_paid("ord-7r", "acc-1", "srv-7", "renewal", "2026-01-12T10:00:00+08:00", 10000, months=1))
    assert (body["outcome"]["decision"], body["outcome"]["reason"]) == ("held_for_review", "server_terminated")


def test_unknown_references_answer_422_and_store_nothing(plans):
    status, body = plans.pay("order.paid", order_paid("ord-x", "acc-x", "nope", "renewal", "2026-01-12T10:00:00+08:00", 10000, months=1))
    assert status == 422 and body["error"]["code"] == "unknown_reference"
    status, _ = plans.ops("GET", "/ops/accounts/acc-x")
    assert status == 404
    status, body = plans.buy_monthly("srv-x", "2026-01-10T10:00:00+08:00", plan="no-such-plan")
    assert status == 422
