"""Load a published index and search it: inner product of unit queries with the stickers' visual vectors.

Filters (packs, excluded stickers) never search everything and then drop hits blindly:
  * a filter that leaves at most `exact_cutoff` stickers is searched exactly over just those rows;
  * a wider one goes to FAISS with an IDSelector (SearchParameters), where the index type honours it;
  * otherwise FAISS is asked for more hits than needed, growing until enough pass the filter.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np
import torch

from eigml.model.interface import StickerEncoding
from index.ann import deserialize, search_parameters, supports_selector
from index.store import Manifest, PackRecord, StoredVersion, read_version

EXACT_CUTOFF = 20_000  # exact search over 20k x 256 floats takes ~1 ms a query on one core


def shown_emotion(probs: np.ndarray, labels: Sequence[str]) -> str:
    """The emotion a sticker shows: its most likely one, or "none" when no emotion stands out (its top
    probability under 1.5x uniform: objects are trained to a uniform distribution, whose argmax is noise)."""
    top = int(np.argmax(probs))
    if "none" in labels and float(probs[top]) < 1.5 / len(labels):
        return "none"
    return labels[top]


@dataclass(frozen=True)
class StickerInfo:
    id: str
    pack: str
    name: str | None  # English name, when the pack names it
    emoji: str | None
    image_path: Path  # absolute: the catalogue root the index was built from / the image's relative path
    emotion: str  # the most likely of the index's emotion labels (eigml.labels.EMOTIONS)


@dataclass(frozen=True)
class _Filter:
    rows: np.ndarray | None  # the allowed rows (sorted), when a pack filter names them
    excluded: np.ndarray  # rows to leave out when `rows` is None
    count: int  # how many rows pass


class StickerIndex:
    """One published index version, fully in memory."""

    def __init__(self, stored: StoredVersion, *, exact_cutoff: int = EXACT_CUTOFF) -> None:
        m = stored.manifest
        self.manifest: Manifest = m
        self.version: str = m.index_version
        self.model_version: str = m.model_version
        self.ids: list[str] = [s.id for s in stored.stickers]
        self.packs: dict[str, PackRecord] = dict(stored.packs)
        self.catalog_root = Path(m.catalog_root)
        self.exact_cutoff = exact_cutoff
        self._stickers = stored.stickers
        self._arrays = stored.arrays
        self._rows = {sticker_id: row for row, sticker_id in enumerate(self.ids)}
        pack_of = np.asarray([s.pack for s in stored.stickers], dtype=object)
        self._pack_rows = {p: np.flatnonzero(pack_of == p).astype(np.int64) for p in self.packs}
        self._index = deserialize(stored.faiss_bytes)
        self._settings = m.search
        self._selector_ok = supports_selector(self._index, self._settings)
        self._encoding: StickerEncoding | None = None
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return (f"StickerIndex(version={self.version!r}, model_version={self.model_version!r}, "
                f"stickers={len(self)}, factory={self.manifest.factory!r})")

    # ---- lookups ---------------------------------------------------------------------------------
    def row(self, sticker_id: str) -> int:
        try:
            return self._rows[sticker_id]
        except KeyError:
            raise KeyError(f"no sticker {sticker_id!r} in index version {self.version}") from None

    def sticker(self, row: int) -> StickerInfo:
        if not 0 <= row < len(self):
            raise IndexError(f"row {row} is outside index version {self.version} ({len(self)} stickers)")
        s = self._stickers[row]
        emotion = shown_emotion(self._arrays.emotion_probs[row], self.manifest.emotion_labels)
        return StickerInfo(id=s.id, pack=s.pack, name=s.name, emoji=s.emoji,
                           image_path=self.catalog_root / s.image, emotion=emotion)

    def encodings(self) -> StickerEncoding:
        """Every row's encoding as float32 CPU tensors (patches widened from their stored fp16), built once."""
        with self._lock:
            if self._encoding is None:
                a = self._arrays
                self._encoding = StickerEncoding(*(torch.from_numpy(np.array(x, dtype=np.float32))
                                                   for x in a.fields()))
            return self._encoding

    # ---- search ----------------------------------------------------------------------------------
    def search(self, queries: np.ndarray, top_n: int, *, packs: Collection[str] | None = None,
               exclude: Collection[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Scores (B, top_n) float32 and rows (B, top_n) int64, best first, for unit queries (B, D).

        Only stickers of `packs` (None: all; an unknown pack is a KeyError) and not in `exclude` (ids;
        unknown ones are ignored) are returned; when fewer pass, rows are padded with -1, scores with -inf.
        """
        q = self._queries(queries)
        if isinstance(packs, str) or isinstance(exclude, str):
            raise TypeError("packs and exclude are collections of names, not one string")
        if top_n < 1:
            raise ValueError(f"top_n must be at least 1, got {top_n}")
        where = self._filter(packs, exclude)
        if where is None:
            k = min(top_n, len(self))
            return _pad(*self._index.search(q, k, params=search_parameters(self._index, self._settings)), top_n)
        if where.count == 0:
            return _pad(np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64), top_n)
        if where.count <= self.exact_cutoff:
            return self._search_exact(q, top_n, where)
        if self._selector_ok:
            return self._search_selected(q, top_n, where)
        return self._search_overfetch(q, top_n, where)

    def _queries(self, queries: np.ndarray) -> np.ndarray:
        q = np.ascontiguousarray(queries, dtype=np.float32)
        dim = self.manifest.dims.visual
        if q.ndim != 2 or q.shape[1] != dim:
            raise ValueError(f"queries must be (B, {dim}) for index version {self.version}, got {q.shape}")
        return q

    def _filter(self, packs: Collection[str] | None, exclude: Collection[str] | None) -> _Filter | None:
        excluded = np.unique(np.asarray([self._rows[s] for s in exclude or () if s in self._rows], np.int64))
        if packs is None:
            return _Filter(None, excluded, len(self) - excluded.size) if excluded.size else None
        unknown = sorted(set(packs) - set(self.packs))
        if unknown:
            raise KeyError(f"unknown pack(s) {', '.join(unknown)}: index version {self.version} has "
                           f"{', '.join(sorted(self.packs))}")
        rows = np.sort(np.concatenate([self._pack_rows[p] for p in set(packs)] or [np.zeros(0, np.int64)]))
        if excluded.size:
            rows = rows[~np.isin(rows, excluded)]
        return _Filter(rows, np.zeros(0, np.int64), rows.size)

    def _allowed_rows(self, where: _Filter) -> np.ndarray:
        if where.rows is not None:
            return where.rows
        keep = np.ones(len(self), dtype=bool)
        keep[where.excluded] = False
        return np.flatnonzero(keep).astype(np.int64)

    def _search_exact(self, q: np.ndarray, top_n: int, where: _Filter) -> tuple[np.ndarray, np.ndarray]:
        rows = self._allowed_rows(where)
        scores, local = faiss.knn(q, self._arrays.visual[rows], min(top_n, rows.size),
                                  metric=faiss.METRIC_INNER_PRODUCT)
        return _pad(scores, np.where(local >= 0, rows[np.maximum(local, 0)], -1), top_n)

    def _search_selected(self, q: np.ndarray, top_n: int, where: _Filter) -> tuple[np.ndarray, np.ndarray]:
        if where.rows is not None:
            selector: faiss.IDSelector = faiss.IDSelectorBatch(where.rows)
            inner = None
        else:
            inner = faiss.IDSelectorBatch(where.excluded)
            selector = faiss.IDSelectorNot(inner)  # does not own `inner`: it lives until this call returns
        params = search_parameters(self._index, self._settings, selector)
        scores, rows = self._index.search(q, min(top_n, where.count), params=params)
        del inner
        return _pad(scores, rows, top_n)

    def _search_overfetch(self, q: np.ndarray, top_n: int, where: _Filter) -> tuple[np.ndarray, np.ndarray]:
        """For index types without IDSelector support: ask for more until `top_n` pass (or all were asked for)."""
        allowed = np.zeros(len(self), dtype=bool)
        allowed[self._allowed_rows(where)] = True
        k = min(len(self), max(2 * top_n, top_n * len(self) // max(where.count, 1) + top_n))
        params = search_parameters(self._index, self._settings)
        while True:
            scores, rows = self._index.search(q, k, params=params)
            keep = (rows >= 0) & allowed[np.maximum(rows, 0)]
            if k >= len(self) or bool(np.all(keep.sum(axis=1) >= min(top_n, where.count))):
                break
            k = min(len(self), 2 * k)
        out_scores = np.full((len(q), top_n), -np.inf, dtype=np.float32)
        out_rows = np.full((len(q), top_n), -1, dtype=np.int64)
        for i in range(len(q)):
            kept = np.flatnonzero(keep[i])[:top_n]
            out_scores[i, : kept.size] = scores[i, kept]
            out_rows[i, : kept.size] = rows[i, kept]
        return out_scores, out_rows


def _pad(scores: np.ndarray, rows: np.ndarray, top_n: int) -> tuple[np.ndarray, np.ndarray]:
    """(B, top_n) results: missing hits (FAISS's -1, or fewer columns than top_n) as row -1, score -inf."""
    out_scores = np.full((rows.shape[0], top_n), -np.inf, dtype=np.float32)
    out_rows = np.full((rows.shape[0], top_n), -1, dtype=np.int64)
    k = rows.shape[1]
    out_rows[:, :k] = rows
    out_scores[:, :k] = np.where(rows >= 0, scores, -np.inf)
    return out_scores, out_rows


def load_index(root: Path, version: str | None = None, *, verify: bool = True,
               exact_cutoff: int = EXACT_CUTOFF) -> StickerIndex:
    """The index version `version` under `root` (None: CURRENT), checksums verified; IndexStoreError if absent.

    What is stored is a CPU index whichever device built it, so loading needs no GPU.
    """
    return StickerIndex(read_version(Path(root), version, verify=verify), exact_cutoff=exact_cutoff)
