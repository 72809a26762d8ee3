"""HTTP routes: each translates HTTP into a call on the core and back, nothing more."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Request, Response

from service import images
from service.dependencies import (
    Batcher,
    State,
    get_batcher,
    get_indexes,
    get_recommender,
    get_settings,
    require_admin,
)
from service.errors import InvalidRequest, NotFound
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
admin = APIRouter(prefix="/admin", dependencies=[Depends(require_admin)], tags=["admin"])

RecommenderDep = Annotated[Recommender, Depends(get_recommender)]
BatcherDep = Annotated[Batcher, Depends(get_batcher)]
IndexesDep = Annotated[IndexManager, Depends(get_indexes)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


@router.post("/recommend", response_model=RecommendResponse)
async def recommend(body: RecommendBody, recommender: RecommenderDep, batcher: BatcherDep) -> RecommendResponse:
    unknown = recommender.unknown_packs(body.packs)
    if unknown:
        raise InvalidRequest(f"unknown pack(s) {unknown}; packs: {sorted(recommender.packs)}")
    result = await batcher.submit(body.to_request())
    return RecommendResponse.of(result)


@router.get("/stickers/{sticker_id:path}", response_class=Response)
def sticker_image(sticker_id: str, request: Request, recommender: RecommenderDep, settings: SettingsDep) -> Response:
    """The sticker's image with a strong ETag (304 on If-None-Match); a plain def: file I/O runs in a thread."""
    index = recommender.index
    try:
        row = index.row(sticker_id)
    except KeyError:
        raise NotFound(f"no sticker {sticker_id!r} in index {index.version}") from None
    built_root = getattr(index, "catalog_root", None)  # StickerIndex knows where it was built from
    path = images.resolve_image(settings.catalog, index.sticker(row).image_path,
                                Path(built_root) if built_root is not None else None)
    if path is None:
        raise NotFound(f"sticker {sticker_id!r} has no image in the catalogue")
    tag = images.etag(path)
    headers = {"ETag": tag, "Cache-Control": images.CACHE_CONTROL}
    if images.matches(request.headers.get("if-none-match"), tag):
        return Response(status_code=304, headers=headers)
    return Response(content=path.read_bytes(), media_type=images.content_type(path), headers=headers)


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process answers (200 while loading and after a failed load); probes use /livez and /readyz."""
    return Health(status="ok")


@router.get("/livez", response_model=Health)
async def livez(state: State) -> Health:
    """Liveness: 200 while loading and once loaded, 503 once loading has failed (a restart may fix it)."""
    if state.load_error is not None:
        raise state.not_ready()
    return Health(status="ok")


@router.get("/readyz", response_model=Health)
async def readyz(state: State) -> Health:
    if state.components is None or state.batcher is None:
        raise state.not_ready()
    recommender = state.components.recommender
    return Health(status="ready", model_version=recommender.model.version, index_version=recommender.index.version,
                  stickers=len(recommender.index), encoder_backend=recommender.encoder.backend)


@router.get("/metrics", response_class=Response)
async def metrics(state: State) -> Response:
    return Response(content=state.metrics.render(), media_type=CONTENT_TYPE_LATEST)


@admin.post("/reload", response_model=ReloadResponse)
async def reload_index(state: State, indexes: IndexesDep,
                       body: Annotated[ReloadBody | None, Body()] = None) -> ReloadResponse:
    """Load the index root's CURRENT version (or `version`), serve it, and tell the other replicas."""
    previous, version = await asyncio.to_thread(indexes.reload, body.version if body else None)
    published = await asyncio.to_thread(state.sync.publish, version) if state.sync is not None else False
    return ReloadResponse(previous_version=previous, index_version=version, published=published)


@admin.post("/reindex", response_model=ReindexResponse, status_code=202)
async def start_reindex(indexes: IndexesDep) -> ReindexResponse:
    """Rebuild the index from the catalogue in the background; poll GET /admin/reindex."""
    return ReindexResponse.of(indexes.start_reindex())


@admin.get("/reindex", response_model=ReindexResponse)
async def reindex_status(indexes: IndexesDep) -> ReindexResponse:
    return ReindexResponse.of(indexes.reindex_status)
