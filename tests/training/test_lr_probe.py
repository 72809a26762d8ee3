"""The lr-probe baseline's logic on features made by hand: classes from training answers, candidates ranked
by the probability of their class."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from eigml.dialogue import Dialogue, Turn
from training.benchmarks.lr_probe import LRProbeRanker, sticker_classes
from training.data import SRSItem

WORDS = {"sad": 0, "happy": 1, "angry": 2}


class WordFeatures:
    """One-hot of the feeling word in the last turn (what a frozen encoder would separate easily)."""

    def encode(self, dialogues: Sequence[Dialogue], progress: bool = True) -> np.ndarray:
        out = np.zeros((len(dialogues), len(WORDS)), dtype=np.float32)
        for i, d in enumerate(dialogues):
            out[i, WORDS[d.turns[-1].text.split()[-1]]] = 1.0
        return out


def _item(i: int, word: str, answer: str, emotion: str | None) -> SRSItem:
    return SRSItem(id=f"t{i}", lang="en", dialogue=Dialogue((Turn("A", f"I am {word}"),)),
                   candidates=("s/sad1", "s/happy1", "s/angry1", "s/new"), answer=answer, emotion=emotion)


def test_classes_are_emotions_where_labelled_else_the_sticker_itself() -> None:
    items = [_item(0, "sad", "s/sad1", "sadness"), _item(1, "sad", "s/sad1", "sadness"),
             _item(2, "happy", "s/happy1", None)]
    assert sticker_classes(items) == {"s/sad1": "sadness", "s/happy1": "s/happy1"}


def test_candidates_rank_by_their_class_probability() -> None:
    train = [_item(i, w, f"s/{w}1", e) for i, (w, e) in enumerate(
        [("sad", "sadness"), ("happy", "happiness"), ("angry", "anger")] * 5)]
    probe = LRProbeRanker(train, WordFeatures())  # type: ignore[arg-type]
    for word in WORDS:
        ranking = probe.rank([_item(99, word, f"s/{word}1", None)])[0]
        assert ranking[0] == f"s/{word}1"
        assert ranking[-1] == "s/new"  # never an answer in training: probability 0
