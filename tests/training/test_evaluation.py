"""Metrics against hand-computed values and sklearn; prediction validation errors."""

from __future__ import annotations

import json
import random

import pytest
from sklearn.metrics import f1_score

from eigml.dialogue import Dialogue, Turn
from training.benchmarks.evaluation import (
    PredictionError,
    compute_metrics,
    evaluate,
    load_predictions,
    macro_f1,
    macro_recall_at_1,
    mean_average_precision,
    recall_at_k,
)
from training.data import SRSItem


def _item(item_id: str, candidates: list[str], answer: str, emotion: str | None = None) -> SRSItem:
    return SRSItem(id=item_id, lang="en", dialogue=Dialogue((Turn("A", "hi"),), "B", "en"),
                   candidates=tuple(candidates), answer=answer, emotion=emotion)


def test_map_and_recall_hand_computed() -> None:
    # answers at ranks 1, 3, 10 of 10 candidates
    c = [f"s{i}" for i in range(10)]
    rankings = [c, c, c]
    answers = ["s0", "s2", "s9"]
    m = compute_metrics(rankings, answers)
    assert m.items == 3
    assert m.map == pytest.approx((1 + 1 / 3 + 1 / 10) / 3)
    assert m.r_at_1 == pytest.approx(1 / 3)
    assert m.r_at_2 == pytest.approx(1 / 3)
    assert m.r_at_5 == pytest.approx(2 / 3)
    assert m.macro_r_at_1_by_emotion is None and "emotion" in m.notes["macro_r_at_1_by_emotion"]


def test_one_candidate_versus_twenty() -> None:
    one = compute_metrics([["a"]], ["a"])
    assert (one.map, one.r_at_1, one.r_at_2, one.r_at_5) == (1.0, 1.0, 1.0, 1.0)
    twenty = [f"s{i}" for i in range(20)]
    last = compute_metrics([twenty], ["s19"])
    assert last.map == pytest.approx(1 / 20)
    assert (last.r_at_1, last.r_at_2, last.r_at_5) == (0.0, 0.0, 0.0)
    sixth = compute_metrics([twenty], ["s5"])
    assert sixth.map == pytest.approx(1 / 6) and sixth.r_at_5 == 0.0


def test_recall_at_k_with_fewer_candidates_than_k() -> None:
    # 3 candidates, answer last: R@5 must be 1.0 (k >= number of candidates), R@2 0.0
    m = compute_metrics([["a", "b", "c"]], ["c"])
    assert m.r_at_5 == 1.0 and m.r_at_2 == 0.0 and m.map == pytest.approx(1 / 3)
    assert recall_at_k([2], 2) == 1.0 and recall_at_k([3], 2) == 0.0


def test_macro_recall_over_unequal_emotion_counts() -> None:
    # happiness: 4 items, 3 hits (0.75); sadness: 1 item, 0 hits (0.0); anger: 2 items, 1 hit (0.5)
    ranks = [1, 1, 1, 2, 4, 1, 3, 1]
    emotions = ["happiness"] * 4 + ["sadness", "anger", "anger", None]
    macro, per = macro_recall_at_1(ranks, emotions)
    assert per == {"anger": 0.5, "happiness": 0.75, "sadness": 0.0}
    assert macro == pytest.approx((0.75 + 0.0 + 0.5) / 3)
    # micro R@1 over the same labelled items differs: 4/7
    assert recall_at_k(ranks[:7], 1) == pytest.approx(4 / 7)


def test_macro_f1_hand_computed() -> None:
    labels = ["x", "y", "z"]
    answers = ["x", "x", "y", "z"]
    predicted = ["x", "y", "y", "y"]
    # x: tp1 fp0 fn1 -> 2/3; y: tp1 fp2 fn0 -> 2/4; z: tp0 fp0 fn1 -> 0
    assert macro_f1(predicted, answers, labels) == pytest.approx(100 * (2 / 3 + 1 / 2 + 0) / 3)


def test_macro_f1_matches_sklearn() -> None:
    rng = random.Random(3)
    labels = [f"e{i}" for i in range(20)]
    answers = [rng.choice(labels[:15]) for _ in range(300)]  # e15..e19 never occur
    predicted = [a if rng.random() < 0.4 else rng.choice(labels[:18]) for a in answers]
    expected = 100 * f1_score(answers, predicted, labels=labels, average="macro", zero_division=0)
    assert macro_f1(predicted, answers, labels) == pytest.approx(expected)


def test_macro_f1_only_over_one_full_label_set() -> None:
    labels = ["a", "b", "c"]
    full = compute_metrics([["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"]], ["a", "a", "c"])
    assert full.macro_f1 == pytest.approx(macro_f1(["a", "b", "c"], ["a", "a", "c"], labels))
    partial = compute_metrics([["a", "b"], ["b", "c"]], ["a", "c"])
    assert partial.macro_f1 is None and "same full label set" in partial.notes["macro_f1"]


def test_evaluate_rejects_bad_predictions() -> None:
    items = [_item("i1", ["a", "b", "c"], "b"), _item("i2", ["a", "b"], "a")]
    good = {"i1": ["b", "a", "c"], "i2": ["b", "a"]}
    m = evaluate(items, good)
    assert m.r_at_1 == 0.5 and m.map == pytest.approx(0.75)
    with pytest.raises(PredictionError, match="i2"):
        evaluate(items, {"i1": ["b", "a", "c"]})
    with pytest.raises(PredictionError, match="'i1'.*not a permutation"):
        evaluate(items, {"i1": ["b", "a"], "i2": ["a", "b"]})
    with pytest.raises(PredictionError, match="'i1'"):
        evaluate(items, {"i1": ["b", "a", "d"], "i2": ["a", "b"]})
    with pytest.raises(PredictionError, match="not in the benchmark"):
        evaluate(items, {**good, "zzz": ["a"]})


def test_load_predictions_errors(tmp_path) -> None:
    path = tmp_path / "pred.jsonl"
    path.write_text(json.dumps({"id": "a", "ranking": ["x"]}) + "\n" + json.dumps({"id": "a", "ranking": ["x"]}) + "\n")
    with pytest.raises(PredictionError, match=r"pred.jsonl:2: repeated id"):
        load_predictions(path)
    path.write_text('{"id": "a", "ranking": "x"}\n')
    with pytest.raises(PredictionError, match=r"pred.jsonl:1:"):
        load_predictions(path)


def test_mean_average_precision_is_mrr() -> None:
    assert mean_average_precision([1, 2, 4]) == pytest.approx((1 + 0.5 + 0.25) / 3)
