"""The operators' lists (`GET /ops/lists/{name}`, `GET /ops/dead-letters`): query parameters in, one page
of a sparse index out, with an opaque cursor to the next page."""
from __future__ import annotations

import re
from datetime import datetime, timedelta

from ..errors import InvalidPayload, NotFound
from ..store import cursors
from ..store import lists as index
from ..store import models as m
from ..timeutil import fmt, from_store_key, local_date, local_midnight, store_key, to_local
from . import clock

DEFAULT_LIMIT, MAX_LIMIT = 50, 100
DEFAULT_EXPIRY_DAYS, MAX_DAYS = 7, 3660
MONTH = re.compile(r"^[0-9]{4}-(0[1-9]|1[0-2])$")


def _int(params: dict, name: str, default: int | None, low: int, high: int) -> int | None:
    text = params.get(name)
    if text is None:
        return default
    if not re.fullmatch(r"[0-9]{1,6}", text) or not low <= int(text) <= high:
        raise InvalidPayload(f"{name} must be a whole number from {low} to {high}", [name])
    return int(text)


def encode_cursor(scope: str, after: str, upto: str) -> str:
    return cursors.seal(f"list|{scope}", [after, upto])


def decode_cursor(scope: str, cursor: str | None) -> tuple[str | None, str | None]:
    """(after, upto) of a cursor this list gave out; (None, None) for the first page. A cursor keeps the
    bound of its first page, so a list read page by page does not shift while the clock moves. Sealed
    (store/cursors.py): a cursor of another list, or one not issued here, is 400 naming `cursor`."""
    if cursor is None:
        return None, None
    after, upto = cursors.unseal(cursor, f"list|{scope}", 2, "cursor",
                                 f"cursor is not one that the {scope.split('|')[0]} list gave out")
    return after, upto


def _paged(scope: str, params: dict, idx, range_attr, hash_keys: list[str], upto: str, item) -> dict:
    """One page; `scope` names the list (and for grants its month, whose shards the cursor walks)."""
    limit = _int(params, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    after, cursor_upto = decode_cursor(scope, params.get("cursor"))
    upto = cursor_upto or upto
    rows, last = index.page(idx, range_attr, hash_keys, after, upto, limit)
    return {"items": [item(r) for r in rows], "next": encode_cursor(scope, last, upto) if last else None}


def _time_of(key: str) -> str:
    return fmt(from_store_key(key.split("#", 1)[0]))


def end_of_day(now: datetime, days: int) -> datetime:
    """Operators count in local days: "within 7 days" ends at 00:00 Asia/Shanghai after the 7th day from today."""
    return local_midnight(local_date(now) + timedelta(days=days + 1))


def _before(until: datetime) -> str:
    """Upper key bound for times strictly before `until` (keys are microsecond-exact)."""
    return index.upper_bound(store_key(until - timedelta(microseconds=1)))


def expiring(params: dict, now: datetime) -> dict:
    """Active servers expiring before the end of the `days`-th local day from today (default 7), soonest
    first; an expiry already past (the sweep has not stopped the server yet) comes first."""
    days = _int(params, "days", DEFAULT_EXPIRY_DAYS, 0, MAX_DAYS)
    until = end_of_day(now, days)
    upto = decode_cursor("expiring", params.get("cursor"))[1] or _before(until)
    answer = _paged("expiring", params, m.ServerRow.by_expiry, m.ServerRow.expires_key, index.shards(), upto,
                    lambda r: {"server_id": r.server_id, "account_id": r.account_id, "plan_id": r.plan_id,
                               "expires_at": _time_of(r.expires_key)})
    # the bound a cursor carries is the last microsecond before `until`
    return {**answer, "until": fmt(from_store_key(upto.split("#", 1)[0]) + timedelta(microseconds=1))}


def awaiting_destruction(params: dict, now: datetime) -> dict:
    """Stopped servers with a `retain_until` (R-LIFE-3), soonest destruction first; with `days`, only
    those whose retention ends before the end of the `days`-th local day from today."""
    days = _int(params, "days", None, 0, MAX_DAYS)
    upto = index.upper_bound(None) if days is None else _before(end_of_day(now, days))
    return _paged("awaiting-destruction", params, m.ServerRow.by_retain, m.ServerRow.retain_key, index.shards(),
                  upto, lambda r: {"server_id": r.server_id, "account_id": r.account_id, "plan_id": r.plan_id,
                                   "retain_until": _time_of(r.retain_key)})


def arrears(params: dict, now: datetime) -> dict:
    """Accounts whose balance is below zero (R-PAY-7), deepest debt first."""
    return _paged("arrears", params, m.AccountRow.by_arrears, m.AccountRow.arrears_key, index.shards(),
                  index.upper_bound(None), lambda r: {"account_id": r.account_id,
                                                      "balance": index.balance_of(r.arrears_key)})


def grants(params: dict, now: datetime) -> dict:
    """Free periods granted in a local month (`month=YYYY-MM`, default this month), in grant order."""
    month = params["month"] if "month" in params else to_local(now).strftime("%Y-%m")
    if not MONTH.match(month):
        raise InvalidPayload("month must be YYYY-MM", ["month"])

    def item(row) -> dict:
        fp = row.doc.get("free_period") or {}
        return {"server_id": row.server_id, "account_id": row.account_id, "days": fp.get("days"),
                "granted_at": _time_of(row.grant_key), "ticket_id": fp.get("ticket_id")}
    answer = _paged(f"grants|{month}", params, m.ServerRow.by_grant, m.ServerRow.grant_key, index.shards(f"{month}#"),
                    index.upper_bound(None), item)
    return {**answer, "month": month}


def dead_letters(params: dict) -> dict:
    """Cluster actions that used up their attempts (R-CLU-4), oldest first (the `by_dead` index)."""
    _known(params, ())
    def item(row) -> dict:
        a = row.doc
        return {"id": a["action_id"], "server_id": a["server_id"], "kind": a["kind"],
                "attempts": a["attempts"], "error": a.get("error")}
    return _paged("dead-letters", params, m.ClusterActionRow.by_dead, m.ClusterActionRow.action_id, ["dead"],
                  index.upper_bound(None), item)


PAGE_PARAMS = ("limit", "cursor")
# list name → (answer, the query parameters it takes besides limit and cursor)
LISTS = {
    "expiring": (expiring, ("days", "at")),
    "awaiting-destruction": (awaiting_destruction, ("days", "at")),
    "arrears": (arrears, ()),
    "grants": (grants, ("month", "at")),
}


def _known(params: dict, allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(params) - set(allowed) - set(PAGE_PARAMS))
    if unknown:
        raise InvalidPayload(f"unknown query parameter(s): {', '.join(unknown)}", unknown)


def answer(name: str, params: dict) -> dict:
    if name not in LISTS:
        raise NotFound(f"no list {name!r}; lists: {', '.join(LISTS)}")
    list_answer, allowed = LISTS[name]
    _known(params, allowed)
    return list_answer(params, clock.business_time(params.get("at")))
