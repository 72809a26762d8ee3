"""What routes receive: the app's state, the recommender, the batcher, the index manager, admin auth.

Everything comes from `app.state.service` (filled by the lifespan), so tests swap any of it with
`app.dependency_overrides`.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from service.batching import MicroBatcher
from service.components import Components
from service.errors import NotReady, Unauthorised
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


def get_state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.service
    return state


State = Annotated[ServiceState, Depends(get_state)]


def get_settings(state: State) -> Settings:
    return state.settings


def get_recommender(state: State) -> Recommender:
    if state.components is None:
        raise state.not_ready()
    return state.components.recommender


def get_batcher(state: State) -> Batcher:
    if state.batcher is None:
        raise state.not_ready()
    return state.batcher


def get_indexes(state: State) -> IndexManager:
    if state.indexes is None:
        raise state.not_ready()
    return state.indexes


def require_admin(request: Request, settings: Annotated[Settings, Depends(get_settings)]) -> None:
    """`Authorization: Bearer <ADMIN_TOKEN>`; no token configured means no admin access at all."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    expected = settings.admin_token.get_secret_value() if settings.admin_token is not None else ""
    if not expected or scheme.lower() != "bearer" or not secrets.compare_digest(token.strip().encode(),
                                                                                 expected.encode()):
        raise Unauthorised("admin calls need 'Authorization: Bearer <admin token>'")
