"""integration §6 "Volume": each list of the server and account views holds the latest 100 entries, oldest
first, with `<list>_next` naming the page before them; `GET /ops/{servers|accounts}/{id}/<list>?before=`
pages back; a view costs the same few DynamoDB requests however long the histories are."""
from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone

import pytest

from tests.support import order_paid

CST = timezone(timedelta(hours=8))
START = datetime(2026, 1, 10, 10, 0, tzinfo=CST)


def t(hours: int) -> str:
    return (START + timedelta(hours=hours)).isoformat()


def page(api, path: str, before: str | None):
    status, body = api.ops("GET", path + (f"?before={before}" if before is not None else ""))
    assert status == 200, body
    return body


@pytest.fixture
def renewed(api):
    """Server s1 bought, then renewed 129 times a month at a time (R-PAY-3): 130 ledger rows on the
    server and on its account, whose `expires_at_after` are the months 1 … 130 after the purchase."""
    api.plan("std", 10000, 20)
    api.buy_monthly("s1", t(0))
    for n in range(1, 130):
        status, answer = api.pay("order.paid", order_paid(f"ord-r{n}", "acc-1", "s1", "renewal", t(n), 10000,
                                                           months=1))
        assert status == 200 and answer["outcome"]["decision"] == "applied", answer
    return api


def months_after(n: int) -> str:
    from dateutil.relativedelta import relativedelta

    return (START + relativedelta(months=n)).isoformat()


def test_contract_6_volume_ledger_holds_the_latest_100_and_pages_back_to_the_first(renewed):
    """R-LIFE-7 rows of the server and of the account: 100 shown (rows 31 … 130), then the 30 older ones."""
    expected = [months_after(n) for n in range(1, 131)]
    for path, view in (("/ops/servers/s1", renewed.server("s1")), ("/ops/accounts/acc-1", renewed.account("acc-1"))):
        assert [r["expires_at_after"] for r in view["ledger"]] == expected[30:]
        assert view["ledger_next"]
        older = page(renewed, f"{path}/ledger", view["ledger_next"])
        assert [r["expires_at_after"] for r in older["items"]] == expected[:30]
        assert older["next"] is None
        assert [(r["kind"], r["rule"]) for r in older["items"][:2]] == [("order_paid", "R-PAY-1"),
                                                                         ("renewal", "R-PAY-3")]
        # without a cursor the page is the view's own list
        assert page(renewed, f"{path}/ledger", None) == {"items": view["ledger"], "next": view["ledger_next"]}
        assert view["audit"] == [] and view["audit_next"] is None
    assert renewed.account("acc-1")["balance"] == 0


def seed_histories(server_id: str, account_id: str, n: int) -> None:
    """n entries in each of the server's lists (ledger, notifications, cluster actions, audit) and the
    account's, written straight to the store: the read side's cost is what is measured here."""
    from chalicelib.domain.records import AuditEntry, ClusterAction, LedgerRow, Notification
    from chalicelib.store.session import Session

    s, staged = Session(), 0
    for i in range(n):
        at = START + timedelta(hours=i)
        s.add_ledger(LedgerRow(at=at, kind="note", rule="R-LIFE-7", account_id=account_id, server_id=server_id,
                               cause=f"seed:{i}"))
        s.add_notification(Notification(target=f"server#{server_id}", cause=f"seed#{i}", kind="stopped", at=at,
                                        account_id=account_id, server_id=server_id))
        s.add_notification(Notification(target=f"account#{account_id}", cause=f"seed#{i}", kind="arrears", at=at,
                                        account_id=account_id))
        s.add_cluster_action(ClusterAction(action_id=f"{i:020d}-stop", server_id=server_id, kind="stop",
                                           created_at=at, cause=f"seed:{i}"))
        for target in (f"server#{server_id}", f"account#{account_id}"):
            s.add_audit(AuditEntry(target=target, at=at, action="suspend", actor="alice"))
        staged += 6
        if staged > 90:
            s.commit()
            s, staged = Session(), 0
    s.commit()


def test_contract_6_volume_a_view_costs_the_same_requests_whatever_the_history(api, monkeypatch):
    """Counted at botocore's API-call hook: a server or account view with 150 entries in every list
    costs exactly what one with a single purchase costs: a read of the record and one bounded query
    (at most 101 items) per list."""
    from botocore.client import BaseClient

    api.plan("std", 10000, 20)
    api.buy_monthly("s1", t(0))
    api.buy_monthly("s2", t(0), account="acc-2", order_id="ord-s2")
    seed_histories("s1", "acc-1", 150)
    calls: list[str] = []
    original = BaseClient._make_api_call

    def counting(self, operation, params):
        if self.meta.service_model.service_name == "dynamodb":
            calls.append(operation + ("" if operation != "Query" else f" limit={params.get('Limit')}"))
        return original(self, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", counting)
    counts, views = {}, {}
    for name, get in (("busy server", lambda: api.server("s1")), ("quiet server", lambda: api.server("s2")),
                      ("busy account", lambda: api.account("acc-1")),
                      ("quiet account", lambda: api.account("acc-2"))):
        calls.clear()
        views[name] = get()
        counts[name] = sorted(calls)
    assert counts["busy server"] == counts["quiet server"] == ["GetItem"] + ["Query limit=101"] * 4
    # the account's lists and its servers (by_account index, integration §7)
    assert counts["busy account"] == counts["quiet account"] == ["GetItem"] + ["Query limit=101"] * 4
    busy = views["busy server"]
    for name in ("ledger", "notifications", "cluster_actions", "audit"):
        assert len(busy[name]) == 100 and busy[f"{name}_next"], name
    for name in ("ledger", "notifications", "audit"):
        assert len(views["busy account"][name]) == 100 and views["busy account"][f"{name}_next"], name


def test_contract_6_volume_cluster_actions_and_server_audit_page_back(api):
    """130 cluster actions and 130 audit entries on a server (as 65 suspend/resume pairs would leave,
    R-LIFE-2), written to the store: the view shows the latest 100 of each, oldest first; the page the
    30 before them."""
    from chalicelib.domain.records import AuditEntry, ClusterAction
    from chalicelib.store.session import Session

    api.plan("std", 10000, 20)
    api.buy_monthly("s1", t(0))
    kinds = ["stop", "start"] * 65
    ids = [f"{i:020d}-{kinds[i]}" for i in range(130)]
    expected_audit = [("suspend" if h % 2 else "resume", t(h)) for h in range(1, 131)]
    for chunk in (range(0, 45), range(45, 90), range(90, 130)):
        s = Session()
        for i in chunk:
            s.add_cluster_action(ClusterAction(action_id=ids[i], server_id="s1", kind=kinds[i], created_at=START,
                                               cause="seed"))
            s.add_audit(AuditEntry(target="server#s1", at=START + timedelta(hours=i + 1), action=expected_audit[i][0],
                                   actor="alice", fields={"note": f"n{i}"}))
        s.commit()
    view = api.server("s1")
    actions = view["cluster_actions"]
    assert [a["id"] for a in actions] == ids[30:]
    assert [a["kind"] for a in actions] == kinds[30:] and all(a["status"] == "pending" for a in actions)
    assert [(e["action"], e["at"]) for e in view["audit"]] == expected_audit[30:]
    assert view["audit"][-1] == {"at": t(130), "action": "resume", "actor": "alice", "note": "n129"}
    older_actions = page(api, "/ops/servers/s1/cluster_actions", view["cluster_actions_next"])
    assert [a["id"] for a in older_actions["items"]] == ids[:30] and older_actions["next"] is None
    older_audit = page(api, "/ops/servers/s1/audit", view["audit_next"])
    assert [(e["action"], e["at"]) for e in older_audit["items"]] == expected_audit[:30]
    assert older_audit["next"] is None


def test_contract_6_volume_notifications_and_the_ops_trail_page_back(api):
    """130 future price versions (R-NOTE-2): 130 `price_change` notifications on the account and 131
    price-version entries (with the first, past one) at GET /ops/audit, paged newest first."""
    assert api.ops("PUT", "/ops/plans/std", {"monthly_price": 9000, "hourly_price": 20,
                                             "effective_from": t(-100), "at": t(0)})[0] == 200
    api.buy_monthly("s1", t(0), amount=9000)
    for n in range(130):
        status, body = api.ops("PUT", "/ops/plans/std", {"monthly_price": 10000 + n, "hourly_price": 20,
                                                         "effective_from": t(1000 + n), "at": t(n + 1)})
        assert status == 200 and body["announcement_run"], body
    latest = page(api, "/ops/audit", None)
    assert [e["monthly_price"] for e in latest["items"]] == [10000 + n for n in range(30, 130)]
    older_trail = page(api, "/ops/audit", latest["next"])
    assert [e["monthly_price"] for e in older_trail["items"]] == [9000] + [10000 + n for n in range(30)]
    assert older_trail["next"] is None
    # the announcements were queued (integration §6 Background work); a drain delivers them
    status, drained = api.ops("POST", "/ops/background/drain")
    assert (status, drained["failed"]) == (200, 0)
    view = api.account("acc-1")
    prices = [n["monthly_price"] for n in view["notifications"]]
    assert prices == [10000 + n for n in range(30, 130)]
    assert [n["at"] for n in view["notifications"]] == [t(n + 1) for n in range(30, 130)]
    older = page(api, "/ops/accounts/acc-1/notifications", view["notifications_next"])
    assert [n["monthly_price"] for n in older["items"]] == [10000 + n for n in range(30)]
    assert older["next"] is None


def test_contract_6_volume_account_servers_page_like_the_other_lists(api, monkeypatch):
    """An account's servers: the last page of ids (in id order, from the by_account index) with `servers_next`,
    `server_count` the total; shown with a page size of 5 to keep the test small."""
    from chalicelib.store import pages

    monkeypatch.setattr(pages, "PAGE_SIZE", 5)
    api.plan("std", 10000, 20)
    for n in range(12):
        api.buy_monthly(f"s{n:02d}", t(n))
    view = api.account("acc-1")
    assert view["server_count"] == 12
    assert view["servers"] == ["s07", "s08", "s09", "s10", "s11"]
    second = page(api, "/ops/accounts/acc-1/servers", view["servers_next"])
    assert second["items"] == ["s02", "s03", "s04", "s05", "s06"]
    third = page(api, "/ops/accounts/acc-1/servers", second["next"])
    assert third == {"items": ["s00", "s01"], "next": None}
    assert len(view["ledger"]) == 5 and view["ledger_next"]


def _cursor(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.mark.parametrize("before", [
    "", "not-a-cursor", "%%%", _cursor({"a": 1}), _cursor(["ledger"]), _cursor(["ledger", "s2", "x", "acc-1"]),
    _cursor(["audit", "s1", "x", "acc-1"]), _cursor(["ledger", "s1", "", "acc-1"]),
    _cursor(["ledger", "s1", 5, "acc-1"]),
], ids=["empty", "not-base64-json", "percent", "object", "short", "other-server", "other-list", "empty-key",
        "number"])
def test_contract_6_volume_a_malformed_or_foreign_cursor_is_400_naming_before(api, before):
    """A cursor is opaque but checked: another list's, another server's or a made-up one is 400."""
    api.plan("std", 10000, 20)
    api.buy_monthly("s1", t(0))
    api.buy_monthly("s2", t(0), order_id="ord-s2")
    status, body = api.ops("GET", f"/ops/servers/s1/ledger?before={before}")
    assert status == 400, body
    assert body["error"]["code"] == "invalid_payload" and body["error"]["fields"] == ["before"]


def test_contract_6_volume_pages_of_unknown_records_are_404_and_need_a_token(api):
    assert api.ops("GET", "/ops/servers/nope/ledger")[0] == 404
    assert api.ops("GET", "/ops/accounts/nope/servers")[0] == 404
    assert api.ops("GET", "/ops/servers/nope/ledger", token="wrong")[0] == 401
    assert api.ops("GET", "/ops/audit", token="wrong")[0] == 401


@pytest.mark.parametrize("query, fields", [("befor=x", ["befor"]), ("before=a&before=b", ["before"]),
                                           ("limit=5", ["limit"])])
def test_contract_6_volume_page_routes_take_only_one_before(api, query, fields):
    """A misspelt or repeated parameter is 400, not silently the latest page."""
    api.plan("std", 10000, 20)
    api.buy_monthly("s1", t(0))
    for path in ("/ops/servers/s1/ledger", "/ops/accounts/acc-1/servers", "/ops/audit"):
        status, body = api.ops("GET", f"{path}?{query}")
        assert status == 400 and body["error"]["fields"] == fields, (path, body)
