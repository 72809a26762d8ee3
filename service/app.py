"""The FastAPI app: `create_app(settings, components=None)`.

The lifespan loads the heavy objects once (in a thread, so /healthz answers and /readyz says 503 while
they load), starts the micro-batching worker and, with Redis, the index-version listener. Errors are
turned into the one error body here, from the one table in `service.errors`; an unexpected exception is
logged with its traceback and the client gets a plain 500 body.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service import __version__
from service.batching import MicroBatcher
from service.components import Components, load_components
from service.demo import router as demo
from service.dependencies import ServiceState
from service.errors import (
    CODE_BY_STATUS,
    INTERNAL_MESSAGE,
    STATUS,
    ErrorCode,
    ServiceError,
    error_body,
    error_headers,
    error_responses,
)
from service.index_sync import IndexSync
from service.indexes import IndexManager
from service.limits import BodyLimit
from service.metrics import ServiceMetrics
from service.routes import admin, router
from service.settings import Settings

log = logging.getLogger(__name__)


def create_app(settings: Settings, components: Components | None = None) -> FastAPI:
    """The app; `components` (tests) skips loading from `settings.model` / `settings.index`."""
    metrics = components.metrics if components is not None else ServiceMetrics()
    state = ServiceState(settings=settings, metrics=metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.redis_url:
            state.sync = IndexSync(settings.redis_url, settings.redis_prefix, metrics, auth=settings.redis_auth,
                                   health_check_seconds=settings.redis_health_check_seconds)
        loading: asyncio.Task[None] | None = None
        if components is not None:
            _start(state, components)
        else:
            loading = asyncio.create_task(_load_and_start(state), name="load-components")
        try:
            yield
        finally:
            if loading is not None and not loading.done():
                loading.cancel()  # the loading thread itself runs to its end; its result is dropped
                await asyncio.gather(loading, return_exceptions=True)
            if state.batcher is not None:
                await state.batcher.stop()
            if state.sync is not None:
                await state.sync.stop()

    # any route may be sent a body over the limit, so 413 is documented on every one
    app = FastAPI(title="Sticker recommendation", version=__version__, lifespan=lifespan,
                  responses=error_responses(413))
    app.state.service = state
    app.include_router(router)
    app.include_router(admin)
    app.include_router(demo)
    # the last added runs first: the body limit comes before routing, auth and parsing; metrics see all
    app.add_middleware(BodyLimit, max_body_bytes=settings.max_body_bytes, metrics=metrics)
    app.add_middleware(RequestMetrics, metrics=metrics)
    _install_error_handlers(app)
    return app


async def _load_and_start(state: ServiceState) -> None:
    try:
        components = await asyncio.to_thread(load_components, state.settings, state.metrics, state.sync)
    except Exception as error:
        state.load_error = f"{type(error).__name__}: {error}"
        log.exception("could not load the model and index")
        return
    _start(state, components)


def _start(state: ServiceState, components: Components) -> None:
    """Wire loaded components into the state (on the event loop): worker, index manager, listener."""
    settings = state.settings
    sync = state.sync
    batcher: MicroBatcher[Any, Any] = MicroBatcher(
        components.recommender.recommend_many, max_batch=settings.max_batch,
        wait_seconds=settings.batch_wait_ms / 1000, queue_size=settings.queue_size,
        retry_after_seconds=settings.retry_after_seconds, metrics=state.metrics,
        queue_timeout_seconds=settings.queue_timeout_seconds, workers=settings.workers)
    batcher.start()
    indexes = IndexManager(settings.index, components.recommender, components.load_index, components.build_index,
                           state.metrics, on_published=sync.publish if sync is not None else None)
    state.components, state.batcher, state.indexes = components, batcher, indexes
    if sync is not None:
        async def follow(version: str) -> None:
            # raises when the version cannot be loaded (yet): the current index keeps serving and IndexSync
            # retries (its files may still be on their way to this replica's disk)
            if version != indexes.version:
                await asyncio.to_thread(indexes.reload, version)

        sync.start(follow)


class RequestMetrics:
    """Counts and times every request by route template and status; turns an unhandled exception into
    the 500 error body (traceback to the log only)."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        started = False

        async def send_and_record(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        except Exception:
            log.exception("unhandled error in %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise
            status = 500
            response = JSONResponse(error_body(ErrorCode.INTERNAL, INTERNAL_MESSAGE), status_code=500)
            await response(scope, receive, send)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.observe_request(route, scope.get("method", ""), status, time.perf_counter() - start)


def _allowed_methods(request: Request) -> list[str]:
    methods: set[str] = set()
    for route in request.app.routes:
        match, _ = route.matches({**request.scope, "method": "GET"})
        if match is not Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


def _install_error_handlers(app: FastAPI) -> None:
    async def service_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, ServiceError)
        return JSONResponse(error_body(error.code, error.message), status_code=error.status,
                            headers=error_headers(error))

    async def validation_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}"
                             for e in error.errors()[:10])
        return JSONResponse(error_body(ErrorCode.VALIDATION, f"invalid request: {problems}"),
                            status_code=STATUS[ErrorCode.VALIDATION])

    async def http_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, StarletteHTTPException)
        if error.status_code == 400:
            # FastAPI's answer to a body json.loads cannot take (invalid UTF-8, nesting past the recursion
            # limit, a 5,000-digit number): to the client it is one more invalid request, the documented 422
            cause = error.__cause__
            reason = f"{type(cause).__name__}: {str(cause)[:200]}" if cause is not None else error.detail
            return JSONResponse(error_body(ErrorCode.VALIDATION, f"invalid request: the body is not valid JSON "
                                                                 f"({reason})"),
                                status_code=STATUS[ErrorCode.VALIDATION])
        code = CODE_BY_STATUS.get(error.status_code, ErrorCode.INTERNAL)
        headers = dict(error.headers or {})
        if error.status_code == 405:  # Starlette names only the first route's methods; a path may have several
            headers["Allow"] = ", ".join(_allowed_methods(request))
        return JSONResponse(error_body(code, str(error.detail)), status_code=error.status_code, headers=headers)

    app.add_exception_handler(ServiceError, service_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
