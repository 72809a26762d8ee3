"""The HTTP API: bodies and limits, images, health, metrics, admin auth, errors, batching and overload."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from service_helpers import ADMIN_TOKEN, TEXTS, dialogue, run, serving

from eigml.labels import EMOTIONS
from service.app import create_app
from service.dependencies import get_recommender
from service.recommender import RecommendRequest, RecommendResult

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def client(make_app: Callable[..., Any]) -> Any:
    with TestClient(make_app()) as c:
        yield c


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code and body["error"]["message"]
    return body


def test_recommend_returns_catalogue_stickers(client: TestClient, tiny_index: Any, tiny_model: Any) -> None:
    response = client.post("/recommend", json={"dialogue": dialogue("my dog died, I am heartbroken", "hey"),
                                               "top_k": 7})
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["hits"]) == 7
    assert body["model_version"] == tiny_model.version and body["index_version"] == tiny_index.version
    assert body["emotion"]["label"] in EMOTIONS
    assert (body["intention"] is None) == (not tiny_model.intention_labels)
    for hit in body["hits"]:
        assert hit["sticker_id"] in tiny_index.ids and hit["image_url"] == f"/stickers/{hit['sticker_id']}"
        assert hit["emotion"] in EMOTIONS and 0 < hit["score"] < 1
    image = client.get(body["hits"][0]["image_url"])
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"


def test_recommend_respects_packs_exclude_and_responder(client: TestClient) -> None:
    turns = dialogue("what? I did not expect that at all", "guess what")
    body = client.post("/recommend", json={"dialogue": turns, "top_k": 50, "packs": ["plain"],
                                           "exclude": ["plain/1f600"], "responder": "A"}).json()
    ids = [h["sticker_id"] for h in body["hits"]]
    assert len(ids) == 11 and all(i.startswith("plain/") for i in ids) and "plain/1f600" not in ids


@pytest.mark.parametrize("change", [
    {"dialogue": []},
    {"dialogue": dialogue("x") * 33},
    {"dialogue": [{"speaker": "A", "text": "x" * 2001}]},
    {"dialogue": [{"speaker": "A", "text": ""}]},
    {"dialogue": [{"speaker": "A"}]},
    {"top_k": 0},
    {"top_k": 51},
    {"packs": []},
    {"packs": ["noto"] * 65},
    {"exclude": ["noto/1f600"] * 1001},
    {"surprise": 1},
])
def test_limits_are_enforced_by_the_schema(client: TestClient, change: dict[str, Any]) -> None:
    body = {"dialogue": dialogue("hello"), **change}
    assert_error(client.post("/recommend", json=body), 422, "validation_error")


def test_limits_at_their_edges_are_accepted(client: TestClient) -> None:
    body = {"dialogue": [{"speaker": "AB"[i % 2], "text": "y" * 2000} for i in range(32)], "top_k": 50}
    response = client.post("/recommend", json=body)
    assert response.status_code == 200 and len(response.json()["hits"]) == 36


def test_unknown_pack_is_not_found(client: TestClient) -> None:
    # a schema-valid body naming a pack this index lacks: 404, like a sticker id it lacks (422 is for bodies
    # outside the schema, so generated clients can tell the two apart)
    body = assert_error(client.post("/recommend", json={"dialogue": dialogue("hi"), "packs": ["nope", "noto"]}),
                        404, "not_found")
    assert "nope" in body["error"]["message"]


def test_sticker_images_are_cached_and_confined(client: TestClient, tiny_catalog: Any) -> None:
    response = client.get("/stickers/noto/1f600")
    assert response.status_code == 200
    assert response.content == (tiny_catalog / "noto" / "1f600.png").read_bytes()
    tag = response.headers["etag"]
    assert tag.startswith('"') and "immutable" not in response.headers["cache-control"]  # the art can change
    again = client.get("/stickers/noto/1f600", headers={"If-None-Match": tag})
    assert again.status_code == 304 and again.headers["etag"] == tag and not again.content
    assert client.get("/stickers/noto/1f601", headers={"If-None-Match": tag}).status_code == 200
    assert_error(client.get("/stickers/noto/ffff"), 404, "not_found")
    for sneaky in ("/stickers/../../etc/passwd", "/stickers/noto/..%2F..%2F..%2Fetc%2Fpasswd",
                   "/stickers/%2Fetc%2Fpasswd", "/stickers/noto/pack.json"):
        assert client.get(sneaky).status_code == 404, sneaky


def test_health_readiness_and_metrics(client: TestClient, tiny_index: Any) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["index_version"] == tiny_index.version
    assert ready["stickers"] == len(tiny_index) and ready["encoder_backend"] == "torch"
    client.post("/recommend", json={"dialogue": dialogue("hello")})
    client.get("/stickers/noto/1f600")
    text = client.get("/metrics").text
    for name in ("stickers_http_requests_total", "stickers_http_request_duration_seconds_bucket",
                 "stickers_stage_duration_seconds_bucket", "stickers_cache_hits_total", "stickers_cache_misses_total",
                 "stickers_cache_errors_total", "stickers_batch_size_bucket", "stickers_queue_depth",
                 "stickers_index_info", "stickers_index_stickers"):
        assert name in text, name
    for stage in ("encode", "retrieve", "rerank"):
        assert f'stickers_stage_duration_seconds_count{{stage="{stage}"}} 1.0' in text
    assert 'route="/stickers/{sticker_id:path}"' in text and "noto/1f600" not in text  # no ids in labels
    assert 'le="0.005"' in text  # millisecond buckets
    assert f'version="{tiny_index.version}"' in text


def test_not_ready_while_loading_fails(make_settings: Callable[..., Any], tmp_path: Any) -> None:
    app = create_app(make_settings(model=tmp_path / "no-checkpoint"))
    with TestClient(app) as c:
        deadline = time.monotonic() + 30
        while app.state.service.load_error is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert c.get("/healthz").status_code == 200
        body = assert_error(c.get("/readyz"), 503, "not_ready")
        assert "no-checkpoint" in body["error"]["message"]
        assert_error(c.post("/recommend", json={"dialogue": dialogue("hi")}), 503, "not_ready")


def test_admin_needs_the_bearer_token(client: TestClient, make_app: Callable[..., Any]) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": ADMIN_TOKEN},
                    {"Authorization": f"Basic {ADMIN_TOKEN}"}):
        assert_error(client.post("/admin/reload", headers=headers), 401, "unauthorised")
        assert_error(client.post("/admin/reindex", headers=headers), 401, "unauthorised")
    with TestClient(make_app(admin_token=None)) as no_token:  # admin switched off
        assert_error(no_token.post("/admin/reload", headers={"Authorization": "Bearer "}), 401, "unauthorised")
    assert client.post("/admin/reload", headers=ADMIN).status_code == 200


def test_unknown_route_and_method_use_the_error_body(client: TestClient) -> None:
    assert_error(client.get("/nope"), 404, "not_found")
    assert_error(client.get("/recommend"), 405, "method_not_allowed")


def test_internal_error_is_a_plain_500(make_app: Callable[..., Any], caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        packs: frozenset[str] = frozenset()

        def unknown_packs(self, packs: Any) -> list[str]:
            raise RuntimeError("secret detail /srv/model.bin")

    app = make_app()
    app.dependency_overrides[get_recommender] = Broken
    with TestClient(app) as c:
        response = c.post("/recommend", json={"dialogue": dialogue("hi")})
    body = assert_error(response, 500, "internal_error")
    assert "secret" not in response.text and "Traceback" not in response.text and "RuntimeError" not in response.text
    assert body["error"]["message"].startswith("internal error")
    assert "secret detail" in caplog.text  # the log keeps what the client does not see


def test_concurrent_http_requests_are_batched_and_equal_single_ones(make_app: Callable[..., Any],
                                                                    metric_value: Callable[..., float]) -> None:
    app = make_app(cache_entries=0)  # every request really runs the encoder
    bodies = [{"dialogue": dialogue(t, "hey"), "top_k": 5, **({"packs": ["noto"]} if i % 3 == 0 else {})}
              for i, t in enumerate(TEXTS * 2)]

    async def main() -> tuple[list[Any], list[Any]]:
        async with serving(app) as client:
            singles = [(await client.post("/recommend", json=b)).json() for b in bodies]
            together = await asyncio.gather(*(client.post("/recommend", json=b) for b in bodies))
            return singles, [r.json() for r in together]

    singles, together = run(main())
    for one, many in zip(singles, together, strict=True):
        assert [h["sticker_id"] for h in one["hits"]] == [h["sticker_id"] for h in many["hits"]]
        np.testing.assert_allclose([h["score"] for h in one["hits"]], [h["score"] for h in many["hits"]], atol=1e-5)
    batches = metric_value(app, "stickers_batch_size_count")
    assert batches < 2 * len(bodies)  # the concurrent half shared batches
    assert metric_value(app, "stickers_batch_size_bucket", le="1.0") < batches


def test_overload_is_a_fast_429_with_retry_after(make_app: Callable[..., Any],
                                                 metric_value: Callable[..., float]) -> None:
    app = make_app(queue_size=2, max_batch=1, retry_after_seconds=3)
    release = threading.Event()
    entered = threading.Event()

    async def main() -> list[tuple[int, float, dict[str, str], Any]]:
        async with serving(app) as client:
            recommender = app.state.service.components.recommender
            process = recommender.recommend_many

            def slow(requests: Sequence[RecommendRequest]) -> list[RecommendResult]:
                entered.set()
                release.wait(10)  # holds the worker so the queue fills
                return process(requests)

            app.state.service.batcher.process = slow

            async def one(i: int) -> tuple[int, float, dict[str, str], Any]:
                start = time.perf_counter()
                r = await client.post("/recommend", json={"dialogue": dialogue(TEXTS[i % len(TEXTS)])})
                return r.status_code, time.perf_counter() - start, dict(r.headers), r.json()

            # the first request must be in the worker before the rest arrive, or a loaded machine
            # lets it still sit in the queue and one more request is refused
            tasks = [asyncio.ensure_future(one(0))]
            deadline = time.monotonic() + 30
            while not entered.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            tasks += [asyncio.ensure_future(one(i)) for i in range(1, 12)]
            while metric_value(app, "stickers_rejected_total") < 9 and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            release.set()
            return list(await asyncio.gather(*tasks))

    try:
        results = run(main())
    finally:
        release.set()
    refused = [r for r in results if r[0] == 429]
    assert len(refused) == 9 and sum(r[0] == 200 for r in results) == 3  # 1 in the worker + 2 queued
    for _, seconds, headers, body in refused:
        assert headers["retry-after"] == "3" and body["error"]["code"] == "overloaded"
        assert seconds < 1.0  # refused without waiting for the model
