"""Backfill (issue 18, docs/operations.md): re-save every row of a table so that rows written before an index
existed join it. DynamoDB indexes old rows itself only on attributes they already carry; an index keyed on a
new attribute needs each row written again by code that sets it.

A backfill is a run like the scheduled ones: one `backfill_segment` message per parallel-scan segment
(`Scan` with `Segment`/`TotalSegments`) on billing-background; a worker scans its segment until its budget
runs low and queues its continuation with the scan's `LastEvaluatedKey`, the checkpoint. Each row is saved
again through the store's own `put_server`/`put_account`, which compute the index attributes from the row's
document, under the version the scan read: a change committed since then wins (the re-save is refused and
counted `overtaken`; that change computed its own keys), so running a segment twice only saves again."""
from __future__ import annotations

import logging
from datetime import datetime
from typing import Callable

from .. import errors
from ..domain.records import Account
from ..errors import ConcurrentUpdate
from ..store import models as m
from ..store import runs
from ..store.session import Session, ensure_configured
from ..timeutil import fmt, from_store_key, parse_rfc3339, store_key
from .sharded import walk

log = logging.getLogger(__name__)

KIND = "backfill"
# Segments scanned in parallel: each a background_work invocation (32 reserved), so a backfill leaves room
# for the scheduled runs' shards; at ~70 re-saves a second per worker (one transaction each) 1 000 000
# servers take about half an hour.
SEGMENTS = 8


def _resave_server(row: m.ServerRow) -> None:
    s = Session()
    server = s.adopt_server_row(row)
    # the sweep and metering checkpoints are kept as stored: they are the runs' progress, not the document's
    s.put_server(server, from_store_key(row.due_at) if row.due_at else None,
                 from_store_key(row.meter_at) if row.meter_at else None)
    s.commit()


def _resave_account(row: m.AccountRow) -> None:
    s = Session()
    s.adopt_row(m.AccountRow, row.account_id, row)
    s.put_account(Account.model_validate(row.doc))
    s.commit()


# table (as in its name billing-<table>) -> (row class, re-save of one row read by the scan)
TABLES: dict[str, tuple[type, Callable]] = {"servers": (m.ServerRow, _resave_server),
                                            "accounts": (m.AccountRow, _resave_account)}


def run_id(table: str, started: datetime) -> str:
    return f"{KIND}:{table}:{store_key(started)}"


def start(table: str, started: datetime) -> dict:
    """Name the run (its `runs` row counts segments as shards) and queue one message per segment."""
    from . import enqueue_many, task

    if not isinstance(table, str) or table not in TABLES:
        raise errors.InvalidPayload(f"table: one of {', '.join(sorted(TABLES))}", ["table"])
    rid = run_id(table, started)
    runs.open_run(rid, KIND, started, SEGMENTS)
    queued = enqueue_many(task("backfill_segment", run_id=rid, table=table, started=fmt(started), segment=segment)
                          for segment in range(SEGMENTS))
    log.info("%s: queued %d segments", rid, queued)
    return {"run_id": rid, "table": table, "segments": SEGMENTS, "queued": queued}


def segment_piece(args: dict, budget) -> dict:
    """One piece of a segment: scan from the checkpoint within the budget, re-save each row, add the counts to
    the run, queue the rest."""
    from . import enqueue

    cls, resave = TABLES[args["table"]]
    segment, started = int(args["segment"]), parse_rfc3339(args["started"])
    key_name = cls._hash_key_attribute().attr_name
    counts = {"visited": 0, "resaved": 0, "overtaken": 0, "errors": 0}
    failed: list[str] = []

    def rows(after: dict | None):
        ensure_configured()
        # consistent: a re-save from a stale copy would only be refused, but costs a transaction for nothing
        return cls.scan(segment=segment, total_segments=SEGMENTS, last_evaluated_key=after, consistent_read=True)

    def visit(row) -> None:
        counts["visited"] += 1
        try:
            resave(row)
            counts["resaved"] += 1
        except ConcurrentUpdate:
            counts["overtaken"] += 1
        except Exception:  # noqa: BLE001 - one row that cannot be saved (say, a document that no longer validates) stops nothing
            log.exception("backfill of %s %s failed", args["table"], getattr(row, key_name))
            counts["errors"] += 1
            failed.append(getattr(row, key_name))

    done, cursor = walk(rows, visit, budget.should_stop, args.get("after"))
    piece = {**counts, "error_ids": failed, "complete": done}
    runs.add(args["run_id"], KIND, started, piece, shards=SEGMENTS, shards_done=[str(segment)] if done else [])
    if not done:
        # recorded first: if queueing fails, SQS delivers this message again and its rows are only saved again
        enqueue("backfill_segment", **{**args, "after": cursor, "piece": args.get("piece", 1) + 1})
    return piece
