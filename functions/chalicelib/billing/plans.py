"""Plans and price versions (T2.5, R-PAY-2, R-NOTE-2)."""
from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Optional

from pydantic import Field

from ..audit import trail
from ..domain.records import Plan, PriceVersion
from ..errors import ConcurrentUpdate
from ..notify import outbox
from ..store import runs
from ..store import session as store
from ..store import unit
from ..store.session import Session
from ..timeutil import fmt, parse_rfc3339, store_key
from . import rules
from ..domain.types import Payload, Time

ANNOUNCEMENT = "price_announcement"  # the kind of an announcement's `runs` row


class PriceVersionBody(Payload):
    monthly_price: int = Field(ge=0, le=10**12)
    hourly_price: int = Field(ge=0, le=10**12)
    effective_from: Time
    at: Optional[Time] = Field(default=None, description="RFC 3339 business time; honoured only where ALLOW_CLOCK_OVERRIDE=1")


def put_price_version(plan_id: str, body: PriceVersionBody, now: datetime, actor: str) -> dict:
    """A new price version; one with the same effective_from replaces it (a correction). A future
    version is announced to the accounts it affects (R-NOTE-2, E-7, E-12) by background work queued
    here, which reads the plan's servers itself (integration §7: the call reads none of them); a past
    one is not announced. `announced_to` is null for a queued announcement (its count is known only
    once the work ran: `GET /ops/runs/{announcement_run}` counts `announced`) and 0 for a past one."""
    from .. import background

    version = PriceVersion(monthly_price=body.monthly_price, hourly_price=body.hourly_price,
                           effective_from=body.effective_from)
    def change(s: Session, _attempt: int) -> Plan:
        plan = s.plan(plan_id) or Plan(plan_id=plan_id)
        plan.versions = [v for v in plan.versions if v.effective_from != version.effective_from] + [version]
        plan.versions.sort(key=lambda v: v.effective_from)
        s.put_plan(plan)
        trail.record(s, actor, "price_version", now, [trail.OPS_TARGET], plan_id=plan_id,
                     monthly_price=version.monthly_price, hourly_price=version.hourly_price,
                     effective_from=fmt(version.effective_from))
        return plan

    plan = unit.run(change, what=f"plan {plan_id}")
    if version.effective_from <= now:
        return {"plan": plan_view(plan), "announced_to": 0, "announcement_run": None}
    cause = announcement_cause(plan_id, version)
    run_id = announcement_run(cause)
    runs.open_run(run_id, ANNOUNCEMENT, now, 1)
    background.enqueue("price_announcement", at=fmt(now), cause=cause, price=_price(plan_id, version))
    return {"plan": plan_view(plan), "announced_to": None, "announcement_run": run_id}


def announcement_cause(plan_id: str, version: PriceVersion) -> str:
    """E-12: one announcement per plan, effective_from and prices, so a corrected future price (same
    effective_from, other prices) is announced again while repeating the same one announces nothing."""
    return (f"price_change#{plan_id}#{store_key(version.effective_from)}"
            f"#{version.monthly_price}#{version.hourly_price}")


def announcement_run(cause: str) -> str:
    """The `runs` row the announcement's pieces count into: a path id (integration §6 alphabet, at most
    128 characters), derived from the cause so that a repeated PUT counts into the same row."""
    return "announce:" + hashlib.sha256(cause.encode()).hexdigest()[:32]


def _price(plan_id: str, version: PriceVersion) -> dict:
    return {"plan_id": plan_id, "monthly_price": version.monthly_price, "hourly_price": version.hourly_price,
            "effective_from": fmt(version.effective_from)}


def announce_piece(args: dict, budget) -> dict:
    """The background task: pages the plan's servers (the by_plan index) from the cursor `after`,
    recording one price_change notification per account E-7 names, each with its own commit; the
    (account, cause) key makes a repeated task, or an account met again on a later page, announce
    nothing twice. Near the end of its budget it queues its continuation from the last server read."""
    from .. import background
    from ..background import sharded

    price, cause, at = args["price"], args["cause"], parse_rfc3339(args["at"])
    counts, seen = {"servers": 0, "announced": 0}, set()

    def visit(row) -> None:
        counts["servers"] += 1
        for account_id in rules.accounts_to_announce([(row.account_id, row.state, bool(row.terminated))]):
            if account_id in seen:
                continue
            seen.add(account_id)
            s = Session()
            outbox.record(s, kind="price_change", account_id=account_id, cause=cause, at=at, details=price)
            try:
                s.commit()
            except ConcurrentUpdate:
                continue  # announced already for this cause
            unit.after_commit(s)
            counts["announced"] += 1

    done, cursor = sharded.walk(lambda start: store.servers_on_plan(price["plan_id"], last_key=start), visit,
                                budget.should_stop, args.get("after"))
    runs.add(announcement_run(cause), ANNOUNCEMENT, at, counts, shards=1, shards_done=["0"] if done else [])
    if not done:
        background.enqueue("price_announcement", at=args["at"], cause=cause, price=price, after=cursor)
    return {**counts, "complete": done}


def plan_view(plan: Plan) -> dict:
    return {"plan_id": plan.plan_id, "versions": [
        {"monthly_price": v.monthly_price, "hourly_price": v.hourly_price,
         "effective_from": fmt(v.effective_from)} for v in plan.versions]}
