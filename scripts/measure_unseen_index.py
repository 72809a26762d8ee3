"""Index a text-sticker pack (and optionally an animated pack) with OCR, then re-index: what is reused (docs/unseen.md).

  python scripts/measure_unseen_index.py --work /tmp/unseen-index [--text 64] [--anim-dir DIR]

--text beyond the pack's 192 stickers renders the same phrases again at other sizes (a new image each, with
words on every one: the costliest case for OCR), e.g. --text 1000 for the issue's 1,000-sticker pack.

Trains the tiny test checkpoint (3 steps, real DINOv2 backbone) so no benchmark data is needed; the figures
are about indexing cost, not ranking quality.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from eigml.catalog import load_catalog  # noqa: E402
from eigml.checkpoint import load_checkpoint  # noqa: E402
from index.build import build_index, update_index  # noqa: E402
from index.store import read_version  # noqa: E402
from tests.conftest import make_tiny_catalog, make_tiny_srs  # noqa: E402
from training.__main__ import main as training_main  # noqa: E402
from training.text_pack import (  # noqa: E402
    SIZE_PX,
    build_text_pack,
    find_cjk_font,
    render_text_sticker,
    text_stickers,
)


def timed(step: str, results: dict, root: Path, call) -> None:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    call()
    m = read_version(root).manifest
    results[step] = {"seconds": round(time.perf_counter() - started, 1), "stickers": m.count,
                     "embedded": m.embedded, "reused": m.reused, "ocr_read": m.ocr_read}
    print(step, results[step], file=sys.stderr)


def add_variants(pack_dir: Path, font: Path, count: int) -> None:
    """`count` more stickers in `pack_dir`: the pack's phrases and looks rendered at other sizes."""
    meta = json.loads((pack_dir / "pack.json").read_text(encoding="utf-8"))
    base = list(text_stickers())
    added = 0
    for size in (s for s in range(224, 512, 16) if s != SIZE_PX):  # the pack itself is SIZE_PX
        for sticker in base:
            if added == count:
                break
            stem = f"{sticker.stem}-{size}"
            render_text_sticker(sticker.text, font, sticker.style, size_px=size).save(pack_dir / f"{stem}.png")
            meta["stickers"][stem] = {**meta["stickers"][sticker.stem]}
            added += 1
    (pack_dir / "pack.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--text", type=int, default=64, help="text stickers to render")
    parser.add_argument("--anim-dir", type=Path, default=None, help="a folder of animated stickers to add as a pack")
    args = parser.parse_args()
    work = args.work
    shutil.rmtree(work, ignore_errors=True)
    catalog_dir = make_tiny_catalog(work / "catalog")
    font = find_cjk_font()
    assert font is not None, "no CJK font"
    build_text_pack(catalog_dir / "text", font, limit=args.text)
    if args.text > 192:
        add_variants(catalog_dir / "text", font, args.text - 192)
    packs = ["text"]
    if args.anim_dir is not None:
        shutil.copytree(args.anim_dir, catalog_dir / "anim")
        packs.append("anim")
    os.environ["STICKERS_CACHE_DIR"] = str(work / "cache")
    srs = work / "srs"
    srs.mkdir()
    code = training_main(["train", "--config", "configs/tiny.yaml", "--out-dir", str(work / "run"),
                          "--data.train", str(make_tiny_srs(srs / "train.jsonl", 24, 0)),
                          "--data.dev", str(make_tiny_srs(srs / "dev.jsonl", 8, 1)),
                          "--data.catalog", str(catalog_dir), "--optim.max_steps", "3", "--run.num_threads", "2"])
    assert code == 0
    model = load_checkpoint(work / "run" / "best", models_dir=work / "cache" / "models")
    caches = {"feature_cache": work / "cache" / "features", "text_cache": work / "cache" / "ocr"}
    root = work / "index"
    results: dict = {}
    catalog = load_catalog(catalog_dir)
    timed("build_cold", results, root, lambda: build_index(
        model, catalog, root, packs=packs, ocr=True, progress=False, **caches))
    timed("rebuild_unchanged", results, root, lambda: update_index(model, catalog, root, progress=False, **caches))
    changed = [s for s in text_stickers()][: args.text][:10]
    for sticker in changed:  # the same phrase in the other look: new bytes, new features and text
        other = "outline" if sticker.style == "bubble" else "bubble"
        render_text_sticker(sticker.text, font, other).save(catalog_dir / "text" / f"{sticker.stem}.png")
    catalog = load_catalog(catalog_dir)
    timed("rebuild_10_changed", results, root, lambda: update_index(model, catalog, root, progress=False, **caches))
    timed("build_warm_caches", results, work / "index2", lambda: build_index(
        model, catalog, work / "index2", packs=packs, ocr=True, progress=False, **caches))
    results["load_average"] = os.getloadavg()
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
