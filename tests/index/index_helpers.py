"""Reference (slow, obvious) computations the index tests compare against."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from eigml.catalog import Catalog
from eigml.model.eigml import EIGML
from eigml.model.interface import StickerEncoding


def slow_encoding(model: EIGML, catalog: Catalog, sticker_ids: Sequence[str]) -> StickerEncoding:
    """The obvious path: one sticker at a time, backbone run directly (no feature cache, no batching)."""
    with torch.inference_mode():
        rows = [model.encode_stickers(model.image_features([catalog.open_image(s)])) for s in sticker_ids]
    return StickerEncoding(*(torch.cat(column) for column in zip(*rows, strict=True)))


def unit_queries(count: int, dim: int, seed: int = 0) -> np.ndarray:
    q = np.random.default_rng(seed).standard_normal((count, dim)).astype(np.float32)
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def exact_top(vectors: np.ndarray, queries: np.ndarray, rows: np.ndarray, top_n: int) -> tuple[np.ndarray, np.ndarray]:
    """Numpy top_n over `rows` of `vectors` only: scores and rows (B, <=top_n), best first."""
    scores = queries @ vectors[rows].T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :top_n]
    return np.take_along_axis(scores, order, axis=1), rows[order]
