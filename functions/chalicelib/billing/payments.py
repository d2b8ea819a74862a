"""Payment events (R-PAY-1 … R-PAY-5, R-PAY-7, R-LIFE-5 unsubscription, R-LIFE-7): decide, then stage
every change in the unit of work the webhook commits (the balance itself changes in `accounts/money.py`)."""
from __future__ import annotations

from datetime import datetime

from ..accounts.money import Work, change_balance, load_account
from ..domain.records import Account, HistoryEvent, Order, Period, PlanUse, Server
from ..domain.types import PAYMENTS, event_cause
from ..errors import UnknownReference
from ..lifecycle import effects
from ..lifecycle import rules as life
from ..store.session import Session
from ..timeutil import add_months, fmt, store_key
from . import plan_prices, rules
from .payloads import AccountToppedUp, OrderPaid, OrderRefunded


def server_brief(server: Server | None, server_id: str) -> dict:
    if server is None:
        return {"server_id": server_id, "state": None, "expires_at": None}
    return {"server_id": server.server_id, "state": server.state, "expires_at": fmt(server.expires_at)}


def account_brief(account: Account) -> dict:
    return {"account_id": account.account_id, "balance": account.balance, "in_arrears": account.in_arrears}


def _hold(w: Work, order: Order | None, reason: str, amount: int, at: datetime, server: Server | None,
          server_id: str) -> dict:
    """R-PAY-2/R-PAY-4: never dropped, never applied: recorded for review, visible on the ledger."""
    if order is not None:
        order.status, order.reason = "held_for_review", reason
        w.s.put_order(order)
    w.ledger(server if server and server.account_id == w.account.account_id else None, at=at,
             kind="held_for_review", rule="R-PAY-2", cash=amount, note=reason)
    w.save()
    return {"decision": "held_for_review", "reason": reason, "server": server_brief(server, server_id)}


def order_paid(s: Session, event_id: str, p: OrderPaid) -> dict:
    if p.kind == "new" and p.billing_mode == "payg":
        life.service_may_end_at(p.paid_at, "data.paid_at")
    w = Work(s, event_id, event_cause(PAYMENTS, event_id))
    account = load_account(w, p.account_id)
    order = Order(order_id=p.order_id, account_id=p.account_id, server_id=p.server_id, kind=p.kind,
                  amount=p.amount, at=p.paid_at, months=p.months, plan_id=p.plan_id, status="applied")
    if s.order(p.order_id) is not None:
        return _hold(w, None, "duplicate_order", p.amount, p.paid_at, None, p.server_id)
    if p.kind == "new":
        return _new_order(w, account, order, p)
    server = w.server(p.server_id)
    if server is None:
        raise UnknownReference(f"server {p.server_id!r} is not known")
    if server.account_id != p.account_id:
        return _hold(w, order, "account_mismatch", p.amount, p.paid_at, None, p.server_id)
    if life.retention_over(server, p.paid_at):  # R-PAY-4, E-6: gone at retain_until, swept or not
        return _hold(w, order, "server_destroyed", p.amount, p.paid_at, server, p.server_id)
    if "terminated" in server.stop_reasons:
        return _hold(w, order, "server_terminated", p.amount, p.paid_at, server, p.server_id)
    if p.kind == "renewal":
        return _renewal(w, server, order, p)
    return _upgrade(w, server, order, p)


def _new_order(w: Work, account: Account, order: Order, p: OrderPaid) -> dict:
    plan = w.s.plan(p.plan_id)
    if plan is None:
        raise UnknownReference(f"plan {p.plan_id!r} is not known")
    if w.s.server(p.server_id) is not None:
        return _hold(w, order, "server_exists", p.amount, p.paid_at, None, p.server_id)
    price = rules.price_in_force(plan, p.paid_at)
    problem = rules.order_amount_problem(p.billing_mode, p.amount, p.months, price)
    if problem:
        return _hold(w, order, problem, p.amount, p.paid_at, None, p.server_id)

    server = Server(server_id=p.server_id, account_id=p.account_id, billing_mode=p.billing_mode,
                    plan_id=p.plan_id, region=p.region, service_start=p.paid_at,
                    plan_history=[PlanUse(plan_id=p.plan_id, since=p.paid_at)],
                    plan_prices=plan_prices.copy_of(w.s, plan))
    w.servers[server.server_id] = server
    w.s.put_order(order)
    if p.billing_mode == "payg":
        # counted on the account's version: whether it starts suspended depends on the balance read
        account.servers_opened += 1
        rules.open_segment(server.payg_segments, p.paid_at)
        w.ledger(server, at=p.paid_at, kind="order_paid", rule="R-PAY-2", cash=p.amount)
        if p.amount:
            change_balance(w, p.amount, p.paid_at, kind="top_up", rule="R-PAY-7", server=server)
        if account.in_arrears:
            effects.stop(w.s, server, "arrears", p.paid_at, w.cause)
    else:
        w.new_servers += 1  # the account row is not rewritten (busy accounts, integration §7)
        server.expires_at = add_months(p.paid_at, p.months)
        server.periods.append(Period(order_id=p.order_id, start=p.paid_at, end=server.expires_at,
                                     amount=p.amount, months=p.months,
                                     monthly_price=price.monthly_price if price and p.billing_mode == "monthly" else 0))
        w.ledger(server, at=p.paid_at, kind="order_paid", rule="R-PAY-1", cash=p.amount,
                 expires_at_after=server.expires_at)
    w.save()
    return {"decision": "applied", "server": server_brief(server, p.server_id)}


def _renewal(w: Work, server: Server, order: Order, p: OrderPaid) -> dict:
    if server.billing_mode != "monthly":
        return _hold(w, order, f"not_renewable_{server.billing_mode}", p.amount, p.paid_at, server, p.server_id)
    plan = plan_prices.current_plan(w.s, server)  # from the server's copy: no read of the plan
    price = rules.price_in_force(plan, p.paid_at) if plan else None
    problem = rules.order_amount_problem("monthly", p.amount, p.months, price)
    if problem:
        return _hold(w, order, problem, p.amount, p.paid_at, server, p.server_id)
    before = server.expires_at
    if before <= p.paid_at and "expired" not in server.stop_reasons:
        # lapsed before the sweep noticed: the service still ended at expires_at (R-FREE-2 (8))
        server.history.append(HistoryEvent(kind="expired", at=before))
    start, end = rules.renewal_period(before, p.paid_at, p.months)
    server.expires_at = end
    server.periods.append(Period(order_id=p.order_id, start=start, end=end, amount=p.amount,
                                 months=p.months, monthly_price=price.monthly_price))
    effects.lift(w.s, server, "expired", p.paid_at, w.cause)
    w.s.put_order(order)
    w.ledger(server, at=p.paid_at, kind="renewal", rule="R-PAY-3", cash=p.amount,
             expires_at_before=before, expires_at_after=end)
    w.save()
    return {"decision": "applied", "server": server_brief(server, p.server_id)}


def _upgrade(w: Work, server: Server, order: Order, p: OrderPaid) -> dict:
    plan = w.s.plan(p.plan_id)
    if plan is None:
        raise UnknownReference(f"plan {p.plan_id!r} is not known")
    server.plan_id = p.plan_id
    server.plan_prices = plan_prices.copy_of(w.s, plan)
    server.plan_history.append(PlanUse(plan_id=p.plan_id, since=p.paid_at))
    w.s.put_order(order)
    w.ledger(server, at=p.paid_at, kind="upgrade", rule="R-PAY-5", cash=p.amount, note=p.plan_id)
    w.save()
    return {"decision": "applied", "server": server_brief(server, p.server_id)}


def order_refunded(s: Session, event_id: str, p: OrderRefunded) -> dict:
    """R-LIFE-5: an unsubscription/refund: the gateway's amount is recorded as paid back and the
    server is terminated now (termination_reason `unsubscribed`)."""
    life.service_may_end_at(p.refunded_at, "data.refunded_at")
    w = Work(s, event_id, event_cause(PAYMENTS, event_id))
    order = s.order(p.order_id)
    if order is None:
        raise UnknownReference(f"order {p.order_id!r} is not known")
    if order.account_id != p.account_id or order.server_id != p.server_id:
        # held on the named account if it exists, else on the order's: a refund never creates an
        # account (integration §1 creates them for new orders and top-ups only)
        load_account(w, p.account_id if s.account(p.account_id) is not None else order.account_id)
        return _hold(w, None, "order_mismatch", p.amount, p.refunded_at, None, p.server_id)
    account = load_account(w, p.account_id)
    server = w.server(p.server_id)
    refunded_by_termination = server is not None and any(
        period.order_id == order.order_id and period.refunded for period in server.periods)
    if order.status == "refunded" or refunded_by_termination:
        # a gateway refund, or a computed termination refund (R-LIFE-5) already paid this order back
        return _hold(w, None, "already_refunded", p.amount, p.refunded_at, server, p.server_id)
    if p.amount > order.amount:
        return _hold(w, None, "refund_exceeds_order", p.amount, p.refunded_at, server, p.server_id)
    was_held = order.status == "held_for_review"
    order.status, order.refunded_amount = "refunded", p.amount
    s.put_order(order)
    w.ledger(server, at=p.refunded_at, kind="refund", rule="R-LIFE-5", cash=-p.amount, note=order.order_id)
    if not was_held and server is not None:
        for period in server.periods:
            if period.order_id == order.order_id:
                period.refunded = True
        if server.billing_mode == "payg" and order.kind == "new" and p.amount:
            change_balance(w, -p.amount, p.refunded_at, kind="top_up_refunded", rule="R-LIFE-5", server=server)
        if server.state != "destroyed" and "terminated" not in server.stop_reasons:
            server.history.append(HistoryEvent(kind="refunded", at=p.refunded_at))
            effects.terminate(s, server, account, p.refunded_at, "unsubscribed", w.cause)
    w.save()
    return {"decision": "applied", "refund": p.amount, "server": server_brief(server, p.server_id)}


def account_topped_up(s: Session, event_id: str, p: AccountToppedUp) -> dict:
    """R-PAY-7: a top-up adds to the balance; back to >= 0 it resumes arrears-only servers."""
    life.service_may_end_at(p.topped_up_at, "data.topped_up_at")
    w = Work(s, event_id, event_cause(PAYMENTS, event_id))
    account = load_account(w, p.account_id)
    change_balance(w, p.amount, p.topped_up_at, kind="top_up", rule="R-PAY-7")
    w.save()
    return {"decision": "applied", "account": account_brief(account)}
