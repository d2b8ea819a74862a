"""The records the rules reason about: small pydantic types, no I/O (stored as JSON documents by `store/`)."""
from __future__ import annotations


from typing import Literal, Optional

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

BillingMode = Literal["monthly", "payg", "trial"]
State = Literal["active", "stopped", "destroyed"]


class Record(BaseModel):
    # built on first use, not at import: a webhook's cold start builds only the records it touches
    model_config = ConfigDict(extra="ignore", validate_assignment=False, defer_build=True)


class PriceVersion(Record):
    monthly_price: int
    hourly_price: int
    effective_from: AwareDatetime


class Plan(Record):
    plan_id: str
    versions: list[PriceVersion] = Field(default_factory=list)


class PlanPrices(Record):
    """A copy of a plan's price versions kept on its server (the renewal price, R-PAY-2, without
    reading the plan); `stamp` is the plan record's version it was copied at, checked at commit."""
    plan_id: str
    versions: list[PriceVersion] = Field(default_factory=list)
    stamp: int


class Period(Record):
    """One paid period [start, end) bought by a new or renewal order (R-LIFE-5)."""
    order_id: str
    start: AwareDatetime
    end: AwareDatetime
    amount: int
    monthly_price: int
    months: int
    refunded: bool = False


class PlanUse(Record):
    plan_id: str
    since: AwareDatetime


class HistoryEvent(Record):
    """Service-ending events kept for the free-period check (R-FREE-2 (8))."""
    kind: str
    at: AwareDatetime


class PaygSegment(Record):
    """R-PAY-6: an hour grid [anchor + k h, anchor + (k+1) h) while the server runs; `end` is the stop
    time (hours starting at or after it are never charged); `charged` counts the hours billed."""
    anchor: AwareDatetime
    end: Optional[AwareDatetime] = None
    charged: int = 0


class FreePeriod(Record):
    decision: Literal["granted", "denied"]
    days: Optional[int] = None
    reason: Optional[str] = None
    due_by: Optional[AwareDatetime] = None
    granted_at: Optional[AwareDatetime] = None
    ticket_id: Optional[str] = None


class Server(Record):
    server_id: str
    account_id: str
    billing_mode: BillingMode
    plan_id: str
    region: str
    state: State = "active"
    service_start: AwareDatetime
    expires_at: Optional[AwareDatetime] = None
    stop_reasons: dict[str, AwareDatetime] = Field(default_factory=dict)
    termination_reason: Optional[str] = None
    hold_lifted_at: Optional[AwareDatetime] = None
    retain_until: Optional[AwareDatetime] = None
    reminded_for: Optional[AwareDatetime] = None
    warned_for: Optional[AwareDatetime] = None
    stop_noted_for: Optional[str] = None  # E-11: the "reason#retain_until" last told in a `stopped` notification
    destroyed_at: Optional[AwareDatetime] = None
    periods: list[Period] = Field(default_factory=list)
    plan_history: list[PlanUse] = Field(default_factory=list)
    history: list[HistoryEvent] = Field(default_factory=list)
    payg_segments: list[PaygSegment] = Field(default_factory=list)
    free_period: Optional[FreePeriod] = None
    plan_prices: Optional[PlanPrices] = None


class Settlement(Record):
    """R-PAY-7 at volume: the balance crossed zero at `at` and some payg servers of the account may not
    match it yet (moved in follow-up transactions; the sparse `by_settle` index lists such accounts)."""
    at: AwareDatetime
    cause: str


class Account(Record):
    """The account's own state only: its servers are found through the servers table's `by_account`
    index, never listed here, so the item stays the same size whatever the account's history
    (integration §7 "Nothing grows without bound"). Two counters keep what the lists gave exactly:
    servers ever opened and servers closed (terminated or destroyed, R-LIFE-5), so E-10 is decided
    on this row alone and a concurrent close or order fails its version check instead of racing."""
    account_id: str
    balance: int = 0
    violation: bool = False
    servers_opened: int = 0
    servers_closed: int = 0
    settlement: Optional[Settlement] = None

    @model_validator(mode="before")
    @classmethod
    def _from_lists(cls, data):
        """Rows stored before the counters listed their servers' ids: count those lists once."""
        if isinstance(data, dict) and "servers_opened" not in data and "server_ids" in data:
            opened = set(data.get("server_ids") or ())
            data = {**data, "servers_opened": len(opened),
                    "servers_closed": len(opened & set(data.get("closed_server_ids") or ()))}
        return data

    @property
    def in_arrears(self) -> bool:
        """R-PAY-7: negative balance."""
        return self.balance < 0

    @property
    def agreement_ended(self) -> bool:
        """E-10 (R-LIFE-5, T7.3.2): ended when the account has had servers and none remains in service
        (each terminated or destroyed), whichever closed last."""
        return self.servers_opened > 0 and self.servers_closed >= self.servers_opened


class Order(Record):
    order_id: str
    account_id: str
    server_id: Optional[str] = None
    kind: str
    amount: int
    at: AwareDatetime
    months: Optional[int] = None
    plan_id: Optional[str] = None
    status: Literal["applied", "held_for_review", "refunded"]
    reason: Optional[str] = None
    refunded_amount: int = 0


class LedgerRow(Record):
    """R-LIFE-7: one change of money or service time. `amount` is the balance delta (absent when the
    balance does not move); `cash` is money that moved through the gateway (orders, gateway refunds)."""
    at: AwareDatetime
    kind: str
    rule: str
    account_id: str
    server_id: Optional[str] = None
    amount: Optional[int] = None
    cash: Optional[int] = None
    balance_before: Optional[int] = None
    balance_after: Optional[int] = None
    expires_at_before: Optional[AwareDatetime] = None
    expires_at_after: Optional[AwareDatetime] = None
    event_id: Optional[str] = None
    cause: str
    hours: Optional[int] = None
    note: Optional[str] = None


class Notification(Record):
    target: str
    cause: str
    kind: str
    at: AwareDatetime
    account_id: str
    server_id: Optional[str] = None
    details: dict = Field(default_factory=dict)


class AuditEntry(Record):
    """One operator change (integration §6): who (`actor`), what (`action`), when, and the body's fields."""
    target: str
    at: AwareDatetime
    action: str
    actor: str
    fields: dict = Field(default_factory=dict)


class ClusterAction(Record):
    action_id: str
    server_id: str
    kind: Literal["stop", "start", "destroy"]
    status: Literal["pending", "succeeded", "failed", "dead"] = "pending"
    attempts: int = 0
    error: Optional[str] = None
    created_at: AwareDatetime
    cause: str


__all__ = [
    "Account", "AuditEntry", "ClusterAction", "FreePeriod", "HistoryEvent", "LedgerRow", "Notification",
    "Order", "PaygSegment", "Period", "Plan", "PlanPrices", "PlanUse", "PriceVersion", "Server", "Settlement",
]
