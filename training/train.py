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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import yaml
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from eigml.catalog import load_catalog
from eigml.checkpoint import EIGMLRanker, save_checkpoint
from eigml.model.eigml import EIGML, sticker_emotion_targets
from eigml.model.emotion import EmotionTaggerConfig, build_emotion_tagger
from eigml.paths import Paths
from training.batching import build_prefix_cache, epoch_batches, make_batch
from training.config import TrainConfig, load_train_config
from training.data import SRSItem, load_srs
from training.evaluation import compute_metrics
from training.plots import plot_history
from training.sticker_bank import build_sticker_bank

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


def load_items(cfg: TrainConfig, paths: Paths, catalog) -> tuple[list[SRSItem], list[SRSItem]]:
    """Training and dev items for the configured source."""
    if cfg.data.source == "catalog":
        from training.synthetic import catalog_items

        train, dev = catalog_items(catalog, seed=cfg.run.seed)
    elif cfg.data.source == "licence":
        from training.licence_clean import DEFAULT_DIR, licence_items

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
    digest = hashlib.sha256(json.dumps({
        "encoder": encoder.config.model_dump(mode="json", exclude={"trainable_layers", "dropout"}),
        "split": encoder.split,
        "weights": [float(p.detach().double().sum()) for p in encoder.model.embeddings.parameters()],
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
    classes = [item.emotion if item.emotion is not None else item.answer for item in items]
    counts = Counter(classes)
    weights = torch.tensor([(len(items) / counts[c]) ** power for c in classes])
    return weights / weights.mean()


def select_value(metrics, name: str) -> float:
    value = getattr(metrics, name)
    if value is None:  # e.g. macro R@1 on data without emotion labels
        return float(metrics.map)
    return float(value)


def evaluate_dev(ranker: EIGMLRanker, dev: list[SRSItem], batch_size: int):
    rankings: list[list[str]] = []
    for start in range(0, len(dev), batch_size):
        rankings.extend(ranker.rank(dev[start:start + batch_size]))
    return compute_metrics(rankings, [item.answer for item in dev], [item.emotion for item in dev])


def _optimizer(model: EIGML, cfg: TrainConfig) -> torch.optim.Optimizer:
    encoder, heads = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (encoder if name.startswith(("text_encoder.", "image_encoder.")) else heads).append(param)
    return torch.optim.AdamW([
        {"params": encoder, "lr": cfg.optim.lr},
        {"params": heads, "lr": cfg.optim.head_lr},
    ], weight_decay=cfg.optim.weight_decay)


def _lr_factor(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / max(1, warmup)
    return max(0.0, (total - step) / max(1, total - warmup))


def train(cfg: TrainConfig, paths: Paths, env: DistEnv = DistEnv()) -> Path:
    """Train and return the best checkpoint's directory."""
    if env.world_size > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")
    if cfg.run.num_threads:
        torch.set_num_threads(cfg.run.num_threads)
    seed_everything(cfg.run.seed + env.rank)
    out_dir = Path(cfg.run.out_dir)
    if env.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))

    catalog = load_catalog(Path(cfg.data.catalog).expanduser())
    train_items, dev_items = load_items(cfg, paths, catalog)
    intention_labels = tuple(sorted({i.act for i in train_items if i.act is not None}))
    torch.manual_seed(cfg.run.seed)  # identical initial weights on every process
    model = EIGML(cfg.model, intention_labels=intention_labels, models_dir=paths.cache_dir / "models")
    sticker_ids = sorted({c for item in train_items + dev_items for c in item.candidates})
    bank = build_sticker_bank(catalog, sticker_ids, model.cached_image_features(paths.cache_dir / "features"),
                              style_packs=cfg.data.style_packs, progress=env.is_main)
    tagger = build_emotion_tagger(EmotionTaggerConfig(kind=cfg.data.emotion_tagger,
                                                      cache_dir=paths.cache_dir / "jieba")) \
        if cfg.data.emotion_tagger else None
    tag_stickers = (lambda ids: tagger.tag([catalog.describe(s, "en") for s in ids])) if tagger else None
    if cfg.data.source == "licence":
        from training.licence_clean import DEFAULT_DIR, sticker_targets

        directory = Path(cfg.data.licence_dir).expanduser() if cfg.data.licence_dir else DEFAULT_DIR
        def tag_stickers(ids):  # licence-clean labels; stickers without a feeling get "none"
            return sticker_targets(catalog, ids, directory, tagger.tag if tagger else None)
    targets = sticker_emotion_targets(bank, train_items, tag_stickers)
    pseudo = None
    if tagger is not None and cfg.data.pseudo_emotion_weight > 0:
        unlabelled = [item for item in train_items if item.emotion is None]
        tagged = tagger.tag([item.dialogue.turns[-1].text for item in unlabelled]) if unlabelled else []
        pseudo = {item.id: row for item, row in zip(unlabelled, tagged, strict=True)}
    intention_index = {label: i for i, label in enumerate(intention_labels)}
    weights = class_balance_weights(train_items, cfg.data.balance_power)
    prefixes = (cached_prefixes(train_items, model, paths.cache_dir / "prefix", progress=env.is_main)
                if model.text_encoder.uses_prefix else None)

    steps_per_epoch = max(1, len(train_items) // (cfg.optim.batch_size * env.world_size))
    total_steps = cfg.optim.max_steps or max(1, math.ceil(cfg.optim.epochs * steps_per_epoch))
    optimizer = _optimizer(model, cfg)
    warmup = int(cfg.optim.warmup_ratio * total_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _lr_factor(s, total_steps, warmup))

    step, best, history = 0, -math.inf, {"train": [], "dev": []}
    last_dir = out_dir / "last"
    if cfg.run.resume and (last_dir / "state.pt").exists():
        state = torch.load(last_dir / "state.pt", weights_only=False)
        model.load_state_dict(state["model"], strict=False)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step, best, history = state["step"], state["best"], state["history"]
        torch.set_rng_state(state["torch_rng"])
        if env.is_main:
            print(f"resumed from {last_dir} at step {step}")

    wrapped = DistributedDataParallel(model, find_unused_parameters=True) if env.world_size > 1 else model
    generator = torch.Generator().manual_seed(cfg.run.seed)
    for _ in range(step // steps_per_epoch):  # replay the shuffles of finished epochs after a resume
        torch.randperm(len(train_items), generator=generator)
    ranker = EIGMLRanker(model, bank)
    started = time.perf_counter()
    bar = tqdm(total=total_steps, initial=step, desc="train", unit="step", disable=not env.is_main)
    best_dir = out_dir / "best"

    def evaluate_and_save() -> None:
        nonlocal best
        if not (env.is_main and dev_items):
            return
        ranker.refresh()
        metrics = evaluate_dev(ranker, dev_items, cfg.run.eval_batch_size)
        value = select_value(metrics, cfg.run.select_metric)
        history["dev"].append({"step": step, **{k: v for k, v in metrics.__dict__.items()
                                                 if isinstance(v, int | float) or v is None}})
        bar.write(f"step {step}: dev {cfg.run.select_metric}={value:.4f} map={metrics.map:.4f} "
                  f"r@1={metrics.r_at_1:.4f} macro-r@1={metrics.macro_r_at_1_by_emotion} f1={metrics.macro_f1}")
        if value > best:
            best = value
            save_checkpoint(model, best_dir, train_config=cfg, metrics=metrics.__dict__ | {"step": step})

    while step < total_steps:
        model.train()
        for indices in epoch_batches(len(train_items), cfg.optim.batch_size, generator, env.rank, env.world_size):
            if step >= total_steps:
                break
            batch = make_batch([train_items[i] for i in indices], model.text_encoder.tokenize, bank,
                               intention_index, style_prob=cfg.data.style_prob, generator=generator,
                               prefixes=[prefixes[i] for i in indices] if prefixes is not None else None,
                               pseudo_emotions=pseudo, pseudo_weight=cfg.data.pseudo_emotion_weight)
            if weights is not None:
                batch.item_weight = weights[indices]
            terms = wrapped(batch, bank.features, targets)
            loss = sum(terms.values())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
            optimizer.step()
            scheduler.step()
            step += 1
            bar.update(1)
            if step % cfg.run.log_every == 0 or step == total_steps:
                row = {"step": step, "loss": loss.item(), **{k: v.item() for k, v in terms.items()}}
                history["train"].append(row)
                bar.set_postfix(loss=f"{row['loss']:.3f}")
            if cfg.run.eval_every and step % cfg.run.eval_every == 0:
                model.eval()
                evaluate_and_save()
                model.train()
        else:
            model.eval()
            evaluate_and_save()
            continue
    bar.close()
    model.eval()
    if env.is_main:
        if not dev_items or not best_dir.exists():
            if dev_items and (not history["dev"] or history["dev"][-1]["step"] != step):
                evaluate_and_save()
            if not best_dir.exists():
                save_checkpoint(model, best_dir, train_config=cfg, metrics={"step": step})
        last_dir.mkdir(parents=True, exist_ok=True)
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "step": step, "best": best, "history": history,
                    "torch_rng": torch.get_rng_state()}, last_dir / "state.pt")
        elapsed = time.perf_counter() - started
        summary = {"steps": step, "seconds": round(elapsed, 1), "best": best,
                   "select_metric": cfg.run.select_metric, "world_size": env.world_size,
                   "peak_rss_mib": round(_peak_rss_mib(), 1)}
        (out_dir / "history.json").write_text(json.dumps(history, indent=1))
        (out_dir / "summary.json").write_text(json.dumps(summary, indent=1))
        plot_history(history, out_dir)
        print(json.dumps(summary))
    if env.world_size > 1:
        dist.barrier()
    return best_dir


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
