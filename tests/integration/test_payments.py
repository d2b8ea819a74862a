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
    assert [(r["kind"], r["cash"], r["note"], r["rule"]) for r in account["ledger"]] == [
        ("held_for_review", 29999, "amount_mismatch", "R-PAY-2")]


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


REFUND_AT = "2026-01-15T10:00:00+08:00"


def refund(api, order_id, amount, server_id="srv-r", account_id="acc-1", event_id=None, at=REFUND_AT):
    return api.pay("order.refunded", {"order_id": order_id, "account_id": account_id, "server_id": server_id,
                                      "amount": amount, "refunded_at": at}, event_id=event_id)


def test_R_LIFE_5_refund_stops_the_server_with_a_notification_caused_by_the_refund_event(plans):
    """R-LIFE-5 with R-NOTE-1: the termination's `stopped` notification names the refund event as its cause."""
    plans.buy_monthly("srv-r", "2026-01-10T10:00:00+08:00")
    status, body = refund(plans, "ord-srv-r-new", 8000, event_id="evt-unsub")
    assert (status, body["outcome"]["decision"]) == (200, "applied")
    notes = [(n["kind"], n["cause"]) for n in plans.server("srv-r")["notifications"]]
    assert notes == [("stopped", "stopped#terminated#2026-01-15T02:00:00.000000Z#event:payments:evt-unsub")]


def test_R_LIFE_5_refund_above_the_order_amount_is_held_as_refund_exceeds_order(plans):
    """R-LIFE-5 / R-PAY-2, integration §1 held reasons: a refund larger than its order is held for review and
    the server keeps running."""
    plans.buy_monthly("srv-r", "2026-01-10T10:00:00+08:00")
    status, body = refund(plans, "ord-srv-r-new", 10001, event_id="evt-over")
    assert status == 200
    assert body["outcome"] == {"decision": "held_for_review", "reason": "refund_exceeds_order", "server": {
        "server_id": "srv-r", "state": "active", "expires_at": "2026-02-10T10:00:00+08:00"}}
    view = plans.server("srv-r")
    assert (view["state"], view["termination_reason"]) == ("active", None)
    assert view["ledger"][-1] == {"at": REFUND_AT, "kind": "held_for_review", "rule": "R-PAY-2",
                                  "account_id": "acc-1", "server_id": "srv-r", "cash": 10001,
                                  "note": "refund_exceeds_order", "event_id": "evt-over"}


def test_R_LIFE_5_refund_naming_another_server_is_held_as_order_mismatch(plans):
    """R-LIFE-5, integration §1 held reasons: a refund whose server is not its order's is held on the account
    with the gateway's amount; nothing is refunded or terminated."""
    plans.buy_monthly("srv-r", "2026-01-10T10:00:00+08:00")
    status, body = refund(plans, "ord-srv-r-new", 8000, server_id="srv-other", event_id="evt-mis")
    assert status == 200
    assert body["outcome"] == {"decision": "held_for_review", "reason": "order_mismatch", "server": {
        "server_id": "srv-other", "state": None, "expires_at": None}}
    assert plans.account("acc-1")["ledger"][-1] == {
        "at": REFUND_AT, "kind": "held_for_review", "rule": "R-PAY-2", "account_id": "acc-1", "cash": 8000,
        "note": "order_mismatch", "event_id": "evt-mis"}
    assert plans.server("srv-r")["state"] == "active"


def test_R_LIFE_5_refund_of_a_held_renewal_returns_the_money_and_leaves_the_server_running(plans):
    """R-PAY-2/R-PAY-4 with R-LIFE-5: a held order was never applied; its refund is recorded as paid back,
    and the server it named is neither terminated nor stopped."""
    plans.buy_monthly("srv-r", "2026-01-10T10:00:00+08:00")
    _, held = plans.pay("order.paid", order_paid("ord-r-held", "acc-1", "srv-r", "renewal",
                                                 "2026-01-12T10:00:00+08:00", 9999, months=1))
    assert held["outcome"]["reason"] == "amount_mismatch"
    status, body = refund(plans, "ord-r-held", 9999, event_id="evt-back")
    assert status == 200
    assert body["outcome"] == {"decision": "applied", "refund": 9999, "server": {
        "server_id": "srv-r", "state": "active", "expires_at": "2026-02-10T10:00:00+08:00"}}
    view = plans.server("srv-r")
    assert (view["state"], view["stop_reason"], view["termination_reason"]) == ("active", None, None)
    assert view["ledger"][-1] == {"at": REFUND_AT, "kind": "refund", "rule": "R-LIFE-5", "account_id": "acc-1",
                                  "server_id": "srv-r", "cash": -9999, "note": "ord-r-held", "event_id": "evt-back"}
    assert plans.account("acc-1")["agreement_ended"] is False


def test_R_LIFE_5_second_refund_of_a_payg_order_is_held_as_already_refunded(plans):
    """R-LIFE-5: an order the gateway refunded once is not refunded again: held, the balance untouched."""
    plans.pay("order.paid", order_paid("ord-p", "acc-9", "srv-p", "new", "2026-01-10T10:00:00+08:00", 5000,
                                       billing_mode="payg", plan_id="std", region="cn-north-1"))
    refund(plans, "ord-p", 5000, server_id="srv-p", account_id="acc-9", event_id="evt-1st")
    status, body = refund(plans, "ord-p", 5000, server_id="srv-p", account_id="acc-9", event_id="evt-2nd")
    assert status == 200
    assert body["outcome"] == {"decision": "held_for_review", "reason": "already_refunded", "server": {
        "server_id": "srv-p", "state": "stopped", "expires_at": None}}
    account = plans.account("acc-9")
    assert account["balance"] == 0
    assert [(r["kind"], r.get("cash"), r.get("note")) for r in account["ledger"] if r["event_id"] == "evt-2nd"] == [
        ("held_for_review", 5000, "already_refunded")]


def test_R_LIFE_5_gateway_refund_after_a_computed_termination_refund_is_held_as_already_refunded(plans):
    """R-LIFE-5: a provider-announcement termination already paid the period back; the gateway's refund of
    that order is held, not paid twice."""
    plans.buy_monthly("srv-r", "2026-01-10T10:00:00+08:00")
    status, answer = plans.ops("POST", "/ops/servers/srv-r/terminate",
                               {"reason": "provider_announcement", "at": "2026-01-14T10:00:00+08:00"})
    assert status == 200 and answer["refund"] > 0
    status, body = refund(plans, "ord-srv-r-new", 5000, event_id="evt-late")
    assert status == 200
    assert (body["outcome"]["decision"], body["outcome"]["reason"]) == ("held_for_review", "already_refunded")
    account = plans.account("acc-1")
    assert account["balance"] == answer["refund"]
    assert [(r["kind"], r["cash"]) for r in account["ledger"] if r.get("event_id") == "evt-late"] == [
        ("held_for_review", 5000)]


def test_R_LIFE_5_gateway_refund_of_the_first_order_after_the_renewal_was_refunded_is_applied(plans):
    """R-LIFE-5: each order is refunded once; the renewal's refund does not make the new order's refund a
    repeat: it is applied (recorded as paid back) on the server the first refund terminated."""
    plans.buy_monthly("srv-r", "2026-01-10T10:00:00+08:00")
    plans.pay("order.paid", order_paid("ord-r-ren", "acc-1", "srv-r", "renewal", "2026-01-12T10:00:00+08:00",
                                       10000, months=1))
    assert refund(plans, "ord-r-ren", 10000, event_id="evt-ren",
                  at="2026-01-13T10:00:00+08:00")[1]["outcome"]["decision"] == "applied"
    status, body = refund(plans, "ord-srv-r-new", 6000, event_id="evt-new")
    assert status == 200
    assert body["outcome"] == {"decision": "applied", "refund": 6000, "server": {
        "server_id": "srv-r", "state": "stopped", "expires_at": "2026-03-10T10:00:00+08:00"}}
    view = plans.server("srv-r")
    assert (view["stop_reason"], view["termination_reason"]) == ("terminated", "unsubscribed")
    assert [(r["kind"], r["cash"], r["note"]) for r in view["ledger"] if r["kind"] == "refund"] == [
        ("refund", -10000, "ord-r-ren"), ("refund", -6000, "ord-srv-r-new")]
