"""Structured logs and CloudWatch embedded-metric (EMF) counts: the one module that knows
aws-lambda-powertools. Services call it in one line each; app.py wraps every invocation so its keys are
fresh and its metrics are flushed when it ends.

Powertools costs ~25–50 ms to import, so it is loaded when the first invocation starts, never by `import app`.
Every log line (ours, the services' `chalicelib.*` loggers and the Chalice app log) is one JSON object
carrying the invocation's correlation keys: `event_id` for webhooks, `run_id` and `shard` for sweeps,
`action_id` for cluster actions. Metrics go to the `K8sBilling` namespace with the dimension
`service=k8s-billing` (plus `code` for rejected webhooks); the alarms in infra/resources.json use the same.
"""
from __future__ import annotations

import functools
import json
import logging
import sys
import threading
from collections import Counter
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Callable, Iterator

from .errors import ConcurrentUpdate

NAMESPACE = "K8sBilling"
SERVICE = "k8s-billing"

# Shared on purpose, set up once: the Powertools logger and the names imported with it (a tuple, published
# whole under the lock, so a reader sees none of it or all of it).
_tools: tuple | None = None
_setup = threading.Lock()
# One lock for every line written to stdout, so a log line and an EMF object never interleave.
_output = threading.RLock()
# The counts of the invocation running in this thread (None outside one); never shared between requests.
_counts: ContextVar[Counter | None] = ContextVar("counts", default=None)


def _stdout():
    """The process's own stdout (Lambda ships it to CloudWatch Logs, which extracts the EMF objects), not a
    redirected sys.stdout: a CLI or test that captures sys.stdout in the same process keeps clean output."""
    return sys.__stdout__ or sys.stdout


def _write(obj: dict) -> None:
    line = json.dumps(obj, separators=(",", ":"), default=str) + "\n"
    with _output:
        stream = _stdout()
        stream.write(line)
        stream.flush()


class _ProcessStdout(logging.StreamHandler):
    def __init__(self) -> None:
        super().__init__(_stdout())

    def createLock(self) -> None:
        self.lock = _output

    @property
    def stream(self):
        return _stdout()

    @stream.setter
    def stream(self, _value) -> None:
        pass


def _powertools() -> tuple:
    """(logger, MetricUnit, the EMF provider class, is_metrics_disabled), set up by the first caller. The
    local server's first requests arrive together: two set-ups at once stripped each other's handlers and
    met half-imported Powertools modules, so one thread does it while the others wait."""
    global _tools
    if _tools is None:
        with _setup:
            if _tools is None:
                _tools = _set_up()
    return _tools


def _set_up() -> tuple:
    from aws_lambda_powertools import Logger
    from aws_lambda_powertools.metrics import MetricUnit
    from aws_lambda_powertools.metrics.functions import is_metrics_disabled
    from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

    handler = _ProcessStdout()
    logger = Logger(service=SERVICE, logger_handler=handler)
    # The Chalice app log is the logger of the same name: keep only the JSON handler on it, and give the
    # services' loggers the same handler (and so the same formatter and keys).
    for other in [h for h in logger._logger.handlers if h is not handler]:
        logger._logger.removeHandler(other)
    library = logging.getLogger("chalicelib")
    library.handlers, library.propagate = [handler], False
    library.setLevel(logging.INFO)
    return logger, MetricUnit, AmazonCloudWatchEMFProvider, is_metrics_disabled


def log() -> logging.Logger:
    return _powertools()[0]


def bind(**keys) -> None:
    """Correlation keys for every later log line of this invocation (per thread: `chalice local` serves
    requests on threads)."""
    log().thread_safe_append_keys(**{k: v for k, v in keys.items() if v is not None})


def count(name: str, value: int = 1) -> None:
    """Add to this invocation's counts (flushed when it ends); outside an invocation, written at once."""
    counts = _counts.get()
    if counts is None:
        _publish({name: value})
    else:
        counts[name] += value


def count_by(name: str, value: int = 1, **dimensions: str) -> None:
    """A count with its own dimensions (e.g. the error code), written at once as its own EMF object."""
    _publish({name: value}, dimensions)


def _publish(counts: dict, dimensions: dict | None = None) -> None:
    """One EMF object: every count summed to one value (CloudWatch turns each into a metric)."""
    _, unit, provider, is_metrics_disabled = _powertools()
    if not counts or is_metrics_disabled():
        return
    emf = provider(namespace=NAMESPACE, service=SERVICE)
    for name, value in counts.items():
        emf.add_metric(name=name, unit=unit.Count, value=value)
    for key, dim in (dimensions or {}).items():
        emf.add_dimension(name=key, value=str(dim))
    _write(emf.serialize_metric_set())


@contextmanager
def invocation(event=None) -> Iterator[None]:
    """One Lambda invocation (or one local request): fresh keys and counts of its own, the counts written
    when it ends. Powertools is set up here at the latest, so even an unexpected failure's line is JSON."""
    log().thread_safe_clear_keys()
    context = getattr(event, "context", None) or getattr(event, "lambda_context", None)
    if context is not None and getattr(context, "aws_request_id", None):
        bind(request_id=context.aws_request_id)
    token = _counts.set(Counter())
    try:
        yield
    finally:
        counts = _counts.get()
        _counts.reset(token)
        _publish(counts)


# ---- the counts an on-call engineer graphs and alarms on ---------------------------------------------
def observe_delivery(deliver: Callable[..., dict]) -> Callable[..., dict]:
    """Webhooks processed / duplicate / held (R-PAY-2) / rejected by error code, one JSON line each."""
    @functools.wraps(deliver)
    def wrapper(*, source: str, **kwargs) -> dict:
        bind(source=source)
        try:
            response = deliver(source=source, **kwargs)
        except Exception as exc:
            # the codes app.py answers with: an ApiError's own, a lost race's 409, else a 500
            code = getattr(exc, "code", None) or (
                "event_in_progress" if isinstance(exc, ConcurrentUpdate) else "internal_error")
            count_by("WebhooksRejected", code=code)
            log().info("webhook rejected", extra={"code": code, "error": str(exc)[:300]})
            raise
        outcome = response.get("outcome") or {}
        held = response["result"] == "processed" and outcome.get("decision") == "held_for_review"
        count("WebhooksDuplicate" if response["result"] == "duplicate" else "WebhooksProcessed")
        if held:
            count("PaymentsHeld")
        log().info(f"webhook {response['result']}", extra={"event_id": response.get("event_id"), "held": held,
                                                           "reason": outcome.get("reason") if held else None})
        return response
    return wrapper


def sweep_finished(kind: str, summary: dict) -> None:
    """Expiry sweep: servers visited and errors; metering: servers, hours charged and errors."""
    if kind == "expiry":
        count("SweepServersVisited", summary["visited"])
        count("SweepErrors", summary["errors"])
    else:
        count("MeteringServersVisited", summary["servers"])
        count("MeteringHoursCharged", summary["hours"])
        count("MeteringErrors", summary["errors"])
    if "shard" not in summary:
        log().thread_safe_remove_keys(["shard"])  # the summary covers every shard, not the last one visited
    log().info(f"{kind} run finished", extra={"summary": summary})


def cluster_action_finished(status: str, error: str | None) -> None:
    """R-CLU-4: succeeded, failed (with attempts left or not) and dead."""
    if status == "succeeded":
        count("ClusterActionsSucceeded")
    else:
        count("ClusterActionsFailed")
        if status == "dead":
            count("ClusterActionsDead")
    log().info(f"cluster action {status}", extra={"error": error})


def notifications_recorded(n: int) -> None:
    if n:
        count("NotificationsRecorded", n)


def notification_sent(sent: bool) -> None:
    count("NotificationsSent" if sent else "NotificationsPublishFailed")


def secrets_unavailable(error: Exception, last_good_age: float | None) -> None:
    """Secrets Manager could not give the webhook secrets and ops tokens: with `last_good_age` (seconds) the
    last good value still answers, without it the request fails."""
    count("SecretsUnavailable")
    log().warning("secrets unavailable", extra={
        "error": f"{type(error).__name__}: {str(error)[:300]}",
        "serving": "last good value" if last_good_age is not None else "nothing",
        "last_good_age_seconds": None if last_good_age is None else round(last_good_age)})


def notification_stuck() -> None:
    """A publish failed again for a notification recorded long ago: what NotificationsStuckAlarm watches."""
    count("NotificationsStuck")
