"""A tagged sticker does the act its names and tags say (👋 greets and says goodbye, 🙏 thanks); objects and
places tagged with a cue word, pictures of people together and untagged art keep their picture's reading."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from eigml.catalog import Sticker
from eigml.labels import INTENTIONS
from eigml.model.eigml import EIGML
from index.store import StickerArrays


def _sticker(stem: str, name: str, tags: tuple[str, ...], category: str | None) -> Sticker:
    return Sticker(id=f"p/{stem}", pack="p", stem=stem, path=Path(f"/nowhere/{stem}.png"), names={"en": name},
                   tags={"en": tags}, category=category)


@pytest.fixture
def act_model(tiny_model: EIGML) -> EIGML:
    # the tiny checkpoint knows only inform/question: give a copy the product's intention vocabulary
    model = copy.deepcopy(tiny_model).eval()
    torch.manual_seed(0)
    model.intention_labels = tuple(INTENTIONS)
    model.intention_head = torch.nn.Linear(model.config.dim, len(INTENTIONS))
    return model


def test_tags_that_mark_acts_move_the_intention_and_nothing_else(act_model: EIGML) -> None:
    from index.embed import TAG_ACT_WEIGHT, act_embedding, with_tag_acts

    stickers = [
        _sticker("wave", "waving hand", ("hand", "wave", "bye", "hello"), "people-body"),
        _sticker("pray", "folded hands", ("thanks", "pray", "please"), "people-body"),
        _sticker("beads", "prayer beads", ("pray", "religion"), "objects"),  # an object: no act
        _sticker("kiss", "kiss: woman, man", ("couple", "kiss"), "people-body"),  # people together: no act
        _sticker("think", "thinking face", ("thinking",), "smileys-emotion"),  # a question is no act
        _sticker("art", "", (), None),  # custom art without tags
    ]
    d, n = act_model.config.dim, len(stickers)
    rng = np.random.default_rng(0)
    arrays = StickerArrays(visual=rng.normal(size=(n, d)).astype(np.float32),
                           emotion=rng.normal(size=(n, d)).astype(np.float32),
                           intention=rng.normal(size=(n, d)).astype(np.float32),
                           emotion_probs=np.full((n, 8), 1 / 8, dtype=np.float32),
                           patches=np.zeros((n, 2, d), dtype=np.float16))
    out = with_tag_acts(act_model, arrays, stickers)
    labels = list(act_model.intention_labels)
    with torch.inference_mode():
        before = act_model.sticker_intention_logits(torch.from_numpy(arrays.intention)).softmax(-1)
        after = act_model.sticker_intention_logits(torch.from_numpy(out.intention)).softmax(-1)
        both = act_model.sticker_intention_logits(act_embedding(act_model, {"greeting": 1, "farewell": 1}))
    greet, bye = labels.index("greeting"), labels.index("farewell")
    assert both.softmax(-1)[[greet, bye]].tolist() == pytest.approx([0.4, 0.4], abs=1e-4)  # shared by weight
    assert after[0, greet] > before[0, greet] and after[0, bye] > before[0, bye]
    assert set(after[0].topk(2).indices.tolist()) == {greet, bye}
    # 🙏's tags mark thanks and request: both rise above every other act
    thanks, request = labels.index("thanks"), labels.index("request")
    assert set(after[1].topk(2).indices.tolist()) == {thanks, request}
    np.testing.assert_allclose(out.intention[0], (1 - TAG_ACT_WEIGHT) * arrays.intention[0] + TAG_ACT_WEIGHT
                               * act_embedding(act_model, {"greeting": 0.5, "farewell": 0.5}).numpy(), atol=1e-5)
    for row in (2, 3, 4, 5):
        np.testing.assert_array_equal(out.intention[row], arrays.intention[row])
    for name in ("visual", "emotion", "emotion_probs", "patches"):
        np.testing.assert_array_equal(getattr(out, name), getattr(arrays, name))


def test_a_model_without_acts_is_left_alone(tiny_model: EIGML) -> None:
    from index.embed import with_tag_acts

    sticker = _sticker("wave", "waving hand", ("bye", "hello"), "people-body")
    d = tiny_model.config.dim
    arrays = StickerArrays(visual=np.ones((1, d), np.float32), emotion=np.ones((1, d), np.float32),
                           intention=np.ones((1, d), np.float32), emotion_probs=np.ones((1, 8), np.float32) / 8,
                           patches=np.zeros((1, 2, d), np.float16))
    assert with_tag_acts(tiny_model, arrays, [sticker]) is arrays  # the tiny model knows inform/question only
