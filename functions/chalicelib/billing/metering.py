"""The hourly pay-as-you-go metering (R-PAY-6, R-PAY-7): charges every started, uncharged hour of
the servers the metering index says are due, one transaction per server, one shard at a time (in
parallel when the scheduled run fans out)."""
from __future__ import annotations

import logging
from datetime import datetime
from typing import Callable

from .. import observability
from ..background import sharded
from ..store import session as store
from ..store import unit
from ..store.session import Session
from ..timeutil import fmt
from . import rules
from .payments import Work, change_balance, load_account

log = logging.getLogger(__name__)


def _charge(server_id: str, now: datetime, cause: str, plans: dict) -> int:
    def change(s: Session, _attempt: int) -> int:
        w = Work(s, None, cause)
        server = w.server(server_id)
        if server is None or server.billing_mode != "payg":
            return 0
        load_account(w, server.account_id)
        for use in server.plan_history:
            if use.plan_id not in plans:
                plans[use.plan_id] = s.plan(use.plan_id)
        known = {k: v for k, v in plans.items() if v is not None}
        charges = rules.hours_to_charge(server.payg_segments, now, server.plan_history, server.plan_id, known)
        if not charges:
            return 0
        total = sum(c.price for c in charges)
        change_balance(w, -total, now, kind="payg_hours", rule="R-PAY-6", server=server,
                       hours=len(charges),
                       note=f"hours {fmt(charges[0].hour_start)} .. {fmt(charges[-1].hour_start)}")
        w.save()
        return len(charges)
    return unit.run(change, what=f"server {server_id}")


def run_metering_shard(now: datetime, shard: str, should_stop: Callable[[], bool] = sharded.never, *,
                       after: dict | None = None) -> dict:
    """Charge the servers of one shard of the metering index due at or before `now`, from the cursor
    `after`, until `should_stop`. A charge moves the server's index key past `now`, so a repeated
    piece charges nothing twice. A server whose charge fails is counted in `errors` and named in
    `error_ids`; it stays due, so the next run charges it, and this one goes on with the others."""
    cause = sharded.run_id("metering", now)
    observability.bind(run_id=cause, shard=shard)
    summary = {"now": fmt(now), "shard": shard, "servers": 0, "hours": 0, "errors": 0, "error_ids": []}
    plans: dict = {}

    def visit_row(row) -> None:
        summary["servers"] += 1
        try:
            summary["hours"] += _charge(row.server_id, now, cause, plans)
        except Exception:  # noqa: BLE001 - one failure stays one failure (issue 9)
            summary["errors"] += 1
            summary["error_ids"].append(row.server_id)
            log.exception("metering could not charge %s; the next run tries again", row.server_id)

    done, cursor = sharded.walk(lambda start: store.meter_rows(now, shard, last_key=start), visit_row,
                                should_stop, after)
    summary.update(complete=done, next=cursor)
    return summary


def run_metering(now: datetime, should_stop: Callable[[], bool] = sharded.never) -> dict:
    """The whole run in this invocation, shard after shard (`POST /ops/sweeps/metering`)."""
    summary = sharded.whole_run("metering", now, run_metering_shard, should_stop)
    log.info("metering %s", summary)
    return summary
