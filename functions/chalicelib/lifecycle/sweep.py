"""The daily expiry sweep (R-PAY-8, R-LIFE-1, R-LIFE-3, R-LIFE-4, R-NOTE-1): reads only what is due
from the sparse due-date index, one transaction per server, one shard at a time (in parallel when the
scheduled run fans out), and resumes where a cut-off piece stopped."""
from __future__ import annotations

import functools
import logging
from datetime import datetime
from typing import Callable

from .. import observability
from ..background import sharded
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


def run_expiry_shard(now: datetime, shard: str, should_stop: Callable[[], bool] = sharded.never, *,
                     after: dict | None = None, before_item: Callable[[str], None] | None = None) -> dict:
    """Visit the servers of one shard due at or before `now`, from the cursor `after`, until
    `should_stop`. Each visit commits on its own and moves the server's due date past `now`, so the
    index itself is the checkpoint. A server whose change fails is counted in `errors` and named in
    `error_ids`; it stays due, so the next run tries it again, and this one goes on with the others."""
    cause = sharded.run_id("expiry", now)
    observability.bind(run_id=cause, shard=shard)
    summary = {"now": fmt(now), "shard": shard, "visited": 0, "read": 0, "errors": 0, "error_ids": [],
               "remind": 0, "expire": 0, "warn": 0, "destroy": 0}

    def visit_row(row: m.ServerRow) -> None:
        summary["read"] += 1
        if before_item:
            before_item(row.server_id)
        try:
            for kind in _process(row, now, cause):
                summary[kind] += 1
        except Exception:  # noqa: BLE001 - one failure stays one failure (issue 9)
            summary["errors"] += 1
            summary["error_ids"].append(row.server_id)
            log.exception("expiry sweep could not settle %s; the next run tries again", row.server_id)
        summary["visited"] += 1

    done, cursor = sharded.walk(lambda start: store.due_rows(now, shard, last_key=start), visit_row,
                                should_stop, after)
    summary.update(complete=done, next=cursor)
    return summary


def run_expiry_sweep(now: datetime, *, max_items: int | None = None,
                     should_stop: Callable[[], bool] = sharded.never,
                     before_item: Callable[[str], None] | None = None, hand_on: bool = False) -> dict:
    """The whole run in this invocation, shard after shard (`POST /ops/sweeps/expiry`); a run cut off
    by `max_items` or `should_stop` (or a crash) is completed by running again with the same `now`, or,
    with `hand_on`, by the background work it queues."""
    if max_items is not None:
        visits, hook, outer = [0], before_item, should_stop

        def before_item(server_id: str) -> None:
            visits[0] += 1
            if hook:
                hook(server_id)

        def should_stop() -> bool:
            return visits[0] >= max_items or outer()
    summary = sharded.whole_run("expiry", now, functools.partial(run_expiry_shard, before_item=before_item),
                                should_stop, hand_on)
    log.info("expiry sweep %s", summary)
    return summary
