"""Agreement retrieval: the rows whose emotion/intention distributions agree most with the dialogue's,
checked against the formula computed by hand, and the service's candidate set honouring packs/exclude."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from eigml.checkpoint import load_checkpoint
from eigml.model.interface import QueryEncoding
from eigml.rerank import agreement_candidates, agreement_retrieval


@pytest.fixture(scope="module")
def model(tiny_checkpoint: Path, cache_dir: Path):
    m = load_checkpoint(tiny_checkpoint, models_dir=cache_dir / "models")
    m.config.samm.similarity = "distribution"  # the tiny run trains cosine SAMM; the formula is the same module
    return m


def test_agreement_candidates_are_the_exact_top_rows_of_s_ei(model) -> None:
    assert agreement_retrieval(model)
    gen = torch.Generator().manual_seed(0)
    n, e, a = 50, len(model.emotion_labels), len(model.intention_labels)
    stickers_e = torch.rand(n, e, generator=gen).softmax(-1)
    stickers_i = torch.rand(n, a, generator=gen).softmax(-1)
    queries = QueryEncoding(query=torch.zeros(2, 4), emotion_probs=torch.rand(2, e, generator=gen).softmax(-1),
                            intention_probs=torch.rand(2, a, generator=gen).softmax(-1), features={})
    allowed = [None, np.arange(10, 30, dtype=np.int64)]
    got = agreement_candidates(model, queries, stickers_e, stickers_i, allowed, top_m=5)
    alpha = float(model.samm.alpha)
    for i, rows in enumerate(allowed):
        s_ei = [alpha * float(queries.emotion_probs[i] @ stickers_e[r])
                + (1 - alpha) * float(queries.intention_probs[i] @ stickers_i[r]) for r in range(n)]
        pool = range(n) if rows is None else rows.tolist()
        expected = sorted(pool, key=lambda r: -s_ei[r])[:5]
        assert got[i].tolist() == expected
