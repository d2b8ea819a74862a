"""Faults in DynamoDB while both senders deliver every event type of integration §1 concurrently; nothing
lost or doubled after their retries.

The app runs in this process behind the local stack's threaded HTTP server (infra/local/api_server.py, as
the `http_api` fixture of tests/integration/conftest.py starts it) against a moto server; botocore's
_make_api_call is wrapped (above botocore's own retries, so every thread of the app passes through it) so
that, from one seeded RNG, ~20 % of TransactWriteItems/TransactGetItems fail before reaching the emulator
(ProvisionedThroughputExceeded / Throttling / InternalServerError: nothing applied) and ~5 % of
TransactWriteItems are applied and then answered with an InternalServerError (lost response).

Senders: 8 threads over real HTTP; each delivery is re-sent (same id, same body, fresh signature) until a
2xx (5xx, 409 event_in_progress and 422 unknown_reference are retried; any other 4xx gives up); ~15 % of
the events are delivered twice at the same moment (two threads, each retrying: duplicate deliveries
racing). The events come in waves, each wave concurrent and shuffled, so that every event names only
what earlier waves made (the order the rules need, R-FREE-3: approval before the application):

  1. order.paid new monthly (mainland and Hong Kong), new trial, new payg (3 servers on each of 6
     accounts, 40 on each of 2; one order an account carries an amount credited to the balance);
     account.topped_up on accounts with no servers (5 racing on each of 5 accounts).
     -- fault-free: POST /ops/sweeps/metering puts the payg accounts in arrears (servers suspended).
  2. order.paid renewal, order.paid upgrade, order.refunded (unsubscription of a new monthly order),
     account.topped_up x3 racing on each arrears account (one of them crosses zero: the settlement resumes
     the payg servers, inside its transaction for 3, in two follow-up transactions for 40, which a fault
     can cut off: 409 event_in_progress, the redelivery finishes them), filing.submitted (one or two
     submissions a filing).
  3. filing.withdrawn, filing.rejected, filing.approved.
  4. compensation.requested (two tickets for one filing on some servers: R-FREE-6).
  5. compensation.accepted (both tickets of a pair racing).

Then everything is read back fault-free (the ops views over HTTP, the filing/ticket/event rows from the
tables) and checked per event against what was sent and the rules, computed here independently: exactly
one ledger effect (payments: ledger rows carrying the event id; filing events: one entry in the filing's
history; compensation: the ticket recorded / decided and one free-period row when granted), at most one
"processed" answer, its idempotency marker stored; balances exact; servers listed once with the expected
expiry, plan and state; free periods granted exactly once with the expected days; no 409
event_id_reused; no event left on 409 event_in_progress.

The fault rolls come from a seeded RNG (argv[1]), but with threads the interleaving of calls, and so
which call gets which roll, varies from run to run: a seed fixes the scenario and the fault rates, not
the exact faults.

Targets: lost = 0, doubled = 0, wrong state = 0, stuck = 0 / reused = 0."""
from __future__ import annotations

import json
import math
import random
import sys
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import _common as c

SEED = int(sys.argv[1]) if len(sys.argv) > 1 else 20240611
P_FAIL, P_LOST = 0.20, 0.05
FAIL_CODES = ("ProvisionedThroughputExceededException", "ThrottlingException", "InternalServerError")
THREADS, MAX_ATTEMPTS, P_DUP = 8, 60, 0.15

# the scenario (sized for a few minutes on 2 shared cores)
N_MONTHLY, N_TRIAL, ACCOUNTS = 75, 10, 15           # new monthly / trial orders on acc-m-*
N_RENEW, N_UPGRADE, N_REFUND = 20, 10, 10            # disjoint sets of monthly servers
N_FILING_MONTHLY, N_FILING_TRIAL, N_CHANGE, N_PAIRS = 32, 4, 3, 6
# payg servers per arrears account: six small ones (settled inside the top-up's own transaction) and two
# over money.INLINE_MOVES (20), settled by follow-up transactions of 32 after the commit (integration §6)
PAYG_SERVERS, PAYG_CREDIT = (3,) * 6 + (40,) * 2, 300
TOPUP_ACCOUNTS, TOPUPS_EACH = 5, 5
MAINLAND = ("cn-north-1", "cn-east-1", "cn-east-2", "cn-south-1")

STD = {"monthly_price": 10000, "hourly_price": 20, "effective_from": "2020-01-01T00:00:00+08:00"}
PRO = {"monthly_price": 30000, "hourly_price": 60, "effective_from": "2020-01-01T00:00:00+08:00"}
D = datetime.fromisoformat
PAID = D("2026-01-10T10:00:00+08:00")                # every new order
EXPIRES = D("2026-02-10T10:00:00+08:00")             # PAID + 1 month (R-PAY-1)
METER_AT = D("2026-01-11T10:00:00+08:00")            # fault-free metering run
TOPUP_AT = D("2026-01-11T12:00:00+08:00")
UPGRADE_AT = D("2026-01-15T10:00:00+08:00")
REFUND_AT = D("2026-01-16T10:00:00+08:00")
RENEW_AT = D("2026-01-20T10:00:00+08:00")            # before EXPIRES: max(expires, paid) + 1 month
FILING_BASE = D("2026-01-12T09:00:00+08:00")
REQUESTED_AT = D("2026-01-28T10:00:00+08:00")
ACCEPTED_AT = D("2026-01-29T15:00:00+08:00")          # a Thursday
DUE_BY = D("2026-01-30T15:00:00+08:00")               # R-FREE-3: next working day, same clock time


class Faults:
    def __init__(self, seed: int):
        self.rng, self.active, self.injected = random.Random(seed), False, Counter()
        self.lock = threading.Lock()

    def __call__(self, service, operation, params, call):
        if not self.active or service != "dynamodb" or operation not in ("TransactWriteItems", "TransactGetItems"):
            return call()
        from botocore.exceptions import ClientError

        with self.lock:
            roll = self.rng.random()
            code = self.rng.choice(FAIL_CODES)
        if roll < P_FAIL:
            with self.lock:
                self.injected[f"{operation} {code} (not applied)"] += 1
            raise ClientError({"Error": {"Code": code, "Message": "injected by bench/faults.py"},
                               "ResponseMetadata": {"HTTPStatusCode": 500 if code == "InternalServerError" else 400}},
                              operation)
        if operation == "TransactWriteItems" and roll < P_FAIL + P_LOST:
            call()  # applied; the answer never reaches the app
            with self.lock:
                self.injected["TransactWriteItems applied, response lost"] += 1
            raise ClientError({"Error": {"Code": "InternalServerError", "Message": "injected: response lost"},
                               "ResponseMetadata": {"HTTPStatusCode": 500}}, operation)
        return call()


# ---- the scenario ----------------------------------------------------------------------------------
@dataclass
class Ev:
    kind: str           # the label figures are grouped by
    sender: str         # "payments" | "ticketing"
    env: dict
    wave: int
    want_rows: int = 1  # ledger rows carrying the event id (payments; the others are checked per kind)
    stats: Counter = field(default_factory=Counter)

    @property
    def id(self) -> str:
        return self.env["id"]


@dataclass
class Srv:
    server_id: str
    account_id: str
    mode: str
    region: str
    expires: datetime | None = None
    plan: str = "std"
    refunded: bool = False
    want_days: int | None = None          # the free days expected granted
    want_fp: str | None = None            # expected free_period decision on the server
    want_fp_reason: str | None = None


def iso(dt: datetime) -> str:
    return dt.isoformat()


def build(rng: random.Random):
    evs: list[Ev] = []
    servers: dict[str, Srv] = {}
    balances: dict[str, int] = {}
    filings: dict[str, dict] = {}
    tickets: dict[str, dict] = {}
    n = Counter()

    def add(kind, sender, type_, data, wave, want_rows=1):
        n[kind] += 1
        slug = "-".join("".join(ch if ch.isalnum() or ch == "_" else " " for ch in kind).split())
        evs.append(Ev(kind, sender, c.envelope(type_, data, event_id=f"evt-{slug}-{n[kind]}"), wave, want_rows))

    # wave 1: new orders and top-ups of accounts with no servers
    for i in range(N_MONTHLY):
        region = "ap-northeast-1" if i % 10 == 9 else MAINLAND[i % 4]
        s = Srv(f"srv-m-{i}", f"acc-m-{i % ACCOUNTS}", "monthly", region, EXPIRES)
        servers[s.server_id] = s
        balances[s.account_id] = 0  # a monthly order's cash is recorded, the balance is not touched
        add("order.paid new monthly", "payments", "order.paid",
            c.order_paid(f"ord-m-{i}", s.account_id, s.server_id, "new", iso(PAID), 10000, billing_mode="monthly",
                         plan_id="std", region=region, months=1), 1)
    for i in range(N_TRIAL):
        s = Srv(f"srv-tr-{i}", f"acc-m-{i % ACCOUNTS}", "trial", MAINLAND[i % 4], EXPIRES)
        servers[s.server_id] = s
        add("order.paid new trial", "payments", "order.paid",
            c.order_paid(f"ord-tr-{i}", s.account_id, s.server_id, "new", iso(PAID), 0, billing_mode="trial",
                         plan_id="std", region=s.region, months=1), 1)
    hours = int((METER_AT - PAID) / timedelta(hours=1)) + 1  # R-PAY-6: every hour started at or before now
    for j, count in enumerate(PAYG_SERVERS):
        acc = f"acc-p-{j}"
        balances[acc] = PAYG_CREDIT - count * hours * STD["hourly_price"]
        for k in range(count):
            s = Srv(f"srv-p-{j}-{k}", acc, "payg", "cn-north-1")
            servers[s.server_id] = s
            amount = PAYG_CREDIT if k == 0 else 0
            add("order.paid new payg", "payments", "order.paid",
                c.order_paid(f"ord-p-{j}-{k}", acc, s.server_id, "new", iso(PAID), amount, billing_mode="payg",
                             plan_id="std", region="cn-north-1"), 1, want_rows=2 if amount else 1)  # + top_up row
    for k in range(TOPUP_ACCOUNTS):
        acc = f"acc-t-{k}"
        balances[acc] = 0
        for t in range(TOPUPS_EACH):
            amount = 100 + 7 * k + t
            balances[acc] += amount
            add("account.topped_up (no servers)", "payments", "account.topped_up",
                {"account_id": acc, "amount": amount, "topped_up_at": iso(PAID + timedelta(hours=1))}, 1)
    in_arrears_after_metering = {f"acc-p-{j}": balances[f"acc-p-{j}"] for j in range(len(PAYG_SERVERS))}

    # wave 2: renewals, upgrades, refunds (disjoint: their order on one server would change the outcome),
    # top-ups crossing zero on the arrears accounts, first submissions
    monthly = [f"srv-m-{i}" for i in range(N_MONTHLY)]
    picked = rng.sample(monthly, N_RENEW + N_UPGRADE + N_REFUND)
    renew, upgrade, refund = (picked[:N_RENEW], picked[N_RENEW:N_RENEW + N_UPGRADE],
                              picked[N_RENEW + N_UPGRADE:])
    for sid in renew:
        s = servers[sid]
        s.expires = s.expires.replace(month=3)  # R-PAY-3: max(2026-02-10, 2026-01-20) + 1 month
        add("order.paid renewal", "payments", "order.paid",
            c.order_paid(f"ord-ren-{sid}", s.account_id, sid, "renewal", iso(RENEW_AT), 10000, months=1), 2)
    for sid in upgrade:
        s = servers[sid]
        s.plan = "pro"
        add("order.paid upgrade", "payments", "order.paid",
            c.order_paid(f"ord-up-{sid}", s.account_id, sid, "upgrade", iso(UPGRADE_AT), 6667, plan_id="pro"), 2)
    for sid in refund:
        s = servers[sid]
        s.refunded = True
        add("order.refunded", "payments", "order.refunded",
            {"order_id": f"ord-m-{sid.rsplit('-', 1)[1]}", "account_id": s.account_id, "server_id": sid,
             "amount": 5000, "refunded_at": iso(REFUND_AT)}, 2)
    for j in range(len(PAYG_SERVERS)):
        acc = f"acc-p-{j}"
        debt = -balances[acc]
        # three racing top-ups, together 100 + j fen more than the debt: exactly one of them crosses zero
        for amount in (debt // 2 + j, debt // 3, debt - debt // 2 - debt // 3 + 100):
            balances[acc] += amount
            add("account.topped_up (payg, crosses zero)", "payments", "account.topped_up",
                {"account_id": acc, "amount": amount, "topped_up_at": iso(TOPUP_AT)}, 2)
        assert balances[acc] >= 0 > in_arrears_after_metering[acc]

    # filings: A submitted -> approved; B submitted, withdrawn, submitted, approved (counts from the second
    # submission); C submitted, rejected, submitted, approved (counts from the first, R-FREE-1 reading)
    on = rng.sample([sid for sid in monthly], N_FILING_MONTHLY) + rng.sample(
        [f"srv-tr-{i}" for i in range(N_TRIAL)], N_FILING_TRIAL)
    change = set(rng.sample(on[:N_FILING_MONTHLY], N_CHANGE))
    for f, sid in enumerate(on):
        s = servers[sid]
        d0 = FILING_BASE + timedelta(minutes=7 * f)
        kind = "A" if s.refunded else "ABC"[f % 3]
        day = timedelta(days=1)
        timeline = {"A": [("submitted", d0), ("approved", d0 + 6 * day + timedelta(hours=5))],
                    "B": [("submitted", d0), ("withdrawn", d0 + 3 * day), ("submitted", d0 + 5 * day),
                          ("approved", d0 + 15 * day + timedelta(hours=1))],
                    "C": [("submitted", d0), ("rejected", d0 + 4 * day), ("submitted", d0 + 6 * day),
                          ("approved", d0 + 12 * day + timedelta(hours=3))]}[kind]
        start = d0 + 5 * day if kind == "B" else d0
        approved = timeline[-1][1]
        fid = f"fil-{f}"
        filings[fid] = {"server_id": sid, "events": []}
        for what, at in timeline:
            data = {"filing_id": fid, f"{what}_at": iso(at)}
            if what == "submitted":
                data.update(server_id=sid, website=f"www.site-{f}.example.cn", is_change=sid in change)
            add(f"filing.{what}", "ticketing", f"filing.{what}", data, 2 if what == "submitted" else 3)
            filings[fid]["events"].append(evs[-1].id)
        # R-FREE-2 in its order (server_mismatch, filing_not_approved, already_granted, violation: not sent)
        if sid in change:
            reason = "not_first_website"
        elif s.mode == "trial":
            reason = "trial_server"
        elif s.region not in MAINLAND:
            reason = "region_not_mainland"
        elif s.refunded and start <= REFUND_AT <= approved:
            reason = "service_ended"
        else:
            reason = None
        days = min(45, math.ceil((approved - start) / day))  # R-FREE-1
        if s.plan == "pro" and start < UPGRADE_AT <= approved:  # R-FREE-5: std at the start, pro at approval
            days = min(45, math.ceil(days * STD["monthly_price"] / PRO["monthly_price"]))
        s.want_fp, s.want_fp_reason = ("denied", reason) if reason else ("granted", None)
        if not reason:
            s.want_days = days
            s.expires = s.expires + timedelta(days=days)  # R-FREE-4: whole days appended at the end
        pair = not reason and sum(1 for t in tickets.values() if t.get("pair")) < 2 * N_PAIRS
        for suffix in ("ab" if pair else "a"):
            tid = f"tk-{f}-{suffix}"
            tickets[tid] = {"server_id": sid, "filing_id": fid, "pair": pair, "reason": reason}
            add("compensation.requested", "ticketing", "compensation.requested",
                {"ticket_id": tid, "filing_id": fid, "server_id": sid, "requested_at": iso(REQUESTED_AT)}, 4)
            tickets[tid]["requested"] = evs[-1].id
    for tid in tickets:
        add("compensation.accepted", "ticketing", "compensation.accepted",
            {"ticket_id": tid, "engineer_id": "eng-1", "accepted_at": iso(ACCEPTED_AT)}, 5)
        tickets[tid]["accepted"] = evs[-1].id
    return evs, servers, balances, filings, tickets, in_arrears_after_metering


# ---- the senders -----------------------------------------------------------------------------------
class Senders:
    def __init__(self, base: str):
        self.base, self.local, self.lock = base, threading.local(), threading.Lock()

    def http(self):
        if not hasattr(self.local, "s"):
            import requests

            self.local.s = requests.Session()
            self.local.s.trust_env = False  # loopback only, never a proxy
        return self.local.s

    def deliver(self, ev: Ev, barrier: threading.Barrier | None) -> None:
        path, secret = ((f"/webhooks/{ev.sender}"), c.PAY_SECRET if ev.sender == "payments" else c.TICKET_SECRET)
        body = json.dumps(ev.env).encode()
        if barrier is not None:
            try:
                barrier.wait(timeout=10)  # the two deliveries of a duplicated event start together
            except threading.BrokenBarrierError:
                pass
        local = Counter(deliveries=1)
        for attempt in range(MAX_ATTEMPTS):
            if attempt:
                local["retries"] += 1
                time.sleep(min(0.4, 0.02 * attempt) * random.random())
            try:
                r = self.http().post(self.base + path, data=body, headers=c.signed_headers(body, secret), timeout=120)
                status, answer = r.status_code, (r.json() if r.content else {})
            except Exception as exc:  # noqa: BLE001 - a broken connection: the sender retries as for a 5xx
                status, answer = 599, {"error": {"code": type(exc).__name__}}
            code = (answer.get("error") or {}).get("code") if isinstance(answer, dict) else None
            if status < 300:
                local[answer.get("result", "?")] += 1
                if answer.get("result") == "processed":
                    with self.lock:
                        ev.stats.setdefault("outcome", answer.get("outcome"))  # type: ignore[arg-type]
                break
            local["connection error" if status == 599 else "5xx" if status >= 500 else f"{status} {code}"] += 1
            if not (status >= 500 or code in ("event_in_progress", "busy", "unknown_reference")):
                local["gave up"] += 1
                break
        else:
            local["stuck"] += 1
            local[f"stuck on {code}"] += 1
        with self.lock:
            ev.stats.update(local)

    def wave(self, evs: list[Ev], rng: random.Random) -> None:
        jobs: list[tuple[Ev, threading.Barrier | None]] = []
        for ev in rng.sample(evs, len(evs)):
            if rng.random() < P_DUP:
                barrier = threading.Barrier(2)
                jobs += [(ev, barrier), (ev, barrier)]
            else:
                jobs.append((ev, None))
        with ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(lambda job: self.deliver(*job), jobs))

    def ops(self, method: str, path: str, body: dict | None = None):
        r = self.http().request(method, self.base + path, json=body,
                                headers={"Authorization": f"Bearer {c.OPS_TOKEN}"}, timeout=300)
        return r.status_code, r.json()

    def all_of(self, kind: str, owner: str, view: dict, name: str) -> list:
        """A view's list with its older pages (integration §6: each list holds the latest 100)."""
        items, cursor = list(view.get(name) or []), view.get(f"{name}_next")
        while cursor:
            st, page = self.ops("GET", f"/ops/{kind}/{owner}/{name}?before={cursor}")
            assert st == 200, page
            items, cursor = page["items"] + items, page["next"]
        return items


def start_api():
    """The local stack's HTTP server around the app, in this process (tests/integration/conftest.py http_api)."""
    from chalice.config import Config

    import app as chalice_app
    from infra.local import api_server

    server = api_server.make_server(c.LOOPBACK, c.free_port(), app_object=chalice_app.app, config=Config.create())
    server._wrapped_handler.func.log_message = lambda self, *args: None  # no access line per request
    thread = threading.Thread(target=server.server.serve_forever, daemon=True)
    thread.start()
    c.quiet_app_logs()
    return server, f"http://{c.LOOPBACK}:{server.port}"


# ---- main ------------------------------------------------------------------------------------------
def main() -> int:
    import os

    os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"  # no EMF line per request on stdout
    rng = random.Random(SEED)
    evs, servers, balances, filings, tickets, after_metering = build(rng)
    emulator, _ = c.start_emulator()
    faults = Faults(SEED)
    c.add_middleware(faults)
    api, base = start_api()
    senders = Senders(base)
    problems: list[str] = []
    t_all = time.perf_counter()
    wall = 0.0
    try:
        for plan_id, prices in (("std", STD), ("pro", PRO)):
            st, body = senders.ops("PUT", f"/ops/plans/{plan_id}", prices)
            assert st == 200, body
        c.quiet_app_logs()
        for wave in range(1, 6):
            faults.active = True
            t0 = time.perf_counter()
            senders.wave([e for e in evs if e.wave == wave], rng)
            wall += time.perf_counter() - t0
            faults.active = False
            c.quiet_app_logs()  # the first invocation set the library loggers up
            if wave == 1:  # fault-free: the metering run puts the payg accounts in arrears
                st, run = senders.ops("POST", "/ops/sweeps/metering", {"now": iso(METER_AT)})
                assert st == 200, run
                for acc, want in after_metering.items():
                    st, view = senders.ops("GET", f"/ops/accounts/{acc}")
                    if st != 200 or view["balance"] != want or not view["in_arrears"]:
                        problems.append(f"after metering {acc}: balance {view.get('balance')} (want {want}), "
                                        f"in_arrears {view.get('in_arrears')}")
        # integration §7: a settlement a call could not finish was queued (`"follow_up": "queued"`); in AWS
        # background_work runs it at once, here the drain does, fault-free, before anything is checked
        while True:
            st, drained = senders.ops("POST", "/ops/background/drain", {})
            assert st == 200, drained
            if not drained.get("more"):
                break
        # ---- read back, fault-free ----
        from chalicelib.store import models as m

        accounts = sorted({s.account_id for s in servers.values()} | set(balances))
        views = {a: senders.ops("GET", f"/ops/accounts/{a}") for a in accounts}
        ledgers = {a: senders.all_of("accounts", a, v, "ledger") for a, (st, v) in views.items() if st == 200}
        listed = Counter(sid for a, (st, v) in views.items() if st == 200
                         for sid in senders.all_of("accounts", a, v, "servers"))
        server_views = {sid: senders.ops("GET", f"/ops/servers/{sid}") for sid in servers}
        def row(cls, key):
            try:
                return cls.get(key, consistent_read=True)
            except cls.DoesNotExist:
                return None
        filing_rows = {fid: getattr(row(m.FilingRow, fid), "doc", None) for fid in filings}
        ticket_rows = {tid: getattr(row(m.TicketRow, tid), "doc", None) for tid in tickets}
        markers = {e.id: row(m.EventRow, f"{e.sender}#{e.id}") is not None for e in evs}
        table_ledgers = {a: [r.doc for r in m.LedgerRowModel.query(a, consistent_read=True)] for a in accounts}
        pending = [a for a in views if (getattr(row(m.AccountRow, a), "doc", None) or {}).get("settlement")]
    finally:
        api.shutdown()
        api.server.server_close()
        emulator.stop()
    total = time.perf_counter() - t_all

    # ---- per event: exactly one effect ----
    rows = Counter(r.get("event_id") for ledger in ledgers.values() for r in ledger if r.get("event_id"))
    fp_rows = Counter(r.get("event_id") for ledger in ledgers.values() for r in ledger if r["kind"] == "free_period")
    history = Counter(x.get("event_id") for doc in filing_rows.values() if doc for x in doc["events"])
    lost, doubled = set(), set()
    for e in evs:
        if e.sender == "payments":
            got = rows[e.id]
        elif e.kind.startswith("filing."):
            got = history[e.id]
        elif e.kind == "compensation.requested":
            tid = e.env["data"]["ticket_id"]
            got = int(ticket_rows[tid] is not None)
        else:
            t = ticket_rows[e.env["data"]["ticket_id"]]
            decided = t is not None and bool(t.get("decision"))
            granted = decided and t["decision"].get("decision") == "granted"
            got = int(decided) + fp_rows[e.id] - int(granted)  # decided, and one free_period row iff granted
            if granted and fp_rows[e.id] == 0:
                got = 0
        want = e.want_rows if e.sender == "payments" else 1
        if got < want or not markers[e.id]:
            lost.add(e.id)
        if got > want or e.stats["processed"] > 1:
            doubled.add(e.id)

    # ---- state: balances, servers, grants (expected values computed above from what was sent) ----
    wrong: list[str] = []
    for a, want in balances.items():
        st, v = views[a]
        chain = sum(r["amount"] for r in ledgers.get(a, []) if r.get("amount") is not None)
        if st != 200 or v["balance"] != want or chain != want or v["in_arrears"] != (want < 0):
            wrong.append(f"account {a}: balance {v.get('balance')} ledger sum {chain} want {want}, "
                         f"in_arrears {v.get('in_arrears')}")
    for a, table_rows in table_ledgers.items():
        def brief(r):
            return r.get("event_id") or "", r["kind"], r.get("amount") or 0, r.get("server_id") or ""
        if sorted(map(brief, table_rows)) != sorted(map(brief, ledgers.get(a, []))):
            wrong.append(f"account {a}: the view's ledger ({len(ledgers.get(a, []))} rows) is not the table's "
                         f"({len(table_rows)} rows)")
    if pending:
        wrong.append(f"arrears settlement still pending on {pending}")
    for sid, s in servers.items():
        st, v = server_views[sid]
        if st != 200 or listed[sid] != 1:
            wrong.append(f"server {sid}: GET {st}, listed {listed[sid]} time(s)")
            continue
        got = {"state": v["state"], "plan": v["plan_id"], "stop": v["stop_reason"],
               "expires": v["expires_at"] and D(v["expires_at"]),
               "fp": (v["free_period"] or {}).get("decision"), "fp_days": (v["free_period"] or {}).get("days"),
               "fp_reason": (v["free_period"] or {}).get("reason"),
               "grants": sum(r["kind"] == "free_period" for r in v["ledger"] + ([] if not v.get("ledger_next") else
                             senders.all_of("servers", sid, {"ledger_next": v["ledger_next"]}, "ledger")))}
        want = {"state": "stopped" if s.refunded else "active", "plan": s.plan,
                "stop": "terminated" if s.refunded else None, "expires": s.expires,
                "fp": s.want_fp, "fp_days": s.want_days, "fp_reason": s.want_fp_reason,
                "grants": int(s.want_fp == "granted")}
        if s.refunded:
            got.pop("expires")
            want.pop("expires")
        if got != want:
            wrong.append(f"server {sid}: " + ", ".join(f"{k} {got[k]!r} (want {want[k]!r})" for k in want
                                                       if got[k] != want[k]))
    for tid, t in tickets.items():
        row = ticket_rows[tid] or {}
        d = row.get("decision") or {}
        if t["pair"]:
            other = ticket_rows[tid[:-1] + ("b" if tid[-1] == "a" else "a")] or {}
            ok_pair = sorted([str(d.get("decision")), str((other.get("decision") or {}).get("decision"))]) == [
                "denied", "granted"]
            if not ok_pair or (d.get("decision") == "denied" and d.get("reason") != "already_granted"):
                wrong.append(f"ticket {tid} (pair): {d}, the other {(other.get('decision') or {})}")
        elif d.get("decision") != ("denied" if t["reason"] else "granted") or d.get("reason") != t["reason"]:
            wrong.append(f"ticket {tid}: {d} (want {t['reason'] or 'granted'})")
        if d and d.get("due_by") and D(d["due_by"]) != DUE_BY:
            wrong.append(f"ticket {tid}: due_by {d['due_by']} (want {iso(DUE_BY)})")
    for e in evs:  # payments: each applied, none held
        outcome = e.stats.get("outcome")
        if e.sender == "payments" and isinstance(outcome, dict) and outcome.get("decision") != "applied":
            wrong.append(f"{e.kind} {e.id}: {outcome}")
    wrong += problems

    # ---- report ----
    reused = sum(e.stats["409 event_id_reused"] for e in evs)
    stuck = [e.id for e in evs if e.stats["stuck"] or e.stats["gave up"]]
    print(f"seed {SEED}: {len(evs)} events in 5 concurrent waves from {THREADS} sender threads "
          f"({sum(e.stats['deliveries'] for e in evs) - len(evs)} delivered twice at once), "
          f"faults on for {wall:.1f} s, {total:.1f} s in all")
    print(f"{'event type':44} {'events':>6} {'retries':>7} {'5xx':>5} {'409 ip':>6} {'dup':>5} {'lost':>4} {'doubled':>7}")
    by_kind: dict[str, list[Ev]] = defaultdict(list)
    for e in sorted(evs, key=lambda e: e.wave):  # types in wave order
        by_kind[e.kind].append(e)
    for kind, group in by_kind.items():
        s = Counter()
        for e in group:
            s.update({k: v for k, v in e.stats.items() if isinstance(v, int)})
        print(f"{kind:44} {len(group):>6} {s['retries']:>7} {s['5xx']:>5} {s['409 event_in_progress']:>6} "
              f"{s['duplicate']:>5} {sum(e.id in lost for e in group):>4} {sum(e.id in doubled for e in group):>7}")
    totals = Counter()
    for e in evs:
        totals.update({k: v for k, v in e.stats.items() if isinstance(v, int)})
    print(f"{'all':44} {len(evs):>6} {totals['retries']:>7} {totals['5xx']:>5} {totals['409 event_in_progress']:>6} "
          f"{totals['duplicate']:>5} {len(lost):>4} {len(doubled):>7}")
    other = {k: v for k, v in totals.items() if k not in ("deliveries", "retries", "5xx", "processed", "duplicate",
                                                           "409 event_in_progress")}
    print(f"answers: processed {totals['processed']}, duplicate {totals['duplicate']}, 5xx {totals['5xx']}, "
          f"409 in progress {totals['409 event_in_progress']}" + "".join(f", {k} {v}" for k, v in sorted(other.items())))
    injected = sum(faults.injected.values())
    print(f"injected faults ({injected}): " + ", ".join(f"{k} {n}" for k, n in sorted(faults.injected.items())))
    print(f"checked: {len(balances)} balances, {len(servers)} servers, {len(filings)} filings, {len(tickets)} tickets; "
          f"wrong {len(wrong)}")
    for line in wrong[:15]:
        print("  WRONG " + line)
    for e in evs:
        if e.id in lost or e.id in doubled:
            answers = {k: v for k, v in e.stats.items() if isinstance(v, int)}
            print(f"  {'LOST' if e.id in lost else 'DOUBLED'} {e.kind} {e.id} {json.dumps(e.env['data'])}: answers "
                  f"{answers}, ledger rows {rows[e.id]}, filing entries {history[e.id]}, marker {markers[e.id]}")
    if stuck:
        print(f"  stuck or gave up: {stuck[:8]}")
    c.summary("faults", "events / injected faults / retries / 5xx seen (all types, concurrent)",
              f"{len(evs)} / {injected} / {totals['retries']} / {totals['5xx']}")
    c.summary("faults", "lost / doubled after retries", f"{len(lost)} / {len(doubled)}", "0 / 0",
              not lost and not doubled)
    c.summary("faults", "wrong balances or servers / wrong grants or tickets",
              f"{sum(not w.startswith('ticket') for w in wrong)} / {sum(w.startswith('ticket') for w in wrong)}",
              "0 / 0", not wrong)
    c.summary("faults", "stuck on 409 in progress or gave up / 409 event_id_reused", f"{len(stuck)} / {reused}",
              "0 / 0", not stuck and not reused)
    return 0


if __name__ == "__main__":
    c.finish(main())
