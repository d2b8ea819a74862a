"""The local stack's Lambda: runs the app's queue-triggered and scheduled functions as AWS runs them,
with the deployed settings read at run time (NOTES.md "what AWS does that the local stack must model").

- Settings: event sources from the app object (`app.event_sources`: queue, batch size, maximum
  concurrency, schedule); timeout, memory and reserved concurrency from `.chalice/config.json`'s stage
  (`dev`); visibility timeout and redrive policy from the queues as bootstrap created them from
  `infra/resources.json`; `FunctionResponseTypes` and a scheduled function's dead-letter queue from the
  template's overrides of the function in `resources.json`.
- Execution environments: one long-lived process per concurrency slot, started on first use and kept
  warm; `context.get_remaining_time_in_millis()` counts down the function's timeout, and an invocation
  that passes it is cut as Lambda cuts it: its process is killed and the next invocation starts a new one.
- The SQS trigger: pollers receive batches (all attributes, receive counts included) and invoke the
  function with Lambda's SQS event; success deletes the batch (with ReportBatchItemFailures, all but the
  reported items), failure or a cut leaves it to come back after the queue's visibility timeout, and
  the queue's own redrive policy moves it to its dead-letter queue after `maxReceiveCount` receives.
  There are `maximum_concurrency` pollers when the trigger sets it (so invocations never exceed it),
  else `uncapped_pollers` (AWS starts with 5 and adds more while a backlog lasts). A poller that finds
  every slot of the reserved concurrency busy is throttled: its batch goes back after the visibility
  timeout, a receive counted towards the redrive policy, as in AWS.
- Schedules: each scheduled function fires at its expression's instants (UTC, schedule.py) with
  EventBridge's scheduled event, `time` being the instant; a failed run is retried twice (a minute, then
  two, later), then its event goes to the function's dead-letter queue when the template names one.

A run started by the runner records no audit entry: the handlers are the deployed ones (integration §7
"The local stack": a scheduled drain that ran nothing records nothing).
"""
from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from . import bootstrap, schedule

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ROOT / "functions"
CONFIG = PROJECT / ".chalice" / "config.json"
ACCOUNT = "123456789012"  # moto's default account, which the emulator's ARNs carry
# Chalice's defaults when .chalice/config.json names no value
DEFAULT_TIMEOUT_SECONDS, DEFAULT_MEMORY_MB = 60, 128
# a function without reserved concurrency shares the account's pool; locally, this many at once
UNRESERVED_SLOTS = 5
UNCAPPED_POLLERS = 5
INIT_TIMEOUT_SECONDS = 120  # Lambda's init phase is 10 s; a shared 2-core machine importing the app is slower
SCHEDULED_RETRY_DELAYS = (60, 120)  # Lambda's two retries of a failed asynchronous invocation
IDLE_POLL_SECONDS = 1.0  # the lead poller of an empty queue
IDLE_FOLLOWER_SECONDS = 20.0  # the other pollers of an empty queue, until the lead finds messages

log = logging.getLogger("local-stack.lambda")


# ---- settings -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FunctionSettings:
    name: str
    handler: str  # the attribute of the app module
    timeout: int
    memory: int
    reserved_concurrency: int | None
    environment: dict = field(default_factory=dict)
    report_batch_item_failures: bool = False
    dead_letter_queue: str | None = None

    @property
    def slots(self) -> int:
        return self.reserved_concurrency if self.reserved_concurrency is not None else UNRESERVED_SLOTS


def _cfn_name(name: str) -> str:
    """Chalice's resource name for a function (`cluster_actions` → `ClusterActions`)."""
    return "".join(part.capitalize() for part in name.split("_"))


def function_settings(name: str, handler_string: str, config_path: Path = CONFIG, stage: str = "dev",
                      template_path: Path = bootstrap.TEMPLATE) -> FunctionSettings:
    config = json.loads(Path(config_path).read_text())
    per_function = config.get("stages", {}).get(stage, {}).get("lambda_functions", {}).get(name, {})
    stage_config = config.get("stages", {}).get(stage, {})
    environment = {**config.get("environment_variables", {}), **stage_config.get("environment_variables", {}),
                   **per_function.get("environment_variables", {})}
    template = json.loads(Path(template_path).read_text())["Resources"]
    overrides = template.get(_cfn_name(name), {}).get("Properties", {})
    sqs_source = overrides.get("Events", {}).get(f"{_cfn_name(name)}SqsEventSource", {}).get("Properties", {})
    dead_letter = overrides.get("DeadLetterQueue", {}).get("TargetArn", {}).get("Fn::GetAtt", [None])[0]

    def pick(key, default):
        for level in (per_function, stage_config, config):
            if key in level:
                return level[key]
        return default

    return FunctionSettings(
        name=name, handler=handler_string.split(".", 1)[1],
        timeout=int(pick("lambda_timeout", DEFAULT_TIMEOUT_SECONDS)),
        memory=int(pick("lambda_memory_size", DEFAULT_MEMORY_MB)),
        reserved_concurrency=pick("reserved_concurrency", None), environment=environment,
        report_batch_item_failures="ReportBatchItemFailures" in sqs_source.get("FunctionResponseTypes", []),
        dead_letter_queue=template[dead_letter]["Properties"]["QueueName"] if dead_letter else None)


# ---- execution environments ---------------------------------------------------------------------------
@dataclass
class Outcome:
    status: str  # "ok", "error", "timeout" (cut at the function's timeout), "crashed", "throttled"
    result: object = None
    error: str | None = None
    pid: int | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def _serve(conn, module: str, handler: str, function_name: str, memory: int, environment: dict) -> None:
    """An execution environment's process: import the app once (the cold start), then one invocation at
    a time, each with a context counting down the timeout it was given."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the stack, which ends its environments itself
    os.environ.update(environment)
    os.chdir(PROJECT)
    sys.path.insert(0, str(PROJECT))
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(message)s")
    import importlib

    from chalice.local import LambdaContext

    function = getattr(importlib.import_module(module), handler)
    conn.send(("ready", None))
    while True:
        try:
            event, timeout_ms = conn.recv()
        except EOFError:
            return
        context = LambdaContext(function_name, memory, max_runtime_ms=timeout_ms)
        context.aws_request_id = str(uuid.uuid4())
        try:
            result = function(event, context)
            conn.send(("ok", result if isinstance(result, (dict, list, str, int, float, bool, type(None))) else repr(result)))
        except Exception as exc:  # noqa: BLE001 - Lambda reports any exception as the invocation's error
            traceback.print_exc()
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


class Environment:
    """One warm execution environment of a function (a process that imported the app)."""

    def __init__(self, settings: FunctionSettings, module: str, environment: dict) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self.process = context.Process(
            target=_serve, args=(child, module, settings.handler, settings.name, settings.memory, environment),
            daemon=True, name=f"lambda-{settings.name}")
        self.process.start()
        child.close()
        self._ready = False

    def invoke(self, event: dict, timeout: float) -> Outcome:
        pid = self.process.pid
        try:
            if not self._ready:
                if not self._conn.poll(INIT_TIMEOUT_SECONDS):
                    self.kill()
                    return Outcome("crashed", error=f"init did not finish within {INIT_TIMEOUT_SECONDS} s", pid=pid)
                self._conn.recv()  # "ready": the app is imported
                self._ready = True
            self._conn.send((event, int(timeout * 1000)))
            if not self._conn.poll(timeout):
                self.kill()  # Lambda ends the environment of an invocation that timed out
                return Outcome("timeout", error=f"Task timed out after {timeout:.2f} seconds", pid=pid)
            kind, value = self._conn.recv()
        except (EOFError, OSError) as exc:
            self.kill()
            return Outcome("crashed", error=f"the execution environment exited ({exc!r})", pid=pid)
        return Outcome("ok", result=value, pid=pid) if kind == "ok" else Outcome("error", error=value, pid=pid)

    @property
    def alive(self) -> bool:
        return self.process.is_alive()

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=10)
        self._conn.close()


class Function:
    """A function's concurrency: at most `settings.slots` invocations at once, each in an environment of
    its own, kept warm for the next one."""

    def __init__(self, settings: FunctionSettings, module: str = "app", environment: dict | None = None) -> None:
        self.settings = settings
        self._module = module
        self._environment = {**settings.environment, **(environment or {})}
        self._slots = threading.BoundedSemaphore(settings.slots)
        self._lock = threading.Lock()
        self._warm: list[Environment] = []
        self._all: list[Environment] = []
        self.started = 0  # environments started (cold starts)
        self._closed = False

    def invoke(self, event: dict, block: bool = True) -> Outcome:
        """One invocation; "throttled" when every slot is busy and `block` is False."""
        if not self._slots.acquire(blocking=block):
            return Outcome("throttled", error="Rate Exceeded (reserved concurrency reached)")
        try:
            with self._lock:
                if self._closed:
                    return Outcome("crashed", error="the runner is stopping")
                env = self._warm.pop() if self._warm else None
                if env is None:
                    env = Environment(self.settings, self._module, self._environment)
                    self._all.append(env)
                    self.started += 1
            outcome = env.invoke(event, self.settings.timeout)
            with self._lock:
                if env.alive:
                    self._warm.append(env)
                elif env in self._all:  # not when close() took it first
                    self._all.remove(env)
            return outcome
        finally:
            self._slots.release()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            environments, self._all, self._warm = list(self._all), [], []
        for env in environments:
            env.kill()


# ---- the SQS trigger ----------------------------------------------------------------------------------
def sqs_event(messages: list[dict], queue_arn: str, region: str) -> dict:
    """Lambda's SQS event for received messages (the shape NOTES.md gives)."""
    def attributes(values: dict) -> dict:
        return {name: {"stringValue": v.get("StringValue"), "binaryValue": v.get("BinaryValue"),
                       "stringListValues": [], "binaryListValues": [], "dataType": v["DataType"]}
                for name, v in values.items()}

    return {"Records": [{"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                         "attributes": m.get("Attributes", {}), "messageAttributes": attributes(m.get("MessageAttributes", {})),
                         "md5OfBody": m["MD5OfBody"], "eventSource": "aws:sqs", "eventSourceARN": queue_arn,
                         "awsRegion": region} for m in messages]}


@dataclass
class TriggerCounts:
    invocations: int = 0
    received: int = 0
    deleted: int = 0
    failed: int = 0  # messages of failed, cut or crashed invocations (they come back)
    throttled: int = 0  # messages returned because every slot was busy (they come back too)
    most_receives: int = 0  # the highest ApproximateReceiveCount seen (the redrive policy's measure)

    def add(self, **counts: int) -> None:
        for key, value in counts.items():
            setattr(self, key, getattr(self, key) + value)


class SqsTrigger:
    """Lambda's poller for one queue-triggered function."""

    def __init__(self, sqs, queue_name: str, batch_size: int, maximum_concurrency: int | None,
                 function: Function, region: str, uncapped_pollers: int = UNCAPPED_POLLERS) -> None:
        self.sqs, self.function, self.region = sqs, function, region
        self.batch_size = batch_size
        self.pollers = maximum_concurrency or uncapped_pollers
        self.queue_url = sqs.get_queue_url(QueueName=queue_name)["QueueUrl"]
        attributes = sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn", "VisibilityTimeout"])["Attributes"]
        self.queue_arn = attributes["QueueArn"]
        if int(attributes["VisibilityTimeout"]) < function.settings.timeout:
            # AWS refuses such a trigger; here it would run a message twice at once
            log.warning("%s: the visibility timeout of %s (%s s) is shorter than the function's timeout (%d s)",
                        function.settings.name, queue_name, attributes["VisibilityTimeout"], function.settings.timeout)
        self.counts = TriggerCounts()
        self._counts_lock = threading.Lock()
        self._work = threading.Event()

    def poll_once(self) -> int:
        """Receive one batch and invoke the function with it; the number of messages received."""
        messages: list[dict] = []
        while len(messages) < self.batch_size:
            batch = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=min(10, self.batch_size - len(messages)),
                                             AttributeNames=["All"], MessageAttributeNames=["All"],
                                             WaitTimeSeconds=0).get("Messages", [])
            messages += batch
            if len(batch) < 10:
                break
        if not messages:
            return 0
        started = time.monotonic()
        outcome = self.function.invoke(sqs_event(messages, self.queue_arn, self.region), block=False)
        keep = set()
        if outcome.ok and self.function.settings.report_batch_item_failures and isinstance(outcome.result, dict):
            keep = {item.get("itemIdentifier") for item in outcome.result.get("batchItemFailures") or []}
        done = [m for m in messages if m["MessageId"] not in keep] if outcome.ok else []
        for start in range(0, len(done), 10):
            self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done[start:start + 10])])
        name = self.function.settings.name
        if outcome.status not in ("ok", "throttled"):
            log.warning("%s: %d message(s) %s: %s (back after the visibility timeout)", name, len(messages),
                        outcome.status, outcome.error)
        elif outcome.ok:  # Lambda's REPORT line, in short
            log.info("%s: %d message(s) ok in %.0f ms", name, len(messages), (time.monotonic() - started) * 1000)
        receives = max(int(m.get("Attributes", {}).get("ApproximateReceiveCount", 1)) for m in messages)
        with self._counts_lock:
            self.counts.most_receives = max(self.counts.most_receives, receives)
            self.counts.add(invocations=outcome.status != "throttled", received=len(messages), deleted=len(done),
                            failed=0 if outcome.status in ("ok", "throttled") else len(messages) - len(done),
                            throttled=len(messages) if outcome.status == "throttled" else 0)
        return len(messages)

    def run(self, index: int, stop: threading.Event) -> None:
        """One poller. Like Lambda scaling its pollers down on an empty queue, only the first keeps
        polling an empty queue every second; the others wait until it finds messages."""
        while not stop.is_set():
            try:
                received = self.poll_once()
            except Exception:  # noqa: BLE001 - the emulator restarting is no reason to stop polling
                log.exception("%s: polling failed", self.function.settings.name)
                received = 0
            if received:
                self._work.set()
                continue
            self._work.clear()
            if index == 0:
                stop.wait(IDLE_POLL_SECONDS)
            else:
                self._work.wait(IDLE_FOLLOWER_SECONDS)

    def wake(self) -> None:
        self._work.set()


# ---- schedules ------------------------------------------------------------------------------------------
def scheduled_event(name: str, instant: datetime, region: str, rule_prefix: str = "k8s-billing-dev") -> dict:
    """EventBridge's scheduled event, `time` being the scheduled instant."""
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events",
            "account": ACCOUNT, "time": instant.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": region, "resources": [f"arn:aws:events:{region}:{ACCOUNT}:rule/{rule_prefix}-{name}-event"],
            "detail": {}}


class Schedules:
    """When each scheduled function is next due, on a clock the caller gives."""

    def __init__(self, expressions: dict[str, object], start: datetime) -> None:
        self._text = {name: e if isinstance(e, str) else e.to_string() for name, e in expressions.items()}
        self._schedules = {name: schedule.parse(text, start) for name, text in self._text.items()}
        self._next = {name: s.next_after(start) for name, s in self._schedules.items()}

    def due(self, now: datetime) -> list[tuple[str, datetime]]:
        """Every (function, instant) due by `now` and not yet returned, oldest first."""
        fired = []
        for name, s in self._schedules.items():
            while self._next[name] <= now:
                fired.append((name, self._next[name]))
                self._next[name] = s.next_after(self._next[name])
        return sorted(fired, key=lambda pair: (pair[1], pair[0]))

    def next_instant(self) -> datetime | None:
        return min(self._next.values(), default=None)

    def describe(self) -> list[str]:
        return [f"{name}: {self._text[name]}, next {self._next[name].isoformat()}" for name in self._schedules]


# ---- the runner ---------------------------------------------------------------------------------------
class Runner:
    """Every queue-triggered and scheduled function of a Chalice app, run as Lambda runs them."""

    def __init__(self, app, *, region: str, endpoint: str | None, module: str = "app", environment: dict | None = None,
                 config_path: Path = CONFIG, stage: str = "dev", template_path: Path = bootstrap.TEMPLATE,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                 uncapped_pollers: int = UNCAPPED_POLLERS, only: set[str] | None = None) -> None:
        """`only`: the functions to run (all the app's queue-triggered and scheduled ones by default)."""
        import boto3
        from botocore.config import Config
        from chalice.app import ScheduledEventConfig, SQSEventConfig

        self.region, self.clock = region, clock
        environment = dict(os.environ if environment is None else environment)
        # pooled connections for every poller thread at once
        self.sqs = boto3.session.Session(region_name=region).client(
            "sqs", endpoint_url=endpoint, config=Config(max_pool_connections=256))
        self.functions: dict[str, Function] = {}
        self.triggers: dict[str, SqsTrigger] = {}
        expressions = {}
        for source in app.event_sources:
            if not isinstance(source, (SQSEventConfig, ScheduledEventConfig)) or (only and source.name not in only):
                continue
            settings = function_settings(source.name, source.handler_string, config_path, stage, template_path)
            self.functions[source.name] = Function(settings, module, environment)
            if isinstance(source, SQSEventConfig):
                self.triggers[source.name] = SqsTrigger(self.sqs, source.queue, source.batch_size, source.maximum_concurrency,
                                                        self.functions[source.name], region, uncapped_pollers)
            else:
                expressions[source.name] = source.schedule_expression
        self.schedules = Schedules(expressions, clock())
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def describe(self) -> list[str]:
        lines = []
        for name, trigger in self.triggers.items():
            s = trigger.function.settings
            lines.append(f"{name}: batch {trigger.batch_size}, {trigger.pollers} poller(s), {s.slots} slot(s), "
                         f"timeout {s.timeout} s, {s.memory} MB")
        return lines + self.schedules.describe()

    def fire(self, name: str, instant: datetime) -> Outcome:
        """One scheduled invocation, retried as Lambda retries an asynchronous one, then dead-lettered."""
        event = scheduled_event(name, instant, self.region)
        function = self.functions[name]
        outcome = function.invoke(event)
        for delay in SCHEDULED_RETRY_DELAYS:
            if outcome.ok or self._stop.wait(delay):
                break
            log.warning("%s at %s failed (%s); retrying", name, event["time"], outcome.error)
            outcome = function.invoke(event)
        if outcome.ok:
            log.info("%s at %s: ok", name, event["time"])
        else:
            log.error("%s at %s failed after its retries: %s", name, event["time"], outcome.error)
            if function.settings.dead_letter_queue:
                url = self.sqs.get_queue_url(QueueName=function.settings.dead_letter_queue)["QueueUrl"]
                self.sqs.send_message(QueueUrl=url, MessageBody=json.dumps(event))
        return outcome

    def _schedule_loop(self) -> None:
        while not self._stop.is_set():
            for name, instant in self.schedules.due(self.clock()):
                log.info("%s: scheduled run for %s", name, instant.isoformat())
                threading.Thread(target=self.fire, args=(name, instant), daemon=True, name=f"fire-{name}").start()
            upcoming = self.schedules.next_instant()
            wait = 60.0 if upcoming is None else (upcoming - self.clock()).total_seconds()
            self._stop.wait(min(max(wait, 0.05), 30.0))

    def start(self) -> "Runner":
        for name, trigger in self.triggers.items():
            for index in range(trigger.pollers):
                thread = threading.Thread(target=trigger.run, args=(index, self._stop), daemon=True, name=f"poll-{name}-{index}")
                thread.start()
                self._threads.append(thread)
        thread = threading.Thread(target=self._schedule_loop, daemon=True, name="schedules")
        thread.start()
        self._threads.append(thread)
        return self

    def stop(self, grace: float = 10.0) -> None:
        """Stop polling and firing; invocations under way get `grace` seconds to finish, then every
        environment ends (one still running is cut: its messages come back after the visibility timeout)."""
        self._stop.set()
        for trigger in self.triggers.values():
            trigger.wake()
        deadline = time.monotonic() + grace
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        for function in self.functions.values():
            function.close()
        for thread in self._threads:
            thread.join(timeout=30)
