"""The account's money: the balance, its ledger rows with before/after balances (R-LIFE-7, balance =
sum of the ledger) and the arrears crossing (R-PAY-7) over any number of servers. Payments, metering
and the operators' actions all change money through here."""
from __future__ import annotations

import logging
from datetime import datetime
from typing import Callable, Iterable

from ..domain.records import Account, Server, Settlement
from ..errors import ConcurrentUpdate
from ..lifecycle import effects
from ..notify import outbox
from ..store import session as store
from ..store import unit
from ..store.session import Session
from ..timeutil import store_key
from . import rules

log = logging.getLogger(__name__)

# A crossing that moves at most this many servers is settled inside the change's own transaction
# (3 items a server: the row, its cluster action, its notification, leaving room for the change).
INLINE_MOVES = 20
# Follow-up transactions: the account's version check + 3 items a server <= 100 items (DynamoDB's limit).
SETTLE_CHUNK = 32
SETTLE_ATTEMPTS = 5
# The part of a call's time its follow-up may use before background work takes the rest over (of the
# 20 s route budget, background.ROUTE_BUDGET_SECONDS, the change itself has used a little).
FOLLOW_UP_SECONDS = 12.0


class ServersStuck(Exception):
    """Servers whose move failed alone, after the account's other servers were moved."""


class Work:
    """The records one change touches, saved once at the end.

    `settle_inline`: how many servers an arrears crossing may move inside this change's transaction
    (more are left to follow-up transactions). `settle_after_commit`: whether those follow-ups run
    as soon as the change commits (a webhook or an operator call answers only after them); metering
    runs them itself, under its own time limit."""

    def __init__(self, s: Session, event_id: str | None, cause: str, *, settle_inline: int = INLINE_MOVES,
                 settle_after_commit: bool = True):
        self.s, self.event_id, self.cause = s, event_id, cause
        self.settle_inline, self.settle_after_commit = settle_inline, settle_after_commit
        self.servers: dict[str, Server] = {}
        self._as_read: dict[str, Server] = {}
        self.account: Account | None = None
        self._account_as_read: Account | None = None  # None: not stored yet, or not read through load_account
        self.new_servers = 0  # servers this change opens on the account (E-10 counter)
        self._arrears_at: datetime | None = None

    def server(self, server_id: str) -> Server | None:
        if server_id not in self.servers:
            found = self.s.server(server_id)
            if found is None:
                return None
            self._keep(found)
        return self.servers[server_id]

    def servers_of(self, server_ids: Iterable[str]) -> list[Server]:
        """Many servers at once (BatchGetItem), in the order given; unknown ids are skipped."""
        server_ids = list(server_ids)
        missing = [sid for sid in server_ids if sid not in self.servers]
        for found in self.s.servers(missing).values():
            if found is not None:
                self._keep(found)
        return [self.servers[sid] for sid in server_ids if sid in self.servers]

    def _keep(self, server: Server) -> None:
        self.servers[server.server_id] = server
        self._as_read[server.server_id] = server.model_copy(deep=True)

    def ledger(self, server: Server | None, *, at: datetime, kind: str, rule: str, **fields) -> None:
        effects.ledger(self.s, server, self.account.account_id, at=at, kind=kind, rule=rule,
                       cause=self.cause, event_id=self.event_id, **fields)

    def save(self) -> None:
        """Write the servers and the account that changed (an unchanged row only costs a conflict with
        others). New servers on an account this change leaves as it was are counted without rewriting
        it, so orders on a busy account do not race its top-ups or each other."""
        for server_id, server in self.servers.items():
            if self._as_read.get(server_id) != server:
                effects.save_server(self.s, server)
        account = self.account
        if account is None:
            return
        if self._arrears_at is not None and account.in_arrears:
            # issue 17: the balance the account ends this change with, not the one at the crossing
            outbox.record(self.s, kind="arrears", account_id=account.account_id, at=self._arrears_at,
                          cause=f"arrears#{store_key(self._arrears_at)}#{self.cause}",
                          details={"balance": account.balance})
        if account == self._account_as_read:
            if self.new_servers:
                self.s.count_new_server(account)
            return
        account.servers_opened += self.new_servers
        self.s.put_account(account)
        if account.settlement is not None and self.settle_after_commit:
            account_id = account.account_id
            self.s.follow_ups.append(lambda: _follow_up(account_id))


def load_account(w: Work, account_id: str) -> Account:
    """The account, or a new one (written with the change: accounts are created on first sight)."""
    stored = w.s.account(account_id)
    w.account = stored or Account(account_id=account_id)
    w._account_as_read = stored.model_copy(deep=True) if stored is not None else None
    return w.account


def change_balance(w: Work, delta: int, at: datetime, *, kind: str, rule: str, server: Server | None = None,
                   **fields) -> None:
    """R-LIFE-7: every balance change is a ledger row with before and after; R-PAY-7 follows."""
    account = w.account
    before = account.balance
    account.balance += delta
    w.ledger(server, at=at, kind=kind, rule=rule, amount=delta, balance_before=before,
             balance_after=account.balance, **fields)
    settle_arrears(w, before, at)


def settle_arrears(w: Work, balance_before: int, at: datetime) -> None:
    """R-PAY-7: in arrears, the account's payg servers are suspended; back to >= 0, the ones suspended
    for arrears are lifted (other reasons stay, R-LIFE-2b). Only a crossing of zero moves servers.
    The crossing is recorded on the account (`settlement`); the servers move here when few enough,
    else in follow-up transactions, and the record is cleared once every server matches."""
    account = w.account
    if not rules.crossed_zero(balance_before, account.balance):
        return  # the servers already match the account (read none of them)
    if account.in_arrears and w._arrears_at is None:
        # recorded by save() with the balance the change ends with; the trigger is in the cause: the
        # balance may cross zero twice at one instant (a top-up and a refund at the same time), and a
        # repeated cause would cancel the second change for ever
        w._arrears_at = at
    account.settlement = Settlement(at=at, cause=w.cause)
    if not w.settle_inline:
        return
    # the index cannot hold a server this change creates: those are in the unit of work already
    ids = _candidates(account) + [sid for sid, sv in w.servers.items() if sv.account_id == account.account_id]
    servers = w.servers_of(dict.fromkeys(ids))
    moves = [sv for sv in servers if rules.arrears_step(account.in_arrears, sv)]
    if len(moves) <= w.settle_inline:
        for server in moves:
            _move(w.s, account.in_arrears, server, at, w.cause)
        account.settlement = None


def _move(s: Session, in_arrears: bool, server: Server, at: datetime, cause: str) -> None:
    if rules.arrears_step(in_arrears, server) == "suspend":
        effects.stop(s, server, "arrears", at, cause)
    else:
        effects.lift(s, server, "arrears", at, cause)


def _candidates(account: Account) -> list[str]:
    """The account's servers that may not match its side of zero, from what the by_account index
    projects (the rows are read and decided exactly afterwards)."""
    return [row.server_id for row in store.account_servers(account.account_id)
            if rules.may_move(account.in_arrears, row.state, row.billing_mode, row.arrears_held)]


def settle_pending(account_id: str, should_stop: Callable[[], bool] | None = None) -> bool:
    """Move every server of the account to its side of zero, SETTLE_CHUNK servers a transaction, then
    clear the pending record. Each step only moves servers that do not match yet, so it is safe to
    repeat; every transaction checks the account's version, so a change of the balance meanwhile is
    seen and the settlement decided again on fresh reads. A server that cannot be moved even alone
    never holds the others back (issue 17): they are moved, the record stays pending for the next run
    and ServersStuck names it. Returns False when `should_stop` cut it off (the record stays, so
    background work, the next metering run or a redelivery finishes it)."""
    stuck: set[str] = set()
    for _attempt in range(SETTLE_ATTEMPTS):
        base = Session()
        account = base.account(account_id)
        if account is None or account.settlement is None:
            return True
        servers = base.servers(_candidates(account))
        moves = [sid for sid, sv in servers.items()
                 if sid not in stuck and sv is not None and rules.arrears_step(account.in_arrears, sv)]
        try:
            for part in rules.chunked(moves, SETTLE_CHUNK):
                if should_stop and should_stop():
                    return False
                stuck |= _settle_part(base, account, part)
            if stuck:
                raise ServersStuck(f"account {account_id}: servers {sorted(stuck)} could not be moved "
                                   "after the arrears crossing; the settlement stays pending")
            _commit(base, account, lambda s: s.put_account(account.model_copy(update={"settlement": None})))
            return True
        except ConcurrentUpdate:
            log.info("account %s changed during its arrears settlement; reading it again", account_id)
    raise ConcurrentUpdate(f"account {account_id} kept changing during its arrears settlement")


def _settle_part(base: Session, account: Account, server_ids: list[str]) -> set[str]:
    """Move these servers in one transaction checked against the account's version; if that fails
    for any reason but a concurrent change, each server alone. Returns the ones that failed alone."""
    settlement = account.settlement

    def stage(s: Session) -> None:
        s.carry(base, "server", server_ids)
        for server_id in server_ids:
            server = s.server(server_id)
            _move(s, account.in_arrears, server, settlement.at, settlement.cause)
            effects.save_server(s, server)
        s.expect_unchanged("account", account.account_id)

    try:
        _commit(base, account, stage)
        return set()
    except ConcurrentUpdate:
        raise
    except Exception:  # noqa: BLE001 - one server's fault must not stop the account's settlement
        if len(server_ids) == 1:
            log.exception("server %s of account %s could not be moved", server_ids[0], account.account_id)
            return set(server_ids)
    return set().union(*(_settle_part(base, account, [sid]) for sid in server_ids))


def _commit(base: Session, account: Account, stage: Callable[[Session], None]) -> None:
    s = Session()
    s.carry(base, "account", [account.account_id])
    stage(s)
    s.commit()
    unit.after_commit(s)


def _follow_up(account_id: str) -> bool:
    """After a committed change, before its caller answers: the rest of an arrears crossing within
    FOLLOW_UP_SECONDS. What does not finish is handed to background work and the call still answers
    200 with `"follow_up": "queued"` (integration §7: its own change stands); the by_settle index
    and the next metering run remain the safety net. Returns whether it finished here."""
    from ..background import Budget, enqueue

    try:
        if settle_pending(account_id, Budget.for_route(FOLLOW_UP_SECONDS).should_stop):
            return True
    except Exception:  # noqa: BLE001
        log.exception("arrears settlement of account %s left to background work", account_id)
    try:
        enqueue("arrears_settlement", account_id=account_id)
    except Exception:  # noqa: BLE001 - still pending in by_settle: the next metering run finishes it
        log.exception("queueing the arrears settlement of account %s failed", account_id)
    return False


def settle_task(args: dict, budget) -> dict:
    """Background task `arrears_settlement`: finish an account's settlement; cut off by the budget, it
    queues its own continuation. Raising leaves the message for SQS to deliver again."""
    from ..background import enqueue

    account_id = args["account_id"]
    done = settle_pending(account_id, budget.should_stop)
    if not done:
        enqueue("arrears_settlement", account_id=account_id)
    return {"account_id": account_id, "complete": done}


def finish_settlement(s: Session, account_id: str | None) -> bool:
    """A redelivered event finishes the settlement its first delivery left (the account was already
    read with the event marker, so this costs nothing when none is pending). Returns whether none
    is left pending."""
    account = s.account(account_id) if account_id else None
    if account is not None and account.settlement is not None:
        return _follow_up(account_id)
    return True
