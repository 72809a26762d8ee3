"""Sticker image files: confinement to the catalogue root, content types and ETags."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

# served as stored: animated GIF, APNG (".png" too: browsers animate it as image/png) and WebP stay animated
CONTENT_TYPES = {".png": "image/png", ".apng": "image/apng", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
                 ".webp": "image/webp", ".gif": "image/gif"}
MEDIA_TYPES = sorted(set(CONTENT_TYPES.values()))
# the URL names a sticker id, whose art changes when the catalogue does: cacheable for a day, never
# `immutable`, so a browser revalidates with the ETag after that
CACHE_CONTROL = "public, max-age=86400, stale-while-revalidate=604800"


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


def headers(tag: str) -> dict[str, str]:
    return {"ETag": tag, "Cache-Control": CACHE_CONTROL}


# path -> (file identity, ETag). The identity includes the inode and ctime: `cp -p` keeps size and mtime
# but not ctime (and `mv` of a new file changes the inode), so a replaced file is never served a stale tag.
_TAGS: dict[str, tuple[tuple[int, ...], str]] = {}
_MAX_TAGS = 65_536


def _identity(stat: os.stat_result) -> tuple[int, ...]:
    return (stat.st_ino, stat.st_dev, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


def cached_etag(path: Path) -> str | None:
    """The ETag of `path` if its bytes were hashed and the file is unchanged since; None otherwise."""
    found = _TAGS.get(str(path))
    if found is None:
        return None
    try:
        identity = _identity(path.stat())
    except OSError:
        return None
    return found[1] if found[0] == identity else None


def read_image(path: Path) -> tuple[bytes, str]:
    """The file's bytes and their strong ETag, from one read (the tag is cached by file identity)."""
    with open(path, "rb") as f:
        identity = _identity(os.fstat(f.fileno()))
        data = f.read()
    tag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
    if len(_TAGS) >= _MAX_TAGS:
        _TAGS.clear()
    _TAGS[str(path)] = (identity, tag)
    return data, tag


def etag(path: Path) -> str:
    """A strong ETag from the file's bytes."""
    return cached_etag(path) or read_image(path)[1]


def matches(if_none_match: str | None, tag: str) -> bool:
    """Whether an If-None-Match header names `tag` (weak comparison, as RFC 9110 asks for GET)."""
    if not if_none_match:
        return False
    candidates = [c.strip() for c in if_none_match.split(",")]
    return "*" in candidates or tag in (c.removeprefix("W/") for c in candidates)
