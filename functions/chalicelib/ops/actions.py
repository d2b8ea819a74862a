"""Operators' actions on servers and accounts (R-LIFE-2, R-LIFE-5, R-LIFE-6, P-II(6))."""
from __future__ import annotations

from datetime import datetime
from typing import Literal, Optional

from pydantic import Field

from ..audit import trail
from ..billing import rules as billing_rules
from ..accounts.money import Work, change_balance, load_account
from ..errors import Conflict, NotFound
from ..lifecycle import effects
from ..lifecycle import rules as life
from ..store import unit
from ..domain.types import Payload, Time
from . import views


AT = Field(default=None, description="RFC 3339 business time; honoured only where ALLOW_CLOCK_OVERRIDE=1")


class SuspendBody(Payload):
    reason: Literal["violation", "security_incident"]
    note: Optional[str] = Field(default=None, max_length=2000)
    at: Optional[Time] = AT


class ResumeBody(Payload):
    note: Optional[str] = Field(default=None, max_length=2000)
    at: Optional[Time] = AT


class TerminateBody(Payload):
    reason: Literal["user_closed", "replaced", "breach", "security_incident", "provider_announcement", "consensus"]
    note: Optional[str] = Field(default=None, max_length=2000)
    at: Optional[Time] = AT


class ViolationBody(Payload):
    flag: bool
    note: Optional[str] = Field(default=None, max_length=2000)
    at: Optional[Time] = AT


def _run(change):
    return unit.run(lambda s, _attempt: change(s))


def _load(w: Work, server_id: str):
    server = w.server(server_id)
    if server is None:
        raise NotFound(f"server {server_id!r} is not known")
    if server.state == "destroyed":
        raise Conflict(f"server {server_id!r} is destroyed")
    return server


def suspend(server_id: str, body: SuspendBody, at: datetime, actor: str) -> dict:
    """R-LIFE-2: an operator hold (violation, security incident) stops the server and keeps its data."""
    def change(s):
        w = Work(s, None, f"ops:{actor}:suspend")
        server = _load(w, server_id)
        effects.stop(s, server, body.reason, at, w.cause)
        w.save()
        trail.record(s, actor, "suspend", at, [trail.server_target(server_id)], reason=body.reason, note=body.note)
        return server
    return views.server_view(_run(change))


def resume(server_id: str, body: ResumeBody, at: datetime, actor: str) -> dict:
    """R-LIFE-2b: lifts the operator holds; other reasons (expired, arrears, terminated) stay."""
    def change(s):
        w = Work(s, None, f"ops:{actor}:resume")
        server = _load(w, server_id)
        held = [r for r in server.stop_reasons if r in life.OPERATOR_REASONS]
        if not held:
            raise Conflict(f"server {server_id!r} has no operator suspension")
        for reason in held:
            effects.lift(s, server, reason, at, w.cause)
        w.save()
        trail.record(s, actor, "resume", at, [trail.server_target(server_id)], note=body.note, lifted=held)
        return server
    return views.server_view(_run(change))


def terminate(server_id: str, body: TerminateBody, at: datetime, actor: str) -> dict:
    """R-LIFE-5/R-LIFE-6: terminated now; computed refunds (security incident, provider announcement)
    are credited to the balance with a ledger row; free days belong to no paid period."""
    def change(s):
        w = Work(s, None, f"ops:{actor}:terminate")
        server = _load(w, server_id)
        if "terminated" in server.stop_reasons:
            raise Conflict(f"server {server_id!r} is already terminated")
        account = load_account(w, server.account_id)
        refund = billing_rules.termination_refund(body.reason, server.periods, at)
        for period in server.periods:
            if not period.refunded and period.end > at and billing_rules.REFUND_RULES[body.reason]:
                period.refunded = True
        if refund:
            change_balance(w, refund, at, kind="refund", rule="R-LIFE-5", server=server, note=body.reason)
        effects.terminate(s, server, account, at, body.reason, w.cause)
        w.save()
        trail.record(s, actor, "terminate", at, [trail.server_target(server_id)], reason=body.reason,
                     note=body.note, refund=refund)
        return server, refund
    answer: dict = {}  # gains "follow_up": "queued" when a refund's arrears crossing is left to background work
    server, refund = unit.run(lambda s, _attempt: change(s), answer=answer)
    return {"server": views.server_view(server), "refund": refund, **answer}


def set_violation(account_id: str, body: ViolationBody, at: datetime, actor: str) -> dict:
    """P-II(6): a violation mark on the account (it denies the free period)."""
    def change(s):
        w = Work(s, None, f"ops:{actor}:violation")
        account = s.account(account_id)
        if account is None:
            raise NotFound(f"account {account_id!r} is not known")
        w.account = account
        account.violation = body.flag
        w.save()
        trail.record(s, actor, "violation", at, [trail.account_target(account_id)], flag=body.flag, note=body.note)
        return account
    return views.account_view(_run(change))
