"""The event types each sender may post, with what to read up front and which service applies them.
Models and services are named, not imported: a cold start loads only the delivered type's modules."""
from __future__ import annotations

from .delivery import EventType

PAYMENT_EVENTS = {
    "order.paid": EventType(
        "billing.payloads:OrderPaid",
        lambda p: {"server_id": p.server_id, "account_id": p.account_id, "order_id": p.order_id,
                   "plan_id": p.plan_id},
        "billing.payments:order_paid"),
    "order.refunded": EventType(
        "billing.payloads:OrderRefunded",
        lambda p: {"server_id": p.server_id, "account_id": p.account_id, "order_id": p.order_id},
        "billing.payments:order_refunded"),
    "account.topped_up": EventType(
        "billing.payloads:AccountToppedUp", lambda p: {"account_id": p.account_id},
        "billing.payments:account_topped_up"),
}

TICKETING_EVENTS = {
    "filing.submitted": EventType(
        "free_period.payloads:FilingSubmitted", lambda p: {"filing_id": p.filing_id, "server_id": p.server_id},
        "free_period.service:filing_submitted"),
    "filing.withdrawn": EventType("free_period.payloads:FilingWithdrawn", lambda p: {"filing_id": p.filing_id},
                                  "free_period.service:filing_withdrawn"),
    "filing.rejected": EventType("free_period.payloads:FilingRejected", lambda p: {"filing_id": p.filing_id},
                                 "free_period.service:filing_rejected"),
    "filing.approved": EventType("free_period.payloads:FilingApproved", lambda p: {"filing_id": p.filing_id},
                                 "free_period.service:filing_approved"),
    "compensation.requested": EventType(
        "free_period.payloads:CompensationRequested",
        lambda p: {"ticket_id": p.ticket_id, "filing_id": p.filing_id, "server_id": p.server_id},
        "free_period.service:compensation_requested"),
    "compensation.accepted": EventType(
        "free_period.payloads:CompensationAccepted", lambda p: {"ticket_id": p.ticket_id},
        "free_period.service:compensation_accepted"),
}
