"""The `bench-report` command: trained EIGML runs scored on the dev/val files, written to docs/results.md.

Main table: each run in `runs/<name>/best` on its benchmark's dev file, and on the same items with every
candidate drawn in another pack's art (openmoji, never used in training: images only reach the model),
which is how the held-out "unseen pack" variant is approximated here. Ablation table: runs under
`runs/ablations/<benchmark>/<variant>/best`. Training time and peak memory come from each run's summary.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from dataclasses import replace
from pathlib import Path

from eigml.catalog import Catalog, load_catalog
from eigml.markdown import replace_section
from eigml.paths import Paths
from training.benchmarks.bench_baselines import full_label_set_items
from training.benchmarks.evaluation import Metrics, evaluate
from training.benchmarks.rank import load_ranker, rank_items
from training.benchmarks.results import Row, display_path, metrics_table
from training.data import SRSItem, load_srs
from training.data.sticker_bank import emoji_key

RUNS: dict[str, tuple[str, ...]] = {  # run name -> benchmarks it is scored on
    "xdd_en": ("xdd_en_dev",),
    "xdd_zh": ("xdd_zh_dev", "cped_valid"),  # cped_valid: zero-shot (no CPED training split here)
    "cped": ("cped_valid",),
    "tweeteval": ("tweeteval_emoji_val",),
}
# The default model (`make model`, licence-clean data only) is scored zero-shot on every benchmark but
# cped_valid, which comes from the CPED split it trains on.
DEFAULT_BENCHMARKS = ("xdd_en_dev", "xdd_zh_dev", "tweeteval_emoji_val")
UNSEEN_PACK = "openmoji"
START, END = "<!-- eigml:start -->", "<!-- eigml:end -->"
ABL_START, ABL_END = "<!-- ablations:start -->", "<!-- ablations:end -->"


def in_other_art(items: list[SRSItem], catalog: Catalog, pack: str) -> list[SRSItem]:
    """The items whose every candidate exists in `pack` (same emoji), with candidates mapped there."""
    by_key = {emoji_key(catalog, s): s for s in catalog.ids([pack])}
    out = []
    for item in items:
        found = [by_key.get(emoji_key(catalog, c)) for c in item.candidates]
        mapped = [m for m in found if m]
        if len(mapped) == len(found) and len(set(mapped)) == len(mapped):
            table = dict(zip(item.candidates, mapped, strict=True))
            out.append(replace(item, candidates=tuple(mapped), answer=table[item.answer]))
    return out


def variants(name: str, items: list[SRSItem], catalog: Catalog) -> list[tuple[str, list[SRSItem]]]:
    found = [(name, items)]
    if name == "tweeteval_emoji_val":
        full = full_label_set_items(items)
        found.append((f"{name} (all {len(full[0].candidates)} emoji)", full))
    if UNSEEN_PACK in catalog.packs:
        other = in_other_art(items, catalog, UNSEEN_PACK)
        if other:
            found.append((f"{name} in {UNSEEN_PACK} art ({len(other)} items)", other))
    return found


def score_run(checkpoint: Path, benchmarks: tuple[str, ...], srs_dir: Path, catalog: Catalog,
              cache_dir: Path, label: str) -> list[Row]:
    ranker = load_ranker(str(checkpoint), catalog, cache_dir=cache_dir)
    rows = []
    for bench in benchmarks:
        path = srs_dir / f"{bench}.jsonl"
        if not path.exists():
            print(f"bench-report: skipping {bench}: {path} not found", file=sys.stderr)
            continue
        for name, items in variants(bench, load_srs(path), catalog):
            rankings = rank_items(ranker, items, 64, desc=f"{label} {name}")
            rows.append(Row(name, label, evaluate(items, {i.id: r for i, r in zip(items, rankings, strict=True)})))
    return rows


def recorded_row(checkpoint: Path, label: str) -> Row:
    """The dev metrics a run recorded when it selected this checkpoint (`rank` reproduces them exactly,
    which tests/training/test_train.py checks), so ablations need no second pass over the dev file."""
    spec = json.loads((checkpoint / "model.json").read_text())
    metrics = spec["metrics"]
    dev = Path(spec["train_config"]["data"]["dev"]).stem
    limit = spec["train_config"]["data"].get("max_dev_items")
    fields = {f.name for f in dataclasses.fields(Metrics)}
    return Row(f"{dev} (first {limit})" if limit else dev, label,
               Metrics(**{k: v for k, v in metrics.items() if k in fields}))


def _summary(run_dir: Path) -> str:
    path = run_dir / "summary.json"
    if not path.exists():
        return "–"
    s = json.loads(path.read_text())
    return f"{s['steps']} steps, {s['seconds'] / 60:.1f} min, peak RSS {s['peak_rss_mib'] / 1024:.1f} GiB"


def render(rows: list[Row], start: str, end: str, title: str, command: str) -> str:
    return "\n".join([start, "", title, "", "```", command, "```", "",
                      *metrics_table(rows, training_column=True), "", end])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--catalog", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    parser.add_argument("--out", type=Path, default=Path("docs/results.md"))
    parser.add_argument("--default-model", type=Path, help="the default model's checkpoint (scored zero-shot)")


def run(args: argparse.Namespace) -> int:
    paths = Paths.from_env()
    srs_dir = args.data_dir.expanduser() / "srs"
    if not srs_dir.is_dir():
        print(f"bench-report: no benchmark data at {srs_dir}; nothing to do", file=sys.stderr)
        return 0
    catalog = load_catalog(args.catalog.expanduser())
    command = (f"python -m training bench-report --catalog {display_path(args.catalog)} "
               f"--data-dir {display_path(args.data_dir)} --runs {args.runs} --out {args.out}")
    main_rows: list[Row] = []
    if args.default_model is not None and args.default_model.exists():
        for row in score_run(args.default_model, DEFAULT_BENCHMARKS, srs_dir, catalog, paths.cache_dir,
                             "EIGML default (licence-clean, zero-shot)"):
            main_rows.append(replace(row, training=_summary(args.default_model.parent)))
        command += " --default-model $(MODEL)"
    for run_name, benchmarks in RUNS.items():
        best = args.runs / run_name / "best"
        if best.exists():
            for row in score_run(best, benchmarks, srs_dir, catalog, paths.cache_dir, f"EIGML ({run_name})"):
                main_rows.append(replace(row, training=_summary(args.runs / run_name)))
    if main_rows:
        replace_section(args.out, start=START, end=END, block=render(
            main_rows, START, END,
            "EIGML runs (trained by `make bench-train`) on the dev/val splits. \"in openmoji art\": the same items "
            "with every candidate replaced by OpenMoji's drawing of the same emoji, art never seen in training.",
            command))
    ablation_rows: list[Row] = []
    for bench_dir in sorted((args.runs / "ablations").glob("*")):
        for variant in sorted(p for p in bench_dir.iterdir() if (p / "best").exists()):
            ablation_rows.append(replace(recorded_row(variant / "best", variant.name), training=_summary(variant)))
    if ablation_rows:
        replace_section(args.out, start=ABL_START, end=ABL_END, block=render(
            ablation_rows, ABL_START, ABL_END,
            "Ablations (`make bench-ablations`): each component removed in turn, all at one reduced budget "
            "(configs/ablation_xdd_en.yaml, configs/ablation_tweeteval.yaml), beside the full model trained at that same budget.", command))
    print(f"bench-report: {len(main_rows)} main rows, {len(ablation_rows)} ablation rows -> {args.out}",
          file=sys.stderr)
    return 0
