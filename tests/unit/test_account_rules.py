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


@pytest.mark.parametrize("in_arrears, state, mode, held, may", [
    (True, "active", "payg", False, True),        # to suspend
    (True, "stopped", "payg", True, False),       # already held for arrears
    (True, "active", "monthly", False, False),    # R-PAY-7 suspends payg servers only
    (True, "destroyed", "payg", False, False),
    (True, "active", None, None, True),           # a row written before the index attributes: read it
    (False, "stopped", "payg", True, True),       # to lift
    (False, "active", "payg", False, False),
    (False, "stopped", "monthly", None, True),
    (False, "destroyed", "payg", True, False),
])
def test_R_PAY_7_may_move_never_skips_a_server_that_arrears_step_would_move(in_arrears, state, mode, held, may):
    assert rules.may_move(in_arrears, state, mode, held) is may


@pytest.mark.parametrize("opened, closed, ended", [(0, 0, False), (1, 0, False), (2, 1, False), (2, 2, True),
                                                   (3, 2, False)])
def test_E_10_the_agreement_ends_when_every_opened_server_is_closed(opened, closed, ended):
    from chalicelib.domain.records import Account

    assert Account(account_id="a", servers_opened=opened, servers_closed=closed).agreement_ended is ended


def test_E_10_an_account_stored_with_its_server_lists_is_read_as_counts():
    """Rows written before the counters: ids are counted once each; a closed id not listed is ignored."""
    from chalicelib.domain.records import Account

    account = Account.model_validate({"account_id": "a", "server_ids": ["s1", "s2", "s3", "s3"],
                                      "closed_server_ids": ["s1", "s9"], "agreement_ended": True})
    assert (account.servers_opened, account.servers_closed, account.agreement_ended) == (3, 1, False)
