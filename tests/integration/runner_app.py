"""A test-only Chalice app for the local Lambda runner (tests/integration/test_lambda_runner.py): its
functions do what each message's body says, so a test can make an invocation succeed, fail, overrun its
timeout or wait at a gate the test holds."""
from __future__ import annotations

import json
import os
import socket
import threading

from chalice import Chalice, Rate

app = Chalice(app_name="runner-test")


def _act(record, context) -> dict:
    order = json.loads(record.body)
    if order["do"] == "fail":
        raise RuntimeError("told to fail")
    if order["do"] == "hang":
        threading.Event().wait()  # nothing sets it: only the runner's cut ends this
    if order["do"] == "hold":
        with socket.create_connection(("127.0.0.1", order["gate"]), timeout=120) as gate:
            gate.recv(1)  # until the test opens the gate
    return {"pid": os.getpid(), "remaining_ms": context.get_remaining_time_in_millis(),
            "receive_count": int(record.to_dict()["attributes"]["ApproximateReceiveCount"])}


@app.on_sqs_message(queue="billing-cluster-actions", batch_size=1, name="flaky")
def flaky(event):
    return [_act(record, event.context) for record in event]


@app.on_sqs_message(queue="billing-background", batch_size=1, name="held", maximum_concurrency=2)
def held(event):
    return [_act(record, event.context) for record in event]


@app.on_sqs_message(queue="billing-background", batch_size=3, name="partial")
def partial(event):
    """ReportBatchItemFailures: the failed records are named, the others done."""
    failures = []
    for record in event:
        try:
            _act(record, event.context)
        except RuntimeError:
            failures.append({"itemIdentifier": record.to_dict()["messageId"]})
    return {"batchItemFailures": failures}


@app.schedule(Rate(1, unit=Rate.MINUTES), name="tick")
def tick(event):
    return {"time": event.time, "detail_type": event.detail_type, "source": event.source}
