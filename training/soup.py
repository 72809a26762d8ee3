"""Average the weights of runs that started from the same weights: a uniform model soup.

  python -m training soup --models RUN0/best RUN1/best RUN2/best --out SOUP

Runs trained with the same `run.init_seed` and different `run.seed` start from the same point and differ
only in their data order, split and dropout; their weights average into one model (Wortsman et al., "Model
soups", ICML 2022) that serves at the cost of one. The default model is such a soup (Makefile `model`):
one short run's ranking depends on its seed more than on most recipe changes (docs/results.md), and the
average of several is steadier than any one of them.

Every floating-point tensor is averaged; one that all members share (the frozen layers) is kept as it is,
bit for bit; any other tensor (integer buffers) must be equal in every member.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import torch

from eigml.checkpoint import CheckpointError, load_checkpoint, read_spec, save_checkpoint
from eigml.model.eigml import EIGML


def average_state(states: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The element-wise mean of `states` (same keys and shapes); shared tensors are returned unchanged."""
    if not states:
        raise ValueError("nothing to average")
    keys = set(states[0])
    for i, state in enumerate(states[1:], 1):
        if set(state) != keys:
            raise ValueError(f"member {i} has other weights: {sorted(set(state) ^ keys)[:5]}")
    out: dict[str, torch.Tensor] = {}
    for key, first in states[0].items():
        tensors = [s[key] for s in states]
        if any(t.shape != first.shape for t in tensors):
            raise ValueError(f"{key}: shapes differ ({[tuple(t.shape) for t in tensors]})")
        if all(torch.equal(t, first) for t in tensors[1:]):
            out[key] = first.clone()
        elif first.is_floating_point():
            out[key] = torch.stack([t.double() for t in tensors]).mean(0).to(first.dtype)
        else:
            raise ValueError(f"{key}: members differ and it is not a float tensor ({first.dtype})")
    return out


def soup(directories: Sequence[Path], models_dir: Path | None = None) -> tuple[EIGML, list[str]]:
    """The averaged model of the checkpoints in `directories`, and the members' versions."""
    if len(directories) < 1:
        raise ValueError("give at least one checkpoint")
    specs = [read_spec(d) for d in directories]
    for d, spec in zip(directories[1:], specs[1:], strict=True):
        for field in ("model_config", "emotion_labels", "intention_labels", "image_cache_key"):
            if spec[field] != specs[0][field]:
                raise CheckpointError(f"{d}: {field} differs from {directories[0]}'s; only runs of one config "
                                      "average")
    models = [load_checkpoint(d, models_dir=models_dir) for d in directories]
    merged = average_state([m.state_dict() for m in models])
    model = models[0]
    model.load_state_dict(merged)
    return model.eval(), [m.version for m in models]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", type=Path, nargs="+", required=True, help="checkpoint folders (RUN/best)")
    parser.add_argument("--out", type=Path, required=True, help="the averaged checkpoint's folder")


def run(args: argparse.Namespace) -> int:
    from eigml.paths import Paths

    paths = Paths.from_env()
    model, members = soup(args.models, models_dir=paths.cache_dir / "models")
    version = save_checkpoint(model, args.out, metrics={"soup_of": members,
                                                        "members": [str(d) for d in args.models]})
    print(f"{args.out}: {version}, the average of {len(members)} runs ({', '.join(members)})")
    return 0
