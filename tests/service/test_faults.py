"""Faults, each as it happens in production: a worker that dies, a client that leaves, a queue that waits too
long, shutdown mid-batch, a poisoned cache, a password-protected Redis, Redis down while a version is
published, a version announced before its files arrive, a subscription that goes silent, a reindex that
must keep what is served."""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from service_helpers import (
    ADMIN_TOKEN,
    REDIS_URL,
    TEXTS,
    dialogue,
    free_port,
    needs_redis,
    run,
    serving,
    start_redis,
)

from service.app import create_app
from service.batching import MicroBatcher
from service.dependencies import until_disconnected
from service.encodings import check_encoding, pack_encoding
from service.errors import ClientGone, NotReady, Overloaded
from service.metrics import ServiceMetrics

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def make_batcher(process: Callable[[Sequence[int]], list[int]], **kw: Any) -> MicroBatcher[int, int]:
    options: dict[str, Any] = dict(max_batch=8, wait_seconds=0.0, queue_size=64, retry_after_seconds=1,
                                   metrics=ServiceMetrics())
    options.update(kw)
    return MicroBatcher(process, **options)


def sample(batcher: MicroBatcher[Any, Any], name: str, **labels: str) -> float:
    return batcher.metrics.registry.get_sample_value(name, labels) or 0.0


class Blocking:
    """A process function whose first batch waits for `release`; records every item it computes."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Event()
        self.seen: list[int] = []

    def __call__(self, items: Sequence[int]) -> list[int]:
        self.seen.extend(items)
        self.started.set()
        assert self.release.wait(10)
        return [2 * i for i in items]


async def until(flag: threading.Event) -> None:
    while not flag.is_set():
        await asyncio.sleep(0.005)


# ---- the model worker --------------------------------------------------------------------------------
def test_a_request_queued_past_its_deadline_is_not_computed() -> None:
    process = Blocking()

    async def main() -> tuple[int, BaseException | int]:
        batcher = make_batcher(process, queue_timeout_seconds=0.1)
        batcher.start()
        try:
            first = asyncio.ensure_future(batcher.submit(1))
            await until(process.started)
            second = asyncio.ensure_future(batcher.submit(2))
            await asyncio.sleep(0.3)  # past the second one's deadline while the first batch computes
            process.release.set()
            results = await asyncio.gather(first, second, return_exceptions=True)
            return results[0], results[1]
        finally:
            await batcher.stop()

    batcher_first, second = run(main())
    assert batcher_first == 2 and isinstance(second, Overloaded) and second.retry_after_seconds == 1
    assert process.seen == [1]


def test_a_client_that_disconnects_is_not_computed() -> None:
    process = Blocking()
    metrics = ServiceMetrics()

    class LeavingClient:
        def __init__(self) -> None:
            self.gone = asyncio.Event()

        async def receive(self) -> dict[str, str]:
            await self.gone.wait()
            return {"type": "http.disconnect"}

    async def main() -> tuple[int, BaseException | int]:
        batcher = make_batcher(process, metrics=metrics)
        batcher.start()
        try:
            first = asyncio.ensure_future(batcher.submit(1))
            await until(process.started)
            client = LeavingClient()
            second = asyncio.ensure_future(until_disconnected(client, batcher.submit(2)))  # type: ignore[arg-type]
            await asyncio.sleep(0.05)
            client.gone.set()
            await asyncio.sleep(0.05)
            process.release.set()
            results = await asyncio.gather(first, second, return_exceptions=True)
            await asyncio.sleep(0.05)
            return results[0], results[1]
        finally:
            await batcher.stop()

    first, second = run(main())
    assert first == 2 and isinstance(second, ClientGone)
    assert process.seen == [1]
    assert metrics.registry.get_sample_value("stickers_abandoned_total", {"reason": "disconnected"}) == 1


class WorkerDeath(BaseException):
    """Not an Exception: escapes the per-batch error handling, as a bug in the worker would."""


def test_a_dead_worker_fails_its_batch_and_is_restarted() -> None:
    calls = []

    def process(items: Sequence[int]) -> list[int]:
        calls.append(list(items))
        if len(calls) == 1:
            raise WorkerDeath()
        return [2 * i for i in items]

    async def main() -> tuple[Any, int, bool]:
        batcher = make_batcher(process)
        batcher.start()
        try:
            died = await asyncio.gather(batcher.submit(1), return_exceptions=True)
            await asyncio.sleep(0.05)
            return died[0], await asyncio.wait_for(batcher.submit(3), 5), batcher.alive
        finally:
            await batcher.stop()

    died, later, alive = run(main())
    assert isinstance(died, RuntimeError) and "worker died" in str(died)
    assert later == 6 and alive


def test_readyz_says_503_when_the_worker_is_gone(make_app: Callable[..., Any]) -> None:
    app = make_app()
    with TestClient(app) as client:
        assert client.get("/readyz").status_code == 200
        batcher = app.state.service.batcher
        batcher.max_restarts = 0

        async def kill() -> None:
            batcher._tasks[0].cancel()
            await asyncio.sleep(0.05)

        client.portal.call(kill)
        response = client.get("/readyz")
        assert response.status_code == 503 and response.json()["error"]["code"] == "not_ready"
        assert client.post("/recommend", json={"dialogue": dialogue(TEXTS[0])}).status_code == 503


def test_shutdown_lets_the_batch_in_flight_finish() -> None:
    process = Blocking()

    async def main() -> tuple[Any, Any]:
        batcher = make_batcher(process)
        batcher.start()
        first = asyncio.ensure_future(batcher.submit(1))
        await until(process.started)
        queued = asyncio.ensure_future(batcher.submit(2))
        await asyncio.sleep(0.01)
        stopping = asyncio.ensure_future(batcher.stop())
        await asyncio.sleep(0.1)
        process.release.set()  # the batch in the thread ends after shutdown began
        await asyncio.wait_for(stopping, 10)
        results = await asyncio.wait_for(asyncio.gather(first, queued, return_exceptions=True), 5)
        return results[0], results[1]

    first, queued = run(main())
    assert first == 2  # computed and delivered, not cancelled
    assert isinstance(queued, NotReady)  # never started: refused with 503


# ---- the cache ---------------------------------------------------------------------------------------
@needs_redis
def test_bad_cached_values_are_misses_counted_and_overwritten(make_app: Callable[..., Any],
                                                              metric_value: Callable[..., float]) -> None:
    import redis

    prefix = f"stickers-test-{free_port()}-{time.monotonic_ns()}:"
    app = make_app(redis_url=REDIS_URL, redis_prefix=prefix)
    store = redis.Redis.from_url(REDIS_URL)
    body = {"dialogue": dialogue("thanks so much for the gift", "here you go")}
    try:
        with TestClient(app) as client:
            reference = client.post("/recommend", json=body).json()
            (key,) = store.keys(prefix + "query:*")
            good = store.get(key)
            layout = app.state.service.components.recommender.cache.layout
            wrong_shape = pack_encoding({name: np.ones(n + 1, np.float32) for name, n in layout.items()})
            right_shape_nan = pack_encoding({name: np.full(n, np.nan, np.float32) for name, n in layout.items()})
            poisoned = [wrong_shape, right_shape_nan, b"\x05\x00\x00\x00[1,2]abc", b"not an encoding at all"]
            for bad in poisoned:
                store.set(key, bad)
                response = client.post("/recommend", json=body)
                assert response.status_code == 200, response.text
                assert response.json() == reference
                check_encoding(store.get(key), layout)  # overwritten with a good value
            assert store.get(key) == good
        assert metric_value(app, "stickers_cache_invalid_total") == len(poisoned)
    finally:
        for key in store.scan_iter(prefix + "*"):
            store.delete(key)


def test_a_redis_password_is_used_and_a_wrong_one_fails_open(make_app: Callable[..., Any], tmp_path: Path,
                                                              metric_value: Callable[..., float]) -> None:
    port = free_port()
    server = start_redis(port, tmp_path, password="s3cret-pass")
    body = {"dialogue": dialogue(TEXTS[1])}
    try:
        good = make_app(redis_url=f"redis://127.0.0.1:{port}/0", redis_password="s3cret-pass")
        in_url = make_app(redis_url=f"redis://:s3cret-pass@127.0.0.1:{port}/0")
        wrong = make_app(redis_url=f"redis://127.0.0.1:{port}/0", redis_password="wrong")
        for app in (good, in_url, wrong):
            with TestClient(app) as client:
                codes = [client.post("/recommend", json=body).status_code for _ in range(2)]
                assert codes == [200, 200]
        assert metric_value(good, "stickers_cache_hits_total") == 1
        assert metric_value(in_url, "stickers_cache_hits_total") == 2
        assert metric_value(good, "stickers_cache_errors_total") == 0
        assert metric_value(wrong, "stickers_cache_errors_total") >= 1  # refused by Redis: misses, counted
        assert metric_value(wrong, "stickers_cache_hits_total") == 0
    finally:
        server.kill()
        server.wait(10)


# ---- index versions over Redis -----------------------------------------------------------------------
async def wait_for(condition: Callable[[], bool], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def test_a_version_published_while_redis_is_down_reaches_every_replica(
        make_settings: Callable[..., Any], make_components: Callable[..., Any], own_index_root: Path,
        tiny_model: Any, tiny_catalog: Path, cache_dir: Path, tmp_path: Path) -> None:
    from service_helpers import build_tiny_index

    from index.store import current_version

    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    server = start_redis(port, tmp_path)
    settings = make_settings(index=own_index_root, redis_url=url, redis_timeout_seconds=0.2,
                             redis_health_check_seconds=0.3)
    a, b = create_app(settings, make_components(settings)), create_app(settings, make_components(settings))
    old = current_version(own_index_root)

    async def main() -> tuple[Any, str]:
        nonlocal server
        async with serving(a) as ca, serving(b):
            await wait_for(lambda: a.state.service.sync.subscribed.is_set() and b.state.service.sync.subscribed.is_set())
            assert a.state.service.sync.publish(str(old))
            server.kill()
            server.wait(10)
            new = await asyncio.to_thread(build_tiny_index, tiny_model, tiny_catalog, own_index_root, cache_dir)
            response = (await ca.post("/admin/reload", headers=ADMIN)).json()
            assert response == {"previous_version": old, "index_version": new, "published": False}
            server = start_redis(port, tmp_path)  # empty: the key is gone, as after a Redis restart
            server_b_store = __import__("redis").Redis.from_url(url)
            server_b_store.set(settings.redis_prefix + "index:version", str(old))  # and a stale key, worst case
            await wait_for(lambda: b.state.service.indexes.version == new)
            await asyncio.sleep(1.0)  # a few health checks later: nobody rolled back
            return response, new

    try:
        response, new = run(main())
    finally:
        server.kill()
        server.wait(10)
    assert a.state.service.indexes.version == new == b.state.service.indexes.version


def test_a_version_announced_before_its_files_arrive_is_retried(
        make_settings: Callable[..., Any], make_components: Callable[..., Any], own_index_root: Path,
        tiny_model: Any, tiny_catalog: Path, cache_dir: Path, tmp_path: Path) -> None:
    from service_helpers import build_tiny_index

    from index.store import VERSIONS_DIR, current_version

    elsewhere = tmp_path / "builder"
    shutil.copytree(own_index_root, elsewhere)
    new = build_tiny_index(tiny_model, tiny_catalog, elsewhere, cache_dir)  # not on this replica's disk yet
    old = current_version(own_index_root)
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    server = start_redis(port, tmp_path)
    settings = make_settings(index=own_index_root, redis_url=url, redis_health_check_seconds=0.3)
    app = create_app(settings, make_components(settings))

    async def main() -> list[str]:
        async with serving(app):
            sync = app.state.service.sync
            await wait_for(lambda: sync.subscribed.is_set())
            assert await asyncio.to_thread(sync.publish, new)
            await asyncio.sleep(0.5)
            served = [app.state.service.indexes.version]
            shutil.copytree(elsewhere / VERSIONS_DIR / new, own_index_root / VERSIONS_DIR / new)
            await wait_for(lambda: app.state.service.indexes.version == new, 10)
            served.append(app.state.service.indexes.version)
            return served

    try:
        assert run(main()) == [old, new]
    finally:
        server.kill()
        server.wait(10)


class FreezableProxy:
    """A TCP proxy to Redis whose current connections can be frozen: bytes stop, nothing is closed, as
    behind a dropped NAT entry or a dead peer. New connections pass."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.frozen: list[asyncio.Event] = []
        self.server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    def freeze(self) -> None:
        for event in self.frozen:
            event.set()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        frozen = asyncio.Event()
        self.frozen.append(frozen)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            while data := await src.read(65536):
                if frozen.is_set():
                    await asyncio.sleep(3600)  # swallow: the peer hears nothing, forever
                dst.write(data)
                await dst.drain()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer), return_exceptions=True)


def test_a_cancellation_swallowed_by_a_read_timeout_still_stops_the_listener() -> None:
    """CPython 3.11: when redis-py's read timeout (asyncio.timeout) expires as shutdown cancels the listener,
    the CancelledError becomes a timeout and get_message answers "no message". The listener must stop anyway
    (it went on forever, and the app's shutdown waited on it: about 1 run in 5 of the test below)."""
    from service.index_sync import IndexSync

    class SwallowingPubSub:
        swallowed = 0

        async def get_message(self, ignore_subscribe_messages: bool, timeout: float) -> None:
            try:
                await asyncio.sleep(timeout)
            except asyncio.CancelledError:
                if self.swallowed:  # only the first: the test must not hang before the fix
                    raise
                self.swallowed += 1
            return None

        async def ping(self, message: str) -> bool:
            return True

    class Client:
        async def get(self, key: str) -> None:
            return None

    async def on_version(version: str) -> None:
        raise AssertionError("no version is announced")

    async def main() -> tuple[bool, int]:
        sync = IndexSync("redis://127.0.0.1:1/0", "t:", ServiceMetrics(), health_check_seconds=0.05,
                         retry_seconds=0.05)
        pubsub = SwallowingPubSub()
        task = asyncio.create_task(sync._receive(Client(), pubsub, on_version))
        await asyncio.sleep(0.12)
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=2)
        stopped = task in done and task.cancelled()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return stopped, pubsub.swallowed

    assert run(main()) == (True, 1)


# Deselected by default (7 s, a real Redis behind a freezing proxy; `make test-all` runs it). Its shutdown
# used to hang about one run in five: the test above is that cause, fixed.
@pytest.mark.slow
def test_a_silent_subscription_is_noticed_and_reconnected(
        make_settings: Callable[..., Any], make_components: Callable[..., Any], own_index_root: Path,
        tiny_model: Any, tiny_catalog: Path, cache_dir: Path, tmp_path: Path,
        metric_value: Callable[..., float]) -> None:
    from eigml.catalog import load_catalog
    from index.build import build_index
    from service.index_sync import IndexSync

    port = free_port()
    server = start_redis(port, tmp_path)
    new = build_index(tiny_model, load_catalog(tiny_catalog), own_index_root, feature_cache=cache_dir / "features",
                      device="cpu", progress=False, publish=False)  # on disk, not CURRENT, not announced

    async def main() -> str:
        proxy = FreezableProxy(port)
        await proxy.start()
        settings = make_settings(index=own_index_root, redis_url=f"redis://127.0.0.1:{proxy.port}/0",
                                 redis_health_check_seconds=0.3, redis_timeout_seconds=0.2)
        app = create_app(settings, make_components(settings))
        async with serving(app):
            sync = app.state.service.sync
            await wait_for(lambda: sync.subscribed.is_set())
            old = app.state.service.indexes.version
            proxy.freeze()
            direct = IndexSync(f"redis://127.0.0.1:{port}/0", settings.redis_prefix, ServiceMetrics())
            assert await asyncio.to_thread(direct.publish, new)  # the frozen subscription never hears it
            await direct.stop()
            await wait_for(lambda: app.state.service.indexes.version == new, 15)
            assert old != new
            # the silent subscription itself is noticed (its PING goes unanswered), counted and replaced
            await wait_for(lambda: metric_value(app, "stickers_index_sync_errors_total") >= 1, 10)
            return str(app.state.service.indexes.version)

    try:
        assert run(main()) == new
    finally:
        server.kill()
        server.wait(10)


# ---- reindex keeps what is served --------------------------------------------------------------------
def test_reindex_keeps_the_packs_and_the_factory_served(make_settings: Callable[..., Any],
                                                         make_components: Callable[..., Any], tiny_model: Any,
                                                         tiny_catalog: Path, cache_dir: Path,
                                                         tmp_path: Path) -> None:
    from eigml.catalog import load_catalog
    from index.build import build_index
    from index.store import SearchSettings, read_manifest

    root = tmp_path / "index"
    build_index(tiny_model, load_catalog(tiny_catalog), root, factory="HNSW8", packs=["noto", "plain"],
                search=SearchSettings(ef_search=7), feature_cache=cache_dir / "features", device="cpu",
                progress=False)  # e.g. after `--remove-pack twemoji` (a licence takedown)
    settings = make_settings(index=root)
    with TestClient(create_app(settings, make_components(settings))) as client:
        assert client.post("/admin/reindex", headers=ADMIN).status_code == 202
        status = client.app.state.service.indexes.wait_reindex(60)  # type: ignore[attr-defined]
        assert status.state == "done", status
        manifest = read_manifest(root, status.version)
        hits = client.post("/recommend", json={"dialogue": dialogue(TEXTS[0]), "top_k": 50}).json()["hits"]
    assert set(manifest.counts) == {"noto", "plain"}
    assert manifest.factory == "HNSW8" and manifest.search.ef_search == 7
    assert {h["pack"] for h in hits} <= {"noto", "plain"}


def test_tls_urls_and_credentials_reach_the_redis_clients() -> None:
    import redis

    from service.cache import connect_redis
    from service.index_sync import IndexSync
    from service.settings import Settings

    settings = Settings(model=Path("m"), redis_url="rediss://cache.internal:6380/0?ssl_ca_certs=/etc/ca.pem",
                        redis_username="stickers", redis_password="from-a-secret")
    client = connect_redis(str(settings.redis_url), 0.1, settings.redis_auth)
    sync = IndexSync(str(settings.redis_url), "p:", ServiceMetrics(), auth=settings.redis_auth)
    for pool in (client.connection_pool, sync._client.connection_pool):
        assert pool.connection_class is redis.SSLConnection
        kwargs = pool.connection_kwargs
        assert (kwargs["username"], kwargs["password"], kwargs["ssl_ca_certs"]) == ("stickers", "from-a-secret",
                                                                                     "/etc/ca.pem")
    assert "from-a-secret" not in repr(settings)  # a SecretStr: never in logs or reprs
