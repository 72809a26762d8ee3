"""Sticker encodings for the index: backbone features (through the on-disk feature cache) -> EIGML heads;
and the words drawn on each sticker (OCR through the on-disk text cache), whose feeling is mixed into the
sticker's emotion."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from eigml.catalog import Catalog
from eigml.dialogue import Dialogue, Turn
from eigml.model.eigml import EIGML
from eigml.model.interface import StickerEncoding
from index.store import StickerArrays

Featurize = Callable[[Sequence[Any]], torch.Tensor]  # stills (PIL images) or animations (Frames) -> (N, T, H)


def to_arrays(encoding: StickerEncoding) -> StickerArrays:
    """Numpy rows as the index stores them: float32, patches float16."""
    def f32(t: torch.Tensor) -> np.ndarray:
        return t.detach().to("cpu", torch.float32).numpy()

    return StickerArrays(visual=f32(encoding.visual), emotion=f32(encoding.emotion),
                         intention=f32(encoding.intention), emotion_probs=f32(encoding.emotion_probs),
                         patches=encoding.patches.detach().to("cpu", torch.float16).numpy())


def empty_arrays(model: EIGML) -> StickerArrays:
    d, t = model.config.dim, 1 + model.config.patch_grid ** 2
    return StickerArrays(visual=np.zeros((0, d), np.float32), emotion=np.zeros((0, d), np.float32),
                         intention=np.zeros((0, d), np.float32),
                         emotion_probs=np.zeros((0, len(model.emotion_labels)), np.float32),
                         patches=np.zeros((0, t, d), np.float16))


def embed_stickers(model: EIGML, catalog: Catalog, sticker_ids: Sequence[str], *,
                   feature_cache: Path | None = None, batch_size: int = 64,
                   progress: bool = True) -> StickerArrays:
    """Rows in `sticker_ids` order, encoded in eval mode on the model's device.

    Backbone features come from the feature cache under `feature_cache` when given (and filled there),
    so re-indexing a catalogue costs only the cheap heads.
    """
    if not sticker_ids:
        return empty_arrays(model)
    featurize: Featurize = (model.cached_image_features(feature_cache) if feature_cache is not None
                            else model.image_features)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    parts = []
    try:
        for start in tqdm(range(0, len(sticker_ids), batch_size), desc="embedding stickers", unit="batch",
                          disable=not progress):
            images = [catalog.open_sticker(s) for s in sticker_ids[start:start + batch_size]]
            with torch.inference_mode():
                parts.append(to_arrays(model.encode_stickers(featurize(images).to(device))))
    finally:
        model.train(was_training)
    return StickerArrays.concat(parts)


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_texts(catalog: Catalog, sticker_ids: Sequence[str], checksums: Mapping[str, str], *,
               known: Mapping[str, str], text_cache: Path | None, progress: bool = True) -> tuple[dict[str, str], int]:
    """OCR text per sticker ("" when none) and how many images the OCR engine read.

    A sticker's text comes from `known` (image sha256 -> text, e.g. the parent index version's rows), else
    from the text cache under `text_cache`, else the engine reads it (and the cache keeps it).
    """
    from eigml.ocr import TextCache, sticker_texts_with_stats

    todo = [s for s in sticker_ids if checksums[s] not in known]
    cache = TextCache.under(text_cache) if text_cache is not None else None
    read, count = sticker_texts_with_stats(catalog, todo, cache=cache, checksums=checksums, progress=progress)
    return {s: known[checksums[s]] if checksums[s] in known else read[s] for s in sticker_ids}, count


# How much of a worded sticker's emotion comes from its words ("气死我了", "BYE BYE") rather than its picture:
# drawn text says the feeling outright, while art in an unseen style is read only loosely.
TEXT_EMOTION_WEIGHT = 0.7
_WORD = re.compile(r"\w", re.UNICODE)


def has_words(text: str) -> bool:
    """At least two letters, digits or CJK characters: OCR noise ("!!", a stray mark) carries no feeling."""
    return len(_WORD.findall(text)) >= 2


def with_text_feelings(model: EIGML, arrays: StickerArrays, texts: Sequence[str], *,
                       weight: float = TEXT_EMOTION_WEIGHT, batch_size: int = 64) -> StickerArrays:
    """`arrays` with the emotion embedding and distribution of each row that has words (`texts`, aligned
    with the rows) mixed with the model's reading of those words as a one-turn message:
    (1 - weight) * picture + weight * words. Rows without words are returned unchanged; so are the visual
    vector, the intention embedding and the patches."""
    rows = [i for i, text in enumerate(texts) if text and has_words(text)]
    if not rows:
        return arrays
    emotion, probs = arrays.emotion.copy(), arrays.emotion_probs.copy()
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(rows), batch_size):
            chunk = rows[start:start + batch_size]
            with torch.inference_mode():
                read = model.encode_dialogues([Dialogue((Turn("A", texts[i].strip()),)) for i in chunk])
            idx = np.asarray(chunk)
            emotion[idx] = (1 - weight) * emotion[idx] + weight * read.features["emotion"].float().numpy()
            probs[idx] = (1 - weight) * probs[idx] + weight * read.emotion_probs.float().numpy()
    finally:
        model.train(was_training)
    return StickerArrays(visual=arrays.visual, emotion=emotion, intention=arrays.intention, emotion_probs=probs,
                         patches=arrays.patches)
