"""The recommender's candidates with a distribution-SAMM model: visual hits plus the rows that agree most
with the dialogue's emotion/intention, never outside the request's packs or excluded ids."""

from __future__ import annotations

import copy
from typing import Any

import torch

from eigml.dialogue import Dialogue, Turn
from service.recommender import Recommender, RecommendRequest


def test_agreement_candidates_join_the_visual_ones_within_packs_and_excludes(tiny_model: Any, torch_encoder: Any,
                                                                            tiny_index: Any) -> None:
    model = copy.deepcopy(tiny_model)
    model.config.samm.similarity = "distribution"  # same SAMM module, agreement of distributions
    visual_only = Recommender(tiny_model, torch_encoder, tiny_index, candidates=3)
    hybrid = Recommender(model, torch_encoder, tiny_index, candidates=3)
    dialogue = Dialogue((Turn("A", "my dog died, I am heartbroken"),), responder="B")
    excluded = tiny_index.sticker(0).id
    request = RecommendRequest(dialogue, 3, ("noto",), (excluded,))
    with torch.inference_mode():
        queries = model.encode_dialogues([dialogue])
    visual = visual_only._retrieve(visual_only._loaded, queries, [request])[0]
    rows = hybrid._retrieve(hybrid._loaded, queries, [request])[0]
    assert rows[: len(visual)].tolist() == visual.tolist()  # the visual hits first, unchanged
    assert len(rows) > len(visual) and len(set(rows.tolist())) == len(rows)
    assert all(tiny_index.sticker(int(r)).pack == "noto" for r in rows)
    assert excluded not in {tiny_index.sticker(int(r)).id for r in rows}
    result = hybrid.recommend_many([request])[0]
    assert result.hits and all(h.pack == "noto" and h.sticker_id != excluded for h in result.hits)
