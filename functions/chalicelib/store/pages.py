"""Newest-first pages of a record's histories (ledger, notifications, cluster actions, audit, an account's
servers): one bounded query per page whatever the history's length, and an opaque cursor naming the
oldest entry shown, from which the next page goes further back (integration §6 "Volume")."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import cursors
from . import models as m
from .session import ensure_configured

PAGE_SIZE = 100


@dataclass(frozen=True)
class History:
    """Where one list lives: a table or index whose range key is time-ordered, and the key attributes
    that locate one entry (DynamoDB's ExclusiveStartKey needs the table's key and the index's)."""
    name: str
    model: type
    index: str | None
    key_names: tuple[str, ...]  # the partition key first

    def query(self, hash_value: str, start: dict | None):
        source = getattr(self.model, self.index) if self.index else self.model
        # Limit = one more than a page: the extra row only says whether older ones exist
        return source.query(hash_value, scan_index_forward=False, limit=PAGE_SIZE + 1, page_size=PAGE_SIZE + 1,
                            last_evaluated_key=start, consistent_read=self.index is None)


# Ledger row ids and audit keys begin with the UTC time key, cluster-action ids with a creation
# timestamp, notifications are indexed by time: each range key sorts oldest to newest.
ACCOUNT_LEDGER = History("ledger", m.LedgerRowModel, None, ("account_id", "row_id"))
SERVER_LEDGER = History("ledger", m.LedgerRowModel, "by_server", ("server_id", "row_id", "account_id"))
NOTIFICATIONS = History("notifications", m.NotificationRow, "by_time", ("target", "at_key", "cause"))
CLUSTER_ACTIONS = History("cluster_actions", m.ClusterActionRow, None, ("server_id", "action_id"))
AUDIT = History("audit", m.AuditRow, None, ("target", "audit_key"))
# an account's servers, open and closed, by id (the index has no time order; ids are what it shows)
ACCOUNT_SERVERS = History("account_servers", m.ServerRow, "by_account", ("account_id", "server_id"))


def _scope(history: History, owner: str) -> str:
    """Which list of which record a cursor belongs to; the two ledgers share a name, not an index."""
    return f"{history.name}|{history.index or ''}|{owner}"


def _decode(cursor: str, history: History, owner: str, size: int) -> list[str]:
    """A cursor this list handed out for this owner, or 400 naming `before`."""
    return cursors.unseal(cursor, _scope(history, owner), size, "before", "before is not a cursor of this list")


def page(history: History, owner: str, before: str | None = None) -> tuple[list[Any], str | None]:
    """The PAGE_SIZE entries before `before` (the latest ones without it), oldest first, and the cursor
    of the page before them (None when there is none)."""
    ensure_configured()
    start = None
    if before is not None:
        values = _decode(before, history, owner, len(history.key_names))
        start = {k: {"S": v} for k, v in zip(history.key_names, values)}
    rows = list(history.query(owner, start))
    older = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    cursor = cursors.seal(_scope(history, owner), [getattr(rows[-1], k) for k in history.key_names]) if older else None
    return rows[::-1], cursor
