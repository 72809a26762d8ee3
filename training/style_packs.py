"""`python -m training catalog-styles --out CATALOG --styles fluent-flat,emojione`: opt-in art-style packs.

The same emoji in more art styles, for style-invariant training and unseen-style evaluation (issue 9). Each
style is an Iconify JSON set on npm (pinned with sha512 in style_packages.json, fetched and verified like the
default packs): SVG bodies by icon name, rendered to 72 px PNGs with cairosvg. Icon names are CLDR names
as slugs ("loudly-crying-face"), mapped to code points through Emojibase's English labels and Fluent flat's
chars.json (Iconify names icons alike across sets), so every sticker gets the default catalogue's stem scheme (noto's image name, e.g. `1f62d`,
`2764-fe0f`) and its `emoji` character: the training code's same-emoji matching finds its other styles.
Never part of `make catalog`: each pack is written next to the others in OUT (replacing only itself).

Styles and licences (checked in each tarball's info.json / package.json):
  fluent-flat   @iconify-json/fluent-emoji-flat  Microsoft Fluent Emoji, flat   MIT
  fluent-color  @iconify-json/fluent-emoji       Microsoft Fluent Emoji, color  MIT
  emojione      @iconify-json/emojione           EmojiOne 2 (Emoji Two)          CC-BY-4.0
  noto-blob     @iconify-json/noto-v1            Noto Emoji v1: Google's blobs   Apache-2.0
(`@svgmoji/blob` holds no art: its sprites load from a CDN at run time; noto-v1 is the original blob set.)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from training.catalog_build import (
    EMOJIBASE,
    LANGS,
    LOCK_FILE,
    CatalogBuildError,
    Emojibase,
    Fetch,
    LockedPackage,
    PackReport,
    emoji_char,
    extract_tarball,
    fetch_tarball,
    hex_key,
    load_emojibase,
    read_lock,
)

STYLE_BUILDER_VERSION = 1
STYLE_LOCK_FILE = Path(__file__).with_name("style_packages.json")
SIZE_PX = 72
DATASOURCE = "emoji-datasource-google"  # its image names are the default catalogue's stems
NAMES_SOURCE = "@iconify-json/fluent-emoji-flat"  # its chars.json (code points -> icon name) names every set

StyleName = Literal["fluent-flat", "fluent-color", "emojione", "noto-blob"]
STYLE_NAMES: tuple[StyleName, ...] = get_args(StyleName)
_NAMES_NOTE = "Names and tags: Emojibase (MIT, emojibase.dev), from Unicode CLDR annotations."


@dataclass(frozen=True)
class StyleSource:
    package: str
    title: str
    licence: str
    attribution: str


STYLE_SOURCES: dict[StyleName, StyleSource] = {
    "fluent-flat": StyleSource(
        "@iconify-json/fluent-emoji-flat", "Fluent Emoji (flat)", "MIT",
        "Fluent Emoji by Microsoft Corporation (github.com/microsoft/fluentui-emoji), MIT License; SVGs from "
        "@iconify-json/fluent-emoji-flat, rendered to 72 px PNG. " + _NAMES_NOTE),
    "fluent-color": StyleSource(
        "@iconify-json/fluent-emoji", "Fluent Emoji (color)", "MIT",
        "Fluent Emoji by Microsoft Corporation (github.com/microsoft/fluentui-emoji), MIT License; SVGs from "
        "@iconify-json/fluent-emoji, rendered to 72 px PNG (cairosvg draws SVG filters only in part). " + _NAMES_NOTE),
    "emojione": StyleSource(
        "@iconify-json/emojione", "EmojiOne 2", "CC-BY-4.0",
        "Emoji artwork by Emoji One (EmojiOne 2.3, github.com/EmojiTwo/emojitwo), licensed under CC BY 4.0 "
        "(creativecommons.org/licenses/by/4.0); SVGs from @iconify-json/emojione, rendered to 72 px PNG. "
        + _NAMES_NOTE),
    "noto-blob": StyleSource(
        "@iconify-json/noto-v1", "Noto Emoji v1 (blobs)", "Apache-2.0",
        "Noto Emoji v1 by Google Inc (github.com/googlefonts/noto-emoji), Apache License 2.0; SVGs from "
        "@iconify-json/noto-v1, rendered to 72 px PNG. " + _NAMES_NOTE),
}


def slug(name: str) -> str:
    """A CLDR name as an Iconify icon name: "Face with Tears of Joy" -> "face-with-tears-of-joy"."""
    ascii_name = name.lower().replace("’", "").replace("'", "").replace("&", "and")
    return re.sub(r"[^a-z0-9]+", "-", ascii_name).strip("-")


def resolve_icon(icon_set: dict[str, Any], name: str) -> str | None:
    """The icon an icon name draws: itself, or an alias's parent when the alias adds no transform."""
    icons, aliases = icon_set["icons"], icon_set.get("aliases", {})
    for _ in range(5):  # alias chains are short
        if name in icons:
            return name
        alias = aliases.get(name)
        if alias is None or set(alias) - {"parent"}:  # rotations and flips are other pictures: skip them
            return None
        name = alias["parent"]
    return None


def icon_svg(icon_set: dict[str, Any], name: str) -> str | None:
    """A standalone SVG document for an icon (aliases without transforms resolved), or None."""
    resolved = resolve_icon(icon_set, name)
    if resolved is None:
        return None
    icon = icon_set["icons"][resolved]
    left, top = icon.get("left", icon_set.get("left", 0)), icon.get("top", icon_set.get("top", 0))
    width, height = icon.get("width", icon_set.get("width", 16)), icon.get("height", icon_set.get("height", 16))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
            f'viewBox="{left} {top} {width} {height}" width="{SIZE_PX}" height="{SIZE_PX}">{icon["body"]}</svg>')


def name_index(emojibase: Emojibase, chars: dict[str, str] | None = None) -> dict[str, str]:
    """Icon name -> hex_key, from Emojibase's English labels (and a set's own chars.json, code points -> name)."""
    index = {slug(label): key for key, label in emojibase.labels.get("en", {}).items()}
    for codepoints, name in (chars or {}).items():
        index.setdefault(name, hex_key(codepoints))
    return index


def datasource_stems(package_dir: Path) -> dict[str, str]:
    """hex_key -> the default catalogue's stem (emoji-datasource image name without .png), skins included."""
    stems = {}
    for record in json.loads((package_dir / "emoji.json").read_text(encoding="utf-8")):
        for entry in [record, *(record.get("skin_variations") or {}).values()]:
            stems[hex_key(entry["unified"])] = entry["image"].removesuffix(".png")
    return stems


def build_style_pack(icon_set: dict[str, Any], names: dict[str, str], stems: dict[str, str], emojibase: Emojibase,
                     out_dir: Path, *, skin_tones: bool = False) -> tuple[PackReport, dict[str, dict[str, Any]]]:
    """Render every icon that maps to an emoji into out_dir/<stem>.png; the report and pack.json entries."""
    import cairosvg
    from tqdm import tqdm

    out_dir.mkdir(parents=True, exist_ok=True)
    report, entries = PackReport(), {}
    icon_names = sorted(icon_set["icons"]) + sorted(icon_set.get("aliases", {}))  # an icon before its aliases
    for name in tqdm(icon_names, desc=f"{out_dir.name} renders", unit="icon", disable=None):
        key = names.get(name) or names.get(resolve_icon(icon_set, name) or "")
        if key is None:
            report.skipped.append((name, "no emoji with this name"))
            continue
        if not skin_tones and any(0x1F3FB <= int(part, 16) <= 0x1F3FF for part in key.split("-")):
            continue
        stem = stems.get(key, key.lower())
        svg = icon_svg(icon_set, name)
        if stem in entries or svg is None:
            report.skipped.append((name, f"{stem} already drawn" if svg else "alias with a transform"))
            continue
        try:
            cairosvg.svg2png(bytestring=svg.encode("utf-8"), write_to=str(out_dir / f"{stem}.png"))
        except Exception as error:  # one bad SVG costs one sticker, not the build
            report.skipped.append((name, f"cannot render: {type(error).__name__}: {error}"))
            (out_dir / f"{stem}.png").unlink(missing_ok=True)
            continue
        label_names, tags = emojibase.names_and_tags(key)
        label_names.setdefault("en", name.replace("-", " "))
        entries[stem] = {"names": label_names, "tags": {lang: t for lang, t in tags.items() if t},
                         "category": None, "emoji": emoji_char(key), "icon": name}
        report.written += 1
    return report, entries


@dataclass(frozen=True)
class StyleBuildConfig:
    out: Path  # a catalogue folder; each style becomes OUT/<style>
    cache_dir: Path  # npm tarballs (shared with the default catalogue)
    styles: tuple[StyleName, ...]
    skin_tones: bool = False
    lock_path: Path = STYLE_LOCK_FILE
    base_lock_path: Path = LOCK_FILE  # pins emojibase-data and emoji-datasource-google (names and stems)


def build_styles(config: StyleBuildConfig, fetch: Fetch | None = None) -> dict[str, PackReport]:
    """Build each chosen style into OUT/<style> (atomically replacing only that pack). Raises CatalogBuildError."""
    from eigml.catalog import load_catalog

    lock: dict[str, LockedPackage] = {**read_lock(config.base_lock_path), **read_lock(config.lock_path)}
    needed = sorted({STYLE_SOURCES[s].package for s in config.styles} | {EMOJIBASE, DATASOURCE, NAMES_SOURCE})
    missing = [name for name in needed if name not in lock]
    if missing:
        raise CatalogBuildError(f"no pinned version of {missing} in {config.base_lock_path} / {config.lock_path}")
    tarballs = {name: fetch_tarball(lock[name], config.cache_dir, fetch) for name in needed}
    config.out.mkdir(parents=True, exist_ok=True)
    reports: dict[str, PackReport] = {}
    with tempfile.TemporaryDirectory(prefix=".styles.work-", dir=config.out) as work_dir:
        work = Path(work_dir)
        emojibase = load_emojibase(extract_tarball(tarballs[EMOJIBASE], work / EMOJIBASE,
                                                   [f"{lang}/data.json" for lang in LANGS]))
        stems = datasource_stems(extract_tarball(tarballs[DATASOURCE], work / DATASOURCE, ["emoji.json"]))
        names_dir = extract_tarball(tarballs[NAMES_SOURCE], work / "names", ["chars.json"])
        names = name_index(emojibase, json.loads((names_dir / "chars.json").read_text(encoding="utf-8")))
        for style in config.styles:
            source = STYLE_SOURCES[style]
            package_dir = extract_tarball(tarballs[source.package], work / style, ["icons.json"])
            icon_set = json.loads((package_dir / "icons.json").read_text(encoding="utf-8"))
            tmp = work / "built" / style
            report, entries = build_style_pack(icon_set, names, stems, emojibase, tmp, skin_tones=config.skin_tones)
            meta = {"name": style, "title": source.title, "licence": source.licence,
                    "attribution": source.attribution, "source": lock[source.package].spec,
                    "builder_version": STYLE_BUILDER_VERSION, "stickers": dict(sorted(entries.items()))}
            (tmp / "pack.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
            loaded = load_catalog(tmp.parent)  # checked with the real loader before it is published
            if len(loaded.ids([style])) != report.written or loaded.skipped:
                raise CatalogBuildError(f"style {style}: wrote {report.written} stickers, {len(loaded.ids([style]))} "
                                 f"load; skipped {loaded.skipped[:3]}")
            _replace_pack(tmp, config.out / style)
            reports[style] = report
    return reports


def _replace_pack(new: Path, target: Path) -> None:
    new.chmod(0o755)
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    if target.exists():
        target.rename(old)
    new.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def _parse_styles(text: str) -> tuple[StyleName, ...]:
    wanted = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [s for s in wanted if s not in STYLE_NAMES]
    if unknown or not wanted:
        raise CatalogBuildError(f"unknown style(s) {unknown or text!r}; choose from {','.join(STYLE_NAMES)}")
    return tuple(s for s in STYLE_NAMES if s in wanted)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True,
                        help="catalogue folder to add the style packs to (each style is OUT/<style>)")
    parser.add_argument("--styles", default=",".join(STYLE_NAMES),
                        help=f"comma-separated styles (default and choices: {','.join(STYLE_NAMES)})")
    parser.add_argument("--skin-tones", action="store_true", help="also include skin-tone variants")
    parser.add_argument("--lock", type=Path, default=STYLE_LOCK_FILE, help="pinned packages (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    from eigml.paths import Paths

    started = time.perf_counter()
    try:
        config = StyleBuildConfig(out=args.out.expanduser().absolute(), cache_dir=Paths.from_env().cache_dir / "npm",
                                  styles=_parse_styles(args.styles), skin_tones=args.skin_tones, lock_path=args.lock)
        reports = build_styles(config)
    except CatalogBuildError as error:
        print(f"catalog-styles: {error}", file=sys.stderr)
        return 1
    for style, report in reports.items():
        print(f"  {style:12s} {report.written:5d} stickers, {len(report.skipped)} icons left out")
    print(f"{config.out}: {sum(r.written for r in reports.values())} stickers in {len(reports)} style packs, "
          f"built in {time.perf_counter() - started:.1f} s")
    return 0
