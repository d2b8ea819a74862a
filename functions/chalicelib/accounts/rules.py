"""Pure rules of an account's money: when a balance change crosses zero and what that asks of each
server (R-PAY-7), and how the follow-up work is cut to DynamoDB's transaction size. No I/O."""
from __future__ import annotations

from typing import Optional, Sequence, TypeVar

from ..domain.records import Server

T = TypeVar("T")


def crossed_zero(balance_before: int, balance_after: int) -> bool:
    """R-PAY-7: servers move only when the balance changes sides of zero (in arrears = below zero)."""
    return (balance_before < 0) != (balance_after < 0)


def arrears_step(in_arrears: bool, server: Server) -> Optional[str]:
    """R-PAY-7: what the account's side of zero asks of one server, or None when it already matches.
    In arrears every payg server that is not destroyed is suspended (`arrears` is added beside any
    other reason, R-LIFE-2b); at >= 0 every server suspended for arrears has that reason lifted
    (the others stay in force)."""
    if server.state == "destroyed":
        return None
    held = "arrears" in server.stop_reasons
    if in_arrears:
        return "suspend" if server.billing_mode == "payg" and not held else None
    return "lift" if held else None


def may_move(in_arrears: bool, state: str, billing_mode: Optional[str], arrears_held: Optional[bool]) -> bool:
    """R-PAY-7 on what the account's server index projects: False only for a server that surely
    matches the account's side of zero (`arrears_step` decides the others on the whole row). Rows
    written before the index carried these attributes (None) are always read."""
    if state == "destroyed":
        return False
    if in_arrears:
        return billing_mode in (None, "payg") and arrears_held is not True
    return arrears_held is not False


def chunked(items: Sequence[T], size: int) -> list[list[T]]:
    """Consecutive pieces of at most `size` items (one transaction each)."""
    return [list(items[i:i + size]) for i in range(0, len(items), size)]
