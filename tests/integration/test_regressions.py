"""Bugs found by fuzzing and property tests, kept as exact regression tests."""
from __future__ import annotations

import pytest

from tests.support import order_paid


@pytest.mark.both_backends
def test_R_PAY_6_metering_charges_every_payg_server_of_one_account(priced):
    """Ledger row ids once collided for two servers of one account in one metering run."""
    for server, at in (("srv-0", "2026-01-01T01:00:00+08:00"), ("srv-1", "2026-01-01T03:00:00+08:00")):
        priced.pay("order.paid", order_paid(f"o-{server}", "acc-0", server, "new", at, 1000,
                                            billing_mode="payg", plan_id="std", region="cn-north-1"))
    summary = priced.meter("2026-01-01T08:00:00+08:00")
    assert (summary["hours"], summary["errors"]) == (8 + 6, 0)
    assert priced.account("acc-0")["balance"] == 2000 - 14 * 20


def test_R_LIFE_5_gateway_refund_after_a_computed_termination_refund_is_held(priced):
    priced.buy_monthly("srv-r", "2026-01-01T01:00:00+08:00", months=2)
    priced.pay("order.paid", order_paid("ord-ren", "acc-1", "srv-r", "renewal", "2026-01-02T01:00:00+08:00", 10000, months=1))
    _, body = priced.ops("POST", "/ops/servers/srv-r/terminate", {"reason": "security_incident", "at": "2026-01-22T01:00:00+08:00"})
    assert body["refund"] == 10000 + 10000  # 20000 − 1 month used; the renewal has not started
    _, refund = priced.pay("order.refunded", {"order_id": "ord-ren", "account_id": "acc-1", "server_id": "srv-r",
                                              "amount": 10000, "refunded_at": "2026-01-22T03:00:00+08:00"})
    assert (refund["outcome"]["decision"], refund["outcome"]["reason"]) == ("held_for_review", "already_refunded")
    assert priced.account("acc-1")["balance"] == 20000


@pytest.mark.parametrize("paid_at", ["9999-12-31T23:59:59Z", "0001-01-01T00:00:00+08:00", "1999-12-31T23:59:59Z"])
def test_times_outside_the_storable_range_are_400(priced, paid_at):
    status, body = priced.pay("order.paid", order_paid("o9", "a9", "s9", "new", paid_at, 0, billing_mode="payg",
                                                       plan_id="std", region="cn-north-1"))
    assert (status, body["error"]["fields"]) == (400, ["data.paid_at"])
    status, body = priced.ops("POST", "/ops/sweeps/expiry", {"now": paid_at})
    assert (status, body["error"]["fields"]) == (400, ["now"])
    status, _ = priced.ops("GET", "/ops/accounts/a9")
    assert status == 404


def test_a_whitespace_body_on_an_ops_route_is_400(priced):
    response = priced.client.http.post("/ops/sweeps/expiry", body=b"\n ",
                                       headers={"Authorization": "Bearer ops-test-token", "Content-Type": "application/json"})
    assert response.status_code == 400


@pytest.mark.both_backends
def test_a_top_up_without_crossing_zero_reads_and_writes_no_server(priced):
    """R-PAY-7 only moves servers when the balance crosses zero: a top-up stays one small transaction."""
    priced.pay("order.paid", order_paid("o-p", "acc-p", "srv-p", "new", "2026-01-01T00:00:00+08:00", 500,
                                        billing_mode="payg", plan_id="std", region="cn-north-1"))
    version_before = _version("srv-p")
    priced.pay("account.topped_up", {"account_id": "acc-p", "amount": 100, "topped_up_at": "2026-01-01T00:30:00+08:00"})
    assert _version("srv-p") == version_before


def _version(server_id):
    from chalicelib.store import models

    return models.ServerRow.get(server_id, consistent_read=True).version
