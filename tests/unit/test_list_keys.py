"""The keys that put a row on an operators' list (store/lists.py): which rows carry them, and that the
keys sort like the values they stand for."""
from __future__ import annotations

import pytest

from chalicelib.domain.records import Account, FreePeriod, Server
from chalicelib.lifecycle import rules
from chalicelib.store import lists
from chalicelib.timeutil import parse_rfc3339 as t


def server(**fields) -> Server:
    base = dict(server_id="srv-1", account_id="acc-1", billing_mode="monthly", plan_id="std", region="cn-north-1",
                service_start=t("2026-01-01T10:00:00+08:00"), expires_at=t("2026-03-10T10:00:00+08:00"))
    base.update(fields)
    return rules.refresh(Server(**base))


def present(keys: dict) -> set[str]:
    return {k for k, v in keys.items() if v is not None}


def test_an_active_monthly_server_is_on_the_expiring_list_only():
    keys = lists.server_keys(server())
    assert present(keys) == {"expiry_shard", "expires_key"}
    assert keys["expires_key"] == "2026-03-10T02:00:00.000000Z#srv-1"
    assert keys["expiry_shard"] in lists.shards()


def test_R_LIFE_3_a_stopped_server_with_retain_until_awaits_destruction():
    """Expired 2026-03-10 (local) → kept until 2026-03-18T00:00+08:00, i.e. 2026-03-17T16:00Z."""
    keys = lists.server_keys(server(stop_reasons={"expired": t("2026-03-10T10:00:00+08:00")}))
    assert present(keys) == {"retain_shard", "retain_key"}
    assert keys["retain_key"] == "2026-03-17T16:00:00.000000Z#srv-1"


@pytest.mark.parametrize("fields", [
    {"stop_reasons": {"violation": t("2026-03-01T00:00:00+08:00")}},   # operator hold: no retain_until
    {"destroyed_at": t("2026-03-18T00:10:00+08:00"), "stop_reasons": {"expired": t("2026-03-10T10:00:00+08:00")}},
    {"billing_mode": "payg", "expires_at": None},                       # no expiry
])
def test_servers_on_no_list(fields):
    assert present(lists.server_keys(server(**fields))) == set()


def test_R_FREE_4_a_grant_is_listed_in_the_local_month_of_its_acceptance():
    """Accepted 2026-02-01 07:00 Asia/Shanghai (still January in UTC): a February grant."""
    fp = FreePeriod(decision="granted", days=10, granted_at=t("2026-02-01T07:00:00+08:00"))
    keys = lists.server_keys(server(free_period=fp))
    assert keys["grant_shard"].startswith("2026-02#")
    assert keys["grant_key"] == "2026-01-31T23:00:00.000000Z#srv-1"
    denied = FreePeriod(decision="denied", reason="not_first_website")
    assert lists.server_keys(server(free_period=denied))["grant_shard"] is None


def test_R_PAY_7_only_a_negative_balance_is_in_arrears():
    assert present(lists.account_keys(Account(account_id="a", balance=0))) == set()
    keys = lists.account_keys(Account(account_id="a", balance=-1))
    assert present(keys) == {"arrears_shard", "arrears_key"}
    assert lists.balance_of(keys["arrears_key"]) == -1


def test_arrears_keys_sort_deepest_debt_first():
    balances = [-1, -100, -99, -1_000_000_000_00, -12345, -10]
    keys = [lists.account_keys(Account(account_id=f"acc-{i}", balance=b))["arrears_key"] for i, b in enumerate(balances)]
    assert [lists.balance_of(k) for k in sorted(keys)] == sorted(balances)


def test_a_key_after_another_sorts_between_it_and_any_longer_id():
    """`<key> ` (the page's lower bound) is above `<key>` and below every other key sharing its prefix."""
    key = "2026-03-10T02:00:00.000000Z#srv-1"
    assert key < key + lists.AFTER < "2026-03-10T02:00:00.000000Z#srv-1-b" < "2026-03-10T02:00:00.000000Z#srv-10"
    assert "2026-03-10T02:00:00.000000Z#zz" < lists.upper_bound("2026-03-10T02:00:00.000000Z")
