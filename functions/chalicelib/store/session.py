"""The one transaction helper: a unit of work that reads records, collects every change with its
idempotency marker and commits them in a single DynamoDB transaction (or not at all)."""
from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from dataclasses import dataclass
from functools import lru_cache
from datetime import datetime
from typing import Any, Callable, Iterable, Iterator

from pynamodb.connection import Connection
from pynamodb.exceptions import DoesNotExist, TransactWriteError
from pynamodb.transactions import TransactGet, TransactWrite

from ..domain.records import (
    Account, AuditEntry, ClusterAction, LedgerRow, Notification, Order, Plan, Server,
)
from ..errors import ConcurrentUpdate
from ..settings import get_settings
from ..timeutil import store_key
from . import lists
from . import models as m

# Shards of the sparse `by_due` / `by_meter` index keys, and so the pieces a scheduled run fans out into
# (docs/scale.md): at 1 000 000 servers a metering hour has ~6 300 payg servers per shard, a few minutes
# for one worker, and each shard key takes a few dozen writes a second, far below a partition's limits;
# a whole run in one invocation (the ops routes) costs one query per shard. Raising it is safe (a row keeps
# its old key until its next write, and every old value is still read); lowering it is not.
SHARDS = 32
_configured = False
_KINDS = {"server": m.ServerRow, "account": m.AccountRow}
_COUNTERS = ("servers_opened", "servers_closed")


def ensure_configured() -> None:
    global _configured
    if not _configured:
        m.configure()
        _configured = True


def reconfigure() -> None:
    """Tests point the store at another emulator or prefix."""
    global _configured
    _configured = False
    ensure_configured()


def shard_of(key: str) -> str:
    return str(int(hashlib.sha256(key.encode()).hexdigest(), 16) % SHARDS)


def body_hash(value: Any) -> str:
    """Hash of a JSON value, independent of key order and spacing."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _connection() -> Connection:
    settings = get_settings()
    host = os.environ.get("AWS_ENDPOINT_URL_DYNAMODB") or os.environ.get("AWS_ENDPOINT_URL") or None
    return _cached_connection(settings.region, host)


@lru_cache(maxsize=4)
def _cached_connection(region: str, host: str | None) -> Connection:
    """One connection (one botocore client) per process and endpoint: a client costs ~50 ms to make."""
    return Connection(region=region, host=host)


def _doc(record, exclude: set[str] | None = None) -> dict:
    return record.model_dump(mode="json", exclude_none=True, exclude=exclude)


def ledger_row_id(at: datetime, cause: str, server_id: str | None, seq: int) -> str:
    """The ledger's sort key: time first (the ledger is read and paged in time order), then the cause
    (which names the sender for events), the server (one run's cause spans many servers) and the row's
    place in its change. Each part after the time is length-prefixed, so no two different
    (cause, server, seq) can spell the same key whatever characters they hold."""
    parts = (cause, server_id or "", f"{seq:03d}")
    return store_key(at) + "".join(f"#{len(part)}:{part}" for part in parts)


@dataclass
class EventMarker:
    key: str
    body_hash: str
    response: dict | None = None


class Session:
    """Reads through an identity map (so writes carry the version they were read at) and commits once."""

    def __init__(self) -> None:
        ensure_configured()
        self._rows: dict[tuple[str, str], m.Model] = {}
        self._writes: list[tuple[str, Any, Any]] = []
        self._saved: dict[tuple[str, str], m.Model] = {}
        self.committed = False
        self.attempt = 0  # > 0 after a cancelled try: copies kept on rows are not trusted then, the source is read

    # ---- reads ----------------------------------------------------------------------------
    def prefetch(self, *, event_key: str | None = None, server_id: str | None = None,
                 account_id: str | None = None, order_id: str | None = None,
                 plan_id: str | None = None, filing_id: str | None = None,
                 ticket_id: str | None = None) -> dict:
        """One TransactGetItems for everything a webhook names up front (one read request)."""
        wanted = [(k, cls, v) for k, cls, v in (
            ("event", m.EventRow, event_key), ("server", m.ServerRow, server_id),
            ("account", m.AccountRow, account_id), ("order", m.OrderRow, order_id),
            ("plan", m.PlanRow, plan_id), ("filing", m.FilingRow, filing_id),
            ("ticket", m.TicketRow, ticket_id)) if v]
        futures = {}
        with TransactGet(connection=_connection()) as tg:
            for name, cls, key in wanted:
                futures[name] = (cls, key, tg.get(cls, key))
        found = {}
        for name, (cls, key, future) in futures.items():
            try:
                row = future.get()
            except DoesNotExist:
                row = None
            self._rows[(cls.__name__, key)] = row
            found[name] = row
        return found

    def _get(self, cls, key):
        ident = (cls.__name__, key)
        if ident not in self._rows:
            try:
                self._rows[ident] = cls.get(key, consistent_read=True)
            except DoesNotExist:
                self._rows[ident] = None
        return self._rows[ident]

    def event(self, key: str) -> EventMarker | None:
        row = self._get(m.EventRow, key)
        return EventMarker(row.event_key, row.body_hash, row.response) if row else None

    def server(self, server_id: str) -> Server | None:
        row = self._get(m.ServerRow, server_id)
        return Server.model_validate(row.doc) if row else None

    def account(self, account_id: str) -> Account | None:
        row = self._get(m.AccountRow, account_id)
        if row is None:
            return None
        counters = {name: int(getattr(row, name)) for name in _COUNTERS if getattr(row, name) is not None}
        return Account.model_validate({**(row.doc or {}), **counters})

    def order(self, order_id: str) -> Order | None:
        row = self._get(m.OrderRow, order_id)
        return Order.model_validate(row.doc) if row else None

    def plan(self, plan_id: str) -> Plan | None:
        row = self._get(m.PlanRow, plan_id)
        return Plan.model_validate(row.doc) if row else None

    def row_doc(self, cls, key) -> dict | None:
        row = self._get(cls, key)
        return row.doc if row else None

    def rows(self, cls, key):
        """The stored row as read by this session (None if absent or not read)."""
        return self._rows.get((cls.__name__, key))

    def row_version(self, cls, key) -> int | None:
        row = self._rows.get((cls.__name__, key))
        return row.version if row is not None else None

    def adopt_row(self, cls, key: str, row: m.Model) -> None:
        """Treat a row known from elsewhere (a copy kept on another row) as read here: a write of it
        carries the copy's version, so the transaction fails if the row changed since the copy."""
        self._rows[(cls.__name__, key)] = row

    def filing_approvals(self, server_id: str) -> dict[str, str]:
        """R-FREE-2 (3): approval time (store key) of each non-change filing of the server, the first per
        filing (E-13: a later approval moves nothing; rows written before E-13 may hold several)."""
        row = self._rows.get(("ServerRow", server_id))
        first: dict[str, str] = {}
        for entry in (row.first_filing_approvals if row is not None and row.first_filing_approvals else ()):
            filing_id, _, at = entry.rpartition("|")
            first[filing_id] = min(at, first.get(filing_id, at))
        return first

    def adopt_server_row(self, row: m.ServerRow) -> Server:
        """Use a row read from an index (sweeps) as if read here; the version condition catches staleness."""
        self._rows[("ServerRow", row.server_id)] = row
        return Server.model_validate(row.doc)


    def read_many(self, kind: str, keys: Iterable[str]) -> None:
        """Load many servers or accounts ("server" / "account") in BatchGetItem calls (100 keys each)
        instead of one GetItem each; the records are validated when asked for."""
        cls = _KINDS[kind]
        wanted = [key for key in dict.fromkeys(keys) if (cls.__name__, key) not in self._rows]
        for key, row in batch_rows(cls, wanted).items():
            self._rows[(cls.__name__, key)] = row

    def servers(self, server_ids: Iterable[str]) -> dict[str, Server | None]:
        server_ids = list(server_ids)
        self.read_many("server", server_ids)
        return {sid: self.server(sid) for sid in server_ids}

    def carry(self, other: "Session", kind: str, keys: Iterable[str]) -> None:
        """Take rows another session read (or committed: then at their new version) as if read here;
        the version conditions still catch any change made since."""
        name = _KINDS[kind].__name__
        for key in keys:
            if (name, key) in other._rows:
                self._rows[(name, key)] = other._rows[(name, key)]

    # ---- writes ---------------------------------------------------------------------------
    def _versioned(self, cls, key, **attrs):
        previous = self._rows.get((cls.__name__, key))
        row = cls(key, **attrs)
        if previous is not None and previous.version is not None:
            row.version = previous.version
        self._saved[(cls.__name__, key)] = row
        return row

    def expect_unchanged(self, kind: str, key: str) -> None:
        """A condition, not a write: the transaction fails if the row moved since it was read here."""
        cls = _KINDS[kind]
        previous = self._rows.get((cls.__name__, key))
        condition = cls.version == previous.version if previous is not None and previous.version is not None \
            else cls.version.does_not_exist()
        self._writes.append(("check", (cls, key), condition))

    def put_server(self, server: Server, due_at: datetime | None, meter_at: datetime | None) -> None:
        previous = self._rows.get(("ServerRow", server.server_id))
        row = self._versioned(
            m.ServerRow, server.server_id, account_id=server.account_id, plan_id=server.plan_id,
            first_filing_approvals=previous.first_filing_approvals if previous is not None else None,
            state=server.state, terminated="terminated" in server.stop_reasons, doc=_doc(server),
            billing_mode=server.billing_mode, arrears_held="arrears" in server.stop_reasons,
            due_shard=shard_of(server.server_id) if due_at else None,
            due_at=store_key(due_at) if due_at else None,
            # by account: a metering shard then charges all of an account's due servers in one transaction
            meter_shard=shard_of(server.account_id) if meter_at else None,
            meter_at=store_key(meter_at) if meter_at else None,
            **lists.server_keys(server),
        )
        self._writes.append(("save", row, None))

    def put_account(self, account: Account) -> None:
        """An update guarded by the version read here. The server counters are added as differences from
        what was read, since a new server may be counted meanwhile without moving the version
        (`count_new_server`); a row that still lists its servers gets them set once, from its lists."""
        # a pending arrears settlement keeps the account in the sparse by_settle index (R-PAY-7 at volume);
        # `violation` also as an attribute, so a transaction can check it without reading the account
        pending = account.settlement
        previous = self._rows.get(("AccountRow", account.account_id))
        attrs = {"doc": _doc(account, exclude=set(_COUNTERS)), "violation": account.violation,
                 "settle_shard": shard_of(account.account_id) if pending else None,
                 "settle_at": store_key(pending.at) if pending else None, **lists.account_keys(account)}
        row = self._versioned(m.AccountRow, account.account_id, **attrs)
        actions = [getattr(m.AccountRow, k).set(v) if v is not None else getattr(m.AccountRow, k).remove()
                   for k, v in attrs.items()]
        for name in _COUNTERS:
            now = getattr(account, name)
            setattr(row, name, now)
            read = getattr(previous, name) if previous is not None else None
            if previous is not None and read is None:
                actions.append(getattr(m.AccountRow, name).set(now))
            else:
                actions.append(getattr(m.AccountRow, name).add(now - int(read or 0)))
        condition = m.AccountRow.version == row.version if row.version is not None \
            else m.AccountRow.version.does_not_exist()
        self._writes.append(("update", row, (actions, condition)))

    def count_new_server(self, account: Account) -> None:
        """E-10: one more server on the stored account read here, without moving its version (the balance
        is neither read nor changed). A row whose counters are still to be set from its lists is written
        whole instead, once (see put_account)."""
        previous = self._rows.get(("AccountRow", account.account_id))
        if previous is None or previous.servers_opened is None:
            self.put_account(account.model_copy(update={"servers_opened": account.servers_opened + 1}))
            return
        row = m.AccountOpening(account.account_id)
        self._writes.append(("update", row, ([m.AccountOpening.servers_opened.add(1)],
                                             m.AccountOpening.servers_opened.exists())))

    def put_order(self, order: Order) -> None:
        self._writes.append(("save", self._versioned(m.OrderRow, order.order_id, doc=_doc(order)), None))

    def put_plan(self, plan: Plan) -> None:
        self._writes.append(("save", self._versioned(m.PlanRow, plan.plan_id, doc=_doc(plan)), None))

    def put_doc(self, cls, key: str, doc: dict, **attrs) -> None:
        self._writes.append(("save", self._versioned(cls, key, doc=doc, **attrs), None))

    def expect(self, cls, key: str, condition) -> None:
        """A condition on a row this change did not read (a copy was used instead): checked in the
        transaction, which is cancelled (and decided again from the source) if it does not hold."""
        self._writes.append(("check", (cls, key), condition))

    def note_filing_approval(self, server_id: str, filing_id: str, approved_at: datetime) -> None:
        """R-FREE-2 (3): add a non-change filing's approval to its server without reading the server;
        the version bump makes any change based on an older read of the server fail and re-read."""
        row = m.ServerRow(server_id)
        row.version = 0  # any value: the update adds 1 to the stored version instead of setting it
        actions = [m.ServerRow.first_filing_approvals.add({f"{filing_id}|{store_key(approved_at)}"})]
        self._writes.append(("update", row, (actions, m.ServerRow.server_id.exists())))

    def add_ledger(self, row: LedgerRow) -> None:
        self._ledger_seq = getattr(self, "_ledger_seq", 0) + 1
        row_id = ledger_row_id(row.at, row.cause, row.server_id, self._ledger_seq)
        model = m.LedgerRowModel(row.account_id, row_id, server_id=row.server_id, doc=_doc(row))
        self._writes.append(("save", model, m.LedgerRowModel.row_id.does_not_exist()))

    def add_notification(self, note: Notification) -> None:
        # recorded with the change (the outbox); the sparse index keys make it findable until it is sent,
        # and `at_key` pages a target's notifications by time in the views
        model = m.NotificationRow(note.target, note.cause, status="recorded", pending_shard=shard_of(note.target),
                                  pending_at=store_key(note.at), at_key=f"{store_key(note.at)}#{note.cause}",
                                  doc=_doc(note))
        self._writes.append(("save", model, m.NotificationRow.cause.does_not_exist()))
        self.notifications.append(note)

    def add_cluster_action(self, action: ClusterAction) -> None:
        model = m.ClusterActionRow(action.server_id, action.action_id, open_key="open", doc=_doc(action))
        self._writes.append(("save", model, None))
        self.actions.append(action)

    def add_audit(self, entry: AuditEntry) -> None:
        """An operator's change, committed with the change it records (integration §6)."""
        # business time first (the trail pages by it), then the wall clock to order entries of one instant
        key = f"{store_key(entry.at)}#{time.time_ns():020d}#{uuid.uuid4().hex[:8]}"
        model = m.AuditRow(entry.target, key, doc=_doc(entry))
        self._writes.append(("save", model, m.AuditRow.audit_key.does_not_exist()))

    def put_row(self, row: m.Model) -> None:
        """A row read elsewhere and changed in place; its version attribute still guards the write."""
        self._writes.append(("save", row, None))

    def mark_event(self, marker: EventMarker, at: datetime) -> None:
        model = m.EventRow(marker.key, body_hash=marker.body_hash, response=marker.response, at=store_key(at))
        self._writes.append(("save", model, m.EventRow.event_key.does_not_exist()))

    @property
    def notifications(self) -> list[Notification]:
        return self.__dict__.setdefault("_notifications", [])

    @property
    def actions(self) -> list[ClusterAction]:
        return self.__dict__.setdefault("_actions", [])

    @property
    def follow_ups(self) -> list[Callable[[], bool]]:
        """Work to run after the commit and before the caller answers (arrears settlement chunks); each
        returns False when it handed the rest to background work."""
        return self.__dict__.setdefault("_follow_ups", [])

    def commit(self) -> None:
        """All collected writes in one TransactWriteItems; any failed condition cancels every write."""
        if not self._writes:
            self.committed = True
            return
        if len(self._writes) > 100:
            raise RuntimeError(f"one change touches {len(self._writes)} items; DynamoDB allows 100")
        try:
            with TransactWrite(connection=_connection()) as tw:
                for op, row, condition in self._writes:
                    if op == "save":
                        tw.save(row, condition=condition)
                    elif op == "update":
                        tw.update(row, actions=condition[0], condition=condition[1], add_version_condition=False)
                    else:
                        tw.condition_check(row[0], row[1], condition=condition)
        except TransactWriteError as exc:
            if getattr(exc, "cause_response_code", None) in ("TransactionCanceledException", "TransactionConflictException"):
                raise ConcurrentUpdate(str(exc)) from exc
            raise
        self._rows.update(self._saved)  # their versions moved on with the commit
        self.committed = True


# ---- plain reads for views and sweeps (no transaction) ------------------------------------
def recorded_notifications(shard: str, page_size: int, last_key: dict | None = None) -> Iterator[m.NotificationRow]:
    """The outbox: notifications not sent yet, from the sparse by_pending index, oldest first."""
    ensure_configured()
    return m.NotificationRow.by_pending.query(shard, page_size=page_size, last_evaluated_key=last_key)


def due_rows(now: datetime, shard: str, limit: int | None = None, last_key: dict | None = None) -> Iterator[m.ServerRow]:
    ensure_configured()
    return m.ServerRow.by_due.query(shard, m.ServerRow.due_at <= store_key(now), limit=limit,
                                    last_evaluated_key=last_key)


def meter_rows(now: datetime, shard: str, last_key: dict | None = None) -> Iterator[m.ServerRow]:
    ensure_configured()
    return m.ServerRow.by_meter.query(shard, m.ServerRow.meter_at <= store_key(now), last_evaluated_key=last_key)


def batch_rows(cls, keys: Iterable[str]) -> dict[str, m.Model | None]:
    """Consistent BatchGetItem reads (PynamoDB pages them by 100 keys and retries unprocessed ones);
    a key that is not stored maps to None."""
    ensure_configured()
    keys = list(dict.fromkeys(keys))
    found: dict[str, m.Model | None] = dict.fromkeys(keys)
    if keys:
        hash_key = cls._hash_key_attribute().attr_name
        for row in cls.batch_get(keys, consistent_read=True):
            found[getattr(row, hash_key)] = row
    return found


def account_servers(account_id: str) -> Iterator[m.ServerRow]:
    """Every server of the account, open and closed, by id (the by_account index: keys, state,
    billing mode and arrears hold only; eventually consistent, like every index)."""
    ensure_configured()
    return m.ServerRow.by_account.query(account_id)


def pending_settlements(shard: str) -> list[str]:
    """Accounts of a shard whose arrears settlement is still pending (the sparse by_settle index)."""
    ensure_configured()
    return [row.account_id for row in m.AccountRow.by_settle.query(shard)]


def servers_on_plan(plan_id: str, last_key: dict | None = None) -> Iterable[m.ServerRow]:
    ensure_configured()
    return m.ServerRow.by_plan.query(plan_id, last_evaluated_key=last_key)
