"""Payment gateway payloads (integration §1, /webhooks/payments)."""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field

from ..domain.types import Id, Payload, Time

Fen = Field(ge=0, le=10**12)


class OrderPaid(Payload):
    order_id: Id
    account_id: Id
    server_id: Id
    kind: Literal["new", "renewal", "upgrade"]
    paid_at: Time
    amount: int = Fen
    currency: Literal["CNY"]
    billing_mode: Optional[Literal["monthly", "payg", "trial"]] = None
    plan_id: Optional[Id] = None
    region: Optional[str] = Field(default=None, min_length=1, max_length=64)
    months: Optional[int] = Field(default=None, ge=1, le=36)

    def missing_fields(self) -> list[str]:
        """Fields the contract requires for this kind (and billing mode)."""
        need = {"new": ["billing_mode", "plan_id", "region"], "renewal": ["months"], "upgrade": ["plan_id"]}[self.kind]
        if self.kind == "new" and self.billing_mode in ("monthly", "trial"):
            need.append("months")
        return [f for f in need if getattr(self, f) is None]


class OrderRefunded(Payload):
    order_id: Id
    account_id: Id
    server_id: Id
    amount: int = Fen
    refunded_at: Time


class AccountToppedUp(Payload):
    account_id: Id
    amount: int = Field(gt=0, le=10**12)
    topped_up_at: Time
