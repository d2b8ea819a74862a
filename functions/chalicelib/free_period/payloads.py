"""Ticketing system payloads (integration §1, /webhooks/ticketing)."""
from __future__ import annotations

from pydantic import Field

from ..domain.types import Id, Payload, Time


class FilingSubmitted(Payload):
    filing_id: Id
    server_id: Id
    website: str = Field(min_length=1, max_length=2000)
    is_change: bool
    submitted_at: Time


class FilingWithdrawn(Payload):
    filing_id: Id
    withdrawn_at: Time


class FilingRejected(Payload):
    filing_id: Id
    rejected_at: Time


class FilingApproved(Payload):
    filing_id: Id
    approved_at: Time


class CompensationRequested(Payload):
    ticket_id: Id
    filing_id: Id
    server_id: Id
    requested_at: Time


class CompensationAccepted(Payload):
    ticket_id: Id
    engineer_id: Id
    accepted_at: Time
