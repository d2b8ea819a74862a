"""Ticketing system payloads (CONTRACT §1, /webhooks/ticketing)."""
from __future__ import annotations

from pydantic import Field

from ..webhooks.envelope import Payload, Time

Id = Field(min_length=1, max_length=200)


class FilingSubmitted(Payload):
    filing_id: str = Id
    server_id: str = Id
    website: str = Field(min_length=1, max_length=2000)
    is_change: bool
    submitted_at: Time


class FilingWithdrawn(Payload):
    filing_id: str = Id
    withdrawn_at: Time


class FilingRejected(Payload):
    filing_id: str = Id
    rejected_at: Time


class FilingApproved(Payload):
    filing_id: str = Id
    approved_at: Time


class CompensationRequested(Payload):
    ticket_id: str = Id
    filing_id: str = Id
    server_id: str = Id
    requested_at: Time


class CompensationAccepted(Payload):
    ticket_id: str = Id
    engineer_id: str = Id
    accepted_at: Time
