"""The operators' lists (GET /ops/lists/{name}, GET /ops/dead-letters): exact items from the rules (docs/rules.md),
cursor pagination, and a page costs one Query per shard however many servers are stored."""
from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from tests.support import order_paid

LIST_SHARDS = 4  # store/lists.py LIST_SHARDS: one Query per shard and page


def get(api, path: str, **params):
    query = "&".join(f"{k}={quote(str(v), safe='')}" for k, v in params.items())
    return api.ops("GET", f"{path}?{query}" if query else path)


def ok(api, path: str, **params) -> dict:
    status, body = get(api, path, **params)
    assert status == 200, body
    return body


def walk(api, path: str, **params) -> list[list[dict]]:
    """Every page of a list, following `next`."""
    pages, cursor = [], None
    while True:
        body = ok(api, path, **params, **({"cursor": cursor} if cursor else {}))
        pages.append(body["items"])
        cursor = body["next"]
        if cursor is None:
            return pages


def test_expiring_lists_active_servers_by_expiry_including_overdue_ones(priced):
    """R-PAY-8 neighbourhood: monthly servers expire at paid_at + months (Asia/Shanghai calendar); the list
    holds active servers expiring before the end of the 7th (`days`-th) local day from today, an expiry
    past but not yet swept first."""
    priced.buy_monthly("srv-a", "2026-01-05T10:00:00+08:00", account="acc-1")   # expires 2026-02-05 10:00
    priced.buy_monthly("srv-b", "2026-01-20T09:30:00+08:00", account="acc-2")   # expires 2026-02-20 09:30
    priced.buy_monthly("srv-c", "2026-01-12T08:00:00+08:00", account="acc-1")   # expires 2026-02-12 08:00
    priced.buy_monthly("srv-d", "2026-01-12T08:00:00+08:00", months=3)          # expires 2026-04-12: too late
    priced.pay("order.paid", order_paid("ord-p", "acc-3", "srv-p", "new", "2026-01-01T00:00:00+08:00", 0,
                                        billing_mode="payg", plan_id="std", region="cn-north-1"))  # no expiry
    body = ok(priced, "/ops/lists/expiring", at="2026-02-06T00:00:00+08:00")  # default 7 days
    assert body == {"items": [
        {"server_id": "srv-a", "account_id": "acc-1", "plan_id": "std", "expires_at": "2026-02-05T10:00:00+08:00"},
        {"server_id": "srv-c", "account_id": "acc-1", "plan_id": "std", "expires_at": "2026-02-12T08:00:00+08:00"},
    ], "next": None, "until": "2026-02-14T00:00:00+08:00"}
    assert ok(priced, "/ops/lists/expiring", at="2026-02-06T00:00:00+08:00", days=13)["until"] == "2026-02-20T00:00:00+08:00"
    wider = ok(priced, "/ops/lists/expiring", at="2026-02-06T23:59:00+08:00", days=14)
    assert [i["server_id"] for i in wider["items"]] == ["srv-a", "srv-c", "srv-b"]
    # stopped by the sweep (R-LIFE-1): no longer expiring
    priced.sweep("2026-02-06T00:10:00+08:00")
    assert [i["server_id"] for i in ok(priced, "/ops/lists/expiring", at="2026-02-06T00:00:00+08:00")["items"]] == ["srv-c"]
    # renewed (R-PAY-3): leaves this week's list, its new expiry 2026-03-12 08:00 is on a wider one
    priced.pay("order.paid", order_paid("ord-c2", "acc-1", "srv-c", "renewal", "2026-02-07T10:00:00+08:00", 10000, months=1))
    assert ok(priced, "/ops/lists/expiring", at="2026-02-06T00:00:00+08:00")["items"] == []
    later = ok(priced, "/ops/lists/expiring", at="2026-03-06T00:00:00+08:00")["items"]
    assert [(i["server_id"], i["expires_at"]) for i in later] == [  # srv-b: expired, no sweep since
        ("srv-b", "2026-02-20T09:30:00+08:00"), ("srv-c", "2026-03-12T08:00:00+08:00")]


def test_expiring_pages_follow_the_cursor_in_order_and_cost_one_query_per_shard(priced, dynamodb_requests):
    """Pagination: limit=3 over 8 servers gives 3 + 3 + 2 in expiry order, each once; every page is
    LIST_SHARDS Query requests, whatever else is stored."""
    for n in range(8):
        priced.buy_monthly(f"srv-{n}", f"2026-01-{10 + n:02d}T10:00:00+08:00", account="acc-1")
    for n in range(12):  # expiring later than the window: stored, never read
        priced.buy_monthly(f"srv-late-{n}", "2026-01-01T10:00:00+08:00", months=6, account="acc-2")
    dynamodb_requests.clear()
    pages = walk(priced, "/ops/lists/expiring", at="2026-02-01T00:00:00+08:00", days=30, limit=3)
    assert [[i["server_id"] for i in page] for page in pages] == [
        ["srv-0", "srv-1", "srv-2"], ["srv-3", "srv-4", "srv-5"], ["srv-6", "srv-7"]]
    assert [i["expires_at"] for i in pages[0]] == [
        "2026-02-10T10:00:00+08:00", "2026-02-11T10:00:00+08:00", "2026-02-12T10:00:00+08:00"]
    assert dict(dynamodb_requests) == {"Query": 3 * LIST_SHARDS}


def test_a_cursor_keeps_its_first_page_bound(priced):
    """The second page answers the question of the first (its `until`), even when asked with other days."""
    for n in range(3):
        priced.buy_monthly(f"srv-{n}", f"2026-01-{10 + n:02d}T10:00:00+08:00")
    first = ok(priced, "/ops/lists/expiring", at="2026-02-09T00:00:00+08:00", days=2, limit=1)
    assert [i["server_id"] for i in first["items"]] == ["srv-0"]
    second = ok(priced, "/ops/lists/expiring", at="2026-02-09T00:00:00+08:00", days=30, limit=5, cursor=first["next"])
    assert ([i["server_id"] for i in second["items"]], second["until"], second["next"]) == (
        ["srv-1"], "2026-02-12T00:00:00+08:00", None)


def test_awaiting_destruction_lists_stopped_servers_with_retain_until(priced):
    """R-LIFE-3: an expired server is kept until 00:00 of the 8th local day after its service ended; an
    operator hold keeps data with no retain_until (not listed); R-LIFE-4: destroyed servers leave."""
    priced.buy_monthly("srv-1", "2026-03-03T10:00:00+08:00")   # expires 2026-04-03 10:00
    priced.buy_monthly("srv-2", "2026-03-01T10:00:00+08:00")   # expires 2026-04-01 10:00
    priced.buy_monthly("srv-3", "2026-03-01T10:00:00+08:00")
    assert priced.ops("POST", "/ops/servers/srv-3/suspend", {"reason": "violation", "at": "2026-03-10T00:00:00+08:00"})[0] == 200
    priced.sweep("2026-04-05T00:10:00+08:00")
    assert priced.server("srv-1")["retain_until"] == "2026-04-11T00:00:00+08:00"
    body = ok(priced, "/ops/lists/awaiting-destruction")
    assert body == {"items": [
        {"server_id": "srv-2", "account_id": "acc-1", "plan_id": "std", "retain_until": "2026-04-09T00:00:00+08:00"},
        {"server_id": "srv-1", "account_id": "acc-1", "plan_id": "std", "retain_until": "2026-04-11T00:00:00+08:00"},
    ], "next": None}
    # "what is destroyed by the end of tomorrow", asked on 2026-04-08: only srv-2 (00:00 on the 9th)
    soon = ok(priced, "/ops/lists/awaiting-destruction", at="2026-04-08T12:00:00+08:00", days=1)
    assert [i["server_id"] for i in soon["items"]] == ["srv-2"]
    priced.sweep("2026-04-09T00:10:00+08:00")
    assert priced.server("srv-2")["state"] == "destroyed"
    assert [i["server_id"] for i in ok(priced, "/ops/lists/awaiting-destruction")["items"]] == ["srv-1"]


def test_arrears_lists_accounts_below_zero_deepest_first(priced):
    """R-PAY-7: a negative balance is arrears; a top-up back to ≥ 0 takes the account off the list."""
    for account, balance in (("acc-p", 10), ("acc-q", 30), ("acc-r", 500)):
        priced.pay("order.paid", order_paid(f"ord-{account}", account, f"srv-{account}", "new",
                                            "2026-01-01T00:00:00+08:00", balance, billing_mode="payg",
                                            plan_id="std", region="cn-north-1"))
    priced.meter("2026-01-01T03:30:00+08:00")  # 4 hours × 20 fen = 80 fen each
    assert ok(priced, "/ops/lists/arrears") == {"items": [
        {"account_id": "acc-p", "balance": -70}, {"account_id": "acc-q", "balance": -50}], "next": None}
    pages = walk(priced, "/ops/lists/arrears", limit=1)
    assert pages == [[{"account_id": "acc-p", "balance": -70}], [{"account_id": "acc-q", "balance": -50}]]
    priced.pay("account.topped_up", {"account_id": "acc-p", "amount": 70, "topped_up_at": "2026-01-01T04:00:00+08:00"})
    assert ok(priced, "/ops/lists/arrears")["items"] == [{"account_id": "acc-q", "balance": -50}]


def test_grants_of_a_month(priced):
    """R-FREE-1/R-FREE-4: a granted free period is listed in the local month of its acceptance."""
    from tests.integration.test_free_period import apply, buy, filing

    buy(priced, "srv-1")
    buy(priced, "srv-2", account="acc-2")
    filing(priced, "f1", "srv-1", [("submitted", "2026-01-05T09:00:00+08:00"), ("approved", "2026-01-15T09:00:00+08:00")])
    filing(priced, "f2", "srv-2", [("submitted", "2026-01-20T09:00:00+08:00"), ("approved", "2026-01-23T09:00:00+08:00")])
    _, first = apply(priced, "t1", "f1", "srv-1", "2026-01-16T10:00:00+08:00", "2026-01-31T23:30:00+08:00")
    _, second = apply(priced, "t2", "f2", "srv-2", "2026-01-24T10:00:00+08:00", "2026-02-02T10:00:00+08:00")
    assert (first["decision"], first["days"], second["decision"], second["days"]) == ("granted", 10, "granted", 3)
    assert ok(priced, "/ops/lists/grants", month="2026-01") == {"items": [
        {"server_id": "srv-1", "account_id": "acc-1", "days": 10, "granted_at": "2026-01-31T23:30:00+08:00",
         "ticket_id": "t1"}], "next": None, "month": "2026-01"}
    assert [i["server_id"] for i in ok(priced, "/ops/lists/grants", month="2026-02")["items"]] == ["srv-2"]
    # without a month: the local month of now
    assert ok(priced, "/ops/lists/grants", at="2026-02-28T20:00:00+08:00")["month"] == "2026-02"
    assert ok(priced, "/ops/lists/grants", month="2026-03")["items"] == []


def test_R_CLU_4_dead_letters_are_paginated_oldest_first(priced):
    """R-CLU-4: an action out of attempts is a dead letter; the list pages with a cursor."""
    for n in range(3):
        priced.buy_monthly(f"srv-{n}", "2026-01-01T10:00:00+08:00")
    priced.sweep("2026-02-02T00:10:00+08:00")
    for _ in range(5):  # no kubeconfig: each drain is one failed attempt
        assert priced.ops("POST", "/ops/cluster-actions/drain")[1]["failed"] == 3
    pages = walk(priced, "/ops/dead-letters", limit=2)
    assert [len(p) for p in pages] == [2, 1]
    items = [i for page in pages for i in page]
    assert sorted(i["server_id"] for i in items) == ["srv-0", "srv-1", "srv-2"]
    assert [i["id"] for i in items] == sorted(i["id"] for i in items)
    assert {(i["kind"], i["attempts"]) for i in items} == {("stop", 5)}
    assert all("no kubeconfig" in i["error"] for i in items)
    assert ok(priced, "/ops/dead-letters") == {"items": items, "next": None}


@pytest.mark.parametrize("path, params, field", [
    ("/ops/lists/expiring", {"days": "-1"}, "days"),
    ("/ops/lists/expiring", {"days": "seven"}, "days"),
    ("/ops/lists/expiring", {"limit": "0"}, "limit"),
    ("/ops/lists/arrears", {"limit": "101"}, "limit"),
    ("/ops/lists/grants", {"month": "2026-13"}, "month"),
    ("/ops/lists/arrears", {"cursor": "not-a-cursor"}, "cursor"),
    ("/ops/dead-letters", {"cursor": "eyJ4IjoxfQ"}, "cursor"),
    ("/ops/lists/expiring", {"at": "yesterday"}, "at"),
    ("/ops/lists/arrears", {"days": "7"}, "days"),
    ("/ops/dead-letters", {"month": "2026-12"}, "month"),
])
def test_bad_list_parameters_are_400_naming_the_field(priced, path, params, field):
    """integration §2: bad input is 400 invalid_payload naming the field."""
    status, body = get(priced, path, **params)
    assert (status, body["error"]["code"], body["error"]["fields"]) == (400, "invalid_payload", [field])


def test_a_repeated_query_parameter_is_400(priced):
    status, body = priced.ops("GET", "/ops/lists/expiring?days=1&days=30")
    assert (status, body["error"]["fields"]) == (400, ["days"])


def test_a_cursor_of_one_list_is_refused_by_another(priced):
    for n in range(2):
        priced.buy_monthly(f"srv-{n}", "2026-01-10T10:00:00+08:00")
    cursor = ok(priced, "/ops/lists/expiring", at="2026-02-01T00:00:00+08:00", days=30, limit=1)["next"]
    assert cursor is not None
    status, body = get(priced, "/ops/lists/awaiting-destruction", cursor=cursor)
    assert (status, body["error"]["fields"]) == (400, ["cursor"])


def test_lists_need_the_ops_token_and_unknown_lists_are_404(priced):
    """integration §2: no token or a wrong one is 401; an unknown id (list name) is 404."""
    assert priced.ops("GET", "/ops/lists/expiring", token="wrong")[0] == 401
    assert priced.client.http.get("/ops/lists/arrears").status_code == 401
    status, body = priced.ops("GET", "/ops/lists/everything")
    assert (status, body["error"]["code"]) == (404, "not_found")


def test_console_is_served_with_content_types_and_a_strict_csp(api):
    """The console: static files from the package; the CSP allows nothing but this origin."""
    page = api.client.http.get("/console")
    assert page.status_code == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "connect-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    html = page.body.decode()
    assert 'src="/console/console.js"' in html and 'href="/console/console.css"' in html
    # issue 17: asked with a trailing slash, the same page names the same files (relative names resolved
    # under /console/console/, which nothing serves)
    assert api.client.http.get("/console/").body.decode() == html
    script = api.client.http.get("/console/console.js")
    assert (script.status_code, script.headers["Content-Type"]) == (200, "text/javascript; charset=utf-8")
    style = api.client.http.get("/console/console.css")
    assert (style.status_code, style.headers["Content-Type"]) == (200, "text/css; charset=utf-8")
    missing = api.client.http.get("/console/app.py")
    assert (missing.status_code, json.loads(missing.body)["error"]["code"]) == (404, "not_found")
    for body in (html, script.body.decode(), style.body.decode()):
        assert "http://" not in body and "https://" not in body and "//" + "cdn" not in body


@pytest.mark.parametrize("asked, prefix", [
    ("/api/console", "/api/"), ("/api/console/", "/api/"), ("/v1/billing/console/", "/v1/billing/"),
    ("/console", "/"), (None, ""), ("/api/console/x", ""), ('/a"b/console', ""),
])
def test_the_console_page_names_its_files_from_the_path_it_was_asked_at(asked, prefix):
    """In AWS the page is under the stage (or a custom domain's base path); a path of another form keeps
    the relative names (and nothing from the path that is not a plain segment reaches the HTML)."""
    from chalicelib import console

    html = console.page(asked)[0]
    assert f'src="{prefix}console/console.js"' in html and f'href="{prefix}console/console.css"' in html


def test_list_answers_validate_against_the_openapi_document(priced):
    """The lists are in GET /openapi.json, and real (non-empty) answers validate against it."""
    from tests.integration.test_free_period import apply, buy, filing
    from tests.integration.test_openapi import check

    document = json.loads(priced.client.http.get("/openapi.json").body)
    buy(priced, "srv-g")
    filing(priced, "f1", "srv-g", [("submitted", "2026-01-05T09:00:00+08:00"), ("approved", "2026-01-15T09:00:00+08:00")])
    apply(priced, "t1", "f1", "srv-g", "2026-01-16T10:00:00+08:00", "2026-01-20T10:00:00+08:00")
    priced.buy_monthly("srv-e", "2026-01-05T10:00:00+08:00", account="acc-2")
    priced.pay("order.paid", order_paid("ord-p", "acc-p", "srv-p", "new", "2026-01-01T00:00:00+08:00", 0,
                                        billing_mode="payg", plan_id="std", region="cn-north-1"))
    priced.meter("2026-01-01T01:30:00+08:00")
    expiring = ok(priced, "/ops/lists/expiring", at="2026-02-01T00:00:00+08:00", limit=1)
    priced.sweep("2026-02-06T00:10:00+08:00")
    answers = {"ExpiringList": expiring, "AwaitingDestructionList": ok(priced, "/ops/lists/awaiting-destruction"),
               "ArrearsList": ok(priced, "/ops/lists/arrears"), "GrantsList": ok(priced, "/ops/lists/grants", month="2026-01"),
               "DeadLetters": ok(priced, "/ops/dead-letters")}
    assert [len(a["items"]) for a in answers.values()] == [1, 1, 1, 1, 0]  # srv-p was destroyed by that sweep
    for component, answer in answers.items():
        check(document, component, answer)
    assert {p["name"] for p in document["paths"]["/ops/lists/expiring"]["get"]["parameters"]} == {"days", "at", "limit", "cursor"}
