"""Approximate factories against exact search: recall@100 at the documented settings (index.ann)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from eigml.catalog import load_catalog
from eigml.model.eigml import EIGML
from eigml.paths import Paths
from index.ann import build_faiss_index, default_settings, gpu_count, search_parameters
from index.build import build_index
from index.evaluate import clustered_unit_vectors, exact_search, neighbor_recall_at_k
from index.search import load_index

APPROXIMATE = ["IVF256,Flat", "IVF256,SQ8,RFlat", "HNSW32"]


@pytest.fixture(scope="module")
def clustered() -> tuple[np.ndarray, np.ndarray]:
    """20k database rows and 200 held-out queries from the same 200 clusters (~100 rows each, like k)."""
    rows = clustered_unit_vectors(20_200, 64, clusters=200, spread=1.0, seed=0)
    return rows[:20_000], rows[20_000:]


@pytest.mark.parametrize("factory", APPROXIMATE)
def test_recall_at_100_on_clustered_vectors(clustered: tuple[np.ndarray, np.ndarray], factory: str) -> None:
    vectors, queries = clustered
    _, exact = exact_search(vectors, queries, 100)
    index = build_faiss_index(vectors, factory)
    _, found = index.search(queries, 100, params=search_parameters(index, default_settings(index)))
    assert neighbor_recall_at_k(found, exact, 100) >= 0.98


def test_recall_measure_is_not_vacuous(clustered: tuple[np.ndarray, np.ndarray]) -> None:
    vectors, queries = clustered
    _, exact = exact_search(vectors, queries, 100)
    assert neighbor_recall_at_k(exact, exact, 100) == 1.0
    index = build_faiss_index(vectors, "IVF256,Flat")
    _, one_list = index.search(queries, 100, params=search_parameters(index, default_settings(index).model_copy(
        update={"nprobe": 1})))
    assert neighbor_recall_at_k(one_list, exact, 100) < 0.9  # one list of 256 misses neighbours: the data is not trivial


@pytest.mark.skipif(gpu_count() == 0, reason="FAISS sees no GPU (faiss-gpu is the optional `gpu` extra)")
def test_gpu_build_matches_cpu(clustered: tuple[np.ndarray, np.ndarray]) -> None:
    vectors, queries = clustered
    cpu, gpu = build_faiss_index(vectors, "Flat", device="cpu"), build_faiss_index(vectors, "Flat", device="cuda")
    d_cpu, i_cpu = cpu.search(queries, 100)
    d_gpu, i_gpu = gpu.search(queries, 100)  # the GPU-built index comes back as a CPU index
    np.testing.assert_allclose(d_gpu, d_cpu, atol=1e-5)
    assert neighbor_recall_at_k(i_gpu, i_cpu, 100) >= 0.999  # ties may order differently
    _, exact = exact_search(vectors, queries, 100)
    ivf = build_faiss_index(vectors, "IVF256,Flat", device="cuda")
    _, found = ivf.search(queries, 100, params=search_parameters(ivf, default_settings(ivf)))
    assert neighbor_recall_at_k(found, exact, 100) >= 0.98


@pytest.mark.slow
@pytest.mark.parametrize("factory", ["IVF256,Flat", "HNSW32"])
def test_recall_on_the_default_catalogue(tmp_path: Path, tiny_model: EIGML, factory: str) -> None:
    """The real default catalogue (6,287 stickers) embedded with the tiny checkpoint; minutes on 2 cores."""
    cache = Paths.from_env().cache_dir
    if not (cache / "catalog" / "default").is_dir():
        pytest.skip(f"no default catalogue at {cache / 'catalog' / 'default'} (make catalog)")
    catalog = load_catalog(cache / "catalog" / "default")
    build_index(tiny_model, catalog, tmp_path, factory=factory, feature_cache=cache / "features", device="cpu")
    index = load_index(tmp_path)
    visual = index.encodings().visual.numpy()
    queries = visual[np.random.default_rng(0).choice(len(index), 200, replace=False)]
    _, exact = exact_search(visual, queries, 100)
    _, found = index.search(queries, 100)
    assert neighbor_recall_at_k(found, exact, 100) >= 0.98  # the bar, at the documented defaults
