"""Plans and price versions (T2.5, R-PAY-2, R-NOTE-2)."""
from __future__ import annotations

from datetime import datetime
from typing import Optional

from pydantic import Field

from ..audit import trail
from ..domain.records import Plan, PriceVersion
from ..errors import ConcurrentUpdate
from ..notify import outbox
from ..store import session as store
from ..store import unit
from ..store.session import Session
from ..timeutil import fmt, store_key
from . import rules
from ..domain.types import Payload, Time


class PriceVersionBody(Payload):
    monthly_price: int = Field(ge=0, le=10**12)
    hourly_price: int = Field(ge=0, le=10**12)
    effective_from: Time
    at: Optional[Time] = Field(default=None, description="RFC 3339 business time; honoured only where ALLOW_CLOCK_OVERRIDE=1")


def put_price_version(plan_id: str, body: PriceVersionBody, now: datetime, actor: str) -> dict:
    """A new price version; one with the same effective_from replaces it (a correction). A future
    version is announced to the accounts it affects (R-NOTE-2, E-7); a past one is not."""
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
    announced = _announce(plan_id, version, now) if version.effective_from > now else 0
    return {"plan": plan_view(plan), "announced_to": announced}


def _announce(plan_id: str, version: PriceVersion, now: datetime) -> int:
    accounts = rules.accounts_to_announce(
        (row.account_id, row.state, bool(row.terminated)) for row in store.servers_on_plan(plan_id))
    cause = f"price_change#{plan_id}#{store_key(version.effective_from)}"
    for account_id in accounts:
        s = Session()
        outbox.record(s, kind="price_change", account_id=account_id, cause=cause, at=now,
                      details={"plan_id": plan_id, "monthly_price": version.monthly_price,
                               "hourly_price": version.hourly_price,
                               "effective_from": fmt(version.effective_from)})
        try:
            s.commit()
        except ConcurrentUpdate:
            continue  # announced already for this cause
        unit.after_commit(s)
    return len(accounts)


def plan_view(plan: Plan) -> dict:
    return {"plan_id": plan.plan_id, "versions": [
        {"monthly_price": v.monthly_price, "hourly_price": v.hourly_price,
         "effective_from": fmt(v.effective_from)} for v in plan.versions]}
