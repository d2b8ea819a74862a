"""Routes, schedules and the queue handler: each parses, makes one call and answers (integration §1–§3)."""
from __future__ import annotations

import json
import logging
import os

from chalice import Chalice, Cron, IAMAuthorizer, Rate, Response

from chalicelib import errors

# the app uses no pydantic plugins; without this the first model built scans every installed
# distribution's entry points for some (~10 ms of a cold start)
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

app = Chalice(app_name="k8s-billing")
app.log.setLevel(logging.INFO)
log = logging.getLogger("k8s-billing")


@app.middleware("all")
def observed(event, get_response):
    """Every invocation logs JSON with its correlation keys and flushes its metrics when it ends."""
    from chalicelib import observability

    with observability.invocation(event):
        return get_response(event)


def _answer(status: int, body: dict, headers: dict | None = None) -> Response:
    return Response(body=json.dumps(body), status_code=status,
                    headers={"Content-Type": "application/json", **(headers or {})})


def handled(view):
    """Map the services' errors to the contract's answers in one place."""
    def wrapper(*args, **kwargs):
        try:
            return _answer(200, view(*args, **kwargs))
        except errors.ApiError as exc:
            return _answer(exc.status, exc.body(), exc.headers())
        except errors.ConcurrentUpdate as exc:  # integration §7: distinct changes that kept racing
            busy = errors.Busy(str(exc))
            return _answer(busy.status, busy.body(), busy.headers())
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
# Bearer tokens by default; a stage whose environment sets OPS_AUTH=iam puts every ops route behind API
# Gateway's IAM authorizer instead (decided at import, which is when `chalice package` reads the routes).
IAM_AUTH = os.environ.get("OPS_AUTH") == "iam"
OPS_AUTHORIZER = IAMAuthorizer() if IAM_AUTH else None


def ops_route(path: str, **kwargs):
    return app.route(path, authorizer=OPS_AUTHORIZER, **kwargs)


def _operator() -> str:
    """The actor of this call (integration §6), or 401."""
    from chalicelib.ops import auth

    request = app.current_request
    if IAM_AUTH:
        return auth.actor_for_iam(request.context)
    from chalicelib.webhooks.secrets import ops_tokens

    return auth.actor_for_bearer(request.headers.get("authorization"), ops_tokens())


def _before() -> str | None:
    """The page routes' one query parameter; any other (a typo such as `befor`) is 400 rather than
    silently the first page."""
    params = app.current_request.query_params or {}
    unknown = sorted(set(params) - {"before"})
    repeated = "before" in params and len(getattr(params, "getlist", lambda k: [k])("before")) > 1
    if unknown or repeated:
        raise errors.InvalidPayload("the only query parameter is one `before`", unknown or ["before"])
    return params.get("before")


def _body() -> dict:
    from chalicelib.domain.limits import loads_object

    raw = app.current_request.raw_body or b""
    if not raw:
        return {}
    return loads_object(raw)


def _path_id(value: str, what: str) -> str:
    """integration §6: a path id outside the identifier alphabet names nothing that can exist: 404."""
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


@ops_route("/ops/servers/{server_id}", methods=["GET"])
@handled
def get_server(server_id):
    from chalicelib.ops import views

    _operator()
    server_id = _path_id(server_id, "server")
    return views.get_server_view(server_id)


@ops_route("/ops/accounts/{account_id}", methods=["GET"])
@handled
def get_account(account_id):
    from chalicelib.ops import views

    _operator()
    account_id = _path_id(account_id, "account")
    return views.get_account_view(account_id)


@ops_route("/ops/servers/{server_id}/suspend", methods=["POST"], content_types=["*/*"])
@handled
def suspend_server(server_id):
    from chalicelib.ops import actions, clock

    actor, server_id = _operator(), _path_id(server_id, "server")
    body = _body()
    return actions.suspend(server_id, _parse(actions.SuspendBody, body), clock.business_time(body.get("at")), actor)


@ops_route("/ops/servers/{server_id}/resume", methods=["POST"], content_types=["*/*"])
@handled
def resume_server(server_id):
    from chalicelib.lifecycle.rules import service_may_end_at
    from chalicelib.ops import actions, clock

    actor, server_id = _operator(), _path_id(server_id, "server")
    body = _body()
    return actions.resume(server_id, _parse(actions.ResumeBody, body),
                          service_may_end_at(clock.business_time(body.get("at")), "at"), actor)


@ops_route("/ops/servers/{server_id}/terminate", methods=["POST"], content_types=["*/*"])
@handled
def terminate_server(server_id):
    from chalicelib.lifecycle.rules import service_may_end_at
    from chalicelib.ops import actions, clock

    actor, server_id = _operator(), _path_id(server_id, "server")
    body = _body()
    return actions.terminate(server_id, _parse(actions.TerminateBody, body),
                             service_may_end_at(clock.business_time(body.get("at")), "at"), actor)


@ops_route("/ops/accounts/{account_id}/violation", methods=["POST"], content_types=["*/*"])
@handled
def account_violation(account_id):
    from chalicelib.ops import actions, clock

    actor, account_id = _operator(), _path_id(account_id, "account")
    body = _body()
    return actions.set_violation(account_id, _parse(actions.ViolationBody, body), clock.business_time(body.get("at")), actor)


@ops_route("/ops/plans/{plan_id}", methods=["PUT"], content_types=["*/*"])
@handled
def put_plan(plan_id):
    from chalicelib.billing import plans
    from chalicelib.ops import clock

    actor, plan_id = _operator(), _path_id(plan_id, "plan")
    body = _body()
    return plans.put_price_version(plan_id, _parse(plans.PriceVersionBody, body), clock.business_time(body.get("at")), actor)


@ops_route("/ops/sweeps/expiry", methods=["POST"], content_types=["*/*"])
@handled
def run_expiry_sweep():
    from chalicelib.ops import clock, runs

    from chalicelib.ops.schemas import SweepBody

    actor, body = _operator(), _body()
    _parse(SweepBody, body)
    return runs.expiry_sweep(clock.business_time(body.get("now"), "now"), actor)


@ops_route("/ops/sweeps/metering", methods=["POST"], content_types=["*/*"])
@handled
def run_metering():
    from chalicelib.ops import clock, runs

    from chalicelib.lifecycle.rules import service_may_end_at
    from chalicelib.ops.schemas import SweepBody

    actor, body = _operator(), _body()
    _parse(SweepBody, body)
    return runs.metering(service_may_end_at(clock.business_time(body.get("now"), "now"), "now"), actor)


@ops_route("/ops/cluster-actions/drain", methods=["POST"], content_types=["*/*"])
@handled
def drain_cluster_actions():
    from chalicelib.ops import runs

    actor = _operator()
    _body()  # no fields, but a body that is not JSON (or nests too deep) is still a 400
    return runs.drain_cluster_actions(actor)


@ops_route("/ops/background/drain", methods=["POST"], content_types=["*/*"])
@handled
def drain_background():
    """integration §6: runs queued background work now (shards, announcements, notification retries)."""
    from chalicelib.ops import runs

    actor = _operator()
    _body()  # no fields, but a body that is not JSON (or nests too deep) is still a 400
    return runs.drain_background(actor)


@ops_route("/ops/backfills", methods=["POST"], content_types=["*/*"])
@handled
def start_backfill():
    """issue 18: {"table": "servers" | "accounts"} → the run's id; its progress is the run's summary."""
    from chalicelib.ops import runs

    actor, body = _operator(), _body()
    return runs.backfill(body.get("table"), actor)


@ops_route("/ops/runs/{run_id}", methods=["GET"])
@handled
def get_run(run_id):
    """integration §7: a run's summary so far (a sweep by hand that answered `complete: false` goes on)."""
    from chalicelib.ops import runs

    _operator()
    return runs.run_summary(_path_id(run_id, "run"))


@ops_route("/ops/dead-letters", methods=["GET"])
@handled
def list_dead_letters():
    from chalicelib.ops import lists

    _operator()
    return lists.dead_letters(_query())


@ops_route("/ops/dead-letters/{action_id}/replay", methods=["POST"], content_types=["*/*"])
@handled
def replay_dead_letter(action_id):
    from chalicelib.ops import runs

    actor, action_id = _operator(), _path_id(action_id, "cluster action")
    _body()  # no fields, but a body that is not JSON (or nests too deep) is still a 400
    return runs.replay_dead_letter(action_id, actor)


@ops_route("/ops/audit", methods=["GET"])
@handled
def ops_audit():
    """Changes about no one server or account: price versions, runs by hand, replays (integration §6)."""
    from chalicelib.ops import views

    _operator()
    return views.ops_audit_page(_before())


def _list_page_route(collection: str, id_name: str, name: str) -> None:
    """`GET /ops/<collection>/{id}/<name>?before=<cursor>`: older entries of a view's list (integration §6 "Volume")."""
    @ops_route(f"/ops/{collection}/{{{id_name}}}/{name}", methods=["GET"], name=f"{collection}_{name}_page")
    @handled
    def page(**ids):
        from chalicelib.ops import views

        _operator()
        owner_id = _path_id(ids[id_name], collection[:-1])
        fetch = views.server_list_page if collection == "servers" else views.account_list_page
        return fetch(owner_id, name, _before())


for _name in ("ledger", "notifications", "cluster_actions", "audit"):
    _list_page_route("servers", "server_id", _name)
for _name in ("ledger", "notifications", "audit", "servers"):
    _list_page_route("accounts", "account_id", _name)


def _query() -> dict:
    """Query parameters, each given once (a repeated one is 400, not silently its last value)."""
    params = app.current_request.query_params or {}
    repeated = sorted(k for k in params if len(getattr(params, "getlist", lambda key: [key])(k)) > 1)
    if repeated:
        raise errors.InvalidPayload(f"query parameter(s) given more than once: {', '.join(repeated)}", repeated)
    return dict(params)


@ops_route("/ops/lists/{name}", methods=["GET"])
@handled
def operator_list(name):
    from chalicelib.ops import lists

    _operator()
    return lists.answer(name, _query())


# ---- the operators' console: static files; everything it shows comes from the ops API ----------------
def _console(name: str) -> Response:
    from chalicelib import console

    try:
        body, headers = console.asset(name)
    except errors.ApiError as exc:
        return _answer(exc.status, exc.body())
    return Response(body=body, status_code=200, headers=headers)


@app.route("/console", methods=["GET"])
def console_page():
    """Also `/console/` (API Gateway and the local gateway route a trailing slash here)."""
    from chalicelib import console

    body, headers = console.page(app.current_request.context.get("path"))
    return Response(body=body, status_code=200, headers=headers)


@app.route("/console/{name}", methods=["GET"])
def console_asset(name):
    return _console(name)


# ---- scheduled and queued functions (names fixed by integration §3) ------------------------------------
@app.schedule(Cron(10, 16, "*", "*", "?", "*"), name="expiry_sweep")
def expiry_sweep(event):
    """Daily 00:10 Asia/Shanghai; "now" is the event's time. Queues one message per shard for
    `background_work`, which runs them in parallel."""
    from chalicelib.background import sharded
    from chalicelib.timeutil import parse_rfc3339

    return sharded.fan_out("expiry", parse_rfc3339(event.time))


@app.schedule(Cron(0, "*", "*", "*", "?", "*"), name="payg_metering")
def payg_metering(event):
    """Hourly on the hour (an hour's charge is due once it has started, R-PAY-6); queues one message per
    shard for `background_work`, like the expiry sweep."""
    from chalicelib.background import sharded
    from chalicelib.timeutil import parse_rfc3339

    return sharded.fan_out("metering", parse_rfc3339(event.time))


@app.schedule(Rate(5, unit=Rate.MINUTES), name="notification_retry")
def notification_retry(event):
    """integration §6: recorded notifications are published (again) until sent, at least every 5 minutes;
    what does not fit this invocation's time is handed to `background_work`, shard by shard."""
    from chalicelib import background
    from chalicelib.notify import outbox

    return outbox.retry_recorded(background.Budget.from_context(event.context))


# maximum_concurrency = its reserved concurrency: SQS's poller would otherwise hand it more messages than it
# may run, and each throttled one counts a receive toward the redrive policy (NOTES.md, Lambda concurrency)
@app.on_sqs_message(queue="billing-cluster-actions", batch_size=1, name="cluster_actions", maximum_concurrency=10)
def cluster_actions(event):
    """An action that failed but has attempts left raises, so SQS redelivers it after the visibility timeout."""
    from chalicelib.background import Budget
    from chalicelib.clusters import executor

    for record in event:
        result = executor.from_queue_message(record.body, budget=Budget.from_context(event.context))
        if result["failed"] > result["dead"]:
            raise RuntimeError(f"cluster action failed, will retry: {result}")


@app.schedule(Rate(5, unit=Rate.MINUTES), name="cluster_actions_rewake")
def cluster_actions_rewake(event):
    """Issue 19: pending cluster actions whose wake-up was lost are woken again, so they are delayed, never lost."""
    from chalicelib.clusters import queue

    return queue.rewake()


@app.on_sqs_message(queue="billing-background", batch_size=1, name="background_work", maximum_concurrency=32)
def background_work(event):
    """One piece of background work per invocation (a shard of a run, a chunk of announcements), up to
    one invocation per shard at once; a piece that raises is delivered again by SQS, then dead-lettered."""
    from chalicelib import background

    for record in event:
        background.run(record.body, background.Budget.from_context(event.context))
