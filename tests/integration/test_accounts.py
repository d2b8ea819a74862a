"""Accounts of any size and busy accounts (integration §7 "Nothing grows without bound", "409
event_in_progress means the same event"; SPEC E-10): the account row lists none of its servers, its
agreement ends whichever server closes last, and distinct events racing on one account are retried
inside and answered 429 busy (never 409) when they still lose."""
from __future__ import annotations

import json
import threading

import pytest

from tests import support
from tests.support import order_paid

PAID = "2026-01-01T10:00:00+08:00"


def refund(api, account_id: str, server_id: str, at: str, order_id: str | None = None):
    return api.pay("order.refunded", {"order_id": order_id or f"ord-{server_id}-new", "account_id": account_id,
                                      "server_id": server_id, "amount": 10000, "refunded_at": at})


def stored_account_row(account_id: str):
    from chalicelib.store import models as m

    return m.AccountRow.get(account_id, consistent_read=True)


# ---- E-10: the agreement ends when no server remains in service, whichever closes last -------------------
def test_E_10_refund_S1_then_the_sweep_destroys_S2_ends_the_agreement(priced):
    """S1 refunded 01-05 (terminated; R-LIFE-3 retain_until 01-13 00:00), S2 expires 02-01 10:00 (retain_until
    02-09 00:00). S1's destruction is not counted a second time; the agreement ends with S2's destruction."""
    priced.buy_monthly("s1", PAID, account="acc-e")
    priced.buy_monthly("s2", PAID, account="acc-e")
    assert refund(priced, "acc-e", "s1", "2026-01-05T10:00:00+08:00")[0] == 200
    assert priced.account("acc-e")["agreement_ended"] is False
    assert priced.sweep("2026-01-13T00:10:00+08:00")["destroy"] == 1
    assert priced.server("s1")["state"] == "destroyed"
    assert priced.account("acc-e")["agreement_ended"] is False  # s2 is still in service
    priced.sweep("2026-02-02T00:10:00+08:00")
    assert priced.server("s2")["state"] == "stopped"
    assert priced.account("acc-e")["agreement_ended"] is False  # stopped (expired) is still in service
    assert priced.sweep("2026-02-09T00:10:00+08:00")["destroy"] == 1
    account = priced.account("acc-e")
    assert (account["agreement_ended"], account["server_count"]) == (True, 2)


def test_E_10_the_sweep_destroys_S1_then_an_operator_terminates_S2_ends_the_agreement(priced):
    """S1 bought 01-01 is destroyed by the 02-09 sweep; S2 (bought 01-20, expires 02-20) stays in service
    until the operator terminates it on 02-10."""
    priced.buy_monthly("s1", PAID, account="acc-d")
    priced.buy_monthly("s2", "2026-01-20T10:00:00+08:00", account="acc-d")
    priced.sweep("2026-02-02T00:10:00+08:00")
    assert priced.sweep("2026-02-09T00:10:00+08:00")["destroy"] == 1
    assert priced.account("acc-d")["agreement_ended"] is False
    status, _ = priced.ops("POST", "/ops/servers/s2/terminate", {"reason": "user_closed",
                                                                "at": "2026-02-10T10:00:00+08:00"})
    assert status == 200
    assert priced.account("acc-d")["agreement_ended"] is True


def test_E_10_a_new_server_after_the_end_puts_the_account_back_in_service(priced):
    priced.buy_monthly("s1", PAID, account="acc-n")
    refund(priced, "acc-n", "s1", "2026-01-02T10:00:00+08:00")
    assert priced.account("acc-n")["agreement_ended"] is True
    priced.buy_monthly("s2", "2026-01-03T10:00:00+08:00", account="acc-n")
    account = priced.account("acc-n")
    assert (account["agreement_ended"], account["server_count"], account["servers"]) == (False, 2, ["s1", "s2"])


def _concurrently(http_api: str, events: list[dict], retry_busy: bool = False) -> list[list[tuple]]:
    """Each event from its own thread, all released at once; per event the (status, result or code,
    Retry-After) of each try (429 busy tried again at once when `retry_busy`, as a gateway would)."""
    import requests

    barrier, answers = threading.Barrier(len(events)), [None] * len(events)

    def send(i: int) -> None:
        body = support.dumps(events[i])
        tries = []
        barrier.wait()
        for _ in range(50 if retry_busy else 1):
            headers = {"Content-Type": "application/json", "X-Signature": support.sign(body, support.PAY_SECRET)}
            r = requests.post(http_api + "/webhooks/payments", data=body, headers=headers, timeout=120)
            answer = r.json()
            tries.append((r.status_code, answer.get("result") or answer["error"]["code"], r.headers.get("Retry-After")))
            if r.status_code != 429:
                break
        answers[i] = tries

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(events))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers


@pytest.mark.both_backends
def test_E_10_the_last_two_servers_closing_at_once_end_the_agreement(priced, http_api, backend):
    """Two refunds of the account's last two open servers race (on DynamoDB Local the transactions collide):
    each closes its server once, whichever commits last sees none left."""
    for sid in ("s1", "s2", "s3"):
        priced.buy_monthly(sid, PAID, account="acc-r")
    refund(priced, "acc-r", "s1", "2026-01-02T10:00:00+08:00")
    events = [support.envelope("order.refunded", {"order_id": f"ord-{sid}-new", "account_id": "acc-r",
                                                  "server_id": sid, "amount": 10000,
                                                  "refunded_at": "2026-01-03T10:00:00+08:00"}, f"evt-ref-{sid}")
              for sid in ("s2", "s3")]
    answers = _concurrently(http_api, events, retry_busy=True)
    assert [tries[-1][:2] for tries in answers] == [(200, "processed"), (200, "processed")], answers
    account = priced.account("acc-r")
    assert (account["agreement_ended"], account["server_count"]) == (True, 3)
    assert {priced.server(sid)["termination_reason"] for sid in ("s2", "s3")} == {"unsubscribed"}


@pytest.mark.both_backends
def test_E_10_the_last_server_closing_while_a_new_one_is_ordered_leaves_one_in_service(priced, http_api, backend):
    """Whichever of the two commits first, one server remains in service at the end: not ended."""
    priced.buy_monthly("s1", PAID, account="acc-o")
    events = [support.envelope("order.refunded", {"order_id": "ord-s1-new", "account_id": "acc-o", "server_id": "s1",
                                                  "amount": 10000, "refunded_at": "2026-01-03T10:00:00+08:00"},
                               "evt-ref-s1"),
              support.envelope("order.paid", order_paid("ord-s2-new", "acc-o", "s2", "new", "2026-01-03T10:00:00+08:00",
                                                        10000, billing_mode="monthly", plan_id="std",
                                                        region="cn-north-1", months=1), "evt-new-s2")]
    answers = _concurrently(http_api, events, retry_busy=True)
    assert [tries[-1][:2] for tries in answers] == [(200, "processed"), (200, "processed")], answers
    account = priced.account("acc-o")
    assert (account["agreement_ended"], account["server_count"], account["servers"]) == (False, 2, ["s1", "s2"])


# ---- busy accounts: distinct events are never 409; what still loses after retries is 429 busy -------------
@pytest.mark.both_backends
def test_contract_7_sixteen_concurrent_new_orders_on_one_account_are_never_409(priced, http_api, backend):
    """16 distinct new monthly orders on one (new) account at once: each answered 200 processed, or 429
    busy with Retry-After (tried again); none 409 event_in_progress; all 16 servers counted once."""
    events = [support.envelope("order.paid", order_paid(f"ord-b{i:02d}", "acc-busy", f"b{i:02d}", "new", PAID, 10000,
                                                        billing_mode="monthly", plan_id="std", region="cn-north-1",
                                                        months=1), f"evt-b{i:02d}") for i in range(16)]
    answers = _concurrently(http_api, events, retry_busy=True)
    for tries in answers:
        assert tries[-1][:2] == (200, "processed"), tries
        assert all(t[:3] == (429, "busy", "1") for t in tries[:-1]), tries
    account = priced.account("acc-busy")
    assert (account["server_count"], account["servers"], account["agreement_ended"]) == (
        16, [f"b{i:02d}" for i in range(16)], False)


@pytest.mark.both_backends
def test_contract_7_forty_concurrent_top_ups_of_one_account_are_applied_once_each(priced, http_api, backend):
    """R-PAY-7, R-LIFE-7: 40 top-ups of 1.00 yuan at once: 200 or 429 busy (never 409), and after the
    sender's retries the balance is 4000 fen with one ledger row each, chained before/after."""
    events = [support.envelope("account.topped_up", {"account_id": "acc-t", "amount": 100,
                                                      "topped_up_at": PAID}, f"evt-t{i:02d}") for i in range(40)]
    answers = _concurrently(http_api, events, retry_busy=True)
    for tries in answers:
        assert tries[-1][:2] == (200, "processed"), tries
        assert all(t[:2] == (429, "busy") for t in tries[:-1]), tries
    account = priced.account("acc-t")
    assert account["balance"] == 4000
    rows = [r for r in account["ledger"] if r["kind"] == "top_up"]
    assert sorted((r["balance_before"], r["balance_after"]) for r in rows) == [(100 * i, 100 * (i + 1)) for i in range(40)]


def test_contract_7_distinct_events_that_keep_losing_are_429_busy_and_change_nothing(priced, monkeypatch):
    """When every attempt loses a race with other changes, the answer is 429 busy with Retry-After; the
    event is not marked, so the sender's retry applies it."""
    from chalicelib.errors import ConcurrentUpdate
    from chalicelib.store.session import Session
    from chalicelib.webhooks import delivery

    original = Session.commit

    def losing(self):
        raise ConcurrentUpdate("another change of the account committed first")

    monkeypatch.setattr(delivery, "_backoff", lambda attempt: 0.0)
    monkeypatch.setattr(Session, "commit", losing)
    event = support.envelope("account.topped_up", {"account_id": "acc-l", "amount": 500, "topped_up_at": PAID},
                             "evt-lose")
    response = priced.client.http.post("/webhooks/payments", body=support.dumps(event), headers={
        "Content-Type": "application/json", "X-Signature": support.sign(support.dumps(event), support.PAY_SECRET)})
    assert (response.status_code, json.loads(response.body)["error"]["code"]) == (429, "busy")
    assert response.headers["Retry-After"] == "1"
    monkeypatch.setattr(Session, "commit", original)
    assert priced.ops("GET", "/ops/accounts/acc-l")[0] == 404  # nothing changed: not even created
    status, body = priced.deliver("/webhooks/payments", event, support.PAY_SECRET)
    assert (status, body["result"], body["outcome"]["account"]["balance"]) == (200, "processed", 500)


# ---- no record grows with the account's history --------------------------------------------------------
def long_id(i: int) -> str:
    return f"srv-{'x' * 116}{i:08d}"  # 128 characters, the longest identifier integration §6 allows


def test_contract_7_3300_servers_with_128_character_ids_on_one_account(priced):
    """The case that used to answer 500 from the ~3 066th order on (DynamoDB's 400 KB item): the first 3 066
    servers are written through the store (as a new order writes them), the 234 orders past the old limit
    go through the webhook and all answer 200; the account row stays the size of a new one; the view,
    a top-up and a refund still work."""
    from chalicelib.domain.records import Account
    from chalicelib.store.session import Session
    from chalicelib.timeutil import parse_rfc3339
    from tests import seed

    seeded = 3066
    seed.monthly_servers([long_id(i) for i in range(seeded)], parse_rfc3339(PAID), account_id="acc-big")
    s = Session()
    s.put_account(Account(account_id="acc-big", servers_opened=seeded))
    s.commit()
    for i in range(seeded, 3300):
        for _ in range(5):  # a gateway retries 409/429
            status, body = priced.buy_monthly(long_id(i), PAID, account="acc-big", order_id=f"ord-{i}")
            if status not in (409, 429):
                break
        assert (status, body["outcome"]["decision"]) == (200, "applied"), (i, body)
    row = stored_account_row("acc-big")
    assert int(row.servers_opened) == 3300 and len(json.dumps(row.doc)) < 200
    view = priced.account("acc-big")
    assert (view["server_count"], view["servers"][-1], len(view["servers"])) == (3300, long_id(3299), 100)
    older = priced.ops("GET", f"/ops/accounts/acc-big/servers?before={view['servers_next']}")[1]
    assert older["items"] == [long_id(i) for i in range(3100, 3200)]
    status, body = priced.pay("account.topped_up", {"account_id": "acc-big", "amount": 500, "topped_up_at": PAID})
    assert (status, body["outcome"]["account"]["balance"]) == (200, 500)
    status, body = refund(priced, "acc-big", long_id(3299), "2026-01-02T10:00:00+08:00", order_id="ord-3299")
    assert (status, body["outcome"]["decision"]) == (200, "applied")
    assert priced.account("acc-big")["agreement_ended"] is False


def test_contract_7_an_account_stored_with_its_server_lists_keeps_working(priced):
    """Rows written before the counters listed `server_ids` / `closed_server_ids` in the doc: they are read
    as counts (2 opened, 1 closed); the first change (here a new monthly order, which on a converted row
    would only add 1) stores the counters and drops the lists."""
    from chalicelib.store import models as m

    priced.buy_monthly("s1", PAID, account="acc-old")
    priced.buy_monthly("s2", PAID, account="acc-old")
    refund(priced, "acc-old", "s1", "2026-01-02T10:00:00+08:00")
    row = stored_account_row("acc-old")
    legacy = {"account_id": "acc-old", "balance": 0, "violation": False, "agreement_ended": False,
              "server_ids": ["s1", "s2"], "closed_server_ids": ["s1"]}
    m.AccountRow("acc-old", doc=legacy, version=row.version).save()  # a put: no counter attributes
    assert stored_account_row("acc-old").servers_opened is None
    view = priced.account("acc-old")
    assert (view["server_count"], view["agreement_ended"], view["servers"]) == (2, False, ["s1", "s2"])
    assert priced.buy_monthly("s3", PAID, account="acc-old")[0] == 200
    row = stored_account_row("acc-old")
    assert (int(row.servers_opened), int(row.servers_closed)) == (3, 1)
    assert "server_ids" not in row.doc and "closed_server_ids" not in row.doc
    for sid in ("s2", "s3"):
        assert refund(priced, "acc-old", sid, "2026-01-03T10:00:00+08:00")[0] == 200
    row = stored_account_row("acc-old")
    assert (int(row.servers_opened), int(row.servers_closed)) == (3, 3)
    assert priced.account("acc-old")["agreement_ended"] is True


def test_contract_7_an_operator_refund_whose_follow_up_is_queued_answers_200_queued(priced, monkeypatch):
    """integration §7 for the operators' routes that change money: a security-incident termination credits
    a refund (R-LIFE-5) that brings the account back from -1600 to 8400; its 40 arrears-suspended payg
    servers cannot be moved inside the call here, so the answer says `"follow_up": "queued"` and a
    background drain lifts them all."""
    from chalicelib.accounts import money
    from tests.integration.test_arrears_volume import seed_payg, servers, stored_balance

    ids = seed_payg("acc-op", 40)
    priced.buy_monthly("m1", "2026-01-01T00:00:00+08:00", months=2, account="acc-op")
    priced.meter("2026-01-01T01:00:00+08:00")  # 2 hours x 40 servers x 20 fen
    assert stored_balance("acc-op") == -1600
    assert {sv.state for sv in servers(ids)} == {"stopped"}
    monkeypatch.setattr(money, "FOLLOW_UP_SECONDS", -1.0)  # spent before it starts
    status, body = priced.ops("POST", "/ops/servers/m1/terminate", {"reason": "security_incident",
                                                                    "at": "2026-01-01T02:00:00+08:00"})
    assert (status, body["follow_up"], body["server"]["termination_reason"]) == (200, "queued", "security_incident")
    # T7.3.4: 20000 paid for two months, the first one in use: 20000 - 10000
    assert (body["refund"], stored_balance("acc-op")) == (10000, 8400)
    assert {sv.state for sv in servers(ids)} == {"stopped"}
    assert priced.ops("POST", "/ops/background/drain")[1]["failed"] == 0
    assert {(sv.state, tuple(sv.stop_reasons)) for sv in servers(ids)} == {("active", ())}
