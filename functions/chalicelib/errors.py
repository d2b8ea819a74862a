"""The small set of errors the services raise; `app.py` maps each to the contract's answer in one place."""
from __future__ import annotations


class ApiError(Exception):
    status = 500
    code = "internal_error"

    def __init__(self, message: str, fields: list[str] | None = None):
        super().__init__(message)
        self.message = message
        self.fields = fields or []

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


class SettlementPending(EventInProgress):
    """The change committed, but moving the account's servers after its arrears crossing did not finish:
    a retry of the same call (a redelivery answers `duplicate`) or the next metering run finishes it."""


class Conflict(ApiError):
    status, code = 409, "conflict"


class PayloadTooLarge(ApiError):
    status, code = 413, "payload_too_large"


class UnsupportedMediaType(ApiError):
    status, code = 415, "unsupported_media_type"


class UnknownReference(ApiError):
    status, code = 422, "unknown_reference"


class ConcurrentUpdate(Exception):
    """An optimistic-lock or idempotency condition failed: reload and decide again."""
