"""The hourly pay-as-you-go metering (R-PAY-6, R-PAY-7): charges every started, uncharged hour of
the servers the metering index says are due, one transaction per account (the index rows carry the
whole server, the accounts come in BatchGetItem calls), then finishes any arrears settlement; one shard
at a time (in parallel when the scheduled run fans out)."""
from __future__ import annotations

import logging
from datetime import datetime
from typing import Callable

from .. import observability
from ..accounts import money
from ..accounts.rules import arrears_step, chunked
from ..domain.records import Settlement
from ..store import models as m
from ..background import sharded
from ..store import session as store
from ..store import unit
from ..store.session import Session
from ..timeutil import fmt
from . import rules

log = logging.getLogger(__name__)

# One transaction: the account + (server row + ledger row) per server + the arrears notice <= 100 items.
CHARGE_CHUNK = 48


def run_metering_shard(now: datetime, shard: str, should_stop: Callable[[], bool] | None = None, *,
                       after: dict | None = None) -> dict:
    """Charge one shard's due servers, account by account. An account whose change fails is logged,
    counted and named in `error_ids`; its servers keep their meter keys, so the next run charges them.
    Accounts whose arrears settlement is still pending (a cut-off run, a webhook's follow-up that
    did not finish) are completed here too. `complete` is False when `should_stop` cut the shard off;
    running it again with the same `now` finishes it and never charges an hour twice (a continuation
    starts from the index again: `after` is not needed, charged servers have left the range)."""
    cause = sharded.run_id("metering", now)
    observability.bind(run_id=cause, shard=shard)
    summary = {"now": fmt(now), "shard": shard, "servers": 0, "hours": 0, "accounts": 0, "settlements": 0,
               "errors": 0, "error_ids": [], "complete": True}
    # first the settlements left pending, so no hour is charged on a server that should have been
    # suspended at its account's crossing (R-PAY-6: no hour that starts while stopped)
    _finish_settlements(shard, summary, should_stop)
    if not summary["complete"]:
        return summary
    base = Session()
    by_account: dict[str, list[str]] = {}
    for row in store.meter_rows(now, shard):  # the by_meter index projects the whole row
        base.adopt_row(m.ServerRow, row.server_id, row)  # read from the index, validated when asked for
        by_account.setdefault(row.account_id, []).append(row.server_id)
    base.read_many("account", by_account)
    plans: dict = {}
    for account_id, server_ids in by_account.items():
        if should_stop and should_stop():
            summary["complete"] = False
            break
        summary["servers"] += len(server_ids)
        summary["accounts"] += 1
        try:
            hours, crossed = _charge_account(base, account_id, server_ids, now, cause, plans)
            summary["hours"] += hours
            if crossed and not money.settle_pending(account_id, should_stop):
                summary["complete"] = False
        except Exception:  # noqa: BLE001 - one account's failure must not cost the others their charge
            log.exception("metering could not charge account %s", account_id)
            summary["errors"] += 1
            summary["error_ids"].append(account_id)
    log.info("metering shard %s", summary)
    return summary


def _finish_settlements(shard: str, summary: dict, should_stop: Callable[[], bool] | None) -> None:
    """Arrears settlements left pending by a cut-off run or webhook (the sparse by_settle index)."""
    for account_id in store.pending_settlements(shard):
        if should_stop and should_stop():
            summary["complete"] = False
            return
        try:
            if money.settle_pending(account_id, should_stop):
                summary["settlements"] += 1
            else:
                summary["complete"] = False
        except Exception:  # noqa: BLE001
            log.exception("metering could not settle account %s", account_id)
            summary["errors"] += 1
            summary["error_ids"].append(account_id)


def _charge_account(base: Session, account_id: str, server_ids: list[str], now: datetime, cause: str,
                    plans: dict) -> tuple[int, bool]:
    """R-PAY-6 for the account's due servers: one ledger row per server with the balance before and
    after (R-LIFE-7), CHARGE_CHUNK servers a transaction. The first attempt uses the rows already read
    (index and batch); their version conditions catch a concurrent change, and the retry reads afresh.
    Returns the hours charged and whether an arrears settlement is pending on the account."""
    hours = 0
    for part in chunked(server_ids, CHARGE_CHUNK):
        committed: list[Session] = []

        def change(s: Session, attempt: int) -> int:
            if attempt == 0:
                s.carry(base, "account", [account_id])
                s.carry(base, "server", part)
            else:
                s.read_many("server", part)
            w = money.Work(s, None, cause, settle_inline=0, settle_after_commit=False)
            money.load_account(w, account_id)
            charged = 0
            for server_id in part:
                server = w.server(server_id)
                if server is None or server.billing_mode != "payg" or server.account_id != account_id:
                    continue
                for use in server.plan_history:
                    if use.plan_id not in plans:
                        plans[use.plan_id] = base.plan(use.plan_id)
                known = {k: v for k, v in plans.items() if v is not None}
                charges = rules.hours_to_charge(server.payg_segments, now, server.plan_history, server.plan_id, known)
                if not charges:
                    continue
                total = sum(c.price for c in charges)
                money.change_balance(w, -total, now, kind="payg_hours", rule="R-PAY-6", server=server,
                                     hours=len(charges),
                                     note=f"hours {fmt(charges[0].hour_start)} .. {fmt(charges[-1].hour_start)}")
                charged += len(charges)
            account = w.account
            # R-PAY-7 whatever the index saw: a payg server still running while the account is in arrears
            # (created just before the crossing, when the eventually consistent by_account index did not
            # list it yet) gets the account settled again rather than run on unpaid
            missed = account.in_arrears and account.settlement is None and any(
                arrears_step(True, server) for server in w.servers.values())
            if missed:
                account.settlement = Settlement(at=now, cause=cause)
            if charged or missed:  # nothing to charge (a concurrent run did it): write nothing
                w.save()
            committed.append(s)
            return charged

        hours += unit.run(change, what=f"account {account_id}")
        base.carry(committed[-1], "account", [account_id])  # the next part starts from the new version
    account = base.account(account_id)
    return hours, account is not None and account.settlement is not None


def run_metering(now: datetime, should_stop: Callable[[], bool] = sharded.never, hand_on: bool = False) -> dict:
    """The whole run in this invocation, shard after shard (`POST /ops/sweeps/metering`); with
    `hand_on`, what `should_stop` cut off is queued as background work."""
    return sharded.whole_run("metering", now, run_metering_shard, should_stop, hand_on)
