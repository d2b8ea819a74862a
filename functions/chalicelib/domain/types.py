"""Types every capability shares at its edge: identifiers, business times and the base of every payload
(integration §1, §6 "Identifiers and limits"); pure pydantic, no I/O."""
from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from ..timeutil import check_range

# integration §6: every identifier (event, order, account, server, plan, filing, ticket, engineer) is
# 1–128 characters of this alphabet. Keys are built from ids, so nothing outside it may reach the store.
ID_ALPHABET = "A–Z a–z 0–9 . _ : -"
ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

Id = Annotated[str, StringConstraints(pattern=ID_PATTERN, min_length=1, max_length=128),
               Field(description=f"identifier: 1–128 characters of {ID_ALPHABET}")]

# An RFC 3339 time with an offset, inside the years the system can store and show (2000–2199).
TIME_PATTERN = r"^2[01][0-9][0-9]-"
Time = Annotated[AwareDatetime, AfterValidator(check_range),
                 Field(description="RFC 3339 date-time with an offset, between 2000-01-01 and 2199-12-31",
                       json_schema_extra={"pattern": TIME_PATTERN})]


def is_id(value: object) -> bool:
    """integration §6: whether `value` can be an identifier at all (a path id that is not cannot exist)."""
    return isinstance(value, str) and _ID.fullmatch(value) is not None


class Payload(BaseModel):
    """Base of every `data` model and ops body: JSON-strict (no "100" for 100), unknown fields ignored."""
    model_config = ConfigDict(extra="ignore", strict=True, defer_build=True)  # built on first use

    def missing_fields(self) -> list[str]:
        """Fields required only in some cases (checked after the types)."""
        return []


# The senders of signed callbacks. Event ids are unique per sender only (integration §6), so whatever an
# event causes is named with its sender too.
PAYMENTS, TICKETING = "payments", "ticketing"


def event_cause(sender: str, event_id: str) -> str:
    """The cause recorded on what an event changes (ledger rows, cluster actions)."""
    return f"event:{sender}:{event_id}"
