"""Sticker encodings for the index: backbone features (through the on-disk feature cache) -> EIGML heads;
and the words drawn on each sticker (OCR through the on-disk text cache), whose feeling is mixed into the
sticker's emotion and whose act ("谢谢你" thanks, "BYE BYE" farewell) into its intention."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from eigml.catalog import Catalog, Sticker
from eigml.dialogue import Dialogue, Turn
from eigml.intentions import intention_from_text, sticker_acts
from eigml.model.eigml import EIGML
from eigml.model.interface import StickerEncoding
from eigml.selection import NO_ACTS
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


# How sure words that do an act are of it ("谢谢你" thanks): the act's share of the intention distribution the
# words stand for, the rest spread over the other intentions, before the picture is mixed in.
WORD_ACT_PROB = 0.8


def act_embedding(model: EIGML, act: str | Mapping[str, float], prob: float = WORD_ACT_PROB) -> torch.Tensor:
    """(D,) an intention embedding that the model's intention head reads as `act` with probability `prob`
    (or as several acts, `{act: weight}`, sharing `prob` by weight); the rest is spread evenly.

    The head is linear (logits = W x + b, W of shape (A, D) with A < D), so W x + b = log p has exact
    solutions; this is the one of least norm. Mixing it into a sticker's intention embedding mixes the
    logits: head((1 - w) x + w x*) = (1 - w) head(x) + w log p."""
    head = model.intention_head
    labels = list(model.intention_labels)
    acts = {act: 1.0} if isinstance(act, str) else dict(act)
    missing = [a for a in acts if a not in labels]
    if head is None or missing or not acts:
        raise ValueError(f"the model has no intention {missing or act!r}")
    total = sum(acts.values())
    rest = len(labels) - len(acts)
    target = torch.full((len(labels),), (1 - prob) / rest if rest else 0.0, dtype=torch.float64)
    for name, share in acts.items():
        target[labels.index(name)] = prob * share / total
    target = target.clamp_min(1e-9) / target.clamp_min(1e-9).sum()
    weight, bias = head.weight.detach().double().cpu(), head.bias.detach().double().cpu()
    return (torch.linalg.pinv(weight) @ (target.log() - bias)).float()


# How much of a tagged sticker's intention comes from what its names and tags say it does (👋 "waving hand,
# bye, hello" greets and says goodbye; 🙏 "folded hands, thanks"), the rest from its picture. The model reads
# the picture's act loosely: the default read 👋 as goodbye at 0.14 and as greeting at 0.24, no more than a
# receipt (0.14), so a goodbye's act aspect could not find it (docs/results.md, 2026-12-07, eleventh session).
TAG_ACT_WEIGHT = 0.7
# Emoji groups whose stickers are reactions one sends (faces, hearts, hands, people gesturing; 🎉 🏆 among
# activities). Objects and places tagged with a cue word do no act: 📿 and 🕌 ("pray") are no thanks.
# Stickers of a pack without groups (custom art) count when their tags mark acts.
ACT_CATEGORIES = frozenset({"smileys-emotion", "people-body", "activities"})


def with_tag_acts(model: EIGML, arrays: StickerArrays, stickers: Sequence[Sticker], *,
                  weight: float = TAG_ACT_WEIGHT) -> StickerArrays:
    """`arrays` with the intention of each row whose sticker's names and tags mark acts
    (`eigml.intentions.sticker_acts`; not "inform" or "question", which no sticker performs, and nothing for
    pictures of people together, nor for objects and places: ACT_CATEGORIES) mixed with them:
    (1 - weight) * picture + weight * `act_embedding(acts)`. A pack without tags (custom art) is returned
    unchanged."""
    if model.intention_head is None:
        return arrays
    intention = arrays.intention.copy()
    cache: dict[tuple[tuple[str, float], ...], np.ndarray] = {}
    changed = False
    for row, sticker in enumerate(stickers):
        if sticker.category is not None and sticker.category not in ACT_CATEGORIES:
            continue
        acts = {a: w for a, w in sticker_acts(sticker).items()
                if a not in NO_ACTS and a in model.intention_labels}
        if not acts:
            continue
        key = tuple(sorted(acts.items()))
        if key not in cache:
            with torch.inference_mode():
                cache[key] = act_embedding(model, acts).numpy()
        intention[row] = (1 - weight) * intention[row] + weight * cache[key]
        changed = True
    if not changed:
        return arrays
    return StickerArrays(visual=arrays.visual, emotion=arrays.emotion, intention=intention,
                         emotion_probs=arrays.emotion_probs, patches=arrays.patches)


def with_text_feelings(model: EIGML, arrays: StickerArrays, texts: Sequence[str], *,
                       weight: float = TEXT_EMOTION_WEIGHT, batch_size: int = 64) -> StickerArrays:
    """`arrays` with each row that has words (`texts`, aligned with the rows) read through them as well as
    its picture, (1 - weight) * picture + weight * words:
    - emotion (embedding and distribution): the model's reading of the words as a one-turn message;
    - intention (embedding), where the words do an act by `eigml.intentions.intention_from_text` ("谢谢你"
      thanks, "bye bye" farewell; not "inform" or "question", which no sticker performs): an embedding the
      intention head reads as that act (`act_embedding`). The model's own intention head reads what a
      *reply* to a message does ("thank you" is answered with affection), not what the message does.
    Rows without words are returned unchanged; so are the visual vector and the patches."""
    rows = [i for i, text in enumerate(texts) if text and has_words(text)]
    if not rows:
        return arrays
    emotion, probs = arrays.emotion.copy(), arrays.emotion_probs.copy()
    intention = arrays.intention.copy()
    acts: dict[str, np.ndarray] = {}
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
        if model.intention_head is not None:
            for i in rows:
                act = intention_from_text(texts[i])
                if act in NO_ACTS or act not in model.intention_labels:
                    continue
                if act not in acts:
                    with torch.inference_mode():
                        acts[act] = act_embedding(model, act).numpy()
                intention[i] = (1 - weight) * intention[i] + weight * acts[act]
    finally:
        model.train(was_training)
    return StickerArrays(visual=arrays.visual, emotion=emotion, intention=intention, emotion_probs=probs,
                         patches=arrays.patches)
