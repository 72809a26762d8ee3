"""Versioned storage: round trip, atomic publish, CURRENT switching, pruning, damage detection."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from index.store import (
    VERSIONS_DIR,
    Dims,
    IndexStoreError,
    PackRecord,
    SearchSettings,
    StickerArrays,
    StickerRecord,
    current_version,
    encode_files,
    list_versions,
    publish_version,
    read_version,
    set_current,
)


def _contents(n: int = 5, seed: int = 0) -> tuple[list[StickerRecord], dict[str, PackRecord], StickerArrays]:
    rng = np.random.default_rng(seed)
    visual = rng.standard_normal((n, 8)).astype(np.float32)
    arrays = StickerArrays(visual=visual / np.linalg.norm(visual, axis=1, keepdims=True),
                           emotion=rng.standard_normal((n, 8)).astype(np.float32),
                           intention=rng.standard_normal((n, 8)).astype(np.float32),
                           emotion_probs=rng.dirichlet(np.ones(4), n).astype(np.float32),
                           patches=rng.standard_normal((n, 5, 8)).astype(np.float16))
    stickers = [StickerRecord(id=f"p/{i:02d}", pack="p", stem=f"{i:02d}", name=None if i else "zero", emoji=None,
                              image=f"p/{i:02d}.png", sha256=f"{seed}{i:063d}") for i in range(n)]
    return stickers, {"p": PackRecord("p", "P", "CC0-1.0", None)}, arrays


def _publish(root: Path, seed: int = 0, **kwargs: object) -> str:
    stickers, packs, arrays = _contents(seed=seed)
    fields = {"model_version": "m1", "image_cache_key": "k", "emotion_labels": ("a", "b", "c", "d"),
              "factory": "Flat", "search": SearchSettings(), "count": len(stickers), "counts": {"p": len(stickers)},
              "dims": Dims(visual=8, emotion=8, intention=8, emotion_probs=4, patches=(5, 8)),
              "catalog_root": "/catalog", "parent_version": None, "embedded": len(stickers), "reused": 0}
    return publish_version(root, encode_files(stickers, packs, arrays, b"not-a-faiss-index"), fields,
                           **kwargs)  # type: ignore[arg-type]


def test_round_trip_and_manifest(tmp_path: Path) -> None:
    assert current_version(tmp_path) is None
    version = _publish(tmp_path)
    assert current_version(tmp_path) == version and list_versions(tmp_path) == [version]
    stored = read_version(tmp_path)
    stickers, packs, arrays = _contents()
    assert stored.stickers == stickers and stored.packs == packs
    for got, want in zip(stored.arrays.fields(), arrays.fields(), strict=True):
        assert got.dtype == want.dtype and np.array_equal(got, want)
    m = stored.manifest
    assert m.index_version == version and m.model_version == "m1" and m.count == 5
    assert set(m.files) == {"faiss.index", "stickers.json", "packs.json", "visual.npy", "emotion.npy",
                            "intention.npy", "emotion_probs.npy", "patches.npy"}
    assert stored.faiss_bytes == b"not-a-faiss-index"


def test_versions_are_ordered_pruned_and_current_moves(tmp_path: Path) -> None:
    versions = [_publish(tmp_path, seed=s, keep=3) for s in range(5)]
    assert [v[:6] for v in versions] == ["000001", "000002", "000003", "000004", "000005"]
    assert list_versions(tmp_path) == versions[-3:]
    assert current_version(tmp_path) == versions[-1]
    assert sorted(p.name for p in (tmp_path / VERSIONS_DIR).iterdir()) == versions[-3:]


def test_unpublished_version_leaves_current_until_switched(tmp_path: Path) -> None:
    first = _publish(tmp_path)
    staged = _publish(tmp_path, seed=1, activate=False)
    assert current_version(tmp_path) == first
    assert read_version(tmp_path).manifest.index_version == first
    set_current(tmp_path, staged)
    assert read_version(tmp_path).manifest.index_version == staged
    with pytest.raises(IndexStoreError, match="no index version"):
        set_current(tmp_path, "000099-0123456789")


def test_pruning_never_deletes_current(tmp_path: Path) -> None:
    first = _publish(tmp_path)
    for seed in range(1, 4):
        _publish(tmp_path, seed=seed, activate=False, keep=1)
    assert current_version(tmp_path) == first
    assert first in list_versions(tmp_path)
    read_version(tmp_path)  # still complete


def test_damaged_file_is_detected(tmp_path: Path) -> None:
    version = _publish(tmp_path)
    path = tmp_path / VERSIONS_DIR / version / "visual.npy"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(IndexStoreError, match="visual.npy does not match its checksum"):
        read_version(tmp_path)
    read_version(tmp_path, verify=False)


def test_missing_index_and_interrupted_write(tmp_path: Path) -> None:
    with pytest.raises(IndexStoreError, match="python -m index build"):
        read_version(tmp_path)
    version = _publish(tmp_path)
    # a writer that died mid-way leaves a .tmp folder: never listed, never loaded, cleaned by the next publish
    crashed = tmp_path / VERSIONS_DIR / "000002-0123456789.tmp"
    crashed.mkdir()
    (crashed / "visual.npy").write_bytes(b"partial")
    assert list_versions(tmp_path) == [version]
    assert read_version(tmp_path).manifest.index_version == version
    _publish(tmp_path, seed=1)
    assert not crashed.exists()


def test_readers_never_see_a_half_index(tmp_path: Path) -> None:
    _publish(tmp_path)
    errors: list[BaseException] = []
    stop = threading.Event()

    def read_forever() -> None:
        while not stop.is_set():
            try:
                stored = read_version(tmp_path)
                assert len(stored.stickers) == len(stored.arrays) == stored.manifest.count
            except BaseException as error:  # noqa: BLE001 - any failure is the test's failure
                errors.append(error)
                return

    reader = threading.Thread(target=read_forever)
    reader.start()
    try:
        for seed in range(1, 15):
            _publish(tmp_path, seed=seed, keep=3)
    finally:
        stop.set()
        reader.join()
    assert not errors, errors[0]


def test_version_strings_never_become_other_paths(tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "root"
    version = _publish(root)
    # a complete index outside versions/: reachable by '../' if a version string were a path
    shutil.copytree(root / VERSIONS_DIR / version, tmp_path / "outside")
    for hostile in ("../../outside", "../" + version, "/etc", "", "000001-0123456789/../../outside", version + "\n"):
        with pytest.raises(IndexStoreError, match="not an index version"):
            read_version(root, hostile)
        with pytest.raises(IndexStoreError, match="not an index version"):
            set_current(root, hostile)
    (root / "CURRENT").write_text("../../outside\n")
    with pytest.raises(IndexStoreError, match="not an index version"):
        read_version(root)


def test_a_failed_publish_leaves_no_tmp_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import index.store as store

    first = _publish(tmp_path)
    real_write = store._write_synced

    def disk_full(path: Path, data: bytes) -> None:
        if path.name == "manifest.json":
            raise OSError(28, "No space left on device")
        real_write(path, data)

    monkeypatch.setattr(store, "_write_synced", disk_full)
    with pytest.raises(OSError, match="No space"):
        _publish(tmp_path, seed=1)
    assert list((tmp_path / VERSIONS_DIR).glob("*.tmp")) == []
    assert list_versions(tmp_path) == [first] and current_version(tmp_path) == first
