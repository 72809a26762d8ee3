"""Ranking metrics for the SRS benchmarks and the `evaluate` command.

`python -m training evaluate --data FILE.jsonl --predictions PRED.jsonl` prints the metrics as JSON.
Every item has exactly one relevant sticker (its answer), so MAP equals the mean reciprocal rank of the
answer. R@1, R@2, R@5, MAP are fractions in [0, 1]; macro-F1 is in percent, like the published TweetEval
numbers.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from training.data import DataError, SRSItem, load_srs


class PredictionError(ValueError):
    """Predictions that do not match the benchmark (missing ids, rankings that are not permutations)."""


@dataclass(frozen=True)
class Metrics:
    items: int
    map: float
    r_at_1: float
    r_at_2: float
    r_at_5: float
    macro_r_at_1_by_emotion: float | None  # None when no item carries an emotion
    r_at_1_by_emotion: dict[str, float]  # per-emotion R@1 behind the macro average
    macro_f1: float | None  # percent; None unless every item is ranked over the same full label set
    notes: dict[str, str] = field(default_factory=dict)  # why a metric is None


def answer_ranks(rankings: Sequence[Sequence[str]], answers: Sequence[str]) -> list[int]:
    """1-based position of each answer in its ranking; ValueError if an answer is absent."""
    if len(rankings) != len(answers):
        raise ValueError(f"{len(rankings)} rankings for {len(answers)} answers")
    ranks = []
    for i, (ranking, answer) in enumerate(zip(rankings, answers, strict=True)):
        try:
            ranks.append(list(ranking).index(answer) + 1)
        except ValueError:
            raise ValueError(f"ranking {i} does not contain its answer {answer!r}") from None
    return ranks


def mean_average_precision(ranks: Sequence[int]) -> float:
    """MAP with one relevant sticker per item: the mean reciprocal rank."""
    return sum(1.0 / r for r in ranks) / len(ranks)


def recall_at_k(ranks: Sequence[int], k: int) -> float:
    """Share of items whose answer is in the top k (1.0 when k is at least the number of candidates)."""
    return sum(r <= k for r in ranks) / len(ranks)


def macro_recall_at_1(ranks: Sequence[int], emotions: Sequence[str | None]) -> tuple[float | None, dict[str, float]]:
    """Mean over the emotions that occur of each emotion's R@1 (items without emotion are left out)."""
    by_emotion: dict[str, list[int]] = defaultdict(list)
    for rank, emotion in zip(ranks, emotions, strict=True):
        if emotion is not None:
            by_emotion[emotion].append(rank)
    per_emotion = {e: recall_at_k(r, 1) for e, r in sorted(by_emotion.items())}
    if not per_emotion:
        return None, {}
    return sum(per_emotion.values()) / len(per_emotion), per_emotion


def macro_f1(predicted: Sequence[str], answers: Sequence[str], labels: Sequence[str]) -> float:
    """Macro-F1 in percent of top-1 predictions over `labels` (F1 = 2TP / (2TP + FP + FN), 0 when undefined).

    Every label counts, even one that neither occurs nor is predicted (it scores 0), matching
    sklearn's f1_score(labels=labels, average="macro", zero_division=0).
    """
    tp: dict[str, int] = defaultdict(int)
    fp: dict[str, int] = defaultdict(int)
    fn: dict[str, int] = defaultdict(int)
    for p, a in zip(predicted, answers, strict=True):
        if p == a:
            tp[a] += 1
        else:
            fp[p] += 1
            fn[a] += 1
    scores = []
    for label in labels:
        denominator = 2 * tp[label] + fp[label] + fn[label]
        scores.append(2 * tp[label] / denominator if denominator else 0.0)
    return 100.0 * sum(scores) / len(scores)


def compute_metrics(rankings: Sequence[Sequence[str]], answers: Sequence[str],
                    emotions: Sequence[str | None] | None = None) -> Metrics:
    """All metrics for already-validated rankings (each a permutation of its item's candidates)."""
    if not rankings:
        raise ValueError("no items to evaluate")
    ranks = answer_ranks(rankings, answers)
    macro_r1, per_emotion = macro_recall_at_1(ranks, emotions or [None] * len(ranks))
    notes = {}
    if macro_r1 is None:
        notes["macro_r_at_1_by_emotion"] = "no item carries an emotion label"
    label_set = frozenset(rankings[0])
    f1 = None
    if len(label_set) < 2:
        notes["macro_f1"] = "items have fewer than two candidates"
    elif any(frozenset(r) != label_set for r in rankings):
        notes["macro_f1"] = ("candidate sets differ between items; macro-F1 needs every item ranked over "
                             "the same full label set")
    else:
        f1 = macro_f1([r[0] for r in rankings], answers, sorted(label_set))
    return Metrics(items=len(ranks), map=mean_average_precision(ranks), r_at_1=recall_at_k(ranks, 1),
                   r_at_2=recall_at_k(ranks, 2), r_at_5=recall_at_k(ranks, 5),
                   macro_r_at_1_by_emotion=macro_r1, r_at_1_by_emotion=per_emotion, macro_f1=f1, notes=notes)


def check_rankings(items: Sequence[SRSItem], predictions: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """The ranking of every item, in item order; PredictionError naming the ids that do not fit."""
    missing = [item.id for item in items if item.id not in predictions]
    if missing:
        raise PredictionError(f"no prediction for {len(missing)} item(s), e.g. {', '.join(missing[:5])}")
    known = {item.id for item in items}
    unknown = [i for i in predictions if i not in known]
    if unknown:
        raise PredictionError(f"predictions for {len(unknown)} id(s) not in the benchmark, "
                              f"e.g. {', '.join(unknown[:5])}")
    rankings = []
    for item in items:
        ranking = list(predictions[item.id])
        if len(ranking) != len(item.candidates) or set(ranking) != set(item.candidates):
            extra = sorted(set(ranking) - set(item.candidates))
            lacking = sorted(set(item.candidates) - set(ranking))
            raise PredictionError(
                f"ranking for {item.id!r} is not a permutation of its {len(item.candidates)} candidates "
                f"({len(ranking)} entries; not candidates: {extra}; candidates left out: {lacking})")
        rankings.append(ranking)
    return rankings


def evaluate(items: Sequence[SRSItem], predictions: Mapping[str, Sequence[str]]) -> Metrics:
    """Metrics of `predictions` (item id -> sticker ids, best first) on a benchmark."""
    rankings = check_rankings(items, predictions)
    return compute_metrics(rankings, [i.answer for i in items], [i.emotion for i in items])


def load_predictions(path: str | Path) -> dict[str, list[str]]:
    """`{"id": ..., "ranking": [...]}` lines; PredictionError with path:line on a bad line or repeated id."""
    path = Path(path)
    predictions: dict[str, list[str]] = {}
    with path.open(encoding="utf-8") as f:
        for line_number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise PredictionError(f"{path}:{line_number}: bad JSON: {e.msg}") from e
            if not isinstance(record, dict) or not isinstance(record.get("id"), str) \
                    or not isinstance(record.get("ranking"), list) \
                    or not all(isinstance(s, str) for s in record["ranking"]):
                raise PredictionError(f"{path}:{line_number}: expected {{\"id\": str, \"ranking\": [str, ...]}}")
            if record["id"] in predictions:
                raise PredictionError(f"{path}:{line_number}: repeated id {record['id']!r}")
            predictions[record["id"]] = record["ranking"]
    return predictions


def metrics_to_json(metrics: Metrics) -> dict[str, object]:
    return asdict(metrics)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True, help="benchmark file (JSON Lines)")
    parser.add_argument("--predictions", type=Path, required=True,
                        help='predictions file: {"id": ..., "ranking": [sticker ids, best first]} per line')


def run(args: argparse.Namespace) -> int:
    try:
        metrics = evaluate(load_srs(args.data), load_predictions(args.predictions))
    except (DataError, PredictionError, FileNotFoundError) as e:
        raise SystemExit(f"evaluate: {e}") from None
    print(json.dumps(metrics_to_json(metrics), indent=2, ensure_ascii=False))
    return 0
