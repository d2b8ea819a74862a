"""The envelope every signed callback shares, and turning pydantic errors into the contract's 400."""
from __future__ import annotations

import json
from typing import Any

from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from ..errors import InvalidPayload, PayloadTooLarge, UnsupportedMediaType
from ..timeutil import check_range

# An RFC 3339 time with an offset, inside the years the system can store and show (2000–2199).
Time = Annotated[AwareDatetime, AfterValidator(check_range)]

MAX_BODY = 256 * 1024


class Payload(BaseModel):
    """Base of every `data` model: JSON-strict (no "100" for 100), unknown fields ignored."""
    model_config = ConfigDict(extra="ignore", strict=True, defer_build=True)  # built on first use

    def missing_fields(self) -> list[str]:
        """Fields required only in some cases (checked after the types)."""
        return []


class Envelope(Payload):
    id: str = Field(min_length=1, max_length=200)
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
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise InvalidPayload("body is not JSON", ["body"]) from None
    if not isinstance(value, dict):
        raise InvalidPayload("body must be a JSON object", ["body"])
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
