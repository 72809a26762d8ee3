"""`python -m training catalog`: build the default sticker catalogue from pinned npm emoji packages.

Packs: noto (emoji-datasource-google), twemoji (emoji-datasource-twitter), openmoji (colour SVGs rendered
to PNG); English and Chinese names/tags from emojibase-data, matched by hexcode. Tarballs are fetched with
`npm pack` into the cache, checked against the sha512 in catalog_packages.json, then extracted safely.
The build goes to a temporary folder beside OUT, is loaded back and checked, and is renamed into place;
a stamp file makes a second run with the same lock, builder version and options a no-op.
Skin-tone variants are left out by default (they repeat their base sticker's meaning; `--skin-tones` adds them).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

BUILDER_VERSION = 1  # bump when the output of a build changes for the same packages
LOCK_FILE = Path(__file__).with_name("catalog_packages.json")
STAMP_FILE = ".catalog-build.json"
OPENMOJI_SIZE_PX = 72  # the SVGs' own 72x72 view box
LANGS: tuple[str, ...] = ("en", "zh")
EMOJIBASE = "emojibase-data"

PackName = Literal["noto", "twemoji", "openmoji"]
PACK_NAMES: tuple[PackName, ...] = get_args(PackName)


class CatalogBuildError(RuntimeError):
    """The catalogue cannot be built; the message says why and what to do."""


class ChecksumError(CatalogBuildError):
    """A tarball's bytes do not match the sha512 pinned in the lock file."""


@dataclass(frozen=True)
class LockedPackage:
    name: str
    version: str
    integrity: str  # "sha512-<base64 digest>", as npm's dist.integrity

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def tarball_name(self) -> str:
        return f"{self.name.lstrip('@').replace('/', '-')}-{self.version}.tgz"


@dataclass(frozen=True)
class PackSource:
    package: str  # npm package name (versions come from the lock)
    kind: Literal["emoji-datasource", "openmoji"]
    title: str
    licence: str
    attribution: str
    image_dir: str = ""  # emoji-datasource: the folder of 64 px PNGs inside the package


_NAMES_NOTE = "Names and tags: Emojibase (MIT, emojibase.dev), from Unicode CLDR annotations."
PACK_SOURCES: dict[PackName, PackSource] = {
    "noto": PackSource(
        "emoji-datasource-google", "emoji-datasource", "Noto Emoji", "Apache-2.0",
        "Noto Emoji by Google (github.com/googlefonts/noto-emoji), Apache License 2.0; 64 px images from "
        "emoji-datasource-google (iamcal/emoji-data, MIT). " + _NAMES_NOTE, image_dir="img/google/64"),
    "twemoji": PackSource(
        "emoji-datasource-twitter", "emoji-datasource", "Twemoji", "CC-BY-4.0",
        "Twemoji graphics by Twitter, Inc. and other contributors (github.com/jdecked/twemoji), licensed "
        "under CC BY 4.0 (creativecommons.org/licenses/by/4.0); 64 px images from emoji-datasource-twitter "
        "(iamcal/emoji-data, MIT). " + _NAMES_NOTE, image_dir="img/twitter/64"),
    "openmoji": PackSource(
        "openmoji", "openmoji", "OpenMoji", "CC-BY-SA-4.0",
        "All emojis designed by OpenMoji (openmoji.org), the open-source emoji and icon project. License: "
        "CC BY-SA 4.0 (creativecommons.org/licenses/by-sa/4.0); rendered from SVG to 72 px PNG, same "
        "licence. Chinese names and tags: Emojibase (MIT, emojibase.dev), from Unicode CLDR annotations."),
}


@dataclass(frozen=True)
class CatalogBuildConfig:
    out: Path
    cache_dir: Path  # npm tarballs (~/.cache/stickers/npm)
    packs: tuple[PackName, ...] = PACK_NAMES
    skin_tones: bool = False
    force: bool = False
    lock_path: Path = LOCK_FILE
    required_ids: frozenset[str] = frozenset()  # sticker ids the built packs must contain (the benchmark's)


@dataclass
class PackReport:
    written: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (stem, reason)


# ---------------------------------------------------------------- packages: lock, fetch, verify, extract

def read_lock(path: Path) -> dict[str, LockedPackage]:
    """The pinned packages by name, from a lock file {"packages": {name: {"version", "integrity"}}}."""
    entries = json.loads(path.read_text(encoding="utf-8"))["packages"]
    return {name: LockedPackage(name, entry["version"], entry["integrity"]) for name, entry in entries.items()}


def integrity_of(path: Path) -> str:
    """npm-style sha512 integrity string of a file."""
    digest = hashlib.sha512()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return "sha512-" + base64.b64encode(digest.digest()).decode("ascii")


def npm_pack(package: LockedPackage, dest_dir: Path) -> Path:
    """Download a package's tarball with `npm pack` into dest_dir; returns its path."""
    command = ["npm", "pack", package.spec, "--pack-destination", str(dest_dir), "--json"]
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise CatalogBuildError("npm is not installed; install Node.js (npm) to fetch the emoji packages") from None
    if result.returncode != 0:
        raise CatalogBuildError(f"`{' '.join(command)}` failed:\n{result.stderr.strip()[-2000:]}")
    return dest_dir / json.loads(result.stdout)[0]["filename"]


Fetch = Callable[[LockedPackage, Path], Path]


def fetch_tarball(package: LockedPackage, cache_dir: Path, fetch: Fetch | None = None) -> Path:
    """The package's tarball in cache_dir, fetched (default: npm_pack) when absent or stale;
    its sha512 matches the lock."""
    target = cache_dir / package.tarball_name
    if target.is_file():
        if integrity_of(target) == package.integrity:
            return target
        print(f"cached {target} does not match the lock; fetching {package.spec} again", file=sys.stderr)
        target.unlink()
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".fetch-", dir=cache_dir) as tmp:
        fetched = (fetch or npm_pack)(package, Path(tmp))
        actual = integrity_of(fetched)
        if actual != package.integrity:
            raise ChecksumError(f"checksum mismatch for {package.spec}: the lock pins {package.integrity}, "
                                f"the downloaded tarball is {actual}; refusing to use it")
        os.replace(fetched, target)  # only verified bytes ever appear under the cached name
    return target


def extract_tarball(tarball: Path, dest: Path, members: Iterable[str]) -> Path:
    """Extract the regular files named in `members` (paths inside the package; a trailing "/" takes a
    whole folder); returns dest/"package".

    Uses tarfile's "data" filter: absolute paths, `..`, links and devices cannot escape dest.
    """
    wanted = tuple(f"package/{member}" for member in members)
    with tarfile.open(tarball, "r:gz") as archive:
        for member in archive:
            if member.isfile() and any(member.name == w or (w.endswith("/") and member.name.startswith(w))
                                       for w in wanted):
                if hasattr(tarfile, "data_filter"):
                    archive.extract(member, dest, filter="data")
                else:  # Python < 3.11.4 (Debian bookworm's 3.11.2) has no filters: refuse what "data" would
                    if Path(member.name).is_absolute() or ".." in Path(member.name).parts:
                        raise CatalogBuildError(f"{tarball.name}: unsafe path {member.name!r}")
                    archive.extract(member, dest)
    return dest / "package"


# ---------------------------------------------------------------- metadata

def hex_key(hexcode: str) -> str:
    """Code points with variation selectors dropped, e.g. "2764-fe0f" -> "2764": emojibase and
    emoji-datasource disagree on where FE0F goes."""
    return "-".join(part for part in hexcode.upper().split("-") if part not in ("FE0F", "FE0E"))


def emoji_char(hexcode: str) -> str:
    """The characters of a dash-separated hexcode, e.g. "2764-FE0F" -> "❤️"."""
    return "".join(chr(int(part, 16)) for part in hexcode.split("-"))


def category_slug(category: str) -> str:
    """emoji-datasource's "Smileys & Emotion" -> "smileys-emotion", the Unicode/OpenMoji group name."""
    return "-".join(category.lower().replace("&", " ").split())


def merge_tags(*groups: Iterable[str], exclude: str = "") -> list[str]:
    """Tags in first-seen order without duplicates or the name itself."""
    seen = {exclude.lower()}
    merged = []
    for tag in (tag.strip() for group in groups for tag in group):
        if tag and tag.lower() not in seen:
            seen.add(tag.lower())
            merged.append(tag)
    return merged


@dataclass(frozen=True)
class Emojibase:
    """Labels and tags per language, keyed by hex_key; skin variants carry their own label, base tags."""

    labels: dict[str, dict[str, str]]
    tags: dict[str, dict[str, list[str]]]

    def names_and_tags(self, hexcode: str) -> tuple[dict[str, str], dict[str, list[str]]]:
        key = hex_key(hexcode)
        names = {lang: by_key[key] for lang, by_key in self.labels.items() if key in by_key}
        tags = {lang: by_key[key] for lang, by_key in self.tags.items() if by_key.get(key)}
        return names, tags


def load_emojibase(package_dir: Path, langs: Iterable[str] = LANGS) -> Emojibase:
    """emojibase-data's <lang>/data.json files, flattened (skins included)."""
    labels: dict[str, dict[str, str]] = {}
    tags: dict[str, dict[str, list[str]]] = {}
    for lang in langs:
        labels[lang], tags[lang] = {}, {}
        for record in json.loads((package_dir / lang / "data.json").read_text(encoding="utf-8")):
            base_tags = list(record.get("tags") or [])
            for entry in [record, *record.get("skins", [])]:
                key = hex_key(entry["hexcode"])
                labels[lang][key] = entry["label"]
                tags[lang][key] = list(entry.get("tags") or base_tags)
    return Emojibase(labels, tags)


def datasource_records(records: list[dict[str, Any]], *, skin_tones: bool) -> Iterator[dict[str, Any]]:
    """emoji-datasource's emoji.json records, each skin variant (when asked) as a record of its own."""
    for record in records:
        yield record
        if skin_tones:
            for variant in (record.get("skin_variations") or {}).values():
                yield {**record, **variant, "skin_variations": None}


def _sticker_entry(names: dict[str, str], tags: dict[str, list[str]], category: str | None,
                   emoji: str | None, **extra: Any) -> dict[str, Any]:
    return {"names": names, "tags": tags, "category": category, "emoji": emoji, **extra}


def _write_pack_json(out_dir: Path, pack: PackName, source: PackSource, package: LockedPackage,
                     stickers: dict[str, dict[str, Any]]) -> None:
    meta = {"name": pack, "title": source.title, "licence": source.licence, "attribution": source.attribution,
            "source": package.spec, "stickers": dict(sorted(stickers.items()))}
    (out_dir / "pack.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


# ---------------------------------------------------------------- pack builders

def build_datasource_pack(package_dir: Path, image_dir: str, emojibase: Emojibase, out_dir: Path, *,
                          skin_tones: bool = False) -> tuple[PackReport, dict[str, dict[str, Any]]]:
    """Copy emoji-datasource PNGs to out_dir/<stem>.png (stem = image name without .png);
    returns the report and the pack.json sticker entries."""
    from tqdm import tqdm

    out_dir.mkdir(parents=True, exist_ok=True)
    records = list(datasource_records(json.loads((package_dir / "emoji.json").read_text(encoding="utf-8")),
                                      skin_tones=skin_tones))
    report, entries = PackReport(), {}
    for record in tqdm(records, desc=f"{out_dir.name} images", unit="sticker", disable=None):
        stem = record["image"].removesuffix(".png")
        source = package_dir / image_dir / record["image"]
        if not source.is_file():
            report.skipped.append((stem, f"no image {image_dir}/{record['image']} in the package"))
            continue
        shutil.copyfile(source, out_dir / f"{stem}.png")
        names, tags = emojibase.names_and_tags(record["unified"])
        names.setdefault("en", (record.get("name") or stem).lower())
        short_names = [name.replace("_", " ") for name in record.get("short_names") or []]
        tags["en"] = merge_tags(tags.get("en", []), short_names, exclude=names["en"])
        entries[stem] = _sticker_entry(names, {lang: t for lang, t in tags.items() if t},
                                       category_slug(record["category"]), emoji_char(record["unified"]),
                                       subcategory=record.get("subcategory"))
        report.written += 1
    return report, entries


_MARKER_ATTRIBUTE = re.compile(r'\smarker-(?:start|mid|end)="[^"]*"')


def render_svg(svg: Path, png: Path, size_px: int) -> None:
    """Render an SVG file to a size_px x size_px RGBA PNG.

    cairosvg crashes on a marker that points at no definition (a browser ignores it; OpenMoji 17's Wales
    flag has one), so a failed render is retried once with marker attributes removed.
    """
    import cairosvg

    try:
        cairosvg.svg2png(url=str(svg), write_to=str(png), output_width=size_px, output_height=size_px)
    except Exception:
        text = svg.read_text(encoding="utf-8")
        stripped = _MARKER_ATTRIBUTE.sub("", text)
        if stripped == text:
            raise
        cairosvg.svg2png(bytestring=stripped.encode("utf-8"), write_to=str(png),
                         output_width=size_px, output_height=size_px)


def build_openmoji_pack(package_dir: Path, emojibase: Emojibase, out_dir: Path, *, skin_tones: bool = False,
                        size_px: int = OPENMOJI_SIZE_PX) -> tuple[PackReport, dict[str, dict[str, Any]]]:
    """Render OpenMoji colour SVGs to size_px RGBA PNGs out_dir/<hexcode lower>.png;
    returns the report and the pack.json sticker entries."""
    from tqdm import tqdm

    out_dir.mkdir(parents=True, exist_ok=True)
    records = json.loads((package_dir / "data" / "openmoji.json").read_text(encoding="utf-8"))
    records = [record for record in records if skin_tones or not record.get("skintone")]
    report, entries = PackReport(), {}
    for record in tqdm(records, desc="openmoji renders", unit="sticker", disable=None):
        stem = record["hexcode"].lower()
        svg = package_dir / "color" / "svg" / f"{record['hexcode']}.svg"
        try:
            render_svg(svg, out_dir / f"{stem}.png", size_px)
        except Exception as error:  # a missing or unparsable SVG costs one sticker, not the build
            report.skipped.append((stem, f"cannot render {svg.name}: {type(error).__name__}: {error}"))
            (out_dir / f"{stem}.png").unlink(missing_ok=True)
            continue
        names, tags = emojibase.names_and_tags(record["hexcode"])
        names["en"] = record.get("annotation") or names.get("en") or stem
        own_tags = [tag for field_name in ("tags", "openmoji_tags") for tag in (record.get(field_name) or "").split(",")]
        tags["en"] = merge_tags(own_tags, exclude=names["en"]) or tags.get("en", [])
        private_use = record.get("group") == "extras-openmoji"  # OpenMoji's own icons sit in U+E000..U+F8FF
        entries[stem] = _sticker_entry(names, {lang: t for lang, t in tags.items() if t}, record.get("group"),
                                       None if private_use else record.get("emoji"),
                                       subcategory=record.get("subgroups"))
        report.written += 1
    return report, entries


# ---------------------------------------------------------------- the build

def _needed_packages(config: CatalogBuildConfig) -> list[str]:
    return sorted({PACK_SOURCES[pack].package for pack in config.packs} | {EMOJIBASE})


def _stamp_key(config: CatalogBuildConfig, lock: dict[str, LockedPackage]) -> dict[str, Any]:
    return {"builder_version": BUILDER_VERSION, "packs": sorted(config.packs), "skin_tones": config.skin_tones,
            "packages": {name: [lock[name].version, lock[name].integrity] for name in _needed_packages(config)}}


def is_up_to_date(config: CatalogBuildConfig, lock: dict[str, LockedPackage]) -> bool:
    """True when OUT holds a complete build (its stamp is written last) of the same key, with every
    required sticker file present."""
    try:
        stamp = json.loads((config.out / STAMP_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if stamp.get("key") != _stamp_key(config, lock):
        return False
    return all((config.out / f"{sticker_id}.png").is_file() for sticker_id in _checked_ids(config))


def _checked_ids(config: CatalogBuildConfig) -> list[str]:
    return sorted(i for i in config.required_ids if i.split("/", 1)[0] in config.packs)


@contextlib.contextmanager
def _build_lock(out: Path) -> Iterator[None]:
    """One build per OUT at a time (a second waits, then usually finds the first one's result).
    Holding it, leftovers of an interrupted build beside OUT are removed."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f".{out.name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        for kind in ("building", "work", "old"):
            for leftover in out.parent.glob(f".{out.name}.{kind}-*"):
                shutil.rmtree(leftover, ignore_errors=True)
        yield


def _build_into(tmp: Path, work: Path, config: CatalogBuildConfig, lock: dict[str, LockedPackage],
                tarballs: dict[str, Path]) -> dict[str, PackReport]:
    emojibase = load_emojibase(extract_tarball(tarballs[EMOJIBASE], work / EMOJIBASE,
                                               [f"{lang}/data.json" for lang in LANGS]))
    reports: dict[str, PackReport] = {}
    for pack in config.packs:
        source = PACK_SOURCES[pack]
        if source.kind == "emoji-datasource":
            package_dir = extract_tarball(tarballs[source.package], work / source.package,
                                          ["emoji.json", f"{source.image_dir}/"])
            report, entries = build_datasource_pack(package_dir, source.image_dir, emojibase, tmp / pack,
                                                    skin_tones=config.skin_tones)
        else:
            package_dir = extract_tarball(tarballs[source.package], work / source.package,
                                          ["data/openmoji.json", "color/svg/"])
            report, entries = build_openmoji_pack(package_dir, emojibase, tmp / pack, skin_tones=config.skin_tones)
        _write_pack_json(tmp / pack, pack, source, lock[source.package], entries)
        shutil.rmtree(work / source.package)  # keep the peak disk use to one extracted package
        reports[pack] = report
    return reports


def _check_build(tmp: Path, config: CatalogBuildConfig, reports: dict[str, PackReport]) -> None:
    """Load the fresh build with the real loader: every written sticker must validate, every required id exist."""
    from eigml.catalog import load_catalog

    catalog = load_catalog(tmp)
    if catalog.skipped:
        path, reason = catalog.skipped[0]
        raise CatalogBuildError(f"{len(catalog.skipped)} built files fail validation, e.g. {path}: {reason}")
    for pack, report in reports.items():
        if len(catalog.ids([pack])) != report.written:
            raise CatalogBuildError(f"pack {pack}: wrote {report.written} stickers, loaded {len(catalog.ids([pack]))}")
    missing = [sticker_id for sticker_id in _checked_ids(config) if sticker_id not in catalog]
    if missing:
        raise CatalogBuildError(f"{len(missing)} benchmark sticker ids are missing from the build, e.g. {missing[:5]}")


def _replace_dir(new: Path, out: Path) -> None:
    """Move `new` to `out`; an existing `out` is moved aside first and removed after."""
    new.chmod(0o755)
    if not out.exists():
        new.rename(out)
        return
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    out.rename(old)
    try:
        new.rename(out)
    except OSError:
        old.rename(out)
        raise
    shutil.rmtree(old)


def build_catalog(config: CatalogBuildConfig, fetch: Fetch | None = None) -> dict[str, PackReport] | None:
    """Build the catalogue at config.out; None when it was already up to date. Raises CatalogBuildError."""
    lock = read_lock(config.lock_path)
    missing = sorted(set(_needed_packages(config)) - set(lock))
    if missing:
        raise CatalogBuildError(f"{config.lock_path} pins no version of {missing}")
    if not config.force and is_up_to_date(config, lock):
        return None
    with _build_lock(config.out):
        if not config.force and is_up_to_date(config, lock):  # another process just built it
            return None
        if config.out.exists() and any(config.out.iterdir()) and not (config.out / STAMP_FILE).exists() \
                and not config.force:
            raise CatalogBuildError(f"{config.out} exists and was not built by this command; "
                             "pass --force to replace it")
        tarballs = {name: fetch_tarball(lock[name], config.cache_dir, fetch) for name in _needed_packages(config)}
        tmp = Path(tempfile.mkdtemp(prefix=f".{config.out.name}.building-", dir=config.out.parent))
        try:
            with tempfile.TemporaryDirectory(prefix=f".{config.out.name}.work-", dir=config.out.parent) as work:
                reports = _build_into(tmp, Path(work), config, lock, tarballs)
            _check_build(tmp, config, reports)
            stamp = {"key": _stamp_key(config, lock), "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                     "stickers": {pack: report.written for pack, report in reports.items()}}
            (tmp / STAMP_FILE).write_text(json.dumps(stamp, indent=1) + "\n", encoding="utf-8")
            _replace_dir(tmp, config.out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return reports


# ---------------------------------------------------------------- command line

def benchmark_sticker_ids(srs_dir: Path) -> frozenset[str]:
    """Every candidate and answer id in the benchmark files srs_dir/*.jsonl."""
    ids: set[str] = set()
    for path in sorted(srs_dir.glob("*.jsonl")):
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    item = json.loads(line)
                    ids.update(item.get("candidates", []))
                    ids.add(item["answer"])
    return frozenset(ids)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="catalogue folder to create or update")
    parser.add_argument("--packs", default=",".join(PACK_NAMES),
                        help=f"comma-separated packs to build (default and choices: {','.join(PACK_NAMES)})")
    parser.add_argument("--skin-tones", action="store_true", help="also include skin-tone variants")
    parser.add_argument("--force", action="store_true", help="rebuild even if OUT is up to date")
    parser.add_argument("--lock", type=Path, default=LOCK_FILE, help="pinned packages (default: %(default)s)")


def _parse_packs(text: str) -> tuple[PackName, ...]:
    packs = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [pack for pack in packs if pack not in PACK_NAMES]
    if unknown or not packs:
        raise CatalogBuildError(f"unknown pack(s) {unknown or text!r}; choose from {','.join(PACK_NAMES)}")
    return tuple(pack for pack in PACK_NAMES if pack in packs)


def run(args: argparse.Namespace) -> int:
    from eigml.paths import Paths

    started = time.perf_counter()
    paths = Paths.from_env()
    try:
        packs = _parse_packs(args.packs)
        required: frozenset[str] = frozenset()
        if paths.srs_dir.is_dir():
            required = benchmark_sticker_ids(paths.srs_dir)
        else:
            print(f"no benchmark data at {paths.srs_dir}: benchmark sticker ids not checked", file=sys.stderr)
        config = CatalogBuildConfig(out=args.out.expanduser().absolute(), cache_dir=paths.cache_dir / "npm",
                                    packs=packs, skin_tones=args.skin_tones, force=args.force,
                                    lock_path=args.lock, required_ids=required)
        reports = build_catalog(config)
    except CatalogBuildError as error:
        print(f"catalog: {error}", file=sys.stderr)
        return 1
    seconds = time.perf_counter() - started
    if reports is None:
        print(f"{config.out}: up to date ({seconds:.2f} s; --force rebuilds)")
        return 0
    for pack, report in reports.items():
        print(f"  {pack:9s} {report.written:5d} stickers, {len(report.skipped)} skipped"
              + "".join(f"\n    {stem}: {reason}" for stem, reason in report.skipped[:5]))
    total = sum(report.written for report in reports.values())
    checked = len(_checked_ids(config))
    print(f"{config.out}: {total} stickers in {len(reports)} packs, "
          f"{sum(len(r.skipped) for r in reports.values())} skipped; {checked} benchmark ids present; "
          f"built in {seconds:.1f} s")
    return 0
