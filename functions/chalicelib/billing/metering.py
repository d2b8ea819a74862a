"""The hourly pay-as-you-go metering (R-PAY-6, R-PAY-7): charges every started, uncharged hour of
the servers the metering index says are due, one transaction per server."""
from __future__ import annotations

from datetime import datetime

from .. import observability
from ..errors import ConcurrentUpdate
from ..store import session as store
from ..store import unit
from ..store.session import Session
from ..timeutil import fmt, store_key
from . import rules
from .payments import Work, change_balance, load_account


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


def run_metering(now: datetime) -> dict:
    cause = f"sweep:metering:{store_key(now)}"
    summary = {"now": fmt(now), "servers": 0, "hours": 0, "errors": 0}
    plans: dict = {}
    for shard in map(str, range(store.SHARDS)):
        observability.bind(run_id=cause, shard=shard)
        for row in store.meter_rows(now, shard):
            summary["servers"] += 1
            try:
                summary["hours"] += _charge(row.server_id, now, cause, plans)
            except ConcurrentUpdate:
                summary["errors"] += 1
    observability.sweep_finished("metering", summary)
    return summary
