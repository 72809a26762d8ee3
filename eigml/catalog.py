"""The sticker catalogue: packs of images on disk, validated once when loaded.

Layout: `CATALOG/<pack>/<stem>.<png|apng|jpg|jpeg|webp|gif>` plus an optional `CATALOG/<pack>/pack.json`
(title, licence, attribution and per-sticker names/tags/category/emoji). A sticker's id is `<pack>/<stem>`.
Loading never raises on a bad file: it is left out and listed in `Catalog.skipped` with the reason.
Only image suffixes are candidates; other files (LICENSE, README) and hidden entries are ignored.
Animated GIF, APNG and WebP are accepted within frame and total-pixel limits; `Catalog.open_sticker` gives
their sampled frames (`eigml.animation`).
"""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from eigml.animation import FRAMES_PER_STICKER, Frames, frame_count, on_white, read_frames

IMAGE_FORMATS: dict[str, str] = {".png": "PNG", ".apng": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP",
                                 ".gif": "GIF"}
_FORMAT_ALIASES: dict[str, str] = {"MPO": "JPEG"}  # camera JPEGs with extra frames open as MPO
PACK_FILE = "pack.json"

# Every skip reason starts with one of these words, so callers and tests can group them.
SKIP_KINDS: tuple[str, ...] = (
    "empty", "too-large", "too-many-pixels", "not-an-image", "format-mismatch", "truncated", "corrupt",
    "duplicate", "bad-pack-json", "too-many-frames",
)
MAX_FRAMES = 500  # frames in one animated sticker (a 60 fps, 8 s loop); more is refused, not truncated
MAX_ANIMATION_PIXELS = 100_000_000  # width * height * frames: every frame is decoded once when validating


@dataclass(frozen=True)
class Sticker:
    id: str  # "<pack>/<stem>"
    pack: str
    stem: str
    path: Path  # the image file
    names: Mapping[str, str]  # lang -> name, e.g. {"en": "loudly crying face", "zh": "放声大哭"}; may be empty
    tags: Mapping[str, tuple[str, ...]]  # lang -> tags; may be empty
    category: str | None = None
    emoji: str | None = None  # the Unicode character(s) when the sticker is an emoji


@dataclass(frozen=True)
class Pack:
    name: str
    title: str
    licence: str | None
    attribution: str | None
    path: Path


@dataclass
class Catalog:
    root: Path
    packs: dict[str, Pack]
    stickers: dict[str, Sticker]  # by id, in sorted id order
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # files that failed validation

    def __len__(self) -> int:
        return len(self.stickers)

    def __contains__(self, sticker_id: object) -> bool:
        return sticker_id in self.stickers

    def __getitem__(self, sticker_id: str) -> Sticker:
        try:
            return self.stickers[sticker_id]
        except KeyError:
            raise KeyError(
                f"no sticker {sticker_id!r} in the catalogue at {self.root} "
                f"({len(self.stickers)} stickers in packs: {', '.join(sorted(self.packs)) or 'none'})"
            ) from None

    def ids(self, packs: Collection[str] | None = None) -> list[str]:
        """Sticker ids in sorted order, optionally only those of the named packs (unknown names: KeyError)."""
        if packs is None:
            return list(self.stickers)
        unknown = sorted(set(packs) - set(self.packs))
        if unknown:
            raise KeyError(f"unknown pack(s) {unknown} in the catalogue at {self.root}; "
                           f"packs: {', '.join(sorted(self.packs)) or 'none'}")
        wanted = set(packs)
        return [sticker_id for sticker_id, sticker in self.stickers.items() if sticker.pack in wanted]

    def open_image(self, sticker_id: str) -> Image.Image:
        """The sticker as an RGB image (first frame if animated); transparency is composited on white."""
        return open_rgb(self[sticker_id].path)

    def open_sticker(self, sticker_id: str, frames: int = FRAMES_PER_STICKER) -> Image.Image | Frames:
        """What the image encoder takes: the RGB still (as `open_image`), or `frames` sampled frames of an
        animated sticker, each RGB on white (`eigml.animation.read_frames`)."""
        path = self[sticker_id].path
        return read_frames(path, frames) or open_rgb(path)

    def describe(self, sticker_id: str, lang: str = "en") -> str:
        """Text for text matching: "<name>: <tag>, <tag>" in `lang`, else in English, else the stem.

        Name and tags come from one language (the first of `lang`, "en" holding either), never mixed.
        """
        sticker = self[sticker_id]
        for candidate in (lang, "en"):
            name = sticker.names.get(candidate)
            tags = sticker.tags.get(candidate, ())
            if name or tags:
                head = name or sticker.stem
                return f"{head}: {', '.join(tags)}" if tags else head
        return sticker.stem


def open_rgb(path: Path) -> Image.Image:
    """RGB pixels of an image file; alpha (or palette transparency) is composited on white."""
    with Image.open(path) as image:
        image.seek(0)
        return on_white(image)


def validate_image(path: Path, *, max_bytes: int, max_pixels: int, max_frames: int = MAX_FRAMES,
                   max_animation_pixels: int = MAX_ANIMATION_PIXELS) -> str | None:
    """None when `path` is a complete, decodable image of the format its suffix names, within the limits;
    otherwise the reason, starting with one of SKIP_KINDS. Never raises for a bad file.

    An animation must have at most `max_frames` frames and `max_animation_pixels` pixels over all frames
    (checked before any frame after the first is decoded); then every frame is decoded once."""
    expected = IMAGE_FORMATS.get(path.suffix.lower())
    if expected is None:
        return f"not-an-image: unsupported suffix {path.suffix!r}"
    size = path.stat().st_size
    if size == 0:
        return "empty: the file has 0 bytes"
    if size > max_bytes:
        return f"too-large: {size} bytes, over the limit of {max_bytes}"
    try:
        with warnings.catch_warnings():
            # Pillow warns above its own pixel limit; the explicit max_pixels check below decides.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if width * height > max_pixels:
                    return (f"too-many-pixels: {width}x{height} = {width * height} pixels, over the limit "
                            f"of {max_pixels} (decompression bomb guard)")
                if width == 0 or height == 0:
                    return f"corrupt: {width}x{height} image has no pixels"
                if _FORMAT_ALIASES.get(image.format or "", image.format) != expected:
                    return f"format-mismatch: content is {image.format}, suffix {path.suffix!r} says {expected}"
                image.load()  # decodes the first frame: catches truncation and broken data streams
                frames = frame_count(image)  # GIF: a scan of the frame headers, no pixel decoding
                if frames > max_frames:
                    return f"too-many-frames: {frames} frames, over the limit of {max_frames}"
                if width * height * frames > max_animation_pixels:
                    return (f"too-many-pixels: {frames} frames of {width}x{height} = {width * height * frames} "
                            f"pixels, over the animation limit of {max_animation_pixels} (decompression bomb guard)")
                for index in range(1, frames):
                    image.seek(index)
                    image.load()
            with Image.open(path) as image:
                image.verify()  # checks what decoding skips, e.g. PNG chunk checksums
    except Image.DecompressionBombError as error:
        return f"too-many-pixels: {error}"
    except Image.UnidentifiedImageError:
        return f"not-an-image: content is not a recognised image (suffix {path.suffix!r})"
    except Exception as error:  # Pillow raises OSError, SyntaxError, ValueError, struct.error, EOFError...
        kind = "truncated" if "truncated" in str(error).lower() else "corrupt"
        return f"{kind}: {type(error).__name__}: {error}"
    return None


def _read_pack_meta(path: Path) -> tuple[dict[str, Any], str | None]:
    """pack.json as a dict ({} when absent) and an error message when it exists but is unusable."""
    if not path.is_file():
        return {}, None
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        return {}, f"bad-pack-json: {type(error).__name__}: {error}"
    if not isinstance(meta, dict):
        return {}, f"bad-pack-json: top level is {type(meta).__name__}, expected an object"
    return meta, None


def _object(value: Any) -> dict[Any, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _sticker_meta(entry: Any) -> tuple[dict[str, str], dict[str, tuple[str, ...]], str | None, str | None]:
    """(names, tags, category, emoji) from one pack.json sticker entry; malformed values are dropped."""
    if not isinstance(entry, dict):
        return {}, {}, None, None
    names = {str(lang): text for lang, value in _object(entry.get("names")).items() if (text := _text(value))}
    tags: dict[str, tuple[str, ...]] = {}
    for lang, values in _object(entry.get("tags")).items():
        if isinstance(values, list):
            clean = tuple(text for value in values if (text := _text(value)))
            if clean:
                tags[str(lang)] = clean
    return names, tags, _text(entry.get("category")), _text(entry.get("emoji"))


def _load_pack(pack_dir: Path, limits: dict[str, int],
               skipped: list[tuple[Path, str]]) -> tuple[Pack, list[Sticker]]:
    meta, error = _read_pack_meta(pack_dir / PACK_FILE)
    if error:
        skipped.append((pack_dir / PACK_FILE, error))
    pack = Pack(name=pack_dir.name, title=_text(meta.get("title")) or pack_dir.name,
                licence=_text(meta.get("licence")), attribution=_text(meta.get("attribution")), path=pack_dir)
    entries = _object(meta.get("stickers"))
    stickers: dict[str, Sticker] = {}
    for path in sorted(pack_dir.iterdir()):
        if path.name.startswith(".") or not path.is_file() or path.suffix.lower() not in IMAGE_FORMATS:
            continue
        reason = validate_image(path, **limits)
        if reason is None and path.stem in stickers:
            reason = f"duplicate: {stickers[path.stem].path.name} already provides {pack.name}/{path.stem}"
        if reason is not None:
            skipped.append((path, reason))
            continue
        names, tags, category, emoji = _sticker_meta(entries.get(path.stem))
        stickers[path.stem] = Sticker(id=f"{pack.name}/{path.stem}", pack=pack.name, stem=path.stem, path=path,
                                      names=names, tags=tags, category=category, emoji=emoji)
    return pack, list(stickers.values())


def load_catalog(root: str | Path, *, max_bytes: int = 10_000_000, max_pixels: int = 4096 * 4096,
                 max_frames: int = MAX_FRAMES, max_animation_pixels: int = MAX_ANIMATION_PIXELS) -> Catalog:
    """Every pack folder under `root`, each image validated; bad files go to `skipped` with a reason.

    A pack folder without pack.json is valid (no names or tags). Prints one summary line to stderr.
    Raises FileNotFoundError only when `root` itself is not a directory.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"sticker catalogue {root} is not a directory "
                                "(build the default one with `python -m training catalog --out DIR`)")
    limits = {"max_bytes": max_bytes, "max_pixels": max_pixels, "max_frames": max_frames,
              "max_animation_pixels": max_animation_pixels}
    packs: dict[str, Pack] = {}
    stickers: list[Sticker] = []
    skipped: list[tuple[Path, str]] = []
    for pack_dir in sorted(root.iterdir()):
        if pack_dir.is_dir() and not pack_dir.name.startswith((".", "_")):
            pack, pack_stickers = _load_pack(pack_dir, limits, skipped)
            packs[pack.name] = pack
            stickers.extend(pack_stickers)
    catalog = Catalog(root=root, packs=packs, stickers={s.id: s for s in sorted(stickers, key=lambda s: s.id)},
                      skipped=skipped)
    print(f"catalogue {root}: {len(catalog)} stickers in {len(packs)} packs, {len(skipped)} files skipped"
          + "".join(f"\n  skipped {path}: {reason}" for path, reason in skipped[:5])
          + (f"\n  ... and {len(skipped) - 5} more (Catalog.skipped)" if len(skipped) > 5 else ""),
          file=sys.stderr)
    return catalog
