"""The `billing` tool's pure pieces: signing, --set parsing, trigger templates, routing, table rendering."""
from __future__ import annotations

import io
import json

import pytest
import stripe

from cli import main as cli

T = 1767225600  # 2026-01-01T00:00:00Z


class FakeResponse:
    def __init__(self, status=200, body=None):
        self.status_code, self._body = status, body if body is not None else {"ok": True}
        self.text = json.dumps(self._body)

    def json(self):
        return self._body


@pytest.fixture
def sent(monkeypatch):
    """Captures what the CLI would put on the wire instead of sending it."""
    calls = []

    def fake(method, url, data=None, headers=None, timeout=None):
        calls.append({"method": method, "url": url, "body": data, "headers": headers or {}})
        return FakeResponse()

    monkeypatch.setattr(cli.requests, "request", fake)
    for variable, _ in cli.ENV.values():
        monkeypatch.delenv(variable, raising=False)
    return calls


# ---- signing -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("body", [b'{"id":"evt_1","type":"order.paid"}', b"", '{"website":"\u4f8b.cn"}'.encode()])
def test_signature_matches_an_independent_signer(body):
    expected = stripe.WebhookSignature.generate_signature_header(body.decode(), "whsec_x", T)
    assert cli.sign("whsec_x", body, T) == expected


def test_sign_command_reads_raw_stdin(monkeypatch, capsys):
    body = b'{"a": 1}\n'
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(body)))
    assert cli.main(["sign", "--secret", "s3", "--timestamp", str(T)]) == 0
    assert capsys.readouterr().out.strip() == stripe.WebhookSignature.generate_signature_header(body.decode(), "s3", T)


# ---- --set ---------------------------------------------------------------------------------------------
def test_set_values_are_json_when_they_parse():
    assert cli.parse_sets(["amount=10000", "is_change=false", "website=www.a.cn", "months=3",
                           'extra={"a": [1, true]}', "note=", "id=007", "url=a=b"]) == {
        "amount": 10000, "is_change": False, "website": "www.a.cn", "months": 3,
        "extra": {"a": [1, True]}, "note": "", "id": "007", "url": "a=b"}


def test_set_without_equals_is_refused():
    with pytest.raises(cli.CliError):
        cli.parse_sets(["amount"])


# ---- trigger templates -----------------------------------------------------------------------------------
def test_monthly_order_has_the_contract_fields():
    event_type, data, generated = cli.build_trigger(
        "monthly-order", {"server": "s1", "months": 3, "at": "2026-01-10T10:00:00+08:00"})
    assert event_type == "order.paid"
    assert data == {"order_id": generated["order_id"], "account_id": "acc-demo", "server_id": "s1",
                    "paid_at": "2026-01-10T10:00:00+08:00", "amount": 30000, "currency": "CNY", "kind": "new",
                    "billing_mode": "monthly", "plan_id": "std-2c4g", "region": "cn-north-1", "months": 3}
    assert list(generated) == ["order_id"] and generated["order_id"].startswith("ord_")
    assert isinstance(data["amount"], int) and isinstance(data["months"], int)


def test_generated_ids_are_reported_and_given_ids_kept():
    _, data, generated = cli.build_trigger("payg-order", {"amount": 500})
    assert data["server_id"] == generated["server_id"] and data["server_id"].startswith("srv_")
    assert (data["kind"], data["billing_mode"], data["amount"]) == ("new", "payg", 500)
    assert "months" not in data
    _, data, generated = cli.build_trigger("payg-order", {"server": "s9", "order": "o9"})
    assert generated == {} and (data["server_id"], data["order_id"], data["amount"]) == ("s9", "o9", 0)


@pytest.mark.parametrize("name, options, event_type, fields", [
    ("renewal", {"server": "s1", "months": 2}, "order.paid",
     {"order_id", "account_id", "server_id", "kind", "paid_at", "amount", "currency", "months"}),
    ("upgrade", {"server": "s1"}, "order.paid",
     {"order_id", "account_id", "server_id", "kind", "paid_at", "amount", "currency", "plan_id"}),
    ("refund", {"server": "s1", "order": "o1"}, "order.refunded",
     {"order_id", "account_id", "server_id", "amount", "refunded_at"}),
    ("top-up", {}, "account.topped_up", {"account_id", "amount", "topped_up_at"}),
    ("filing-submitted", {"server": "s1"}, "filing.submitted",
     {"filing_id", "server_id", "website", "is_change", "submitted_at"}),
    ("filing-approved", {"filing": "f1"}, "filing.approved", {"filing_id", "approved_at"}),
    ("filing-withdrawn", {"filing": "f1"}, "filing.withdrawn", {"filing_id", "withdrawn_at"}),
    ("filing-rejected", {"filing": "f1"}, "filing.rejected", {"filing_id", "rejected_at"}),
    ("compensation-requested", {"filing": "f1", "server": "s1"}, "compensation.requested",
     {"ticket_id", "filing_id", "server_id", "requested_at"}),
    ("compensation-accepted", {"ticket": "t1"}, "compensation.accepted", {"ticket_id", "engineer_id", "accepted_at"}),
])
def test_every_trigger_builds_its_contract_payload(name, options, event_type, fields):
    built_type, data, _ = cli.build_trigger(name, {"at": "2026-01-10T10:00:00+08:00", **options})
    assert built_type == event_type
    assert set(data) == fields
    assert all(isinstance(data[k], int) and not isinstance(data[k], bool) for k in ("amount", "months") if k in data)


def test_trigger_defaults_and_types():
    assert cli.build_trigger("renewal", {"server": "s1", "months": 2})[1]["amount"] == 20000
    assert cli.build_trigger("renewal", {"server": "s1", "months": 2, "price": 30000})[1]["amount"] == 60000
    assert cli.build_trigger("upgrade", {"server": "s1"})[1]["plan_id"] == "pro-4c8g"
    assert cli.build_trigger("upgrade", {"server": "s1", "plan": "x"})[1]["plan_id"] == "x"
    assert cli.build_trigger("top-up", {})[1]["amount"] == 10000
    filing = cli.build_trigger("filing-submitted", {"server": "s1"})[1]
    assert filing["is_change"] is False and filing["website"] == "www.example.cn"
    assert cli.build_trigger("filing-submitted", {"server": "s1", "is_change": True})[1]["is_change"] is True
    assert cli.build_trigger("compensation-accepted", {"ticket": "t1"})[1]["engineer_id"] == "eng-1"
    at = cli.build_trigger("top-up", {})[1]["topped_up_at"]
    assert at.endswith("+08:00")


@pytest.mark.parametrize("name, options, missing", [
    ("renewal", {}, "--server"), ("refund", {"server": "s1"}, "--order"), ("filing-approved", {}, "--filing"),
    ("compensation-accepted", {}, "--ticket"), ("compensation-requested", {"server": "s1"}, "--filing"),
])
def test_triggers_that_name_existing_things_need_them(name, options, missing):
    with pytest.raises(cli.CliError, match=missing):
        cli.build_trigger(name, options)


# ---- routing and the wire ------------------------------------------------------------------------------
@pytest.mark.parametrize("event_type, path", [
    ("order.paid", "/webhooks/payments"), ("order.refunded", "/webhooks/payments"),
    ("account.topped_up", "/webhooks/payments"), ("filing.submitted", "/webhooks/ticketing"),
    ("filing.approved", "/webhooks/ticketing"), ("compensation.requested", "/webhooks/ticketing"),
    ("compensation.accepted", "/webhooks/ticketing"),
])
def test_types_go_to_their_webhook(event_type, path):
    assert cli.WEBHOOKS[cli.sender_for(event_type)] == path


def test_unknown_type_needs_to(sent, capsys):
    with pytest.raises(cli.CliError):
        cli.sender_for("invoice.paid")
    assert cli.main(["send", "invoice.paid"]) == 1
    assert cli.main(["send", "invoice.paid", "--to", "ticketing"]) == 0
    assert sent[-1]["url"] == "http://127.0.0.1:8000/webhooks/ticketing"


def test_send_signs_the_exact_body_with_the_senders_secret(sent, capsys, monkeypatch):
    monkeypatch.setenv("TICKETING_WEBHOOK_SECRET", "tick")
    code = cli.main(["send", "filing.approved", "--data", '{"filing_id": "f1"}',
                     "--set", "approved_at=2026-01-10T10:00:00+08:00",
                     "--id", "evt_fixed", "--api", "http://example.test:9/"])
    assert code == 0
    call = sent[0]
    assert (call["method"], call["url"]) == ("POST", "http://example.test:9/webhooks/ticketing")
    assert call["headers"]["Content-Type"] == "application/json"
    event = json.loads(call["body"])
    assert event["id"] == "evt_fixed" and event["type"] == "filing.approved"
    assert event["created_at"].endswith("+08:00")
    assert event["data"] == {"filing_id": "f1", "approved_at": "2026-01-10T10:00:00+08:00"}
    t = int(call["headers"]["X-Signature"].split(",")[0][2:])
    independent = stripe.WebhookSignature.generate_signature_header(call["body"].decode(), "tick", t)
    assert call["headers"]["X-Signature"] == independent
    out = capsys.readouterr().out
    assert "HTTP 200" in out and "evt_fixed" in out


def test_trigger_uses_the_payments_secret_and_prints_generated_ids(sent, capsys):
    assert cli.main(["trigger", "monthly-order", "--months", "2", "--secret", "p", "--set", "region=cn-east-1"]) == 0
    call = sent[0]
    assert call["url"].endswith("/webhooks/payments")
    data = json.loads(call["body"])["data"]
    assert (data["amount"], data["region"]) == (20000, "cn-east-1")
    t = int(call["headers"]["X-Signature"].split(",")[0][2:])
    assert call["headers"]["X-Signature"] == cli.sign("p", call["body"], t)
    assert f"ids: order_id={data['order_id']} server_id={data['server_id']}" in capsys.readouterr().out


def test_ops_calls_carry_the_bearer_token(sent, capsys):
    cli.main(["sweep", "expiry", "--now", "2026-02-11T00:10:00+08:00", "--token", "tk"])
    cli.main(["sweep", "metering"])
    cli.main(["drain"])
    cli.main(["drain", "--background"])
    cli.main(["dead-letters", "--replay", "a1"])
    cli.main(["plan", "std-2c4g", "--monthly", "10000", "--hourly", "20",
              "--effective-from", "2020-01-01T00:00:00+08:00"])
    assert [(c["method"], c["url"].removeprefix("http://127.0.0.1:8000"), c["body"] and json.loads(c["body"]))
            for c in sent] == [
        ("POST", "/ops/sweeps/expiry", {"now": "2026-02-11T00:10:00+08:00"}),
        ("POST", "/ops/sweeps/metering", {}),
        ("POST", "/ops/cluster-actions/drain", {}),
        ("POST", "/ops/background/drain", {}),
        ("POST", "/ops/dead-letters/a1/replay", {}),
        ("PUT", "/ops/plans/std-2c4g", {"monthly_price": 10000, "hourly_price": 20,
                                        "effective_from": "2020-01-01T00:00:00+08:00"}),
    ]
    assert sent[0]["headers"]["Authorization"] == "Bearer tk"
    assert sent[1]["headers"]["Authorization"] == "Bearer local-ops-token"


def test_non_2xx_exits_1(monkeypatch, capsys):
    monkeypatch.setattr(cli.requests, "request", lambda *a, **k: FakeResponse(404, {"error": {"code": "not_found"}}))
    assert cli.main(["server", "nope"]) == 1
    assert "HTTP 404" in capsys.readouterr().out


# ---- tables ----------------------------------------------------------------------------------------------
SERVER_VIEW = {
    "server_id": "s1", "account_id": "acc-1", "state": "stopped", "billing_mode": "monthly", "plan_id": "std-2c4g",
    "region": "cn-north-1", "expires_at": "2026-02-10T10:00:00+08:00", "stop_reason": "expired",
    "stop_reasons": ["expired", "arrears"], "termination_reason": None, "retain_until": None,
    "free_period": {"decision": "granted", "days": 3},
    "cluster_actions": [{"id": "a1", "kind": "stop", "status": "succeeded", "attempts": 1},
                        {"id": "a22", "kind": "start", "status": "dead", "attempts": 5, "error": "no kubeconfig"}],
    "notifications": [],
    "ledger": [{"at": "2026-01-10T10:00:00+08:00", "kind": "order_paid", "cash": 10000, "rule": "R-PAY-1",
                "event_id": "evt_1", "expires_at_after": "2026-02-10T10:00:00+08:00"}],
}


def test_server_view_table():
    lines = cli.render_view(SERVER_VIEW)
    assert lines[:12] == [
        "server_id           s1",
        "account_id          acc-1",
        "state               stopped",
        "billing_mode        monthly",
        "plan_id             std-2c4g",
        "region              cn-north-1",
        "expires_at          2026-02-10T10:00:00+08:00",
        "stop_reason         expired",
        "stop_reasons        expired, arrears",
        "termination_reason  -",
        "retain_until        -",
        "free_period         decision=granted days=3",
    ]
    assert lines[12:] == [
        "",
        "cluster_actions (2)",
        "  id   kind   status     attempts  error",
        "  a1   stop   succeeded  1",
        "  a22  start  dead       5         no kubeconfig",
        "",
        "notifications (0)",
        "",
        "ledger (1)",
        "  at                         kind        cash   expires_at_after           rule     event_id",
        "  2026-01-10T10:00:00+08:00  order_paid  10000  2026-02-10T10:00:00+08:00  R-PAY-1  evt_1",
    ]


def test_view_command_prints_table_or_json(monkeypatch, capsys):
    monkeypatch.setattr(cli.requests, "request", lambda *a, **k: FakeResponse(200, SERVER_VIEW))
    assert cli.main(["server", "s1"]) == 0
    assert "state               stopped" in capsys.readouterr().out.splitlines()
    assert cli.main(["server", "s1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == SERVER_VIEW


def test_a_view_of_rows_only_starts_with_its_table():
    items = [{"id": "a1", "server_id": "s1", "kind": "stop", "attempts": 5, "error": "x"}]
    assert cli.render_view({"items": items}) == [
        "items (1)",
        "  id  server_id  kind  attempts  error",
        "  a1  s1         stop  5         x",
    ]
    assert cli.render_view({"items": []}) == ["items (0)"]


def test_audit_table_and_older_entries_flags_in_the_heading():
    """integration §6: the audit list is a table like the others; a list with older entries says how to see them."""
    view = {"server_id": "s1",
            "ledger": [{"at": "2026-01-10T10:00:00+08:00", "kind": "renewal", "rule": "R-PAY-3"}], "ledger_next": "Y3Vy",
            "audit": [{"at": "2026-01-12T09:00:00+08:00", "action": "suspend", "actor": "alice",
                       "reason": "violation", "note": "phishing"},
                      {"at": "2026-01-13T09:00:00+08:00", "action": "resume", "actor": "bob", "note": "ok"}],
            "audit_next": None}
    assert cli.render_view(view) == [
        "server_id  s1",
        "",
        "ledger (1, older: --list ledger --before Y3Vy)",
        "  at                         kind     rule",
        "  2026-01-10T10:00:00+08:00  renewal  R-PAY-3",
        "",
        "audit (2)",
        "  at                         action   actor  reason     note",
        "  2026-01-12T09:00:00+08:00  suspend  alice  violation  phishing",
        "  2026-01-13T09:00:00+08:00  resume   bob               ok",
    ]


def test_list_pages_and_the_ops_trail_are_requested_with_their_cursor(sent, capsys):
    assert cli.main(["server", "s1", "--list", "ledger", "--before", "Y3Vy"]) == 0
    assert cli.main(["account", "acc-1", "--list", "servers"]) == 0
    assert cli.main(["audit", "--before", "QQ"]) == 0
    assert [(c["method"], c["url"]) for c in sent] == [
        ("GET", "http://127.0.0.1:8000/ops/servers/s1/ledger?before=Y3Vy"),
        ("GET", "http://127.0.0.1:8000/ops/accounts/acc-1/servers"),
        ("GET", "http://127.0.0.1:8000/ops/audit?before=QQ")]
    assert cli.main(["server", "s1", "--before", "Y3Vy"]) == 1
    assert "--before needs --list" in capsys.readouterr().err
