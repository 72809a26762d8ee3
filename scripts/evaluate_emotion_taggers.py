"""Accuracy and macro-F1 of the emotion taggers against the human labels of the benchmark's context turns.

    STICKERS_DATA_DIR=../shared/data python scripts/evaluate_emotion_taggers.py

Each distinct context turn (dialogue, position) is scored once; the tagger's argmax is the prediction.
Gold labels are mapped onto EMOTIONS (neutral -> none; CPED's finer labels as below; CPED's
"negative-other" names no emotion and is left out). No benchmark has "like", so a "like" prediction
counts as happiness. Macro-F1 averages over the seven gold classes (none + six emotions).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from eigml.labels import EMOTION_INDEX, EMOTIONS, emotion_index
from eigml.paths import Paths
from training.data.emotion_taggers import CnsentiTagger, EmotionTagger, EnglishTagger

CPED_TO_EMOTION = {"happy": "happiness", "relaxed": "happiness", "positive-other": "happiness",
                   "grateful": "happiness", "depress": "sadness", "worried": "fear", "astonished": "surprise"}
CLASSES = [EMOTION_INDEX[e] for e in EMOTIONS if e != "like"]


def labelled_turns(path: Path) -> Iterator[tuple[str, int]]:
    seen: set[tuple[str, int]] = set()
    with path.open(encoding="utf-8") as f:
        for line in f:
            item = json.loads(line)
            dialogue = item["id"].rsplit("-", 1)[0]
            for position, (turn, label) in enumerate(zip(item["context"], item["context_emotions"], strict=True)):
                if (dialogue, position) in seen:
                    continue
                seen.add((dialogue, position))
                index = emotion_index(CPED_TO_EMOTION.get(label, label))
                if index is not None:
                    yield turn["text"], index


def scores(gold: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    predicted = np.where(predicted == EMOTION_INDEX["like"], EMOTION_INDEX["happiness"], predicted)
    f1 = []
    for c in CLASSES:
        tp = np.sum((predicted == c) & (gold == c))
        denominator = np.sum(predicted == c) + np.sum(gold == c)
        f1.append(2 * tp / denominator if denominator else 0.0)
    emotional = [f for c, f in zip(CLASSES, f1, strict=True) if c != EMOTION_INDEX["none"]]
    return {"accuracy": float(np.mean(predicted == gold)), "macro_f1": float(np.mean(f1)),
            "emotion_macro_f1": float(np.mean(emotional)),
            **{f"f1_{EMOTIONS[c]}": float(f) for c, f in zip(CLASSES, f1, strict=True)}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None, help="default: $STICKERS_DATA_DIR/srs")
    args = parser.parse_args(argv)
    srs = args.data_dir or Paths.from_env().srs_dir
    english: dict[str, EmotionTagger] = {
        "english (lexicon only, default)": EnglishTagger(positive_threshold=None),
        "english (+ VADER >= 0.05)": EnglishTagger(positive_threshold=0.05),
        "english (+ VADER >= 0.5)": EnglishTagger(positive_threshold=0.5),
    }
    chinese: dict[str, EmotionTagger] = {"cnsenti": CnsentiTagger()}
    runs = [("xdd_en_dev.jsonl", english), ("xdd_zh_dev.jsonl", chinese), ("cped_valid.jsonl", chinese)]
    per_class = " / ".join(EMOTIONS[c][:4] for c in CLASSES)
    print(f"| file | tagger | turns | accuracy | macro-F1 (7) | emotion macro-F1 (6) | F1 {per_class} |")
    print("|---|---|---|---|---|---|---|")
    for name, taggers in runs:
        path = srs / name
        if not path.exists():
            print(f"skipping {path}: not found", file=sys.stderr)
            continue
        texts, gold_list = zip(*labelled_turns(path), strict=True)
        gold = np.array(gold_list)
        rows = {"always none": np.full(len(gold), EMOTION_INDEX["none"])}
        rows |= {label: tagger.tag(list(texts)).argmax(axis=1) for label, tagger in taggers.items()}
        for label, predicted in rows.items():
            s = scores(gold, predicted)
            print(f"| {name} | {label} | {len(gold)} | {s['accuracy']:.3f} | {s['macro_f1']:.3f} | "
                  f"{s['emotion_macro_f1']:.3f} | "
                  + " / ".join(f"{s['f1_' + EMOTIONS[c]]:.2f}" for c in CLASSES) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
