"""The demo page: `GET /demo` (one static HTML file with a little JS, no build step) and the pack list it
filters by. The page calls the public API itself (`POST /recommend`, `GET /stickers/...`, `GET /readyz`),
so it shows exactly what a client gets; nothing here knows about the model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

from service.dependencies import get_recommender
from service.recommender import Recommender

PAGE = Path(__file__).parent / "static" / "demo.html"

router = APIRouter(prefix="/demo", tags=["demo"])


class PacksResponse(BaseModel):
    packs: list[str]


@router.get("", response_class=HTMLResponse, include_in_schema=False)
def demo_page() -> HTMLResponse:
    """A plain def: the file read runs in a thread. Read per request so an edited page needs no restart."""
    return HTMLResponse(PAGE.read_text(encoding="utf-8"), headers={"Cache-Control": "no-cache"})


@router.get("/packs", response_model=PacksResponse)
async def packs(recommender: Annotated[Recommender, Depends(get_recommender)]) -> PacksResponse:
    """The packs of the index being served (503 while loading), for the page's pack filter."""
    return PacksResponse(packs=sorted(recommender.packs))
