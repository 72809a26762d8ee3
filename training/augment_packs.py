"""`python -m training augment-packs --catalog CATALOG --source noto --looks outline,gray`: redrawn art packs.

A pack's pictures redrawn in another look, as packs of their own beside it (`<source>-<look>`, same stems,
names and tags), for style-invariant training (issue 9): a training config lists them in
`data.style_packs`, and each candidate's picture is then sometimes this look instead of the original.
The art packs on npm are all flat, filled emoji; stickers people bring are often drawn with outlines,
few colours or none. Looks (deterministic image operations, no model):

- `outline`: colours smoothed, reduced to 4 levels a channel and lightened, dark lines on colour edges and around the
  silhouette (a line-art sticker);
- `gray`: grey levels, contrast stretched (no colour to read a feeling from);

The derived images keep the source pack's licence (they are adaptations of it). Never part of `make catalog`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageChops, ImageFilter, ImageOps

SIZE_PX = 128  # the source art is 64-72 px; lines need room


def outline(image: Image.Image) -> Image.Image:
    rgba = image.convert("RGBA").resize((SIZE_PX, SIZE_PX), Image.Resampling.LANCZOS)
    alpha = rgba.getchannel("A")
    flat = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
    flat = ImageOps.posterize(flat.filter(ImageFilter.GaussianBlur(1.5)), 2).filter(ImageFilter.ModeFilter(5))
    flat = Image.blend(flat, Image.new("RGB", flat.size, (255, 255, 255)), 0.25)
    edges = flat.convert("L").filter(ImageFilter.FIND_EDGES).point(lambda v: 255 if v > 40 else 0)
    silhouette = alpha.point(lambda v: 255 if v > 127 else 0)
    rim = silhouette.filter(ImageFilter.FIND_EDGES).point(lambda v: 255 if v else 0)
    lines = ImageChops.lighter(ImageChops.multiply(edges, silhouette), rim).filter(ImageFilter.MaxFilter(3))
    out = flat.copy()
    out.paste((20, 20, 20), mask=lines)
    out = out.convert("RGBA")
    out.putalpha(ImageChops.lighter(silhouette, lines))
    return out


def gray(image: Image.Image) -> Image.Image:
    rgba = image.convert("RGBA").resize((SIZE_PX, SIZE_PX), Image.Resampling.LANCZOS)
    out = ImageOps.autocontrast(rgba.convert("L"), cutoff=1).convert("RGBA")
    out.putalpha(rgba.getchannel("A"))
    return out


LOOKS: dict[str, Callable[[Image.Image], Image.Image]] = {"outline": outline, "gray": gray}


def build_augmented_pack(source: Path, out: Path, look: str) -> int:
    """Write `out` (PNGs + pack.json) from the pack folder `source` redrawn in `look`; returns the count."""
    draw = LOOKS[look]
    meta = json.loads((source / "pack.json").read_text(encoding="utf-8"))
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for stem in meta["stickers"]:
            with Image.open(source / f"{stem}.png") as image:
                draw(image).save(work / f"{stem}.png", optimize=True)
        meta["name"] = out.name
        meta["title"] = f"{meta.get('title', source.name)} ({look}, redrawn by python -m training augment-packs)"
        meta["attribution"] = f"{meta.get('attribution', '')} Redrawn ({look}) by this project.".strip()
        (work / "pack.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        work.rename(out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return len(meta["stickers"])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--catalog", type=Path, required=True, help="catalogue holding the source pack")
    parser.add_argument("--source", default="noto", help="pack to redraw (its folder in the catalogue)")
    parser.add_argument("--looks", default="outline,gray", help=f"comma-separated, of {', '.join(LOOKS)}")


def run(args: argparse.Namespace) -> int:
    looks = [x.strip() for x in args.looks.split(",") if x.strip()]
    unknown = [x for x in looks if x not in LOOKS]
    source = args.catalog / args.source
    if unknown or not (source / "pack.json").is_file():
        print(f"augment-packs: unknown look(s) {unknown}" if unknown else f"augment-packs: no pack at {source}",
              file=sys.stderr)
        return 2
    for look in looks:
        count = build_augmented_pack(source, args.catalog / f"{args.source}-{look}", look)
        print(f"augment-packs: {args.source}-{look}: {count} stickers", file=sys.stderr)
    return 0
