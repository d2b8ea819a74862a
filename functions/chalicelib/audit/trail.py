"""The operators' audit trail (integration §6 "Operators are named"): who changed what, when and why,
staged in the transaction of the change itself so a refused or failed call leaves no entry."""
from __future__ import annotations

from datetime import datetime
from typing import Callable, TypeVar

from ..domain.records import AuditEntry
from ..store.session import Session
from ..timeutil import fmt

T = TypeVar("T")

# Changes that are about no one server or account (price versions, runs by hand, replays) go here.
OPS_TARGET = "ops"
# An entry is one item (at most 400 KB): a list in a run's result is kept to its first entries (the
# result's counts stay exact; a run's own summary says where the rest are).
MAX_LISTED = 100


def server_target(server_id: str) -> str:
    return f"server#{server_id}"


def account_target(account_id: str) -> str:
    return f"account#{account_id}"


def record(s: Session, actor: str, action: str, at: datetime, targets: list[str], **fields) -> None:
    """Stage one entry per target in `s`; fields that are None (an absent note) are left out."""
    kept = {k: v for k, v in fields.items() if v is not None}
    for target in targets:
        s.add_audit(AuditEntry(target=target, at=at, action=action, actor=actor, fields=kept))


def run_by_hand(actor: str, action: str, at: datetime, run: Callable[[], T], **fields) -> T:
    """A sweep or drain an operator started: the run commits server by server, so its entry is written
    when it has finished (with its summary), and a run that fails records nothing."""
    result = run()
    s = Session()
    record(s, actor, action, at, [OPS_TARGET], **fields, result=capped(result))
    s.commit()
    return result


def capped(result):
    """The result with each list cut to its first MAX_LISTED entries, marked `<name>_truncated`."""
    if not isinstance(result, dict):
        return result
    kept = dict(result)
    for name, value in result.items():
        if isinstance(value, list) and len(value) > MAX_LISTED:
            kept[name], kept[f"{name}_truncated"] = value[:MAX_LISTED], True
    return kept


def view(doc: dict) -> dict:
    """An entry as the views show it: `at`, `action`, `actor`, then the body's fields."""
    entry = AuditEntry.model_validate(doc)
    return {"at": fmt(entry.at), "action": entry.action, "actor": entry.actor, **entry.fields}
