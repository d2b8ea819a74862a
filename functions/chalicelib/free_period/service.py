"""Filings and compensation tickets (R-FREE-1 … R-FREE-6): keeps each filing's history, decides at
acceptance and extends at once, in the transaction that records the ticket."""
from __future__ import annotations

from datetime import datetime

from ..billing import rules as billing_rules
from ..domain.records import FreePeriod, Server
from ..domain.types import TICKETING, event_cause
from ..errors import InvalidPayload, UnknownReference
from ..lifecycle import effects
from ..lifecycle import rules as life
from ..notify import outbox
from ..store import models as m
from ..store.session import Session
from ..timeutil import fmt, parse_rfc3339, store_key
from . import rules
from .payloads import (CompensationAccepted, CompensationRequested, FilingApproved, FilingRejected,
                       FilingSubmitted, FilingWithdrawn)


# ---- filings ------------------------------------------------------------------------------------
def _events(doc: dict) -> list[rules.FilingEvent]:
    return [rules.FilingEvent(e["kind"], parse_rfc3339(e["at"])) for e in doc.get("events", [])]


def _save_filing(s: Session, doc: dict) -> None:
    s.put_doc(m.FilingRow, doc["filing_id"], doc, server_id=doc["server_id"])


def filing_summary(doc: dict) -> dict:
    events = _events(doc)
    start, approved = rules.filing_clock_start(events), rules.approved_at(events)
    return {"filing_id": doc["filing_id"], "server_id": doc["server_id"], "clock_start": fmt(start),
            "approved_at": fmt(approved),
            "filing_days": rules.free_days(start, approved) if start and approved else None}


def filing_submitted(s: Session, event_id: str, p: FilingSubmitted) -> dict:
    """Starts the filing clock, or resumes it after a withdrawal or rejection (R-FREE-1)."""
    if s.server(p.server_id) is None:
        raise UnknownReference(f"server {p.server_id!r} is not known")
    doc = s.row_doc(m.FilingRow, p.filing_id)
    if doc is None:
        doc = {"filing_id": p.filing_id, "server_id": p.server_id, "website": p.website,
               "is_change": p.is_change, "events": []}
    elif doc["server_id"] != p.server_id:
        raise InvalidPayload(f"filing {p.filing_id!r} belongs to server {doc['server_id']!r}", ["data.server_id"])
    doc["events"].append({"kind": "submitted", "at": p.submitted_at.isoformat(), "event_id": event_id})
    _save_filing(s, doc)
    return filing_summary(doc)


def _record_filing_event(kind: str, field: str, s: Session, event_id: str, p) -> dict:
    """R-FREE-1: appends the event `kind` at the payload's `field` to the filing's history."""
    doc = s.row_doc(m.FilingRow, p.filing_id)
    if doc is None:
        raise UnknownReference(f"filing {p.filing_id!r} is not known")
    doc["events"].append({"kind": kind, "at": getattr(p, field).isoformat(), "event_id": event_id})
    _save_filing(s, doc)
    if kind == "approved" and not doc.get("is_change"):
        # kept on the server for R-FREE-2 (3), so a compensation needs no query of the filings
        s.note_filing_approval(doc["server_id"], doc["filing_id"], rules.approved_at(_events(doc)))
    return filing_summary(doc)


def filing_withdrawn(s: Session, event_id: str, p: FilingWithdrawn) -> dict:
    """R-FREE-1: records that the filing was withdrawn."""
    return _record_filing_event("withdrawn", "withdrawn_at", s, event_id, p)


def filing_rejected(s: Session, event_id: str, p: FilingRejected) -> dict:
    """R-FREE-1: records that the filing was rejected."""
    return _record_filing_event("rejected", "rejected_at", s, event_id, p)


def filing_approved(s: Session, event_id: str, p: FilingApproved) -> dict:
    """R-FREE-1: records that the filing was approved. E-13: only its first approval; another one is
    answered with the filing as it stands and changes nothing (nor the copy on the server row)."""
    doc = s.row_doc(m.FilingRow, p.filing_id)
    if doc is not None and rules.approved_at(_events(doc)) is not None:
        return filing_summary(doc)
    return _record_filing_event("approved", "approved_at", s, event_id, p)


# ---- compensation --------------------------------------------------------------------------------
def _other_first_filing_before(approvals: dict[str, str], filing: dict, approved: datetime | None) -> bool:
    """R-FREE-2 (3): another non-change filing of this server approved before this one (`approvals`:
    the latest approval of each of the server's non-change filings, kept on the server row)."""
    if approved is None:
        return False
    return any(filing_id != filing["filing_id"] and at < store_key(approved) for filing_id, at in approvals.items())


def _service_ended(server: Server, start: datetime | None, approved: datetime | None, at: datetime) -> bool:
    """R-FREE-2 (8), E-8: an expiry, refund, unsubscription, replacement or termination during the filing,
    even if the server was renewed later; or a termination or destruction at any time before `at`."""
    if start is None or approved is None:
        return False
    history = [(h.kind, h.at) for h in server.history]
    if server.expires_at is not None and server.billing_mode != "payg":
        history.append(("expired", server.expires_at))
    if server.destroyed_at is not None:
        history.append(("destroyed", server.destroyed_at))
    return rules.service_ended(history, start, approved, at)


def assess(server: Server, account_violation: bool, ticket: dict, filing: dict, at: datetime,
           approvals: dict[str, str]) -> dict:
    """R-FREE-1, R-FREE-2, R-FREE-5: the decision as of `at` (days included when eligible)."""
    events = [e for e in _events(filing) if e.at <= at]
    start, approved = rules.filing_clock_start(events), rules.approved_at(events)
    facts = rules.EligibilityFacts(
        application_server_id=ticket["server_id"], filing_server_id=filing["server_id"],
        # an approval with no submission before it (times out of order) approves no filing time
        filing_approved=approved is not None and start is not None, filing_is_change=bool(filing.get("is_change")),
        other_first_filing_approved_before=_other_first_filing_before(approvals, filing, approved),
        billing_mode=server.billing_mode, region=server.region,
        already_granted=server.free_period is not None and server.free_period.decision == "granted",
        service_ended=_service_ended(server, start, approved, at),
        account_violation=account_violation, server_violation="violation" in server.stop_reasons,
    )
    reason = rules.denial_reason(facts)
    if reason:
        return {"decision": "denied", "reason": reason}
    days = rules.free_days(start, approved)
    old_plan = billing_rules.plan_at(server.plan_history, start, server.plan_id)
    new_plan = billing_rules.plan_at(server.plan_history, approved, server.plan_id)
    return {"decision": "granted", "days": days, "old_plan": old_plan, "new_plan": new_plan, "approved_at": approved}


def _convert(s: Session, days: int, old_plan: str, new_plan: str, approved: datetime) -> int:
    """R-FREE-5: converted at the value of the plan in use at the filing's start (A→B→A is no change)."""
    if old_plan == new_plan:
        return days
    old = billing_rules.price_in_force(s.plan(old_plan), approved)
    new = billing_rules.price_in_force(s.plan(new_plan), approved)
    if old is None or new is None or new.monthly_price == 0:
        return days
    return rules.convert_days_for_upgrade(days, old.monthly_price, new.monthly_price)


def _load_for_ticket(s: Session, server_id: str, filing_id: str):
    server = s.server(server_id)
    if server is None:
        raise UnknownReference(f"server {server_id!r} is not known")
    filing = s.row_doc(m.FilingRow, filing_id)
    if filing is None:
        raise UnknownReference(f"filing {filing_id!r} is not known")
    return server, filing


def _decide(s: Session, server: Server, ticket: dict, filing: dict, at: datetime) -> dict:
    """R-FREE-2 with the account's violation flag (check 9) unread on a first try: the account is
    assumed clean, and where the verdict depends on it (all other checks passed) the transaction
    checks the account's flag; if it is set, the try is cancelled and the next one reads the account."""
    approvals = s.filing_approvals(server.server_id)
    if s.attempt == 0:
        verdict = assess(server, False, ticket, filing, at, approvals)
        if verdict["decision"] == "granted":
            s.expect(m.AccountRow, server.account_id, m.AccountRow.violation == False)  # noqa: E712
        return verdict
    account = s.account(server.account_id)
    return assess(server, bool(account and account.violation), ticket, filing, at, approvals)


def _seen(s: Session, server_id: str, filing_id: str) -> dict:
    """The server and filing rows as this request read them, kept on the ticket: the acceptance
    (whose payload names only the ticket) decides from them, with their versions checked at commit."""
    server_row, filing_row = s.rows(m.ServerRow, server_id), s.rows(m.FilingRow, filing_id)
    return {"server": {"doc": server_row.doc, "version": server_row.version,
                       "first_filing_approvals": sorted(server_row.first_filing_approvals or ())},
            "filing": {"doc": filing_row.doc, "version": filing_row.version}}


def _adopt_seen(s: Session, ticket: dict) -> bool:
    seen = ticket.get("seen")
    if not seen or s.attempt:
        return False
    server, filing = seen["server"], seen["filing"]
    s.adopt_row(m.ServerRow, ticket["server_id"], m.ServerRow(
        ticket["server_id"], account_id=server["doc"]["account_id"], plan_id=server["doc"]["plan_id"],
        state=server["doc"]["state"], doc=server["doc"], version=server["version"],
        first_filing_approvals=set(server["first_filing_approvals"]) or None))
    s.adopt_row(m.FilingRow, ticket["filing_id"], m.FilingRow(
        ticket["filing_id"], server_id=filing["doc"]["server_id"], doc=filing["doc"], version=filing["version"]))
    # the server is written with its seen version (a changed server cancels the transaction); the filing is checked
    s.expect(m.FilingRow, ticket["filing_id"], m.FilingRow.version == filing["version"])
    return True


def compensation_requested(s: Session, event_id: str, p: CompensationRequested) -> dict:
    """R-FREE-3: records the application; answers a preliminary decision."""
    existing = s.row_doc(m.TicketRow, p.ticket_id)
    if existing is not None:
        return {"ticket_id": p.ticket_id, "status": existing["status"], **existing.get("preliminary", {})}
    server, filing = _load_for_ticket(s, p.server_id, p.filing_id)
    ticket = {"ticket_id": p.ticket_id, "filing_id": p.filing_id, "server_id": p.server_id,
              "requested_at": p.requested_at.isoformat(), "status": "requested"}
    verdict = _decide(s, server, ticket, filing, p.requested_at)
    preliminary = {"decision": "eligible" if verdict["decision"] == "granted" else "denied"}
    if verdict["decision"] == "denied":
        preliminary["reason"] = verdict["reason"]
    else:
        preliminary["days"] = _convert(s, verdict["days"], verdict["old_plan"], verdict["new_plan"], verdict["approved_at"])
    ticket["preliminary"] = preliminary
    s.put_doc(m.TicketRow, p.ticket_id, {**ticket, "account_id": server.account_id,
                                         "seen": _seen(s, p.server_id, p.filing_id)})
    return {"ticket_id": p.ticket_id, "status": "requested", **preliminary}


def compensation_accepted(s: Session, event_id: str, p: CompensationAccepted) -> dict:
    """R-FREE-2 … R-FREE-6: decided at acceptance, extended at once, due within one working day;
    the server row's version makes repeated or concurrent applications grant at most once."""
    ticket = s.row_doc(m.TicketRow, p.ticket_id)
    if ticket is None:
        raise UnknownReference(f"ticket {p.ticket_id!r} is not known")
    if ticket.get("decision"):
        return ticket["decision"]
    if not _adopt_seen(s, ticket):
        s.prefetch(server_id=ticket["server_id"], filing_id=ticket["filing_id"],  # one read for all three
                   account_id=ticket.get("account_id"))
    server, filing = _load_for_ticket(s, ticket["server_id"], ticket["filing_id"])
    due = rules.due_by(p.accepted_at)
    verdict = _decide(s, server, ticket, filing, p.accepted_at)
    if verdict["decision"] == "denied":
        outcome = {"decision": "denied", "reason": verdict["reason"], "due_by": fmt(due)}
        if not (server.free_period and server.free_period.decision == "granted"):
            server.free_period = FreePeriod(decision="denied", reason=verdict["reason"], due_by=due,
                                            ticket_id=p.ticket_id)
        outbox.record(s, kind="free_period_denied", account_id=server.account_id, server_id=server.server_id,
                      cause=f"free_period#{p.ticket_id}", at=p.accepted_at, details={"reason": verdict["reason"]})
    else:
        days = _convert(s, verdict["days"], verdict["old_plan"], verdict["new_plan"], verdict["approved_at"])
        before = server.expires_at
        server.free_period = FreePeriod(decision="granted", days=days, due_by=due, granted_at=p.accepted_at,
                                        ticket_id=p.ticket_id)
        effects.move_expiry(s, server, life.add_free_days(before, days), p.accepted_at,
                            event_cause(TICKETING, event_id))
        effects.ledger(s, server, server.account_id, at=p.accepted_at, kind="free_period", rule="R-FREE-4",
                       cause=event_cause(TICKETING, event_id), event_id=event_id, expires_at_before=before,
                       expires_at_after=server.expires_at, note=f"{days} free days, no cash value (R-PAY-9)")
        outbox.record(s, kind="free_period_granted", account_id=server.account_id, server_id=server.server_id,
                      cause=f"free_period#{p.ticket_id}", at=p.accepted_at,
                      details={"days": days, "expires_at": fmt(server.expires_at)})
        outcome = {"decision": "granted", "days": days, "expires_at": fmt(server.expires_at),
                   "due_by": fmt(due), "granted_at": fmt(p.accepted_at)}
    ticket.pop("seen", None)
    ticket.update(status="decided", engineer_id=p.engineer_id, accepted_at=p.accepted_at.isoformat(),
                  decision=outcome)
    s.put_doc(m.TicketRow, p.ticket_id, ticket)
    effects.save_server(s, server)
    return outcome
