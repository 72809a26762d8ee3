"""FAISS over unit vectors with inner product: build from a factory string, query settings, filters.

Factories (the FAISS `index_factory` strings) and their documented query settings:
  "Flat"                exact; the default, right for catalogues up to ~100k stickers
  "IVF<nlist>,Flat"     e.g. "IVF256,Flat" (nlist ~ 4 * sqrt(N)); nprobe = max(64, nlist // 16)
  "IVF<nlist>,PQ<m>"    compressed (m bytes a vector); same nprobe; lower recall, least memory
  "HNSW<M>"             e.g. "HNSW32"; ef_search = 256
  "IVF<nlist>,SQ8,RFlat" 8-bit codes scanned (a quarter of the bytes), then k_factor * k candidates re-scored
                        exactly (k_factor = 2); same nprobe; the fastest at 1M for the same recall
                        (docs/performance.md), at the memory of Flat plus a quarter
These give recall@100 >= 0.98 against exact search on 20k clustered vectors (tests/index/test_recall.py);
at 1M vectors in 10k clusters (docs/performance.md) IVF4096 at nprobe 128 reached 0.92 and HNSW32 at
ef_search 256 0.90, so raise them (--nprobe, --ef-search) where recall matters more than a millisecond.
bench/index_scale.py measures build time, memory, latency and recall@100 of each at 1M vectors.
"""

from __future__ import annotations

import re
from typing import Literal

import faiss
import numpy as np

from index.store import SearchSettings

Device = Literal["auto", "cpu", "cuda"]
DEFAULT_EF_SEARCH = 256
DEFAULT_K_FACTOR = 2.0  # ",RFlat": SQ8 scores are close enough that 2k candidates hold the exact top k
MIN_NPROBE = 64
NPROBE_FRACTION = 16  # visit at least 1/16 of the inverted lists


class FactoryError(ValueError):
    """A factory string FAISS cannot build, or cannot train on this many vectors."""


def gpu_count() -> int:
    """GPUs FAISS can use (0 with faiss-cpu, which has no get_num_gpus or reports none)."""
    get = getattr(faiss, "get_num_gpus", None)
    return int(get()) if get is not None else 0


def resolve_device(device: Device) -> Literal["cpu", "cuda"]:
    if device == "cpu":
        return "cpu"
    if gpu_count() > 0:
        return "cuda"
    if device == "cuda":
        raise FactoryError("--device cuda: FAISS sees no GPU (install the `gpu` extra, faiss-gpu-cu12, on a GPU "
                           "machine) — use --device auto or cpu")
    return "cpu"


def new_index(factory: str, dim: int) -> faiss.Index:
    """An empty CPU index for `factory` over `dim`-d vectors, inner product; FactoryError when FAISS refuses."""
    try:
        return faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as error:
        raise FactoryError(f"FAISS cannot make an index from factory {factory!r} for {dim}-d vectors: "
                           f"{_faiss_message(error)}") from None


def check_factory(factory: str, dim: int, count: int) -> None:
    """Fail before any embedding work when `factory` cannot index `count` vectors of `dim`."""
    index = new_index(factory, dim)
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None and count < ivf.nlist:
        raise FactoryError(f"factory {factory!r} has {ivf.nlist} inverted lists but the catalogue has only "
                           f"{count} stickers to train them on; use 'Flat' or fewer lists (~4*sqrt(N))")


def _is_hnsw(index: faiss.Index) -> bool:
    return hasattr(faiss.downcast_index(index), "hnsw")


def _refine(index: faiss.Index) -> faiss.IndexRefine | None:
    """The re-scoring wrapper of a ",RFlat" factory, else None."""
    concrete = faiss.downcast_index(index)
    return concrete if isinstance(concrete, faiss.IndexRefine) else None


def default_settings(index: faiss.Index) -> SearchSettings:
    """The documented query settings for a built index (see the module docstring)."""
    refine = _refine(index)
    if refine is not None:
        return default_settings(refine.base_index).model_copy(update={"k_factor": DEFAULT_K_FACTOR})
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        return SearchSettings(nprobe=min(ivf.nlist, max(MIN_NPROBE, ivf.nlist // NPROBE_FRACTION)))
    if _is_hnsw(index):
        return SearchSettings(ef_search=DEFAULT_EF_SEARCH)
    return SearchSettings()


def build_faiss_index(vectors: np.ndarray, factory: str, *, device: Literal["cpu", "cuda"] = "cpu",
                      train_size: int | None = None, seed: int = 0) -> faiss.Index:
    """A CPU index holding `vectors` (N, D) float32 unit rows as FAISS ids 0..N-1.

    Training (IVF centroids, PQ codebooks) uses at most `train_size` rows, a seeded sample. With
    device "cuda" training and adding run on the GPU where the index type allows (not HNSW), and the
    result is copied back, so what is stored and loaded never depends on the device.
    """
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    count, dim = vectors.shape
    check_factory(factory, dim, count)
    index = new_index(factory, dim)
    ivf = faiss.try_extract_index_ivf(index)
    concrete = faiss.downcast_index(ivf) if ivf is not None else None
    if concrete is not None and hasattr(concrete, "do_polysemous_training"):
        # IVF-PQ from a factory string spends minutes on polysemous codes, which we never search with
        concrete.do_polysemous_training = False
    sample = vectors
    if train_size is not None and count > train_size:
        sample = vectors[np.sort(np.random.default_rng(seed).choice(count, train_size, replace=False))]
    # an index type without a GPU version (HNSW, ...) is built on the CPU
    work = to_gpu(index) if device == "cuda" and not _is_hnsw(index) else index
    try:
        if not work.is_trained:
            work.train(sample)
        work.add(vectors)
    except RuntimeError as error:
        raise FactoryError(f"FAISS could not build {factory!r} over {count} vectors of dim {dim}: "
                           f"{_faiss_message(error)}; use 'Flat' for small catalogues") from None
    return faiss.index_gpu_to_cpu(work) if work is not index else index


def search_parameters(index: faiss.Index, settings: SearchSettings,
                      selector: faiss.IDSelector | None = None) -> faiss.SearchParameters:
    """Per-call parameters (thread-safe: the index itself is never modified)."""
    # keyword construction makes the parameters hold a reference to the selector (SWIG would not)
    refine = _refine(index)
    if refine is not None:  # the selector filters the base index's candidates, which are then re-scored
        base = search_parameters(refine.base_index, settings, selector)
        # keyword construction also keeps `base` (and its selector) alive; faiss's stubs lack the keywords
        return faiss.IndexRefineSearchParameters(  # type: ignore[call-arg]
            k_factor=settings.k_factor or DEFAULT_K_FACTOR, base_index_params=base)
    extra: dict[str, object] = {} if selector is None else {"sel": selector}
    if faiss.try_extract_index_ivf(index) is not None:
        if settings.nprobe is not None:
            extra["nprobe"] = settings.nprobe
        return faiss.SearchParametersIVF(**extra)
    if _is_hnsw(index):
        if settings.ef_search is not None:
            extra["efSearch"] = settings.ef_search
        return faiss.SearchParametersHNSW(**extra)  # type: ignore[attr-defined]  # missing from faiss's stubs
    return faiss.SearchParameters(**extra)


def supports_selector(index: faiss.Index, settings: SearchSettings) -> bool:
    """Whether this index honours an IDSelector in search (GPU and some composite indexes do not)."""
    if index.ntotal == 0:
        return False
    selector = faiss.IDSelectorBatch(np.zeros(1, dtype=np.int64))
    try:
        _, rows = index.search(np.zeros((1, index.d), dtype=np.float32), 2,
                               params=search_parameters(index, settings, selector))
    except RuntimeError:
        return False
    return bool(np.all(rows[rows >= 0] == 0))


def serialize(index: faiss.Index) -> bytes:
    return faiss.serialize_index(index).tobytes()


def deserialize(data: bytes) -> faiss.Index:
    return faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))


def to_gpu(index: faiss.Index) -> faiss.Index:
    """A GPU copy for search (HNSW and other CPU-only types stay on the CPU)."""
    try:
        resources = faiss.StandardGpuResources()
        gpu = faiss.index_cpu_to_gpu(resources, 0, index)
    except (RuntimeError, AttributeError):
        return index
    gpu.referenced_objects = [resources]  # type: ignore[attr-defined]  # GPU memory must outlive the index
    return gpu


def _faiss_message(error: Exception) -> str:
    """FAISS's own message without the C++ location ("Error in ... at file.cpp:64: Error: '...' failed: msg")."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    text = re.sub(r"^Error in .*? at \S+:\d+: ", "", text)
    return re.sub(r"^Error: '.*?' failed: ", "", text)
