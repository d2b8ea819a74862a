"""The account's money: the balance, its ledger rows with before/after balances (R-LIFE-7, balance =
sum of the ledger) and the arrears crossing (R-PAY-7) over any number of servers. Payments, metering
and the operators' actions all change money through here."""
from __future__ import annotations

import logging
from datetime import datetime
from typing import Callable, Iterable

from ..domain.records import Account, Server, Settlement
from ..errors import ConcurrentUpdate, SettlementPending
from ..lifecycle import effects
from ..notify import outbox
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
        """Write the servers that changed (an unchanged one only costs a conflict with others)."""
        for server_id, server in self.servers.items():
            if self._as_read.get(server_id) != server:
                effects.save_server(self.s, server)
        if self.account is not None:
            self.s.put_account(self.account)
            if self.account.settlement is not None and self.settle_after_commit:
                account_id = self.account.account_id
                self.s.follow_ups.append(lambda: _follow_up(account_id))


def load_account(w: Work, account_id: str) -> Account:
    w.account = w.s.account(account_id) or Account(account_id=account_id)
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
    if account.in_arrears:
        # the trigger is in the cause: the balance may cross zero twice at one instant (a top-up and a
        # refund at the same time), and a repeated cause would cancel the second change for ever
        outbox.record(w.s, kind="arrears", account_id=account.account_id, at=at,
                      cause=f"arrears#{store_key(at)}#{w.cause}", details={"balance": account.balance})
    account.settlement = Settlement(at=at, cause=w.cause)
    if not w.settle_inline:
        return
    servers = w.servers_of(account.server_ids)
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


def settle_pending(account_id: str, should_stop: Callable[[], bool] | None = None) -> bool:
    """Move every server of the account to its side of zero, SETTLE_CHUNK servers a transaction, and
    clear the pending record with the last one. Each step only moves servers that do not match yet,
    so it is safe to repeat; every transaction checks the account's version, so a change of the balance
    meanwhile is seen and the settlement decided again on fresh reads. Returns False when `should_stop`
    cut it off (the record stays, so the next metering run or a redelivery finishes it)."""
    for _attempt in range(SETTLE_ATTEMPTS):
        base = Session()
        account = base.account(account_id)
        if account is None or account.settlement is None:
            return True
        servers = base.servers(account.server_ids)
        moves = [sid for sid in account.server_ids
                 if servers.get(sid) is not None and rules.arrears_step(account.in_arrears, servers[sid])]
        parts = rules.chunked(moves, SETTLE_CHUNK) or [[]]
        try:
            for i, part in enumerate(parts):
                if should_stop and should_stop():
                    return False
                _settle_part(base, account, part, last=i == len(parts) - 1)
            return True
        except ConcurrentUpdate:
            log.info("account %s changed during its arrears settlement; reading it again", account_id)
    raise ConcurrentUpdate(f"account {account_id} kept changing during its arrears settlement")


def _settle_part(base: Session, account: Account, server_ids: list[str], *, last: bool) -> None:
    s = Session()
    s.carry(base, "account", [account.account_id])
    s.carry(base, "server", server_ids)
    settlement = account.settlement
    for server_id in server_ids:
        server = s.server(server_id)
        _move(s, account.in_arrears, server, settlement.at, settlement.cause)
        effects.save_server(s, server)
    if last:
        s.put_account(account.model_copy(update={"settlement": None}))
    else:
        s.expect_unchanged("account", account.account_id)
    s.commit()
    unit.after_commit(s)


def _follow_up(account_id: str) -> None:
    """After a committed change, before its caller answers. If it cannot finish, the answer says so
    (409, retry) rather than 5xx: the change itself stands, and a retry or the next metering run
    completes the settlement."""
    try:
        settle_pending(account_id)
    except Exception as exc:  # noqa: BLE001
        log.exception("arrears settlement of account %s left pending", account_id)
        raise SettlementPending(f"the change was applied; moving the servers of account {account_id!r} "
                                "after its arrears crossing is not finished yet; retry") from exc


def finish_settlement(s: Session, account_id: str | None) -> None:
    """A redelivered event finishes the settlement its first delivery was cut off from (the account
    was already read with the event marker, so this costs nothing when none is pending)."""
    account = s.account(account_id) if account_id else None
    if account is not None and account.settlement is not None:
        _follow_up(account_id)
