"""Property tests of the money rules through the in-process app (R-PAY-2 … R-PAY-7, R-LIFE-2 … R-LIFE-7).

Each example is a random story on 1–2 accounts and up to 3 servers (sometimes a fleet of 21–45), in strictly increasing business
time from 2026-01-01 (steps of an hour to five days): new monthly orders (right price, or a wrong one
that must be held), new pay-as-you-go orders, renewals, upgrades, top-ups, metering runs, expiry
sweeps, gateway refunds of known orders, operator terminations with every reason, and violation /
security-incident suspensions and their lifting. It checks, at every step:
- no 5xx, and every answer code is one the contract lists for that route (integration §1, §2); the
  well-formed, correctly signed events here are never refused as invalid (400/401/413/415);
- the scheduled jobs settle every server they visit (their summaries report no errors);
- a gateway refund of an order whose period a computed refund already paid back is held for
  review, not applied a second time (R-LIFE-5);
and at the end of the story:
- for every account: balance == sum of the ledger's `amount`s (R-LIFE-7), in_arrears == balance < 0
  (R-PAY-7); no `refund` row takes money away; computed refunds of a server never exceed the cash
  paid for its new and renewal orders (R-LIFE-5, R-LIFE-6); `payg_hours` rows never add money (R-PAY-6);
- every server is active/stopped/destroyed; one that was ever destroyed (its `destroyed`
  notification or `destroy` cluster action) is destroyed still (R-LIFE-4); no ledger row moves
  `expires_at` back (R-PAY-1, R-PAY-3); while an account is in arrears its payg servers are stopped,
  and no server is held for arrears once the balance is >= 0 (R-PAY-7).
Every example starts from an empty emulator (the `aws` fixture's reset, done per example).
"""
from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

import requests
from hypothesis import HealthCheck, Phase, example, given, seed, settings
from hypothesis import strategies as st

from tests import support

START = datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=8)))
PLANS = {"std": (10000, 20), "pro": (30000, 60)}  # monthly, hourly (fen)
TERMINATE_REASONS = ["user_closed", "replaced", "breach", "security_incident", "provider_announcement", "consensus"]
# integration §1 (answers table) and §2 (ops: 401, 400, 403, 404; 409 for conflicts, as documented in the OpenAPI)
WEBHOOK_CODES = {200, 400, 401, 409, 413, 415, 422}
OPS_CODES = {200, 400, 401, 403, 404, 409}
REFUSED_AS_INVALID = {400, 401, 413, 415}
STATES = {"active", "stopped", "destroyed"}


# ---- the stories ----------------------------------------------------------------------------------------
@st.composite
def stories(draw):
    accounts = [f"acc-{i}" for i in range(draw(st.integers(1, 2)))]
    # mostly a few servers; sometimes a fleet of dozens, so a balance crossing zero moves more servers than
    # one transaction holds (R-PAY-7 at volume)
    servers = [f"srv-{i}" for i in range(draw(st.one_of(st.integers(1, 3), st.integers(1, 3), st.integers(21, 45))))]
    account, server = st.sampled_from(accounts), st.sampled_from(servers)
    owner_or_other = st.one_of(st.none(), account)  # None: the server's own account (when known)
    plan, months = st.sampled_from(sorted(PLANS)), st.integers(1, 3)
    wrong_by = st.integers(-5000, 5000).filter(bool)
    new_monthly = st.fixed_dictionaries({
        "op": st.just("new_monthly"), "account": account, "server": server, "plan": plan, "months": months,
        "wrong_by": st.one_of(st.just(0), st.just(0), wrong_by)})
    new_payg = st.fixed_dictionaries({"op": st.just("new_payg"), "account": account, "server": server, "plan": plan,
                                      "amount": st.integers(0, 50_000)})
    renewal = st.fixed_dictionaries({"op": st.just("renewal"), "account": owner_or_other, "server": server,
                                     "months": months, "wrong_by": st.one_of(st.just(0), st.just(0), wrong_by)})
    meter, sweep = st.fixed_dictionaries({"op": st.just("meter")}), st.fixed_dictionaries({"op": st.just("sweep")})
    step = st.one_of(  # buying, renewing and the two jobs weigh more: they are what moves money
        new_monthly, new_payg, new_monthly, new_payg, renewal, renewal, meter, meter, sweep, sweep,
        st.fixed_dictionaries({"op": st.just("upgrade"), "account": owner_or_other, "server": server, "plan": plan,
                               "amount": st.integers(0, 30_000)}),
        st.fixed_dictionaries({"op": st.just("top_up"), "account": account, "amount": st.integers(1, 50_000)}),
        st.fixed_dictionaries({"op": st.just("refund"), "order": st.integers(0, 1000),
                               "share": st.sampled_from(["full", "half", "none", "over"])}),
        st.fixed_dictionaries({"op": st.just("terminate"), "server": server,
                               "reason": st.sampled_from(TERMINATE_REASONS)}),
        st.fixed_dictionaries({"op": st.just("suspend"), "server": server,
                               "reason": st.sampled_from(["violation", "security_incident"])}),
        st.fixed_dictionaries({"op": st.just("resume"), "server": server}),
    )
    minutes = st.integers(60, 5 * 24 * 60)  # an hour to five days
    # Each server is bought first (monthly or payg, by either account), so the rest meets real records.
    opening = [draw(st.tuples(minutes, st.one_of(new_payg, new_monthly, new_payg).map(
        lambda s, sid=sid: {**s, "server": sid}))) for sid in servers]
    length = draw(st.integers(0, max(15, 25 - len(opening))))
    return {"accounts": accounts, "servers": servers,
            "steps": opening + draw(st.lists(st.tuples(minutes, step), min_size=length, max_size=length))}


# ---- running a story ------------------------------------------------------------------------------------
def reset_emulator(emulator: str) -> None:
    """What the `aws` fixture does before each test, for each hypothesis example."""
    from chalicelib import aws as aws_clients
    from chalicelib.settings import reset_settings
    from chalicelib.store import session
    from infra.local import bootstrap

    requests.post(f"{emulator}/moto-api/reset", timeout=10).raise_for_status()
    reset_settings()
    aws_clients.queue_url.cache_clear()
    aws_clients.topic_arn.cache_clear()
    bootstrap.create_all(os.environ["AWS_DEFAULT_REGION"], emulator)
    session.reconfigure()


class Story:
    """Runs the steps through the contract and keeps what the checks need."""

    def __init__(self, api):
        self.api = api
        self.owner: dict[str, str] = {}  # server -> account, from applied new orders
        self.plan: dict[str, str] = {}  # server -> plan in use, from applied new orders and upgrades
        self.orders: list[dict] = []  # every order.paid sent: order_id, account, server, amount
        self.period_end: dict[str, datetime] = {}  # applied new monthly/trial and renewal orders
        self.computed_refund_at: dict[str, datetime] = {}  # server -> termination with a computed refund > 0
        self.problem: str | None = None  # what the last step's answer got wrong, beyond its code
        self.log: list[str] = []
        self.n = 0

    def _pay(self, event_type: str, data: dict):
        self.n += 1
        return self.api.pay(event_type, data, event_id=f"evt-{self.n}")

    def _order(self, at: str, kind: str, account: str, server: str, amount: int, **extra):
        order_id = f"ord-{self.n + 1}"
        status, body = self._pay("order.paid", support.order_paid(order_id, account, server, kind, at, amount,
                                                                   **extra))
        self.orders.append({"order_id": order_id, "account": account, "server": server, "amount": amount})
        if status == 200 and body["outcome"]["decision"] == "applied" and kind in ("new", "renewal"):
            expires_at = body["outcome"]["server"].get("expires_at")
            if expires_at:
                self.period_end[order_id] = parse(expires_at)
        return status, body

    def run(self, step: dict, at: str):
        self.problem = None
        op = step["op"]
        if op == "new_monthly":
            price = PLANS[step["plan"]][0] * step["months"]
            status, body = self._order(at, "new", step["account"], step["server"], max(0, price + step["wrong_by"]),
                                       billing_mode="monthly", plan_id=step["plan"], region="cn-north-1",
                                       months=step["months"])
            if status == 200 and body["outcome"]["decision"] == "applied":
                self.owner[step["server"]], self.plan[step["server"]] = step["account"], step["plan"]
            return "webhook", status, body
        if op == "new_payg":
            status, body = self._order(at, "new", step["account"], step["server"], step["amount"],
                                       billing_mode="payg", plan_id=step["plan"], region="cn-east-1")
            if status == 200 and body["outcome"]["decision"] == "applied":
                self.owner[step["server"]], self.plan[step["server"]] = step["account"], step["plan"]
            return "webhook", status, body
        if op == "renewal":
            server = step["server"]
            account = step["account"] or self.owner.get(server, "acc-0")
            price = PLANS[self.plan.get(server, "std")][0] * step["months"]
            status, body = self._order(at, "renewal", account, server, max(0, price + step["wrong_by"]),
                                       months=step["months"])
            return "webhook", status, body
        if op == "upgrade":
            server = step["server"]
            account = step["account"] or self.owner.get(server, "acc-0")
            status, body = self._order(at, "upgrade", account, server, step["amount"], plan_id=step["plan"])
            if status == 200 and body["outcome"]["decision"] == "applied":
                self.plan[server] = step["plan"]
            return "webhook", status, body
        if op == "top_up":
            status, body = self._pay("account.topped_up", {"account_id": step["account"], "amount": step["amount"],
                                                           "topped_up_at": at})
            return "webhook", status, body
        if op == "refund":
            if not self.orders:
                return "skipped", None, None
            order = self.orders[step["order"] % len(self.orders)]
            amount = {"full": order["amount"], "half": order["amount"] // 2, "none": 0,
                      "over": order["amount"] + 1}[step["share"]]
            # R-LIFE-5: an order whose period a computed refund (security incident, provider announcement)
            # already paid back is not paid back again: the gateway's refund is held for review.
            terminated_at = self.computed_refund_at.get(order["server"])
            end = self.period_end.get(order["order_id"])
            paid_back_already = terminated_at is not None and end is not None and end > terminated_at and amount > 0
            status, body = self._pay("order.refunded", {
                "order_id": order["order_id"], "account_id": order["account"], "server_id": order["server"],
                "amount": amount, "refunded_at": at})
            if paid_back_already and status == 200 and body["outcome"]["decision"] != "held_for_review":
                self.problem = (f"R-LIFE-5 {order['order_id']}: refunded by the gateway ({amount}) after a computed "
                                f"refund already paid back its period, and applied: {body['outcome']}")
            return "webhook", status, body
        if op in ("meter", "sweep"):
            path = "/ops/sweeps/metering" if op == "meter" else "/ops/sweeps/expiry"
            status, body = self.api.ops("POST", path, {"now": at})
            return "ops", status, body
        server = step["server"]
        body = {"at": at}
        if op in ("terminate", "suspend"):
            body["reason"] = step["reason"]
        status, answer = self.api.ops("POST", f"/ops/servers/{server}/{op}", body)
        if op == "terminate" and status == 200 and answer["refund"] > 0:
            self.computed_refund_at.setdefault(server, parse(at))
        return "ops", status, answer


def _describe(step: dict) -> str:
    return " ".join([step["op"]] + [f"{k}={v}" for k, v in sorted(step.items()) if k != "op"])


def check_answer(story: Story, route: str, status, body) -> None:
    if route == "skipped":
        return
    where = "\n".join(story.log)
    assert status < 500, f"5xx answer\n{where}"
    assert status in (WEBHOOK_CODES if route == "webhook" else OPS_CODES), f"answer code not in the contract\n{where}"
    if route == "webhook":
        assert status not in REFUSED_AS_INVALID, f"a well-formed signed event was refused\n{where}"
    if route == "ops" and status == 200 and "errors" in body:
        assert body["errors"] == 0, f"a scheduled job failed to settle servers (summary {body})\n{where}"
    assert story.problem is None, f"{story.problem}\n{where}"


def whole(api, path: str, view: dict, name: str) -> list:
    """A view's list with all its older pages (integration §6 "Volume": a view holds the latest 100)."""
    items, cursor = list(view[name]), view.get(f"{name}_next")
    while cursor:
        status, page = api.ops("GET", f"{path}/{name}?before={cursor}")
        assert status == 200, (status, page)
        items[:0], cursor = page["items"], page["next"]
    return items


def check_money(story: Story, accounts: list[str], servers: list[str]) -> None:
    """The properties, on the account and server views at the end of a story (the ledger, the
    notifications and the cluster actions keep its history)."""
    where = "\n".join(story.log)
    accounts_seen = {}
    for account_id in accounts:
        status, view = story.api.ops("GET", f"/ops/accounts/{account_id}")
        if status == 404:
            continue
        assert status == 200, (status, view)
        accounts_seen[account_id] = view
        ledger = whole(story.api, f"/ops/accounts/{account_id}", view, "ledger")
        amounts = [row.get("amount") or 0 for row in ledger]
        assert all(isinstance(a, int) for a in amounts), f"{account_id}: non-integer amounts {amounts}\n{where}"
        assert view["balance"] == sum(amounts), (
            f"R-LIFE-7 {account_id}: balance {view['balance']} != sum of the ledger {sum(amounts)}\n{where}")
        assert view["in_arrears"] == (view["balance"] < 0), f"R-PAY-7 {account_id}: in_arrears wrong\n{where}"
        for row in ledger:
            if row["kind"] == "refund" and row.get("amount") is not None:
                assert row["amount"] >= 0, f"R-LIFE-5 {account_id}: a refund took money: {row}\n{where}"
            if row["kind"] == "payg_hours":
                assert (row.get("amount") or 0) <= 0, f"R-PAY-6 {account_id}: metering added money: {row}\n{where}"
        for server_id in {row.get("server_id") for row in ledger if row.get("server_id")}:
            rows = [row for row in ledger if row.get("server_id") == server_id]
            paid = sum(row.get("cash") or 0 for row in rows if row["kind"] in ("order_paid", "renewal"))
            refunded = sum(row["amount"] for row in rows if row["kind"] == "refund" and row.get("amount") is not None)
            assert refunded <= paid, (
                f"R-LIFE-5/6 {server_id}: computed refunds {refunded} exceed the cash paid {paid}\n{where}")
    for server_id in servers:
        status, view = story.api.ops("GET", f"/ops/servers/{server_id}")
        if status == 404:
            continue
        assert status == 200, (status, view)
        assert view["state"] in STATES, f"{server_id}: state {view['state']!r}\n{where}"
        path = f"/ops/servers/{server_id}"
        destroyed = ([n for n in whole(story.api, path, view, "notifications") if n["kind"] == "destroyed"]
                     + [a for a in whole(story.api, path, view, "cluster_actions") if a["kind"] == "destroy"])
        assert not destroyed or view["state"] == "destroyed", (
            f"R-LIFE-4 {server_id} was destroyed ({destroyed}) and is {view['state']} now\n{where}")
        for row in whole(story.api, path, view, "ledger"):
            if row.get("expires_at_before") and row.get("expires_at_after"):
                assert parse(row["expires_at_after"]) >= parse(row["expires_at_before"]), (
                    f"R-PAY-3 {server_id}: expires_at moved back: {row}\n{where}")
        account = accounts_seen.get(view["account_id"])
        if account and view["billing_mode"] == "payg" and view["state"] != "destroyed":
            assert not account["in_arrears"] or view["state"] == "stopped", (
                f"R-PAY-7 {server_id}: payg server {view['state']} while its account is in arrears\n{where}")
        if account and not account["in_arrears"] and view["state"] != "destroyed":
            assert "arrears" not in (view.get("stop_reasons") or []), (
                f"R-PAY-7 {server_id}: still held for arrears with balance {account['balance']}\n{where}")


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text)


HOUR, DAY = 60, 24 * 60


def _story(accounts: int, servers: int, *steps) -> dict:
    return {"accounts": [f"acc-{i}" for i in range(accounts)], "servers": [f"srv-{i}" for i in range(servers)],
            "steps": list(steps)}


def _payg(server, account="acc-0", amount=1000, plan="std"):
    return {"op": "new_payg", "account": account, "server": server, "plan": plan, "amount": amount}


def _monthly(server, account="acc-0", months=1, plan="std", wrong_by=0):
    return {"op": "new_monthly", "account": account, "server": server, "plan": plan, "months": months,
            "wrong_by": wrong_by}


# Shapes worth trying every time, before the random stories.
EXPLICIT = [
    # two payg servers of one account metered by the same run (R-PAY-6, R-PAY-7)
    _story(1, 2, (HOUR, _payg("srv-0")), (2 * HOUR, _payg("srv-1")), (5 * HOUR, {"op": "meter"}),
           (DAY, {"op": "meter"}), (DAY, {"op": "top_up", "account": "acc-0", "amount": 5000}),
           (HOUR, {"op": "meter"})),
    # renewed, then terminated for a security incident; a second termination and a gateway refund of the
    # renewal come after (R-LIFE-5, R-LIFE-6)
    _story(1, 1, (HOUR, _monthly("srv-0", months=2)),
           (DAY, {"op": "renewal", "account": None, "server": "srv-0", "months": 1, "wrong_by": 0}),
           (20 * DAY, {"op": "terminate", "server": "srv-0", "reason": "security_incident"}),
           (HOUR, {"op": "terminate", "server": "srv-0", "reason": "provider_announcement"}),
           (HOUR, {"op": "refund", "order": 1, "share": "full"})),
    # expired, destroyed after retention, then paid for and operated on (R-LIFE-1, R-LIFE-3, R-LIFE-4, R-PAY-4)
    _story(1, 1, (HOUR, _monthly("srv-0")), (32 * DAY, {"op": "sweep"}), (9 * DAY, {"op": "sweep"}),
           (HOUR, {"op": "renewal", "account": None, "server": "srv-0", "months": 1, "wrong_by": 0}),
           (HOUR, {"op": "resume", "server": "srv-0"}), (HOUR, {"op": "refund", "order": 0, "share": "full"})),
]


# No shrink phase: every example replays a whole story on a fresh emulator, so shrinking a failure would
# take minutes; the failure message lists the story step by step instead. No fixed seed: every run
# explores new stories (hypothesis prints the falsifying story; HYPOTHESIS_SEED=<n> replays a run's seed).
@seed(int(os.environ["HYPOTHESIS_SEED"])) if os.environ.get("HYPOTHESIS_SEED") else (lambda test: test)
@settings(max_examples=25, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(story=stories())
@example(story=EXPLICIT[0])
@example(story=EXPLICIT[1])
@example(story=EXPLICIT[2])
def test_money_rules_hold_after_every_step_of_any_story(emulator, api, story):
    """R-PAY-2 … R-PAY-7, R-LIFE-4 … R-LIFE-7 over random sequences of events, jobs and operator calls."""
    reset_emulator(emulator)
    for plan_id, (monthly, hourly) in PLANS.items():
        api.plan(plan_id, monthly, hourly)
    run, at = Story(api), START
    for minutes, step in story["steps"]:
        at += timedelta(minutes=minutes)
        route, status, body = run.run(step, at.isoformat())
        outcome = (body or {}).get("outcome", {}) if route == "webhook" else {}
        run.log.append(f"  {at.isoformat()} {_describe(step)} -> {status} "
                       f"{outcome.get('decision', '')} {outcome.get('reason', '')}".rstrip())
        check_answer(run, route, status, body)
    check_money(run, story["accounts"], story["servers"])
