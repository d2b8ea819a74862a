"""The operators' lists as sparse, sharded indexes: the keys a row carries while it belongs to a list,
and one page of a list read as one Query per shard, merged in key order (never a scan)."""
from __future__ import annotations

import hashlib
from typing import Any

from ..domain.records import Account, Server
from ..timeutil import store_key, to_local

# Four shards spread a list's writes over several index partitions while a page still costs only four
# Query requests; the lists have their own sharding, independent of the sweep's `by_due` shards.
LIST_SHARDS = 4
# A balance is stored in a range key as text that sorts like the number: offset to non-negative, padded.
BALANCE_OFFSET = 10 ** 18
BALANCE_DIGITS = 19
# Keys are "<sortable text>#<id>"; ids use only A–Z a–z 0–9 . _ : - (integration §6), all above " " and
# below "~", so "<key> " is the first possible key after <key> and "<prefix>#~" the last under <prefix>.
AFTER, LAST = " ", "~"


def list_shard(key: str) -> str:
    return str(int(hashlib.sha256(key.encode()).hexdigest(), 16) % LIST_SHARDS)


def grant_month(server: Server) -> str | None:
    """The local (Asia/Shanghai) month of a granted free period, e.g. "2026-12"."""
    fp = server.free_period
    if fp is None or fp.decision != "granted" or fp.granted_at is None:
        return None
    return to_local(fp.granted_at).strftime("%Y-%m")


def server_keys(server: Server) -> dict[str, Any]:
    """Index attributes of a server row: expiring while active with an expiry (monthly, trial), awaiting
    destruction while stopped with a `retain_until`, and in its month's grants once granted."""
    shard, sid = list_shard(server.server_id), server.server_id
    keys: dict[str, Any] = {"expiry_shard": None, "expires_key": None, "retain_shard": None,
                            "retain_key": None, "grant_shard": None, "grant_key": None}
    if server.state == "active" and server.expires_at is not None:
        keys.update(expiry_shard=shard, expires_key=f"{store_key(server.expires_at)}#{sid}")
    if server.state == "stopped" and server.retain_until is not None:
        keys.update(retain_shard=shard, retain_key=f"{store_key(server.retain_until)}#{sid}")
    month = grant_month(server)
    if month is not None:
        keys.update(grant_shard=f"{month}#{shard}", grant_key=f"{store_key(server.free_period.granted_at)}#{sid}")
    return keys


def account_keys(account: Account) -> dict[str, Any]:
    """An account row is in the arrears index while its balance is below zero (R-PAY-7), deepest first."""
    if not account.in_arrears:
        return {"arrears_shard": None, "arrears_key": None}
    sortable = f"{max(account.balance + BALANCE_OFFSET, 0):0{BALANCE_DIGITS}d}"
    return {"arrears_shard": list_shard(account.account_id), "arrears_key": f"{sortable}#{account.account_id}"}


def balance_of(arrears_key: str) -> int:
    return int(arrears_key.split("#", 1)[0]) - BALANCE_OFFSET


def upper_bound(prefix: str | None) -> str:
    """The last possible key whose sortable part is at most `prefix` (no bound when None)."""
    return LAST if prefix is None else f"{prefix}#{LAST}"


def page(index, range_attr, hash_keys: list[str], after: str | None, upto: str, limit: int) -> tuple[list, str | None]:
    """Rows of the keys in (after, upto], lowest first, at most `limit`, and the key to continue after
    (None at the end). Each shard is asked for limit + 1 rows in one Query: if all of them together hold
    no more than `limit`, every shard is exhausted and there is no next page."""
    from .session import ensure_configured

    ensure_configured()
    lower = (after + AFTER) if after else AFTER
    if lower.encode() > upto.encode():
        return [], None  # an empty range (DynamoDB refuses a BETWEEN whose bounds are reversed)
    rows = []
    for hash_key in hash_keys:
        rows.extend(index.query(hash_key, range_attr.between(lower, upto), limit=limit + 1, page_size=limit + 1))
    rows.sort(key=lambda row: getattr(row, range_attr.attr_name))
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, getattr(rows[-1], range_attr.attr_name)


def shards(prefix: str = "") -> list[str]:
    return [f"{prefix}{n}" for n in range(LIST_SHARDS)]
