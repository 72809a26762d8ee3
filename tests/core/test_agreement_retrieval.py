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


def test_a_reply_that_returns_a_goodbye_also_gets_the_stickers_that_wave() -> None:
    """A goodbye read with farewell >= ACT_SLOT_MIN: the rows that perform it (probability >= PERFORMS_MIN)
    join the candidates after the top_m by agreement, even when they agree too little to be among them;
    rows that barely perform it do not. Read as "inform", nothing is added."""
    from types import SimpleNamespace

    from eigml.labels import EMOTIONS, INTENTIONS
    from eigml.selection import PERFORMS_MIN

    # what agreement_candidates reads of a model: SAMM's alpha and the labels (the default's vocabulary)
    model = SimpleNamespace(samm=SimpleNamespace(alpha=torch.tensor(0.5)), emotion_labels=EMOTIONS,
                            intention_labels=INTENTIONS)
    labels = list(model.intention_labels)
    farewell = labels.index("farewell")
    n, e, a = 30, len(model.emotion_labels), len(labels)
    stickers_e = torch.full((n, e), 1.0 / e)
    stickers_e[:20] = torch.eye(e)[2]  # twenty faces of one feeling
    stickers_i = torch.full((n, a), 1.0 / a)
    stickers_i[25] = 0.0
    stickers_i[25, farewell] = PERFORMS_MIN + 0.05  # waves (the rest spread)
    stickers_i[25, labels.index("greeting")] = 1 - PERFORMS_MIN - 0.05
    stickers_i[26, farewell] = PERFORMS_MIN - 0.05  # barely
    stickers_i[26] /= stickers_i[26].sum()
    emotion = torch.eye(e)[2:3] * 0.9 + 0.1 / e
    goodbye = torch.full((1, a), 0.4 / (a - 1))
    goodbye[0, farewell] = 0.6
    inform = torch.full((1, a), 0.1 / (a - 1))
    inform[0, labels.index("inform")] = 0.9
    for intention, expect in ((goodbye, True), (inform, False)):
        queries = QueryEncoding(query=torch.zeros(1, 4), emotion_probs=emotion, intention_probs=intention, features={})
        got = agreement_candidates(model, queries, stickers_e, stickers_i, [None], top_m=5)[0].tolist()
        assert got[:5] == agreement_candidates(model, queries, stickers_e, stickers_i, [None], top_m=5, act_m=0)[0].tolist()
        assert (25 in got) is expect and 26 not in got
