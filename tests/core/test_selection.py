"""The served order: xQuAD over emotions and one sticker per emoji family (eigml.selection)."""

from __future__ import annotations

import numpy as np
import pytest

from eigml.selection import act_aspects, diverse_first, emoji_family, feeling_aspects

# emotions: 0 none, 1 sadness, 2 anger (a three-emotion toy space)
SAD, ANGRY, OBJECT = [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]


def test_no_diversity_and_no_families_is_the_score_order() -> None:
    rows = np.array([10, 11, 12, 13])
    scores = np.array([0.2, 0.9, 0.5, 0.9])
    probs = np.array([SAD, SAD, ANGRY, OBJECT])
    got = diverse_first(rows, scores, probs, np.array([0.0, 0.5, 0.5]), 3, diversity=0.0)
    assert got.tolist() == [1, 3, 2]  # ties by row, as best_first


def test_a_torn_dialogue_gets_both_feelings_instead_of_copies_of_one() -> None:
    """Five hugs score highest, but the dialogue is as likely angry as sad: an angry face makes the top 3."""
    rows = np.arange(6)
    scores = np.array([0.60, 0.59, 0.58, 0.57, 0.56, 0.50])
    probs = np.array([SAD] * 5 + [ANGRY])
    torn = np.array([0.0, 0.5, 0.5])
    assert 5 not in diverse_first(rows, scores, probs, torn, 3, diversity=0.0).tolist()
    assert diverse_first(rows, scores, probs, torn, 3, diversity=0.5).tolist()[:2] == [0, 5]


LABELS = ("none", "sadness", "anger")


def test_feeling_aspects_leave_none_out() -> None:
    assert feeling_aspects(np.array([0.5, 0.3, 0.2]), LABELS).tolist() == pytest.approx([0.0, 0.6, 0.4])
    assert feeling_aspects(np.array([1.0, 0.0, 0.0]), LABELS).tolist() == [0.0, 0.0, 0.0]
    assert feeling_aspects(np.array([0.5, 0.3, 0.2]), ("like", "sadness", "anger")).tolist() == \
        pytest.approx([0.5, 0.3, 0.2])  # a label set without "none" is left as it is


def test_a_dialogue_read_as_none_spends_its_slate_on_feelings() -> None:
    """Read as none (0.45) but maybe sad (0.35) or angry (0.2), with neutral stickers (mostly none, like 💭)
    scoring highest. With "none" as an aspect, covering it puts a neutral sticker first, the slot every
    dialogue read as none gives the same neutral sticker; without it, the slate shows the likely feelings."""
    rows = np.arange(4)
    neutral = [0.8, 0.1, 0.1]
    scores = np.array([0.60, 0.59, 0.58, 0.50])
    probs = np.array([neutral, neutral, ANGRY, SAD])
    q = np.array([0.45, 0.35, 0.20])
    assert diverse_first(rows, scores, probs, q, 2, diversity=0.5).tolist() == [0, 3]
    assert diverse_first(rows, scores, probs, feeling_aspects(q, LABELS), 2, diversity=0.5).tolist() == [3, 2]
    # only "none": no feeling to cover, the scores' order
    assert diverse_first(rows, scores, probs, feeling_aspects(np.array([1.0, 0.0, 0.0]), LABELS), 3,
                         diversity=0.5).tolist() == [0, 1, 2]


def test_a_sure_dialogue_keeps_its_feeling() -> None:
    """When the dialogue is sure it is sad, covering other emotions earns nothing: sad stickers stay on top."""
    rows = np.arange(4)
    scores = np.array([0.60, 0.59, 0.58, 0.50])
    probs = np.array([SAD, SAD, SAD, ANGRY])
    sure = np.array([0.0, 1.0, 0.0])
    assert diverse_first(rows, scores, probs, sure, 3, diversity=0.5).tolist() == [0, 1, 2]


def test_one_sticker_per_family_while_others_are_left() -> None:
    rows = np.arange(4)
    scores = np.array([0.9, 0.8, 0.7, 0.1])
    probs = np.array([SAD, SAD, SAD, SAD])
    q = np.array([0.0, 1.0, 0.0])
    families = ["👯", "👯", None, "👋"]
    assert diverse_first(rows, scores, probs, q, 3, diversity=0.0, families=families).tolist() == [0, 2, 3]
    # fewer distinct families than top_k: the rest are filled by score
    assert diverse_first(rows, scores, probs, q, 4, diversity=0.0,
                         families=["a", "a", "a", "a"]).tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("top_k", [0, 1, 10])
def test_top_k_bounds(top_k: int) -> None:
    rows = np.arange(3)
    got = diverse_first(rows, np.array([0.3, 0.2, 0.1]), np.array([SAD, ANGRY, OBJECT]),
                        np.array([0.2, 0.4, 0.4]), top_k, diversity=0.5)
    assert len(got) == min(top_k, 3) and len(set(got.tolist())) == len(got)


def test_emoji_family_drops_gender_skin_tone_and_variation_selector() -> None:
    assert emoji_family("👯\u200d♀️") == emoji_family("👯\u200d♂️") == emoji_family("👯") == "👯"
    assert emoji_family("👋🏽") == "👋"
    assert emoji_family("❤️") == "❤"
    assert emoji_family("🧑\u200d🦼") != emoji_family("👨\u200d🦼")
    assert emoji_family(None) is None and emoji_family("") is None


def test_a_likely_farewell_gets_a_wave_among_its_feelings() -> None:
    """Read as a farewell (0.8) whose feeling is fondness: hearts score highest, and by feelings alone the
    slate is all hearts. With the reply's acts as aspects (pick_hits: feelings and acts side by side, each by
    its probability), the wave comes in second, after the best heart. A reply read as "inform" or
    "question" asks for no act: its slate stays the feelings' one."""
    import torch

    from eigml.rerank import pick_hits

    emotions, intentions = ["none", "like", "sadness"], ["inform", "question", "farewell", "thanks"]
    rows = np.arange(4)
    scores = np.array([0.9, 0.85, 0.8, 0.7])
    heart, wave = [0.0, 0.9, 0.1], [0.5, 0.3, 0.2]
    sticker_emotions = torch.tensor([heart, heart, heart, wave])
    sticker_acts = torch.tensor([[0.4, 0.2, 0.1, 0.3]] * 3 + [[0.1, 0.0, 0.9, 0.0]])
    fond = torch.tensor([0.3, 0.6, 0.1])
    families = np.array(["💗", "💖", "💘", "👋"], dtype=object)

    def slate(intention: list[float] | None) -> list[int]:
        kwargs = {} if intention is None else {"sticker_intention_probs": sticker_acts,
                                               "query_intention": torch.tensor(intention),
                                               "intention_labels": intentions}
        return pick_hits(rows, scores, sticker_emotions, fond, families, 3, diversity=0.5, one_per_emoji=True,
                         emotion_labels=emotions, **kwargs).tolist()

    assert slate(None) == [0, 1, 2]
    assert slate([0.1, 0.0, 0.8, 0.1]) == [0, 3, 1]
    assert slate([0.7, 0.3, 0.0, 0.0]) == [0, 1, 2]
    assert act_aspects(np.array([0.1, 0.2, 0.6, 0.1]), intentions).tolist() == [0.0, 0.0, 0.6, 0.1]


def test_a_goodbye_said_cheerfully_keeps_a_wave_in_second_place() -> None:
    """"我到家了，今天玩得好开心，下次再约呀，拜拜": happiness 0.83, farewell 0.56. Happy faces agree with the
    feeling at ~0.8 and score far above the wave (its intention split between hello and goodbye), so by the
    scores and the aspects alone the slate is five happy faces. The reply returns a goodbye in kind: the best
    sticker that performs it takes the second place. Not when a pick already waves, not when the likeliest
    act is no formula (congratulations) or below ACT_SLOT_MIN, and never a second sticker of a picked family."""
    import torch

    from eigml.rerank import pick_hits
    from eigml.selection import slot_act, with_act_slot

    emotions, intentions = ["none", "happiness"], ["inform", "farewell", "greeting", "congratulations"]
    rows = np.arange(6)
    scores = np.array([0.47, 0.46, 0.44, 0.43, 0.21, 0.30])
    happy, wave = [0.05, 0.95], [0.5, 0.5]
    sticker_emotions = torch.tensor([happy] * 4 + [wave, happy])
    sticker_acts = torch.tensor([[0.1, 0.0, 0.0, 0.9]] * 4 + [[0.0, 0.32, 0.38, 0.3], [0.1, 0.0, 0.0, 0.9]])
    cheerful = torch.tensor([0.1, 0.9])
    families = np.array(["😀", "🥳", "😛", "😃", "👋", "😀"], dtype=object)

    def slate(intention: list[float]) -> list[int]:
        return pick_hits(rows, scores, sticker_emotions, cheerful, families, 4, diversity=0.5, one_per_emoji=True,
                         emotion_labels=emotions, sticker_intention_probs=sticker_acts,
                         query_intention=torch.tensor(intention), intention_labels=intentions).tolist()

    assert slate([0.01, 0.56, 0.02, 0.41]) == [0, 4, 1, 2]  # the wave second, the fourth face dropped
    assert slate([0.01, 0.45, 0.02, 0.52]) == [0, 1, 2, 3]  # congratulations is likeliest: no slot
    assert slate([0.30, 0.45, 0.05, 0.20]) == [0, 1, 2, 3]  # a goodbye below ACT_SLOT_MIN: no slot
    assert slot_act(np.array([0.01, 0.56, 0.02, 0.41]), intentions, ("farewell", "greeting")) == 1
    assert slot_act(np.array([0.01, 0.56, 0.02, 0.41]), intentions, ("greeting",)) is None
    performs = sticker_acts[:, 1].numpy()
    assert with_act_slot(np.array([0, 4, 1]), scores, performs, families).tolist() == [0, 4, 1]  # waves already
    assert with_act_slot(np.array([0, 1]), scores, np.zeros(6), families).tolist() == [0, 1]  # nobody waves
    assert with_act_slot(np.array([0, 1]), scores, performs, families, top_k=3).tolist() == [0, 4, 1]  # room left
    # the only performer shares a family with the first pick: passed over
    assert with_act_slot(np.array([0, 1, 2]), scores, np.array([0, 0, 0, 0, 0, 0.5]), families).tolist() == [0, 1, 2]
