"""Every webhook at one read and one transaction (integration §1 "A webhook reads what it names in one
TransactGetItems and writes once"), with the rules exact where copies stand in for reads: R-PAY-2/3
(renewal priced from the server's copy of its plan), R-LIFE-5 (agreement ended from the account's count of
closed servers), R-FREE-2 (3) and (9) (approvals kept on the server, the account's violation checked at
commit), R-FREE-3 (the acceptance decides from the rows the request read, checked at commit)."""
from __future__ import annotations

from tests.integration.test_free_period import apply, buy, filing
from tests.support import order_paid


def _measured(counted, call):
    counted.clear()
    status, body = call()
    assert status == 200, body
    return dict(counted), body


def test_every_webhook_type_is_one_read_and_one_transaction(shop, dynamodb_requests):
    """The issue's four (renewal, order.refunded, compensation.requested/accepted) and the rest: 2 requests;
    a duplicate: 1 read, no write."""
    one_trip = {"TransactGetItems": 1, "TransactWriteItems": 1}
    count = lambda call: _measured(dynamodb_requests, call)[0]  # noqa: E731
    assert count(lambda: shop.buy_monthly("srv-1", "2026-01-10T10:00:00+08:00", account="acc-1")) == one_trip
    assert count(lambda: shop.buy_monthly("srv-2", "2026-01-10T10:00:00+08:00", account="acc-1")) == one_trip
    assert count(lambda: shop.pay("order.paid", order_paid(
        "ord-ren", "acc-1", "srv-1", "renewal", "2026-01-20T10:00:00+08:00", 10000, months=1))) == one_trip
    assert count(lambda: shop.pay("order.paid", order_paid(
        "ord-upg", "acc-1", "srv-1", "upgrade", "2026-01-21T10:00:00+08:00", 1234, plan_id="pro"))) == one_trip
    top_up = {"account_id": "acc-1", "amount": 500, "topped_up_at": "2026-01-10T11:00:00+08:00"}
    assert count(lambda: shop.pay("account.topped_up", top_up, event_id="evt-top")) == one_trip
    assert count(lambda: shop.pay("account.topped_up", top_up, event_id="evt-top")) == {"TransactGetItems": 1}
    assert count(lambda: shop.ticket("filing.submitted", {
        "filing_id": "fil-1", "server_id": "srv-2", "website": "a.example.cn", "is_change": False,
        "submitted_at": "2026-01-11T10:00:00+08:00"})) == one_trip
    assert count(lambda: shop.ticket("filing.approved", {
        "filing_id": "fil-1", "approved_at": "2026-01-16T10:00:00+08:00"})) == one_trip
    assert count(lambda: shop.ticket("compensation.requested", {
        "ticket_id": "tkt-1", "filing_id": "fil-1", "server_id": "srv-2",
        "requested_at": "2026-01-17T10:00:00+08:00"})) == one_trip
    requests, body = _measured(dynamodb_requests, lambda: shop.ticket("compensation.accepted", {
        "ticket_id": "tkt-1", "engineer_id": "eng-1", "accepted_at": "2026-01-17T12:00:00+08:00"}))
    assert requests == one_trip and (body["outcome"]["decision"], body["outcome"]["days"]) == ("granted", 5)
    requests, body = _measured(dynamodb_requests, lambda: shop.pay("order.refunded", {
        "order_id": "ord-srv-1-new", "account_id": "acc-1", "server_id": "srv-1", "amount": 5000,
        "refunded_at": "2026-01-25T10:00:00+08:00"}))
    assert requests == one_trip and body["outcome"]["server"]["state"] == "stopped"
    assert shop.account("acc-1")["agreement_ended"] is False  # srv-2 is still open


def test_R_PAY_2_renewal_takes_the_price_in_force_even_when_the_servers_copy_is_stale(shop):
    """R-PAY-2/R-PAY-3: a price version added after the server copied its plan's prices is still the
    renewal's price (the copy's version check cancels the first try; the second reads the plan)."""
    shop.buy_monthly("srv-1", "2026-01-10T10:00:00+08:00")
    shop.plan("std", 12000, 24, "2026-02-01T00:00:00+08:00")
    _, body = shop.pay("order.paid", order_paid("ord-r1", "acc-1", "srv-1", "renewal",
                                                "2026-02-05T10:00:00+08:00", 10000, months=1))
    assert (body["outcome"]["decision"], body["outcome"]["reason"]) == ("held_for_review", "amount_mismatch")
    _, body = shop.pay("order.paid", order_paid("ord-r2", "acc-1", "srv-1", "renewal",
                                                "2026-02-05T10:00:00+08:00", 24000, months=2))
    assert body["outcome"] == {"decision": "applied", "server": {
        "server_id": "srv-1", "state": "active", "expires_at": "2026-04-10T10:00:00+08:00"}}


def test_R_LIFE_5_agreement_ends_when_the_last_open_server_closes_destroyed_ones_counted(shop):
    """R-LIFE-5: srv-a expires and is destroyed by the sweep; refunding srv-b (the last open one) ends
    the account's agreement, without reading srv-a."""
    shop.buy_monthly("srv-a", "2026-01-01T10:00:00+08:00", account="acc-e")
    shop.buy_monthly("srv-b", "2026-01-20T10:00:00+08:00", account="acc-e")
    shop.sweep("2026-02-02T00:10:00+08:00")
    assert shop.sweep("2026-02-09T00:10:00+08:00")["destroy"] == 1
    assert shop.account("acc-e")["agreement_ended"] is False
    status, body = shop.pay("order.refunded", {"order_id": "ord-srv-b-new", "account_id": "acc-e",
                                               "server_id": "srv-b", "amount": 10000,
                                               "refunded_at": "2026-02-10T10:00:00+08:00"})
    assert status == 200, body
    assert shop.account("acc-e")["agreement_ended"] is True


def test_R_FREE_2_3_an_earlier_approval_arriving_after_the_request_denies_at_acceptance(shop):
    """R-FREE-2 (3): f0 (approved 2026-01-04, delivered after the request for f1) makes f1 not the first
    website: the acceptance, deciding from the rows the request read, is cancelled by the server's
    changed version and decides again from the current rows."""
    buy(shop, "srv-1")
    filing(shop, "f1", "srv-1", [("submitted", "2026-01-02T09:00:00+08:00"), ("approved", "2026-01-10T09:00:00+08:00")])
    filing(shop, "f0", "srv-1", [("submitted", "2026-01-02T09:00:00+08:00")])
    status, requested = shop.ticket("compensation.requested", {"ticket_id": "t1", "filing_id": "f1", "server_id": "srv-1",
                                                               "requested_at": "2026-01-11T10:00:00+08:00"})
    assert requested["outcome"]["decision"] == "eligible"
    filing(shop, "f0", "srv-1", [("approved", "2026-01-04T09:00:00+08:00")])
    status, accepted = shop.ticket("compensation.accepted", {"ticket_id": "t1", "engineer_id": "eng-1",
                                                             "accepted_at": "2026-01-12T10:00:00+08:00"})
    assert (status, accepted["outcome"]["decision"], accepted["outcome"]["reason"]) == (200, "denied", "not_first_website")


def test_R_FREE_2_9_a_violation_flagged_after_the_request_denies_at_acceptance(shop):
    """R-FREE-2 (9): the account is not read on a first try; its violation flag is checked in the
    transaction, so a flag set between request and acceptance still denies."""
    buy(shop, "srv-1")
    filing(shop, "f1", "srv-1", [("submitted", "2026-01-02T09:00:00+08:00"), ("approved", "2026-01-10T09:00:00+08:00")])
    status, requested = shop.ticket("compensation.requested", {"ticket_id": "t1", "filing_id": "f1", "server_id": "srv-1",
                                                               "requested_at": "2026-01-11T10:00:00+08:00"})
    assert requested["outcome"] == {"ticket_id": "t1", "status": "requested", "decision": "eligible", "days": 8}
    status, _ = shop.ops("POST", "/ops/accounts/acc-1/violation", {"flag": True, "note": "illegal content"})
    assert status == 200
    status, accepted = shop.ticket("compensation.accepted", {"ticket_id": "t1", "engineer_id": "eng-1",
                                                             "accepted_at": "2026-01-12T10:00:00+08:00"})
    assert (accepted["outcome"]["decision"], accepted["outcome"]["reason"]) == ("denied", "violation")
    assert shop.server("srv-1")["expires_at"] == "2026-07-01T10:00:00+08:00"


def test_R_FREE_3_acceptance_after_a_renewal_extends_the_renewed_expiry(shop):
    """R-FREE-3/R-FREE-4: a renewal between request and acceptance changes the server; the grant is
    appended to the renewed expires_at, not to the one the request saw."""
    buy(shop, "srv-1", months=1)  # expires 2026-02-01T10:00
    filing(shop, "f1", "srv-1", [("submitted", "2026-01-02T09:00:00+08:00"), ("approved", "2026-01-10T09:00:00+08:00")])
    status, body = shop.ticket("compensation.requested", {"ticket_id": "t1", "filing_id": "f1", "server_id": "srv-1",
                                                          "requested_at": "2026-01-11T10:00:00+08:00"})
    assert body["outcome"]["days"] == 8
    shop.pay("order.paid", order_paid("ord-r", "acc-1", "srv-1", "renewal", "2026-01-11T12:00:00+08:00", 10000, months=1))
    status, accepted = shop.ticket("compensation.accepted", {"ticket_id": "t1", "engineer_id": "eng-1",
                                                             "accepted_at": "2026-01-12T10:00:00+08:00"})
    assert (accepted["outcome"]["decision"], accepted["outcome"]["expires_at"]) == ("granted", "2026-03-09T10:00:00+08:00")
