"""Scheduled jobs, drains and replays started by an operator's hand, each recorded in the audit trail
under the `ops` target (integration §6); the scheduled runs themselves record nothing."""
from __future__ import annotations

from datetime import datetime

from ..audit import trail
from ..background import Budget
from ..errors import NotFound
from ..timeutil import fmt, now_utc


def expiry_sweep(now: datetime, actor: str) -> dict:
    """integration §7: as much of the run as fits the route's budget; the rest is queued (`complete` false)."""
    from ..lifecycle import sweep

    budget = Budget.for_route()
    return trail.run_by_hand(actor, "sweep_expiry", now,
                             lambda: sweep.run_expiry_sweep(now, should_stop=budget.should_stop, hand_on=True),
                             now=fmt(now))


def metering(now: datetime, actor: str) -> dict:
    from ..billing import metering as payg

    budget = Budget.for_route()
    return trail.run_by_hand(actor, "sweep_metering", now,
                             lambda: payg.run_metering(now, budget.should_stop, hand_on=True), now=fmt(now))


def run_summary(run_id: str) -> dict:
    """`GET /ops/runs/{run_id}` (integration §7): the summary all pieces of the run have added so far."""
    from ..store import runs

    summary = runs.get(run_id)
    if summary is None:
        raise NotFound(f"no run {run_id}")
    return summary


def drain_cluster_actions(actor: str) -> dict:
    from ..clusters import executor

    return trail.run_by_hand(actor, "drain_cluster_actions", now_utc(), executor.drain)


def drain_background(actor: str) -> dict:
    """integration §6, §7: queued background work (shards, announcements, recorded notifications) run
    now, until the route's budget; `more` says whether work was left."""
    from .. import background

    budget = Budget.for_route()
    return trail.run_by_hand(actor, "drain_background", now_utc(), lambda: background.drain(budget))


def backfill(table: str, actor: str) -> dict:
    """issue 18: re-save a table's rows in the background so that old rows join a new index (docs/operations.md)."""
    from ..background import backfill as job

    started = now_utc()
    return trail.run_by_hand(actor, "backfill", started, lambda: job.start(table, started), table=table)


def replay_dead_letter(action_id: str, actor: str) -> dict:
    """R-CLU-4: the entry commits with the action's revival, on `ops` and on the action's server."""
    from ..clusters import executor

    def audit(s, action) -> None:
        trail.record(s, actor, "replay_dead_letter", now_utc(), [trail.OPS_TARGET, trail.server_target(action.server_id)],
                     action_id=action.action_id, server_id=action.server_id, kind=action.kind)
    return executor.replay(action_id, also=audit)
