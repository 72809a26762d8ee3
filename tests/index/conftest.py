"""Index fixtures: the tiny checkpoint loaded once, the tiny catalogue, and one index built from them."""

from __future__ import annotations

from pathlib import Path

import pytest

from eigml.catalog import Catalog, load_catalog
from eigml.checkpoint import load_checkpoint
from eigml.model.eigml import EIGML
from index.build import build_index


@pytest.fixture(scope="session")
def tiny_model(tiny_checkpoint: Path, cache_dir: Path) -> EIGML:
    return load_checkpoint(tiny_checkpoint, models_dir=cache_dir / "models")


@pytest.fixture(scope="session")
def catalog(tiny_catalog: Path) -> Catalog:
    return load_catalog(tiny_catalog)


@pytest.fixture(scope="session")
def built_root(tmp_path_factory: pytest.TempPathFactory, tiny_model: EIGML, catalog: Catalog,
               cache_dir: Path) -> Path:
    """An index of the whole tiny catalogue (Flat), built once per session; tests must not write to it."""
    root = tmp_path_factory.mktemp("index")
    build_index(tiny_model, catalog, root, feature_cache=cache_dir / "features", progress=False)
    return root
