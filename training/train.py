"""`python -m training train --config configs/NAME.yaml [--section.key value ...]`.

Single process, or `torchrun --nproc_per_node N -m training train ...` (DDP over gloo on CPU). Seeded;
evaluates on dev every `run.eval_every` steps, keeps the best checkpoint by `run.select_metric`, saves
`last/` for `--run.resume true`, and writes loss and dev-metric curves as PNG.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import yaml
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from eigml.catalog import Catalog, load_catalog
from eigml.checkpoint import save_checkpoint
from eigml.model.eigml import EIGML
from eigml.paths import Paths
from training.benchmarks.eigml_ranker import EIGMLRanker
from training.benchmarks.evaluation import Metrics, compute_metrics
from training.config import TrainConfig, load_train_config
from training.data import SRSItem, load_srs
from training.data.batching import build_prefix_cache, epoch_batches, make_batch
from training.data.emotion_taggers import EmotionTagger, EmotionTaggerConfig, build_emotion_tagger
from training.data.sticker_bank import StickerBank, build_sticker_bank, sticker_emotion_targets
from training.plots import plot_history
from training.reply_head import fit_reply_head

ACCEPTS_OVERRIDES = True


@dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls, env: dict[str, str]) -> DistEnv:
        return cls(rank=int(env.get("RANK", 0)), world_size=int(env.get("WORLD_SIZE", 1)))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _resolve(path: str, paths: Paths) -> Path:
    candidate = Path(path).expanduser()
    if candidate.is_absolute() or candidate.exists():
        return candidate
    return paths.data_dir / candidate


def load_items(cfg: TrainConfig, paths: Paths, catalog: Catalog) -> tuple[list[SRSItem], list[SRSItem]]:
    """Training and dev items for the configured source."""
    if cfg.data.source == "catalog":
        from training.data.synthetic import catalog_items

        train, dev = catalog_items(catalog, seed=cfg.run.seed)
    elif cfg.data.source == "licence":
        from training.data.licence_clean import DEFAULT_DIR, licence_items

        directory = Path(cfg.data.licence_dir).expanduser() if cfg.data.licence_dir else DEFAULT_DIR
        tagger = build_emotion_tagger(EmotionTaggerConfig(kind="english"))
        train, dev = licence_items(catalog, directory=directory, seed=cfg.run.seed, tag=tagger.tag)
    else:
        if cfg.data.train is None:
            raise ValueError("data.train is required when data.source is 'srs'")
        train = load_srs(_resolve(cfg.data.train, paths))
        dev = load_srs(_resolve(cfg.data.dev, paths)) if cfg.data.dev else []
    if cfg.data.max_train_items:
        train = train[: cfg.data.max_train_items]
    if cfg.data.max_dev_items:
        dev = dev[: cfg.data.max_dev_items]
    return train, dev


def cached_prefixes(items: list[SRSItem], model: EIGML, root: Path, progress: bool) -> list[torch.Tensor]:
    """The frozen text layers' output for every item, kept on disk by (encoder, split, items) so that
    ablations and reruns over the same data skip the largest fixed cost of a run."""
    encoder = model.text_encoder
    embeddings: nn.Module = encoder.model.embeddings  # type: ignore[assignment]  # BERT-family models have one
    digest = hashlib.sha256(json.dumps({
        "encoder": encoder.config.model_dump(mode="json", exclude={"trainable_layers", "dropout"}),
        "split": encoder.split,
        "weights": [float(p.detach().double().sum()) for p in embeddings.parameters()],
        "items": [(i.id, [(t.speaker, t.text) for t in i.dialogue.turns], i.dialogue.responder) for i in items],
    }, sort_keys=True).encode()).hexdigest()[:16]
    path = root / f"{digest}.pt"
    if path.exists():
        return torch.load(path, weights_only=True)
    prefixes = build_prefix_cache(items, encoder, progress=progress)
    root.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")  # DDP processes may write at once
    torch.save(prefixes, tmp)
    tmp.replace(path)
    return prefixes


def class_balance_weights(items: list[SRSItem], power: float) -> torch.Tensor | None:
    """(N,) item weights (1/frequency of the item's class)^power, mean 1; None when power is 0."""
    if power == 0:
        return None
    return _balanced([item.emotion if item.emotion is not None else item.answer for item in items], power)


def act_balance_weights(items: list[SRSItem], power: float) -> torch.Tensor | None:
    """(N,) weights of the intention loss, (1/frequency of the item's dialogue act)^power over the items
    that have one (mean 1 there, 0 elsewhere); None when power is 0 or no item has an act."""
    if power == 0 or all(item.act is None for item in items):
        return None
    return _balanced([item.act for item in items], power)


def _balanced(classes: Sequence[str | None], power: float) -> torch.Tensor:
    counts = Counter(c for c in classes if c is not None)
    weights = torch.tensor([(len(classes) / counts[c]) ** power if c is not None else 0.0 for c in classes])
    return weights / weights[weights > 0].mean()


def select_value(metrics: Metrics, name: str) -> float:
    value = getattr(metrics, name)
    if value is None:  # e.g. macro R@1 on data without emotion labels
        return float(metrics.map)
    return float(value)


def evaluate_dev(ranker: EIGMLRanker, dev: list[SRSItem], batch_size: int) -> Metrics:
    rankings: list[list[str]] = []
    for start in range(0, len(dev), batch_size):
        rankings.extend(ranker.rank(dev[start:start + batch_size]))
    return compute_metrics(rankings, [item.answer for item in dev], [item.emotion for item in dev])


def _optimizer(model: EIGML, cfg: TrainConfig) -> torch.optim.Optimizer:
    encoder: list[nn.Parameter] = []
    heads: list[nn.Parameter] = []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (encoder if name.startswith(("text_encoder.", "image_encoder.")) else heads).append(param)
    return torch.optim.AdamW([
        {"params": encoder, "lr": cfg.optim.lr},
        {"params": heads, "lr": cfg.optim.head_lr},
    ], weight_decay=cfg.optim.weight_decay)


def _lr_factor(step: int, total: int, warmup: int, delay: int = 0) -> float:
    """Linear warmup then linear decay to 0 at `total`; 0 for the first `delay` steps, the schedule then
    running over the steps that remain."""
    if step < delay:
        return 0.0
    step, total = step - delay, total - delay
    if step < warmup:
        return (step + 1) / max(1, warmup)
    return max(0.0, (total - step) / max(1, total - warmup))


@dataclass
class TrainingData:
    """Everything the loop reads besides the model, built once before the first step."""

    train_items: list[SRSItem]
    dev_items: list[SRSItem]
    bank: StickerBank  # backbone features of every candidate (and its other-pack art)
    sticker_targets: torch.Tensor  # (bank rows, E) emotion distribution of each sticker
    sticker_intentions: torch.Tensor | None  # (bank rows, A) intention distribution of each sticker, if known
    pseudo_emotions: dict[str, np.ndarray] | None  # item id -> tagger's emotion guess, for unlabelled items
    intention_index: dict[str, int]
    item_weights: torch.Tensor | None  # class-balancing weights, one per training item
    act_weights: torch.Tensor | None  # class-balancing weights of the intention loss, one per training item
    prefixes: list[torch.Tensor] | None  # frozen text layers' output per training item


def start_run(cfg: TrainConfig, env: DistEnv) -> Path:
    """Join the process group, seed, and (main process) create the output folder with the resolved config."""
    if env.world_size > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")
    if cfg.run.num_threads:
        torch.set_num_threads(cfg.run.num_threads)
    seed_everything(cfg.run.seed + env.rank)
    out_dir = Path(cfg.run.out_dir)
    if env.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    return out_dir


def build_model(cfg: TrainConfig, paths: Paths, train_items: list[SRSItem]) -> EIGML:
    """A fresh model whose intention head covers the dialogue acts of the training items."""
    intention_labels = tuple(sorted({i.act for i in train_items if i.act is not None}))
    # identical initial weights on every process (and in every run that shares init_seed)
    torch.manual_seed(cfg.run.seed if cfg.run.init_seed is None else cfg.run.init_seed)
    model = EIGML(cfg.model, intention_labels=intention_labels, models_dir=paths.cache_dir / "models")
    if cfg.run.init_seed not in (None, cfg.run.seed):
        torch.manual_seed(cfg.run.seed)  # the rest of the run (dropout) follows its own seed
    return model


def sticker_tagger(cfg: TrainConfig, catalog: Catalog,
                   tagger: EmotionTagger | None) -> Callable[[Sequence[str]], np.ndarray] | None:
    """Emotion targets of stickers that answer no training item: the licence-clean labels for the default
    model (stickers without a feeling get a uniform row), else the tagger's reading of their English tags."""
    if cfg.data.source == "licence":
        from training.data.licence_clean import DEFAULT_DIR, sticker_targets

        directory = Path(cfg.data.licence_dir).expanduser() if cfg.data.licence_dir else DEFAULT_DIR
        return lambda ids: sticker_targets(catalog, ids, directory, tagger.tag if tagger else None)
    if tagger is None:
        return None
    return lambda ids: tagger.tag([catalog.describe(s, "en") for s in ids])


def sticker_intention_rows(cfg: TrainConfig, catalog: Catalog, bank: StickerBank, labels: Sequence[str],
                           emotion_targets: torch.Tensor, train_items: Sequence[SRSItem]) -> torch.Tensor | None:
    """(bank rows, A) intention targets of the stickers, for the default model's intention vocabulary
    (licence data; training.data.licence_clean.sticker_intention_targets): what their tags mark, else what
    replies of their emotion (`emotion_targets`, (bank rows, E)) do in `train_items`; other-pack art shares
    its sticker's. None for the benchmarks, whose dialogue acts (inform, question, ...) no sticker tag marks."""
    if cfg.data.source != "licence" or not labels:
        return None
    from training.data.licence_clean import intentions_by_emotion, sticker_intention_targets

    emotions = emotion_targets[: len(bank)].double().numpy()
    unmarked = emotions @ intentions_by_emotion(train_items, labels)
    flat = emotions.max(1) - emotions.min(1) < 1e-6  # no feeling (objects): does no one thing either
    unmarked[flat] = 1.0 / len(labels)
    rows = torch.zeros(bank.features.shape[0], len(labels))
    rows[: len(bank)] = torch.from_numpy(sticker_intention_targets(catalog, bank.ids, labels, unmarked))
    for row, variants in enumerate(bank.variants):
        for v in variants:
            rows[v] = rows[row]
    return rows


def prepare_data(cfg: TrainConfig, paths: Paths, env: DistEnv, model: EIGML, catalog: Catalog,
                 train_items: list[SRSItem], dev_items: list[SRSItem]) -> TrainingData:
    """Sticker features, emotion targets (labels, else the tagger's guesses) and the text prefix cache."""
    sticker_ids = sorted({c for item in train_items + dev_items for c in item.candidates})
    bank = build_sticker_bank(catalog, sticker_ids, model.cached_image_features(paths.cache_dir / "features"),
                              style_packs=cfg.data.style_packs, progress=env.is_main)
    tagger = build_emotion_tagger(EmotionTaggerConfig(kind=cfg.data.emotion_tagger,
                                                      cache_dir=paths.cache_dir / "jieba")) \
        if cfg.data.emotion_tagger else None
    targets = sticker_emotion_targets(bank, train_items, sticker_tagger(cfg, catalog, tagger))
    pseudo = None
    if tagger is not None and cfg.data.pseudo_emotion_weight > 0:
        unlabelled = [item for item in train_items if item.emotion is None]
        tagged = list(tagger.tag([item.dialogue.turns[-1].text for item in unlabelled])) if unlabelled else []
        pseudo = {item.id: row for item, row in zip(unlabelled, tagged, strict=True)}
    prefixes = (cached_prefixes(train_items, model, paths.cache_dir / "prefix", progress=env.is_main)
                if model.text_encoder.uses_prefix else None)
    return TrainingData(train_items=train_items, dev_items=dev_items, bank=bank, sticker_targets=targets,
                        sticker_intentions=sticker_intention_rows(cfg, catalog, bank, model.intention_labels, targets,
                                                                  train_items),
                        pseudo_emotions=pseudo,
                        intention_index={label: i for i, label in enumerate(model.intention_labels)},
                        item_weights=class_balance_weights(train_items, cfg.data.balance_power),
                        act_weights=act_balance_weights(train_items, cfg.data.balance_power), prefixes=prefixes)


class Trainer:
    """The optimisation state of one run (model, optimiser, schedule, step, best dev value, history) and
    the loop over it: `resume`, then `run_epoch` until the step budget is spent, then `finish`."""

    def __init__(self, cfg: TrainConfig, env: DistEnv, model: EIGML, data: TrainingData, out_dir: Path) -> None:
        self.cfg, self.env, self.model, self.data = cfg, env, model, data
        self.best_dir, self.last_dir = out_dir / "best", out_dir / "last"
        self.out_dir = out_dir
        steps_per_epoch = max(1, len(data.train_items) // (cfg.optim.batch_size * env.world_size))
        self.steps_per_epoch = steps_per_epoch
        self.total_steps = cfg.optim.max_steps or max(1, math.ceil(cfg.optim.epochs * steps_per_epoch))
        self.optimizer = _optimizer(model, cfg)
        warmup = int(cfg.optim.warmup_ratio * self.total_steps)
        delay = int(cfg.optim.encoder_delay_ratio * self.total_steps)  # encoder group first, then the heads
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, [
            lambda s: _lr_factor(s, self.total_steps, warmup, delay),
            lambda s: _lr_factor(s, self.total_steps, warmup)])
        self.step, self.best = 0, -math.inf
        self.history: dict[str, list[dict[str, Any]]] = {"train": [], "dev": []}

    def resume(self) -> None:
        """Continue from `last/state.pt` when `run.resume` is set and one exists; then wrap for DDP."""
        state_file = self.last_dir / "state.pt"
        if self.cfg.run.resume and state_file.exists():
            state = torch.load(state_file, weights_only=False)
            self.model.load_state_dict(state["model"], strict=False)
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.step, self.best, self.history = state["step"], state["best"], state["history"]
            torch.set_rng_state(state["torch_rng"])
            if self.env.is_main:
                print(f"resumed from {self.last_dir} at step {self.step}")
        self.wrapped = (DistributedDataParallel(self.model, find_unused_parameters=True)
                        if self.env.world_size > 1 else self.model)
        self.generator = torch.Generator().manual_seed(self.cfg.run.seed)
        for _ in range(self.step // self.steps_per_epoch):  # replay the shuffles of finished epochs
            torch.randperm(len(self.data.train_items), generator=self.generator)
        self.ranker = EIGMLRanker(self.model, self.data.bank)
        self.started = time.perf_counter()
        self.bar = tqdm(total=self.total_steps, initial=self.step, desc="train", unit="step",
                        disable=not self.env.is_main)

    def run_epoch(self) -> None:
        """One pass over the shuffled items, cut short when the step budget runs out; evaluates every
        `run.eval_every` steps and at the end of an epoch that ran to completion."""
        self.model.train()
        env = self.env
        for indices in epoch_batches(len(self.data.train_items), self.cfg.optim.batch_size, self.generator,
                                     env.rank, env.world_size):
            if self.step >= self.total_steps:
                return
            self.train_step(indices)
            if self.cfg.run.eval_every and self.step % self.cfg.run.eval_every == 0:
                self.model.eval()
                self.evaluate_and_save()
                self.model.train()
        self.model.eval()
        self.evaluate_and_save()

    def train_step(self, indices: list[int]) -> None:
        cfg, data = self.cfg, self.data
        batch = make_batch([data.train_items[i] for i in indices], self.model.text_encoder.tokenize, data.bank,
                           data.intention_index, style_prob=cfg.data.style_prob, generator=self.generator,
                           prefixes=[data.prefixes[i] for i in indices] if data.prefixes is not None else None,
                           pseudo_emotions=data.pseudo_emotions, pseudo_weight=cfg.data.pseudo_emotion_weight)
        if data.item_weights is not None:
            batch.item_weight = data.item_weights[indices]
        if data.act_weights is not None:
            batch.act_weight = data.act_weights[indices]
        sweep = (torch.randint(0, data.bank.features.shape[0], (cfg.data.sticker_sweep,), generator=self.generator)
                 if cfg.data.sticker_sweep else None)
        terms = self.wrapped(batch, data.bank.features, data.sticker_targets,  # named, weighted loss terms
                             data.sticker_intentions, sweep)
        loss = sum(terms.values())
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.optim.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        self.bar.update(1)
        if self.step % cfg.run.log_every == 0 or self.step == self.total_steps:
            row = {"step": self.step, "loss": loss.item(), **{k: v.item() for k, v in terms.items()}}
            self.history["train"].append(row)
            self.bar.set_postfix(loss=f"{row['loss']:.3f}")

    def evaluate_and_save(self) -> None:
        """Score the dev items (main process) and save `best/` when the selected metric improved."""
        if not (self.env.is_main and self.data.dev_items):
            return
        cfg, step = self.cfg, self.step
        self.fit_reply_head()
        self.ranker.refresh()
        metrics = evaluate_dev(self.ranker, self.data.dev_items, cfg.run.eval_batch_size)
        value = select_value(metrics, cfg.run.select_metric)
        self.history["dev"].append({"step": step, **{k: v for k, v in metrics.__dict__.items()
                                                      if isinstance(v, int | float) or v is None}})
        self.bar.write(f"step {step}: dev {cfg.run.select_metric}={value:.4f} map={metrics.map:.4f} "
                       f"r@1={metrics.r_at_1:.4f} macro-r@1={metrics.macro_r_at_1_by_emotion} f1={metrics.macro_f1}")
        if value > self.best:
            self.best = value
            save_checkpoint(self.model, self.best_dir, train_config=cfg, metrics=metrics.__dict__ | {"step": step})

    def fit_reply_head(self) -> None:
        """Fit the reply-emotion reader on the encoder as it stands (models that have one), before a
        checkpoint is scored or saved."""
        if self.model.reply_emotion_head is None:
            return
        try:
            fit = fit_reply_head(self.model, self.data.train_items)
        except ValueError as error:  # e.g. a licence dir without authored rows: the shared head serves
            self.history.setdefault("reply_head", []).append({"step": self.step, "skipped": str(error)})
            self.bar.write(f"step {self.step}: reply-emotion reader not fitted, the shared emotion head serves: {error}")
            return
        self.history.setdefault("reply_head", []).append({"step": self.step, "rows": fit.rows,
                                                          "train_accuracy": fit.train_accuracy})
        self.bar.write(f"step {self.step}: reply-emotion reader fitted on {fit.rows} rows "
                       f"(training accuracy {fit.train_accuracy:.3f})")

    def finish(self) -> None:
        """Make sure `best/` exists, save `last/` for a resume, and write the history, summary and curves."""
        self.bar.close()
        self.model.eval()
        if not self.env.is_main:
            return
        dev = self.history["dev"]
        if not self.data.dev_items or not self.best_dir.exists():
            if self.data.dev_items and (not dev or dev[-1]["step"] != self.step):
                self.evaluate_and_save()
            if not self.best_dir.exists():
                self.fit_reply_head()
                save_checkpoint(self.model, self.best_dir, train_config=self.cfg, metrics={"step": self.step})
        self.last_dir.mkdir(parents=True, exist_ok=True)
        torch.save({"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                    "scheduler": self.scheduler.state_dict(), "step": self.step, "best": self.best,
                    "history": self.history, "torch_rng": torch.get_rng_state()}, self.last_dir / "state.pt")
        summary = {"steps": self.step, "seconds": round(time.perf_counter() - self.started, 1), "best": self.best,
                   "select_metric": self.cfg.run.select_metric, "world_size": self.env.world_size,
                   "peak_rss_mib": round(_peak_rss_mib(), 1)}
        (self.out_dir / "history.json").write_text(json.dumps(self.history, indent=1))
        (self.out_dir / "summary.json").write_text(json.dumps(summary, indent=1))
        plot_history(self.history, self.out_dir)
        print(json.dumps(summary))


def train(cfg: TrainConfig, paths: Paths, env: DistEnv = DistEnv()) -> Path:
    """Train and return the best checkpoint's directory."""
    out_dir = start_run(cfg, env)
    catalog = load_catalog(Path(cfg.data.catalog).expanduser())
    train_items, dev_items = load_items(cfg, paths, catalog)
    model = build_model(cfg, paths, train_items)
    data = prepare_data(cfg, paths, env, model, catalog, train_items, dev_items)
    trainer = Trainer(cfg, env, model, data, out_dir)
    trainer.resume()
    while trainer.step < trainer.total_steps:
        trainer.run_epoch()
    trainer.finish()
    if env.world_size > 1:
        dist.barrier()
    return trainer.best_dir


def _peak_rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="YAML preset (configs/*.yaml)")
    parser.add_argument("--max-steps", type=int, help="stop after this many optimiser steps")
    parser.add_argument("--out-dir", help="where checkpoints, curves and the resolved config go")


def run(args: argparse.Namespace) -> int:
    overrides = list(args.overrides)
    if args.max_steps is not None:
        overrides += ["--optim.max_steps", str(args.max_steps)]
    if args.out_dir is not None:
        overrides += ["--run.out_dir", args.out_dir]
    cfg = load_train_config(args.config, overrides, env=os.environ)
    best = train(cfg, Paths.from_env(), DistEnv.from_env(dict(os.environ)))
    print(f"best checkpoint: {best}")
    return 0
