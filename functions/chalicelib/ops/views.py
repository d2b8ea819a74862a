"""The operators' views of a server and an account (integration §2, "The views")."""
from __future__ import annotations

from ..audit import trail
from ..domain.records import Account, ClusterAction, Server
from ..errors import NotFound
from ..lifecycle import rules as life
from ..notify.outbox import notification_id, target_of
from ..store import pages
from ..store.session import Session
from ..timeutil import fmt, parse_stored  # a view shows what is stored, never refuses it

_TIME_FIELDS = ("at", "expires_at_before", "expires_at_after")


def _ledger_row(doc: dict) -> dict:
    row = {k: v for k, v in doc.items() if k not in ("cause",)}
    for key in _TIME_FIELDS:
        if row.get(key):
            row[key] = fmt(parse_stored(row[key]))
    return row


def _notification(doc: dict) -> dict:
    return {"kind": doc["kind"], "at": fmt(parse_stored(doc["at"])), "cause": doc["cause"], **doc.get("details", {}),
            "status": doc["status"], "notification_id": notification_id(doc["target"], doc["cause"])}


def _cluster_action(doc: dict) -> dict:
    a = ClusterAction.model_validate(doc)
    return {k: v for k, v in {"id": a.action_id, "kind": a.kind, "status": a.status, "attempts": a.attempts,
                              "error": a.error}.items() if v is not None}


# The lists of each view (integration §6 "Volume"): where the history lives, whose key names the owner,
# and how one entry is shown. Each holds the latest PAGE_SIZE entries, older ones page by cursor.
SERVER_LISTS = {
    "cluster_actions": (pages.CLUSTER_ACTIONS, lambda server_id: server_id, _cluster_action),
    "notifications": (pages.NOTIFICATIONS, lambda server_id: target_of(server_id=server_id), _notification),
    "ledger": (pages.SERVER_LEDGER, lambda server_id: server_id, _ledger_row),
    "audit": (pages.AUDIT, trail.server_target, trail.view),
}
ACCOUNT_LISTS = {
    "notifications": (pages.NOTIFICATIONS, lambda account_id: target_of(account_id=account_id), _notification),
    "ledger": (pages.ACCOUNT_LEDGER, lambda account_id: account_id, _ledger_row),
    "audit": (pages.AUDIT, trail.account_target, trail.view),
}


def _record(row) -> dict:
    """A row's record; a notification's delivery status lives beside its doc (set without rewriting it)."""
    status = getattr(row, "status", None)
    return {**row.doc, "status": status} if status is not None else row.doc


def _page(lists: dict, name: str, owner_id: str, before: str | None) -> tuple[list[dict], str | None]:
    history, owner, show = lists[name]
    rows, cursor = pages.page(history, owner(owner_id), before)
    return [show(_record(row)) for row in rows], cursor


def _with_lists(view: dict, lists: dict, owner_id: str) -> dict:
    for name in lists:
        view[name], view[f"{name}_next"] = _page(lists, name, owner_id, None)
    return view


def server_view(server: Server) -> dict:
    fp = server.free_period
    return _with_lists({
        "server_id": server.server_id,
        "account_id": server.account_id,
        "state": server.state,
        "billing_mode": server.billing_mode,
        "plan_id": server.plan_id,
        "region": server.region,
        "service_start": fmt(server.service_start),
        "expires_at": fmt(server.expires_at),
        "stop_reason": life.strongest_reason(server.stop_reasons),
        "stop_reasons": sorted(server.stop_reasons, key=lambda r: -life.STOP_REASONS[r][0]),
        "termination_reason": server.termination_reason,
        "retain_until": fmt(server.retain_until),
        "free_period": None if fp is None else {k: v for k, v in {
            "decision": fp.decision, "days": fp.days, "reason": fp.reason, "due_by": fmt(fp.due_by),
            "granted_at": fmt(fp.granted_at)}.items() if v is not None},
    }, SERVER_LISTS, server.server_id)


def get_server_view(server_id: str) -> dict:
    server = Session().server(server_id)
    if server is None:
        raise NotFound(f"server {server_id!r} is not known")
    return server_view(server)


def _servers_page(account_id: str, before: str | None) -> tuple[list[str], str | None]:
    """The account's server ids, 100 a page in id order, from the servers' by_account index."""
    rows, cursor = pages.page(pages.ACCOUNT_SERVERS, account_id, before)
    return [row.server_id for row in rows], cursor


def account_view(account: Account) -> dict:
    servers, servers_next = _servers_page(account.account_id, None)
    return _with_lists({
        "account_id": account.account_id,
        "balance": account.balance,
        "in_arrears": account.in_arrears,
        "violation": account.violation,
        "agreement_ended": account.agreement_ended,
        "server_count": account.servers_opened,
        "servers": servers,
        "servers_next": servers_next,
    }, ACCOUNT_LISTS, account.account_id)


def get_account_view(account_id: str) -> dict:
    account = Session().account(account_id)
    if account is None:
        raise NotFound(f"account {account_id!r} is not known")
    return account_view(account)


def server_list_page(server_id: str, name: str, before: str | None) -> dict:
    """`GET /ops/servers/{id}/<list>?before=`: the page of a server view's list before the cursor."""
    if Session().server(server_id) is None:
        raise NotFound(f"server {server_id!r} is not known")
    items, cursor = _page(SERVER_LISTS, name, server_id, before)
    return {"items": items, "next": cursor}


def account_list_page(account_id: str, name: str, before: str | None) -> dict:
    """`GET /ops/accounts/{id}/<list>?before=`; `servers` pages the account's server ids the same way."""
    account = Session().account(account_id)
    if account is None:
        raise NotFound(f"account {account_id!r} is not known")
    if name == "servers":
        items, cursor = _servers_page(account_id, before)
    else:
        items, cursor = _page(ACCOUNT_LISTS, name, account_id, before)
    return {"items": items, "next": cursor}


def ops_audit_page(before: str | None) -> dict:
    """`GET /ops/audit?before=`: changes about no one server or account (price versions, runs by hand, replays)."""
    rows, cursor = pages.page(pages.AUDIT, trail.OPS_TARGET, before)
    return {"items": [trail.view(row.doc) for row in rows], "next": cursor}
