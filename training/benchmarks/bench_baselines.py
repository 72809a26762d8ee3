"""The `bench-baselines` command: every baseline on every dev/val benchmark, written to docs/results.md.

`python -m training bench-baselines --catalog DIR --data-dir DIR --out docs/results.md` ranks and scores
each benchmark under DATA/srs with the same functions as `rank` and `evaluate`, and replaces the table
between `<!-- baselines:start -->` and `<!-- baselines:end -->` in the output file (the rest is kept).
A 20-candidate variant of tweeteval_emoji_val (every item ranked over all 20 emoji) is derived into the
cache folder so macro-F1, the TweetEval metric, can be reported.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from eigml.markdown import replace_section
from eigml.paths import Paths
from training.benchmarks.baselines import default_prior_data
from training.benchmarks.evaluation import evaluate
from training.benchmarks.rank import (
    BASELINES,
    Ranker,
    RankError,
    check_candidates,
    load_ranker,
    rank_items,
    write_predictions,
)
from training.benchmarks.results import Row, display_path, metrics_table
from training.data import DataError, SRSItem, load_srs, write_srs

if TYPE_CHECKING:
    from eigml.catalog import Catalog

BENCHMARKS: tuple[str, ...] = ("xdd_en_dev", "xdd_zh_dev", "cped_valid", "tweeteval_emoji_val")
FULL_LABEL_SET_BENCHMARK = "tweeteval_emoji_val"  # also run with all 20 emoji as candidates
START, END = "<!-- baselines:start -->", "<!-- baselines:end -->"


@dataclass(frozen=True)
class Benchmark:
    name: str
    path: Path
    prior_data: Path | None  # training file the prior counts; None: none found (see note)
    note: str | None = None


def full_label_set_items(items: Sequence[SRSItem]) -> list[SRSItem]:
    """The same items with every item's candidates = all sticker ids seen in the file (ordered by label)."""
    label_of: dict[str, int] = {}
    for item in items:
        if item.label is not None:
            label_of.setdefault(item.answer, item.label)
    all_ids = {c for item in items for c in item.candidates}
    labels = tuple(sorted(all_ids, key=lambda s: (label_of.get(s, len(all_ids)), s)))
    return [replace(item, candidates=labels) for item in items]


def find_benchmarks(srs_dir: Path, cache_dir: Path, names: Sequence[str]) -> list[Benchmark]:
    """The benchmarks present under srs_dir (a message for each one missing) plus the derived 20-way file."""
    found = []
    for name in names:
        path = srs_dir / f"{name}.jsonl"
        if not path.exists():
            print(f"bench-baselines: skipping {name}: {path} not found", file=sys.stderr)
            continue
        prior_data: Path | None
        try:
            prior_data, note = default_prior_data(path)
        except FileNotFoundError as e:
            prior_data, note = None, f"{name}: prior skipped: {e}"
        found.append(Benchmark(name, path, prior_data, note))
        if name == FULL_LABEL_SET_BENCHMARK:
            derived = cache_dir / "bench" / f"{name}_all_labels.jsonl"
            items = full_label_set_items(load_srs(path))
            write_srs(derived, items)
            found.append(Benchmark(f"{name} (all {len(items[0].candidates)} emoji)", derived, prior_data, note))
    return found


def run_benchmarks(benchmarks: Sequence[Benchmark], catalog: Catalog, models: Sequence[str], *,
                   predictions_dir: Path, batch_size: int = 32, seed: int = 0,
                   cache_dir: Path | None = None) -> list[Row]:
    """Rank and evaluate every (benchmark, model); rankers without per-benchmark state are built once."""
    shared: dict[str, Ranker] = {}
    rows = []
    for bench in benchmarks:
        items = load_srs(bench.path)
        check_candidates(items, catalog)
        for model in models:
            per_benchmark = model in ("prior", "lr-probe")  # fitted on the benchmark's own training file
            if per_benchmark and bench.prior_data is None:
                print(f"bench-baselines: {bench.note}", file=sys.stderr)
                continue
            if per_benchmark:
                ranker = load_ranker(model, catalog, seed=seed, prior_data=bench.prior_data, batch_size=batch_size,
                                     cache_dir=cache_dir)
            else:
                if model not in shared:
                    shared[model] = load_ranker(model, catalog, seed=seed, batch_size=batch_size, cache_dir=cache_dir)
                ranker = shared[model]
            rankings = rank_items(ranker, items, batch_size, desc=f"{bench.name} {model}")
            slug = bench.path.stem
            write_predictions(predictions_dir / f"{slug}.{model}.jsonl", items, rankings)
            metrics = evaluate(items, {i.id: r for i, r in zip(items, rankings, strict=True)})
            rows.append(Row(bench.name, model, metrics))
            print(f"{bench.name} {model}: R@1 {metrics.r_at_1:.3f} MAP {metrics.map:.3f}", file=sys.stderr)
    return rows


def render_table(rows: Sequence[Row], command: str, notes: Sequence[str]) -> str:
    """The markdown block between the markers."""
    lines = [START, "", "Baselines on the dev/val splits (MAP and R@k are fractions; macro-F1 is in percent and only",
             "defined when every item is ranked over the full 20-emoji label set). Produced by:", "",
             "```", command, "```", "", *metrics_table(rows), ""]
    lines.extend(f"- {note}" for note in notes)
    if notes:
        lines.append("")
    lines.append(END)
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--catalog", type=Path, required=True, help="sticker catalogue folder")
    parser.add_argument("--data-dir", type=Path, required=True, help="shared data folder (with srs/)")
    parser.add_argument("--out", type=Path, default=Path("docs/results.md"))
    parser.add_argument("--models", default=",".join(BASELINES), help="comma-separated baselines")
    parser.add_argument("--benchmarks", default=",".join(BENCHMARKS), help="comma-separated benchmark names")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    from eigml.catalog import load_catalog

    paths = Paths.from_env()
    srs_dir = args.data_dir.expanduser() / "srs"
    if not srs_dir.is_dir():
        print(f"bench-baselines: no benchmark data at {srs_dir}; nothing to do "
              "(set --data-dir or STICKERS_DATA_DIR to the shared data folder)", file=sys.stderr)
        return 0
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in BASELINES]
    if unknown:
        raise SystemExit(f"bench-baselines: unknown baseline(s) {', '.join(unknown)}; known: {', '.join(BASELINES)}")
    names = [b.strip() for b in args.benchmarks.split(",") if b.strip()]
    try:
        catalog = load_catalog(args.catalog.expanduser())
        benchmarks = find_benchmarks(srs_dir, paths.cache_dir, names)
        if not benchmarks:
            print(f"bench-baselines: none of {', '.join(names)} under {srs_dir}; nothing to do", file=sys.stderr)
            return 0
        rows = run_benchmarks(benchmarks, catalog, models, predictions_dir=paths.cache_dir / "bench" / "predictions",
                              batch_size=args.batch_size, seed=args.seed, cache_dir=paths.cache_dir)
    except (DataError, RankError, FileNotFoundError) as e:
        raise SystemExit(f"bench-baselines: {e}") from None
    command = (f"python -m training bench-baselines --catalog {display_path(args.catalog)} "
               f"--data-dir {display_path(args.data_dir)} --out {args.out}")
    if args.models != ",".join(BASELINES):
        command += f" --models {args.models}"
    if args.benchmarks != ",".join(BENCHMARKS):
        command += f" --benchmarks {args.benchmarks}"
    if args.seed != 0:
        command += f" --seed {args.seed}"
    notes = sorted({b.note for b in benchmarks if b.note and "prior" in models})
    if "text-match" in models:
        notes.append("text-match is zero-shot all-MiniLM-L6-v2 (English only) between the last two turns and "
                     "the English sticker description; Chinese turns become [UNK], so on xdd_zh and cped it "
                     "reflects a bias towards some stickers, not understanding")
    replace_section(args.out, render_table(rows, command, notes), START, END)
    print(f"bench-baselines: wrote {len(rows)} rows to {args.out}", file=sys.stderr)
    return 0
