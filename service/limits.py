"""A streaming limit on request bodies: 413 as soon as Content-Length or the bytes read pass it.

The outermost check of every request (before routing, auth and JSON parsing), so a 1 GB body costs one
header read, and a chunked body is cut off at the limit instead of being buffered. Like Envoy's
`max_request_bytes`: the request is refused with the one error body and the rest is never read.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import ErrorCode, error_body
from service.metrics import ServiceMetrics


def too_large_message(limit_bytes: int) -> str:
    return f"request body larger than {limit_bytes} bytes"


class BodyTooLarge(HTTPException):
    """Raised from `receive` when the bytes read pass the limit; an HTTPException so FastAPI's body
    reading lets it through (it turns any other exception into a 400) to the error table (413)."""

    def __init__(self, limit_bytes: int) -> None:
        super().__init__(status_code=413, detail=too_large_message(limit_bytes))


class BodyLimit:
    def __init__(self, app: ASGIApp, max_body_bytes: int, metrics: ServiceMetrics) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            self.metrics.body_too_large.inc()
            # answered before a byte of the body is read; the server closes the connection after it
            response = JSONResponse(error_body(ErrorCode.PAYLOAD_TOO_LARGE, too_large_message(limit)),
                                    status_code=413, headers={"Connection": "close"})
            await response(scope, receive, send)
            return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    self.metrics.body_too_large.inc()
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, limited_receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the HTTP server refuses a malformed Content-Length before we see it
    return None
