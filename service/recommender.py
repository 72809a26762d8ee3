"""The recommendation pipeline, free of any web framework: encode -> retrieve -> rerank -> top_k hits.

`Recommender.recommend_many` serves a micro-batch: dialogue encodings come from the cache or one batched
encoder call, each request retrieves its top `candidates` stickers from the index (its own pack filter and
exclusions), and one `eigml.rerank.rerank` call (the function `rank`, training and the command-line
recommender also call) reranks every request's candidates with the full model. The index reference is read
once per batch, so a hot swap (`swap_index`) never changes the index under a batch in flight.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol
from urllib.parse import quote

import numpy as np
import torch

from eigml.dialogue import Dialogue
from eigml.model.eigml import EIGML
from eigml.model.interface import QueryEncoding, StickerEncoding
from eigml.rerank import (
    agreement_candidates,
    agreement_retrieval,
    pick_hits,
    rerank,
    sticker_intention_probs,
)
from eigml.selection import DIVERSITY, emoji_family
from service.encodings import encoding_rows, pack_encoding, stack_rows, unpack_encoding

Stage = Literal["encode", "retrieve", "rerank"]


class QueryEncoderLike(Protocol):
    """`eigml.export.QueryEncoder`: ONNX Runtime or PyTorch, same fields as `EIGML.encode_dialogues`."""

    @property
    def backend(self) -> str: ...

    def encode(self, dialogues: Sequence[Dialogue]) -> QueryEncoding: ...


class StickerInfoLike(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def image_path(self) -> Path: ...
    @property
    def pack(self) -> str: ...
    @property
    def name(self) -> str | None: ...
    @property
    def emoji(self) -> str | None: ...
    @property
    def emotion(self) -> str: ...


class SearchIndex(Protocol):
    """`index.search.StickerIndex`: inner-product search over `StickerEncoding.visual`, versioned."""

    version: str
    model_version: str
    ids: list[str]
    catalog_root: Path  # the catalogue folder the index was built from (image paths are under it)

    def __len__(self) -> int: ...

    def search(self, queries: np.ndarray, top_n: int, *, packs: Collection[str] | None = None,
               exclude: Collection[str] | None = None) -> tuple[np.ndarray, np.ndarray]: ...

    def encodings(self) -> StickerEncoding: ...

    def sticker(self, row: int) -> StickerInfoLike: ...

    def row(self, sticker_id: str) -> int: ...


class QueryCache(Protocol):
    """A bytes store for dialogue encodings; failures are the cache's business (it answers misses)."""

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]: ...

    def put_many(self, items: Mapping[str, bytes]) -> None: ...


class MismatchError(ValueError):
    """An index built with another model version than the loaded model."""


@dataclass(frozen=True)
class RecommendRequest:
    dialogue: Dialogue
    top_k: int = 5
    packs: tuple[str, ...] | None = None
    exclude: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Hit:
    sticker_id: str
    pack: str
    score: float  # final SAMM score in (0, 1)
    image_url: str
    emotion: str  # the sticker's most likely emotion (eigml.labels.EMOTIONS)
    name: str | None = None
    emoji: str | None = None


@dataclass(frozen=True)
class Prediction:
    label: str
    probability: float


@dataclass(frozen=True)
class RecommendResult:
    hits: list[Hit]
    emotion: Prediction  # the dialogue's predicted emotion
    intention: Prediction | None  # top dialogue act; None when the model has no intention labels
    model_version: str
    index_version: str


@dataclass(frozen=True)
class LoadedIndex:
    index: SearchIndex
    packs: frozenset[str]
    row_packs: np.ndarray  # (N,) the pack of every row
    row_families: np.ndarray  # (N,) every row's emoji family (eigml.rerank.emoji_family), None without emoji
    # with a distribution-SAMM model: every row's emotion and intention distributions (agreement retrieval)
    emotion_probs: torch.Tensor | None = None
    intention_probs: torch.Tensor | None = None


def image_url(sticker_id: str) -> str:
    return f"/stickers/{quote(sticker_id, safe='/')}"


def load_index_view(index: SearchIndex, model: EIGML | None = None) -> LoadedIndex:
    infos = [index.sticker(row) for row in range(len(index))]
    row_packs = np.array([info.pack for info in infos], dtype=object)
    row_families = np.array([emoji_family(info.emoji) for info in infos], dtype=object)
    if model is None or not agreement_retrieval(model):
        return LoadedIndex(index=index, packs=frozenset(row_packs.tolist()), row_packs=row_packs,
                           row_families=row_families)
    stickers = index.encodings()
    return LoadedIndex(index=index, packs=frozenset(row_packs.tolist()), row_packs=row_packs,
                       row_families=row_families,
                       emotion_probs=stickers.emotion_probs,
                       intention_probs=sticker_intention_probs(model, stickers))


class Recommender:
    """`diversity` and `one_per_emoji` choose the served order among the reranked candidates
    (`eigml.rerank.diverse_first`): 0 and False give the scores' order."""

    def __init__(self, model: EIGML, encoder: QueryEncoderLike, index: SearchIndex, *, candidates: int = 100,
                 cache: QueryCache | None = None,
                 on_stage: Callable[[Stage, float], None] | None = None, diversity: float = DIVERSITY,
                 one_per_emoji: bool = True) -> None:
        if not 0.0 <= diversity <= 1.0:
            raise ValueError(f"diversity must be in [0, 1], got {diversity}")
        self.model = model.eval()
        self.encoder = encoder
        self.candidates = candidates
        self.diversity = diversity
        self.one_per_emoji = one_per_emoji
        self.cache = cache
        self.on_stage = on_stage
        self._loaded = self._check(index)

    # ---- index -------------------------------------------------------------------------------------
    def _check(self, index: SearchIndex) -> LoadedIndex:
        if index.model_version != self.model.version:
            raise MismatchError(f"index {index.version} was built with model {index.model_version}, "
                                f"but the loaded model is {self.model.version}")
        return load_index_view(index, self.model)

    @property
    def index(self) -> SearchIndex:
        return self._loaded.index

    @property
    def packs(self) -> frozenset[str]:
        return self._loaded.packs

    def swap_index(self, index: SearchIndex) -> SearchIndex:
        """Serve `index` from the next batch on (one reference assignment); returns the previous index."""
        loaded = self._check(index)
        previous, self._loaded = self._loaded.index, loaded
        return previous

    def unknown_packs(self, packs: Collection[str] | None) -> list[str]:
        return sorted(set(packs or ()) - self._loaded.packs)

    # ---- pipeline ----------------------------------------------------------------------------------
    def recommend(self, dialogue: Dialogue, top_k: int = 5, packs: Collection[str] | None = None,
                  exclude: Collection[str] | None = None) -> RecommendResult:
        request = RecommendRequest(dialogue, top_k, tuple(packs) if packs is not None else None,
                                   tuple(exclude) if exclude is not None else None)
        return self.recommend_many([request])[0]

    def recommend_many(self, requests: Sequence[RecommendRequest]) -> list[RecommendResult]:
        """One result per request, in order; the whole batch is served by one index version."""
        if not requests:
            return []
        loaded = self._loaded  # read once: a concurrent swap_index affects the next batch only
        with torch.inference_mode():
            start = time.perf_counter()
            queries = self.encode([r.dialogue for r in requests])
            start = self._stage("encode", start)
            retrieved = self._retrieve(loaded, queries, requests)
            start = self._stage("retrieve", start)
            scores = self._rerank(loaded, queries, retrieved)
            self._stage("rerank", start)
        return [self._result(loaded, queries, i, request, rows, row_scores)
                for i, (request, rows, row_scores) in enumerate(zip(requests, retrieved, scores, strict=True))]

    def _stage(self, stage: Stage, start: float) -> float:
        now = time.perf_counter()
        if self.on_stage is not None:
            self.on_stage(stage, now - start)
        return now

    def cache_key(self, dialogue: Dialogue) -> str:
        """Hash of what the encoder sees (`TextEncoder.dialogue_view`) plus the model version."""
        view = [[t.from_responder, t.text] for t in self.model.text_encoder.dialogue_view(dialogue)]
        payload = json.dumps([self.model.version, view], ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(payload.encode()).hexdigest()

    def encode(self, dialogues: Sequence[Dialogue]) -> QueryEncoding:
        """(B, ...) encodings: cached ones reused, the rest encoded in one call (duplicates once)."""
        keys = [self.cache_key(d) for d in dialogues]
        unique = list(dict.fromkeys(keys))
        found = self.cache.get_many(unique) if self.cache is not None else [None] * len(unique)
        rows: dict[str, dict[str, np.ndarray]] = {}
        for key, data in zip(unique, found, strict=True):
            if data is not None:
                try:
                    rows[key] = unpack_encoding(data)
                except ValueError:
                    pass  # a corrupt or foreign value is a miss
        missing = [k for k in unique if k not in rows]
        if missing:
            by_key = dict(zip(keys, dialogues, strict=True))  # equal keys: the encoder sees the same input
            fresh = encoding_rows(self.encoder.encode([by_key[k] for k in missing]))
            rows.update(zip(missing, fresh, strict=True))
            if self.cache is not None:
                self.cache.put_many({k: pack_encoding(rows[k]) for k in missing})
        return stack_rows([rows[k] for k in keys])

    def _retrieve(self, loaded: LoadedIndex, queries: QueryEncoding,
                  requests: Sequence[RecommendRequest]) -> list[np.ndarray]:
        """Each request's candidate rows: the visual retrieval's best first (padding dropped), then, for a
        model whose score has an emotion/intention agreement term, the rows that agree most that it missed."""
        out = self._retrieve_visual(loaded, queries.query, requests)
        if loaded.emotion_probs is None or loaded.intention_probs is None:
            return out
        allowed = [self._allowed_rows(loaded, r) for r in requests]
        extra = agreement_candidates(self.model, queries, loaded.emotion_probs, loaded.intention_probs,
                                     allowed, self.candidates)
        return [np.concatenate([rows, more[~np.isin(more, rows)]]) for rows, more in zip(out, extra, strict=True)]

    @staticmethod
    def _allowed_rows(loaded: LoadedIndex, request: RecommendRequest) -> np.ndarray | None:
        """Rows a request may be answered with (its packs, minus its excluded ids); None: every row."""
        if request.packs is None and not request.exclude:
            return None
        keep = np.ones(len(loaded.row_packs), dtype=bool)
        if request.packs is not None:
            keep &= np.isin(loaded.row_packs, list(set(request.packs)))
        for sticker_id in request.exclude or ():
            try:
                keep[loaded.index.row(sticker_id)] = False
            except KeyError:
                pass  # unknown ids are ignored, as the visual search ignores them
        return np.flatnonzero(keep).astype(np.int64)

    def _retrieve_visual(self, loaded: LoadedIndex, queries: torch.Tensor,
                         requests: Sequence[RecommendRequest]) -> list[np.ndarray]:
        vectors = np.ascontiguousarray(queries.numpy(), dtype=np.float32)
        groups: dict[tuple[tuple[str, ...] | None, tuple[str, ...] | None], list[int]] = {}
        for i, r in enumerate(requests):
            packs = tuple(sorted(set(r.packs) & loaded.packs)) if r.packs is not None else None
            exclude = tuple(sorted(set(r.exclude))) if r.exclude else None
            groups.setdefault((packs, exclude), []).append(i)
        out: list[np.ndarray] = [np.empty(0, dtype=np.int64)] * len(requests)
        for (packs, exclude), members in groups.items():
            if packs == ():
                continue  # only unknown packs: nothing to recommend from
            _, rows = loaded.index.search(vectors[members], self.candidates, packs=packs, exclude=exclude)
            for i, row in zip(members, rows, strict=True):
                out[i] = row[row >= 0].astype(np.int64)
        return out

    def _rerank(self, loaded: LoadedIndex, queries: QueryEncoding, retrieved: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Final scores (per request, aligned with its rows) from the core's one rerank call over the batch."""
        return rerank(self.model, queries, loaded.index.encodings(), retrieved)

    def _result(self, loaded: LoadedIndex, queries: QueryEncoding, i: int, request: RecommendRequest,
                rows: np.ndarray, scores: np.ndarray) -> RecommendResult:
        order = pick_hits(rows, scores, loaded.index.encodings().emotion_probs, queries.emotion_probs[i],
                          loaded.row_families, request.top_k, diversity=self.diversity,
                          one_per_emoji=self.one_per_emoji, emotion_labels=self.model.emotion_labels,
                          sticker_intention_probs=loaded.intention_probs, query_intention=queries.intention_probs[i],
                          intention_labels=self.model.intention_labels)
        hits = []
        for j in order:
            info = loaded.index.sticker(int(rows[j]))
            hits.append(Hit(sticker_id=info.id, pack=info.pack, score=float(scores[j]), image_url=image_url(info.id),
                            emotion=info.emotion, name=info.name, emoji=info.emoji))
        return RecommendResult(hits=hits, emotion=_top(queries.emotion_probs[i], self.model.emotion_labels),
                               intention=_top(queries.intention_probs[i], self.model.intention_labels)
                               if self.model.intention_labels else None,
                               model_version=self.model.version, index_version=loaded.index.version)


def _top(probs: torch.Tensor, labels: Sequence[str]) -> Prediction:
    k = int(torch.argmax(probs))
    return Prediction(label=labels[k], probability=float(probs[k]))
