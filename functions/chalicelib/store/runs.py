"""The summary of a scheduled run (an expiry sweep or a metering hour), one `runs` row per run id, added to
by every piece of the run (a shard, a shard's continuation, a whole run by hand) with one UpdateItem, so
pieces running in parallel never overwrite each other's counts."""
from __future__ import annotations

from datetime import datetime

from botocore.exceptions import ClientError

from ..timeutil import fmt
from . import models as m
from .session import _connection, ensure_configured

COUNTER = "n_"       # counters are top-level numbers n_<name>, so ADD needs no enclosing map
MAX_ERROR_IDS = 100  # ids kept on the row; the `errors` counter keeps counting past them


def _update(run_id: str, expression: str, names: dict, values: dict, condition: str | None = None) -> None:
    ensure_configured()
    kwargs = {"TableName": m.RunRow.Meta.table_name, "Key": {"run_id": {"S": run_id}},
              "UpdateExpression": expression, "ExpressionAttributeNames": names,
              "ExpressionAttributeValues": values}
    if condition:
        kwargs["ConditionExpression"] = condition
    _connection().client.update_item(**kwargs)


def open_run(run_id: str, kind: str, now: datetime, shards: int) -> None:
    """Name the run and the number of its shards (the scheduled function, before it queues them)."""
    _update(run_id, "SET #kind = :kind, #now = :now, #shards = :shards",
            {"#kind": "kind", "#now": "now", "#shards": "shards"},
            {":kind": {"S": kind}, ":now": {"S": fmt(now)}, ":shards": {"N": str(shards)}})


def add(run_id: str, kind: str, now: datetime, piece: dict, *, shards: int, shards_done: list[str] = ()) -> None:
    """Add a piece's integer counts (`visited`, `errors`, `expire`, …), its failed ids and the shards it
    finished to the run's row in one request."""
    names = {"#kind": "kind", "#now": "now", "#shards": "shards"}
    values = {":kind": {"S": kind}, ":now": {"S": fmt(now)}, ":shards": {"N": str(shards)}}
    adds = []
    for i, (name, value) in enumerate(sorted(piece.items())):
        if isinstance(value, int) and not isinstance(value, bool):
            names[f"#c{i}"], values[f":c{i}"] = COUNTER + name, {"N": str(value)}
            adds.append(f"#c{i} :c{i}")
    if shards_done:
        names["#done"], values[":done"] = "shards_done", {"SS": sorted(set(shards_done))}
        adds.append("#done :done")
    base = "SET #kind = :kind, #now = :now, #shards = if_not_exists(#shards, :shards)"
    error_ids = sorted(set(piece.get("error_ids") or ()))[:MAX_ERROR_IDS]
    if error_ids:
        # the ids go in only while the row holds fewer than MAX_ERROR_IDS (an item is at most 400 KB)
        try:
            _update(run_id, base + " ADD " + ", ".join(adds + ["#ids :ids"]),
                    {**names, "#ids": "error_ids"}, {**values, ":ids": {"SS": error_ids}, ":cap": {"N": str(MAX_ERROR_IDS)}},
                    condition="attribute_not_exists(#ids) OR size(#ids) < :cap")
            return
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
    _update(run_id, base + (" ADD " + ", ".join(adds) if adds else ""), names, values)


def get(run_id: str) -> dict | None:
    """The run's summary as the pieces left it: counts, shards done of shards, failed ids."""
    ensure_configured()
    item = _connection().client.get_item(TableName=m.RunRow.Meta.table_name, Key={"run_id": {"S": run_id}},
                                         ConsistentRead=True).get("Item")
    if not item:
        return None
    summary = {"run_id": run_id, "kind": item.get("kind", {}).get("S"), "now": item.get("now", {}).get("S"),
               "shards": int(item.get("shards", {}).get("N", "0")),
               "shards_done": len(item.get("shards_done", {}).get("SS", ())),
               # pieces add while the row holds fewer than MAX_ERROR_IDS, so it may hold a few more
               "error_ids": sorted(item.get("error_ids", {}).get("SS", ()))[:MAX_ERROR_IDS]}
    summary["complete"] = summary["shards"] > 0 and summary["shards_done"] >= summary["shards"]
    for name, value in item.items():
        if name.startswith(COUNTER):
            summary[name[len(COUNTER):]] = int(value["N"])
    # the row keeps the first MAX_ERROR_IDS ids it was given; the `errors` counter counts every failure
    summary["error_ids_truncated"] = (len(summary["error_ids"]) >= MAX_ERROR_IDS
                                      and summary.get("errors", 0) > len(summary["error_ids"]))
    return summary
