"""StickerIndex.search against exact numpy search, for every factory and filter path; lookups and encodings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from index_helpers import exact_top, unit_queries

from eigml.catalog import Catalog
from eigml.dialogue import Dialogue, Turn
from eigml.model.eigml import EIGML
from index.build import update_index
from index.search import StickerIndex, load_index
from index.store import IndexStoreError, encode_files, publish_version, read_version

# tiny settings make every approximate index exhaustive here, so results must equal exact search;
# recall at realistic sizes is tests/index/test_recall.py's job
FACTORIES = {"Flat": None, "IVF4,Flat": 4, "IVF4,SQ8,RFlat": 4, "HNSW8": None}


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory, built_root: Path, tiny_model: EIGML,
          catalog: Catalog) -> dict[str, Path]:
    """The session index rebuilt with each factory (rows reused, only FAISS differs)."""
    out = {}
    for factory in FACTORIES:
        root = tmp_path_factory.mktemp("factory")
        stored = read_version(built_root)  # copy the session index, then rebuild it with `factory`
        fields = stored.manifest.model_dump(exclude={"format_version", "index_version", "created", "files"})
        publish_version(root, encode_files(stored.stickers, stored.packs, stored.arrays, stored.faiss_bytes), fields)
        update_index(tiny_model, catalog, root, factory=factory, progress=False)
        assert read_version(root).manifest.reused == 36
        out[factory] = root
    return out


def _check(index: StickerIndex, queries: np.ndarray, top_n: int, **filters: object) -> None:
    visual = index.encodings().visual.numpy()
    allowed = np.arange(len(index))
    if filters.get("packs") is not None:
        allowed = np.asarray([r for r in allowed if index.sticker(int(r)).pack in filters["packs"]], np.int64)  # type: ignore[operator]
    if filters.get("exclude"):
        allowed = np.asarray([r for r in allowed if index.ids[r] not in filters["exclude"]], np.int64)  # type: ignore[operator]
    scores, rows = index.search(queries, top_n, **filters)  # type: ignore[arg-type]
    want_scores, want_rows = exact_top(visual, queries, allowed, top_n)
    k = want_rows.shape[1]
    assert scores.shape == rows.shape == (len(queries), top_n)
    assert scores.dtype == np.float32 and rows.dtype == np.int64
    np.testing.assert_array_equal(rows[:, :k], want_rows)
    np.testing.assert_allclose(scores[:, :k], want_scores, atol=1e-5)
    assert np.all(rows[:, k:] == -1) and np.all(np.isneginf(scores[:, k:]))


@pytest.mark.parametrize("factory", list(FACTORIES))
@pytest.mark.parametrize("path", ["exact", "selector", "overfetch"])
def test_search_equals_exact_numpy_search(roots: dict[str, Path], factory: str, path: str) -> None:
    index = load_index(roots[factory], exact_cutoff=10_000 if path == "exact" else 0)
    assert index.manifest.factory == factory
    if path == "overfetch":
        index._selector_ok = False  # the path for index types that ignore IDSelector (e.g. on a GPU)
    elif path == "selector":
        assert index._selector_ok
    q = unit_queries(8, index.manifest.dims.visual, seed=1)
    _check(index, q, 5)
    _check(index, q, 40)  # more than the index holds: padded
    _check(index, q, 5, packs=["twemoji"])
    _check(index, q, 20, packs=["plain"])  # fewer than top_n pass: padded
    _check(index, q, 10, packs=["noto", "plain"], exclude=["noto/1f600", "plain/1f601", "nobody/x"])
    _check(index, q, 10, exclude=[index.ids[r] for r in range(0, 36, 3)])
    _check(index, q, 4, packs=[])
    # the nearest stickers excluded: a first over-fetch finds none that pass, so it has to grow
    nearest = np.argsort(-(index.encodings().visual.numpy() @ q[0]))[:30]
    _check(index, q[:1], 2, exclude=[index.ids[r] for r in nearest])


def test_model_queries_find_the_same_stickers_as_scoring_everything(built_root: Path, tiny_model: EIGML) -> None:
    index = load_index(built_root)
    dialogues = [Dialogue((Turn("B", "I am so happy today, great news!"),), responder="A"),
                 Dialogue((Turn("B", "my dog died, I am heartbroken"),), responder="A")]
    with torch.inference_mode():
        query = tiny_model.encode_dialogues(dialogues).query.numpy()
    scores, rows = index.search(query, 5, packs=["noto"])
    visual = index.encodings().visual.numpy()
    noto = np.asarray([index.row(i) for i in index.ids if i.startswith("noto/")])
    want_scores, want_rows = exact_top(visual, query, noto, 5)
    np.testing.assert_array_equal(rows, want_rows)
    np.testing.assert_allclose(scores, want_scores, atol=1e-5)


def test_lookups_and_encodings(built_root: Path, tiny_model: EIGML, catalog: Catalog) -> None:
    index = load_index(built_root)
    stored = read_version(built_root)
    assert len(index) == 36 and index.ids == catalog.ids()
    assert index.version == stored.manifest.index_version and index.model_version == tiny_model.version
    row = index.row("twemoji/1f601")
    info = index.sticker(row)
    assert (info.id, info.pack, info.name, info.emoji) == ("twemoji/1f601", "twemoji", "crying face", "\U0001F601")
    assert info.image_path == catalog["twemoji/1f601"].path.resolve() and info.image_path.is_file()
    assert info.emotion == tiny_model.emotion_labels[int(np.argmax(stored.arrays.emotion_probs[row]))]
    assert index.sticker(index.row("plain/1f600")).name is None
    with pytest.raises(KeyError, match="no sticker 'noto/zzz'"):
        index.row("noto/zzz")
    with pytest.raises(IndexError):
        index.sticker(36)
    enc = index.encodings()
    assert enc is index.encodings()  # built once
    assert all(t.dtype == torch.float32 and t.shape[0] == 36 for t in enc)
    np.testing.assert_array_equal(enc.patches.numpy(), stored.arrays.patches.astype(np.float32))
    np.testing.assert_array_equal(enc.visual.numpy(), stored.arrays.visual)
    # the rerank runs on what the index holds
    with torch.inference_mode():
        queries = tiny_model.encode_dialogues([Dialogue((Turn("B", "wow, what a shock"),), responder="A")])
        final = tiny_model.score(queries, enc, torch.arange(36)[None, :5])
    assert final.shape == (1, 5) and bool(((final > 0) & (final < 1)).all())


def test_bad_requests(built_root: Path) -> None:
    index = load_index(built_root)
    q = unit_queries(2, index.manifest.dims.visual)
    with pytest.raises(KeyError, match="unknown pack"):
        index.search(q, 5, packs=["nope"])
    with pytest.raises(ValueError, match=r"queries must be \(B, 32\)"):
        index.search(q[:, :8], 5)
    with pytest.raises(TypeError, match="not one string"):
        index.search(q, 5, packs="noto")
    with pytest.raises(ValueError, match="top_n must be at least 1"):
        index.search(q, 0)
    with pytest.raises(IndexStoreError, match="no index version"):
        load_index(built_root, "000042-0000000000")
    assert load_index(built_root, index.version).version == index.version


def test_a_sticker_with_no_standout_feeling_shows_none() -> None:
    from index.search import shown_emotion

    labels = ("none", "like", "happiness", "sadness", "anger", "fear", "disgust", "surprise")
    flat = np.full(8, 1 / 8)
    flat[4] += 0.01  # an object's near-uniform row: its argmax is noise
    assert shown_emotion(flat, labels) == "none"
    sad = np.array([0.1, 0.05, 0.05, 0.5, 0.1, 0.1, 0.05, 0.05])
    assert shown_emotion(sad, labels) == "sadness"
