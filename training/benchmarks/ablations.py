"""The `bench-ablations` command: the full model and each component removed in turn, at one budget.

`python -m training bench-ablations --config configs/ablation_xdd_en.yaml --out-dir runs/ablations/xdd_en`
trains one run per variant into OUT/<variant>/ through the same `train` entry point. Variants switch
components off by config (never by editing code): removing the component removes its parameters or terms.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from eigml.paths import Paths
from training.config import load_train_config
from training.train import DistEnv, train

ACCEPTS_OVERRIDES = True

VARIANTS: dict[str, list[str]] = {
    "full": [],
    "no-inter": ["--model.dlcf.inter_query", "false", "--model.dlcf.inter_emotion", "false",
                 "--model.dlcf.inter_intention", "false"],
    "no-intra": ["--model.dlcf.intra_text", "false", "--model.dlcf.intra_image", "false"],
    "no-eiks": ["--model.eiks.enabled", "false"],
    "no-iega": ["--model.matching.kind", "cosine"],
    "no-samm": ["--model.samm.enabled", "false"],
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, required=True, help="the shared budget (a YAML preset)")
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset")
    parser.add_argument("--skip-existing", action="store_true", help="keep variants that already have best/")


def run(args: argparse.Namespace) -> int:
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown:
        raise SystemExit(f"bench-ablations: unknown variant(s) {unknown}; known: {', '.join(VARIANTS)}")
    for name in names:
        out = args.out_dir / name
        if args.skip_existing and (out / "best").exists():
            print(f"bench-ablations: {name}: kept {out / 'best'}")
            continue
        cfg = load_train_config(args.config, [*args.overrides, *VARIANTS[name], "--run.out_dir", str(out)],
                                env=os.environ)
        print(f"bench-ablations: training {name} into {out}")
        train(cfg, Paths.from_env(), DistEnv())
    return 0
