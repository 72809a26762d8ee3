"""Self-describing checkpoints and the model-backed ranker used by `rank`, training and the index.

A checkpoint folder holds `model.json` (format, version, model config, label sets, training metrics),
`text_encoder/` (fine-tuned weights + tokenizer, loadable without the hub) and `heads.safetensors`
(every other trained weight). A frozen image backbone is not copied: the config names it and
`model.json` records its cache key, which the loader checks.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from eigml import __version__
from eigml.catalog import Catalog
from eigml.dialogue import Dialogue
from eigml.model.config import ModelConfig
from eigml.model.eigml import EIGML
from eigml.model.interface import StickerEncoding
from training.data import SRSItem
from training.sticker_bank import StickerBank, build_sticker_bank

FORMAT_VERSION = 1
MODEL_FILE = "model.json"
HEADS_FILE = "heads.safetensors"


class CheckpointError(ValueError):
    """A checkpoint that is missing, of another format, or does not fit this code."""


def _head_state(model: EIGML) -> dict[str, torch.Tensor]:
    skip = ("text_encoder.",) + (() if model.config.image.trainable else ("image_encoder.",))
    return {k: v.detach().contiguous() for k, v in model.state_dict().items() if not k.startswith(skip)}


def save_checkpoint(model: EIGML, directory: Path, *, train_config: Any = None,
                    metrics: dict[str, Any] | None = None) -> str:
    """Write the checkpoint atomically (aside, then renamed into place); returns the model version."""
    directory = Path(directory)
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.text_encoder.save_pretrained(tmp / "text_encoder")
    save_file(_head_state(model), str(tmp / HEADS_FILE))
    digest = hashlib.sha256()
    for path in sorted([tmp / HEADS_FILE, *(tmp / "text_encoder").glob("*.safetensors")]):
        digest.update(path.read_bytes())
    version = f"eigml-{digest.hexdigest()[:12]}"
    spec = {
        "format_version": FORMAT_VERSION,
        "version": version,
        "package_version": __version__,
        "model_config": model.config.model_dump(mode="json"),
        "emotion_labels": list(model.emotion_labels),
        "intention_labels": list(model.intention_labels),
        "image_cache_key": model.image_encoder.cache_key,
        "metrics": _jsonable(metrics or {}),
        "train_config": train_config.model_dump(mode="json") if train_config is not None else None,
    }
    (tmp / MODEL_FILE).write_text(json.dumps(spec, indent=1) + "\n")
    old = directory.with_name(directory.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if directory.exists():
        directory.rename(old)
    tmp.rename(directory)
    shutil.rmtree(old, ignore_errors=True)
    model.version = version
    return version


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def read_spec(directory: Path) -> dict[str, Any]:
    path = Path(directory) / MODEL_FILE
    if not path.is_file():
        raise CheckpointError(f"{directory} is not an EIGML checkpoint (no {MODEL_FILE})")
    spec = json.loads(path.read_text())
    if spec.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{directory} is checkpoint format {spec.get('format_version')}; "
                              f"this code reads format {FORMAT_VERSION}")
    return spec


def load_checkpoint(directory: Path, models_dir: Path | None = None) -> EIGML:
    """The model in eval mode, with `version` set; CheckpointError when it does not fit this code."""
    directory = Path(directory)
    spec = read_spec(directory)
    config = ModelConfig.model_validate(spec["model_config"])
    model = EIGML(config, intention_labels=spec["intention_labels"], models_dir=models_dir,
                  text_weights_dir=directory / "text_encoder")
    if tuple(spec["emotion_labels"]) != model.emotion_labels:
        raise CheckpointError(f"{directory}: emotion labels {spec['emotion_labels']} differ from this code's "
                              f"{list(model.emotion_labels)}")
    if spec["image_cache_key"] != model.image_encoder.cache_key:
        raise CheckpointError(f"{directory}: trained on image features {spec['image_cache_key']}, "
                              f"this code makes {model.image_encoder.cache_key}")
    heads = load_file(str(directory / HEADS_FILE))
    expected = _head_state(model)
    missing, unexpected = sorted(set(expected) - set(heads)), sorted(set(heads) - set(expected))
    reshaped = sorted(k for k in set(expected) & set(heads) if expected[k].shape != heads[k].shape)
    if missing or unexpected or reshaped:
        raise CheckpointError(f"{directory}: weights do not fit the config (missing {missing[:5]}, "
                              f"unexpected {unexpected[:5]}, other shape {reshaped[:5]})")
    model.load_state_dict(heads, strict=False)
    model.version = spec["version"]
    return model.eval()


class EIGMLRanker:
    """Ranks candidates with the full model (final SAMM score). Implements `Ranker` and `CandidateScorer`."""

    def __init__(self, model: EIGML, bank: StickerBank, catalog: Catalog | None = None,
                 cache_root: Path | None = None) -> None:
        self.model = model
        self.bank = bank
        self.catalog = catalog  # lets the bank grow for stickers it has not featurized yet
        self.cache_root = cache_root
        self._encoding: StickerEncoding | None = None

    def refresh(self) -> None:
        """Forget encoded stickers (call after the weights change)."""
        self._encoding = None

    def _ensure(self, sticker_ids: Sequence[str]) -> None:
        missing = sorted({s for s in sticker_ids if s not in self.bank.index})
        if not missing:
            return
        if self.catalog is None:
            raise KeyError(f"{len(missing)} stickers are not in the sticker bank, e.g. {missing[:5]}")
        featurize = (self.model.cached_image_features(self.cache_root) if self.cache_root
                     else self.model.image_features)
        grown = build_sticker_bank(self.catalog, self.bank.ids + missing, featurize, progress=False)
        self.bank = grown
        self._encoding = None

    def _stickers(self) -> StickerEncoding:
        if self._encoding is None:
            with torch.inference_mode():
                self._encoding = self.model.encode_stickers(self.bank.features[: len(self.bank)])
        return self._encoding

    @torch.inference_mode()
    def score(self, dialogues: Sequence[Dialogue], candidates: Sequence[Sequence[str]]) -> list[list[float]]:
        self._ensure([c for cands in candidates for c in cands])
        was_training = self.model.training
        self.model.eval()
        try:
            stickers = self._stickers()
            queries = self.model.encode_dialogues(dialogues)
            width = max(len(c) for c in candidates)
            rows = torch.zeros(len(candidates), width, dtype=torch.long)
            for i, cands in enumerate(candidates):
                rows[i, : len(cands)] = self.bank.rows(cands)
            scores = self.model.score(queries, stickers, rows)
        finally:
            self.model.train(was_training)
        return [scores[i, : len(c)].tolist() for i, c in enumerate(candidates)]

    def rank(self, items: Sequence[SRSItem]) -> list[list[str]]:
        scores = self.score([item.dialogue for item in items], [item.candidates for item in items])
        return [[c for _, c in sorted(zip(s, item.candidates, strict=True), key=lambda p: -p[0])]
                for s, item in zip(scores, items, strict=True)]


def load_ranker_from_checkpoint(path: Path, catalog: Catalog, cache_root: Path | None = None) -> EIGMLRanker:
    """The `rank --model CHECKPOINT` entry: a ranker whose sticker bank grows from `catalog` on demand."""
    model = load_checkpoint(Path(path), models_dir=cache_root / "models" if cache_root else None)
    empty = StickerBank(ids=[], index={}, features=torch.empty(0), variants=[])
    return EIGMLRanker(model, empty, catalog=catalog, cache_root=cache_root / "features" if cache_root else None)
