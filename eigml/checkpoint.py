"""Self-describing checkpoints: `save_checkpoint` writes one, `load_checkpoint` reads it back.

A checkpoint folder holds `model.json` (format, version, model config, label sets, training metrics),
`text_encoder/` (fine-tuned weights + tokenizer, loadable without the hub) and `heads.safetensors`
(every other trained weight). A frozen image backbone is not copied: the config names it and
`model.json` records its cache key, which the loader checks.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from eigml import __version__
from eigml.model.config import ModelConfig
from eigml.model.eigml import EIGML

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

