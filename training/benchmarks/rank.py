"""The `rank` command: rank every item's candidates with a baseline or a trained checkpoint.

`python -m training rank --model MODEL --catalog DIR --data FILE.jsonl --out PRED.jsonl` writes one line
`{"id": ..., "ranking": [every candidate id, best first]}` per item. MODEL is a baseline name (see
`BASELINES`) or a checkpoint path. Items may have any number of candidates, from any pack in the catalogue.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from tqdm import tqdm

from eigml.dialogue import Dialogue
from eigml.paths import Paths
from training.benchmarks.baselines import (
    PriorRanker,
    RandomRanker,
    TextMatchConfig,
    TextMatchRanker,
    default_prior_data,
)
from training.data import DataError, SRSItem, load_srs

if TYPE_CHECKING:
    from eigml.catalog import Catalog


class RankError(ValueError):
    """A model that cannot be loaded or candidates the catalogue does not hold."""


@runtime_checkable
class Ranker(Protocol):
    def rank(self, items: Sequence[SRSItem]) -> list[list[str]]:
        """For each item, all of its candidate ids, best first."""
        ...


@runtime_checkable
class CandidateScorer(Protocol):
    """A ranker that can score any candidate list for a dialogue (needed by `recommend`)."""

    def score_candidates(self, dialogues: Sequence[Dialogue], candidates: Sequence[Sequence[str]]) -> list[list[float]]:
        """Higher is better; one score per candidate, in the candidates' order."""
        ...


@dataclass(frozen=True)
class BaselineOptions:
    seed: int = 0
    prior_data: Path | None = None  # training file counted by `prior`; default: beside `data_path`
    data_path: Path | None = None  # the benchmark being ranked (to find the default prior file)
    batch_size: int = 32
    cache_dir: Path | None = None  # text-match keeps sticker-text embeddings here across runs


def _training_file(options: BaselineOptions, baseline: str) -> Path:
    """The training file a fitted baseline learns from: `prior_data`, else the one beside `data_path`."""
    if options.prior_data is not None:
        return Path(options.prior_data)
    if options.data_path is None:
        raise RankError(f"{baseline}: pass prior_data (a training file) or data_path to find one")
    path, note = default_prior_data(options.data_path)
    if note:
        print(f"{baseline}: {note}", file=sys.stderr)
    return path


def _prior(catalog: Catalog, options: BaselineOptions) -> Ranker:
    return PriorRanker.from_file(_training_file(options, "prior"), seed=options.seed)


def _lr_probe(catalog: Catalog, options: BaselineOptions) -> Ranker:
    from training.benchmarks.lr_probe import load_lr_probe  # heavy (torch, the encoder); only when asked for

    return load_lr_probe(_training_file(options, "lr-probe"), options.cache_dir)


BASELINES: dict[str, Callable[[Catalog, BaselineOptions], Ranker]] = {
    "random": lambda catalog, o: RandomRanker(seed=o.seed),
    "prior": _prior,
    "text-match": lambda catalog, o: TextMatchRanker(catalog, TextMatchConfig(batch_size=o.batch_size), seed=o.seed,
                                                     cache_dir=o.cache_dir),
    "lr-probe": _lr_probe,
}


def load_ranker(model: str, catalog: Catalog, **options: object) -> Ranker:
    """A baseline by name, else a checkpoint path resolved by `eigml.checkpoint`.

    Options (seed, prior_data, data_path, batch_size, cache_dir) configure baselines; an unknown option is a TypeError.
    """
    parsed = BaselineOptions(**options)  # type: ignore[arg-type]
    if model in BASELINES:
        return BASELINES[model](catalog, parsed)
    path = Path(model).expanduser()
    if not path.exists():
        raise RankError(f"no such baseline or checkpoint: {model} (baselines: {', '.join(BASELINES)})")
    from training.benchmarks.eigml_ranker import load_checkpoint_ranker  # heavy; only for checkpoints

    return load_checkpoint_ranker(path, catalog, cache_root=parsed.cache_dir)


def check_candidates(items: Sequence[SRSItem], catalog: Catalog) -> None:
    """RankError listing a few candidate ids that the catalogue does not hold."""
    missing = sorted({c for item in items for c in item.candidates if c not in catalog})
    if missing:
        raise RankError(f"{len(missing)} candidate sticker id(s) are not in the catalogue at {catalog.root}, "
                        f"e.g. {', '.join(missing[:5])}")


def rank_items(ranker: Ranker, items: Sequence[SRSItem], batch_size: int = 32,
               progress: bool = True, desc: str = "rank") -> list[list[str]]:
    """Rankings in item order, computed in batches; RankError if the ranker returns a non-permutation."""
    rankings: list[list[str]] = []
    with tqdm(total=len(items), desc=desc, unit="item", disable=not progress, file=sys.stderr) as bar:
        for start in range(0, len(items), batch_size):
            batch = items[start:start + batch_size]
            batch_rankings = ranker.rank(batch)
            if len(batch_rankings) != len(batch):
                raise RankError(f"ranker returned {len(batch_rankings)} rankings for {len(batch)} items")
            for item, ranking in zip(batch, batch_rankings, strict=True):
                if len(ranking) != len(item.candidates) or set(ranking) != set(item.candidates):
                    raise RankError(f"ranker returned a ranking for {item.id!r} that is not a permutation "
                                    "of its candidates")
            rankings.extend(batch_rankings)
            bar.update(len(batch))
    return rankings


def write_predictions(path: str | Path, items: Sequence[SRSItem], rankings: Sequence[Sequence[str]]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for item, ranking in zip(items, rankings, strict=True):
            f.write(json.dumps({"id": item.id, "ranking": list(ranking)}, ensure_ascii=False) + "\n")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help=f"a baseline ({', '.join(BASELINES)}) or a checkpoint path")
    parser.add_argument("--catalog", type=Path, required=True, help="sticker catalogue folder")
    parser.add_argument("--data", type=Path, required=True, help="benchmark file (JSON Lines)")
    parser.add_argument("--out", type=Path, required=True, help="predictions file to write (JSON Lines)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0, help="tie-breaking and the random baseline")
    parser.add_argument("--prior-data", type=Path, default=None,
                        help="training file for the prior baseline (default: the *_train file beside --data)")


def run(args: argparse.Namespace) -> int:
    from eigml.catalog import load_catalog

    if args.batch_size < 1:
        raise SystemExit("rank: --batch-size must be at least 1")
    try:
        items = load_srs(args.data)
        catalog = load_catalog(args.catalog)
        check_candidates(items, catalog)
        ranker = load_ranker(args.model, catalog, seed=args.seed, prior_data=args.prior_data,
                             data_path=args.data, batch_size=args.batch_size, cache_dir=Paths.from_env().cache_dir)
        rankings = rank_items(ranker, items, args.batch_size, desc=f"rank {args.model}")
    except (DataError, RankError, FileNotFoundError) as e:
        raise SystemExit(f"rank: {e}") from None
    write_predictions(args.out, items, rankings)
    print(f"wrote {len(rankings)} rankings to {args.out}", file=sys.stderr)
    return 0
