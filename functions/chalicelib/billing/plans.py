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
from ..timeutil import fmt, parse_rfc3339, store_key
from . import rules
from ..domain.types import Payload, Time

ANNOUNCE_CHUNK = 100  # accounts per background task: a few seconds of work, a message far below 256 KB


class PriceVersionBody(Payload):
    monthly_price: int = Field(ge=0, le=10**12)
    hourly_price: int = Field(ge=0, le=10**12)
    effective_from: Time
    at: Optional[Time] = Field(default=None, description="RFC 3339 business time; honoured only where ALLOW_CLOCK_OVERRIDE=1")


def put_price_version(plan_id: str, body: PriceVersionBody, now: datetime, actor: str) -> dict:
    """A new price version; one with the same effective_from replaces it (a correction). A future
    version is announced to the accounts it affects (R-NOTE-2, E-7), by background work queued here; a
    past one is not."""
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
    announced = _queue_announcements(plan_id, version, now) if version.effective_from > now else 0
    return {"plan": plan_view(plan), "announced_to": announced}


def affected_accounts(plan_id: str) -> list[str]:
    """R-NOTE-2, E-7: the accounts told about a future price of the plan."""
    return rules.accounts_to_announce(
        (row.account_id, row.state, bool(row.terminated)) for row in store.servers_on_plan(plan_id))


def _queue_announcements(plan_id: str, version: PriceVersion, now: datetime) -> int:
    """Queue the announcements as background tasks of ANNOUNCE_CHUNK accounts each, so the request
    answers in time however many accounts there are; answers how many accounts were queued."""
    from .. import background

    accounts = affected_accounts(plan_id)
    cause = f"price_change#{plan_id}#{store_key(version.effective_from)}"
    price = {"plan_id": plan_id, "monthly_price": version.monthly_price, "hourly_price": version.hourly_price,
             "effective_from": fmt(version.effective_from)}
    background.enqueue_many(
        background.task("price_announcement", at=fmt(now), cause=cause, price=price,
                        accounts=accounts[i:i + ANNOUNCE_CHUNK])
        for i in range(0, len(accounts), ANNOUNCE_CHUNK))
    return len(accounts)


def announce_chunk(args: dict, budget) -> dict:
    """The background task: one price_change notification per account, each with its own commit; the
    (account, cause) key makes a repeated task announce nothing twice. Near the end of its budget it
    queues the accounts it did not reach."""
    from .. import background

    price, cause, at = args["price"], args["cause"], parse_rfc3339(args["at"])
    accounts = list(args["accounts"])
    done = 0
    while accounts:
        s = Session()
        outbox.record(s, kind="price_change", account_id=accounts.pop(0), cause=cause, at=at, details=price)
        try:
            s.commit()
        except ConcurrentUpdate:
            pass  # announced already for this cause
        else:
            unit.after_commit(s)
        done += 1
        if accounts and budget.should_stop():
            background.enqueue("price_announcement", at=args["at"], cause=cause, price=price, accounts=accounts)
            break
    return {"announced": done, "left": len(accounts)}


def plan_view(plan: Plan) -> dict:
    return {"plan_id": plan.plan_id, "versions": [
        {"monthly_price": v.monthly_price, "hourly_price": v.hourly_price,
         "effective_from": fmt(v.effective_from)} for v in plan.versions]}
