"""Versioned, self-describing index storage with atomic publishing.

Layout under `root`:
  CURRENT                     the version readers load (one line), switched with an atomic os.replace
  versions/<version>/         one complete index; `<version>` is `<6-digit sequence>-<content hash>`
    manifest.json             format/index/model versions, dims, counts per pack, factory, sha256 of every file
    faiss.index               FAISS index over the unit visual vectors (inner product); FAISS id = row
    visual.npy (N, D) f32   emotion.npy (N, D) f32   intention.npy (N, D) f32   emotion_probs.npy (N, E) f32
    patches.npy (N, T, D) f16 (the compact IEGA patch features)
    stickers.json             per row: id, pack, stem, name, emoji, image path relative to the catalogue root, sha256,
                              text (words read from the image by OCR; null when the version was built without OCR)
    packs.json                per pack: title, licence, attribution
A version is written into `versions/<version>.tmp` (files and folder fsynced), renamed into place, and only
then does CURRENT move (CURRENT.tmp + fsync + os.replace), so a reader never sees a half-written index.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import re
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

FORMAT_VERSION = 2  # 2: per-sticker OCR `text` and manifest `ocr`/`ocr_read`
READABLE_FORMATS = (1, 2)  # format 1 has no text: it loads with text None and ocr None
CURRENT_FILE = "CURRENT"
VERSIONS_DIR = "versions"
MANIFEST_FILE = "manifest.json"
FAISS_FILE = "faiss.index"
STICKERS_FILE = "stickers.json"
PACKS_FILE = "packs.json"
ARRAY_FILES = {"visual": "visual.npy", "emotion": "emotion.npy", "intention": "intention.npy",
               "emotion_probs": "emotion_probs.npy", "patches": "patches.npy"}
VERSION_PATTERN = r"^\d{6}-[0-9a-f]{10}$"  # what publish_version names versions; the service's schema uses it too
_VERSION = re.compile(VERSION_PATTERN)


class IndexStoreError(ValueError):
    """No index where one was expected, or one that is damaged or of another format."""


@dataclass(frozen=True)
class StickerRecord:
    id: str
    pack: str
    stem: str
    name: str | None  # English name, when the pack names it
    emoji: str | None
    image: str  # posix path relative to the catalogue root
    sha256: str  # of the image file: an unchanged file (and model) lets an update reuse the row
    text: str | None = None  # words drawn on the sticker, read by OCR ("" none); None: not read (see Manifest.ocr)


@dataclass(frozen=True)
class PackRecord:
    name: str
    title: str
    licence: str | None
    attribution: str | None


@dataclass(frozen=True)
class StickerArrays:
    """Per-row sticker encodings as stored: float32 except the fp16 patches."""

    visual: np.ndarray  # (N, D) unit length
    emotion: np.ndarray  # (N, D)
    intention: np.ndarray  # (N, D)
    emotion_probs: np.ndarray  # (N, E)
    patches: np.ndarray  # (N, T, D) float16

    def __len__(self) -> int:
        return int(self.visual.shape[0])

    def fields(self) -> tuple[np.ndarray, ...]:
        return (self.visual, self.emotion, self.intention, self.emotion_probs, self.patches)

    @staticmethod
    def concat(parts: list[StickerArrays]) -> StickerArrays:
        return StickerArrays(*(np.concatenate(column) for column in zip(*(p.fields() for p in parts), strict=True)))


class SearchSettings(BaseModel):
    """Query-time knobs of approximate indexes; None where the index type has no such knob."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    nprobe: int | None = None  # IVF: inverted lists visited per query
    ef_search: int | None = None  # HNSW: candidate list size per query
    k_factor: float | None = None  # re-scored factories (",RFlat"): k_factor * k candidates scored exactly


class Dims(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    visual: int
    emotion: int
    intention: int
    emotion_probs: int
    patches: tuple[int, int]  # (T, D)


class FileEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sha256: str
    bytes: int


class Manifest(BaseModel):
    """What a version holds and how it was made (manifest.json)."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    format_version: int
    index_version: str
    model_version: str
    image_cache_key: str | None
    emotion_labels: tuple[str, ...]
    created: str  # ISO 8601, UTC
    factory: str
    metric: Literal["inner_product"] = "inner_product"
    search: SearchSettings
    count: int
    counts: dict[str, int]  # stickers per pack
    dims: Dims
    catalog_root: str
    parent_version: str | None  # the version rows were reused from, if any
    embedded: int  # rows embedded for this version
    reused: int  # rows copied unchanged from parent_version
    files: dict[str, FileEntry]
    ocr: str | None = None  # the OCR settings (eigml.ocr.cache_key) sticker texts were read with; None: no OCR
    ocr_read: int = 0  # images the OCR engine read for this version (the others came from cache or the parent)
    # how much of a tagged sticker's intention its tags gave (index.embed.TAG_ACT_WEIGHT); None: none (older builds)
    tag_act_weight: float | None = None


@dataclass(frozen=True)
class StoredVersion:
    manifest: Manifest
    stickers: list[StickerRecord]
    packs: dict[str, PackRecord]
    arrays: StickerArrays
    faiss_bytes: bytes


def check_version(version: str) -> str:
    """`version` if it is a version name (`<6-digit sequence>-<10 hex>`), else IndexStoreError.

    The one gate for every place a version string becomes a path (CURRENT, the reload API, Redis), so
    `../../x` or an absolute path never reaches the file system.
    """
    if not isinstance(version, str) or not _VERSION.fullmatch(version):
        raise IndexStoreError(f"{version!r} is not an index version (<6-digit sequence>-<10 hex digits>)")
    return version


# ---- reading ---------------------------------------------------------------------------------------
def current_version(root: Path) -> str | None:
    """The version CURRENT names, or None when nothing was published under `root`."""
    path = Path(root) / CURRENT_FILE
    if not path.is_file():
        return None
    version = path.read_text().strip()
    return check_version(version) if version else None


def list_versions(root: Path) -> list[str]:
    """Complete versions under `root`, oldest first (by sequence number)."""
    folder = Path(root) / VERSIONS_DIR
    if not folder.is_dir():
        return []
    found = [p.name for p in folder.iterdir()
             if _VERSION.match(p.name) and (p / MANIFEST_FILE).is_file()]
    return sorted(found, key=lambda v: int(v[:6]))


def read_manifest(root: Path, version: str) -> Manifest:
    path = Path(root) / VERSIONS_DIR / check_version(version) / MANIFEST_FILE
    if not path.is_file():
        raise IndexStoreError(f"no index version {version!r} under {root} "
                              f"(versions: {', '.join(list_versions(root)) or 'none'})")
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("format_version") not in READABLE_FORMATS:
        raise IndexStoreError(f"index {path.parent} is format {data.get('format_version')}; this code reads "
                              f"formats {', '.join(map(str, READABLE_FORMATS))} (rebuild it with `python -m index "
                              "build`, or use the code version it was built with)")
    return Manifest.model_validate(data)


def read_version(root: Path, version: str | None = None, *, verify: bool = True) -> StoredVersion:
    """Everything one version holds (None: the CURRENT one); with `verify`, every file's sha256 is checked."""
    root = Path(root)
    if version is not None:
        return _read(root, version, verify)
    for attempt in range(3):
        current = current_version(root)
        if current is None:
            raise IndexStoreError(f"no index under {root} (no {CURRENT_FILE}); build one with "
                                  "`python -m index build --model CHECKPOINT --catalog DIR --out ROOT`")
        try:
            return _read(root, current, verify)
        except IndexStoreError:
            # a writer may have moved CURRENT on and pruned this version between the two reads
            if attempt == 2 or current_version(root) == current:
                raise
    raise AssertionError("unreachable")


def _read(root: Path, version: str, verify: bool) -> StoredVersion:
    manifest = read_manifest(root, check_version(version))
    folder = root / VERSIONS_DIR / version
    data: dict[str, bytes] = {}
    for name, entry in manifest.files.items():
        try:
            data[name] = (folder / name).read_bytes()
        except OSError as error:
            raise IndexStoreError(f"index version {version}: cannot read {name}: {error}") from None
        if verify and hashlib.sha256(data[name]).hexdigest() != entry.sha256:
            raise IndexStoreError(f"index version {version}: {name} does not match its checksum (damaged)")
    arrays = StickerArrays(**{f: np.load(io.BytesIO(data[n]), allow_pickle=False) for f, n in ARRAY_FILES.items()})
    stickers = [StickerRecord(**row) for row in json.loads(data[STICKERS_FILE])]
    packs = {name: PackRecord(**p) for name, p in json.loads(data[PACKS_FILE]).items()}
    if len(stickers) != len(arrays) or len(stickers) != manifest.count:
        raise IndexStoreError(f"index version {version}: {len(stickers)} stickers, {len(arrays)} rows, "
                              f"manifest says {manifest.count}")
    return StoredVersion(manifest, stickers, packs, arrays, data[FAISS_FILE])


# ---- writing ---------------------------------------------------------------------------------------
def encode_files(stickers: list[StickerRecord], packs: Mapping[str, PackRecord], arrays: StickerArrays,
                 faiss_bytes: bytes) -> dict[str, bytes]:
    """The bytes of every file of a version except the manifest."""
    files = {FAISS_FILE: faiss_bytes,
             STICKERS_FILE: _json([asdict(s) for s in stickers]),
             PACKS_FILE: _json({name: asdict(p) for name, p in sorted(packs.items())})}
    for field, name in ARRAY_FILES.items():
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(getattr(arrays, field)), allow_pickle=False)
        files[name] = buffer.getvalue()
    return files


def publish_version(root: Path, files: Mapping[str, bytes], manifest_fields: Mapping[str, object], *,
                    activate: bool = True, keep: int = 3) -> str:
    """Write a new version atomically and (with `activate`) make it CURRENT; returns the version.

    `manifest_fields` is the manifest less format_version, index_version, created and files. Afterwards
    only the newest `keep` versions (and CURRENT) remain.
    """
    if keep < 1:
        raise ValueError(f"keep must be at least 1, got {keep}")
    root = Path(root)
    (root / VERSIONS_DIR).mkdir(parents=True, exist_ok=True)
    entries = {name: FileEntry(sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))
               for name, data in sorted(files.items())}
    content = hashlib.sha256(_json({k: e.sha256 for k, e in entries.items()})).hexdigest()[:10]
    with _lock(root):
        existing = list_versions(root)
        version = f"{(int(existing[-1][:6]) + 1) if existing else 1:06d}-{content}"
        manifest = Manifest.model_validate({
            **manifest_fields, "format_version": FORMAT_VERSION, "index_version": version,
            "created": datetime.now(UTC).isoformat(timespec="seconds"), "files": entries})
        tmp = root / VERSIONS_DIR / f"{version}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            for name, data in files.items():
                _write_synced(tmp / name, data)
            _write_synced(tmp / MANIFEST_FILE, _json(manifest.model_dump(mode="json")))
            _fsync_dir(tmp)
            os.rename(tmp, root / VERSIONS_DIR / version)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)  # a failed write (disk full, interrupted) leaves nothing
            raise
        _fsync_dir(root / VERSIONS_DIR)
        if activate:
            _set_current(root, version)
        _prune(root, keep)
    return version


def set_current(root: Path, version: str) -> None:
    """Make an existing, complete version the one readers load."""
    root = Path(root)
    with _lock(root):
        read_manifest(root, check_version(version))
        _set_current(root, version)


def _set_current(root: Path, version: str) -> None:
    tmp = root / f"{CURRENT_FILE}.tmp"
    _write_synced(tmp, f"{version}\n".encode())
    os.replace(tmp, root / CURRENT_FILE)
    _fsync_dir(root)


def _prune(root: Path, keep: int) -> None:
    """Delete all but the newest `keep` versions (never CURRENT) and leftovers of interrupted writes."""
    versions = list_versions(root)
    current = current_version(root)
    for version in versions[:-keep]:
        if version != current:
            shutil.rmtree(root / VERSIONS_DIR / version, ignore_errors=True)
    # only one writer at a time holds the lock, so any *.tmp folder now is an interrupted write
    for leftover in (root / VERSIONS_DIR).glob("*.tmp"):
        shutil.rmtree(leftover, ignore_errors=True)


@contextmanager
def _lock(root: Path) -> Iterator[None]:
    """One writer at a time per root (an advisory lock on root/.lock); readers never lock."""
    with open(root / ".lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _json(value: object) -> bytes:
    return (json.dumps(value, ensure_ascii=False, indent=1, sort_keys=False) + "\n").encode("utf-8")
