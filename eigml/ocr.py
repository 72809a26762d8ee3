"""Words drawn on stickers ("BYE BYE", "气死我了"), read once per image and cached on disk by checksum.

The engine is RapidOCR (`rapidocr-onnxruntime`, Apache-2.0, the optional extra `ocr`): PP-OCRv4 detection
and recognition as ONNX files inside the wheel, Chinese and English, offline. It costs ~0.6 s per image on
two cores, so text is read at index time (`sticker_texts`) and kept in a `TextCache` keyed by the image
file's sha256; a sticker whose file did not change is never read again. An animated sticker is read from
its middle sampled frame (`eigml.animation.middle_frame`). No text is the empty string, cached like any other.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import re
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image
from tqdm import tqdm

from eigml.animation import FRAMES_PER_STICKER, SAMPLING_VERSION, middle_frame, read_frames
from eigml.catalog import Catalog, open_rgb

OCR_VERSION = 2  # bump when reading or joining changes: it is part of the cache key (2: CJK joined without spaces)
# RapidOCR scales an image so its short side is at least this before detecting text (its default, 736,
# blows a 256 px sticker up ~8x in area); 480 read 48/48 rendered stickers like 736, at 1.1 s not 1.9 s
DET_SIDE_PX = 480
# Its angle classifier turns short words upside down ("so" -> "OS": 4 of 96 English stickers); sticker text
# is upright, and without it 191 of 192 rendered stickers read exactly (docs/unseen.md)
USE_ANGLE_CLASSIFIER = False
ENGINE_PACKAGE = "rapidocr-onnxruntime"
_CHECKSUM = re.compile(r"^[0-9a-f]{64}$")


def ocr_available() -> bool:
    """Whether the OCR engine is installed (`pip install rapidocr-onnxruntime`, see docs/unseen.md)."""
    return importlib.util.find_spec("rapidocr_onnxruntime") is not None


def cache_key(min_score: float = 0.5, det_side_px: int = DET_SIDE_PX) -> str:
    """Names everything that changes the text read from an image; the `TextCache` folder."""
    try:
        engine = importlib.metadata.version(ENGINE_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        engine = "none"
    return (f"rapidocr-{engine}-ocr{OCR_VERSION}-s{min_score:g}-det{det_side_px}-cls{int(USE_ANGLE_CLASSIFIER)}"
            f"-frames{SAMPLING_VERSION}k{FRAMES_PER_STICKER}")


class TextReader:
    """The OCR engine, loaded once: `reader(image) -> str`, the lines read in reading order, space-joined."""

    def __init__(self, min_score: float = 0.5, num_threads: int | None = None,
                 det_side_px: int = DET_SIDE_PX) -> None:
        if not ocr_available():
            raise ImportError(f"OCR needs {ENGINE_PACKAGE}: pip install opencv-python-headless pyclipper shapely "
                              f"six && pip install --no-deps {ENGINE_PACKAGE}==1.4.4 (see docs/unseen.md)")
        from rapidocr_onnxruntime import RapidOCR

        threads = num_threads or min(os.cpu_count() or 1, 4)
        self.min_score = min_score
        self.key = cache_key(min_score, det_side_px)
        self._engine = RapidOCR(text_score=min_score, intra_op_num_threads=threads, inter_op_num_threads=1,
                                det_limit_side_len=det_side_px, use_cls=USE_ANGLE_CLASSIFIER)
        self._lock = threading.Lock()  # one onnxruntime run at a time per reader

    def __call__(self, image: Image.Image) -> str:
        rgb = image.convert("RGB")
        with self._lock:
            result, _ = self._engine(rgb)
        return join_lines(result or [])


# Scripts written without spaces between words: CJK ideographs (and their extensions), kana, full-width
# punctuation and forms. Two fragments that meet at such characters are one run of text ("气死" over "我了" on
# a two-line sticker is "气死我了"), so they are joined without the space Latin words need.
_UNSPACED = re.compile(r"[\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]")


def _joined(parts: Sequence[str]) -> str:
    out = ""
    for part in parts:
        if out and not (_UNSPACED.match(out[-1]) and _UNSPACED.match(part[0])):
            out += " "
        out += part
    return out


def join_lines(result: Sequence[Any]) -> str:
    """RapidOCR's [[box, text, score], ...] as one string: top to bottom, then left to right, space-joined,
    except where both sides of a junction are CJK (`_UNSPACED`), which join directly.

    Boxes whose vertical centres are within half a line height of each other count as one line.
    """
    items = []
    for box, text, _score in result:
        text = " ".join(str(text).split())
        if text:
            ys = [point[1] for point in box]
            items.append(((min(ys) + max(ys)) / 2, max(ys) - min(ys), min(point[0] for point in box), text))
    items.sort()
    lines: list[list[tuple[float, str]]] = []
    last_centre, last_height = None, 0.0
    for centre, height, left, text in items:
        if last_centre is None or centre - last_centre > max(height, last_height) / 2:
            lines.append([])
            last_centre, last_height = centre, height
        lines[-1].append((left, text))
    return _joined([text for line in lines for _, text in sorted(line)])


_default: TextReader | None = None


def read_text(image: Image.Image) -> str:
    """The words drawn on one image ("" when none), with a process-wide reader loaded on first use."""
    global _default
    if _default is None:
        _default = TextReader()
    return _default(image)


class TextCache:
    """Text per image on disk: `root/key/<sha[:2]>/<sha>.txt` (UTF-8, possibly empty); writes are atomic."""

    def __init__(self, root: Path, key: str) -> None:
        if not re.fullmatch(r"[A-Za-z0-9._-]+", key):
            raise ValueError(f"cache key {key!r} must be a plain file name ([A-Za-z0-9._-])")
        self.key = key
        self.dir = Path(root) / key

    @classmethod
    def under(cls, cache_dir: Path, min_score: float = 0.5) -> TextCache:
        """The cache for the installed engine under a cache folder (`$STICKERS_CACHE_DIR/ocr` by convention)."""
        return cls(Path(cache_dir), cache_key(min_score))

    def _path(self, checksum: str) -> Path:
        if not _CHECKSUM.match(checksum):
            raise ValueError(f"not a sha256 hex digest: {checksum!r}")
        return self.dir / checksum[:2] / f"{checksum}.txt"

    def get(self, checksum: str) -> str | None:
        try:
            return self._path(checksum).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None

    def put(self, checksum: str, text: str) -> None:
        path = self._path(checksum)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{checksum}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)


def ocr_image(path: Path) -> Image.Image:
    """The picture OCR reads for an image file: the RGB still, or an animation's middle sampled frame."""
    frames = read_frames(path)
    return middle_frame(frames) if frames is not None else open_rgb(path)


def sticker_texts(catalog: Catalog, sticker_ids: Sequence[str], *, cache: TextCache | None = None,
                  reader: TextReader | None = None, checksums: Mapping[str, str] | None = None) -> dict[str, str]:
    """Text drawn on each sticker, by id ("" when none): cached text where the image file is unchanged,
    otherwise read with `reader` (loaded on first need) and cached.

    `checksums` (id -> sha256 of the image file) saves hashing files the caller already hashed.
    """
    return sticker_texts_with_stats(catalog, sticker_ids, cache=cache, reader=reader, checksums=checksums)[0]


def sticker_texts_with_stats(catalog: Catalog, sticker_ids: Sequence[str], *, cache: TextCache | None = None,
                             reader: TextReader | None = None, checksums: Mapping[str, str] | None = None,
                             progress: bool = False) -> tuple[dict[str, str], int]:
    """(`sticker_texts`, how many images the engine read rather than the cache)."""
    texts: dict[str, str] = {}
    read = 0
    for sticker_id in tqdm(sticker_ids, desc="reading sticker text", unit="sticker", disable=not progress):
        path = catalog[sticker_id].path
        checksum = (checksums or {}).get(sticker_id) or hashlib.sha256(path.read_bytes()).hexdigest()
        text = cache.get(checksum) if cache is not None else None
        if text is None:
            if reader is None:
                reader = TextReader()
            text = reader(ocr_image(path))
            read += 1
            if cache is not None:
                cache.put(checksum, text)
        texts[sticker_id] = text
    return texts, read
