"""The event types each sender may post, with what to read up front and which service applies them."""
from __future__ import annotations

from ..billing import payments
from ..billing.payloads import AccountToppedUp, OrderPaid, OrderRefunded
from ..free_period import service as free
from ..free_period.payloads import (
    CompensationAccepted, CompensationRequested, FilingApproved, FilingRejected, FilingSubmitted,
    FilingWithdrawn,
)
from .delivery import EventType

PAYMENT_EVENTS = {
    "order.paid": EventType(
        OrderPaid,
        lambda p: {"server_id": p.server_id, "account_id": p.account_id, "order_id": p.order_id,
                   "plan_id": p.plan_id},
        payments.order_paid),
    "order.refunded": EventType(
        OrderRefunded,
        lambda p: {"server_id": p.server_id, "account_id": p.account_id, "order_id": p.order_id},
        payments.order_refunded),
    "account.topped_up": EventType(
        AccountToppedUp, lambda p: {"account_id": p.account_id}, payments.account_topped_up),
}

TICKETING_EVENTS = {
    "filing.submitted": EventType(
        FilingSubmitted, lambda p: {"filing_id": p.filing_id, "server_id": p.server_id}, free.filing_submitted),
    "filing.withdrawn": EventType(FilingWithdrawn, lambda p: {"filing_id": p.filing_id}, free.filing_withdrawn),
    "filing.rejected": EventType(FilingRejected, lambda p: {"filing_id": p.filing_id}, free.filing_rejected),
    "filing.approved": EventType(FilingApproved, lambda p: {"filing_id": p.filing_id}, free.filing_approved),
    "compensation.requested": EventType(
        CompensationRequested,
        lambda p: {"ticket_id": p.ticket_id, "filing_id": p.filing_id, "server_id": p.server_id},
        free.compensation_requested),
    "compensation.accepted": EventType(
        CompensationAccepted, lambda p: {"ticket_id": p.ticket_id}, free.compensation_accepted),
}
