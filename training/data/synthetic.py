"""Training items made from the catalogue alone, for the default model on a machine without benchmark data.

Each sticker with a name or tags becomes short one-turn "dialogues" in English and Chinese (its name, a
few of its tags) whose answer is that sticker, among randomly drawn other stickers of the same pack.
Emotion labels come from an emotion tagger run over the sticker's own words, not from any benchmark.
A held-out share of stickers gives the dev split, so dev measures stickers never seen in training.
"""

from __future__ import annotations

import random

from eigml.catalog import Catalog
from eigml.dialogue import Dialogue, Turn
from training.data import SRSItem

# Feeling templates only make sense for faces and gestures; other stickers are named plainly.
FEELING_TEMPLATES = {"en": ("{text}", "I feel {text}", "{text}!", "that's so {text}", "lol {text}"),
                     "zh": ("{text}", "我{text}", "{text}！", "真是{text}", "太{text}了")}
PLAIN_TEMPLATES = {"en": ("{text}", "{text}!", "look, {text}"), "zh": ("{text}", "{text}！", "看，{text}")}
FEELING_CATEGORIES = {"smileys-emotion", "people-body"}


def _texts(names: dict[str, str], tags: dict[str, tuple[str, ...]], lang: str, rng: random.Random,
           category: str | None) -> list[str]:
    # shortcode-like tags ("flag-bw") read as nobody writes
    words = [w for w in (names.get(lang), *tags.get(lang, ())) if w and "-" not in w and "_" not in w]
    if not words:
        return []
    rng.shuffle(words)
    templates = (FEELING_TEMPLATES if category in FEELING_CATEGORIES else PLAIN_TEMPLATES)[lang]
    picks = words[:3]
    return [rng.choice(templates).format(text=w) for w in picks]


def catalog_items(catalog: Catalog, *, packs: tuple[str, ...] = ("noto",), num_candidates: int = 10,
                  dev_share: float = 0.05, seed: int = 0) -> tuple[list[SRSItem], list[SRSItem]]:
    """(train, dev) items over the stickers of `packs` that carry words; dev stickers never appear in train."""
    rng = random.Random(seed)
    ids = [s for s in catalog.ids(packs) if catalog[s].names or catalog[s].tags]
    if len(ids) < num_candidates:
        raise ValueError(f"the catalogue's packs {packs} have {len(ids)} described stickers; "
                         f"need at least {num_candidates}")
    order = list(ids)
    rng.shuffle(order)
    dev_ids = set(order[: max(1, int(dev_share * len(order)))])
    train: list[SRSItem] = []
    dev: list[SRSItem] = []
    for sticker_id in ids:
        sticker = catalog[sticker_id]
        for lang in ("en", "zh"):
            for n, text in enumerate(_texts(dict(sticker.names), dict(sticker.tags), lang, rng, sticker.category)):
                others = rng.sample([s for s in ids if s != sticker_id], num_candidates - 1)
                candidates = [sticker_id, *others]
                rng.shuffle(candidates)
                item = SRSItem(id=f"catalog-{sticker_id}-{lang}-{n}", lang=lang,
                               dialogue=Dialogue((Turn("B", text),), responder="A", lang=lang),
                               candidates=tuple(candidates), answer=sticker_id)
                (dev if sticker_id in dev_ids else train).append(item)
    rng.shuffle(train)
    return train, dev
