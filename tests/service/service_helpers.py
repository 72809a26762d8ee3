"""Plain helpers shared by the service tests (fixtures live in conftest.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from live_service import free_port  # noqa: F401  (re-exported for the service tests)

ADMIN_TOKEN = "test-admin-token"
REDIS_URL = "redis://127.0.0.1:6379/0"


def redis_available(url: str = REDIS_URL) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5).ping())
    except Exception:
        return False


needs_redis = pytest.mark.skipif(not redis_available(), reason="needs a Redis server at 127.0.0.1:6379")


@asynccontextmanager
async def serving(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The app's lifespan plus an in-process async client (requests really run concurrently)."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            yield client


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def dialogue(text: str, *earlier: str) -> list[dict[str, str]]:
    """Turns alternating A/B, ending with B's `text` (the sticker answers it)."""
    texts = [*earlier, text]
    return [{"speaker": "B" if (len(texts) - 1 - i) % 2 == 0 else "A", "text": t} for i, t in enumerate(texts)]


TEXTS = ["I am so happy today, great news!", "my dog died, I am heartbroken", "I am furious, he lied to me again",
         "what? I did not expect that at all", "see you tomorrow", "we won the match!!!",
         "I failed my driving test again", "thanks so much for the gift"]




def build_tiny_index(model: Any, catalog_dir: Path, root: Path, cache_dir: Path) -> str:
    from eigml.catalog import load_catalog
    from index.build import build_index

    return build_index(model, load_catalog(catalog_dir), root, feature_cache=cache_dir / "features", device="cpu",
                       progress=False)


def start_redis(port: int, folder: Path, *args: str, password: str | None = None) -> Any:
    """A private redis-server on 127.0.0.1:`port`, answering PING (the caller kills it)."""
    import shutil
    import subprocess
    import time

    import redis

    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server on PATH")
    auth = ["--requirepass", password] if password else []
    process = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no", "--dir", str(folder), *auth, *args],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            if redis.Redis(port=port, password=password, socket_timeout=0.2).ping():
                return process
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                process.kill()
                raise
            time.sleep(0.05)
