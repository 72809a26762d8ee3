"""HTTP routes: each translates HTTP into a call on the core and back, nothing more."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Request, Response

from service import images
from service.dependencies import (
    AdminRoute,
    Batcher,
    State,
    get_batcher,
    get_indexes,
    get_recommender,
    get_settings,
    require_admin,
    until_disconnected,
)
from service.errors import NotFound, NotReady, error_responses
from service.indexes import IndexManager
from service.metrics import CONTENT_TYPE_LATEST
from service.recommender import Recommender
from service.schemas import (
    Health,
    RecommendBody,
    RecommendResponse,
    ReindexResponse,
    ReloadBody,
    ReloadResponse,
)
from service.settings import Settings

router = APIRouter()
# AdminRoute checks the token before the body is read; the dependency documents the scheme in OpenAPI
admin = APIRouter(prefix="/admin", dependencies=[Depends(require_admin)], tags=["admin"], route_class=AdminRoute,
                  responses=error_responses(401, 503))

RecommenderDep = Annotated[Recommender, Depends(get_recommender)]
BatcherDep = Annotated[Batcher, Depends(get_batcher)]
IndexesDep = Annotated[IndexManager, Depends(get_indexes)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


@router.post("/recommend", response_model=RecommendResponse, operation_id="recommend", responses={
    200: {"links": {"sticker_image": {"operationId": "sticker_image",
                                      "parameters": {"sticker_id": "$response.body#/hits/0/sticker_id"}}}},
    **error_responses(404, 422, 429, 503)})
async def recommend(body: RecommendBody, request: Request, recommender: RecommenderDep,
                    batcher: BatcherDep) -> RecommendResponse:
    unknown = recommender.unknown_packs(body.packs)
    if unknown:
        raise NotFound(f"unknown pack(s) {unknown}; packs: {sorted(recommender.packs)}")
    result = await until_disconnected(request, batcher.submit(body.to_request()))
    return RecommendResponse.of(result)


@router.get("/stickers/{sticker_id:path}", response_class=Response, operation_id="sticker_image", responses={
    200: {"content": {t: {"schema": {"type": "string", "format": "binary"}} for t in images.MEDIA_TYPES},
          "description": "the sticker's image"},
    304: {"description": "not modified (If-None-Match names the current ETag)"},
    **error_responses(404, 422, 503)})
def sticker_image(sticker_id: str, request: Request, recommender: RecommenderDep, settings: SettingsDep) -> Response:
    """The sticker's image with a strong ETag (304 on If-None-Match); a plain def: file I/O runs in a thread."""
    index = recommender.index
    try:
        row = index.row(sticker_id)
    except KeyError:
        raise NotFound(f"no sticker {sticker_id!r} in index {index.version}") from None
    path = images.resolve_image(settings.catalog, index.sticker(row).image_path, index.catalog_root)
    if path is None:
        raise NotFound(f"sticker {sticker_id!r} has no image in the catalogue")
    if_none_match = request.headers.get("if-none-match")
    tag = images.cached_etag(path)  # None unless this very file (inode, size, mtime, ctime) was hashed
    if tag is not None and images.matches(if_none_match, tag):
        return Response(status_code=304, headers=images.headers(tag))
    data, tag = images.read_image(path)  # one read: the body and its ETag come from the same bytes
    if images.matches(if_none_match, tag):
        return Response(status_code=304, headers=images.headers(tag))
    return Response(content=data, media_type=images.content_type(path), headers=images.headers(tag))


@router.get("/healthz", response_model=Health, operation_id="healthz")
async def healthz() -> Health:
    """The process answers (200 while loading and after a failed load); probes use /livez and /readyz."""
    return Health(status="ok")


@router.get("/livez", response_model=Health)
async def livez(state: State) -> Health:
    """Liveness: 200 while loading and once loaded, 503 once loading has failed (a restart may fix it)."""
    if state.load_error is not None:
        raise state.not_ready()
    return Health(status="ok")


@router.get("/readyz", response_model=Health, operation_id="readyz", responses=error_responses(503))
async def readyz(state: State) -> Health:
    if state.components is None or state.batcher is None:
        raise state.not_ready()
    if not state.batcher.alive:
        raise NotReady("not ready: the model worker is not running")
    recommender = state.components.recommender
    return Health(status="ready", model_version=recommender.model.version, index_version=recommender.index.version,
                  stickers=len(recommender.index), encoder_backend=recommender.encoder.backend)


@router.get("/metrics", response_class=Response, operation_id="metrics",
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                             "description": "Prometheus text format"}})
async def metrics(state: State) -> Response:
    return Response(content=state.metrics.render(), media_type=CONTENT_TYPE_LATEST)


@admin.post("/reload", response_model=ReloadResponse, operation_id="reload_index",
            responses=error_responses(404, 409, 422))
async def reload_index(state: State, indexes: IndexesDep,
                       body: Annotated[ReloadBody | None, Body()] = None) -> ReloadResponse:
    """Load the index root's CURRENT version (or `version`), serve it, and tell the other replicas."""
    previous, version = await asyncio.to_thread(indexes.reload, body.version if body else None)
    published = await asyncio.to_thread(state.sync.publish, version) if state.sync is not None else False
    return ReloadResponse(previous_version=previous, index_version=version, published=published)


@admin.post("/reindex", response_model=ReindexResponse, status_code=202, operation_id="start_reindex", responses={
    202: {"links": {"reindex_status": {"operationId": "reindex_status"}}}, **error_responses(409)})
async def start_reindex(indexes: IndexesDep) -> ReindexResponse:
    """Rebuild the index from the catalogue in the background; poll GET /admin/reindex."""
    return ReindexResponse.of(indexes.start_reindex())


@admin.get("/reindex", response_model=ReindexResponse, operation_id="reindex_status")
async def reindex_status(indexes: IndexesDep) -> ReindexResponse:
    return ReindexResponse.of(indexes.reindex_status)
