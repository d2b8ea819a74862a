"""Property tests of integration §7 "Hostile input, continued" through the in-process app:
- X-Signature `v1` values that are not 64 hexadecimal characters (non-ASCII, non-hex, wrong length, empty,
  many entries) are 401 `invalid_signature` on both webhooks and change nothing; one valid entry among
  them is enough (§1);
- cursors the system did not issue (generated text, the old unsealed form, an issued cursor with one
  character changed, an issued cursor shown to another list or another record) are 400 `invalid_payload`
  naming `before` / `cursor` on every paging input, never a 5xx and never read as a position."""
from __future__ import annotations

import base64
import json
import re
import time
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests import support
from tests.support import envelope, order_paid

SETTINGS = settings(max_examples=60, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_fresh = iter(range(10 ** 9))

text_chars = st.characters(blacklist_categories=("Cs",))
bad_v1 = st.one_of(
    st.just(""), st.just("é"),
    st.text(alphabet="0123456789abcdefABCDEF", max_size=130).filter(lambda v: len(v) != 64),
    # 64 characters, at least one of them not an ASCII hex digit (other scripts' digits, full-width letters)
    st.tuples(st.text(alphabet="0123456789abcdef", max_size=63), st.sampled_from("٣²ａＦ gxé\u212a\x00"),
              st.text(alphabet="0123456789abcdef", max_size=63)).map("".join).map(lambda v: (v * 64)[:64]),
    st.text(alphabet=text_chars, max_size=100),
).filter(lambda v: not HEX64.fullmatch(v.strip()))


def _deliver(api, path: str, secret: str, event: dict, v1_entries: list[str]):
    body = support.dumps(event)
    t = int(time.time())
    good = support.sign(body, secret, t).split("v1=", 1)[1]
    entries = [good if entry is None else entry for entry in v1_entries]
    header = ",".join([f"t={t}"] + [f"v1={entry}" for entry in entries])
    return api._json(api.client.http.post(path, headers={"Content-Type": "application/json", "X-Signature": header},
                                          body=body))


def _top_up(account_id: str) -> dict:
    return envelope("account.topped_up", {"account_id": account_id, "amount": 500,
                                          "topped_up_at": "2026-01-01T10:00:00+08:00"})


WEBHOOKS = [("/webhooks/payments", support.PAY_SECRET), ("/webhooks/ticketing", support.TICKET_SECRET)]


@SETTINGS
@given(webhook=st.sampled_from(WEBHOOKS), entries=st.lists(bad_v1, min_size=1, max_size=6))
@example(webhook=WEBHOOKS[0], entries=["é"])
@example(webhook=WEBHOOKS[1], entries=["é"])
def test_v1_values_that_are_not_64_hex_characters_are_401_and_change_nothing(priced, webhook, entries):
    path, secret = webhook
    account_id = f"acc-sig-{next(_fresh)}"
    event = _top_up(account_id) if path.endswith("payments") else envelope(
        "filing.submitted", {"filing_id": f"fil-{account_id}", "server_id": "srv-none", "kind": "new",
                             "submitted_at": "2026-01-01T10:00:00+08:00"})
    status, body = _deliver(priced, path, secret, event, entries)
    assert (status, body["error"]["code"]) == (401, "invalid_signature"), body
    assert priced.ops("GET", f"/ops/accounts/{account_id}")[0] == 404


# a value holding "," would split into another header entry, and one without "=" makes the whole header
# malformed (401 by design): beside a valid entry only values that stay one entry are meaningful
one_entry_v1 = bad_v1.filter(lambda v: "," not in v)


@SETTINGS
@given(before=st.lists(one_entry_v1, max_size=3), after=st.lists(one_entry_v1, max_size=3))
def test_one_valid_v1_among_malformed_ones_is_enough(priced, before, after):
    """integration §1: one valid entry is enough wherever it stands; malformed entries beside it are ignored."""
    account_id = f"acc-sig-{next(_fresh)}"
    status, body = _deliver(priced, "/webhooks/payments", support.PAY_SECRET, _top_up(account_id),
                            [*before, None, *after])
    assert (status, body["outcome"]["decision"]) == (200, "applied"), body
    assert priced.account(account_id)["balance"] == 500


# ---- cursors ---------------------------------------------------------------------------------------------
PAGE = 1  # store/pages.PAGE_SIZE for these tests: a few entries give real `*_next` cursors


@pytest.fixture
def paged(priced, monkeypatch):
    """Records whose view lists have older pages at PAGE_SIZE 1: acc-1 with srv-a, srv-b, srv-c; acc-2 with
    srv-x; an account and a server that share the id `same`; two plans in the operators' audit."""
    from chalicelib.store import pages

    monkeypatch.setattr(pages, "PAGE_SIZE", PAGE)
    priced.plan("pro", 30000, 60)
    for server_id, account_id, day in [("srv-a", "acc-1", 10), ("srv-b", "acc-1", 11), ("srv-c", "acc-1", 12),
                                       ("srv-x", "acc-2", 13), ("same", "same", 14), ("same-2", "same", 15)]:
        status, body = priced.buy_monthly(server_id, f"2026-01-{day}T10:00:00+08:00", account=account_id)
        assert status == 200, body
    return priced


SERVER_LISTS = ("ledger", "notifications", "cluster_actions", "audit")
ACCOUNT_LISTS = ("ledger", "notifications", "audit", "servers")
BEFORE_ROUTES = ([f"/ops/servers/srv-a/{name}" for name in SERVER_LISTS]
                 + [f"/ops/accounts/acc-1/{name}" for name in ACCOUNT_LISTS] + ["/ops/audit"])
CURSOR_ROUTES = ["/ops/lists/expiring", "/ops/lists/awaiting-destruction", "/ops/lists/arrears",
                 "/ops/lists/grants", "/ops/dead-letters"]


def _b64(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


# the unsealed forms cursors had before (a position anyone could write), with plausible positions
OLD_FORMS = [
    _b64(["servers", "acc-1", "1"]), _b64(["servers", "acc-1", "²"]), _b64(["servers", "acc-1", "٣"]),
    _b64(["ledger", "acc-1", "2026-01-10T02:00:00.000000Z#x"]),
    _b64({"list": "expiring", "after": "2026-01-01T00:00:00.000000Z#a", "upto": "~"}),
    _b64({"list": "expiring", "after": " ", "upto": "not a time key"}),
]
forged = st.one_of(st.sampled_from(OLD_FORMS), st.just(""), st.text(alphabet=text_chars, max_size=80),
                   st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=",
                           min_size=1, max_size=120))


def _get(api, path: str, name: str, value: str, **params):
    query = "&".join(f"{k}={quote(str(v), safe='')}" for k, v in {**params, name: value}.items())
    return api.ops("GET", f"{path}?{query}")


@SETTINGS
@given(route=st.sampled_from(BEFORE_ROUTES), cursor=forged)
@example(route="/ops/accounts/acc-1/servers", cursor=OLD_FORMS[1])
@example(route="/ops/accounts/acc-1/servers", cursor=OLD_FORMS[2])
def test_a_forged_before_is_400_naming_it(paged, route, cursor):
    status, body = _get(paged, route, "before", cursor)
    assert (status, body["error"]["code"], body["error"]["fields"]) == (400, "invalid_payload", ["before"]), body


@SETTINGS
@given(route=st.sampled_from(CURSOR_ROUTES), cursor=forged)
@example(route="/ops/lists/expiring", cursor=OLD_FORMS[5])
def test_a_forged_list_cursor_is_400_naming_it(paged, route, cursor):
    status, body = _get(paged, route, "cursor", cursor)
    assert (status, body["error"]["code"], body["error"]["fields"]) == (400, "invalid_payload", ["cursor"]), body


def _issued(api) -> dict[str, str]:
    """Route → a cursor the system issued for it (a view's `*_next`, or a list's `next`)."""
    server, account, same = api.server("srv-a"), api.account("acc-1"), api.account("same")
    issued = {"/ops/accounts/acc-1/ledger": account["ledger_next"],
              "/ops/accounts/acc-1/servers": account["servers_next"],
              "/ops/accounts/same/ledger": same["ledger_next"],
              "/ops/accounts/same/servers": same["servers_next"],
              "/ops/audit": api.ops("GET", "/ops/audit")[1]["next"]}
    issued["/ops/lists/expiring"] = _get(api, "/ops/lists/expiring", "limit", "1", at="2026-02-01T00:00:00+08:00",
                                         days="30")[1]["next"]
    assert all(issued.values()), issued
    assert server["ledger_next"] is None  # one row: no older page
    return issued


def test_issued_cursors_page_on_their_own_route(paged):
    """The `*_next` cursors of the views are the kind the page routes accept (integration §6 "Volume")."""
    issued = _issued(paged)
    assert paged.account("acc-1")["servers"] == ["srv-c"]
    second = _get(paged, "/ops/accounts/acc-1/servers", "before", issued["/ops/accounts/acc-1/servers"])[1]
    assert second["items"] == ["srv-b"]
    assert _get(paged, "/ops/accounts/acc-1/servers", "before", second["next"])[1] == {"items": ["srv-a"], "next": None}
    older = _get(paged, "/ops/accounts/acc-1/ledger", "before", issued["/ops/accounts/acc-1/ledger"])[1]
    assert [row["server_id"] for row in older["items"]] == ["srv-b"]
    expiring = _get(paged, "/ops/lists/expiring", "cursor", issued["/ops/lists/expiring"], limit="5")[1]
    assert [item["server_id"] for item in expiring["items"]] == ["srv-b", "srv-c", "srv-x", "same", "same-2"]


def test_a_cursor_shown_to_another_list_or_record_is_400(paged):
    """integration §7: a cursor from another list or another record is refused, including the account
    `same`'s ledger cursor shown to the server `same` (one id, two records) and across the view lists."""
    issued = _issued(paged)
    targets = BEFORE_ROUTES + ["/ops/accounts/acc-2/ledger", "/ops/accounts/acc-2/servers",
                               "/ops/accounts/same/ledger", "/ops/accounts/same/servers",
                               "/ops/servers/same/ledger", "/ops/servers/same-2/ledger"]
    for origin, cursor in issued.items():
        for route in targets + CURSOR_ROUTES:
            if route == origin:
                continue
            name = "cursor" if route in CURSOR_ROUTES else "before"
            status, body = _get(paged, route, name, cursor)
            assert (status, body["error"]["fields"]) == (400, [name]), (origin, route, body)


@SETTINGS
@given(data=st.data())
def test_an_issued_cursor_with_one_character_changed_is_400(paged, data):
    issued = _issued(paged)
    route = data.draw(st.sampled_from(sorted(issued)))
    cursor = issued[route]
    at = data.draw(st.integers(0, len(cursor) - 1))
    char = data.draw(st.characters(blacklist_categories=("Cs",)).filter(lambda c: c != cursor[at]))
    changed = cursor[:at] + char + cursor[at + 1:]
    name = "cursor" if route in CURSOR_ROUTES else "before"
    status, body = _get(paged, route, name, changed)
    assert (status, body["error"]["fields"]) == (400, [name]), body
