"""PynamoDB models of the tables defined once in `infra/resources.json`; each row keeps its record as a JSON document."""
from __future__ import annotations

import os

from pynamodb.attributes import (
    BooleanAttribute, JSONAttribute, NumberAttribute, UnicodeAttribute, UnicodeSetAttribute, VersionAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, IncludeProjection, KeysOnlyProjection
from pynamodb.models import Model

from ..settings import get_settings


class _Meta:
    billing_mode = "PAY_PER_REQUEST"


def _meta(name: str) -> type:
    return type("Meta", (_Meta,), {"table_name": "billing-" + name, "table_suffix": name})


def _index(name: str, projection=None):
    return type("Meta", (), {"index_name": name, "projection": projection or AllProjection()})


class DueIndex(GlobalSecondaryIndex):
    Meta = _index("by_due")
    due_shard = UnicodeAttribute(hash_key=True)
    due_at = UnicodeAttribute(range_key=True)


class MeterIndex(GlobalSecondaryIndex):
    Meta = _index("by_meter")
    meter_shard = UnicodeAttribute(hash_key=True)
    meter_at = UnicodeAttribute(range_key=True)


class PlanIndex(GlobalSecondaryIndex):
    # E-7: the announcement picks accounts by the state of their servers, so the index carries it
    Meta = _index("by_plan", IncludeProjection(["account_id", "state", "terminated"]))
    plan_id = UnicodeAttribute(hash_key=True)


# The operators' lists (store/lists.py): sparse, sharded; the expiry index holds most servers, so it and
# the retention index project only what a list shows.
class ExpiryIndex(GlobalSecondaryIndex):
    Meta = _index("by_expiry", IncludeProjection(["account_id", "plan_id"]))
    expiry_shard = UnicodeAttribute(hash_key=True)
    expires_key = UnicodeAttribute(range_key=True)


class RetainIndex(GlobalSecondaryIndex):
    Meta = _index("by_retain", IncludeProjection(["account_id", "plan_id"]))
    retain_shard = UnicodeAttribute(hash_key=True)
    retain_key = UnicodeAttribute(range_key=True)


class GrantIndex(GlobalSecondaryIndex):
    Meta = _index("by_grant")
    grant_shard = UnicodeAttribute(hash_key=True)
    grant_key = UnicodeAttribute(range_key=True)


class ArrearsIndex(GlobalSecondaryIndex):
    Meta = _index("by_arrears", KeysOnlyProjection())
    arrears_shard = UnicodeAttribute(hash_key=True)
    arrears_key = UnicodeAttribute(range_key=True)


class AccountServers(GlobalSecondaryIndex):
    """An account's servers, open and closed (the account row lists none of them, integration §7): the
    arrears settlement picks the ones to move from the projected attributes, the account view pages ids."""
    Meta = _index("by_account", IncludeProjection(["state", "billing_mode", "arrears_held"]))
    account_id = UnicodeAttribute(hash_key=True)
    server_id = UnicodeAttribute(range_key=True)


class ServerRow(Model):
    Meta = _meta("servers")
    server_id = UnicodeAttribute(hash_key=True)
    account_id = UnicodeAttribute()
    plan_id = UnicodeAttribute()
    state = UnicodeAttribute()
    terminated = BooleanAttribute(null=True)
    billing_mode = UnicodeAttribute(null=True)  # absent on rows written before by_account: read the row
    arrears_held = BooleanAttribute(null=True)  # "arrears" among the stop reasons (R-PAY-7)
    due_shard = UnicodeAttribute(null=True)
    due_at = UnicodeAttribute(null=True)
    meter_shard = UnicodeAttribute(null=True)
    meter_at = UnicodeAttribute(null=True)
    expiry_shard = UnicodeAttribute(null=True)
    expires_key = UnicodeAttribute(null=True)
    retain_shard = UnicodeAttribute(null=True)
    retain_key = UnicodeAttribute(null=True)
    grant_shard = UnicodeAttribute(null=True)
    grant_key = UnicodeAttribute(null=True)
    # "filing_id|approved_at" of the server's approved non-change filings (R-FREE-2 (3)), added by
    # filing.approved without reading the server, so a compensation needs no query of the filings
    first_filing_approvals = UnicodeSetAttribute(null=True)
    doc = JSONAttribute()
    version = VersionAttribute()
    by_due = DueIndex()
    by_meter = MeterIndex()
    by_plan = PlanIndex()
    by_expiry = ExpiryIndex()
    by_retain = RetainIndex()
    by_grant = GrantIndex()
    by_account = AccountServers()


class SettleIndex(GlobalSecondaryIndex):
    """Sparse: only accounts whose arrears settlement (R-PAY-7) is still pending."""
    Meta = _index("by_settle", KeysOnlyProjection())
    settle_shard = UnicodeAttribute(hash_key=True)
    settle_at = UnicodeAttribute(range_key=True)


class AccountRow(Model):
    Meta = _meta("accounts")
    account_id = UnicodeAttribute(hash_key=True)
    arrears_shard = UnicodeAttribute(null=True)
    arrears_key = UnicodeAttribute(null=True)
    settle_shard = UnicodeAttribute(null=True)
    settle_at = UnicodeAttribute(null=True)
    violation = BooleanAttribute(null=True)  # copy of doc's flag, for a condition check (R-FREE-2 (9))
    # E-10 counters, beside the doc so a new server is counted by an atomic ADD (AccountOpening);
    # absent on rows that still list their servers' ids in the doc (Account derives them once)
    servers_opened = NumberAttribute(null=True)
    servers_closed = NumberAttribute(null=True)
    doc = JSONAttribute()
    version = VersionAttribute()
    by_settle = SettleIndex()
    by_arrears = ArrearsIndex()


class AccountOpening(Model):
    """The accounts table without its version attribute: a new monthly or trial server is counted on
    its account by ADD without moving the version, so orders on one account do not make each other, or
    its top-ups, decide again."""
    Meta = _meta("accounts")
    account_id = UnicodeAttribute(hash_key=True)
    servers_opened = NumberAttribute(null=True)


class LedgerByServer(GlobalSecondaryIndex):
    Meta = _index("by_server")
    server_id = UnicodeAttribute(hash_key=True)
    row_id = UnicodeAttribute(range_key=True)


class LedgerRowModel(Model):
    Meta = _meta("ledger")
    account_id = UnicodeAttribute(hash_key=True)
    row_id = UnicodeAttribute(range_key=True)
    server_id = UnicodeAttribute(null=True)
    doc = JSONAttribute()
    by_server = LedgerByServer()


class EventRow(Model):
    """Idempotency marker of a delivered event, written in the same transaction as its effects."""
    Meta = _meta("events")
    event_key = UnicodeAttribute(hash_key=True)
    body_hash = UnicodeAttribute()
    response = JSONAttribute()
    at = UnicodeAttribute()


class OrderRow(Model):
    Meta = _meta("orders")
    order_id = UnicodeAttribute(hash_key=True)
    doc = JSONAttribute()
    version = VersionAttribute()


class PlanRow(Model):
    Meta = _meta("plans")
    plan_id = UnicodeAttribute(hash_key=True)
    doc = JSONAttribute()
    version = VersionAttribute()


class PendingNotifications(GlobalSecondaryIndex):
    """Sparse: only `recorded` notifications carry the keys, so the publisher reads just those."""
    Meta = _index("by_pending")
    pending_shard = UnicodeAttribute(hash_key=True)
    pending_at = UnicodeAttribute(range_key=True)


class NotificationsByTime(GlobalSecondaryIndex):
    """The causes are not time-ordered; the views page a target's notifications newest first here."""
    Meta = _index("by_time")
    target = UnicodeAttribute(hash_key=True)
    at_key = UnicodeAttribute(range_key=True)


class NotificationRow(Model):
    """One row per (target, cause): the key itself makes a notification at most once per cause."""
    Meta = _meta("notifications")
    target = UnicodeAttribute(hash_key=True)
    cause = UnicodeAttribute(range_key=True)
    status = UnicodeAttribute()
    pending_shard = UnicodeAttribute(null=True)
    pending_at = UnicodeAttribute(null=True)
    sent_at = UnicodeAttribute(null=True)
    at_key = UnicodeAttribute(null=True)
    doc = JSONAttribute()
    by_pending = PendingNotifications()
    by_time = NotificationsByTime()


class OpenActions(GlobalSecondaryIndex):
    Meta = _index("by_open")
    open_key = UnicodeAttribute(hash_key=True)
    action_id = UnicodeAttribute(range_key=True)


class DeadActions(GlobalSecondaryIndex):
    Meta = _index("by_dead")
    dead_key = UnicodeAttribute(hash_key=True)
    action_id = UnicodeAttribute(range_key=True)


class ClusterActionRow(Model):
    Meta = _meta("cluster-actions")
    server_id = UnicodeAttribute(hash_key=True)
    action_id = UnicodeAttribute(range_key=True)
    open_key = UnicodeAttribute(null=True)
    dead_key = UnicodeAttribute(null=True)
    doc = JSONAttribute()
    version = VersionAttribute()
    by_open = OpenActions()
    by_dead = DeadActions()


class FilingsByServer(GlobalSecondaryIndex):
    Meta = _index("by_server")
    server_id = UnicodeAttribute(hash_key=True)
    filing_id = UnicodeAttribute(range_key=True)


class FilingRow(Model):
    Meta = _meta("filings")
    filing_id = UnicodeAttribute(hash_key=True)
    server_id = UnicodeAttribute()
    doc = JSONAttribute()
    version = VersionAttribute()
    by_server = FilingsByServer()


class TicketRow(Model):
    Meta = _meta("tickets")
    ticket_id = UnicodeAttribute(hash_key=True)
    doc = JSONAttribute()
    version = VersionAttribute()


class AuditRow(Model):
    """The operators' audit trail per target (`server#…`, `account#…`, `ops`), keyed by time."""
    Meta = _meta("audit")
    target = UnicodeAttribute(hash_key=True)
    audit_key = UnicodeAttribute(range_key=True)
    doc = JSONAttribute()


class RunRow(Model):
    """Summaries of scheduled runs; `store/runs.py` adds each piece's counts to them atomically."""
    Meta = _meta("runs")
    run_id = UnicodeAttribute(hash_key=True)
    doc = JSONAttribute(null=True)
    count = NumberAttribute(default=0)


ALL_MODELS: tuple[type[Model], ...] = (
    ServerRow, AccountRow, AccountOpening, LedgerRowModel, EventRow, OrderRow, PlanRow,
    NotificationRow, ClusterActionRow, FilingRow, TicketRow, RunRow, AuditRow,
)


def configure() -> None:
    """Point every model at the configured tables and endpoint (integration §5: AWS_ENDPOINT_URL[_DYNAMODB])."""
    settings = get_settings()
    host = os.environ.get("AWS_ENDPOINT_URL_DYNAMODB") or os.environ.get("AWS_ENDPOINT_URL") or None
    for model in ALL_MODELS:
        wanted = (settings.table(model.Meta.table_suffix), settings.region, host)
        if (model.Meta.table_name, getattr(model.Meta, "region", None), getattr(model.Meta, "host", None)) == wanted:
            continue  # keep the connection (a botocore client costs ~50 ms to make)
        model.Meta.table_name, model.Meta.region, model.Meta.host = wanted
        model._connection = None
