"""A checkpoint scored on a benchmark file with every candidate drawn in another art style (issue 9).

    python scripts/measure_unseen_styles.py --model runs/xdd_en/best --catalog CATALOG \
        --data ../shared/data/srs/xdd_en_dev.jsonl --packs noto twemoji openmoji noto-blob [--json F]

For each pack, the items whose every candidate exists in that pack (the same emoji, by
`training.data.sticker_bank.emoji_key`) are ranked with the candidates replaced by that pack's drawings
(`training.benchmarks.report.in_other_art`); the answer moves with them. Prints macro R@1 by emotion and R@1
per pack, with the packs the checkpoint trained on (`data.style_packs`, plus noto) marked. The catalogue must
hold the packs: `python -m training catalog-styles --out CATALOG --styles ...` adds the extra styles.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from eigml.catalog import load_catalog  # noqa: E402
from eigml.paths import Paths  # noqa: E402
from training.benchmarks.evaluation import evaluate  # noqa: E402
from training.benchmarks.rank import load_ranker, rank_items  # noqa: E402
from training.benchmarks.report import in_other_art  # noqa: E402
from training.data import load_srs  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--catalog", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--packs", nargs="+", default=["noto", "twemoji", "openmoji"])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    catalog = load_catalog(args.catalog)
    spec = json.loads((args.model / "model.json").read_text())
    trained = {"noto", *spec.get("train_config", {}).get("data", {}).get("style_packs", [])}
    ranker = load_ranker(str(args.model), catalog, cache_dir=Paths.from_env().cache_dir)
    items = load_srs(args.data)
    results = {}
    print("| art | items | seen in training | macro R@1 by emotion | R@1 |\n|---|---:|---|---:|---:|")
    for pack in args.packs:
        if pack not in catalog.packs:
            print(f"measure_unseen_styles: {pack} is not in {args.catalog}", file=sys.stderr)
            continue
        moved = items if pack == "noto" else in_other_art(items, catalog, pack)
        rankings = rank_items(ranker, moved, 64, desc=pack)
        m = evaluate(moved, {i.id: r for i, r in zip(moved, rankings, strict=True)})
        results[pack] = {"items": len(moved), "seen": pack in trained,
                         "macro_r_at_1_by_emotion": m.macro_r_at_1_by_emotion, "r_at_1": m.r_at_1}
        macro = "–" if m.macro_r_at_1_by_emotion is None else f"{m.macro_r_at_1_by_emotion:.3f}"
        print(f"| {pack} | {len(moved)} | {'yes' if pack in trained else 'no'} | {macro} | {m.r_at_1:.3f} |",
              flush=True)
    if args.json:
        args.json.write_text(json.dumps({"model": str(args.model), "data": str(args.data), "packs": results},
                                        indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
