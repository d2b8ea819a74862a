"""Shapes of the answers (CONTRACT §1–§2) as pydantic models: the OpenAPI document is generated from
them, and the tests validate real answers against that document, so neither can drift."""
from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from ..domain.types import Time


class Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ErrorBody(BaseModel):
    code: str
    message: str
    fields: Optional[list[str]] = None


class Error(BaseModel):
    error: ErrorBody


class WebhookAnswer(BaseModel):
    event_id: str
    result: Literal["processed", "duplicate"]
    outcome: dict[str, Any]


class FreePeriodView(Open):
    decision: Literal["granted", "denied"]
    days: Optional[int] = None
    reason: Optional[str] = None
    due_by: Optional[str] = None
    granted_at: Optional[str] = None


class ClusterActionView(Open):
    id: str
    kind: Literal["stop", "start", "destroy"]
    status: Literal["pending", "succeeded", "failed", "dead"]
    attempts: int
    error: Optional[str] = None


class NotificationView(Open):
    kind: Literal["renewal_reminder", "stopped", "destruction_warning", "destroyed", "free_period_granted",
                  "free_period_denied", "arrears", "price_change"]
    at: str
    cause: str


class LedgerRowView(Open):
    at: str
    kind: str
    rule: str
    amount: Optional[int] = None
    cash: Optional[int] = None
    expires_at_before: Optional[str] = None
    expires_at_after: Optional[str] = None
    event_id: Optional[str] = None


StopReason = Literal["expired", "arrears", "violation", "security_incident", "terminated"]


class ServerView(Open):
    server_id: str
    account_id: str
    state: Literal["active", "stopped", "destroyed"]
    billing_mode: Literal["monthly", "payg", "trial"]
    plan_id: str
    region: str
    expires_at: Optional[str]
    stop_reason: Optional[StopReason]
    termination_reason: Optional[str]
    retain_until: Optional[str]
    free_period: Optional[FreePeriodView]
    cluster_actions: list[ClusterActionView]
    notifications: list[NotificationView]
    ledger: list[LedgerRowView]


class AccountView(Open):
    account_id: str
    balance: int
    in_arrears: bool
    violation: bool
    agreement_ended: bool
    servers: list[str]
    ledger: list[LedgerRowView]


class TerminateAnswer(BaseModel):
    server: ServerView
    refund: int


class DrainAnswer(Open):
    ran: int
    succeeded: int
    failed: int


class DeadLetter(BaseModel):
    id: str
    server_id: str
    kind: Literal["stop", "start", "destroy"]
    attempts: int
    error: Optional[str]


class DeadLetters(BaseModel):
    items: list[DeadLetter]


class SweepBody(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    now: Optional[Time] = Field(default=None, description="RFC 3339; honoured only where ALLOW_CLOCK_OVERRIDE=1")


class SweepAnswer(Open):
    now: str
