"""Scheduled runs fanned out over the background queue: a run is split by the index shards
(`store.SHARDS`), one message per shard; a worker walks its shard until its time budget runs low and then
queues its own continuation. The index is the checkpoint (every visit moves the server's key past the
run's `now`), so a repeated or crashed piece is finished, never doubled, by running it again."""
from __future__ import annotations

import importlib
import logging
from datetime import datetime
from typing import Callable, Iterator

from .. import observability
from ..store import runs
from ..store import session as store
from ..timeutil import fmt, parse_rfc3339, store_key

log = logging.getLogger(__name__)

# run kind -> (module under chalicelib, run_<kind>_shard(now, shard, should_stop, after=None) -> piece)
RUNS = {"expiry": ("lifecycle.sweep", "run_expiry_shard"),
        "metering": ("billing.metering", "run_metering_shard")}


def run_id(kind: str, now: datetime) -> str:
    """Also the cause every change of the run is recorded with."""
    return f"sweep:{kind}:{store_key(now)}"


def shard_ids() -> list[str]:
    return [str(i) for i in range(store.SHARDS)]


def never() -> bool:
    return False


def walk(rows: Callable[[dict | None], Iterator], visit: Callable[[object], None],
         should_stop: Callable[[], bool], after: dict | None = None) -> tuple[bool, dict | None]:
    """Visit the rows of a shard's index query from the cursor `after`; answers (done, cursor). The budget
    is asked after each visit, so every piece moves on by at least one row, and the cursor is the key of
    the last row visited: the continuation starts after it (a row that failed waits for the next run)."""
    page = rows(after)
    for row in page:
        visit(row)
        if should_stop():
            cursor = page.last_evaluated_key  # the key of the row just visited, or DynamoDB's own at a page end
            return cursor is None, cursor
    return True, None


def merge(total: dict, piece: dict) -> dict:
    """Add a piece's counts and failed ids to a run's summary. The counts stay exact; the ids are capped
    at the first `runs.MAX_ERROR_IDS` (sorted), so an answer or an audit entry stays small however many
    fail (the rest are in the run's logs, and the servers stay due for the next run)."""
    for key, value in piece.items():
        if isinstance(value, int) and not isinstance(value, bool):
            total[key] = total.get(key, 0) + value
    ids = sorted(set(total.get("error_ids", [])) | set(piece.get("error_ids", [])))
    total["error_ids"] = ids[:runs.MAX_ERROR_IDS]
    total["error_ids_truncated"] = (len(ids) > runs.MAX_ERROR_IDS or total.get("error_ids_truncated", False)
                                    or piece.get("error_ids_truncated", False))
    return total


def whole_run(kind: str, now: datetime, run_shard: Callable, should_stop: Callable[[], bool] = never,
              hand_on: bool = False) -> dict:
    """Shard after shard in this invocation (the ops routes), each piece added to the run's row as it
    ends. `should_stop` may cut the run short (`complete` false); then, with `hand_on`, the rest is
    queued as background work (the cut-off shard's continuation and the shards not started), so the
    route answers in time and the run still finishes; without it a later call finishes it."""
    from . import enqueue_many, task

    rid = run_id(kind, now)
    runs.open_run(rid, kind, now, store.SHARDS)
    total: dict = {"run_id": rid, "now": fmt(now), "shards": store.SHARDS}
    shards, done, rest = shard_ids(), [], []
    for i, shard in enumerate(shards):
        if done and should_stop():
            rest = [task(f"{kind}_shard", now=fmt(now), shard=s) for s in shards[i:]]
            break
        piece = run_shard(now, shard, should_stop)
        runs.add(rid, kind, now, piece, shards=store.SHARDS, shards_done=[shard] if piece["complete"] else [])
        merge(total, piece)
        if not piece["complete"]:
            rest = [task(f"{kind}_shard", now=fmt(now), shard=shard, after=piece.get("next"), piece=2)]
            rest += [task(f"{kind}_shard", now=fmt(now), shard=s) for s in shards[i + 1:]]
            break
        done.append(shard)
    total["complete"] = len(done) == store.SHARDS
    if hand_on:
        total["queued"] = enqueue_many(rest)
    observability.sweep_finished(kind, total)
    return total


def fan_out(kind: str, now: datetime) -> dict:
    """The scheduled function's whole job: name the run, then queue one message per shard."""
    from . import enqueue_many, task

    rid = run_id(kind, now)
    runs.open_run(rid, kind, now, store.SHARDS)
    queued = enqueue_many(task(f"{kind}_shard", now=fmt(now), shard=shard) for shard in shard_ids())
    log.info("%s: queued %d shards", rid, queued)
    return {"run_id": rid, "now": fmt(now), "shards": store.SHARDS, "queued": queued}


def _piece(kind: str, args: dict, budget) -> dict:
    """One piece of a shard: walk it within the budget, add the counts to the run, queue the rest."""
    from . import enqueue

    module, name = RUNS[kind]
    run_shard = getattr(importlib.import_module(f"..{module}", __package__), name)
    now, shard = parse_rfc3339(args["now"]), str(args["shard"])
    piece = run_shard(now, shard, budget.should_stop, after=args.get("after"))
    runs.add(run_id(kind, now), kind, now, piece, shards=store.SHARDS,
             shards_done=[shard] if piece["complete"] else [])
    observability.sweep_finished(kind, piece)  # per piece: the run's counts are the sum of its pieces
    if not piece["complete"]:
        # recorded first: if queueing fails, SQS delivers this message again and the index skips what is done
        enqueue(f"{kind}_shard", now=args["now"], shard=shard, after=piece.get("next"), piece=args.get("piece", 1) + 1)
    return piece


def expiry_piece(args: dict, budget) -> dict:
    return _piece("expiry", args, budget)


def metering_piece(args: dict, budget) -> dict:
    return _piece("metering", args, budget)
