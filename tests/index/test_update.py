"""Pack changes: an incremental update equals a full rebuild, reuses unchanged stickers, and says why it refuses."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from index_helpers import unit_queries
from PIL import Image

from eigml.catalog import Catalog, load_catalog
from eigml.checkpoint import load_checkpoint
from eigml.model.eigml import EIGML
from index.__main__ import main
from index.build import IndexBuildError, build_index, update_index
from index.search import load_index
from index.store import current_version, list_versions, read_version


def _flags(cache_dir: Path) -> list[str]:
    return ["--feature-cache", str(cache_dir / "features"), "--models-dir", str(cache_dir / "models"),
            "--no-progress", "--device", "cpu", "--ocr", "off"]


def _count_encoded(model: EIGML, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Rows passed through the sticker heads from now on (the spy wraps the real method)."""
    counts: list[int] = []
    real = model.encode_stickers

    def spy(features: torch.Tensor):  # type: ignore[no-untyped-def]
        counts.append(int(features.shape[0]))
        return real(features)

    monkeypatch.setattr(model, "encode_stickers", spy)
    return counts


def _assert_same_index(root_a: Path, root_b: Path, reused_from: Path | None = None) -> None:
    a, b = read_version(root_a), read_version(root_b)
    assert [s.id for s in a.stickers] == [s.id for s in b.stickers]
    assert a.stickers == b.stickers and a.packs == b.packs
    for x, y in zip(a.arrays.fields(), b.arrays.fields(), strict=True):
        assert x.dtype == y.dtype
        np.testing.assert_allclose(x.astype(np.float32), y.astype(np.float32), atol=1e-6, rtol=0)
    index_a, index_b = load_index(root_a), load_index(root_b)
    q = unit_queries(16, a.manifest.dims.visual, seed=3)
    names = sorted(a.manifest.counts)
    for packs in (None, names[:1], names[1:]):
        scores_a, rows_a = index_a.search(q, 10, packs=packs)
        scores_b, rows_b = index_b.search(q, 10, packs=packs)
        np.testing.assert_array_equal(rows_a, rows_b)
        np.testing.assert_allclose(scores_a, scores_b, atol=1e-6)


def test_add_pack_equals_full_build_and_embeds_only_the_new_pack(
        tmp_path: Path, tiny_checkpoint: Path, tiny_catalog: Path, cache_dir: Path, tiny_model: EIGML,
        built_root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "index"
    assert main(["build", "--model", str(tiny_checkpoint), "--catalog", str(tiny_catalog), "--out", str(root),
                 "--packs", "noto,twemoji", *_flags(cache_dir)]) == 0
    before = read_version(root)
    # the CLI loads its own model; count encoded rows by spying on the class method it will call
    counts: list[int] = []
    real = EIGML.encode_stickers

    def spy(self: EIGML, features: torch.Tensor):  # type: ignore[no-untyped-def]
        counts.append(int(features.shape[0]))
        return real(self, features)

    monkeypatch.setattr(EIGML, "encode_stickers", spy)
    capsys.readouterr()
    assert main(["update", "--root", str(root), "--model", str(tiny_checkpoint), "--catalog", str(tiny_catalog),
                 "--add-pack", str(tiny_catalog / "plain"), *_flags(cache_dir)]) == 0
    assert sum(counts) == 12  # the new pack only
    version = capsys.readouterr().out.strip()
    after = read_version(root)
    m = after.manifest
    assert m.index_version == version and m.parent_version == before.manifest.index_version
    assert (m.embedded, m.reused) == (12, 24) and m.counts == {"noto": 12, "plain": 12, "twemoji": 12}
    # reused rows are bit-for-bit the previous version's
    old_rows = {s.id: i for i, s in enumerate(before.stickers)}
    for row, sticker in enumerate(after.stickers):
        if sticker.pack != "plain":
            for x, y in zip(after.arrays.fields(), before.arrays.fields(), strict=True):
                assert np.array_equal(x[row], y[old_rows[sticker.id]])
    _assert_same_index(root, built_root)  # the session index is a full build of all three packs


def test_remove_pack_reuses_everything(tmp_path: Path, tiny_model: EIGML, catalog: Catalog, cache_dir: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    root, full = tmp_path / "index", tmp_path / "full"
    build_index(tiny_model, catalog, root, feature_cache=cache_dir / "features", progress=False)
    counts = _count_encoded(tiny_model, monkeypatch)
    update_index(tiny_model, catalog, root, remove_packs=["twemoji"], progress=False)
    assert counts == []
    assert read_version(root).manifest.counts == {"noto": 12, "plain": 12}
    monkeypatch.undo()
    build_index(tiny_model, catalog, full, packs=["noto", "plain"], feature_cache=cache_dir / "features",
                progress=False)
    _assert_same_index(root, full)


def test_rebuild_re_embeds_only_changed_images(tmp_path: Path, tiny_catalog: Path, tiny_model: EIGML,
                                               cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(tiny_catalog, tmp_path / "catalog")
    root = tmp_path / "index"
    build_index(tiny_model, load_catalog(tmp_path / "catalog"), root, feature_cache=cache_dir / "features",
                progress=False)
    Image.new("RGB", (64, 64), (10, 200, 30)).save(tmp_path / "catalog" / "noto" / "1f600.png")
    catalog = load_catalog(tmp_path / "catalog")
    counts = _count_encoded(tiny_model, monkeypatch)
    update_index(tiny_model, catalog, root, feature_cache=cache_dir / "features", progress=False)
    assert sum(counts) == 1
    m = read_version(root).manifest
    assert (m.embedded, m.reused) == (1, 35)
    monkeypatch.undo()
    build_index(tiny_model, catalog, tmp_path / "full", feature_cache=cache_dir / "features", progress=False)
    _assert_same_index(root, tmp_path / "full")
    # --full embeds everything again and still equals the full build
    update_index(tiny_model, catalog, root, reuse=False, feature_cache=cache_dir / "features", progress=False)
    assert read_version(root).manifest.embedded == 36
    _assert_same_index(root, tmp_path / "full")


def test_versions_are_kept_and_pruned(tmp_path: Path, tiny_model: EIGML, catalog: Catalog) -> None:
    root = tmp_path / "index"
    versions = [build_index(tiny_model, catalog, root, packs=["noto"], progress=False, keep_versions=2)]
    for _ in range(3):
        versions.append(update_index(tiny_model, catalog, root, keep_versions=2, progress=False))
    assert list_versions(root) == versions[-2:] and current_version(root) == versions[-1]
    staged = update_index(tiny_model, catalog, root, add_packs=["plain"], publish=False, progress=False)
    assert current_version(root) == versions[-1] and staged in list_versions(root)
    assert load_index(root, staged).manifest.counts == {"noto": 12, "plain": 12}


def test_another_model_needs_rebuild(tmp_path: Path, tiny_checkpoint: Path, cache_dir: Path, catalog: Catalog,
                                     tiny_model: EIGML) -> None:
    root = tmp_path / "index"
    build_index(tiny_model, catalog, root, packs=["noto"], progress=False)
    other = load_checkpoint(tiny_checkpoint, models_dir=cache_dir / "models")
    with torch.no_grad():
        other.visual_proj[1].weight.mul_(-1.0)
    other.version = "eigml-other"
    with pytest.raises(IndexBuildError, match=rf"built with model {tiny_model.version}, the checkpoint is model "
                                         r"eigml-other: run `python -m index rebuild`"):
        update_index(other, catalog, root, add_packs=["plain"], progress=False)
    update_index(other, catalog, root, allow_model_change=True, progress=False)
    stored = read_version(root)
    assert stored.manifest.model_version == "eigml-other" and stored.manifest.embedded == 12
    build_index(other, catalog, tmp_path / "full", packs=["noto"], progress=False)
    _assert_same_index(root, tmp_path / "full")


@pytest.mark.parametrize(("args", "message"), [
    (["--add-pack", "nope"], "unknown pack(s) nope: the catalogue at"),
    (["--remove-pack", "twemoji"], "cannot remove pack(s) twemoji: index version"),
    (["--add-pack", "plain", "--remove-pack", "plain"], "both added and removed"),
    (["--remove-pack", "noto"], "leaves no packs to index"),
    ([], "update needs --add-pack or --remove-pack"),
])
def test_update_errors(tmp_path: Path, tiny_checkpoint: Path, tiny_catalog: Path, cache_dir: Path,
                       tiny_model: EIGML, catalog: Catalog, capsys: pytest.CaptureFixture[str],
                       args: list[str], message: str) -> None:
    root = tmp_path / "index"
    version = build_index(tiny_model, catalog, root, packs=["noto"], progress=False)
    code = main(["update", "--root", str(root), "--model", str(tiny_checkpoint), "--catalog", str(tiny_catalog),
                 *args, *_flags(cache_dir)])
    assert code == 2
    assert message in capsys.readouterr().err
    assert list_versions(root) == [version]


def test_update_catalog_mismatch(tmp_path: Path, tiny_catalog: Path, tiny_model: EIGML, catalog: Catalog) -> None:
    root = tmp_path / "index"
    build_index(tiny_model, catalog, root, packs=["noto", "plain"], progress=False)
    other = tmp_path / "other"
    shutil.copytree(tiny_catalog / "noto", other / "noto")
    with pytest.raises(IndexBuildError, match=r"pack\(s\) plain of index version .* are not in the catalogue"):
        update_index(tiny_model, load_catalog(other), root, add_packs=[], progress=False)
    outside = tmp_path / "newpack"
    shutil.copytree(tiny_catalog / "twemoji", outside)
    with pytest.raises(IndexBuildError, match="is not in the catalogue at .*: copy it there first"):
        update_index(tiny_model, catalog, root, add_packs=[str(outside)], progress=False)
    with pytest.raises(IndexBuildError, match="nothing to update: no index under"):
        update_index(tiny_model, catalog, tmp_path / "empty", add_packs=["noto"], progress=False)
