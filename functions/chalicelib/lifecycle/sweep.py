"""The daily expiry sweep (R-PAY-8, R-LIFE-1, R-LIFE-3, R-LIFE-4, R-NOTE-1): reads only what is due
from the sparse due-date index, one transaction per server, and resumes where a cut-off run stopped."""
from __future__ import annotations

import logging
from datetime import datetime
from typing import Callable

from .. import observability
from ..errors import ConcurrentUpdate
from ..notify import outbox
from ..store import models as m
from ..store import session as store
from ..store import unit
from ..store.session import Session
from ..timeutil import fmt, store_key
from . import effects, rules

log = logging.getLogger(__name__)


def visit(s: Session, server, now: datetime, cause: str) -> list[str]:
    """Apply every step the sweep at `now` owes this server; returns the step kinds applied."""
    done = []
    for step in rules.sweep_steps(server, now):
        if step.kind == "remind":
            outbox.record(s, kind="renewal_reminder", account_id=server.account_id, server_id=server.server_id,
                          cause=f"renewal_reminder#{store_key(server.expires_at)}", at=now,
                          details={"expires_at": fmt(server.expires_at)})
            server.reminded_for = server.expires_at
        elif step.kind == "expire":
            effects.stop(s, server, "expired", server.expires_at, cause)
        done.append(step.kind)
    for step in rules.retention_steps(server, now):
        if step.kind == "warn":
            outbox.record(s, kind="destruction_warning", account_id=server.account_id, server_id=server.server_id,
                          cause=f"destruction_warning#{store_key(server.retain_until)}", at=now,
                          details={"retain_until": fmt(server.retain_until)})
            server.warned_for = server.retain_until
        elif step.kind == "destroy":
            effects.destroy(s, server, now, cause)
        done.append(step.kind)
    return done


def _process(row: m.ServerRow, now: datetime, cause: str) -> list[str]:
    def change(s: Session, attempt: int) -> list[str]:
        # first from the index copy; after a conflict (stale copy or a racing webhook) from the table
        server = s.adopt_server_row(row) if attempt == 0 else s.server(row.server_id)
        if server is None:
            return []
        done = visit(s, server, now, cause)
        effects.save_server(s, server)
        return done
    return unit.run(change, attempts=3, what=f"server {row.server_id}")


def run_expiry_sweep(now: datetime, *, max_items: int | None = None,
                     should_stop: Callable[[], bool] | None = None,
                     before_item: Callable[[str], None] | None = None) -> dict:
    """Visit every server due at or before `now`. Each visit commits on its own and moves the
    server's due date past `now`, so the index itself is the checkpoint: a run cut off by
    `max_items` (or a crash) is completed by running again with the same `now`."""
    cause = f"sweep:expiry:{store_key(now)}"
    summary = {"now": fmt(now), "visited": 0, "read": 0, "complete": True, "errors": 0,
               "remind": 0, "expire": 0, "warn": 0, "destroy": 0}
    for shard in map(str, range(store.SHARDS)):
        observability.bind(run_id=cause, shard=shard)
        for row in store.due_rows(now, shard):
            summary["read"] += 1
            if (max_items is not None and summary["visited"] >= max_items) or (should_stop and should_stop()):
                summary["complete"] = False
                break
            if before_item:
                before_item(row.server_id)
            try:
                for kind in _process(row, now, cause):
                    summary[kind] += 1
            except ConcurrentUpdate:
                summary["errors"] += 1
                log.exception("sweep could not settle %s", row.server_id)
            summary["visited"] += 1
        if not summary["complete"]:
            break
    _record_run(cause, summary)
    observability.sweep_finished("expiry", summary)
    return summary


def _record_run(run_id: str, summary: dict) -> None:
    store.ensure_configured()
    m.RunRow(run_id, doc=summary, count=summary["visited"]).save()
