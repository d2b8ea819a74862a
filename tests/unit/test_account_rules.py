"""Pure rules of an account's money (R-PAY-7): the crossing of zero and what it asks of each server."""
from __future__ import annotations

import pytest

from chalicelib.accounts import rules
from chalicelib.domain.records import Server
from chalicelib.timeutil import parse_rfc3339 as t

AT = t("2026-01-01T00:00:00+08:00")


def server(mode="payg", reasons=(), destroyed=False):
    sv = Server(server_id="s", account_id="a", billing_mode=mode, plan_id="p", region="r", service_start=AT,
                stop_reasons={r: AT for r in reasons}, destroyed_at=AT if destroyed else None)
    sv.state = "destroyed" if destroyed else ("stopped" if reasons else "active")
    return sv


@pytest.mark.parametrize("before, after, crossed", [
    (100, 50, False), (100, 0, False), (0, -1, True), (10, -10, True), (-10, -20, False),
    (-10, 0, True), (-10, 5, True), (-1, -1, False), (0, 0, False)])
def test_R_PAY_7_only_a_change_of_side_of_zero_is_a_crossing(before, after, crossed):
    assert rules.crossed_zero(before, after) is crossed


@pytest.mark.parametrize("in_arrears, sv, step", [
    (True, server(), "suspend"),
    (True, server(reasons=("violation",)), "suspend"),          # R-LIFE-2b: arrears beside the hold
    (True, server(reasons=("arrears",)), None),                 # already matches: not rewritten
    (True, server(mode="monthly"), None),                       # only payg servers
    (True, server(reasons=("terminated",)), "suspend"),
    (True, server(destroyed=True), None),
    (False, server(reasons=("arrears",)), "lift"),
    (False, server(reasons=("arrears", "violation")), "lift"),  # the violation stays (R-LIFE-2b)
    (False, server(mode="monthly", reasons=("expired",)), None),
    (False, server(), None),
])
def test_R_PAY_7_arrears_step_per_server(in_arrears, sv, step):
    assert rules.arrears_step(in_arrears, sv) == step


def test_chunks_keep_order_and_size():
    assert rules.chunked(list(range(7)), 3) == [[0, 1, 2], [3, 4, 5], [6]]
    assert rules.chunked([], 3) == []
