"""End to end: tiny checkpoint -> index.build.build_index -> the service, in process and as a real server.

The in-process app loads everything itself from settings (no injected components); the real server is
`python -m service` on a free loopback port with the ONNX query encoder, hit with httpx, and stopped.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.settings import Settings

TURNS = [{"speaker": "A", "text": "hey"}, {"speaker": "B", "text": "I am so happy today, great news!"}]


@pytest.fixture(scope="module")
def model(tiny_checkpoint: Path, cache_dir: Path) -> Any:
    from eigml.checkpoint import load_checkpoint

    return load_checkpoint(tiny_checkpoint, models_dir=cache_dir / "models")


@pytest.fixture(scope="module")
def index_root(tmp_path_factory: pytest.TempPathFactory, model: Any, tiny_catalog: Path, cache_dir: Path) -> Path:
    from eigml.catalog import load_catalog
    from index.build import build_index

    root = tmp_path_factory.mktemp("e2e-index")
    build_index(model, load_catalog(tiny_catalog), root, feature_cache=cache_dir / "features", device="cpu",
                progress=False)
    return root


def catalogue_ids(catalog_dir: Path) -> set[str]:
    from eigml.catalog import load_catalog

    return set(load_catalog(catalog_dir).ids())


def test_pipeline_in_process(tiny_checkpoint: Path, index_root: Path, tiny_catalog: Path, cache_dir: Path) -> None:
    settings = Settings(model=tiny_checkpoint, index=index_root, catalog=tiny_catalog, cache_dir=cache_dir)
    app = create_app(settings)  # loads checkpoint, encoder and index itself, in the lifespan
    with TestClient(app) as client:
        deadline = time.monotonic() + 120
        while client.get("/readyz").status_code != 200:
            assert app.state.service.load_error is None, app.state.service.load_error
            assert time.monotonic() < deadline
            time.sleep(0.1)
        response = client.post("/recommend", json={"dialogue": TURNS, "top_k": 5})
        assert response.status_code == 200, response.text
        hits = response.json()["hits"]
        assert len(hits) == 5 and {h["sticker_id"] for h in hits} <= catalogue_ids(tiny_catalog)
        assert client.get(hits[0]["image_url"]).status_code == 200


def test_real_server_with_onnx_encoder(tmp_path: Path, model: Any, tiny_checkpoint: Path, index_root: Path,
                                       tiny_catalog: Path, cache_dir: Path, free_port: Callable[[], int]) -> None:
    from eigml.export import export_query_encoder

    onnx_path = export_query_encoder(model, tmp_path / "query_encoder.onnx")
    port = free_port()
    env = {**os.environ, "STICKERS_MODEL": str(tiny_checkpoint), "STICKERS_INDEX": str(index_root),
           "STICKERS_CATALOG": str(tiny_catalog), "STICKERS_CACHE_DIR": str(cache_dir),
           "STICKERS_ONNX_PATH": str(onnx_path), "STICKERS_ENCODER_BACKEND": "onnx", "STICKERS_THREADS": "1",
           "STICKERS_LOG_LEVEL": "warning", "HF_HUB_OFFLINE": "1"}
    env.pop("STICKERS_REDIS_URL", None)
    server = subprocess.Popen([sys.executable, "-m", "service", "--port", str(port)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=10) as client:
            deadline = time.monotonic() + 180
            while True:
                assert server.poll() is None, server.communicate()[0]
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "server not ready"
                time.sleep(0.2)
            assert client.get("/readyz").json()["encoder_backend"] == "onnx"
            body = client.post("/recommend", json={"dialogue": TURNS, "top_k": 36}).json()
            hits = body["hits"]
            assert len(hits) == 36 and {h["sticker_id"] for h in hits} == catalogue_ids(tiny_catalog)
            image = client.get(hits[0]["image_url"])
            assert image.status_code == 200 and image.headers["etag"]
            assert 'stickers_stage_duration_seconds_count{stage="rerank"}' in client.get("/metrics").text
        # the ONNX path scores like PyTorch eager
        from eigml.dialogue import Dialogue, Turn
        from eigml.export import QueryEncoder
        from index.search import load_index
        from service.recommender import Recommender

        reference = Recommender(model, QueryEncoder(model, backend="torch"), load_index(index_root))
        expected = {h.sticker_id: h.score for h in reference.recommend(
            Dialogue(tuple(Turn(t["speaker"], t["text"]) for t in TURNS)), top_k=36).hits}
        assert all(abs(h["score"] - expected[h["sticker_id"]]) < 1e-3 for h in hits)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
    # uvicorn shuts down gracefully, then re-raises the signal it caught, so -SIGTERM is a clean exit
    assert server.returncode in (0, -signal.SIGTERM)
