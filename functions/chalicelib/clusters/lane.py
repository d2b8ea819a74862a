"""A server's action lane (R-CLU-5): a lease taken by a conditional write, so that one worker at a time
performs a server's cluster actions, and a worker whose lease was taken over stops before its next action.

The lane is one item in the `billing-cluster-actions` table, in a partition of its own (`lane#<server id>`):
identifiers never contain `#` (integration §6), so it cannot collide with a server's actions, and the
queries that read a server's actions (views, pages, the executor) never see it; it carries no `open_key` or
`dead_key`, so the sparse indexes never see it either. No new table, no new index.
"""
from __future__ import annotations

import time
import uuid
from typing import Callable

from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.exceptions import PutError
from pynamodb.models import Model

from ..store import models as m
from ..store import session as store

# Longer than anything a holder can still be doing once it stopped renewing: `cluster_actions` is cut at
# its 900 s Lambda timeout, and the lease is renewed before every action, so a holder's action ends (or is
# cut) before its lease does; the 60 s over cover clock skew between workers. The queue's visibility
# timeout is the same 960 s, so a cut worker's message comes back just as its lease has run out.
LEASE_SECONDS = 960
_SORT_KEY = "lane"


class LaneRow(Model):
    class Meta:
        table_name = "billing-cluster-actions"  # follows ClusterActionRow's configuration (see `_model`)
        billing_mode = "PAY_PER_REQUEST"

    server_id = UnicodeAttribute(hash_key=True)  # "lane#<server id>"
    action_id = UnicodeAttribute(range_key=True)  # always "lane"
    holder = UnicodeAttribute()
    lease_until = NumberAttribute()  # Unix seconds; 0 once released


def _model() -> type[LaneRow]:
    """LaneRow pointed at the same table and endpoint as the server's actions."""
    store.ensure_configured()
    source, meta = m.ClusterActionRow.Meta, LaneRow.Meta
    wanted = (source.table_name, getattr(source, "region", None), getattr(source, "host", None))
    if (meta.table_name, getattr(meta, "region", None), getattr(meta, "host", None)) != wanted:
        meta.table_name, meta.region, meta.host = wanted
        LaneRow._connection = None
    return LaneRow


def _put(row: LaneRow, condition) -> bool:
    try:
        row.save(condition=condition)
    except PutError as exc:
        if exc.cause_response_code != "ConditionalCheckFailedException":
            raise
        return False
    return True


class Lane:
    """One worker's hold on one server's lane. Every method is a single conditional PutItem."""

    def __init__(self, server_id: str, clock: Callable[[], float] = time.time) -> None:
        self.server_id = server_id
        self.holder = uuid.uuid4().hex  # this run only: a repeated delivery is another holder
        self._clock = clock

    def _row(self, lease_until: float) -> LaneRow:
        return _model()(f"lane#{self.server_id}", _SORT_KEY, holder=self.holder, lease_until=lease_until)

    def take(self) -> bool:
        """Hold the lane if nobody does (never held, released, or the holder's lease ran out)."""
        now = self._clock()
        model = _model()
        return _put(self._row(now + LEASE_SECONDS), model.server_id.does_not_exist() | (model.lease_until < now))

    def renew(self) -> bool:
        """Before each action: extend the lease, or learn that another worker took the lane over (fenced)."""
        model = _model()
        return _put(self._row(self._clock() + LEASE_SECONDS),
                    (model.holder == self.holder) & (model.lease_until > 0))

    def release(self) -> None:
        """Hand the lane back; a lane already taken over stays with its new holder."""
        _put(self._row(0), _model().holder == self.holder)
