"""Service fixtures: the tiny checkpoint loaded once, a tiny index built from it, apps wired to both.

Nothing here is faked: the model, the query encoder and the index are the real ones on tiny data.
Tests that change an index root (reload, reindex) build their own root; `index_root` is read-only.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from service_helpers import ADMIN_TOKEN, build_tiny_index

from service.app import create_app
from service.components import Components, assemble
from service.metrics import ServiceMetrics
from service.settings import Settings


@pytest.fixture(scope="session", autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)  # the test machine's cores are shared


@pytest.fixture(scope="session")
def tiny_model(tiny_checkpoint: Path, cache_dir: Path) -> Any:
    from eigml.checkpoint import load_checkpoint

    return load_checkpoint(tiny_checkpoint, models_dir=cache_dir / "models")


@pytest.fixture(scope="session")
def torch_encoder(tiny_model: Any) -> Any:
    from eigml.export import QueryEncoder

    return QueryEncoder(tiny_model, backend="torch")


@pytest.fixture(scope="session")
def index_root(tmp_path_factory: pytest.TempPathFactory, tiny_model: Any, tiny_catalog: Path,
               cache_dir: Path) -> Path:
    root = tmp_path_factory.mktemp("index")
    build_tiny_index(tiny_model, tiny_catalog, root, cache_dir)
    return root


@pytest.fixture(scope="session")
def tiny_index(index_root: Path) -> Any:
    from index.search import load_index

    return load_index(index_root)


@pytest.fixture
def own_index_root(tmp_path: Path, index_root: Path) -> Path:
    """A copy of the tiny index root that a test may publish new versions into."""
    root = tmp_path / "index"
    shutil.copytree(index_root, root)
    return root


@pytest.fixture
def make_settings(tiny_checkpoint: Path, index_root: Path, tiny_catalog: Path,
                  cache_dir: Path) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = dict(model=tiny_checkpoint, index=index_root, catalog=tiny_catalog,
                                      cache_dir=cache_dir, admin_token=ADMIN_TOKEN, encoder_backend="torch")
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
def make_components(tiny_model: Any, torch_encoder: Any) -> Callable[..., Components]:
    """Components around the session's model and encoder, with the index loaded from `settings.index`."""
    from index.search import load_index

    def make(settings: Settings, encoder: Any = None) -> Components:
        return assemble(settings, ServiceMetrics(), tiny_model, encoder or torch_encoder, load_index(settings.index))

    return make


@pytest.fixture
def make_app(make_settings: Callable[..., Settings], make_components: Callable[..., Components]) -> Callable[..., Any]:
    def make(**overrides: Any) -> Any:
        settings = make_settings(**overrides)
        return create_app(settings, make_components(settings))

    return make


@pytest.fixture
def metric_value() -> Callable[..., float]:
    def value(app: Any, name: str, **labels: str) -> float:
        metrics: ServiceMetrics = app.state.service.metrics
        found = metrics.registry.get_sample_value(name, labels)
        return float(found) if found is not None else 0.0

    return value


@pytest.fixture
def redis_server(tmp_path: Path, free_port: Callable[[], int]) -> Iterator[tuple[str, Any]]:
    """A private redis-server on a free port (killed at the end): (url, process)."""
    import subprocess
    import time

    import redis

    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server on PATH")
    port = free_port()
    process = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no", "--dir", str(tmp_path)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                if redis.Redis.from_url(url, socket_timeout=0.2).ping():
                    break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield url, process
    finally:
        process.kill()
        process.wait(timeout=10)
