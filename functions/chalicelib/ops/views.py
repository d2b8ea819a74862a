"""The operators' views of a server and an account (CONTRACT §2, "The views")."""
from __future__ import annotations

from ..domain.records import Account, Server
from ..errors import NotFound
from ..lifecycle import rules as life
from ..notify.outbox import target_of
from ..store import session as store
from ..store.session import Session
from ..timeutil import fmt, parse_stored  # a view shows what is stored, never refuses it

_TIME_FIELDS = ("at", "expires_at_before", "expires_at_after")


def _ledger_row(doc: dict) -> dict:
    row = {k: v for k, v in doc.items() if k not in ("cause",)}
    for key in _TIME_FIELDS:
        if row.get(key):
            row[key] = fmt(parse_stored(row[key]))
    return row


def ledger_rows(docs: list[dict]) -> list[dict]:
    return [_ledger_row(d) for d in sorted(docs, key=lambda d: (parse_stored(d["at"]), d.get("cause", "")))]


def notifications(target: str) -> list[dict]:
    docs = sorted(store.notifications_for(target), key=lambda d: (parse_stored(d["at"]), d["cause"]))
    return [_notification(d) for d in docs]


def _notification(doc: dict) -> dict:
    return {"kind": doc["kind"], "at": fmt(parse_stored(doc["at"])), "cause": doc["cause"], **doc.get("details", {})}


def server_view(server: Server) -> dict:
    fp = server.free_period
    actions = store.actions_for(server.server_id)
    return {
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
        "cluster_actions": [{k: v for k, v in {
            "id": a.action_id, "kind": a.kind, "status": a.status, "attempts": a.attempts,
            "error": a.error}.items() if v is not None} for a in actions],
        "notifications": notifications(target_of(server_id=server.server_id)),
        "ledger": ledger_rows(store.ledger_for_server(server.server_id)),
    }


def get_server_view(server_id: str) -> dict:
    server = Session().server(server_id)
    if server is None:
        raise NotFound(f"server {server_id!r} is not known")
    return server_view(server)


def account_view(account: Account) -> dict:
    return {
        "account_id": account.account_id,
        "balance": account.balance,
        "in_arrears": account.in_arrears,
        "violation": account.violation,
        "agreement_ended": account.agreement_ended,
        "servers": list(account.server_ids),
        "notifications": notifications(target_of(account_id=account.account_id)),
        "ledger": ledger_rows(store.ledger_for_account(account.account_id)),
    }


def get_account_view(account_id: str) -> dict:
    account = Session().account(account_id)
    if account is None:
        raise NotFound(f"account {account_id!r} is not known")
    return account_view(account)
