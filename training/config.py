"""One typed config per training process: class defaults < YAML preset < environment < CLI overrides.

Overrides are dotted paths, e.g. `--optim.lr 3e-5 --model.eiks.enabled false`; values are parsed as YAML
scalars so types follow the schema, and a bad key or value fails when the config is built.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from eigml.model.config import ModelConfig
from training.data.emotion_taggers import TaggerKind

DataSource = Literal["srs", "catalog", "licence"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(_Strict):
    # "catalog": pairs synthesised from the catalogue's names and tags; "licence": the licence-clean texts
    # vendored in data/licence_clean (the default model's data, see training/data/licence_clean.py)
    source: DataSource = "srs"
    licence_dir: str | None = None  # default: the repo's data/licence_clean
    train: str | None = None  # SRS JSON Lines; relative paths are resolved against the data dir
    dev: str | None = None
    catalog: str = "~/.cache/stickers/catalog/default"
    max_train_items: int | None = None
    max_dev_items: int | None = None
    # Other art for the same emoji (same stem in these packs) replaces a candidate's image with this
    # probability, so the model learns emotion from pictures rather than from one pack's pixels.
    style_packs: tuple[str, ...] = ("twemoji", "openmoji")
    style_prob: float = 0.3
    # Items without an emotion label get a lexicon tagger's reading of their last turn as a soft target
    # (weighted by pseudo_emotion_weight), and stickers without labelled answers get their tags' reading.
    emotion_tagger: TaggerKind | None = "auto"
    # Ranking and emotion losses weigh each item by (1 / frequency of its class)^balance_power, the class
    # being the reply's emotion where labelled, else its answer sticker; normalised to mean 1 over the data.
    # 0 trains for plain R@1; toward 1 for recall averaged over classes (macro R@1, macro-F1).
    balance_power: float = Field(default=0.0, ge=0.0, le=1.0)
    pseudo_emotion_weight: float = 0.3
    # Each step, this many sticker bank rows drawn at random (any art) also learn their emotion and intention
    # targets, so that stickers which are rarely a candidate (🔼, 👩‍🦱) are still read right in a served index.
    sticker_sweep: int = Field(default=0, ge=0)


class OptimConfig(_Strict):
    batch_size: int = 32
    epochs: float = 1.0
    max_steps: int | None = None
    lr: float = 5e-5  # text encoder (pretrained)
    head_lr: float = 1e-3  # everything trained from scratch
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    # LP-FT (Kumar et al. 2022): for this share of the steps only the heads train, the pretrained encoder
    # layers wait (learning rate 0); their own warmup and decay then run over the remaining steps. A head
    # that starts random sends random gradients into the pretrained features and distorts them.
    encoder_delay_ratio: float = Field(default=0.0, ge=0.0, lt=1.0)
    grad_clip: float = 1.0


class RunConfig(_Strict):
    out_dir: str = "runs/default"
    seed: int = 0  # data split, shuffles, dropout; and the initial weights unless init_seed is set
    # the initial weights' seed: runs that share it start from the same point and differ only in their data
    # order, so their weights can be averaged (`python -m training soup`)
    init_seed: int | None = None
    eval_every: int = 200  # steps; 0 evaluates once per epoch only
    log_every: int = 20
    resume: bool = False
    num_threads: int | None = None  # torch intra-op threads per process
    eval_batch_size: int = 64
    # dev metric that picks the best checkpoint; falls back to MAP where it is undefined
    select_metric: Literal["map", "r_at_1", "macro_r_at_1_by_emotion", "macro_f1"] = "map"


class TrainConfig(_Strict):
    # mypy does not see ModelConfig's positional Field defaults, so it thinks arguments are missing
    model: ModelConfig = Field(default_factory=ModelConfig)  # type: ignore[arg-type]
    data: DataConfig = Field(default_factory=DataConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    run: RunConfig = Field(default_factory=RunConfig)


def parse_overrides(args: Sequence[str]) -> dict[str, Any]:
    """`["--optim.lr", "1e-4", "--run.seed=3"]` -> {"optim": {"lr": 1e-4}, "run": {"seed": 3}}."""
    out: dict[str, Any] = {}
    items = list(args)
    i = 0
    while i < len(items):
        key = items[i]
        if not key.startswith("--"):
            raise ValueError(f"expected --section.key, got {key!r}")
        key = key[2:]
        if "=" in key:
            key, raw = key.split("=", 1)
        else:
            if i + 1 >= len(items):
                raise ValueError(f"--{key} needs a value")
            raw = items[i + 1]
            i += 1
        i += 1
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = _scalar(raw)
    return out


def _scalar(raw: str) -> Any:
    """A YAML scalar, except that YAML 1.1's strings like '1e-4' are read as the numbers they are."""
    value = yaml.safe_load(raw)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def deep_merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_train_config(path: str | Path | None, overrides: Sequence[str] = (),
                      env: Mapping[str, str] | None = None) -> TrainConfig:
    """Build the config; `env` maps STICKERS_TRAIN__SECTION__KEY=value (the entry point passes os.environ)."""
    raw: dict[str, Any] = {}
    if path is not None:
        loaded = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: a config file must hold a mapping")
        raw = loaded
    env_items: list[str] = []
    for key, value in (env or {}).items():
        if key.startswith("STICKERS_TRAIN__"):
            env_items += ["--" + key[len("STICKERS_TRAIN__"):].lower().replace("__", "."), value]
    raw = deep_merge(raw, parse_overrides(env_items))
    raw = deep_merge(raw, parse_overrides(overrides))
    return TrainConfig.model_validate(raw)
