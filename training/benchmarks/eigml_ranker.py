"""A trained EIGML model as a ranker of benchmark candidates (`rank --model CHECKPOINT`, training's dev pass).

Stickers come from an in-memory sticker bank (grown from the catalogue on demand); scores come from the
core's `eigml.rerank.rerank`, the same function the service reranks with.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from eigml.catalog import Catalog
from eigml.checkpoint import load_checkpoint
from eigml.dialogue import Dialogue
from eigml.model.eigml import EIGML
from eigml.model.interface import StickerEncoding
from eigml.rerank import rerank
from training.data import SRSItem
from training.data.sticker_bank import StickerBank, build_sticker_bank


class EIGMLRanker:
    """Ranks candidates with the full model (final SAMM score). Implements `Ranker` and `CandidateScorer`."""

    def __init__(self, model: EIGML, bank: StickerBank, catalog: Catalog | None = None,
                 cache_root: Path | None = None) -> None:
        self.model = model
        self.bank = bank
        self.catalog = catalog  # lets the bank grow for stickers it has not featurized yet
        self.cache_root = cache_root
        self._encoding: StickerEncoding | None = None

    def refresh(self) -> None:
        """Forget encoded stickers (call after the weights change)."""
        self._encoding = None

    def _ensure(self, sticker_ids: Sequence[str]) -> None:
        missing = sorted({s for s in sticker_ids if s not in self.bank.index})
        if not missing:
            return
        if self.catalog is None:
            raise KeyError(f"{len(missing)} stickers are not in the sticker bank, e.g. {missing[:5]}")
        featurize = (self.model.cached_image_features(self.cache_root) if self.cache_root
                     else self.model.image_features)
        self.bank = build_sticker_bank(self.catalog, self.bank.ids + missing, featurize, progress=False)
        self._encoding = None

    def _stickers(self) -> StickerEncoding:
        if self._encoding is None:
            with torch.inference_mode():
                self._encoding = self.model.encode_stickers(self.bank.features[: len(self.bank)])
        return self._encoding

    @torch.inference_mode()
    def score_candidates(self, dialogues: Sequence[Dialogue],
                         candidates: Sequence[Sequence[str]]) -> list[list[float]]:
        self._ensure([c for cands in candidates for c in cands])
        was_training = self.model.training
        self.model.eval()
        try:
            stickers = self._stickers()
            queries = self.model.encode_dialogues(dialogues)
            scores = rerank(self.model, queries, stickers, [self.bank.rows(c).numpy() for c in candidates])
        finally:
            self.model.train(was_training)
        return [s.tolist() for s in scores]

    def rank(self, items: Sequence[SRSItem]) -> list[list[str]]:
        scores = self.score_candidates([item.dialogue for item in items], [item.candidates for item in items])
        return [[c for _, c in sorted(zip(s, item.candidates, strict=True), key=lambda p: -p[0])]
                for s, item in zip(scores, items, strict=True)]


def load_checkpoint_ranker(path: Path, catalog: Catalog, cache_root: Path | None = None) -> EIGMLRanker:
    """The `rank --model CHECKPOINT` entry: a ranker whose sticker bank grows from `catalog` on demand."""
    model = load_checkpoint(Path(path), models_dir=cache_root / "models" if cache_root else None)
    empty = StickerBank(ids=[], index={}, features=torch.empty(0), variants=[])
    return EIGMLRanker(model, empty, catalog=catalog, cache_root=cache_root / "features" if cache_root else None)
