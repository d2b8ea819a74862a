"""integration §1 answers for the signed callbacks: signature, transport, validation, idempotency, concurrency."""
from __future__ import annotations

import json
import threading
import time

import pytest

from tests import support
from tests.support import envelope, order_paid


def monthly(event_id="evt-1", server="srv-1", amount=10000):
    return envelope("order.paid", order_paid("ord-" + server, "acc-1", server, "new", "2026-01-10T10:00:00+08:00",
                                             amount, billing_mode="monthly", plan_id="std", region="cn-north-1",
                                             months=1), event_id)


def post(api, body: bytes, headers: dict, path="/webhooks/payments"):
    response = api.client.http.post(path, headers=headers, body=body)
    return response.status_code, json.loads(response.body)


def assert_nothing_stored(api):
    status, _ = api.ops("GET", "/ops/accounts/acc-1")
    assert status == 404


# ---- signatures ----------------------------------------------------------------------------------
def test_rotated_secret_and_several_v1_entries_are_accepted(priced):
    body = support.dumps(monthly())
    t = int(time.time())
    bad = support.sign(body, "wrong", t).split(",")[1]
    good_old = support.sign(body, support.PAY_SECRET_OLD, t).split(",")[1]
    status, answer = post(priced, body, {"Content-Type": "application/json", "X-Signature": f"t={t},{bad},{good_old}"})
    assert status == 200 and answer["outcome"]["decision"] == "applied"


@pytest.mark.parametrize("header", [None, "", "garbage", "t=abc,v1=00", "t=123", "v1=abcd"])
def test_missing_or_malformed_signature_is_401_invalid_signature(priced, header):
    body = support.dumps(monthly())
    headers = {"Content-Type": "application/json"}
    if header is not None:
        headers["X-Signature"] = header
    status, answer = post(priced, body, headers)
    assert (status, answer["error"]["code"]) == (401, "invalid_signature")
    assert_nothing_stored(priced)


def test_ticketing_secret_never_validates_a_payment_and_vice_versa(priced):
    status, answer = priced.deliver("/webhooks/payments", monthly(), support.TICKET_SECRET)
    assert (status, answer["error"]["code"]) == (401, "invalid_signature")
    event = envelope("filing.withdrawn", {"filing_id": "f1", "withdrawn_at": "2026-01-01T00:00:00+08:00"})
    status, answer = priced.deliver("/webhooks/ticketing", event, support.PAY_SECRET)
    assert (status, answer["error"]["code"]) == (401, "invalid_signature")
    assert_nothing_stored(priced)


@pytest.mark.parametrize("offset", [-301, 302])
def test_signature_older_or_newer_than_300_s_is_stale(priced, offset):
    # `t` is whole seconds and the server reads its clock a moment after signing: -301 from the
    # floor of the signing time is always more than 300 s old; ahead, +302 from the floor stays more
    # than 300 s ahead for the whole next second (+301 did not, when the call crossed a second).
    # The exact 300/301 boundary is checked with a fixed clock in tests/unit/test_signature.py.
    body = support.dumps(monthly())
    header = support.sign(body, support.PAY_SECRET, int(time.time()) + offset)
    status, answer = post(priced, body, {"Content-Type": "application/json", "X-Signature": header})
    assert (status, answer["error"]["code"]) == (401, "stale_signature")
    assert_nothing_stored(priced)


def test_signature_is_checked_before_the_payload(priced):
    status, answer = post(priced, b"not json", {"Content-Type": "application/json", "X-Signature": "t=1,v1=00"})
    assert (status, answer["error"]["code"]) == (401, "invalid_signature")


# ---- transport -------------------------------------------------------------------------------------
def test_body_over_256_kib_is_413(priced):
    event = monthly()
    event["data"]["padding"] = "x" * (256 * 1024)
    status, answer = priced.deliver("/webhooks/payments", event, support.PAY_SECRET)
    assert (status, answer["error"]["code"]) == (413, "payload_too_large")
    assert_nothing_stored(priced)


def test_non_json_media_type_is_415(priced):
    body = support.dumps(monthly())
    status, answer = post(priced, body, {"Content-Type": "text/plain", "X-Signature": support.sign(body, support.PAY_SECRET)})
    assert (status, answer["error"]["code"]) == (415, "unsupported_media_type")
    assert_nothing_stored(priced)


def test_json_with_charset_is_accepted(priced):
    body = support.dumps(monthly())
    status, _ = post(priced, body, {"Content-Type": "application/json; charset=utf-8",
                                    "X-Signature": support.sign(body, support.PAY_SECRET)})
    assert status == 200


# ---- validation ------------------------------------------------------------------------------------
def _mutated(**changes):
    event = monthly()
    for key, value in changes.items():
        if value is ...:
            event["data"].pop(key)
        else:
            event["data"][key] = value
    return event


@pytest.mark.parametrize("event, field", [
    (_mutated(amount=...), "data.amount"),
    (_mutated(amount="10000"), "data.amount"),
    (_mutated(amount=100.5), "data.amount"),
    (_mutated(amount=-1), "data.amount"),
    (_mutated(currency="USD"), "data.currency"),
    (_mutated(months=0), "data.months"),
    (_mutated(months=37), "data.months"),
    (_mutated(months=...), "data.months"),
    (_mutated(paid_at="2026-01-10T10:00:00"), "data.paid_at"),
    (_mutated(paid_at="yesterday"), "data.paid_at"),
    (_mutated(kind="gift"), "data.kind"),
    (_mutated(billing_mode="weekly"), "data.billing_mode"),
    (_mutated(region=...), "data.region"),
    ({**monthly(), "type": "order.lost"}, "type"),
    ({k: v for k, v in monthly().items() if k != "id"}, "id"),
    ({**monthly(), "created_at": "2026-01-01"}, "created_at"),
])
def test_bad_values_are_400_naming_the_field_and_change_nothing(priced, event, field):
    status, answer = priced.deliver("/webhooks/payments", event, support.PAY_SECRET)
    assert status == 400, answer
    assert answer["error"]["code"] == "invalid_payload"
    assert field in answer["error"]["fields"]
    assert_nothing_stored(priced)


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b"\xff\xfe"])
def test_body_that_is_not_a_json_object_is_400(priced, raw):
    status, answer = priced.deliver("/webhooks/payments", {}, support.PAY_SECRET, raw=raw)
    assert (status, answer["error"]["code"]) == (400, "invalid_payload")


def test_unknown_extra_fields_are_ignored(priced):
    event = monthly()
    event["data"]["coupon"] = "XMAS"
    event["extra"] = 1
    status, answer = priced.deliver("/webhooks/payments", event, support.PAY_SECRET)
    assert status == 200 and answer["outcome"]["decision"] == "applied"


# ---- idempotency -----------------------------------------------------------------------------------
def test_duplicate_answers_the_first_outcome_and_changes_nothing(priced):
    first = priced.deliver("/webhooks/payments", monthly(), support.PAY_SECRET)
    reordered = json.dumps(dict(reversed(list(monthly().items()))), indent=2).encode()
    second = priced.deliver("/webhooks/payments", {}, support.PAY_SECRET, raw=reordered)
    assert first[0] == second[0] == 200
    assert second[1] == {**first[1], "result": "duplicate"}
    assert len(priced.server("srv-1")["ledger"]) == 1


def test_same_event_id_with_another_body_is_409(priced):
    priced.deliver("/webhooks/payments", monthly(), support.PAY_SECRET)
    status, answer = priced.deliver("/webhooks/payments", monthly(amount=20000), support.PAY_SECRET)
    assert (status, answer["error"]["code"]) == (409, "event_id_reused")
    assert priced.server("srv-1")["ledger"][0]["cash"] == 10000


def test_event_ids_are_per_sender(priced):
    """A ticketing event with a payment event's id is another event."""
    priced.deliver("/webhooks/payments", monthly("shared-id"), support.PAY_SECRET)
    event = envelope("filing.submitted", {"filing_id": "f1", "server_id": "srv-1", "website": "a.cn",
                                          "is_change": False, "submitted_at": "2026-01-11T00:00:00+08:00"}, "shared-id")
    status, answer = priced.deliver("/webhooks/ticketing", event, support.TICKET_SECRET)
    assert status == 200 and answer["result"] == "processed"


@pytest.mark.both_backends
def test_concurrent_deliveries_of_one_event_apply_once(priced):
    """Twelve threads deliver the same event against the emulator over HTTP: one applies."""
    from chalicelib.webhooks import catalog, delivery

    body = support.dumps(envelope("account.topped_up", {"account_id": "acc-c", "amount": 500,
                                                        "topped_up_at": "2026-01-01T00:00:00+08:00"}, "evt-same"))
    results, barrier = [], threading.Barrier(12)

    def deliver():
        barrier.wait()
        headers = {"content-type": "application/json", "x-signature": support.sign(body, support.PAY_SECRET)}
        try:
            results.append(delivery.deliver(source="payments", secrets=(support.PAY_SECRET,),
                                            types=catalog.PAYMENT_EVENTS, headers=headers, body=body)["result"])
        except Exception as exc:  # noqa: BLE001 - recorded and asserted below
            results.append(type(exc).__name__)

    threads = [threading.Thread(target=deliver) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("processed") == 1
    assert set(results) <= {"processed", "duplicate", "EventInProgress"}
    account = priced.account("acc-c")
    assert account["balance"] == 500
    assert len(account["ledger"]) == 1


@pytest.mark.both_backends
def test_concurrent_different_events_on_one_account_all_apply(priced):
    from chalicelib.webhooks import catalog, delivery

    barrier, errors = threading.Barrier(8), []

    def deliver(i):
        body = support.dumps(envelope("account.topped_up", {"account_id": "acc-m", "amount": 100 + i,
                                                            "topped_up_at": "2026-01-01T00:00:00+08:00"}, f"evt-{i}"))
        barrier.wait()
        headers = {"content-type": "application/json", "x-signature": support.sign(body, support.PAY_SECRET)}
        try:
            delivery.deliver(source="payments", secrets=(support.PAY_SECRET,), types=catalog.PAYMENT_EVENTS,
                             headers=headers, body=body)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=deliver, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    account = priced.account("acc-m")
    assert account["balance"] == sum(100 + i for i in range(8))
    assert len(account["ledger"]) == 8


@pytest.mark.both_backends
def test_twenty_concurrent_http_deliveries_of_one_order_apply_it_once(priced, http_api, backend):
    """integration §1 idempotency under a real race (on DynamoDB Local the transactions really collide and
    are cancelled with TransactionConflict): 20 simultaneous deliveries of one new order over HTTP each
    answer 200 processed/duplicate or 409 event_in_progress; the order is applied exactly once."""
    import requests

    body = support.dumps(monthly("evt-burst", server="srv-burst"))
    barrier, answers = threading.Barrier(20), []

    def deliver():
        headers = {"Content-Type": "application/json", "X-Signature": support.sign(body, support.PAY_SECRET)}
        barrier.wait()
        response = requests.post(http_api + "/webhooks/payments", data=body, headers=headers, timeout=120)
        answers.append((response.status_code, response.json().get("result") or response.json()["error"]["code"]))

    threads = [threading.Thread(target=deliver) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(answers) == 20
    assert set(answers) <= {(200, "processed"), (200, "duplicate"), (409, "event_in_progress")}, answers
    assert answers.count((200, "processed")) == 1
    view = priced.server("srv-burst")
    assert (view["state"], view["expires_at"]) == ("active", "2026-02-10T10:00:00+08:00")
    assert [(r["kind"], r.get("cash")) for r in view["ledger"]] == [("order_paid", 10000)]
    assert priced.account("acc-1")["balance"] == 0
