"""The `lr-probe` baseline: logistic regression on frozen, mean-pooled text-encoder features.

A sticker's class is what its training answers share: their reply emotion where items are labelled
(xdd_*, cped_*: the emotion pools), else the sticker itself (tweeteval: 20 emoji). The probe learns
P(class | dialogue) on the training file beside the benchmark (class-balanced by default, since the
headline metrics are macro) and ranks each candidate by the probability of its class; a sticker that
answered nothing in training scores 0. Features are the encoder the benchmark models use (`e5-small` by
default, laid out as `TextEncoder` lays out a dialogue), unit length, cached on disk by file and encoder.
"""

from __future__ import annotations

import hashlib
import sys
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from eigml.dialogue import Dialogue
from eigml.model.text_encoder import TextEncoder, TextEncoderConfig
from training.data import SRSItem, load_srs

DEFAULT_ENCODER = TextEncoderConfig(name_or_path="e5-small", prefix="query: ", max_length=128,
                                    trainable=False)


class FeatureEncoder:
    """Dialogues -> (N, H) unit-length mean-pooled states of a frozen text encoder, cached by content."""

    def __init__(self, config: TextEncoderConfig = DEFAULT_ENCODER, models_dir: Path | None = None,
                 cache_dir: Path | None = None, batch_size: int = 64) -> None:
        self.config = config
        self.encoder = TextEncoder(config, models_dir=models_dir).eval()
        self.cache_dir = cache_dir
        self.batch_size = batch_size

    def _key(self, dialogues: Sequence[Dialogue]) -> str:
        digest = hashlib.sha256(self.config.model_dump_json().encode())
        for d in dialogues:
            digest.update(repr((d.responder, [(t.speaker, t.text) for t in d.turns])).encode())
        return digest.hexdigest()[:20]

    @torch.inference_mode()
    def encode(self, dialogues: Sequence[Dialogue], progress: bool = True) -> np.ndarray:
        path = self.cache_dir / f"{self._key(dialogues)}.npy" if self.cache_dir else None
        if path is not None and path.exists():
            return np.load(path)
        order = sorted(range(len(dialogues)), key=lambda i: sum(len(t.text) for t in dialogues[i].turns))
        out = np.zeros((len(dialogues), self.encoder.hidden_size), dtype=np.float32)
        for start in tqdm(range(0, len(order), self.batch_size), desc="lr-probe: encode", unit="batch",
                          disable=not progress, file=sys.stderr):
            index = order[start:start + self.batch_size]
            _, pooled = self.encoder(self.encoder.tokenize([dialogues[i] for i in index]))
            out[index] = torch.nn.functional.normalize(pooled, dim=-1).numpy()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path.with_suffix(".tmp.npy"), out)
            path.with_suffix(".tmp.npy").replace(path)
        return out


def sticker_classes(items: Sequence[SRSItem]) -> dict[str, str]:
    """Sticker id -> its class: the most common emotion among the items it answers, else itself."""
    votes: dict[str, Counter[str]] = defaultdict(Counter)
    for item in items:
        votes[item.answer][item.emotion if item.emotion is not None else item.answer] += 1
    return {sticker: counts.most_common(1)[0][0] for sticker, counts in votes.items()}


class LRProbeRanker:
    name = "lr-probe"

    def __init__(self, train_items: Sequence[SRSItem], features: FeatureEncoder, *, balanced: bool = True,
                 c: float = 1.0, max_train_items: int | None = None) -> None:
        from sklearn.linear_model import LogisticRegression

        items = list(train_items)[:max_train_items] if max_train_items else list(train_items)
        self.features = features
        self.classes = sticker_classes(items)
        labels = [self.classes[item.answer] for item in items]
        x = features.encode([item.dialogue for item in items])
        self.model = LogisticRegression(C=c, max_iter=2000, class_weight="balanced" if balanced else None)
        self.model.fit(x, labels)
        self.column = {label: i for i, label in enumerate(self.model.classes_)}

    def score(self, dialogues: Sequence[Dialogue], candidates: Sequence[Sequence[str]]) -> list[list[float]]:
        probs = self.model.predict_proba(self.features.encode(dialogues, progress=False))
        out = []
        for row, cands in zip(probs, candidates, strict=True):
            out.append([float(row[self.column[self.classes[s]]]) if s in self.classes else 0.0 for s in cands])
        return out

    def rank(self, items: Sequence[SRSItem]) -> list[list[str]]:
        from training.benchmarks.baselines import order_by_scores

        scores = self.score([item.dialogue for item in items], [item.candidates for item in items])
        return [order_by_scores(item.candidates, s, item.id, 0) for item, s in zip(items, scores, strict=True)]


def load_lr_probe(train_path: Path, cache_dir: Path | None) -> LRProbeRanker:
    features = FeatureEncoder(models_dir=cache_dir / "models" if cache_dir else None,
                              cache_dir=cache_dir / "lr_probe" if cache_dir else None)
    return LRProbeRanker(load_srs(train_path), features)
