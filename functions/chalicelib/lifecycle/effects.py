"""What follows a lifecycle decision inside one unit of work: the server row with its index keys,
the cluster action, the notification and the ledger row (R-LIFE-1 … R-LIFE-7, R-CLU-4, R-NOTE-1)."""
from __future__ import annotations

from datetime import datetime

from ..billing import rules as billing_rules
from ..clusters import queue as cluster_queue
from ..domain.records import Account, HistoryEvent, LedgerRow, Server
from ..errors import InvalidPayload
from ..notify import outbox
from ..store.session import Session
from ..timeutil import fmt, store_key
from . import rules


def save_server(s: Session, server: Server) -> None:
    """Persist with the keys of the sweep's due index and the metering index kept in step."""
    rules.refresh(server)
    beyond = rules.unstorable(server)
    if beyond:  # the whole unit of work is dropped: nothing changes (integration §6)
        raise InvalidPayload(f"this change would put the server's {beyond} outside 2000-01-01 .. 2199-12-31",
                             [beyond.split()[-1]])
    meter_at = None
    if server.billing_mode == "payg" and server.state != "destroyed":
        meter_at = billing_rules.next_unbilled_hour(server.payg_segments)
    s.put_server(server, due_at=rules.next_due(server), meter_at=meter_at)


def ledger(s: Session, server: Server | None, account_id: str, *, at: datetime, kind: str, rule: str,
           cause: str, event_id: str | None = None, **fields) -> None:
    s.add_ledger(LedgerRow(at=at, kind=kind, rule=rule, account_id=account_id,
                           server_id=server.server_id if server else None, cause=cause,
                           event_id=event_id, **fields))


def stop(s: Session, server: Server, reason: str, at: datetime, cause: str) -> bool:
    """Add a stop reason (R-LIFE-2); when the server goes from active to stopped, its cluster is
    stopped (R-CLU-1), pay-as-you-go hours stop (R-PAY-6) and the account is told (R-NOTE-1)."""
    retain_before = server.retain_until
    went_stopped = rules.add_reason(server, reason, at)
    if reason in ("expired", "terminated"):
        server.history.append(HistoryEvent(kind=reason, at=at))
    if went_stopped:
        billing_rules.close_segment(server.payg_segments, at)
        cluster_queue.request(s, server.server_id, "stop", at, cause)
        server.stop_noted_for = rules.stop_notice(server)
        outbox.record(s, kind="stopped", account_id=server.account_id, server_id=server.server_id,
                      cause=f"stopped#{reason}#{store_key(at)}#{cause}", at=at,  # trigger included: see arrears
                      details={"reason": rules.strongest_reason(server.stop_reasons),
                               "retain_until": fmt(server.retain_until)})
    else:
        note_destruction_date(s, server, retain_before, at, cause)
    return went_stopped


def lift(s: Session, server: Server, reason: str, at: datetime, cause: str) -> bool:
    """Lift one reason (R-LIFE-2b); when nothing holds any more the cluster starts again (R-CLU-2)."""
    retain_before = server.retain_until
    went_active = rules.lift_reason(server, reason, at)
    if went_active:
        if server.billing_mode == "payg":
            billing_rules.open_segment(server.payg_segments, at)
        cluster_queue.request(s, server.server_id, "start", at, cause)
    else:
        note_destruction_date(s, server, retain_before, at, cause)
    return went_active


def move_expiry(s: Session, server: Server, expires_at: datetime, at: datetime, cause: str) -> None:
    """R-FREE-4, E-5: a new end for the server; one after `at` lifts `expired`, a still-past one moves
    the retention of a server stopped as expired (and the account is told the new date, E-11)."""
    retain_before = server.retain_until
    if rules.move_expiry(server, expires_at, at):
        lift(s, server, "expired", at, cause)
    else:
        note_destruction_date(s, server, retain_before, at, cause)


def note_destruction_date(s: Session, server: Server, retain_before: datetime | None, at: datetime,
                          cause: str) -> None:
    """E-11 (R-NOTE-1): a stopped server whose destruction date appeared or changed without a stop (a
    termination under a hold, a hold lifted, free days moving an expired server's end) is owed a
    `stopped` notification with the strongest reason and the date, once per reason and date."""
    notice = rules.destruction_date_notice(server, retain_before)
    if notice is None:
        return
    server.stop_noted_for = notice
    # the trigger is in the cause, as for a stop: a date told once, then another, may come back later
    outbox.record(s, kind="stopped", account_id=server.account_id, server_id=server.server_id,
                  cause=f"stopped#until#{notice}#{cause}", at=at,
                  details={"reason": rules.strongest_reason(server.stop_reasons),
                           "retain_until": fmt(server.retain_until)})


def destroy(s: Session, server: Server, at: datetime, cause: str) -> None:
    """R-LIFE-4: data deleted (R-CLU-3), the server never comes back."""
    if "terminated" not in server.stop_reasons:  # a terminated server was counted when it closed
        account = s.account(server.account_id)
        if account is not None:
            close(account, server)
            s.put_account(account)
    server.destroyed_at = at
    rules.refresh(server)
    cluster_queue.request(s, server.server_id, "destroy", at, cause)
    outbox.record(s, kind="destroyed", account_id=server.account_id, server_id=server.server_id,
                  cause=f"destroyed#{store_key(at)}", at=at)


def terminate(s: Session, server: Server, account: Account, at: datetime, termination_reason: str,
              cause: str) -> None:
    """R-LIFE-5: terminated now; the account's agreement ends when all its servers are closed."""
    server.termination_reason = termination_reason
    close(account, server)
    if termination_reason in ("unsubscribed", "replaced"):
        server.history.append(HistoryEvent(kind=termination_reason, at=at))
    stop(s, server, "terminated", at, cause)


def close(account: Account, server: Server) -> None:
    """E-10: count a server leaving service (terminated, or destroyed without being terminated) on its
    account, so `Account.agreement_ended` needs none of the account's other servers. Called once per
    server: its own row's version check in the same transaction keeps a second close from committing."""
    account.servers_closed += 1
