"""The OpenAPI 3.1 document of both webhooks and the operators' API, generated from the pydantic
models the handlers validate with (served at GET /openapi.json)."""
from __future__ import annotations

from functools import lru_cache

from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import models_json_schema

from .billing.plans import PriceVersionBody
from .domain.limits import MAX_DEPTH
from .domain.types import Id, Time
from .ops import schemas
from .ops.actions import ResumeBody, SuspendBody, TerminateBody, ViolationBody
from .webhooks.catalog import PAYMENT_EVENTS, TICKETING_EVENTS

REF = "#/components/schemas/{model}"
ERRORS = {
    "400": f"invalid_payload: not JSON, not an object, nested deeper than {MAX_DEPTH} levels, missing/mistyped "
           "field, an id outside the identifier pattern, unknown type, bad value, or a time whose consequences "
           "(an expiry, a retention date) fall outside 2000-01-01 .. 2199-12-31",
    "401": "invalid_signature / stale_signature (webhooks), unauthorized (ops)",
    "403": "clock_override_forbidden: a time override where ALLOW_CLOCK_OVERRIDE is not 1",
    "404": "not_found: unknown id, or a path id outside the identifier pattern (it cannot exist)",
    "409": "event_id_reused / event_in_progress / conflict",
    "413": "payload_too_large: body over 256 KiB",
    "415": "unsupported_media_type: not application/json",
    "422": "unknown_reference: names a server, plan, order, filing or ticket not known yet; nothing stored",
}


def _ref(model: type[BaseModel]) -> dict:
    return {"$ref": REF.format(model=model.__name__)}


def _json(schema: dict) -> dict:
    return {"content": {"application/json": {"schema": schema}}}


def _errors(*codes: str) -> dict:
    return {code: {"description": ERRORS[code], **_json(_ref(schemas.Error))} for code in codes}


def _schema_of(annotation) -> dict:
    return TypeAdapter(annotation).json_schema()


def _event_schema(event_type: str, model: type[BaseModel]) -> dict:
    return {"type": "object", "required": ["id", "type", "created_at", "data"], "properties": {
        "id": {**_schema_of(Id), "description": "event id, unique per sender; " + _schema_of(Id)["description"]},
        "type": {"const": event_type},
        "created_at": _schema_of(Time),
        "data": _ref(model)}}


def _webhook(summary: str, events: dict) -> dict:
    return {"post": {
        "summary": summary,
        "parameters": [{"name": "X-Signature", "in": "header", "required": True, "schema": {"type": "string"},
                        "description": 't=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>; several v1 allowed'}],
        "requestBody": {"required": True, **_json({
            "oneOf": [{"$ref": f"#/components/schemas/event.{t}"} for t in events],
            "discriminator": {"propertyName": "type",
                              "mapping": {t: f"#/components/schemas/event.{t}" for t in events}}})},
        "responses": {"200": {"description": "processed, or the first answer again as duplicate",
                              **_json(_ref(schemas.WebhookAnswer))},
                      **_errors("400", "401", "409", "413", "415", "422")}}}


def _op(method: str, summary: str, answer: type[BaseModel], body: type[BaseModel] | None = None,
        errors: tuple[str, ...] = ("400", "401", "403", "404", "409")) -> dict:
    operation = {"summary": summary, "security": [{"bearer": []}],
                 "responses": {"200": {"description": "ok", **_json(_ref(answer))}, **_errors(*errors)}}
    if body is not None:
        operation["requestBody"] = {"required": method == "put", **_json(_ref(body))}
    return {method: operation}


def _id(name: str) -> list[dict]:
    """A path id: the same pattern as in payloads; outside it the answer is 404 (integration §6)."""
    return [{"name": name, "in": "path", "required": True, "schema": _schema_of(Id)}]


def _query(name: str, description: str, **schema) -> dict:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


PAGE = [_query("limit", "items per page (default 50)", type="integer", minimum=1, maximum=100),
        _query("cursor", "the `next` of the previous page", type="string")]
AT_QUERY = _query("at", "business time of \"now\"; honoured only where ALLOW_CLOCK_OVERRIDE=1",
                  type="string", format="date-time")


def _list(summary: str, answer: type[BaseModel], *params: dict) -> dict:
    operation = _op("get", summary, answer, errors=("400", "401", "403"))
    operation["get"]["parameters"] = [*params, *PAGE]
    return operation


# The lists of the views that page back (integration §6 "Volume"), with the shape of one page.
PAGES = {"ledger": schemas.LedgerPage, "notifications": schemas.NotificationPage,
         "cluster_actions": schemas.ClusterActionPage, "audit": schemas.AuditPage, "servers": schemas.ServerIdPage}
SERVER_LISTS = ("ledger", "notifications", "cluster_actions", "audit")
ACCOUNT_LISTS = ("ledger", "notifications", "audit", "servers")
BEFORE = {"name": "before", "in": "query", "required": False, "schema": {"type": "string"},
          "description": "a `<list>_next` or `next` cursor; without it, the latest 100 entries"}


def _page(kind: str, name: str) -> dict:
    operation = _op("get", f"Older entries of the {kind} view's `{name}`, 100 at a time, oldest first",
                    PAGES[name], errors=("400", "401", "404"))
    operation["get"]["parameters"] = [BEFORE]
    return operation


@lru_cache(maxsize=1)
def document() -> dict:
    models = [e.model for e in (*PAYMENT_EVENTS.values(), *TICKETING_EVENTS.values())] + [
        SuspendBody, ResumeBody, TerminateBody, ViolationBody, PriceVersionBody, schemas.SweepBody,
        schemas.Error, schemas.WebhookAnswer, schemas.ServerView, schemas.AccountView, schemas.TerminateAnswer,
        schemas.DrainAnswer, schemas.DeadLetters, schemas.SweepAnswer, schemas.ExpiringList,
        schemas.AwaitingDestructionList, schemas.ArrearsList, schemas.GrantsList, *PAGES.values()]
    _, defs = models_json_schema([(m, "validation") for m in models], ref_template=REF)
    components = dict(defs.get("$defs", {}))
    for event_type, entry in {**PAYMENT_EVENTS, **TICKETING_EVENTS}.items():
        components[f"event.{event_type}"] = _event_schema(event_type, entry.model)
    server = lambda: _id("server_id")  # noqa: E731
    paths = {
        "/webhooks/payments": _webhook("Payment gateway callbacks (order.paid, order.refunded, account.topped_up)", PAYMENT_EVENTS),
        "/webhooks/ticketing": _webhook("Ticketing system callbacks (filings and compensation)", TICKETING_EVENTS),
        "/ops/servers/{server_id}": {"parameters": server(), **_op("get", "Server view", schemas.ServerView, errors=("401", "404"))},
        "/ops/accounts/{account_id}": {"parameters": _id("account_id"), **_op("get", "Account view", schemas.AccountView, errors=("401", "404"))},
        "/ops/servers/{server_id}/suspend": {"parameters": server(), **_op("post", "Operator suspension (R-LIFE-2)", schemas.ServerView, SuspendBody)},
        "/ops/servers/{server_id}/resume": {"parameters": server(), **_op("post", "Lift operator suspensions", schemas.ServerView, ResumeBody)},
        "/ops/servers/{server_id}/terminate": {"parameters": server(), **_op("post", "Early termination with its refund (R-LIFE-5)", schemas.TerminateAnswer, TerminateBody)},
        "/ops/accounts/{account_id}/violation": {"parameters": _id("account_id"), **_op("post", "Mark or clear an account violation", schemas.AccountView, ViolationBody)},
        "/ops/plans/{plan_id}": {"parameters": _id("plan_id"), **_op("put", "New price version (T2.5)", schemas.Open, PriceVersionBody, ("400", "401", "403", "404"))},
        "/ops/sweeps/expiry": _op("post", "Run the daily expiry sweep now", schemas.SweepAnswer, schemas.SweepBody, ("400", "401", "403")),
        "/ops/sweeps/metering": _op("post", "Run pay-as-you-go metering now", schemas.SweepAnswer, schemas.SweepBody, ("400", "401", "403")),
        "/ops/cluster-actions/drain": _op("post", "Run queued cluster actions now", schemas.DrainAnswer, errors=("400", "401")),
        "/ops/dead-letters": _list("Cluster actions that used up their attempts, oldest first", schemas.DeadLetters),
        "/ops/lists/expiring": _list("Active servers expiring within `days` days (an expiry already past first)", schemas.ExpiringList,
                                     _query("days", "default 7", type="integer", minimum=0, maximum=3660), AT_QUERY),
        "/ops/lists/awaiting-destruction": _list("Stopped servers awaiting destruction, soonest first (R-LIFE-3)", schemas.AwaitingDestructionList,
                                                 _query("days", "only those destroyed within this many days", type="integer", minimum=0, maximum=3660), AT_QUERY),
        "/ops/lists/arrears": _list("Accounts in arrears, deepest first (R-PAY-7)", schemas.ArrearsList),
        "/ops/lists/grants": _list("Free periods granted in a month (Asia/Shanghai)", schemas.GrantsList,
                                   _query("month", "YYYY-MM, default this month", type="string", pattern="^[0-9]{4}-(0[1-9]|1[0-2])$"), AT_QUERY),
        "/ops/background/drain": _op("post", "Run all queued background work now (shards of scheduled runs, announcements, recorded notifications)",
                                     schemas.DrainAnswer, errors=("400", "401")),
        "/ops/backfills": _op("post", 'Re-save every row of a table in the background so that old rows join a new index; body {"table": "servers" | "accounts"}, answer {"run_id", "table", "segments", "queued"}',
                              schemas.Open, errors=("400", "401")),
        "/ops/runs/{run_id}": {"parameters": _id("run_id"), **_op("get", "A run's summary so far, with `complete` (integration §7)", schemas.Open, errors=("401", "404"))},
        "/ops/dead-letters/{action_id}/replay": {"parameters": _id("action_id"), **_op("post", "Replay a dead cluster action", schemas.Open, errors=("400", "401", "404", "409"))},
        "/ops/audit": {"get": {**_page("ops", "audit")["get"], "summary": "Operator changes about no one server or account (price versions, runs by hand, replays), 100 at a time",
                               "responses": {"200": {"description": "ok", **_json(_ref(schemas.AuditPage))}, **_errors("400", "401")}}},
    }
    for name in SERVER_LISTS:
        paths[f"/ops/servers/{{server_id}}/{name}"] = {"parameters": server(), **_page("server", name)}
    for name in ACCOUNT_LISTS:
        paths[f"/ops/accounts/{{account_id}}/{name}"] = {"parameters": _id("account_id"), **_page("account", name)}
    components["Open"] = {"type": "object", "additionalProperties": True}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Kubernetes service billing backend", "version": "1.0.0",
                 "description": "Signed callbacks of the payment gateway and the ticketing system, and the operators' API."},
        "paths": paths,
        "components": {"schemas": components,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }
