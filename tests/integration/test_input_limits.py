"""integration §6 "Identifiers and limits" through the contract: the id alphabet in payloads (400 naming the
field) and paths (404), event ids unique per sender only, nesting depth, business times whose consequences
fall outside 2000–2199, the signature's `t`, and refunds naming unknown accounts. Refused = nothing changes."""
from __future__ import annotations

import json

import pytest

from tests import support
from tests.support import envelope, order_paid

PLAN_BODY = {"monthly_price": 10000, "hourly_price": 20, "effective_from": "2020-01-01T00:00:00+08:00"}


def new_order(server_id="srv-1", account_id="acc-1", order_id="ord-1", paid_at="2026-01-01T10:00:00+08:00", months=1):
    return order_paid(order_id, account_id, server_id, "new", paid_at, 10000 * months, billing_mode="monthly",
                      plan_id="std", region="cn-north-1", months=months)


def nothing_stored(api, server_id="srv-1", account_id="acc-1"):
    assert api.ops("GET", f"/ops/servers/{server_id}")[0] == 404
    assert api.ops("GET", f"/ops/accounts/{account_id}")[0] == 404


@pytest.mark.parametrize("field, value", [
    ("server_id", "srv#1"), ("server_id", "srv/1"), ("server_id", "srv 1"), ("server_id", "srv%1"),
    ("server_id", "srv-中"), ("server_id", ""), ("server_id", "s" * 129), ("account_id", "acc\n1"),
    ("order_id", "ord@1"), ("plan_id", "std?"),
])
def test_ids_outside_the_alphabet_in_a_payload_are_400_naming_the_field(priced, field, value):
    """integration §6: 1–128 characters of A–Z a–z 0–9 . _ : -; anything else 400, nothing changes."""
    data = new_order()
    data[field] = value
    status, body = priced.pay("order.paid", data)
    assert (status, body["error"]["code"], body["error"]["fields"]) == (400, "invalid_payload", [f"data.{field}"])
    nothing_stored(priced)


def test_the_whole_alphabet_at_the_longest_length_is_accepted(priced):
    server_id = ("AZaz09._:-" * 13)[:128]
    status, body = priced.pay("order.paid", new_order(server_id=server_id, account_id="a.b_c:d-E9"),
                              event_id=("e._:-" * 30)[:128])
    assert (status, body["outcome"]["decision"]) == (200, "applied")
    assert priced.server(server_id)["account_id"] == "a.b_c:d-E9"


@pytest.mark.parametrize("event_id", ["evt#1", "evt 1", "", "e" * 129])
def test_event_ids_outside_the_alphabet_are_400(priced, event_id):
    event = envelope("order.paid", new_order())
    event["id"] = event_id
    status, body = priced.deliver("/webhooks/payments", event, support.PAY_SECRET)
    assert (status, body["error"]["fields"]) == (400, ["id"])
    nothing_stored(priced)


@pytest.mark.parametrize("event_type, data, field", [
    ("filing.submitted", {"filing_id": "f 1", "server_id": "srv-1", "website": "w.cn", "is_change": False,
                          "submitted_at": "2026-01-02T00:00:00+08:00"}, "data.filing_id"),
    ("compensation.accepted", {"ticket_id": "t-1", "engineer_id": "eng/7", "accepted_at": "2026-01-02T00:00:00+08:00"},
     "data.engineer_id"),
])
def test_ticketing_ids_outside_the_alphabet_are_400(priced, event_type, data, field):
    status, body = priced.ticket(event_type, data)
    assert (status, body["error"]["fields"]) == (400, [field])


@pytest.mark.parametrize("path", [
    "/ops/servers/a%20b", "/ops/servers/a%2Fb", "/ops/servers/a%25b", "/ops/servers/%E4%B8%AD",
    "/ops/servers/" + "x" * 3000, "/ops/accounts/acc%23", "/ops/accounts/" + "a" * 129,
])
def test_path_ids_that_cannot_exist_are_404(priced, path):
    status, body = priced.ops("GET", path)
    assert (status, body["error"]["code"]) == (404, "not_found")


@pytest.mark.parametrize("plan_id", ["x" * 3000, "a%2Fb", "a%20b", "%E4%B8%AD", "std%23"])
def test_put_plan_with_an_impossible_id_is_404_and_creates_nothing(priced, plan_id):
    """Before: a 3 000-character plan id answered 500 (DynamoDB's key size limit)."""
    status, body = priced.ops("PUT", f"/ops/plans/{plan_id}", PLAN_BODY)
    assert (status, body["error"]["code"]) == (404, "not_found")
    for action in ("suspend", "resume", "terminate"):
        assert priced.ops("POST", f"/ops/servers/{plan_id}/{action}", {"reason": "violation"})[0] == 404
    assert priced.ops("POST", f"/ops/accounts/{plan_id}/violation", {"flag": True})[0] == 404
    assert priced.ops("POST", f"/ops/dead-letters/{plan_id}/replay")[0] == 404


def test_same_event_id_from_both_senders_on_one_server_at_one_instant_both_apply(priced):
    """integration §6: event ids are unique per sender. Before, both built the same ledger key and the
    second answered 409 event_in_progress on every retry."""
    priced.buy_monthly("srv-1", "2026-01-01T10:00:00+08:00", months=6)
    for kind, at in [("submitted", "2026-01-05T09:00:00+08:00"), ("approved", "2026-01-08T09:00:00+08:00")]:
        data = {"filing_id": "f-1", f"{kind}_at": at}
        if kind == "submitted":
            data.update(server_id="srv-1", website="one.example.cn", is_change=False)
        assert priced.ticket(f"filing.{kind}", data)[0] == 200
    priced.ticket("compensation.requested", {"ticket_id": "t-1", "filing_id": "f-1", "server_id": "srv-1",
                                             "requested_at": "2026-01-09T10:00:00+08:00"})
    instant = "2026-01-12T10:00:00+08:00"
    status, paid = priced.pay("order.paid", order_paid("ord-r", "acc-1", "srv-1", "renewal", instant, 10000, months=1),
                              event_id="evt-shared")
    assert (status, paid["outcome"]["decision"]) == (200, "applied")
    status, granted = priced.ticket("compensation.accepted", {"ticket_id": "t-1", "engineer_id": "eng-1",
                                                              "accepted_at": instant}, event_id="evt-shared")
    assert (status, granted["result"], granted["outcome"]["decision"]) == (200, "processed", "granted")
    rows = [(r["kind"], r.get("event_id")) for r in priced.server("srv-1")["ledger"] if r["at"] == instant]
    assert sorted(rows) == [("free_period", "evt-shared"), ("renewal", "evt-shared")]
    # and each sender's duplicate still answers its own first outcome
    _, again = priced.pay("order.paid", order_paid("ord-r", "acc-1", "srv-1", "renewal", instant, 10000, months=1),
                          event_id="evt-shared")
    assert (again["result"], again["outcome"]) == ("duplicate", paid["outcome"])


def nested(depth: int) -> str:
    """JSON text of `depth` objects inside each other (built as text: json.dumps itself would recurse)."""
    return '{"x":' * depth + "1" + "}" * depth


def with_extra(event: dict, extra_json: str) -> bytes:
    text = json.dumps(event)
    return (text[:-2] + ', "extra": ' + extra_json + "}}").encode()  # inside "data"


@pytest.mark.parametrize("depth", [31, 1000, 40_000])  # 40 000 levels: 240 KB, under the 256 KiB limit
def test_deep_nesting_on_a_webhook_is_400(priced, depth):
    event = envelope("order.paid", new_order())
    status, body = priced.deliver("/webhooks/payments", event, support.PAY_SECRET, raw=with_extra(event, nested(depth)))
    assert (status, body["error"]["code"], body["error"]["fields"]) == (400, "invalid_payload", ["body"])
    nothing_stored(priced)


def test_nesting_up_to_the_limit_is_accepted(priced):
    event = envelope("order.paid", new_order())
    raw = with_extra(event, nested(30))  # envelope (1) → data (2) → extra: 30 more = 32 levels
    status, body = priced.deliver("/webhooks/payments", event, support.PAY_SECRET, raw=raw)
    assert (status, body["outcome"]["decision"]) == (200, "applied")


@pytest.mark.parametrize("method, path", [
    ("POST", "/ops/servers/srv-1/suspend"), ("POST", "/ops/servers/srv-1/resume"),
    ("POST", "/ops/servers/srv-1/terminate"), ("POST", "/ops/accounts/acc-1/violation"),
    ("PUT", "/ops/plans/std"), ("POST", "/ops/sweeps/expiry"), ("POST", "/ops/sweeps/metering"),
])
def test_deep_nesting_on_every_ops_body_is_400(priced, method, path):
    priced.buy_monthly("srv-1", "2026-01-01T10:00:00+08:00")
    before = priced.server("srv-1")
    headers = {"Authorization": f"Bearer {support.OPS_TOKEN}", "Content-Type": "application/json"}
    for raw in ('{"reason": "violation", "flag": true, "n": ' + nested(1000) + "}", "[" * 5000 + "]" * 5000,
                '{"reason": "violation", "flag": true, "n": ' + nested(40) + "}"):
        response = getattr(priced.client.http, method.lower())(path, headers=headers, body=raw)
        assert response.status_code == 400, response.body
        assert json.loads(response.body)["error"]["code"] == "invalid_payload"
    assert priced.server("srv-1") == before


@pytest.mark.parametrize("paid_at, months", [
    ("2199-12-31T10:00:00+08:00", 1),   # the expiry would be in 2200
    ("2199-12-20T10:00:00+08:00", 1),   # expiry 2200-01-20
    ("2199-11-28T10:00:00+08:00", 1),   # expiry 2199-12-28, but its retention ends 2200-01-05
    ("2197-06-01T10:00:00+08:00", 36),
])
def test_an_order_whose_consequences_leave_the_stored_range_is_400(priced, paid_at, months):
    status, body = priced.pay("order.paid", new_order(paid_at=paid_at, months=months))
    assert (status, body["error"]["code"]) == (400, "invalid_payload")
    nothing_stored(priced)


def test_the_last_storable_order_is_accepted_and_viewable(priced):
    """Expiry 2199-12-20, retention through 12-27 → retain_until 2199-12-28: inside the range."""
    status, body = priced.pay("order.paid", new_order(paid_at="2199-11-20T10:00:00+08:00"))
    assert (status, body["outcome"]["server"]["expires_at"]) == (200, "2199-12-20T10:00:00+08:00")
    priced.sweep("2199-12-21T00:10:00+08:00")
    assert priced.server("srv-1")["retain_until"] == "2199-12-28T00:00:00+08:00"
    assert priced.ops("GET", "/ops/accounts/acc-1")[0] == 200


def test_a_renewal_past_the_range_is_400_and_changes_nothing(priced):
    status, body = priced.pay("order.paid", new_order(paid_at="2196-06-01T10:00:00+08:00", months=36))
    assert (status, body["outcome"]["server"]["expires_at"]) == (200, "2199-06-01T10:00:00+08:00")
    before = priced.server("srv-1")
    status, body = priced.pay("order.paid", order_paid("ord-2", "acc-1", "srv-1", "renewal", "2197-01-01T10:00:00+08:00",
                                                       70000, months=7))  # would expire 2200-01-01
    assert (status, body["error"]["code"]) == (400, "invalid_payload")
    assert priced.server("srv-1") == before


def test_a_refund_naming_an_unknown_account_is_held_and_creates_no_account(priced):
    """integration §1 creates accounts for new orders and top-ups only. The order exists, so this is not an
    unknown reference a retry could fix: it is held for review (order_mismatch) on the order's account."""
    priced.buy_monthly("srv-1", "2026-01-01T10:00:00+08:00")
    status, body = priced.pay("order.refunded", {"order_id": "ord-srv-1-new", "account_id": "acc-nobody",
                                                 "server_id": "srv-1", "amount": 10000,
                                                 "refunded_at": "2026-01-05T00:00:00+08:00"})
    assert (status, body["outcome"]["decision"], body["outcome"]["reason"]) == (200, "held_for_review", "order_mismatch")
    assert priced.ops("GET", "/ops/accounts/acc-nobody")[0] == 404
    rows = priced.account("acc-1")["ledger"]
    assert [(r["kind"], r.get("cash")) for r in rows][-1] == ("held_for_review", 10000)
    assert priced.server("srv-1")["state"] == "active"


@pytest.mark.parametrize("t_text", ["0{t}", "+{t}", "{t_}", " {t}"])
def test_signature_t_must_be_plain_digits(priced, t_text):
    import time

    from chalicelib.webhooks.signature import sign

    now = int(time.time())
    body = support.dumps(envelope("order.paid", new_order()))
    t_value = t_text.format(t=now, t_=f"{now:_}")
    header = f"t={t_value},v1={sign(support.PAY_SECRET, now, body)}"
    status, answer = priced.deliver("/webhooks/payments", None, support.PAY_SECRET, raw=body,
                                    headers={"X-Signature": header})
    assert (status, answer["error"]["code"]) == (401, "invalid_signature")
    nothing_stored(priced)


def test_crossing_zero_twice_at_one_instant_applies_both_changes(priced):
    """Notification keys include their trigger: before, an arrears crossing at the instant of an earlier
    one (metering, a top-up back to zero, then a refund, all at 03:00) repeated `arrears#<time>` and
    `stopped#arrears#<time>`, so the refund answered 409 event_in_progress on every retry."""
    priced.plan("std", 10000, 25, "2026-01-01T02:00:00+08:00")
    priced.pay("order.paid", order_paid("ord-p", "acc-p", "srv-p", "new", "2026-01-01T00:00:00+08:00", 50,
                                        billing_mode="payg", plan_id="std", region="cn-north-1"))
    assert priced.meter("2026-01-01T03:00:00+08:00")["hours"] == 4  # 20 + 20 + 25 + 25 = 90 → -40
    status, body = priced.pay("account.topped_up", {"account_id": "acc-p", "amount": 40,
                                                    "topped_up_at": "2026-01-01T03:00:00+08:00"})
    assert (status, body["outcome"]["account"]["balance"]) == (200, 0)
    status, body = priced.pay("order.refunded", {"order_id": "ord-p", "account_id": "acc-p", "server_id": "srv-p",
                                                 "amount": 50, "refunded_at": "2026-01-01T03:00:00+08:00"})
    assert (status, body["outcome"]["decision"]) == (200, "applied"), body
    account = priced.account("acc-p")
    assert (account["balance"], account["in_arrears"]) == (-50, True)
    assert [n["kind"] for n in account["notifications"]] == ["arrears", "arrears"]
    view = priced.server("srv-p")
    assert (view["state"], view["stop_reason"]) == ("stopped", "terminated")


def payg_order(paid_at: str, amount: int = 0, server_id="srv-p", account_id="acc-p", order_id="ord-p") -> dict:
    return order_paid(order_id, account_id, server_id, "new", paid_at, amount, billing_mode="payg", plan_id="std",
                      region="cn-north-1")


@pytest.mark.parametrize("paid_at", ["2199-12-31T20:00:00+08:00", "2199-12-25T00:00:00+08:00"])
def test_a_payg_order_whose_arrears_retention_would_leave_the_range_is_400(priced, paid_at):
    """integration §6: a payg server's hours run from paid_at, and arrears at any metering from then stops it
    with a retention to 00:00 of the 8th local day (R-PAY-7, R-LIFE-3). From 2199-12-25 (Asia/Shanghai) that
    is 2200-01-02 or later, which the system cannot store: refused when it arrives, naming the field.
    Before, it was accepted and every metering run then counted an error while the server kept running."""
    status, body = priced.pay("order.paid", payg_order(paid_at))
    assert (status, body["error"]["code"], body["error"]["fields"]) == (400, "invalid_payload", ["data.paid_at"])
    nothing_stored(priced, "srv-p", "acc-p")


def test_the_last_payg_start_is_accepted_and_its_arrears_are_stored(priced):
    """Paid 2199-12-24 23:00 (+08:00), metered at 23:59: one hour (20 fen) → balance -20 → stopped for arrears,
    retained to 2200-01-01T00:00+08:00 (2199-12-31T16:00Z, inside the range); the run counts no error."""
    assert priced.pay("order.paid", payg_order("2199-12-24T23:00:00+08:00"))[0] == 200
    run = priced.meter("2199-12-24T23:59:59+08:00")
    assert (run["hours"], run["errors"]) == (1, 0), run
    view = priced.server("srv-p")
    assert (view["state"], view["stop_reason"], view["retain_until"]) == ("stopped", "arrears", "2200-01-01T00:00:00+08:00")
    assert (priced.account("acc-p")["balance"], priced.account("acc-p")["in_arrears"]) == (-20, True)


def test_a_metering_run_whose_arrears_retention_would_leave_the_range_is_400_and_charges_nothing(priced):
    assert priced.pay("order.paid", payg_order("2199-12-24T20:00:00+08:00"))[0] == 200
    status, body = priced.ops("POST", "/ops/sweeps/metering", {"now": "2199-12-25T00:00:00+08:00"})
    assert (status, body["error"]["code"], body["error"]["fields"]) == (400, "invalid_payload", ["now"])
    account = priced.account("acc-p")
    assert (account["balance"], [row["kind"] for row in account["ledger"]]) == (0, ["order_paid"])
    assert priced.server("srv-p")["state"] == "active"


def test_balance_changes_whose_arrears_retention_would_leave_the_range_are_400_and_change_nothing(priced):
    """A top-up or a refund changes the balance at its time (R-PAY-7: servers stop or start from it), so the
    same bound applies to topped_up_at and refunded_at."""
    status, body = priced.pay("account.topped_up", {"account_id": "acc-t", "amount": 100,
                                                    "topped_up_at": "2199-12-25T00:00:00+08:00"})
    assert (status, body["error"]["fields"]) == (400, ["data.topped_up_at"])
    assert priced.ops("GET", "/ops/accounts/acc-t")[0] == 404
    assert priced.pay("order.paid", payg_order("2199-12-20T10:00:00+08:00", amount=500))[0] == 200
    before = priced.account("acc-p")
    status, body = priced.pay("order.refunded", {"order_id": "ord-p", "account_id": "acc-p", "server_id": "srv-p",
                                                 "amount": 500, "refunded_at": "2199-12-28T10:00:00+08:00"})
    assert (status, body["error"]["fields"]) == (400, ["data.refunded_at"])
    assert priced.account("acc-p") == before
    status, body = priced.pay("account.topped_up", {"account_id": "acc-p", "amount": 100,
                                                    "topped_up_at": "2199-12-24T23:59:59+08:00"})
    assert (status, body["outcome"]["account"]["balance"]) == (200, 600)


@pytest.mark.parametrize("action, body", [("terminate", {"reason": "breach"}), ("resume", {})])
def test_an_operator_time_from_which_a_retention_would_leave_the_range_is_400_naming_at(priced, action, body):
    """A termination, or a hold lifted from an expired server, starts the retention at `at` (R-LIFE-3, E-1)."""
    priced.buy_monthly("srv-1", "2199-10-01T10:00:00+08:00")  # expires 2199-11-01
    assert priced.ops("POST", "/ops/servers/srv-1/suspend", {"reason": "violation", "at": "2199-10-02T00:00:00+08:00"})[0] == 200
    before = priced.server("srv-1")
    status, answer = priced.ops("POST", f"/ops/servers/srv-1/{action}", {**body, "at": "2199-12-25T00:00:00+08:00"})
    assert (status, answer["error"]["code"], answer["error"]["fields"]) == (400, "invalid_payload", ["at"])
    assert priced.server("srv-1") == before
