"""The service's error vocabulary, its one table of HTTP status codes, and the one error body.

Every failure a client can see is a `ServiceError` with a code from `ErrorCode`; the app turns it into
`{"error": {"code": ..., "message": ...}}` with `STATUS[code]`. Anything else is `internal` (500) and its
traceback goes to the log only. Framework-free: the FastAPI wiring lives in `service.app`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    VALIDATION = "validation_error"
    UNAUTHORISED = "unauthorised"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    CONFLICT = "conflict"
    OVERLOADED = "overloaded"
    NOT_READY = "not_ready"
    MODEL_INDEX_MISMATCH = "model_index_mismatch"
    INTERNAL = "internal_error"


STATUS: dict[ErrorCode, int] = {
    ErrorCode.VALIDATION: 422,
    ErrorCode.UNAUTHORISED: 401,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.METHOD_NOT_ALLOWED: 405,
    ErrorCode.CONFLICT: 409,
    ErrorCode.OVERLOADED: 429,
    ErrorCode.NOT_READY: 503,
    ErrorCode.MODEL_INDEX_MISMATCH: 409,
    ErrorCode.INTERNAL: 500,
}

# for the HTTP errors the framework raises itself (unknown route, wrong method, ...)
CODE_BY_STATUS: dict[int, ErrorCode] = {
    400: ErrorCode.VALIDATION, 401: ErrorCode.UNAUTHORISED, 404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED, 409: ErrorCode.CONFLICT, 422: ErrorCode.VALIDATION,
    429: ErrorCode.OVERLOADED, 503: ErrorCode.NOT_READY,
}

INTERNAL_MESSAGE = "internal error; the server log has the details"


class ServiceError(Exception):
    """A failure the client is told about; `retry_after_seconds` becomes a Retry-After header."""

    code: ErrorCode = ErrorCode.INTERNAL

    def __init__(self, message: str, *, retry_after_seconds: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_seconds = retry_after_seconds

    @property
    def status(self) -> int:
        return STATUS[self.code]


class InvalidRequest(ServiceError):
    code = ErrorCode.VALIDATION


class Unauthorised(ServiceError):
    code = ErrorCode.UNAUTHORISED


class NotFound(ServiceError):
    code = ErrorCode.NOT_FOUND


class Conflict(ServiceError):
    code = ErrorCode.CONFLICT


class Overloaded(ServiceError):
    code = ErrorCode.OVERLOADED


class NotReady(ServiceError):
    code = ErrorCode.NOT_READY


class ModelIndexMismatch(ServiceError):
    code = ErrorCode.MODEL_INDEX_MISMATCH


def error_body(code: ErrorCode, message: str) -> dict[str, Any]:
    """The one JSON error body."""
    return {"error": {"code": code.value, "message": message}}


def error_headers(error: ServiceError) -> dict[str, str]:
    if error.retry_after_seconds is None:
        return {}
    return {"Retry-After": str(error.retry_after_seconds)}
