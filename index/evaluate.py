"""How close an approximate index comes to exact search: recall@k, and clustered synthetic vectors to measure it on."""

from __future__ import annotations

import faiss
import numpy as np


def clustered_unit_vectors(count: int, dim: int, *, clusters: int, spread: float = 1.0,
                           seed: int = 0) -> np.ndarray:
    """(count, dim) float32 unit rows around `clusters` random unit centres (embeddings are clustered, not uniform).

    `spread` is the noise norm relative to a centre's: 1.0 puts a point ~45 degrees from its centre.
    """
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    out = np.empty((count, dim), dtype=np.float32)
    step = 100_000  # bounded temporaries at 1M rows
    for start in range(0, count, step):
        n = min(step, count - start)
        noise = rng.standard_normal((n, dim)).astype(np.float32) * np.float32(spread / np.sqrt(dim))
        block = centres[rng.integers(0, clusters, n)] + noise
        out[start:start + n] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def exact_search(vectors: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force inner-product top-k: scores (B, k) and rows (B, k), best first."""
    return faiss.knn(np.ascontiguousarray(queries, np.float32), np.ascontiguousarray(vectors, np.float32), k,
                     metric=faiss.METRIC_INNER_PRODUCT)


def neighbor_recall_at_k(found: np.ndarray, exact: np.ndarray, k: int) -> float:
    """Mean fraction of each query's exact top-k rows that `found` (B, >=k) returns in its first k."""
    hits = [np.intersect1d(f[:k][f[:k] >= 0], e[:k]).size for f, e in zip(found, exact, strict=True)]
    return float(np.mean(hits)) / k
