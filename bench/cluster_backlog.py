"""A backlog of cluster actions consumed as Lambda's SQS trigger consumes it (infra/local/lambda_runner.py):
N servers each with a pending action and a wake-up message on `billing-cluster-actions`, the deployed
`cluster_actions` handler run in warm worker processes with the dev stage's concurrency (reserved 10),
the queue's redrive policy (maxReceiveCount 8) and a simulated performer (latency per action, and a share of
calls throttled by the cluster's API, which the executor retries quickly). Run twice: the trigger as the
app declares it, and with `maximum_concurrency` equal to the reserved concurrency (or the other way round
when the app declares it already). Without a cap AWS keeps adding pollers while a backlog lasts, and a
poller that finds no free slot hands its message back for the visibility timeout, a receive counted
towards the redrive policy; `--pollers` stands for that poller count.

Times are scaled: the queue's visibility timeout (960 s in the template) is `--visibility` seconds here,
so a throttled message comes back within the run (kept above a cold start on a busy machine, or a
message comes back while its first environment is still importing the app). Prints the wall time, receives per message, throttled
receives and the dead-lettered count of each run.

    .venv/bin/python bench/cluster_backlog.py                  # 2 000 servers (a few minutes)
    .venv/bin/python bench/cluster_backlog.py --servers 200    # a quick check
"""
from __future__ import annotations

import argparse
import os
import random
import time
from datetime import datetime, timezone

import _common as c

LATENCY_SECONDS = 0.05
THROTTLED_SHARE = 0.2  # of the performer's calls, answered 429 by the cluster's API (retried quickly)


def _simulated_performer(action) -> None:
    from chalicelib.clusters.errors import TransientClusterError

    time.sleep(LATENCY_SECONDS)
    if random.random() < THROTTLED_SHARE:
        raise TransientClusterError("429 Too Many Requests (simulated)", status=429)


def cluster_actions(event, context):
    """The deployed handler, its performer swapped for the simulated one (in the worker process)."""
    import app
    from chalicelib.clusters import executor

    # the performer is the first defaulted parameter (`performer=perform`); the others keep their defaults
    defaults = executor.from_queue_message.__defaults__
    executor.from_queue_message.__defaults__ = (_simulated_performer, *defaults[1:])
    return app.cluster_actions(event, context)


def seed(n: int, run: str) -> None:
    """n servers, each with one pending `stop` action and its wake-up message."""
    from chalicelib.clusters import queue
    from chalicelib.domain.records import ClusterAction
    from chalicelib.store import models as m

    at = datetime(2026, 12, 5, 16, 10, tzinfo=timezone.utc)
    servers = [f"srv-{run}-{i:05d}" for i in range(n)]
    with m.ClusterActionRow.batch_write() as batch:
        for server_id in servers:
            action = ClusterAction(action_id=f"{time.time_ns():020d}-stop", server_id=server_id, kind="stop",
                                   created_at=at, cause="bench")
            batch.save(m.ClusterActionRow(server_id, action.action_id, open_key="open",
                                          doc=action.model_dump(mode="json", exclude_none=True)))
    queue.wake(servers)


def _count(sqs, url: str) -> int:
    return int(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
               ["Attributes"]["ApproximateNumberOfMessages"])


def consume(n: int, maximum_concurrency: int | None, pollers: int, visibility: int, run: str) -> dict:
    import boto3

    import app
    from chalicelib.store import models as m
    from infra.local import lambda_runner

    sqs = boto3.client("sqs", region_name=os.environ["AWS_DEFAULT_REGION"], endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    url = sqs.get_queue_url(QueueName="billing-cluster-actions")["QueueUrl"]
    dlq = sqs.get_queue_url(QueueName="billing-cluster-actions-dlq")["QueueUrl"]
    dead_before = _count(sqs, dlq)
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": str(visibility)})
    [source] = [s for s in app.app.event_sources if s.name == "cluster_actions"]
    declared = source.maximum_concurrency
    source.maximum_concurrency = maximum_concurrency  # what the trigger would say (read by the runner's parent only)
    seed(n, run)
    runner = lambda_runner.Runner(app.app, region=os.environ["AWS_DEFAULT_REGION"], endpoint=os.environ["AWS_ENDPOINT_URL"],
                                  module="cluster_backlog", only={"cluster_actions"}, uncapped_pollers=pollers)
    trigger = runner.triggers["cluster_actions"]
    started = time.monotonic()
    runner.start()
    try:
        # done when no action of this run is open (pending or failed): the records, not the messages, are
        # the truth (a message whose environment was still starting when it came back is run twice)
        while any(row.server_id.startswith(f"srv-{run}-") for row in m.ClusterActionRow.by_open.query("open")):
            time.sleep(2)
        elapsed = time.monotonic() - started
    finally:
        runner.stop()
        source.maximum_concurrency = declared
    dead_lettered = _count(sqs, dlq) - dead_before
    counts = trigger.counts
    return {"seconds": round(elapsed, 1), "pollers": trigger.pollers, "slots": trigger.function.settings.slots,
            "invocations": counts.invocations, "receives_per_message": round(counts.received / n, 2),
            "most_receives_of_one_message": counts.most_receives, "throttled_receives": counts.throttled, "failed_invocations": counts.failed,
            "dead_lettered": dead_lettered, "environments": trigger.function.started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=2000)
    parser.add_argument("--pollers", type=int, default=20, help="pollers of an uncapped trigger under a backlog")
    parser.add_argument("--visibility", type=int, default=30, help="the queue's visibility timeout, scaled (s)")
    args = parser.parse_args()
    c.start_emulator()
    os.environ["CLUSTER_RETRY_BASE_SECONDS"] = "0.05"
    import app

    [source] = [s for s in app.app.event_sources if s.name == "cluster_actions"]
    from infra.local import lambda_runner

    reserved = lambda_runner.function_settings("cluster_actions", source.handler_string).slots
    runs = {"as declared": source.maximum_concurrency,
            "with maximum_concurrency" if source.maximum_concurrency is None else "without maximum_concurrency":
                reserved if source.maximum_concurrency is None else None}
    for i, (label, cap) in enumerate(runs.items()):
        result = consume(args.servers, cap, args.pollers, args.visibility, f"r{i}")
        print(f"{label} (maximum_concurrency={cap}): {result}", flush=True)
        tag = f"{args.servers} actions, maximum_concurrency={cap}"
        c.summary("cluster_backlog", f"{tag}: time", f"{result['seconds']} s")
        c.summary("cluster_backlog", f"{tag}: receives per message", result["receives_per_message"])
        c.summary("cluster_backlog", f"{tag}: dead-lettered", result["dead_lettered"], "0", result["dead_lettered"] == 0)
    c.finish(0)


if __name__ == "__main__":
    main()
