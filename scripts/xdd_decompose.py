"""Where a model's macro R@1 on the DailyDialog files goes: reading the dialogue, reading the stickers, or
mixing the two into one score.

    .venv/bin/python scripts/xdd_decompose.py --model CHECKPOINT [--catalog DIR] [--data FILE ...] [--frozen-lr]

Every item of xdd_*_dev has 10 candidates, one sticker of each emotion from `emotion_pools.json`, so macro
R@1 by emotion asks: is the sticker of the reply's emotion first? Each row ranks the same candidates by:

- `final score`: the model's own ranking (`eigml.rerank.rerank`, what `rank` and the service use);
- `emotion agreement`: Σ_e p_dialogue(e)·p_sticker(e) alone (SAMM's emotion term, no matching head, no intention);
- `dialogue reading, true sticker labels`: p_dialogue(pool emotion of each candidate): the model's reading of
  the reply's emotion with perfect sticker labels, the most the dialogue side allows;
- `sticker reading, true reply emotion`: p_sticker(reply's labelled emotion): the sticker side alone, given the
  dialogue's emotion;
- with `--frozen-lr`: a class-balanced logistic regression on frozen, mean-pooled e5 features of the vendored
  licence-clean texts (as `scripts/probe_emotion_ceiling.py`), with true sticker labels: what the same
  training texts teach a linear reader, zero-shot (about 4 minutes on 2 cores for the features).

Also printed: the share of the pools' stickers whose emotion (among the six) the model reads right.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from eigml.catalog import load_catalog  # noqa: E402
from eigml.labels import EMOTIONS  # noqa: E402
from eigml.paths import Paths  # noqa: E402
from eigml.rerank import rerank  # noqa: E402
from training.benchmarks.eigml_ranker import load_checkpoint_ranker  # noqa: E402
from training.data.srs import load_srs  # noqa: E402


def macro(items: list, scores: list[np.ndarray]) -> tuple[float, dict[str, float]]:
    hits: dict[str, list[bool]] = defaultdict(list)
    for item, s in zip(items, scores, strict=True):
        hits[item.emotion].append(item.candidates[int(np.argmax(s))] == item.answer)
    per = {e: float(np.mean(v)) for e, v in sorted(hits.items())}
    return float(np.mean(list(per.values()))), per


def frozen_lr(files: list[Path], items: dict[Path, list]) -> dict[Path, np.ndarray]:
    import probe_emotion_ceiling as ceiling  # scripts/
    from sklearn.linear_model import LogisticRegression

    from training.data.licence_clean import load_texts

    rows = load_texts()
    texts = [" ".join([c if isinstance(c, str) else c.get("text", "") for c in r.get("context", [])][-3:] + [r["text"]])
             for r in rows]
    labels = np.array([EMOTIONS.index(r["emotion"]) for r in rows])
    fit = LogisticRegression(C=0.5, max_iter=3000, class_weight="balanced").fit(ceiling.e5_features(texts), labels)
    out = {}
    for f in files:
        x = ceiling.e5_features([" ".join(t.text for t in item.dialogue.turns[-4:]) for item in items[f]])
        probs = np.zeros((len(x), len(EMOTIONS)))
        probs[:, fit.classes_] = fit.predict_proba(x)
        out[f] = probs
    return out


def main() -> int:
    paths = Paths.from_env()
    data = paths.data_dir / "srs"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--catalog", type=Path, default=paths.cache_dir / "catalog" / "default")
    parser.add_argument("--data", type=Path, nargs="+", default=[data / "xdd_en_dev.jsonl", data / "xdd_zh_dev.jsonl"])
    parser.add_argument("--frozen-lr", action="store_true", help="also a linear reader on frozen e5 (slow)")
    args = parser.parse_args()
    missing = [f for f in args.data if not f.is_file()]
    if missing:
        print(f"skipped: no benchmark file at {', '.join(map(str, missing))} (set STICKERS_DATA_DIR)", file=sys.stderr)
        return 0
    torch.set_num_threads(2)
    ranker = load_checkpoint_ranker(args.model, load_catalog(args.catalog), cache_root=paths.cache_dir)
    model = ranker.model.eval()
    items = {f: load_srs(f) for f in args.data}
    lr = frozen_lr(args.data, items) if args.frozen_lr else {}
    six = [e for e in EMOTIONS if e not in ("none", "like")]
    print("| file | ranking | macro R@1 | " + " | ".join(six) + " |")
    print("|---|---|---:|" + "---:|" * len(six))
    for f, its in items.items():
        pools = json.loads((f.parent / "emotion_pools.json").read_text(encoding="utf-8"))
        pool_emotion = {s: e for e, ids in pools.items() for s in ids}
        ranker._ensure([c for item in its for c in item.candidates])
        stickers = ranker._stickers()
        dialogue, final, sticker = [], [], []
        with torch.inference_mode():
            for start in range(0, len(its), 64):
                batch = its[start:start + 64]
                queries = model.encode_dialogues([item.dialogue for item in batch])
                rows = [ranker.bank.rows(item.candidates).numpy() for item in batch]
                final += rerank(model, queries, stickers, rows)
                dialogue.append(queries.emotion_probs.numpy())
                sticker += [stickers.emotion_probs[torch.from_numpy(r)].numpy() for r in rows]
        p = np.concatenate(dialogue)
        truth = [np.array([EMOTIONS.index(pool_emotion[c]) for c in item.candidates]) for item in its]
        n = range(len(its))
        ways = {"final score": final, "emotion agreement": [sticker[k] @ p[k] for k in n],
                "dialogue reading, true sticker labels": [p[k][truth[k]] for k in n],
                "sticker reading, true reply emotion": [sticker[k][:, EMOTIONS.index(its[k].emotion)] for k in n]}
        if f in lr:
            ways["frozen-e5 linear reader, true sticker labels"] = [lr[f][k][truth[k]] for k in n]
        for name, way in ways.items():
            overall, per = macro(its, way)
            print(f"| {f.stem} | {name} | {overall:.3f} | " + " | ".join(f"{per.get(e, float('nan')):.2f}" for e in six) + " |")
        ids = sorted(pool_emotion)
        probs = stickers.emotion_probs[ranker.bank.rows(ids)].numpy()[:, [EMOTIONS.index(e) for e in six]]
        right = np.mean([six[int(np.argmax(q))] == pool_emotion[s] for s, q in zip(ids, probs, strict=True)])
        counts = {e: sum(item.emotion == e for item in its) for e in six}
        print(f"\n{f.stem}: items per emotion {counts}; pool stickers read right (argmax of six) "
              f"{right:.3f} of {len(ids)}\n", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
