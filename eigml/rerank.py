"""The one rerank step: score each dialogue's retrieved candidates with the full model (IEGA, SAMM).

The service, the command-line recommender, the checkpoint ranker used by `rank`/training, and the bench
scripts all call `rerank`, so a ranking is the same whichever of them produced it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from eigml.model.eigml import EIGML
from eigml.model.interface import QueryEncoding, StickerEncoding


@torch.inference_mode()
def rerank(model: EIGML, queries: QueryEncoding, stickers: StickerEncoding,
           candidate_rows: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Final scores in (0, 1), one float32 array per query aligned with its `candidate_rows` (rows of
    `stickers`), from one `EIGML.score` call; only the rows some query uses are read.

    Queries may have different numbers of candidates: shorter ones are padded with a real row and the
    padding's scores dropped (scores of one candidate never depend on the others).
    """
    rows = [np.asarray(r, dtype=np.int64) for r in candidate_rows]
    width = max((len(r) for r in rows), default=0)
    if width == 0:
        return [np.empty(0, dtype=np.float32) for _ in rows]
    used, inverse = np.unique(np.concatenate(rows), return_inverse=True)
    # score only the rows in use; when that is every row, skip copying the patches
    subset = stickers if len(used) == len(stickers.visual) else StickerEncoding(
        *(t[torch.from_numpy(used)] for t in stickers))
    candidates = torch.zeros(len(rows), width, dtype=torch.long)
    start = 0
    for i, r in enumerate(rows):
        candidates[i, : len(r)] = torch.from_numpy(inverse[start : start + len(r)])
        start += len(r)
    scores = model.score(queries, subset, candidates).float().numpy()
    return [scores[i, : len(r)] for i, r in enumerate(rows)]


def best_first(rows: np.ndarray, scores: np.ndarray, top_k: int | None = None) -> np.ndarray:
    """Positions into `rows`/`scores` of the `top_k` best (all when None): highest score first, ties by row."""
    order = np.lexsort((rows, -scores))
    return order if top_k is None else order[:top_k]
