"""Command line: `python -m index build|update|rebuild ...`.

  build    --model CKPT --catalog DIR --out ROOT [--packs a,b] [--factory Flat] [--device auto|cpu|cuda]
  update   --root ROOT --model CKPT --catalog DIR [--add-pack NAME|DIR ...] [--remove-pack NAME ...]
  rebuild  --root ROOT --model CKPT --catalog DIR [--full]   (same packs; a new model re-embeds everything)
Each writes a new index version atomically and makes it CURRENT; it prints the version on stdout.
Environment variables are read here and nowhere below (STICKERS_CACHE_DIR via `eigml.paths`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from index.config import DEFAULT_FACTORY, IndexCommandConfig, IndexSettings

COMMANDS = {
    "build": "embed a sticker catalogue and publish a new index",
    "update": "add or remove packs, reusing unchanged stickers, and publish a new version",
    "rebuild": "publish a new version of the same packs (after a model, factory or image change)",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        if name == "build":
            command.add_argument("--out", dest="root", type=Path, required=True, help="index root folder")
            command.add_argument("--packs", default=None, help="comma-separated packs to index (default: all)")
        else:
            command.add_argument("--root", type=Path, required=True, help="index root folder")
        command.add_argument("--model", type=Path, required=True, help="EIGML checkpoint folder")
        command.add_argument("--catalog", type=Path, required=True, help="sticker catalogue folder")
        if name == "update":
            command.add_argument("--add-pack", dest="add_packs", action="append", default=[], metavar="NAME|DIR",
                                 help="a pack of the catalogue to add (repeatable)")
            command.add_argument("--remove-pack", dest="remove_packs", action="append", default=[],
                                 metavar="NAME", help="an indexed pack to remove (repeatable)")
        if name == "rebuild":
            command.add_argument("--full", action="store_true", help="embed every sticker again")
        command.add_argument("--factory", default=None,
                             help="FAISS index factory: Flat (default for build), 'IVF256,Flat', HNSW32, ...")
        command.add_argument("--nprobe", type=int, default=None, help="IVF lists searched per query")
        command.add_argument("--ef-search", type=int, default=None, help="HNSW candidate list size")
        command.add_argument("--k-factor", type=float, default=None,
                             help="factories ending ',RFlat': k_factor * k candidates re-scored exactly")
        command.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
        command.add_argument("--batch-size", type=int, default=64)
        command.add_argument("--keep", type=int, default=3, help="index versions to keep")
        command.add_argument("--feature-cache", type=Path, default=None,
                             help="backbone feature cache (default $STICKERS_CACHE_DIR/features)")
        command.add_argument("--models-dir", type=Path, default=None,
                             help="converted backbone weights (default $STICKERS_CACHE_DIR/models)")
        command.add_argument("--ocr", choices=("auto", "on", "off"), default="auto",
                             help="read the words drawn on stickers (auto: when rapidocr-onnxruntime is installed)")
        command.add_argument("--text-cache", type=Path, default=None,
                             help="OCR text cache (default $STICKERS_CACHE_DIR/ocr)")
        command.add_argument("--no-publish", action="store_true", help="write the version but keep CURRENT")
        command.add_argument("--no-progress", action="store_true")


def make_config(args: argparse.Namespace) -> IndexCommandConfig:
    from eigml.paths import Paths

    cache = Paths.from_env().cache_dir
    return IndexCommandConfig(
        command=args.command, root=args.root, model=args.model, catalog=args.catalog,
        feature_cache=args.feature_cache or cache / "features", models_dir=args.models_dir or cache / "models",
        text_cache=args.text_cache or cache / "ocr",
        packs=tuple(p.strip() for p in args.packs.split(",") if p.strip()) if getattr(args, "packs", None) else None,
        add_packs=tuple(getattr(args, "add_packs", ())), remove_packs=tuple(getattr(args, "remove_packs", ())),
        full=getattr(args, "full", False), publish=not args.no_publish, progress=not args.no_progress,
        index=IndexSettings(factory=args.factory, nprobe=args.nprobe, ef_search=args.ef_search, k_factor=args.k_factor, device=args.device,
                            batch_size=args.batch_size, keep_versions=args.keep, ocr=args.ocr),
    )


def run(args: argparse.Namespace) -> int:
    from eigml.checkpoint import CheckpointError
    from index.ann import FactoryError
    from index.build import IndexBuildError
    from index.store import IndexStoreError

    prog = f"python -m index {args.command}"
    try:
        config = make_config(args)
    except ValidationError as error:
        print(f"{prog}: error: {_validation_message(error)}", file=sys.stderr)
        return 2
    try:
        version = execute(config)
    except (IndexBuildError, FactoryError, IndexStoreError, CheckpointError, FileNotFoundError) as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    print(version)
    return 0


def execute(config: IndexCommandConfig) -> str:
    """Load the model and catalogue, build or update, report; returns the new version."""
    import torch

    from eigml.catalog import load_catalog
    from eigml.checkpoint import CheckpointError, load_checkpoint
    from eigml.ocr import ocr_available
    from index.ann import resolve_device
    from index.build import IndexBuildError, build_index, update_index
    from index.store import read_manifest

    if not config.model.is_dir():
        raise CheckpointError(f"checkpoint {config.model} does not exist")
    s = config.index
    if s.ocr == "on" and not ocr_available():
        raise IndexBuildError("--ocr on needs rapidocr-onnxruntime (see docs/unseen.md), or pass --ocr off")
    ocr = s.ocr == "on" or (s.ocr == "auto" and ocr_available())
    catalog = load_catalog(config.catalog)
    model = load_checkpoint(config.model, models_dir=config.models_dir)
    if resolve_device(s.device) == "cuda" and torch.cuda.is_available():
        model.to("cuda")
    if config.command == "build":
        version = build_index(model, catalog, config.root, factory=s.factory or DEFAULT_FACTORY,
                              packs=config.packs, search=s.search(), device=s.device, batch_size=s.batch_size,
                              feature_cache=config.feature_cache, publish=config.publish,
                              keep_versions=s.keep_versions, progress=config.progress, ocr=ocr,
                              text_cache=config.text_cache)
    else:
        version = update_index(model, catalog, config.root, add_packs=config.add_packs,
                               remove_packs=config.remove_packs, factory=s.factory, search=s.search(),
                               reuse=not config.full, allow_model_change=config.command == "rebuild",
                               device=s.device, batch_size=s.batch_size, feature_cache=config.feature_cache,
                               publish=config.publish, keep_versions=s.keep_versions, progress=config.progress,
                               ocr=ocr, text_cache=config.text_cache)
    m = read_manifest(config.root, version)
    packs = ", ".join(f"{p} {n}" for p, n in m.counts.items())
    print(f"index {version} ({'CURRENT' if config.publish else 'not published'}) under {config.root}: "
          f"{m.count} stickers ({m.embedded} embedded, {m.reused} reused) in {packs}; factory {m.factory!r}, "
          f"model {m.model_version}; "
          + (f"sticker text read by OCR for {m.ocr_read} images, the rest reused" if m.ocr else "no OCR"),
          file=sys.stderr)
    return version


def _validation_message(error: ValidationError) -> str:
    return "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in error.errors())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m index", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(list(sys.argv[1:] if argv is None else argv)))


if __name__ == "__main__":
    sys.exit(main())
