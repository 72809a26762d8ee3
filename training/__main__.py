"""Command line: `python -m training <command> ...`.

Each command lives in its own module exposing `add_arguments(parser)` and `run(args) -> int`; the module
is imported only when its command runs, so `python -m training evaluate` never loads torch.
Environment variables are read here and nowhere below (see `eigml.paths`).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

COMMANDS: dict[str, tuple[str, str]] = {
    "catalog": ("training.catalog_build", "build the default sticker catalogue from the npm emoji packs"),
    "catalog-styles": ("training.style_packs", "build opt-in art-style packs (Fluent, blobmoji, EmojiOne)"),
    "augment-packs": ("training.augment_packs", "redraw a pack in other looks (outline, gray) for style training"),
    "text-pack": ("training.text_pack", "render an emotion-labelled pack of en/zh text stickers"),
    "rank": ("training.benchmarks.rank", "rank every item's candidates with a model or baseline"),
    "evaluate": ("training.benchmarks.evaluation", "score a predictions file against a benchmark file"),
    "recommend": ("training.recommend", "recommend stickers from the whole catalogue for a dialogue"),
    "bench-baselines": ("training.benchmarks.bench_baselines", "run the baselines on every dev/val benchmark file"),
    "train": ("training.train", "train an EIGML model from a YAML config"),
    "soup": ("training.soup", "average the weights of runs that started from the same weights"),
    "bench-ablations": ("training.benchmarks.ablations", "train the full model and each component removed, at one budget"),
    "bench-report": ("training.benchmarks.report", "score the trained runs on every dev/val file; write docs/results.md"),
    "export": ("eigml.export", "export a checkpoint's query encoder to ONNX"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        # Only the chosen command's module is imported (see main); the others get a lazy placeholder.
        command.set_defaults(_module=module_name)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or argv[0] not in COMMANDS:
        parser.parse_args(argv)  # prints usage / error and exits
        return 2
    module = importlib.import_module(COMMANDS[argv[0]][0])
    command_parser = argparse.ArgumentParser(prog=f"python -m training {argv[0]}",
                                             description=COMMANDS[argv[0]][1])
    module.add_arguments(command_parser)
    if getattr(module, "ACCEPTS_OVERRIDES", False):
        # e.g. `train --config x.yaml --optim.lr 3e-5`: unknown flags are dotted config overrides
        args, extra = command_parser.parse_known_args(argv[1:])
        args.overrides = extra
    else:
        args = command_parser.parse_args(argv[1:])
    return int(module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
