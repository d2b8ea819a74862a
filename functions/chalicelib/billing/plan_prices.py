"""The copy of its plan's price versions each server keeps, so a renewal prices itself (R-PAY-2)
from the server alone: the copy is trusted only together with a check, in the same transaction,
that the plan record is still at the version it was copied from."""
from __future__ import annotations

from ..domain.records import Plan, PlanPrices, Server
from ..store import models as m
from ..store.session import Session


def copy_of(s: Session, plan: Plan | None) -> PlanPrices | None:
    stamp = s.row_version(m.PlanRow, plan.plan_id) if plan is not None else None
    return None if stamp is None else PlanPrices(plan_id=plan.plan_id, versions=list(plan.versions), stamp=stamp)


def current_plan(s: Session, server: Server) -> Plan | None:
    """The server's plan: from its copy (with the version check), or read after a cancelled try, or
    when there is no copy yet (then the copy is made, saved with the server)."""
    copy = server.plan_prices
    if copy is not None and copy.plan_id == server.plan_id and s.attempt == 0:
        s.expect(m.PlanRow, copy.plan_id, m.PlanRow.version == copy.stamp)
        return Plan(plan_id=copy.plan_id, versions=list(copy.versions))
    plan = s.plan(server.plan_id)
    server.plan_prices = copy_of(s, plan)
    return plan
