"""GET /openapi.json is a valid OpenAPI 3.1 document generated from the models, and the real requests
and answers of a whole scenario validate against it (so the document cannot drift from the code)."""
from __future__ import annotations

import json

import jsonschema
import pytest
from openapi_spec_validator import validate

from tests.support import envelope, order_paid


@pytest.fixture
def document(api):
    response = api.client.http.get("/openapi.json")
    assert response.status_code == 200
    doc = json.loads(response.body)
    validate(doc)
    return doc


def check(doc: dict, component: str, value) -> None:
    schema = {"$ref": f"#/components/schemas/{component}", "components": doc["components"]}
    jsonschema.Draft202012Validator(schema).validate(value)


def test_document_lists_every_contract_route_and_event(document):
    assert set(document["paths"]) == {
        "/webhooks/payments", "/webhooks/ticketing", "/ops/servers/{server_id}", "/ops/accounts/{account_id}",
        "/ops/servers/{server_id}/suspend", "/ops/servers/{server_id}/resume", "/ops/servers/{server_id}/terminate",
        "/ops/accounts/{account_id}/violation", "/ops/plans/{plan_id}", "/ops/sweeps/expiry", "/ops/sweeps/metering",
        "/ops/cluster-actions/drain", "/ops/dead-letters", "/ops/dead-letters/{action_id}/replay",
        "/ops/lists/expiring", "/ops/lists/awaiting-destruction", "/ops/lists/arrears", "/ops/lists/grants",
        "/ops/background/drain", "/ops/backfills", "/ops/runs/{run_id}",  # integration §7: a run's summary so far
        # integration §6: the operators' trail and the pages of the views' lists
        "/ops/audit", *(f"/ops/servers/{{server_id}}/{n}" for n in ("ledger", "notifications", "cluster_actions", "audit")),
        *(f"/ops/accounts/{{account_id}}/{n}" for n in ("ledger", "notifications", "audit", "servers"))}
    mapping = document["paths"]["/webhooks/payments"]["post"]["requestBody"]["content"]["application/json"]["schema"]["discriminator"]["mapping"]
    assert sorted(mapping) == ["account.topped_up", "order.paid", "order.refunded"]
    order = document["components"]["schemas"]["OrderPaid"]
    assert order["properties"]["amount"]["type"] == "integer"
    assert order["properties"]["currency"]["const"] == "CNY"


def test_real_requests_and_answers_validate_against_the_document(api, document):
    api.plan("std", 10000, 20)
    event = envelope("order.paid", order_paid("o1", "acc-1", "s1", "new", "2026-01-10T10:00:00+08:00", 10000,
                                              billing_mode="monthly", plan_id="std", region="cn-north-1", months=1))
    check(document, "event.order.paid", event)
    status, answer = api.deliver("/webhooks/payments", event, "pay_test_secret")
    check(document, "WebhookAnswer", answer)
    status, bad = api.pay("order.paid", {"order_id": "o2"})
    assert status == 400
    check(document, "Error", bad)
    api.sweep("2026-02-11T00:10:00+08:00")
    _, terminated = api.ops("POST", "/ops/servers/s1/terminate", {"reason": "security_incident", "at": "2026-02-12T00:00:00+08:00"})
    check(document, "TerminateAnswer", terminated)
    check(document, "ServerView", api.server("s1"))
    check(document, "AccountView", api.account("acc-1"))
    _, drained = api.ops("POST", "/ops/cluster-actions/drain")
    check(document, "DrainAnswer", drained)
    _, drained = api.ops("POST", "/ops/background/drain")  # integration §6
    check(document, "DrainAnswer", drained)
    _, letters = api.ops("GET", "/ops/dead-letters")
    check(document, "DeadLetters", letters)
    view = api.server("s1")
    assert view["audit"][0]["action"] == "terminate"
    _, account = api.ops("POST", "/ops/accounts/acc-1/violation", {"flag": False, "note": "checked"})
    check(document, "AccountView", account)
    for path, component in (("/ops/audit", "AuditPage"), ("/ops/servers/s1/ledger", "LedgerPage"),
                            ("/ops/servers/s1/notifications", "NotificationPage"),
                            ("/ops/servers/s1/cluster_actions", "ClusterActionPage"),
                            ("/ops/servers/s1/audit", "AuditPage"), ("/ops/accounts/acc-1/servers", "ServerIdPage"),
                            ("/ops/accounts/acc-1/ledger", "LedgerPage"), ("/ops/accounts/acc-1/audit", "AuditPage"),
                            ("/ops/accounts/acc-1/notifications", "NotificationPage")):
        status, answer = api.ops("GET", path)
        assert status == 200, (path, answer)
        assert answer["items"] or path == "/ops/accounts/acc-1/notifications", path  # no arrears, no price change
        check(document, component, answer)
    status, bad_cursor = api.ops("GET", "/ops/servers/s1/ledger?before=nope")
    assert status == 400
    check(document, "Error", bad_cursor)
    with pytest.raises(jsonschema.ValidationError):
        check(document, "event.order.paid", {**event, "data": {**event["data"], "amount": "10000"}})


def test_the_document_says_what_the_server_accepts(document):
    """integration §6: every id field and path parameter carries the id pattern and length, every time its
    format and 2000–2199 range, the money fields their bounds."""
    id_schema = {"pattern": "^[A-Za-z0-9._:-]{1,128}$", "minLength": 1, "maxLength": 128}
    for path, item in document["paths"].items():
        for parameter in item.get("parameters", []):
            assert {k: parameter["schema"][k] for k in id_schema} == id_schema, path
    schemas = document["components"]["schemas"]
    ids = times = 0

    def walk(name, schema):
        nonlocal ids, times
        for field, prop in schema.get("properties", {}).items():
            options = prop.get("anyOf", [prop])
            if field == "id" or field.endswith("_id"):
                assert any({k: o.get(k) for k in id_schema} == id_schema for o in options), (name, field)
                ids += 1
            if field in ("at", "now", "created_at") or field.endswith("_at") or field == "effective_from":
                assert any(o.get("format") == "date-time" and o.get("pattern") == "^2[01][0-9][0-9]-"
                           for o in options), (name, field)
                times += 1

    request_models = [n for n in schemas if n.startswith("event.") or n.endswith("Body") and n != "ErrorBody"]
    request_models += [e["data"]["$ref"].rsplit("/", 1)[-1] for e in
                       (schemas[n]["properties"] for n in schemas if n.startswith("event."))]
    for name in set(request_models):
        walk(name, schemas[name])
    assert ids >= 20 and times >= 15
    assert schemas["PriceVersionBody"]["properties"]["monthly_price"]["minimum"] == 0
    assert schemas["OrderPaid"]["properties"]["months"]["anyOf"][0]["maximum"] == 36
