"""Guards written after a mutation audit: each test fails under one deliberate breakage of a rule that
the rest of the suite let through (an always-true agreement end, a top-up that lifts operator holds,
workloads started before their node groups, a server-level violation ignored by the free period)."""
from __future__ import annotations

import pytest

from tests.integration.test_cluster_actions import cluster, drain, fake_kube, scaling  # noqa: F401 - fixtures
from tests.integration.test_free_period import _approved_filing, _denied, buy
from tests.support import order_paid


def test_R_LIFE_5_agreement_ends_only_when_every_server_of_the_account_is_closed(priced):
    """T7.3.2 via R-LIFE-5: an account with two servers keeps its agreement while one is still open."""
    priced.buy_monthly("srv-a1", "2026-01-01T10:00:00+08:00", account="acc-two", order_id="ord-a1")
    priced.buy_monthly("srv-a2", "2026-01-01T10:00:00+08:00", account="acc-two", order_id="ord-a2")
    status, body = priced.pay("order.refunded", {"order_id": "ord-a1", "account_id": "acc-two", "server_id": "srv-a1",
                                                 "amount": 10000, "refunded_at": "2026-01-02T10:00:00+08:00"})
    assert (status, body["outcome"]["decision"]) == (200, "applied")
    assert priced.server("srv-a1")["termination_reason"] == "unsubscribed"
    assert priced.account("acc-two")["agreement_ended"] is False
    status, _ = priced.ops("POST", "/ops/servers/srv-a2/terminate",
                           {"reason": "user_closed", "at": "2026-01-03T10:00:00+08:00"})
    assert status == 200
    assert priced.account("acc-two")["agreement_ended"] is True


@pytest.mark.parametrize("hold", ["violation", "security_incident"])
def test_R_PAY_7_top_up_lifts_arrears_only_never_an_operator_hold(priced, hold):
    """R-PAY-7 with R-LIFE-2/2b: paying lifts `arrears`; a violation or security hold stays."""
    priced.pay("order.paid", order_paid("ord-h", "acc-h", "srv-h", "new", "2026-01-01T00:00:00+08:00", 0,
                                        billing_mode="payg", plan_id="std", region="cn-north-1"))
    assert priced.meter("2026-01-01T01:30:00+08:00")["hours"] == 2  # 2 × 20 fen → balance −40
    assert priced.account("acc-h")["in_arrears"] is True
    status, _ = priced.ops("POST", "/ops/servers/srv-h/suspend", {"reason": hold, "at": "2026-01-01T02:00:00+08:00"})
    assert status == 200
    _, body = priced.pay("account.topped_up", {"account_id": "acc-h", "amount": 40,
                                               "topped_up_at": "2026-01-01T03:00:00+08:00"})
    assert body["outcome"]["account"] == {"account_id": "acc-h", "balance": 0, "in_arrears": False}
    view = priced.server("srv-h")
    assert (view["state"], view["stop_reason"], view["stop_reasons"]) == ("stopped", hold, [hold])
    assert [a["kind"] for a in view["cluster_actions"]] == ["stop"]  # no start while the hold stands


def test_R_CLU_2_start_restores_node_groups_before_any_workload(api, cluster, fake_kube):  # noqa: F811
    """R-CLU-2: node-group min/desired/max first, then workloads (pods need nodes to run on)."""
    from chalicelib import aws

    api.sweep("2026-02-02T00:10:00+08:00")
    assert drain(api)["succeeded"] == 1
    fake_kube.clear_requests()
    workload_patches_seen_at_node_group_calls = []

    def record(**_kwargs):
        workload_patches_seen_at_node_group_calls.append(len(fake_kube.patches()))

    eks = aws.client("eks")
    eks.meta.events.register("before-call.eks.UpdateNodegroupConfig", record)
    try:
        api.pay("order.paid", order_paid("ord-r", "acc-1", "srv-k", "renewal", "2026-02-03T10:00:00+08:00", 10000, months=1))
        assert drain(api)["succeeded"] == 1
    finally:
        eks.meta.events.unregister("before-call.eks.UpdateNodegroupConfig", record)
    # every node-group update (scaling and its saved-values label, for both groups) came before any workload patch
    assert len(workload_patches_seen_at_node_group_calls) >= 2
    assert set(workload_patches_seen_at_node_group_calls) == {0}
    assert len(fake_kube.patches()) > 0
    assert scaling(cluster, "ng-a") == {"minSize": 1, "desiredSize": 2, "maxSize": 3}
    assert fake_kube.replicas("deployments", "shop", "web") == 3


def test_R_FREE_2_9_server_suspended_for_a_violation_is_denied(shop):
    """R-FREE-2 (9): the server's own violation mark denies, even with a clean account."""
    buy(shop, "srv-1")
    _approved_filing(shop)
    status, _ = shop.ops("POST", "/ops/servers/srv-1/suspend",
                         {"reason": "violation", "note": "illegal content", "at": "2026-01-16T09:00:00+08:00"})
    assert status == 200
    assert shop.account("acc-1")["violation"] is False
    assert _denied(shop) == "violation"
    view = shop.server("srv-1")
    assert view["free_period"]["decision"] == "denied"
    assert view["expires_at"] == "2026-07-01T10:00:00+08:00"  # nothing appended
