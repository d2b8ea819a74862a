"""Bulk seeding for the tests and benches that need hundreds or thousands of servers: records built as a new
order builds them (billing/payments.py `_new_order`), written through the store's own Session so the rows
and their index keys are exactly what the app writes, up to 100 items per transaction - far faster than
one signed delivery per server. The balance is seeded with its ledger row, so Σ ledger = balance holds."""
from __future__ import annotations

from datetime import datetime

PER_TRANSACTION = 100


def _commit_in_chunks(items: list) -> None:
    """`items`: callables staging one write each on a Session; committed 100 at a time."""
    from chalicelib.store.session import Session

    for start in range(0, len(items), PER_TRANSACTION):
        s = Session()
        for stage in items[start:start + PER_TRANSACTION]:
            stage(s)
        s.commit()


def monthly_servers(server_ids: list[str], paid_at: datetime, *, account_id: str = "acc-bulk", months: int = 1,
                    plan_id: str = "std", monthly_price: int = 10000) -> None:
    """Active monthly servers paid at `paid_at` for `months` (the account row is not needed by the sweep)."""
    from chalicelib.domain.records import Period, PlanUse, Server
    from chalicelib.lifecycle import effects
    from chalicelib.timeutil import add_months

    stages = []
    for sid in server_ids:
        server = Server(server_id=sid, account_id=account_id, billing_mode="monthly", plan_id=plan_id,
                        region="cn-north-1", service_start=paid_at, plan_history=[PlanUse(plan_id=plan_id, since=paid_at)])
        server.expires_at = add_months(paid_at, months)
        server.periods.append(Period(order_id=f"ord-{sid}", start=paid_at, end=server.expires_at,
                                     amount=monthly_price * months, months=months, monthly_price=monthly_price))
        stages.append(lambda s, server=server: effects.save_server(s, server))
    _commit_in_chunks(stages)


def payg_accounts(accounts: dict[str, list[str]], paid_at: datetime, balance: int, *, plan_id: str = "std") -> None:
    """Accounts (id -> its payg server ids) each topped up with `balance`, servers running since `paid_at`."""
    from chalicelib.billing import rules
    from chalicelib.domain.records import Account, LedgerRow, PlanUse, Server
    from chalicelib.lifecycle import effects

    stages = []
    for account_id, server_ids in accounts.items():
        account = Account(account_id=account_id, balance=balance, server_ids=list(server_ids))
        stages.append(lambda s, a=account: s.put_account(a))
        stages.append(lambda s, a=account: s.add_ledger(LedgerRow(
            at=paid_at, kind="top_up", rule="R-PAY-7", account_id=a.account_id, amount=a.balance,
            balance_before=0, balance_after=a.balance, cause="seed")))
        for sid in server_ids:
            server = Server(server_id=sid, account_id=account_id, billing_mode="payg", plan_id=plan_id,
                            region="cn-north-1", service_start=paid_at,
                            plan_history=[PlanUse(plan_id=plan_id, since=paid_at)])
            rules.open_segment(server.payg_segments, paid_at)
            stages.append(lambda s, server=server: effects.save_server(s, server))
    _commit_in_chunks(stages)
