"""What routes receive: the app's state, the recommender, the batcher, the index manager, admin auth.

Everything comes from `app.state.service` (filled by the lifespan), so tests swap any of it with
`app.dependency_overrides`.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.batching import MicroBatcher
from service.components import Components
from service.errors import ClientGone, NotReady, Unauthorised
from service.index_sync import IndexSync
from service.indexes import IndexManager
from service.metrics import ServiceMetrics
from service.recommender import Recommender, RecommendRequest, RecommendResult
from service.settings import Settings

Batcher = MicroBatcher[RecommendRequest, RecommendResult]


@dataclass
class ServiceState:
    settings: Settings
    metrics: ServiceMetrics
    components: Components | None = None
    batcher: Batcher | None = None
    indexes: IndexManager | None = None
    sync: IndexSync | None = None
    load_error: str | None = None  # why the components are not there (None: still loading, or loaded)

    def not_ready(self) -> NotReady:
        return NotReady(f"not ready: {self.load_error}" if self.load_error
                        else "not ready: the model and index are loading")


# Dependencies are `async def` although they only read attributes: FastAPI runs a plain `def` dependency in its
# thread pool, a hop to another thread and back per dependency and request, which under load waits for the
# GIL behind the model threads (docs/performance.md, twelfth session).
async def get_state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.service
    return state


State = Annotated[ServiceState, Depends(get_state)]


async def get_settings(state: State) -> Settings:
    return state.settings


async def get_recommender(state: State) -> Recommender:
    if state.components is None:
        raise state.not_ready()
    return state.components.recommender


async def get_batcher(state: State) -> Batcher:
    if state.batcher is None:
        raise state.not_ready()
    return state.batcher


async def until_disconnected(request: Request, work: Coroutine[Any, Any, Any]) -> Any:
    """`await work`, cancelled if the client disconnects first (so a queued request it left is dropped
    before the model, not computed); a cancelled request raises ClientGone."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if task not in done:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        raise ClientGone()
    return task.result()


async def _disconnected(request: Request) -> None:
    # the body is read already: the next ASGI message is http.disconnect, when the client goes away
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def get_indexes(state: State) -> IndexManager:
    if state.indexes is None:
        raise state.not_ready()
    return state.indexes


def check_admin_token(settings: Settings, authorization: str | None) -> None:
    """`Authorization: Bearer <ADMIN_TOKEN>`, else Unauthorised; no token configured: no admin access at all."""
    scheme, _, token = (authorization or "").partition(" ")
    expected = settings.admin_token.get_secret_value() if settings.admin_token is not None else ""
    if not expected or scheme.lower() != "bearer" or not secrets.compare_digest(token.strip().encode(),
                                                                                 expected.encode()):
        raise Unauthorised("admin calls need 'Authorization: Bearer <admin token>'")


# documents the scheme in the OpenAPI schema; the check itself is check_admin_token (AdminRoute runs it
# before the body is read, so a caller without the token learns nothing from how its body is parsed)
bearer = HTTPBearer(auto_error=False, description="the admin token (STICKERS_ADMIN_TOKEN)")


def require_admin(request: Request, settings: Annotated[Settings, Depends(get_settings)],
                  _: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
    check_admin_token(settings, request.headers.get("authorization"))


class AdminRoute(APIRoute):
    """A route whose admin token is checked before anything else, its body included (401, not 422)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def checked(request: Request) -> Response:
            check_admin_token(request.app.state.service.settings, request.headers.get("authorization"))
            return await handler(request)

        return checked
