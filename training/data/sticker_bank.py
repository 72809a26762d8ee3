"""Backbone features of the stickers a training run or a ranking needs, held in memory.

Row i < len(ids) is sticker ids[i] in its own art. Further rows hold other packs' art of the same emoji
(same stem, e.g. twemoji/1f62d for noto/1f62d); `variants[i]` lists them. Training swaps a candidate's
row for a variant with some probability, so the model reads emotion from the picture, not one pack.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from eigml.animation import Frames
from eigml.catalog import Catalog
from eigml.labels import EMOTIONS, emotion_index
from training.data.srs import SRSItem


@dataclass
class StickerBank:
    ids: list[str]
    index: dict[str, int]
    features: torch.Tensor  # (rows, T, H) backbone features, fp16 to halve memory
    variants: list[list[int]]

    def __len__(self) -> int:
        return len(self.ids)

    def rows(self, sticker_ids: Iterable[str]) -> torch.Tensor:
        """(N,) long rows of the given ids in their own art; KeyError names the first unknown id."""
        try:
            return torch.tensor([self.index[s] for s in sticker_ids], dtype=torch.long)
        except KeyError as exc:
            raise KeyError(f"sticker {exc.args[0]!r} is not in the sticker bank") from None

    def swap_styles(self, rows: torch.Tensor, prob: float, generator: torch.Generator) -> torch.Tensor:
        """Replace each row by a random variant of it with probability `prob` (rows without variants stay)."""
        if prob <= 0:
            return rows
        out = rows.clone()
        flat = out.view(-1)
        draws = torch.rand(flat.numel(), generator=generator)
        for j in torch.nonzero(draws < prob).flatten().tolist():
            row = int(flat[j])
            if row >= 0 and self.variants[row]:
                pick = int(torch.randint(len(self.variants[row]), (1,), generator=generator))
                flat[j] = self.variants[row][pick]
        return out


def emoji_key(catalog: Catalog, sticker_id: str) -> str:
    """The emoji a sticker draws, without variation selectors (packs disagree on FE0F); else its stem."""
    sticker = catalog[sticker_id]
    return sticker.emoji.replace("\ufe0f", "").replace("\ufe0e", "") if sticker.emoji else sticker.stem


def _same_emoji_index(catalog: Catalog, packs: Sequence[str]) -> dict[str, list[str]]:
    index: dict[str, list[str]] = {}
    for sticker_id in catalog.ids(packs):
        index.setdefault(emoji_key(catalog, sticker_id), []).append(sticker_id)
    return index


def build_sticker_bank(catalog: Catalog, sticker_ids: Sequence[str],
                       featurize: Callable[[Sequence[Image.Image | Frames]], torch.Tensor], *,
                       style_packs: Sequence[str] = (), batch_size: int = 64,
                       progress: bool = True) -> StickerBank:
    """Featurize `sticker_ids` (and their art in `style_packs`) with `featurize(list[PIL.Image]) -> (N,T,H)`."""
    ids = sorted(dict.fromkeys(sticker_ids))
    missing = [s for s in ids if s not in catalog]
    if missing:
        raise KeyError(f"{len(missing)} sticker ids are not in the catalogue {catalog.root}, e.g. {missing[:5]}")
    rows_ids = list(ids)
    variants: list[list[int]] = [[] for _ in ids]
    present = [p for p in style_packs if p in catalog.packs]  # a catalogue may lack some art packs
    same_art = _same_emoji_index(catalog, present) if present else {}
    for i, sticker_id in enumerate(ids):
        for other in same_art.get(emoji_key(catalog, sticker_id), ()):
            if other != sticker_id:
                variants[i].append(len(rows_ids))
                rows_ids.append(other)
    chunks = []
    for start in tqdm(range(0, len(rows_ids), batch_size), desc="sticker features", disable=not progress,
                      unit="batch"):
        images = [catalog.open_sticker(s) for s in rows_ids[start:start + batch_size]]
        with torch.inference_mode():
            chunks.append(featurize(images).to(torch.float16))
    features = torch.cat(chunks) if chunks else torch.empty(0)
    return StickerBank(ids=ids, index={s: i for i, s in enumerate(ids)}, features=features,
                       variants=variants + [[] for _ in range(len(rows_ids) - len(ids))])


def sticker_emotion_targets(bank: StickerBank, items: Sequence[SRSItem],
                            tag_stickers: Callable[[Sequence[str]], np.ndarray] | None = None) -> torch.Tensor:
    """(rows, E) emotion distribution of each bank row (zeros: unknown).

    From the emotions of the labelled items it answers; a sticker that answers none gets
    `tag_stickers(ids)` (e.g. an emotion tagger over its pack's names and tags), when given.
    A sticker's other-pack art (its variants) shares its distribution.
    """
    counts = torch.zeros(bank.features.shape[0], len(EMOTIONS))
    for item in items:
        e = emotion_index(item.emotion)
        if e is not None and item.answer in bank.index:
            counts[bank.index[item.answer], e] += 1
    unlabelled = [i for i in range(len(bank)) if counts[i].sum() == 0]
    if tag_stickers is not None and unlabelled:
        tagged = torch.as_tensor(tag_stickers([bank.ids[i] for i in unlabelled]), dtype=torch.float32)
        counts[unlabelled] = tagged
    for row, variants in enumerate(bank.variants):
        for v in variants:
            counts[v] = counts[row]
    total = counts.sum(dim=1, keepdim=True)
    return torch.where(total > 0, counts / total.clamp(min=1), counts)
