"""The envelope every signed callback shares, and turning pydantic errors into the contract's 400."""
from __future__ import annotations

import json
from typing import Any

from pydantic import Field, ValidationError

from ..domain.limits import loads_object
from ..domain.types import Id, Payload, Time  # noqa: F401 - Payload and Time re-exported for older imports
from ..errors import InvalidPayload, PayloadTooLarge, UnsupportedMediaType

MAX_BODY = 256 * 1024


class Envelope(Payload):
    id: Id
    type: str = Field(min_length=1)
    created_at: Time
    data: dict[str, Any]


def _fields(error: ValidationError, prefix: str = "") -> list[str]:
    return sorted({prefix + ".".join(str(p) for p in e["loc"]) for e in error.errors()}) or [prefix.rstrip(".")]


def check_transport(content_type: str | None, body: bytes) -> None:
    if len(body) > MAX_BODY:
        raise PayloadTooLarge(f"body is {len(body)} bytes; at most {MAX_BODY}")
    media = (content_type or "").split(";")[0].strip().lower()
    if media != "application/json":
        raise UnsupportedMediaType("Content-Type must be application/json")


def parse_envelope(body: bytes) -> tuple[Envelope, Any]:
    value = loads_object(body)
    try:
        return Envelope.model_validate_json(body), value
    except ValidationError as exc:
        raise InvalidPayload("invalid envelope: " + _summary(exc), _fields(exc)) from None


def parse_data(model: type[Payload], data: dict) -> Payload:
    try:
        payload = model.model_validate_json(json.dumps(data))
    except ValidationError as exc:
        raise InvalidPayload(f"invalid data: {_summary(exc)}", _fields(exc, "data.")) from None
    missing = payload.missing_fields()
    if missing:
        raise InvalidPayload("missing data fields: " + ", ".join(missing), [f"data.{f}" for f in missing])
    return payload


def _summary(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()[:5])
