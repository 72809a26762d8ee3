"""A greeting, goodbye or "miss you" said outright sets the reply's intention (eigml.intentions)."""

from __future__ import annotations

import pytest
import torch

from eigml.dialogue import Dialogue, Turn
from eigml.intentions import CUE_WEIGHT, mirrored_act, with_act_cues

LABELS = ("affection", "farewell", "greeting", "inform", "thanks")


def one(text: str) -> Dialogue:
    return Dialogue((Turn("A", text),), responder="B")


@pytest.mark.parametrize(("text", "act"), [
    ("我要去机场了，拜拜！下个月见", "farewell"), ("好久不见！我回国啦", "greeting"), ("早上好呀宝贝", "greeting"),
    ("good night babe, sweet dreams", "farewell"), ("I miss you so much", "affection"), ("hello!", "greeting"),
    # no mirrored act: thanks is answered with warmth, not thanks; news has no formula
    ("thank you so much", None), ("my grandma passed away last night", None), ("我被裁员了", None),
])
def test_the_latest_turn_says_the_act_outright(text: str, act: str | None) -> None:
    assert mirrored_act(one(text)) == act


def test_only_the_latest_turn_counts() -> None:
    assert mirrored_act(Dialogue((Turn("A", "bye!"), Turn("B", "wait, one more thing")))) is None
    assert mirrored_act(Dialogue(())) is None


def test_a_cue_takes_its_share_and_others_stay() -> None:
    probs = torch.tensor([[0.1, 0.1, 0.1, 0.6, 0.1], [0.1, 0.1, 0.1, 0.6, 0.1], [0.2, 0.2, 0.2, 0.2, 0.2]])
    out = with_act_cues([one("拜拜"), one("the bus is late"), one("hi there")], probs, LABELS)
    expected_first = (1 - CUE_WEIGHT) * probs[0] + CUE_WEIGHT * torch.eye(5)[LABELS.index("farewell")]
    torch.testing.assert_close(out[0], expected_first)
    assert out[0].argmax().item() == LABELS.index("farewell") and out[0].sum().item() == pytest.approx(1.0)
    torch.testing.assert_close(out[1], probs[1])  # no cue: unchanged
    assert out[2].argmax().item() == LABELS.index("greeting")
    torch.testing.assert_close(probs[0], torch.tensor([0.1, 0.1, 0.1, 0.6, 0.1]))  # the input is not modified


def test_a_model_without_the_act_is_left_alone() -> None:
    probs = torch.tensor([[0.3, 0.7]])
    torch.testing.assert_close(with_act_cues([one("bye!")], probs, ("inform", "question")), probs)
