"""Animated stickers (GIF, APNG, animated WebP): a few evenly spaced frames, each composited on white.

Pillow composes every frame onto the full canvas by the format's own rules (GIF disposal, APNG dispose and
blend ops, libwebp's animation decoder), so frame i is the picture a viewer sees at that moment; it is then
put on white like a still sticker. Frames are sampled by index, not by duration: the middle frame of each of
`frames` equal runs (a 10-frame GIF at 4 frames gives frames 1, 3, 6, 8). The image encoder pools the
backbone tokens of the sampled frames by their mean (see `ImageEncoder.features`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

FRAMES_PER_STICKER = 4  # backbone passes per animated sticker; 4 catches most loops' key poses
SAMPLING_VERSION = 1  # bump when frame_indices or on_white change: it is part of every animated cache key


@dataclass(frozen=True)
class Frames:
    """The sampled frames of one animated sticker (RGB on white) and its feature-cache key."""

    images: tuple[Image.Image, ...]
    checksum: str  # sha256 hex of the file's bytes and the sampling settings

    def __len__(self) -> int:
        return len(self.images)


def on_white(image: Image.Image) -> Image.Image:
    """RGB with any alpha (or palette transparency) composited onto white."""
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def frame_count(image: Image.Image) -> int:
    """Frames in an opened image file (1 for a still)."""
    return int(getattr(image, "n_frames", 1))


def frame_indices(n_frames: int, frames: int = FRAMES_PER_STICKER) -> list[int]:
    """`min(frames, n_frames)` evenly spaced frame numbers: the middle of each of that many equal runs."""
    if n_frames < 1 or frames < 1:
        raise ValueError(f"need at least one frame (n_frames={n_frames}, frames={frames})")
    k = min(frames, n_frames)
    return [(2 * i + 1) * n_frames // (2 * k) for i in range(k)]


def animated_checksum(file_sha256: str, frames: int = FRAMES_PER_STICKER) -> str:
    """Feature-cache key of an animated file: its bytes' sha256 plus how its frames were sampled."""
    return hashlib.sha256(f"frames-v{SAMPLING_VERSION}-k{frames}:{file_sha256}".encode()).hexdigest()


def read_frames(path: Path, frames: int = FRAMES_PER_STICKER) -> Frames | None:
    """The sampled frames of an animated file, or None when it has a single frame (a still)."""
    data = Path(path).read_bytes()
    with Image.open(path) as image:
        count = frame_count(image)
        if count < 2:
            return None
        sampled = []
        for index in frame_indices(count, frames):
            image.seek(index)  # forward only: GIF and APNG compose frames in order
            sampled.append(on_white(image))
    return Frames(tuple(sampled), animated_checksum(hashlib.sha256(data).hexdigest(), frames))


def middle_frame(pixels: Image.Image | Frames) -> Image.Image:
    """One picture of a sticker: the still itself, or the middle sampled frame of an animation (for OCR)."""
    if isinstance(pixels, Frames):
        return pixels.images[len(pixels.images) // 2]
    return pixels
