"""The service's error vocabulary, its one table of HTTP status codes, and the one error body.

Every failure a client can see is a `ServiceError` with a code from `ErrorCode`; the app turns it into
`{"error": {"code": ..., "message": ...}}` with `STATUS[code]`. Anything else is `internal` (500) and its
traceback goes to the log only. Framework-free: the FastAPI wiring lives in `service.app`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel


class ErrorCode(StrEnum):
    VALIDATION = "validation_error"
    UNAUTHORISED = "unauthorised"
    NOT_FOUND = "not_found"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    CONFLICT = "conflict"
    OVERLOADED = "overloaded"
    NOT_READY = "not_ready"
    CLIENT_GONE = "client_gone"
    MODEL_INDEX_MISMATCH = "model_index_mismatch"
    INTERNAL = "internal_error"


STATUS: dict[ErrorCode, int] = {
    ErrorCode.VALIDATION: 422,
    ErrorCode.UNAUTHORISED: 401,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.PAYLOAD_TOO_LARGE: 413,
    ErrorCode.METHOD_NOT_ALLOWED: 405,
    ErrorCode.CONFLICT: 409,
    ErrorCode.OVERLOADED: 429,
    ErrorCode.NOT_READY: 503,
    ErrorCode.CLIENT_GONE: 499,  # nginx's "client closed request": never sent, it only labels the metrics
    ErrorCode.MODEL_INDEX_MISMATCH: 409,
    ErrorCode.INTERNAL: 500,
}

# for the HTTP errors the framework raises itself (unknown route, wrong method, ...)
CODE_BY_STATUS: dict[int, ErrorCode] = {
    400: ErrorCode.VALIDATION, 401: ErrorCode.UNAUTHORISED, 404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED, 409: ErrorCode.CONFLICT, 413: ErrorCode.PAYLOAD_TOO_LARGE, 422: ErrorCode.VALIDATION,
    429: ErrorCode.OVERLOADED, 503: ErrorCode.NOT_READY,
}

INTERNAL_MESSAGE = "internal error; the server log has the details"
# RFC 9110 11.6.1: a 401 names the scheme the client should use
WWW_AUTHENTICATE = 'Bearer realm="admin"'


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


class PayloadTooLarge(ServiceError):
    code = ErrorCode.PAYLOAD_TOO_LARGE


class NotFound(ServiceError):
    code = ErrorCode.NOT_FOUND


class Conflict(ServiceError):
    code = ErrorCode.CONFLICT


class Overloaded(ServiceError):
    code = ErrorCode.OVERLOADED


class NotReady(ServiceError):
    code = ErrorCode.NOT_READY


class ClientGone(ServiceError):
    code = ErrorCode.CLIENT_GONE

    def __init__(self, message: str = "the client disconnected before its answer was computed") -> None:
        super().__init__(message)


class ModelIndexMismatch(ServiceError):
    code = ErrorCode.MODEL_INDEX_MISMATCH


def error_body(code: ErrorCode, message: str) -> dict[str, Any]:
    """The one JSON error body."""
    return {"error": {"code": code.value, "message": message}}


def error_headers(error: ServiceError) -> dict[str, str]:
    headers = {}
    if error.retry_after_seconds is not None:
        headers["Retry-After"] = str(error.retry_after_seconds)
    if error.code is ErrorCode.UNAUTHORISED:
        headers["WWW-Authenticate"] = WWW_AUTHENTICATE
    return headers


class ErrorDetail(BaseModel):
    code: ErrorCode
    message: str


class ErrorBody(BaseModel):
    """The one error body, as the OpenAPI schema shows it."""

    error: ErrorDetail


# what each route can answer besides its success, for the OpenAPI schema (service.routes)
ERROR_DESCRIPTIONS: dict[int, str] = {
    401: "missing or wrong admin token (WWW-Authenticate: Bearer)",
    404: "no such sticker, index version or route",
    405: "method not allowed (Allow lists the methods)",
    409: "conflict: a reindex is running, or the index was built with another model",
    413: "request body larger than the configured limit",
    422: "invalid request: not JSON, not UTF-8, or outside the schema's limits",
    429: "over capacity; retry after Retry-After seconds",
    503: "not ready (loading or shutting down); retry later",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error statuses, each with the one error body."""
    return {status: {"model": ErrorBody, "description": ERROR_DESCRIPTIONS[status]} for status in statuses}
