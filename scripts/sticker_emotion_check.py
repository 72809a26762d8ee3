"""How well a checkpoint's sticker side reads emotion: the benchmark's emotion-pool stickers (Noto) and the same
emoji in Twemoji and OpenMoji art, each scored by whether its predicted emotion (argmax) is its pool's.

    python scripts/sticker_emotion_check.py --model RUN/best [--catalog ~/.cache/stickers/catalog/default]

Reads `emotion_pools.json` from the shared benchmark data (STICKERS_DATA_DIR/srs); skips cleanly without it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import torch

from eigml.catalog import load_catalog
from eigml.checkpoint import load_checkpoint
from eigml.labels import EMOTIONS
from eigml.paths import Paths


def main() -> int:
    paths = Paths.from_env()
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--catalog", type=Path, default=paths.cache_dir / "catalog" / "default")
    parser.add_argument("--packs", nargs="+", default=["noto", "twemoji", "openmoji"])
    args = parser.parse_args()
    pools_file = paths.srs_dir / "emotion_pools.json"
    if not pools_file.exists():
        print(f"skipped: {pools_file} is absent (set STICKERS_DATA_DIR)", file=sys.stderr)
        return 0
    pools: dict[str, list[str]] = json.loads(pools_file.read_text())
    catalog = load_catalog(args.catalog)
    model = load_checkpoint(args.model, models_dir=paths.cache_dir / "models")
    model.eval()
    featurize = model.cached_image_features(paths.cache_dir / "features")
    for pack in args.packs:
        right = total = 0
        confusion: dict[str, Counter[str]] = {}
        for emotion, ids in pools.items():
            ids = [i for i in (s.replace("noto/", f"{pack}/", 1) for s in ids) if i in catalog]
            if not ids:
                continue
            with torch.inference_mode():
                probs = model.encode_stickers(featurize([catalog.open_image(i) for i in ids])).emotion_probs
            predicted = [EMOTIONS[int(j)] for j in probs.argmax(dim=1)]
            right += sum(p == emotion for p in predicted)
            total += len(predicted)
            confusion[emotion] = Counter(predicted)
        share = right / total if total else float("nan")
        print(f"{pack}: {right}/{total} = {share:.2f} read as their pool's emotion; "
              + "; ".join(f"{e}: {dict(c)}" for e, c in confusion.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
