"""The filing free period through the ticketing webhook: R-FREE-1 … R-FREE-6, R-NOTE-1."""
from __future__ import annotations

import threading

import pytest

from tests import support
from tests.support import apply, envelope, filing, order_paid


def buy(api, server, paid_at="2026-01-01T10:00:00+08:00", months=6, mode="monthly", region="cn-north-1",
        account="acc-1", plan="std"):
    amount = {"monthly": 10000 * months if plan == "std" else 30000 * months, "trial": 0, "payg": 0}[mode]
    extra = {"months": months} if mode != "payg" else {}
    status, body = api.pay("order.paid", order_paid(f"ord-{server}", account, server, "new", paid_at, amount,
                                                    billing_mode=mode, plan_id=plan, region=region, **extra))
    assert status == 200 and body["outcome"]["decision"] == "applied", body


def test_R_FREE_1_spec_example_counts_from_first_submission_after_last_withdrawal(shop):
    buy(shop, "srv-1")
    summary = filing(shop, "f1", "srv-1", [
        ("submitted", "2026-01-05T09:00:00+08:00"), ("withdrawn", "2026-01-08T09:00:00+08:00"),
        ("submitted", "2026-01-10T09:00:00+08:00"), ("rejected", "2026-01-13T09:00:00+08:00"),
        ("submitted", "2026-01-14T09:00:00+08:00"), ("approved", "2026-01-20T09:00:00+08:00")])
    assert (summary["clock_start"], summary["filing_days"]) == ("2026-01-10T09:00:00+08:00", 10)
    requested, accepted = apply(shop, "t1", "f1", "srv-1", "2026-01-21T10:00:00+08:00", "2026-01-23T15:00:00+08:00")
    assert requested == {"ticket_id": "t1", "status": "requested", "decision": "eligible", "days": 10}
    # R-FREE-3: accepted Friday 15:00 → due Monday 15:00; R-FREE-4: 10 days appended to 2026-07-01T10:00
    assert accepted == {"decision": "granted", "days": 10, "expires_at": "2026-07-11T10:00:00+08:00",
                        "due_by": "2026-01-26T15:00:00+08:00", "granted_at": "2026-01-23T15:00:00+08:00"}
    view = shop.server("srv-1")
    assert view["free_period"] == {"decision": "granted", "days": 10, "due_by": "2026-01-26T15:00:00+08:00",
                                   "granted_at": "2026-01-23T15:00:00+08:00"}
    row = view["ledger"][-1]
    assert (row["kind"], row["rule"], row.get("amount"), row.get("cash")) == ("free_period", "R-FREE-4", None, None)
    assert (row["expires_at_before"], row["expires_at_after"]) == ("2026-07-01T10:00:00+08:00", "2026-07-11T10:00:00+08:00")
    note = [n for n in view["notifications"] if n["kind"] == "free_period_granted"][0]
    assert (note["days"], note["expires_at"]) == (10, "2026-07-11T10:00:00+08:00")
    assert shop.account("acc-1")["balance"] == 0  # R-PAY-9: no cash value


def test_R_FREE_1_each_filing_event_answers_the_summary_of_the_recorded_events_in_time_order(shop):
    """R-FREE-1, E-4: every filing event answers the filing's summary; the events count by their own times, so
    a withdrawal delivered after a later resubmission still ends the attempt before it."""
    buy(shop, "srv-1")

    def summary(clock_start, approved_at=None, filing_days=None):
        return {"filing_id": "f1", "server_id": "srv-1", "clock_start": clock_start, "approved_at": approved_at,
                "filing_days": filing_days}

    steps = [
        ("submitted", "2026-01-05T09:00:00+08:00", summary("2026-01-05T09:00:00+08:00")),
        ("rejected", "2026-01-06T09:00:00+08:00", summary("2026-01-05T09:00:00+08:00")),
        ("submitted", "2026-01-10T09:00:00+08:00", summary("2026-01-05T09:00:00+08:00")),
        # delivered late: between the two submissions, it makes the 01-10 one the final attempt's first
        ("withdrawn", "2026-01-07T09:00:00+08:00", summary("2026-01-10T09:00:00+08:00")),
        ("approved", "2026-01-13T10:00:00+08:00",
         summary("2026-01-10T09:00:00+08:00", "2026-01-13T10:00:00+08:00", 4)),
    ]
    for kind, at, expected in steps:
        assert filing(shop, "f1", "srv-1", [(kind, at)]) == expected, kind
    # E-4: withdrawn with no submission since: the last submission before it
    assert filing(shop, "f1", "srv-1", [("withdrawn", "2026-01-14T09:00:00+08:00")]) == summary(
        "2026-01-10T09:00:00+08:00", "2026-01-13T10:00:00+08:00", 4)


def test_integration_1_a_filing_resubmitted_for_another_server_is_400_naming_its_server(shop):
    """integration §1, R-FREE-1: a filing belongs to the server of its first submission; a submission of it
    for another server is a bad value (400 naming `data.server_id` and the filing's server) and changes nothing."""
    buy(shop, "srv-1")
    buy(shop, "srv-2")
    filing(shop, "f1", "srv-1", [("submitted", "2026-01-05T09:00:00+08:00")])
    status, body = shop.ticket("filing.submitted", {"filing_id": "f1", "server_id": "srv-2", "website": "f1.example.cn",
                                                    "is_change": False, "submitted_at": "2026-01-08T09:00:00+08:00"})
    assert (status, body) == (400, {"error": {"code": "invalid_payload", "fields": ["data.server_id"],
                                              "message": "filing 'f1' belongs to server 'srv-1'"}})
    assert filing(shop, "f1", "srv-1", [("approved", "2026-01-09T09:00:00+08:00")]) == {
        "filing_id": "f1", "server_id": "srv-1", "clock_start": "2026-01-05T09:00:00+08:00",
        "approved_at": "2026-01-09T09:00:00+08:00", "filing_days": 4}


@pytest.mark.parametrize("kind", ["withdrawn", "rejected", "approved"])
def test_integration_1_an_event_of_an_unknown_filing_is_422_naming_it(shop, kind):
    """integration §1: 422 `unknown_reference` names the filing; nothing is stored (a later submission of that
    id starts a new filing)."""
    status, body = shop.ticket(f"filing.{kind}", {"filing_id": "nope", f"{kind}_at": "2026-01-01T00:00:00+08:00"})
    assert (status, body) == (422, {"error": {"code": "unknown_reference", "message": "filing 'nope' is not known"}})
    buy(shop, "srv-1")
    assert filing(shop, "nope", "srv-1", [("submitted", "2026-01-05T09:00:00+08:00")]) == {
        "filing_id": "nope", "server_id": "srv-1", "clock_start": "2026-01-05T09:00:00+08:00", "approved_at": None,
        "filing_days": None}


@pytest.mark.parametrize("approved_at, days", [
    ("2026-01-08T09:00:01+08:00", 4),   # 3 days and 1 second: a started day counts whole
    ("2026-01-08T09:00:00+08:00", 3),
    ("2026-03-06T09:00:00+08:00", 45),  # 60 days, capped
])
def test_R_FREE_1_started_days_count_whole_and_cap_at_45(shop, approved_at, days):
    buy(shop, "srv-1")
    filing(shop, "f1", "srv-1", [("submitted", "2026-01-05T09:00:00+08:00"), ("approved", approved_at)])
    _, accepted = apply(shop, "t1", "f1", "srv-1", "2026-03-07T10:00:00+08:00", "2026-03-09T10:00:00+08:00")
    assert (accepted["decision"], accepted["days"]) == ("granted", days)


def test_R_FREE_1_rejection_and_resubmission_keeps_the_clock(shop):
    buy(shop, "srv-1")
    filing(shop, "f1", "srv-1", [("submitted", "2026-01-05T09:00:00+08:00"), ("rejected", "2026-01-07T09:00:00+08:00"),
                                 ("submitted", "2026-01-09T09:00:00+08:00"), ("approved", "2026-01-12T09:00:00+08:00")])
    _, accepted = apply(shop, "t1", "f1", "srv-1", "2026-01-13T10:00:00+08:00", "2026-01-13T11:00:00+08:00")
    assert accepted["days"] == 7


def test_R_FREE_5_upgrade_during_filing_converts_days(shop):
    buy(shop, "srv-1")
    filing(shop, "f1", "srv-1", [("submitted", "2026-01-05T09:00:00+08:00")])
    shop.pay("order.paid", order_paid("ord-up", "acc-1", "srv-1", "upgrade", "2026-01-10T09:00:00+08:00", 5000, plan_id="pro"))
    filing(shop, "f1", "srv-1", [("approved", "2026-01-25T09:00:00+08:00")])
    _, accepted = apply(shop, "t1", "f1", "srv-1", "2026-01-26T10:00:00+08:00", "2026-01-26T11:00:00+08:00")
    assert (accepted["decision"], accepted["days"]) == ("granted", 7)  # ceil(20 × 10000 / 30000)


def test_R_FREE_5_upgrade_and_back_is_no_change(shop):
    buy(shop, "srv-1")
    filing(shop, "f1", "srv-1", [("submitted", "2026-01-05T09:00:00+08:00")])
    shop.pay("order.paid", order_paid("ord-up", "acc-1", "srv-1", "upgrade", "2026-01-10T09:00:00+08:00", 5000, plan_id="pro"))
    shop.pay("order.paid", order_paid("ord-dn", "acc-1", "srv-1", "upgrade", "2026-01-12T09:00:00+08:00", 0, plan_id="std"))
    filing(shop, "f1", "srv-1", [("approved", "2026-01-25T09:00:00+08:00")])
    _, accepted = apply(shop, "t1", "f1", "srv-1", "2026-01-26T10:00:00+08:00", "2026-01-26T11:00:00+08:00")
    assert accepted["days"] == 20


def test_R_FREE_3_due_by_skips_the_national_day_holiday(shop):
    buy(shop, "srv-1", paid_at="2025-09-01T10:00:00+08:00")
    filing(shop, "f1", "srv-1", [("submitted", "2025-09-10T09:00:00+08:00"), ("approved", "2025-09-20T09:00:00+08:00")])
    _, accepted = apply(shop, "t1", "f1", "srv-1", "2025-09-29T10:00:00+08:00", "2025-09-30T16:00:00+08:00")
    assert accepted["due_by"] == "2025-10-09T16:00:00+08:00"


def test_R_FREE_3_application_before_approval_is_denied_and_may_be_made_again(shop):
    buy(shop, "srv-1")
    filing(shop, "f1", "srv-1", [("submitted", "2026-01-05T09:00:00+08:00")])
    requested, accepted = apply(shop, "t1", "f1", "srv-1", "2026-01-06T10:00:00+08:00", "2026-01-06T11:00:00+08:00")
    assert requested["decision"] == "denied" and requested["reason"] == "filing_not_approved"
    assert (accepted["decision"], accepted["reason"]) == ("denied", "filing_not_approved")
    assert shop.server("srv-1")["free_period"]["reason"] == "filing_not_approved"
    filing(shop, "f1", "srv-1", [("approved", "2026-01-09T09:00:00+08:00")])
    _, accepted = apply(shop, "t2", "f1", "srv-1", "2026-01-10T10:00:00+08:00", "2026-01-10T11:00:00+08:00")
    assert (accepted["decision"], accepted["days"]) == ("granted", 4)


def test_R_FREE_6_a_decided_ticket_answers_decided_and_keeps_its_first_decision(shop):
    """R-FREE-3, R-FREE-6: after the acceptance, the ticket is decided: a later request for it (a new event)
    answers its status `decided` with the preliminary decision, and a second, different acceptance answers the
    first decision and extends nothing more."""
    buy(shop, "srv-1")
    _approved_filing(shop)
    _, first = apply(shop, "t1", "f1", "srv-1", "2026-01-16T10:00:00+08:00", "2026-01-16T11:00:00+08:00")
    assert first == {"decision": "granted", "days": 10, "expires_at": "2026-07-11T10:00:00+08:00",
                     "due_by": "2026-01-19T11:00:00+08:00", "granted_at": "2026-01-16T11:00:00+08:00"}
    status, again = shop.ticket("compensation.requested", {"ticket_id": "t1", "filing_id": "f1", "server_id": "srv-1",
                                                           "requested_at": "2026-01-17T10:00:00+08:00"})
    assert (status, again["outcome"]) == (200, {"ticket_id": "t1", "status": "decided", "decision": "eligible",
                                                "days": 10})
    status, second = shop.ticket("compensation.accepted", {"ticket_id": "t1", "engineer_id": "eng-8",
                                                           "accepted_at": "2026-01-20T11:00:00+08:00"})
    assert (status, second["outcome"]) == (200, first)
    view = shop.server("srv-1")
    assert view["expires_at"] == "2026-07-11T10:00:00+08:00"
    assert [r["kind"] for r in view["ledger"]].count("free_period") == 1


def _denied(shop, ticket="t1", filing_id="f1", server="srv-1"):
    _, accepted = apply(shop, ticket, filing_id, server, "2026-01-21T10:00:00+08:00", "2026-01-21T11:00:00+08:00")
    assert accepted["decision"] == "denied"
    return accepted["reason"]


def _approved_filing(shop, filing_id="f1", server="srv-1", is_change=False):
    filing(shop, filing_id, server, [("submitted", "2026-01-05T09:00:00+08:00"),
                                     ("approved", "2026-01-15T09:00:00+08:00")], is_change=is_change)


def test_R_FREE_2_1_server_mismatch(shop):
    buy(shop, "srv-1")
    buy(shop, "srv-2")
    _approved_filing(shop)
    assert _denied(shop, server="srv-2") == "server_mismatch"


def test_R_FREE_2_3_change_filing_is_not_first_website(shop):
    buy(shop, "srv-1")
    _approved_filing(shop, is_change=True)
    assert _denied(shop) == "not_first_website"


def test_R_FREE_2_3_a_later_website_is_not_first_but_a_change_does_not_count(shop):
    buy(shop, "srv-1")
    filing(shop, "chg", "srv-1", [("submitted", "2026-01-02T09:00:00+08:00"), ("approved", "2026-01-03T09:00:00+08:00")], is_change=True)
    filing(shop, "f0", "srv-1", [("submitted", "2026-01-02T09:00:00+08:00"), ("approved", "2026-01-04T09:00:00+08:00")])
    _approved_filing(shop)
    assert _denied(shop) == "not_first_website"
    _, accepted = apply(shop, "t0", "f0", "srv-1", "2026-01-21T10:00:00+08:00", "2026-01-21T11:00:00+08:00")
    assert (accepted["decision"], accepted["days"]) == ("granted", 2)


def test_R_FREE_2_4_trial_server(shop):
    buy(shop, "srv-1", mode="trial", months=3)
    _approved_filing(shop)
    assert _denied(shop) == "trial_server"


def test_R_FREE_2_5_pay_as_you_go_is_not_a_monthly_package(shop):
    buy(shop, "srv-1", mode="payg")
    _approved_filing(shop)
    assert _denied(shop) == "not_monthly_package"


def test_R_FREE_2_6_hong_kong_is_not_mainland(shop):
    buy(shop, "srv-1", region="ap-northeast-1")
    _approved_filing(shop)
    assert _denied(shop) == "region_not_mainland"


def test_R_FREE_2_7_and_R_FREE_6_granted_once_per_server_for_any_website(shop):
    buy(shop, "srv-1")
    _approved_filing(shop)
    filing(shop, "f2", "srv-1", [("submitted", "2026-01-16T09:00:00+08:00"), ("approved", "2026-01-18T09:00:00+08:00")], is_change=True)
    _, first = apply(shop, "t1", "f1", "srv-1", "2026-01-21T10:00:00+08:00", "2026-01-21T11:00:00+08:00")
    assert first["decision"] == "granted"
    assert _denied(shop, ticket="t2") == "already_granted"
    view = shop.server("srv-1")
    assert view["free_period"]["decision"] == "granted"
    assert view["expires_at"] == "2026-07-11T10:00:00+08:00"


def test_R_FREE_2_8_expiry_during_filing_denies_even_after_renewal(shop):
    buy(shop, "srv-1", paid_at="2025-12-10T10:00:00+08:00", months=1)
    filing(shop, "f1", "srv-1", [("submitted", "2026-01-05T09:00:00+08:00")])
    shop.sweep("2026-01-11T00:10:00+08:00")
    shop.pay("order.paid", order_paid("ord-r", "acc-1", "srv-1", "renewal", "2026-01-12T10:00:00+08:00", 10000, months=1))
    assert shop.server("srv-1")["state"] == "active"
    filing(shop, "f1", "srv-1", [("approved", "2026-01-15T09:00:00+08:00")])
    assert _denied(shop) == "service_ended"


def test_R_FREE_2_8_lapse_unseen_by_the_sweep_still_counts(shop):
    buy(shop, "srv-1", paid_at="2025-12-10T10:00:00+08:00", months=1)
    filing(shop, "f1", "srv-1", [("submitted", "2026-01-05T09:00:00+08:00")])
    shop.pay("order.paid", order_paid("ord-r", "acc-1", "srv-1", "renewal", "2026-01-11T10:00:00+08:00", 10000, months=1))
    filing(shop, "f1", "srv-1", [("approved", "2026-01-15T09:00:00+08:00")])
    assert _denied(shop) == "service_ended"


def test_R_FREE_2_8_server_change_during_filing(shop):
    buy(shop, "srv-1")
    filing(shop, "f1", "srv-1", [("submitted", "2026-01-05T09:00:00+08:00")])
    shop.ops("POST", "/ops/servers/srv-1/terminate", {"reason": "replaced", "at": "2026-01-07T00:00:00+08:00"})
    filing(shop, "f1", "srv-1", [("approved", "2026-01-15T09:00:00+08:00")])
    assert _denied(shop) == "service_ended"


def test_R_FREE_2_9_account_violation(shop):
    buy(shop, "srv-1")
    _approved_filing(shop)
    status, _ = shop.ops("POST", "/ops/accounts/acc-1/violation", {"flag": True, "note": "illegal content"})
    assert status == 200
    assert _denied(shop) == "violation"
    note = [n for n in shop.server("srv-1")["notifications"] if n["kind"] == "free_period_denied"][0]
    assert note["reason"] == "violation"


def test_R_LIFE_6_free_days_are_never_refunded(shop):
    buy(shop, "srv-1", months=1)
    _approved_filing(shop)
    apply(shop, "t1", "f1", "srv-1", "2026-01-21T10:00:00+08:00", "2026-01-21T11:00:00+08:00")
    # paid period [01-01, 02-01) ended; the 10 free days after it belong to no paid period
    _, body = shop.ops("POST", "/ops/servers/srv-1/terminate", {"reason": "provider_announcement",
                                                                "at": "2026-02-05T00:00:00+08:00"})
    assert body["refund"] == 0


def test_unknown_filing_ticket_or_server_is_422(shop):
    status, body = shop.ticket("filing.approved", {"filing_id": "nope", "approved_at": "2026-01-01T00:00:00+08:00"})
    assert (status, body["error"]["code"]) == (422, "unknown_reference")
    status, _ = shop.ticket("filing.submitted", {"filing_id": "f", "server_id": "nope", "website": "a.cn",
                                                 "is_change": False, "submitted_at": "2026-01-01T00:00:00+08:00"})
    assert status == 422
    status, _ = shop.ticket("compensation.accepted", {"ticket_id": "nope", "engineer_id": "e", "accepted_at": "2026-01-01T00:00:00+08:00"})
    assert status == 422
    status, body = shop.ticket("filing.submitted", {"filing_id": "f", "server_id": "s", "website": "a.cn",
                                                    "is_change": "no", "submitted_at": "2026-01-01T00:00:00+08:00"})
    assert (status, body["error"]["fields"]) == (400, ["data.is_change"])


@pytest.mark.both_backends
def test_R_FREE_6_twenty_concurrent_acceptances_grant_once(shop):
    from chalicelib.webhooks import catalog, delivery

    buy(shop, "srv-1")
    _approved_filing(shop)
    for i in range(20):
        shop.ticket("compensation.requested", {"ticket_id": f"t{i}", "filing_id": "f1", "server_id": "srv-1",
                                               "requested_at": "2026-01-16T10:00:00+08:00"})
    barrier, outcomes = threading.Barrier(20), []

    def accept(i):
        body = support.dumps(envelope("compensation.accepted", {"ticket_id": f"t{i}", "engineer_id": f"e{i}",
                                                                "accepted_at": "2026-01-16T11:00:00+08:00"}))
        headers = {"content-type": "application/json", "x-signature": support.sign(body, support.TICKET_SECRET)}
        barrier.wait()
        try:
            outcomes.append(delivery.deliver(source="ticketing", secrets=(support.TICKET_SECRET,),
                                             types=catalog.TICKETING_EVENTS, headers=headers, body=body)["outcome"])
        except Exception as exc:  # noqa: BLE001 - counted below
            outcomes.append({"decision": type(exc).__name__})

    threads = [threading.Thread(target=accept, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    decisions = [o["decision"] for o in outcomes]
    assert decisions.count("granted") == 1
    assert decisions.count("denied") + decisions.count("EventInProgress") == 19
    assert {o.get("reason") for o in outcomes if o["decision"] == "denied"} <= {"already_granted"}
    view = shop.server("srv-1")
    assert view["expires_at"] == "2026-07-11T10:00:00+08:00"
    assert [r["kind"] for r in view["ledger"]].count("free_period") == 1


def test_integration_1_a_request_naming_an_unknown_server_or_filing_is_422_naming_it(shop):
    """integration §1: compensation.requested for a server or a filing the system does not know is 422
    `unknown_reference` naming it; nothing is stored, so the same ticket requested again later is recorded."""
    buy(shop, "srv-1")
    _approved_filing(shop)
    request = {"ticket_id": "t1", "filing_id": "f1", "server_id": "srv-1", "requested_at": "2026-01-16T10:00:00+08:00"}
    status, body = shop.ticket("compensation.requested", {**request, "server_id": "srv-x"})
    assert (status, body) == (422, {"error": {"code": "unknown_reference", "message": "server 'srv-x' is not known"}})
    status, body = shop.ticket("compensation.requested", {**request, "filing_id": "f-x"})
    assert (status, body) == (422, {"error": {"code": "unknown_reference", "message": "filing 'f-x' is not known"}})
    status, body = shop.ticket("compensation.requested", request)
    assert (status, body["outcome"]) == (200, {"ticket_id": "t1", "status": "requested", "decision": "eligible",
                                               "days": 10})


def test_R_FREE_4_E_5_a_grant_moving_an_expired_servers_end_past_the_acceptance_starts_it_again(shop):
    """R-FREE-4, E-5, R-CLU-2: free days granted to a server stopped as `expired` move its end; when the new
    end is after the acceptance, `expired` is lifted: the server is active again, its retention gone and its
    cluster started. The ledger row is the extension without cash value (R-PAY-9), naming its event."""
    buy(shop, "srv-1", paid_at="2025-12-10T10:00:00+08:00", months=1)  # expires 2026-01-10T10:00
    filing(shop, "f1", "srv-1", [("submitted", "2025-12-15T09:00:00+08:00"), ("approved", "2025-12-25T09:00:00+08:00")])
    shop.sweep("2026-01-11T00:10:00+08:00")
    stopped = shop.server("srv-1")
    assert (stopped["state"], stopped["stop_reasons"], stopped["retain_until"]) == (
        "stopped", ["expired"], "2026-01-18T00:00:00+08:00")
    status, body = shop.ticket("compensation.requested", {"ticket_id": "t1", "filing_id": "f1", "server_id": "srv-1",
                                                          "requested_at": "2026-01-12T09:00:00+08:00"})
    assert (status, body["outcome"]) == (200, {"ticket_id": "t1", "status": "requested", "decision": "eligible",
                                               "days": 10})
    status, body = shop.ticket("compensation.accepted", {"ticket_id": "t1", "engineer_id": "eng-7",
                                                         "accepted_at": "2026-01-12T10:00:00+08:00"},
                               event_id="evt-acc")
    assert (status, body["outcome"]) == (200, {"decision": "granted", "days": 10,
                                               "expires_at": "2026-01-20T10:00:00+08:00",
                                               "due_by": "2026-01-13T10:00:00+08:00",
                                               "granted_at": "2026-01-12T10:00:00+08:00"})
    view = shop.server("srv-1")
    assert (view["state"], view["stop_reason"], view["stop_reasons"], view["expires_at"], view["retain_until"]) == (
        "active", None, [], "2026-01-20T10:00:00+08:00", None)
    assert [(a["kind"], a["status"]) for a in view["cluster_actions"]] == [("stop", "pending"), ("start", "pending")]
    assert view["ledger"][-1] == {
        "at": "2026-01-12T10:00:00+08:00", "kind": "free_period", "rule": "R-FREE-4", "account_id": "acc-1",
        "server_id": "srv-1", "expires_at_before": "2026-01-10T10:00:00+08:00",
        "expires_at_after": "2026-01-20T10:00:00+08:00", "event_id": "evt-acc",
        "note": "10 free days, no cash value (R-PAY-9)"}


def _counted(dynamodb_requests, call):
    dynamodb_requests.clear()
    status, body = call()
    assert status == 200, body
    return dict(dynamodb_requests), body["outcome"]


def test_R_FREE_3_request_and_acceptance_are_one_read_and_one_transaction_each(shop, dynamodb_requests):
    """R-FREE-3, R-FREE-2 (9) (README "One read and one transaction per webhook"): the request reads the ticket,
    server and filing at once and checks the account's violation flag in its transaction; it keeps the server and
    filing rows it read on the ticket, and the acceptance decides from them: its only read is the event marker and
    the ticket."""
    buy(shop, "srv-1")
    _approved_filing(shop)
    one_trip = {"TransactGetItems": 1, "TransactWriteItems": 1}
    assert _counted(dynamodb_requests, lambda: shop.ticket("compensation.requested", {
        "ticket_id": "t1", "filing_id": "f1", "server_id": "srv-1", "requested_at": "2026-01-16T10:00:00+08:00"})) == (
        one_trip, {"ticket_id": "t1", "status": "requested", "decision": "eligible", "days": 10})
    assert _counted(dynamodb_requests, lambda: shop.ticket("compensation.accepted", {
        "ticket_id": "t1", "engineer_id": "eng-7", "accepted_at": "2026-01-16T11:00:00+08:00"})) == (
        one_trip, {"decision": "granted", "days": 10, "expires_at": "2026-07-11T10:00:00+08:00",
                   "due_by": "2026-01-19T11:00:00+08:00", "granted_at": "2026-01-16T11:00:00+08:00"})


def test_R_FREE_3_a_stale_copy_costs_one_cancelled_try_then_one_read_of_server_filing_and_account(
        shop, dynamodb_requests):
    """R-FREE-3, R-FREE-4 (README "One read and one transaction per webhook"): a renewal between request and
    acceptance changes the server the ticket copied; the first try's transaction is cancelled and the second reads
    the server, the filing and the account in one request and extends the renewed expiry."""
    buy(shop, "srv-1", months=1)  # expires 2026-02-01T10:00
    _approved_filing(shop)
    status, _ = shop.ticket("compensation.requested", {"ticket_id": "t1", "filing_id": "f1", "server_id": "srv-1",
                                                       "requested_at": "2026-01-16T10:00:00+08:00"})
    assert status == 200
    status, _ = shop.pay("order.paid", order_paid("ord-r", "acc-1", "srv-1", "renewal", "2026-01-16T10:30:00+08:00",
                                                  10000, months=1))
    assert status == 200 and shop.server("srv-1")["expires_at"] == "2026-03-01T10:00:00+08:00"
    assert _counted(dynamodb_requests, lambda: shop.ticket("compensation.accepted", {
        "ticket_id": "t1", "engineer_id": "eng-7", "accepted_at": "2026-01-16T11:00:00+08:00"})) == (
        {"TransactGetItems": 3, "TransactWriteItems": 2},
        {"decision": "granted", "days": 10, "expires_at": "2026-03-11T10:00:00+08:00",
         "due_by": "2026-01-19T11:00:00+08:00", "granted_at": "2026-01-16T11:00:00+08:00"})


def test_R_FREE_2_9_a_violation_flagged_with_a_stale_copy_is_denied_on_the_try_that_reads_the_account(shop):
    """R-FREE-2 (9), R-FREE-3: the account is flagged and the server renewed between request and acceptance. The
    first try (from the ticket's stale copy, the account unread) is cancelled; the next reads the account and
    denies for `violation`, recorded on the server, whose renewed expiry stays."""
    buy(shop, "srv-1", months=1)
    _approved_filing(shop)
    status, body = shop.ticket("compensation.requested", {"ticket_id": "t1", "filing_id": "f1", "server_id": "srv-1",
                                                          "requested_at": "2026-01-16T10:00:00+08:00"})
    assert (status, body["outcome"]["decision"]) == (200, "eligible")
    status, _ = shop.pay("order.paid", order_paid("ord-r", "acc-1", "srv-1", "renewal", "2026-01-16T10:30:00+08:00",
                                                  10000, months=1))
    assert status == 200
    status, _ = shop.ops("POST", "/ops/accounts/acc-1/violation", {"flag": True, "note": "illegal content"})
    assert status == 200
    status, body = shop.ticket("compensation.accepted", {"ticket_id": "t1", "engineer_id": "eng-7",
                                                         "accepted_at": "2026-01-16T11:00:00+08:00"})
    assert (status, body["outcome"]) == (200, {"decision": "denied", "reason": "violation",
                                               "due_by": "2026-01-19T11:00:00+08:00"})
    view = shop.server("srv-1")
    assert (view["expires_at"], view["free_period"]) == ("2026-03-01T10:00:00+08:00", {
        "decision": "denied", "reason": "violation", "due_by": "2026-01-19T11:00:00+08:00"})
