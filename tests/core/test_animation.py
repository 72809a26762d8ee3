"""Animated stickers: frame sampling, decoding per format, validation limits, and pooled features that
agree with the stills they are made of."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from eigml.animation import Frames, animated_checksum, frame_indices, read_frames
from eigml.catalog import load_catalog, validate_image
from eigml.model.image_encoder import FeatureCache, ImageEncoder, ImageEncoderConfig

# few flat colours, so GIF's palette keeps every pixel exact
COLOURS = [(230, 40, 40), (40, 160, 60), (40, 60, 220), (250, 200, 30)]


def still(index: int, size: int = 48) -> Image.Image:
    """An RGBA sticker on a transparent background: a coloured disc with a bar whose place depends on index."""
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.ellipse([4, 4, size - 4, size - 4], fill=(*COLOURS[index % 4], 255))
    draw.rectangle([8 + 6 * index, 20, 16 + 6 * index, 28], fill=(0, 0, 0, 255))
    return image


def on_white(image: Image.Image) -> Image.Image:
    return Image.alpha_composite(Image.new("RGBA", image.size, (255, 255, 255, 255)), image).convert("RGB")


def save_animation(path: Path, frames: list[Image.Image], **extra: object) -> Path:
    kwargs: dict[str, object] = {"save_all": True, "append_images": frames[1:], "duration": 80, "loop": 0}
    if path.suffix == ".gif":
        kwargs["disposal"] = 2  # restore to background: a frame must not show through the next
    if path.suffix == ".webp":
        kwargs["lossless"] = True
    frames[0].save(path, **{**kwargs, **extra})
    return path


def test_frame_indices_are_evenly_spaced_middles() -> None:
    assert frame_indices(1) == [0]
    assert frame_indices(2) == [0, 1]
    assert frame_indices(4, 4) == [0, 1, 2, 3]
    assert frame_indices(10, 4) == [1, 3, 6, 8]
    assert frame_indices(100, 4) == [12, 37, 62, 87]
    with pytest.raises(ValueError):
        frame_indices(0)


@pytest.mark.parametrize("suffix", [".gif", ".png", ".apng", ".webp"])
def test_read_frames_gives_each_composed_frame_on_white(tmp_path: Path, suffix: str) -> None:
    originals = [still(i) for i in range(4)]
    path = save_animation(tmp_path / f"anim{suffix}", originals)
    frames = read_frames(path, frames=4)
    assert frames is not None and len(frames) == 4
    for got, want in zip(frames.images, originals, strict=True):
        assert got.mode == "RGB"
        assert np.array_equal(np.asarray(got), np.asarray(on_white(want)))


def test_gif_partial_frames_are_composed_by_disposal(tmp_path: Path) -> None:
    """Frame 2 draws only a small square over frame 1 (disposal 1: keep); the decoded frame shows both."""
    first = still(0).convert("RGB")
    second = first.copy()
    ImageDraw.Draw(second).rectangle([30, 30, 40, 40], fill=COLOURS[2])
    path = save_animation(tmp_path / "partial.gif", [first, second], disposal=1)
    frames = read_frames(path)
    assert frames is not None
    assert np.array_equal(np.asarray(frames.images[1]), np.asarray(second))


def test_a_still_has_no_frames(tmp_path: Path) -> None:
    path = tmp_path / "still.png"
    still(0).save(path)
    assert read_frames(path) is None


def test_checksum_names_the_file_and_the_sampling(tmp_path: Path) -> None:
    path = save_animation(tmp_path / "a.gif", [still(0), still(1)])
    frames = read_frames(path)
    import hashlib

    assert frames is not None
    assert frames.checksum == animated_checksum(hashlib.sha256(path.read_bytes()).hexdigest())
    assert animated_checksum("0" * 64, 4) != animated_checksum("0" * 64, 8)


def test_catalogue_loads_animations_and_refuses_bombs(tmp_path: Path) -> None:
    pack = tmp_path / "anim"
    pack.mkdir()
    save_animation(pack / "ok.gif", [still(i) for i in range(3)])
    save_animation(pack / "ok2.webp", [still(i) for i in range(3)])
    save_animation(pack / "ok3.apng", [still(i) for i in range(3)])
    save_animation(pack / "long.gif", [still(i % 4) for i in range(12)])
    save_animation(pack / "big.png", [still(i, size=200) for i in range(3)])
    catalog = load_catalog(tmp_path, max_frames=10, max_animation_pixels=100_000)
    assert catalog.ids() == ["anim/ok", "anim/ok2", "anim/ok3"]
    reasons = {path.name: reason for path, reason in catalog.skipped}
    assert reasons["long.gif"].startswith("too-many-frames: 12 frames")
    assert reasons["big.png"].startswith("too-many-pixels: 3 frames of 200x200")
    sticker = catalog.open_sticker("anim/ok")
    assert isinstance(sticker, Frames) and len(sticker) == 3
    assert catalog.open_image("anim/ok").mode == "RGB"  # the first frame, as before


def test_truncated_animation_is_refused(tmp_path: Path) -> None:
    path = save_animation(tmp_path / "cut.gif", [still(i) for i in range(4)])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 3 // 4])
    reason = validate_image(path, max_bytes=10**7, max_pixels=10**7)
    assert reason is not None and reason.split(":")[0] in ("truncated", "corrupt")


# ---- features: the image encoder pools frames by their mean ----------------------------------------------

@pytest.fixture(scope="module")
def encoder(tmp_path_factory: pytest.TempPathFactory) -> ImageEncoder:
    """A tiny random DINOv2 saved to a folder: the pooling is what is tested, not the weights."""
    from transformers import Dinov2Config, Dinov2Model

    folder = tmp_path_factory.mktemp("tiny-dinov2")
    torch.manual_seed(0)
    Dinov2Model(Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                             patch_size=14, image_size=28)).save_pretrained(folder)
    return ImageEncoder(ImageEncoderConfig(name_or_path=str(folder), image_size=28))


def fp16_close(a: torch.Tensor, b: torch.Tensor) -> None:
    # both sides were rounded to fp16; allow a couple of fp16 steps of matmul noise between batch sizes
    torch.testing.assert_close(a, b, rtol=2e-3, atol=2e-3)


def copies(image: Image.Image, count: int) -> list[Image.Image]:
    """`count` frames that look the same; a hidden (alpha 0) pixel differs, or encoders merge them into one."""
    out = []
    for k in range(count):
        frame = image.copy()
        frame.putpixel((0, 0), (k, k, k, 0))
        out.append(frame)
    return out


@pytest.mark.parametrize("suffix", [".gif", ".apng", ".webp"])
def test_an_animation_of_copies_of_a_still_has_the_stills_features(tmp_path: Path, encoder: ImageEncoder,
                                                                   suffix: str) -> None:
    exact = {"exact": True} if suffix == ".webp" else {}  # keep the hidden pixels that tell frames apart
    path = save_animation(tmp_path / f"copies{suffix}", copies(still(1), 5), **exact)
    frames = read_frames(path)
    assert frames is not None and len(frames) == 4
    (expected,) = encoder.features([on_white(still(1))])
    (got,) = encoder.features([frames])
    fp16_close(got, expected)


@pytest.mark.parametrize("suffix", [".gif", ".apng", ".webp"])
def test_a_two_frame_animation_is_the_mean_of_its_frames(tmp_path: Path, encoder: ImageEncoder,
                                                         suffix: str) -> None:
    path = save_animation(tmp_path / f"two{suffix}", [still(0), still(3)])
    frames = read_frames(path)
    assert frames is not None and len(frames) == 2
    stills = encoder.features([on_white(still(0)), on_white(still(3))])
    (got,) = encoder.features([frames])
    fp16_close(got, stills.mean(dim=0))
    assert (got - stills[0]).abs().max() > 0.05  # the frames differ, so the pool is not just one of them


def test_animations_and_stills_mix_in_a_batch_and_cache(tmp_path: Path, encoder: ImageEncoder) -> None:
    path = save_animation(tmp_path / "mix.gif", [still(0), still(2), still(3)])
    frames = read_frames(path)
    assert frames is not None
    batch = [on_white(still(1)), frames, on_white(still(2))]
    uncached = encoder.features(batch, batch_size=2)
    cache = FeatureCache(tmp_path / "cache", encoder.cache_key)
    first = encoder.features(batch, cache=cache, batch_size=3)
    assert len(cache) == 3 and frames.checksum in cache
    again = encoder.features(batch, cache=cache)  # every row from disk
    assert torch.equal(first, again)
    fp16_close(uncached, first)
    fp16_close(first[1], encoder.features(list(frames.images)).mean(dim=0))
