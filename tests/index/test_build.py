"""`python -m index build` end to end on the tiny checkpoint and catalogue, checked against the slow path."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from index_helpers import slow_encoding

from eigml.catalog import Catalog
from eigml.model.eigml import EIGML
from index.__main__ import main
from index.ann import FactoryError
from index.build import IndexBuildError, build_index
from index.store import VERSIONS_DIR, current_version, list_versions, read_version


def _cli(*args: object) -> list[str]:
    return [str(a) for a in args] + ["--ocr", "off"]  # the same index whether or not rapidocr is installed


def test_build_command_writes_a_self_describing_index(tmp_path: Path, tiny_checkpoint: Path, tiny_catalog: Path,
                                                      cache_dir: Path, tiny_model: EIGML, catalog: Catalog,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "index"
    code = main(_cli("build", "--model", tiny_checkpoint, "--catalog", tiny_catalog, "--out", root, "--device", "cpu",
                     "--feature-cache", cache_dir / "features", "--models-dir", cache_dir / "models", "--no-progress"))
    out, err = capsys.readouterr()
    assert code == 0, err
    version = out.strip()
    assert current_version(root) == version
    assert "36 stickers (36 embedded, 0 reused)" in err
    stored = read_version(root)
    m = stored.manifest
    assert m.model_version == tiny_model.version and m.factory == "Flat" and m.metric == "inner_product"
    assert m.counts == {"noto": 12, "plain": 12, "twemoji": 12} and m.count == 36
    dim = tiny_model.config.dim
    assert (m.dims.visual, m.dims.emotion, m.dims.intention) == (dim, dim, dim)
    assert m.dims.patches == (1 + tiny_model.config.patch_grid ** 2, dim)
    assert m.emotion_labels == tiny_model.emotion_labels
    folder = root / VERSIONS_DIR / version
    for name, entry in m.files.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == entry.sha256
    assert json.loads((folder / "manifest.json").read_text())["index_version"] == version
    # metadata: pack titles/licences, per-sticker names, emoji, catalogue-relative image paths
    assert stored.packs["noto"].title == "Tiny noto" and stored.packs["noto"].licence == "CC0-1.0"
    assert stored.packs["plain"].title == "plain" and stored.packs["plain"].licence is None
    assert [s.id for s in stored.stickers] == catalog.ids()
    first = stored.stickers[0]
    assert first.id == "noto/1f600" and first.name == "grinning face" and first.emoji == "\U0001F600"
    assert all(Path(m.catalog_root, s.image) == catalog[s.id].path.resolve() for s in stored.stickers)
    assert stored.arrays.patches.dtype == np.float16


def test_stored_encodings_equal_the_model_run_one_sticker_at_a_time(built_root: Path, tiny_model: EIGML,
                                                                    catalog: Catalog) -> None:
    stored = read_version(built_root)
    ids = [s.id for s in stored.stickers]
    slow = slow_encoding(tiny_model, catalog, ids)
    a = stored.arrays
    np.testing.assert_allclose(a.visual, slow.visual.numpy(), atol=1e-5)
    np.testing.assert_allclose(a.emotion, slow.emotion.numpy(), atol=1e-5)
    np.testing.assert_allclose(a.intention, slow.intention.numpy(), atol=1e-5)
    np.testing.assert_allclose(a.emotion_probs, slow.emotion_probs.numpy(), atol=1e-6)
    np.testing.assert_allclose(a.patches.astype(np.float32), slow.patches.numpy(), rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(np.linalg.norm(a.visual, axis=1), 1.0, atol=1e-5)


def test_cache_dir_comes_from_the_environment_at_the_entry_point(tmp_path: Path, tiny_checkpoint: Path,
                                                                 tiny_catalog: Path, cache_dir: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    os.symlink(cache_dir / "models", cache / "models")  # converted backbone weights, to save the conversion
    monkeypatch.setenv("STICKERS_CACHE_DIR", str(cache))
    assert main(_cli("build", "--model", tiny_checkpoint, "--catalog", tiny_catalog, "--out", tmp_path / "index",
                     "--packs", "noto", "--no-progress")) == 0
    entries = list((cache / "features").rglob("*.npy"))
    assert len(entries) == 12
    assert read_version(tmp_path / "index").manifest.counts == {"noto": 12}


@pytest.mark.parametrize(("args", "message"), [
    (["--packs", "noto,nope"], "unknown pack(s) nope"),
    (["--factory", "IVF64,Flat"], "has 64 inverted lists but the catalogue has only 36 stickers"),
    (["--factory", "NotAFactory"], "could not parse index string NotAFactory"),
    (["--factory", "PQ5"], "should be a multiple of the number of subquantizers"),
    (["--keep", "0"], "greater than or equal to 1"),
])
def test_build_errors_are_clear_and_write_nothing(tmp_path: Path, tiny_checkpoint: Path, tiny_catalog: Path,
                                                  cache_dir: Path, capsys: pytest.CaptureFixture[str],
                                                  args: list[str], message: str) -> None:
    root = tmp_path / "index"
    code = main(_cli("build", "--model", tiny_checkpoint, "--catalog", tiny_catalog, "--out", root,
                     "--feature-cache", cache_dir / "features", "--models-dir", cache_dir / "models",
                     "--no-progress", *args))
    assert code == 2
    assert message in capsys.readouterr().err
    assert current_version(root) is None and list_versions(root) == []


def test_missing_checkpoint_and_catalogue(tmp_path: Path, tiny_checkpoint: Path, tiny_catalog: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_cli("build", "--model", tmp_path / "nope", "--catalog", tiny_catalog, "--out", tmp_path / "i")) == 2
    assert f"checkpoint {tmp_path / 'nope'} does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(_cli("build", "--model", tmp_path / "empty", "--catalog", tiny_catalog, "--out", tmp_path / "i")) == 2
    assert "is not an EIGML checkpoint" in capsys.readouterr().err
    assert main(_cli("build", "--model", tiny_checkpoint, "--catalog", tmp_path / "nocat", "--out",
                     tmp_path / "i")) == 2
    assert "is not a directory" in capsys.readouterr().err


def test_factory_is_checked_before_embedding(tmp_path: Path, tiny_model: EIGML, catalog: Catalog,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("embedded before the factory was checked")

    monkeypatch.setattr("index.build.embed_stickers", fail)
    with pytest.raises(FactoryError, match="inverted lists"):
        build_index(tiny_model, catalog, tmp_path, factory="IVF100,Flat", device="cpu", progress=False)
    with pytest.raises(IndexBuildError, match="unknown pack"):
        build_index(tiny_model, catalog, tmp_path, packs=["missing"], progress=False)
