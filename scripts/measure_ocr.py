"""OCR speed and accuracy on a rendered text pack, cold and then from the text cache (docs/unseen.md).

  python -m training text-pack --out /tmp/unseen/text
  python scripts/measure_ocr.py /tmp/unseen /tmp/unseen-ocr-cache [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

from eigml.catalog import load_catalog
from eigml.ocr import TextCache, TextReader, sticker_texts_with_stats


def normalise(text: str) -> str:
    """Case, spaces and punctuation dropped: what the emotion head needs is the words."""
    return re.sub(r"[\W_]+", "", text.lower())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("catalog", type=Path)
    parser.add_argument("cache", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    catalog = load_catalog(args.catalog)
    ids = catalog.ids()
    started = time.perf_counter()
    reader = TextReader(num_threads=args.threads)
    load_seconds = time.perf_counter() - started
    cache = TextCache.under(args.cache)
    started = time.perf_counter()
    texts, read = sticker_texts_with_stats(catalog, ids, cache=cache, reader=reader)
    cold = time.perf_counter() - started
    started = time.perf_counter()
    _, reread = sticker_texts_with_stats(catalog, ids, cache=cache, reader=reader)
    warm = time.perf_counter() - started
    truth = {}
    for pack in catalog.packs.values():
        meta = json.loads((pack.path / "pack.json").read_text(encoding="utf-8"))
        truth.update({f"{pack.name}/{stem}": e["text"] for stem, e in meta["stickers"].items() if "text" in e})
    exact = {lang: [normalise(texts[i]) == normalise(truth[i]) for i in ids if i in truth and f"/{lang}-" in i]
             for lang in ("en", "zh")}
    print(json.dumps({
        "stickers": len(ids), "engine_load_s": round(load_seconds, 2), "read_cold": read,
        "cold_s_per_image": round(cold / max(read, 1), 3), "read_warm": reread, "warm_total_s": round(warm, 3),
        "exact_en": f"{sum(exact['en'])}/{len(exact['en'])}", "exact_zh": f"{sum(exact['zh'])}/{len(exact['zh'])}",
        "misread": {i: [truth[i], texts[i]] for i in ids if i in truth and normalise(texts[i]) != normalise(truth[i])},
    }, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
