"""The typed config of one `python -m index` run, built once at the entry point from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from index.ann import Device
from index.store import SearchSettings

Command = Literal["build", "update", "rebuild"]
OcrMode = Literal["auto", "on", "off"]  # auto: read sticker text when rapidocr-onnxruntime is installed
DEFAULT_FACTORY = "Flat"


class IndexSettings(BaseModel):
    """How the FAISS index is made and searched."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    factory: str | None = None  # FAISS index_factory string; None: "Flat" for build, the current one for update
    nprobe: int | None = Field(default=None, ge=1)  # IVF; None: the documented default (index.ann)
    ef_search: int | None = Field(default=None, ge=1)  # HNSW; None: the documented default
    k_factor: float | None = Field(default=None, ge=1)  # ",RFlat" factories; None: the documented default
    device: Device = "auto"  # FAISS on the GPU when one is present (auto) or required (cuda)
    batch_size: int = Field(default=64, ge=1)  # stickers embedded per batch
    keep_versions: int = Field(default=3, ge=1)  # older versions are deleted after publishing
    ocr: OcrMode = "auto"  # read the words drawn on stickers into the index (eigml.ocr); ~0.6 s a new image

    def search(self) -> SearchSettings | None:
        if self.nprobe is None and self.ef_search is None and self.k_factor is None:
            return None
        return SearchSettings(nprobe=self.nprobe, ef_search=self.ef_search, k_factor=self.k_factor)


class IndexCommandConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    command: Command
    root: Path  # the index root (versions/ and CURRENT)
    model: Path  # an EIGML checkpoint folder
    catalog: Path  # the sticker catalogue folder
    feature_cache: Path  # backbone feature cache (shared with training)
    models_dir: Path  # converted backbone weights (shared with training)
    text_cache: Path | None = None  # OCR text per image checksum (shared with training); None: no cache
    packs: tuple[str, ...] | None = None  # build: only these packs (None: all)
    add_packs: tuple[str, ...] = ()  # update: pack names or pack folders inside the catalogue
    remove_packs: tuple[str, ...] = ()  # update: pack names
    full: bool = False  # rebuild: embed every sticker again instead of reusing unchanged ones
    publish: bool = True  # make the new version CURRENT
    progress: bool = True
    index: IndexSettings = IndexSettings()  # frozen, so one shared default is safe

    @model_validator(mode="after")
    def _flags_fit_command(self) -> IndexCommandConfig:
        if self.command != "update" and (self.add_packs or self.remove_packs):
            raise ValueError("--add-pack/--remove-pack belong to `update`")
        if self.command != "build" and self.packs is not None:
            raise ValueError("--packs belongs to `build`; use `update --add-pack/--remove-pack`")
        if self.command == "update" and not (self.add_packs or self.remove_packs):
            raise ValueError("update needs --add-pack or --remove-pack (use `rebuild` to refresh the same packs)")
        return self
