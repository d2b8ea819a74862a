"""The small set of errors the services raise; `app.py` maps each to the contract's answer in one place."""
from __future__ import annotations


class ApiError(Exception):
    status = 500
    code = "internal_error"

    def __init__(self, message: str, fields: list[str] | None = None):
        super().__init__(message)
        self.message = message
        self.fields = fields or []

    def headers(self) -> dict:
        return {}

    def body(self) -> dict:
        error = {"code": self.code, "message": self.message}
        if self.fields:
            error["fields"] = self.fields
        return {"error": error}


class InvalidPayload(ApiError):
    status, code = 400, "invalid_payload"


class InvalidSignature(ApiError):
    status, code = 401, "invalid_signature"


class StaleSignature(ApiError):
    status, code = 401, "stale_signature"


class Unauthorized(ApiError):
    status, code = 401, "unauthorized"


class ClockOverrideForbidden(ApiError):
    status, code = 403, "clock_override_forbidden"


class NotFound(ApiError):
    status, code = 404, "not_found"


class EventIdReused(ApiError):
    status, code = 409, "event_id_reused"


class EventInProgress(ApiError):
    status, code = 409, "event_in_progress"


class Conflict(ApiError):
    status, code = 409, "conflict"


class PayloadTooLarge(ApiError):
    status, code = 413, "payload_too_large"


class UnsupportedMediaType(ApiError):
    status, code = 415, "unsupported_media_type"


class UnknownReference(ApiError):
    status, code = 422, "unknown_reference"


class Busy(ApiError):
    """integration §7: a change that kept losing races with other changes of the same records after the
    system's own retries; nothing changed, the sender retries after `retry_after` seconds."""
    status, code = 429, "busy"
    retry_after = 1

    def headers(self) -> dict:
        return {"Retry-After": str(self.retry_after)}


class ConcurrentUpdate(Exception):
    """An optimistic-lock or idempotency condition failed: reload and decide again. `same_event`: the
    failure fell on the change's own event marker (another delivery of the same event)."""

    def __init__(self, message: str, same_event: bool = False):
        super().__init__(message)
        self.same_event = same_event
