"""Build and update versioned sticker indexes.

`build_index` embeds every sticker of the chosen packs and publishes a new version. `update_index` adds
and removes packs (or, with no pack changes, rebuilds the current set): a sticker whose image file is
unchanged (same sha256) under the same model is copied from the current version, bit for bit, not
re-embedded; the FAISS index is rebuilt over all rows, so the result equals a full build.
With `ocr`, the words drawn on each sticker are read (eigml.ocr) and stored per row; text is reused from the
parent version or the on-disk text cache for unchanged images, so only new images are read. A sticker with
words gets its emotion from them as well as from its picture (`index.embed.with_text_feelings`).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eigml.catalog import Catalog
from eigml.model.eigml import EIGML
from index.ann import Device, build_faiss_index, check_factory, default_settings, resolve_device, serialize
from index.embed import (
    TAG_ACT_WEIGHT,
    embed_stickers,
    file_sha256,
    read_texts,
    with_tag_acts,
    with_text_feelings,
)
from index.store import (
    Dims,
    IndexStoreError,
    PackRecord,
    SearchSettings,
    StickerArrays,
    StickerRecord,
    StoredVersion,
    encode_files,
    publish_version,
    read_version,
)


class IndexBuildError(ValueError):
    """A build or update the catalogue, the current index or the model cannot satisfy."""


@dataclass(frozen=True)
class RowPlan:
    ids: list[str]  # the new version's rows, in catalogue (sorted id) order
    reuse: dict[int, int]  # new row -> row of the previous version with the same image bytes
    embed: list[int]  # new rows to embed

    @property
    def embed_ids(self) -> list[str]:
        return [self.ids[r] for r in self.embed]


def plan_rows(ids: Sequence[str], checksums: dict[str, str], previous: StoredVersion | None) -> RowPlan:
    """Which rows can be copied from `previous` (same image sha256; the caller checks the model) and which to embed.

    Keyed by image content, not id, so a renamed or moved sticker is reused too.
    """
    by_sha = {s.sha256: row for row, s in enumerate(previous.stickers)} if previous is not None else {}
    reuse: dict[int, int] = {}
    embed: list[int] = []
    for row, sticker_id in enumerate(ids):
        old = by_sha.get(checksums[sticker_id])
        if old is None:
            embed.append(row)
        else:
            reuse[row] = old
    return RowPlan(list(ids), reuse, embed)


def build_index(model: EIGML, catalog: Catalog, root: Path, *, factory: str = "Flat", device: Device = "auto",
                batch_size: int = 64, feature_cache: Path | None = None, publish: bool = True,
                packs: Collection[str] | None = None, search: SearchSettings | None = None,
                keep_versions: int = 3, progress: bool = True, ocr: bool = False,
                text_cache: Path | None = None) -> str:
    """Embed every sticker of `packs` (default: all) and write a new version under `root`; returns it.

    `publish` makes it CURRENT; otherwise it is written beside it (switch with `store.set_current`).
    `ocr` reads the words on every sticker into the index (cached under `text_cache` by image checksum).
    """
    chosen = sorted(catalog.packs) if packs is None else sorted(set(packs))
    unknown = sorted(set(chosen) - set(catalog.packs))
    if unknown:
        raise IndexBuildError(f"unknown pack(s) {', '.join(unknown)}: the catalogue at {catalog.root} has "
                         f"{', '.join(sorted(catalog.packs)) or 'no packs'}")
    return _write_version(model, catalog, Path(root), chosen, None, factory=factory, search=search,
                          device=device, batch_size=batch_size, feature_cache=feature_cache, publish=publish,
                          keep_versions=keep_versions, progress=progress, ocr=ocr, text_cache=text_cache)


def update_index(model: EIGML, catalog: Catalog, root: Path, *, add_packs: Sequence[str] = (),
                 remove_packs: Sequence[str] = (), factory: str | None = None, search: SearchSettings | None = None,
                 reuse: bool = True, allow_model_change: bool = False, device: Device = "auto",
                 batch_size: int = 64, feature_cache: Path | None = None, publish: bool = True,
                 keep_versions: int = 3, progress: bool = True, ocr: bool | None = None,
                 text_cache: Path | None = None) -> str:
    """A new version from the CURRENT one: its packs minus `remove_packs` plus `add_packs`.

    `add_packs` are pack names in `catalog` or pack folders directly inside the catalogue root.
    Unchanged stickers are reused when `reuse` and the model is the one the index was built with;
    another model is an error unless `allow_model_change` (then every sticker is embedded again).
    The factory (and its search settings) stay the current ones unless given. `ocr` None keeps what the
    current version did; sticker text is reused from it for unchanged images whatever the model.
    """
    root = Path(root)
    try:
        previous = read_version(root)
    except IndexStoreError as error:
        raise IndexBuildError(f"nothing to update: {error}") from None
    manifest = previous.manifest
    if manifest.model_version != model.version and not allow_model_change:
        raise IndexBuildError(f"index version {manifest.index_version} under {root} was built with model "
                         f"{manifest.model_version}, the checkpoint is model {model.version}: run "
                         "`python -m index rebuild` to embed every sticker again with the new model")
    packs = _updated_packs(previous, catalog, [_pack_name(p, catalog) for p in add_packs], remove_packs)
    same_model = (manifest.model_version == model.version != "untrained"  # weights without a checkpoint vary
                  and manifest.image_cache_key == model.image_encoder.cache_key
                  and manifest.emotion_labels == model.emotion_labels)
    if search is None and (factory is None or factory == manifest.factory):
        search = manifest.search
    return _write_version(model, catalog, root, packs, previous if reuse and same_model else None,
                          factory=factory or manifest.factory, search=search, device=device,
                          batch_size=batch_size, feature_cache=feature_cache, publish=publish,
                          keep_versions=keep_versions, progress=progress,
                          parent_version=manifest.index_version,
                          ocr=manifest.ocr is not None if ocr is None else ocr, text_cache=text_cache,
                          text_source=previous)


def _pack_name(pack: str, catalog: Catalog) -> str:
    """A pack name, or the name of a pack folder given by path (which must lie in the catalogue root)."""
    if os.sep not in pack:
        return pack
    folder = Path(pack).expanduser()
    if not folder.is_dir():
        raise IndexBuildError(f"pack folder {folder} does not exist")
    if folder.resolve().parent != catalog.root.resolve():
        raise IndexBuildError(f"pack folder {folder} is not in the catalogue at {catalog.root}: copy it there first "
                         f"(cp -r {folder} {catalog.root}/); the index stores image paths relative to the catalogue")
    return folder.name


def _updated_packs(previous: StoredVersion, catalog: Catalog, add: Sequence[str],
                   remove: Sequence[str]) -> list[str]:
    current = set(previous.manifest.counts)
    version = previous.manifest.index_version
    both = sorted(set(add) & set(remove))
    if both:
        raise IndexBuildError(f"pack(s) {', '.join(both)} both added and removed")
    unknown = sorted(set(add) - set(catalog.packs))
    if unknown:
        raise IndexBuildError(f"unknown pack(s) {', '.join(unknown)}: the catalogue at {catalog.root} has "
                         f"{', '.join(sorted(catalog.packs)) or 'no packs'}")
    not_indexed = sorted(set(remove) - current)
    if not_indexed:
        raise IndexBuildError(f"cannot remove pack(s) {', '.join(not_indexed)}: index version {version} has "
                         f"{', '.join(sorted(current))}")
    packs = (current - set(remove)) | set(add)
    missing = sorted(packs - set(catalog.packs))
    if missing:
        raise IndexBuildError(f"pack(s) {', '.join(missing)} of index version {version} are not in the catalogue at "
                         f"{catalog.root} (the index was built from {previous.manifest.catalog_root}): "
                         "pass --remove-pack to drop them or --catalog to point at their catalogue")
    if not packs:
        raise IndexBuildError(f"removing {', '.join(remove)} leaves no packs to index")
    return sorted(packs)


def _assemble(plan: RowPlan, previous: StoredVersion | None, embedded: StickerArrays) -> StickerArrays:
    """Rows in plan order: reused ones copied from `previous`, the others from `embedded` (in plan.embed order)."""
    if not plan.reuse:
        return embedded
    assert previous is not None
    columns = []
    new_rows = np.asarray(list(plan.reuse), dtype=np.int64)
    old_rows = np.asarray(list(plan.reuse.values()), dtype=np.int64)
    embed_rows = np.asarray(plan.embed, dtype=np.int64)
    for old, new in zip(previous.arrays.fields(), embedded.fields(), strict=True):
        out = np.empty((len(plan.ids), *old.shape[1:]), dtype=old.dtype)
        out[new_rows] = old[old_rows]
        out[embed_rows] = new
        columns.append(out)
    return StickerArrays(*columns)


def _write_version(model: EIGML, catalog: Catalog, root: Path, packs: list[str], previous: StoredVersion | None, *,
                   factory: str, search: SearchSettings | None, device: Device, batch_size: int,
                   feature_cache: Path | None, publish: bool, keep_versions: int, progress: bool,
                   parent_version: str | None = None, ocr: bool = False, text_cache: Path | None = None,
                   text_source: StoredVersion | None = None) -> str:
    ids = catalog.ids(packs)
    if not ids:
        raise IndexBuildError(f"packs {', '.join(packs)} of the catalogue at {catalog.root} hold no stickers")
    check_factory(factory, model.config.dim, len(ids))  # before any embedding work
    faiss_device = resolve_device(device)
    checksums = {s: file_sha256(catalog[s].path) for s in ids}
    ocr_key, texts, ocr_read = _texts(catalog, ids, checksums, ocr, text_cache, text_source, progress)
    if previous is not None and (previous.manifest.ocr != ocr_key
                                 or previous.manifest.tag_act_weight != TAG_ACT_WEIGHT):
        previous = None  # its rows carry (or lack) what their text or tags said under other settings
    plan = plan_rows(ids, checksums, previous)
    embedded = embed_stickers(model, catalog, plan.embed_ids, feature_cache=feature_cache, batch_size=batch_size,
                              progress=progress)
    embedded = with_tag_acts(model, embedded, [catalog[s] for s in plan.embed_ids])
    embedded = with_text_feelings(model, embedded, [texts.get(s, "") for s in plan.embed_ids])
    arrays = _assemble(plan, previous, embedded)
    index = build_faiss_index(arrays.visual, factory, device=faiss_device)
    stickers = [_record(catalog, s, checksums[s], texts.get(s)) for s in ids]
    pack_records = {p: PackRecord(name=p, title=catalog.packs[p].title, licence=catalog.packs[p].licence,
                                  attribution=catalog.packs[p].attribution) for p in packs}
    counts = Counter(s.pack for s in stickers)
    fields = {
        "model_version": model.version,
        "image_cache_key": model.image_encoder.cache_key,
        "emotion_labels": model.emotion_labels,
        "factory": factory,
        "search": search if search is not None else default_settings(index),
        "count": len(ids),
        "counts": {p: counts[p] for p in packs},
        "dims": Dims(visual=arrays.visual.shape[1], emotion=arrays.emotion.shape[1],
                     intention=arrays.intention.shape[1], emotion_probs=arrays.emotion_probs.shape[1],
                     patches=(arrays.patches.shape[1], arrays.patches.shape[2])),
        "catalog_root": str(catalog.root.resolve()),
        "parent_version": parent_version,
        "embedded": len(plan.embed),
        "reused": len(plan.reuse),
        "ocr": ocr_key,
        "ocr_read": ocr_read,
        "tag_act_weight": TAG_ACT_WEIGHT,
    }
    files = encode_files(stickers, pack_records, arrays, serialize(index))
    return publish_version(root, files, fields, activate=publish, keep=keep_versions)


def _texts(catalog: Catalog, ids: list[str], checksums: dict[str, str], ocr: bool, text_cache: Path | None,
           source: StoredVersion | None, progress: bool) -> tuple[str | None, dict[str, str], int]:
    """(OCR settings key or None, text per sticker id, images read by the engine) for a new version."""
    if not ocr:
        return None, {}, 0
    from eigml.ocr import cache_key

    key = cache_key()
    known = ({s.sha256: s.text for s in source.stickers if s.text is not None}
             if source is not None and source.manifest.ocr == key else {})
    texts, read = read_texts(catalog, ids, checksums, known=known, text_cache=text_cache, progress=progress)
    return key, texts, read


def _record(catalog: Catalog, sticker_id: str, sha256: str, text: str | None = None) -> StickerRecord:
    s = catalog[sticker_id]
    return StickerRecord(id=s.id, pack=s.pack, stem=s.stem, name=s.names.get("en"), emoji=s.emoji,
                         image=s.path.relative_to(catalog.root).as_posix(), sha256=sha256, text=text)
