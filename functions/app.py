"""Routes, schedules and the queue handler: each parses, makes one call and answers (CONTRACT §1–§3)."""
from __future__ import annotations

import hmac
import json
import logging

from chalice import Chalice, Cron, Rate, Response

from chalicelib import errors

app = Chalice(app_name="k8s-billing")
app.log.setLevel(logging.INFO)
log = logging.getLogger("k8s-billing")


@app.middleware("all")
def observed(event, get_response):
    """Every invocation logs JSON with its correlation keys and flushes its metrics when it ends."""
    from chalicelib import observability

    with observability.invocation(event):
        return get_response(event)


def _answer(status: int, body: dict) -> Response:
    return Response(body=json.dumps(body), status_code=status, headers={"Content-Type": "application/json"})


def handled(view):
    """Map the services' errors to the contract's answers in one place."""
    def wrapper(*args, **kwargs):
        try:
            return _answer(200, view(*args, **kwargs))
        except errors.ApiError as exc:
            return _answer(exc.status, exc.body())
        except errors.ConcurrentUpdate as exc:
            return _answer(409, {"error": {"code": "event_in_progress", "message": str(exc)}})
        except Exception:  # noqa: BLE001 - a 5xx for our own faults
            log.exception("unexpected failure")
            # not "nothing was changed": a webhook applies all or nothing, but a sweep or metering run keeps
            # what it finished before the fault (the next run does the rest)
            return _answer(500, {"error": {"code": "internal_error",
                                           "message": "internal error; repeating the request is safe"}})
    wrapper.__name__ = view.__name__
    wrapper.__doc__ = view.__doc__
    return wrapper


def _request():
    request = app.current_request
    return {k.lower(): v for k, v in request.headers.items()}, request.raw_body or b""


# ---- signed callbacks ---------------------------------------------------------------------------
@app.route("/webhooks/payments", methods=["POST"], content_types=["*/*"])
@handled
def payments_webhook():
    from chalicelib.webhooks import catalog, delivery, secrets

    headers, body = _request()
    return delivery.deliver(source="payments", secrets=secrets.payment_secrets(), types=catalog.PAYMENT_EVENTS,
                            headers=headers, body=body)


@app.route("/webhooks/ticketing", methods=["POST"], content_types=["*/*"])
@handled
def ticketing_webhook():
    from chalicelib.webhooks import catalog, delivery, secrets

    headers, body = _request()
    return delivery.deliver(source="ticketing", secrets=secrets.ticketing_secrets(), types=catalog.TICKETING_EVENTS,
                            headers=headers, body=body)


@app.route("/openapi.json", methods=["GET"])
@handled
def openapi_document():
    from chalicelib import openapi

    return openapi.document()


# ---- operators' API -------------------------------------------------------------------------------
def _operator() -> str:
    header = (app.current_request.headers.get("authorization") or "")
    scheme, _, token = header.partition(" ")
    from chalicelib.webhooks.secrets import ops_tokens

    tokens = ops_tokens()
    if scheme.lower() != "bearer" or not token or not any(hmac.compare_digest(token.encode(), t.encode()) for t in tokens):
        raise errors.Unauthorized("a valid Authorization: Bearer <token> is required")
    return "operator"


def _body() -> dict:
    from chalicelib.domain.limits import loads_object

    raw = app.current_request.raw_body or b""
    if not raw:
        return {}
    return loads_object(raw)


def _path_id(value: str, what: str) -> str:
    """CONTRACT §6: a path id outside the identifier alphabet names nothing that can exist: 404."""
    from chalicelib.domain.types import is_id

    if not is_id(value):
        raise errors.NotFound(f"no {what} has that id (ids are 1-128 characters of A-Z a-z 0-9 . _ : -)")
    return value


def _parse(model, body: dict):
    from pydantic import ValidationError

    try:
        return model.model_validate_json(json.dumps(body))
    except ValidationError as exc:
        fields = sorted({".".join(str(p) for p in e["loc"]) for e in exc.errors()})
        raise errors.InvalidPayload("invalid body: " + "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]), fields) from None


@app.route("/ops/servers/{server_id}", methods=["GET"])
@handled
def get_server(server_id):
    from chalicelib.ops import views

    _operator()
    server_id = _path_id(server_id, "server")
    return views.get_server_view(server_id)


@app.route("/ops/accounts/{account_id}", methods=["GET"])
@handled
def get_account(account_id):
    from chalicelib.ops import views

    _operator()
    account_id = _path_id(account_id, "account")
    return views.get_account_view(account_id)


@app.route("/ops/servers/{server_id}/suspend", methods=["POST"], content_types=["*/*"])
@handled
def suspend_server(server_id):
    from chalicelib.ops import actions, clock

    actor, server_id = _operator(), _path_id(server_id, "server")
    body = _body()
    return actions.suspend(server_id, _parse(actions.SuspendBody, body), clock.business_time(body.get("at")), actor)


@app.route("/ops/servers/{server_id}/resume", methods=["POST"], content_types=["*/*"])
@handled
def resume_server(server_id):
    from chalicelib.ops import actions, clock

    actor, server_id = _operator(), _path_id(server_id, "server")
    body = _body()
    return actions.resume(server_id, _parse(actions.ResumeBody, body), clock.business_time(body.get("at")), actor)


@app.route("/ops/servers/{server_id}/terminate", methods=["POST"], content_types=["*/*"])
@handled
def terminate_server(server_id):
    from chalicelib.ops import actions, clock

    actor, server_id = _operator(), _path_id(server_id, "server")
    body = _body()
    return actions.terminate(server_id, _parse(actions.TerminateBody, body), clock.business_time(body.get("at")), actor)


@app.route("/ops/accounts/{account_id}/violation", methods=["POST"], content_types=["*/*"])
@handled
def account_violation(account_id):
    from chalicelib.ops import actions, clock

    actor, account_id = _operator(), _path_id(account_id, "account")
    body = _body()
    return actions.set_violation(account_id, _parse(actions.ViolationBody, body), clock.business_time(body.get("at")), actor)


@app.route("/ops/plans/{plan_id}", methods=["PUT"], content_types=["*/*"])
@handled
def put_plan(plan_id):
    from chalicelib.billing import plans
    from chalicelib.ops import clock

    _operator()
    plan_id = _path_id(plan_id, "plan")
    body = _body()
    return plans.put_price_version(plan_id, _parse(plans.PriceVersionBody, body), clock.business_time(body.get("at")))


@app.route("/ops/sweeps/expiry", methods=["POST"], content_types=["*/*"])
@handled
def run_expiry_sweep():
    from chalicelib.lifecycle import sweep
    from chalicelib.ops import clock

    from chalicelib.ops.schemas import SweepBody

    _operator()
    body = _body()
    _parse(SweepBody, body)
    return sweep.run_expiry_sweep(clock.business_time(body.get("now"), "now"))


@app.route("/ops/sweeps/metering", methods=["POST"], content_types=["*/*"])
@handled
def run_metering():
    from chalicelib.billing import metering
    from chalicelib.ops import clock

    from chalicelib.ops.schemas import SweepBody

    _operator()
    body = _body()
    _parse(SweepBody, body)
    return metering.run_metering(clock.business_time(body.get("now"), "now"))


@app.route("/ops/cluster-actions/drain", methods=["POST"], content_types=["*/*"])
@handled
def drain_cluster_actions():
    from chalicelib.clusters import executor

    _operator()
    _body()  # no fields, but a body that is not JSON (or nests too deep) is still a 400
    return executor.drain()


@app.route("/ops/background/drain", methods=["POST"], content_types=["*/*"])
@handled
def drain_background():
    from chalicelib import background

    _operator()
    _body()  # no fields, but a body that is not JSON (or nests too deep) is still a 400
    return background.drain()


@app.route("/ops/dead-letters", methods=["GET"])
@handled
def list_dead_letters():
    from chalicelib.clusters import executor

    _operator()
    return executor.dead_letters()


@app.route("/ops/dead-letters/{action_id}/replay", methods=["POST"], content_types=["*/*"])
@handled
def replay_dead_letter(action_id):
    from chalicelib.clusters import executor

    _operator()
    action_id = _path_id(action_id, "cluster action")
    _body()  # no fields, but a body that is not JSON (or nests too deep) is still a 400
    return executor.replay(action_id)


# ---- scheduled and queued functions (names fixed by CONTRACT §3) ------------------------------------
@app.schedule(Cron(10, 16, "*", "*", "?", "*"), name="expiry_sweep")
def expiry_sweep(event):
    """Daily 00:10 Asia/Shanghai; "now" is the event's time. Queues one message per shard for
    `background_work`, which runs them in parallel."""
    from chalicelib.background import sharded
    from chalicelib.timeutil import parse_rfc3339

    return sharded.fan_out("expiry", parse_rfc3339(event.time))


@app.schedule(Rate(1, unit=Rate.HOURS), name="payg_metering")
def payg_metering(event):
    """Hourly; queues one message per shard for `background_work`, like the expiry sweep."""
    from chalicelib.background import sharded
    from chalicelib.timeutil import parse_rfc3339

    return sharded.fan_out("metering", parse_rfc3339(event.time))


@app.on_sqs_message(queue="billing-cluster-actions", batch_size=1, name="cluster_actions")
def cluster_actions(event):
    """An action that failed but has attempts left raises, so SQS redelivers it after the visibility timeout."""
    from chalicelib.clusters import executor

    for record in event:
        result = executor.from_queue_message(record.body)
        if result["failed"] > result["dead"]:
            raise RuntimeError(f"cluster action failed, will retry: {result}")


@app.on_sqs_message(queue="billing-background", batch_size=1, name="background_work", maximum_concurrency=32)
def background_work(event):
    """One piece of background work per invocation (a shard of a run, a chunk of announcements), up to
    one invocation per shard at once; a piece that raises is delivered again by SQS, then dead-lettered."""
    from chalicelib import background

    for record in event:
        background.run(record.body, background.Budget.from_context(event.context))
