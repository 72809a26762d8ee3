"""Redis: encodings shared by replicas, fail-open when Redis dies, index versions by pub/sub, hot reload
under load with zero failed requests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from service_helpers import (
    ADMIN_TOKEN,
    REDIS_URL,
    TEXTS,
    build_tiny_index,
    dialogue,
    needs_redis,
    run,
    serving,
)

from service.app import create_app
from service.components import load_startup_index
from service.index_sync import IndexSync
from service.metrics import ServiceMetrics

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def prefix(free_port: Callable[[], int]) -> str:
    """Keys and channel of this test alone on the shared Redis."""
    return f"stickers-test-{free_port()}-{time.monotonic_ns()}:"


def replica(make_settings: Callable[..., Any], make_components: Callable[..., Any], **settings: Any) -> Any:
    s = make_settings(**settings)
    return create_app(s, make_components(s))


async def wait_for(condition: Callable[[], Any], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not await condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


@needs_redis
def test_replicas_share_encodings(make_settings: Callable[..., Any], make_components: Callable[..., Any],
                                  metric_value: Callable[..., float], prefix: str) -> None:
    a, b = (replica(make_settings, make_components, redis_url=REDIS_URL, redis_prefix=prefix) for _ in range(2))
    body = {"dialogue": dialogue("thanks so much for the gift", "here you go")}

    async def main() -> tuple[Any, Any]:
        async with serving(a) as ca, serving(b) as cb:
            return (await ca.post("/recommend", json=body)).json(), (await cb.post("/recommend", json=body)).json()

    first, second = run(main())
    assert first == second
    assert metric_value(a, "stickers_cache_misses_total") == 1 and metric_value(b, "stickers_cache_hits_total") == 1


def test_redis_stopping_mid_test_still_answers(make_settings: Callable[..., Any],
                                               make_components: Callable[..., Any],
                                               metric_value: Callable[..., float],
                                               redis_server: tuple[str, Any]) -> None:
    url, process = redis_server
    app = replica(make_settings, make_components, redis_url=url, redis_timeout_seconds=0.2)

    async def main() -> list[int]:
        async with serving(app) as client:
            codes = [(await client.post("/recommend", json={"dialogue": dialogue(TEXTS[0])})).status_code]
            codes.append((await client.post("/recommend", json={"dialogue": dialogue(TEXTS[0])})).status_code)
            assert metric_value(app, "stickers_cache_hits_total") == 1  # Redis worked
            process.kill()
            process.wait(10)
            for text in TEXTS[1:4]:
                codes.append((await client.post("/recommend", json={"dialogue": dialogue(text)})).status_code)
            codes.append((await client.get("/readyz")).status_code)
            return codes

    assert run(main()) == [200] * 6
    assert metric_value(app, "stickers_cache_errors_total") >= 1


@needs_redis
def test_startup_loads_the_version_redis_names(make_settings: Callable[..., Any], own_index_root: Path,
                                               tiny_model: Any, tiny_catalog: Path, cache_dir: Path,
                                               prefix: str) -> None:
    from index.store import current_version

    old = current_version(own_index_root)
    build_tiny_index(tiny_model, tiny_catalog, own_index_root, cache_dir)
    settings = make_settings(index=own_index_root, redis_url=REDIS_URL, redis_prefix=prefix)
    sync = IndexSync(REDIS_URL, prefix, ServiceMetrics())
    try:
        assert sync.publish(str(old))
        assert load_startup_index(settings, sync).version == old
        assert sync.publish("000999-not-here")  # a version this replica lacks: CURRENT instead
        assert load_startup_index(settings, sync).version == current_version(own_index_root)
    finally:
        sync._client.delete(sync.version_key)
        run(sync.stop())


@needs_redis
def test_hot_reload_under_load(make_settings: Callable[..., Any], make_components: Callable[..., Any],
                               own_index_root: Path, tiny_model: Any, tiny_catalog: Path, cache_dir: Path,
                               prefix: str) -> None:
    """Two replicas under concurrent load; a new version is built and announced on Redis: no request fails,
    and both replicas answer from the new version afterwards."""
    options = dict(index=own_index_root, redis_url=REDIS_URL, redis_prefix=prefix)
    a, b = (replica(make_settings, make_components, **options) for _ in range(2))
    from index.store import current_version

    old = current_version(own_index_root)

    async def main() -> tuple[list[tuple[int, str]], str]:
        async with serving(a) as ca, serving(b) as cb:
            await wait_for(lambda: _true(a.state.service.sync.subscribed.is_set()
                                         and b.state.service.sync.subscribed.is_set()))
            stop = asyncio.Event()
            seen: list[tuple[int, str]] = []

            async def load(client: Any, worker: int) -> None:
                i = 0
                while not stop.is_set() or i < 4:
                    body = {"dialogue": dialogue(TEXTS[(worker + i) % len(TEXTS)], f"turn {i}")}
                    r = await client.post("/recommend", json=body)
                    seen.append((r.status_code, r.json().get("index_version", "")))
                    i += 1

            workers = [asyncio.ensure_future(load(c, w)) for w, c in enumerate([ca, cb] * 3)]
            await asyncio.sleep(0.3)
            new = await asyncio.to_thread(build_tiny_index, tiny_model, tiny_catalog, own_index_root, cache_dir)
            publisher = IndexSync(REDIS_URL, prefix, ServiceMetrics())
            try:
                assert await asyncio.to_thread(publisher.publish, new)  # what a deploy tool or another replica does
            finally:
                await publisher.stop()
            await wait_for(lambda: _true(a.state.service.indexes.version == new == b.state.service.indexes.version))
            await asyncio.sleep(0.3)
            stop.set()
            await asyncio.gather(*workers)
            return seen, new

    seen, new = run(main())
    assert all(code == 200 for code, _ in seen), [s for s in seen if s[0] != 200][:5]
    versions = [v for _, v in seen]
    assert old in versions and new in versions and versions[-1] == new
    assert set(versions) == {old, new}


@needs_redis
def test_admin_reload_tells_the_other_replicas(make_settings: Callable[..., Any],
                                               make_components: Callable[..., Any], own_index_root: Path,
                                               tiny_model: Any, tiny_catalog: Path, cache_dir: Path,
                                               prefix: str) -> None:
    options = dict(index=own_index_root, redis_url=REDIS_URL, redis_prefix=prefix)
    a, b = (replica(make_settings, make_components, **options) for _ in range(2))

    async def main() -> tuple[Any, str]:
        async with serving(a) as ca, serving(b):
            await wait_for(lambda: _true(b.state.service.sync.subscribed.is_set()))
            new = await asyncio.to_thread(build_tiny_index, tiny_model, tiny_catalog, own_index_root, cache_dir)
            response = (await ca.post("/admin/reload", headers=ADMIN)).json()
            await wait_for(lambda: _true(b.state.service.indexes.version == new))
            return response, new

    response, new = run(main())
    assert response["index_version"] == new and response["published"] is True


async def _true(value: Any) -> bool:
    return bool(value)
