"""A greeting, goodbye or "miss you" said outright sets the reply's intention (eigml.intentions)."""

from __future__ import annotations

import pytest
import torch

from eigml.dialogue import Dialogue, Turn
from eigml.intentions import CUE_WEIGHT, UNSAID_SHARE, mirrored_act, with_act_cues

LABELS = ("affection", "farewell", "greeting", "inform", "thanks")


def one(text: str) -> Dialogue:
    return Dialogue((Turn("A", text),), responder="B")


@pytest.mark.parametrize(("text", "act"), [
    ("我要去机场了，拜拜！下个月见", "farewell"), ("好久不见！我回国啦", "greeting"), ("早上好呀宝贝", "greeting"),
    ("good night babe, sweet dreams", "farewell"), ("I miss you so much", "affection"), ("hello!", "greeting"),
    # a goodbye after thanks is still a goodbye (the first rule that matches is thanks)
    ("今天玩得很开心，谢谢招待，我先回去啦，拜拜", "farewell"), ("thanks for everything, see you soon!", "farewell"),
    # no mirrored act: thanks is answered with warmth, not thanks; news has no formula
    ("thank you so much", None), ("my grandma passed away last night", None), ("我被裁员了", None),
])
def test_the_latest_turn_says_the_act_outright(text: str, act: str | None) -> None:
    assert mirrored_act(one(text)) == act


def test_only_the_latest_turn_counts() -> None:
    assert mirrored_act(Dialogue((Turn("A", "bye!"), Turn("B", "wait, one more thing")))) is None
    assert mirrored_act(Dialogue(())) is None


def test_a_cue_takes_its_share() -> None:
    probs = torch.tensor([[0.1, 0.1, 0.1, 0.6, 0.1], [0.2, 0.2, 0.2, 0.2, 0.2]])
    out = with_act_cues([one("拜拜"), one("hi there")], probs, LABELS)
    expected_first = (1 - CUE_WEIGHT) * probs[0] + CUE_WEIGHT * torch.eye(5)[LABELS.index("farewell")]
    torch.testing.assert_close(out[0], expected_first)
    assert out[0].argmax().item() == LABELS.index("farewell") and out[0].sum().item() == pytest.approx(1.0)
    assert out[1].argmax().item() == LABELS.index("greeting")
    torch.testing.assert_close(probs[0], torch.tensor([0.1, 0.1, 0.1, 0.6, 0.1]))  # the input is not modified


def test_no_greeting_or_goodbye_is_read_into_a_message_that_says_neither() -> None:
    # "I'll pick you up at 7" read as a goodbye got 👋: unsaid, the two formulas keep a share and the rest rises
    probs = torch.tensor([[0.1, 0.5, 0.1, 0.2, 0.1]])
    out = with_act_cues([one("I'll pick you up at 7")], probs, LABELS)
    kept = probs[0].clone()
    kept[[LABELS.index("farewell"), LABELS.index("greeting")]] *= UNSAID_SHARE
    torch.testing.assert_close(out[0], kept / kept.sum())
    assert out[0].argmax().item() == LABELS.index("inform") and out[0].sum().item() == pytest.approx(1.0)
    # a message that says "I miss you" is answered with affection and no goodbye either
    out = with_act_cues([one("I miss you so much")], probs, LABELS)
    assert out[0].argmax().item() == LABELS.index("affection")
    assert out[0, LABELS.index("farewell")] < probs[0, LABELS.index("farewell")] * (1 - CUE_WEIGHT)


def test_a_model_without_the_act_is_left_alone() -> None:
    probs = torch.tensor([[0.3, 0.7]])
    torch.testing.assert_close(with_act_cues([one("bye!")], probs, ("inform", "question")), probs)
