"""Sticker image files: confinement to the catalogue root, content types and ETags."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

# served as stored: animated GIF, APNG (".png" too: browsers animate it as image/png) and WebP stay animated
CONTENT_TYPES = {".png": "image/png", ".apng": "image/apng", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
                 ".webp": "image/webp", ".gif": "image/gif"}
# a sticker's art changes only when the catalogue is rebuilt; the ETag revalidates after that
CACHE_CONTROL = "public, max-age=86400, stale-while-revalidate=604800, immutable"


def resolve_image(catalog_root: Path, image_path: Path, built_root: Path | None = None) -> Path | None:
    """The image file, only if it is a regular image file inside `catalog_root` (symlinks resolved).

    An index records absolute paths under the catalogue it was built from (`built_root`); they are
    rebased onto `catalog_root`, so a catalogue mounted elsewhere still serves.
    """
    root = catalog_root.resolve()
    if built_root is not None and image_path.is_absolute() and image_path.is_relative_to(built_root):
        image_path = image_path.relative_to(built_root)
    path = (root / image_path).resolve()  # an absolute image_path replaces root; the check below decides
    if not path.is_relative_to(root) or path.suffix.lower() not in CONTENT_TYPES or not path.is_file():
        return None
    return path


def content_type(path: Path) -> str:
    return CONTENT_TYPES[path.suffix.lower()]


def etag(path: Path) -> str:
    """A strong ETag from the file's bytes, cached per (path, size, mtime)."""
    stat = path.stat()
    return _etag(str(path), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=65_536)
def _etag(path: str, size: int, mtime_ns: int) -> str:
    return '"' + hashlib.sha256(Path(path).read_bytes()).hexdigest()[:32] + '"'


def matches(if_none_match: str | None, tag: str) -> bool:
    """Whether an If-None-Match header names `tag` (weak comparison, as RFC 9110 asks for GET)."""
    if not if_none_match:
        return False
    candidates = [c.strip() for c in if_none_match.split(",")]
    return "*" in candidates or tag in (c.removeprefix("W/") for c in candidates)
