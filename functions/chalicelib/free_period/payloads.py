"""Ticketing system payloads (CONTRACT §1, /webhooks/ticketing)."""
from __future__ import annotations

from pydantic import AwareDatetime, Field

from ..webhooks.envelope import Payload

Id = Field(min_length=1, max_length=200)


class FilingSubmitted(Payload):
    filing_id: str = Id
    server_id: str = Id
    website: str = Field(min_length=1, max_length=2000)
    is_change: bool
    submitted_at: AwareDatetime


class FilingWithdrawn(Payload):
    filing_id: str = Id
    withdrawn_at: AwareDatetime


class FilingRejected(Payload):
    filing_id: str = Id
    rejected_at: AwareDatetime


class FilingApproved(Payload):
    filing_id: str = Id
    approved_at: AwareDatetime


class CompensationRequested(Payload):
    ticket_id: str = Id
    filing_id: str = Id
    server_id: str = Id
    requested_at: AwareDatetime


class CompensationAccepted(Payload):
    ticket_id: str = Id
    engineer_id: str = Id
    accepted_at: AwareDatetime
