"""Shapes of the answers (integration §1–§2) as pydantic models: the OpenAPI document is generated from
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
    status: Literal["recorded", "sent"]  # integration §6: sent once published to the topic
    notification_id: str  # the message attribute a subscriber drops repeats by


class LedgerRowView(Open):
    at: str
    kind: str
    rule: str
    amount: Optional[int] = None
    cash: Optional[int] = None
    expires_at_before: Optional[str] = None
    expires_at_after: Optional[str] = None
    event_id: Optional[str] = None


class AuditEntryView(Open):
    """An operator change (integration §6): the body's fields (reason, note, flag, prices, …) follow."""
    at: str
    action: str = Field(description="suspend, resume, terminate, violation, price_version, sweep_expiry, "
                                    "sweep_metering, drain_cluster_actions, replay_dead_letter, …")
    actor: str = Field(description="the token's name (`operator` for a plain token), or the caller's IAM ARN")


Cursor = Optional[str]
CURSOR = Field(default=None, description="opaque; pass as ?before= to the list's page route for the 100 "
                                         "entries before these; null when there are none")


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
    cluster_actions_next: Cursor = CURSOR
    notifications: list[NotificationView]
    notifications_next: Cursor = CURSOR
    ledger: list[LedgerRowView]
    ledger_next: Cursor = CURSOR
    audit: list[AuditEntryView]
    audit_next: Cursor = CURSOR


class AccountView(Open):
    account_id: str
    balance: int
    in_arrears: bool
    violation: bool
    agreement_ended: bool
    server_count: int = Field(description="all the account's servers; `servers` holds the latest 100")
    servers: list[str]
    servers_next: Cursor = CURSOR
    notifications: list[NotificationView]
    notifications_next: Cursor = CURSOR
    ledger: list[LedgerRowView]
    ledger_next: Cursor = CURSOR
    audit: list[AuditEntryView]
    audit_next: Cursor = CURSOR


class LedgerPage(BaseModel):
    items: list[LedgerRowView]
    next: Cursor


class NotificationPage(BaseModel):
    items: list[NotificationView]
    next: Cursor


class ClusterActionPage(BaseModel):
    items: list[ClusterActionView]
    next: Cursor


class AuditPage(BaseModel):
    items: list[AuditEntryView]
    next: Cursor


class ServerIdPage(BaseModel):
    items: list[str]
    next: Cursor


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
    next: Optional[str] = None


class SweepBody(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    now: Optional[Time] = Field(default=None, description="RFC 3339; honoured only where ALLOW_CLOCK_OVERRIDE=1")


class SweepAnswer(Open):
    now: str


# ---- the operators' lists (GET /ops/lists/{name}, GET /ops/dead-letters) ------------------------------
class ListPage(BaseModel):
    next: Optional[str] = Field(description="opaque cursor of the next page (pass it as `cursor`); null at the end")


class ExpiringServer(BaseModel):
    server_id: str
    account_id: str
    plan_id: str
    expires_at: str


class ExpiringList(ListPage):
    items: list[ExpiringServer]
    until: str = Field(description="the list holds active servers whose expiry is at or before this time")


class AwaitingServer(BaseModel):
    server_id: str
    account_id: str
    plan_id: str
    retain_until: str


class AwaitingDestructionList(ListPage):
    items: list[AwaitingServer]


class ArrearsAccount(BaseModel):
    account_id: str
    balance: int = Field(description="fen, below zero")


class ArrearsList(ListPage):
    items: list[ArrearsAccount]


class Grant(BaseModel):
    server_id: str
    account_id: str
    days: Optional[int]
    granted_at: str
    ticket_id: Optional[str]


class GrantsList(ListPage):
    items: list[Grant]
    month: str
