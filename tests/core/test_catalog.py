"""The catalogue loader on a tiny pack tree written by the test: what loads, what is skipped and why."""

from __future__ import annotations

import io
import json
import random
import struct
import zlib
from pathlib import Path
from typing import cast

import pytest
from PIL import Image

from eigml.catalog import SKIP_KINDS, Catalog, load_catalog

MAX_BYTES = 100_000  # the fixture's "oversized" file is a 300x300 noise PNG (~270 kB)


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height, with one empty IDAT: ~60 bytes on disk."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def _rgba_sticker() -> Image.Image:
    """8x8: left half opaque blue, top-right fully transparent, bottom-right half-transparent red."""
    image = Image.new("RGBA", (8, 8), (0, 0, 255, 255))
    for x in range(4, 8):
        for y in range(8):
            image.putpixel((x, y), (255, 0, 0, 0) if y < 4 else (255, 0, 0, 128))
    return image


def _palette_gif_with_transparency(path: Path) -> None:
    image = Image.new("P", (8, 8), 1)
    image.putpalette([0, 0, 0, 0, 200, 0] + [0, 0, 0] * 254)  # index 0 black (transparent), 1 green
    for x in range(4):
        image.putpixel((x, 0), 0)
    image.save(path, "GIF", transparency=0)


def _write_fixture(root: Path) -> None:
    good = root / "good"
    good.mkdir(parents=True)
    _rgba_sticker().save(good / "a_png.png")
    Image.new("RGB", (10, 6), (10, 200, 30)).save(good / "b_jpeg.jpg", "JPEG")
    Image.new("RGB", (6, 6), (200, 10, 30)).save(good / "c_jpeg.jpeg", "JPEG")
    _rgba_sticker().save(good / "d_webp.webp", "WEBP", lossless=True)
    _palette_gif_with_transparency(good / "e_gif.gif")
    (good / "LICENSE.txt").write_text("not a sticker; ignored")
    _rgba_sticker().save(good / ".hidden.png")
    (good / "pack.json").write_text(json.dumps({
        "name": "good", "title": "Good Pack", "licence": "CC0-1.0", "attribution": "by the test",
        "stickers": {
            "a_png": {"names": {"en": "crying face", "zh": "哭脸"},
                      "tags": {"en": ["sad", "tears"], "zh": ["哭", "泪"]}, "category": "smileys-emotion",
                      "emoji": "😢"},
            "b_jpeg": {"names": {"en": "green box"}, "tags": {"zh": ["绿色"]}},
            "c_jpeg": {"tags": {"en": ["red"]}},
            "d_webp": {"names": {"en": 5, "zh": ""}, "tags": {"en": "not a list"}},  # malformed: dropped
            "not_here": {"names": {"en": "metadata without an image"}},
        },
    }, ensure_ascii=False), encoding="utf-8")

    plain = root / "plain"  # no pack.json
    plain.mkdir()
    Image.new("L", (5, 5), 128).save(plain / "ok.png")
    ok_bytes = _png_bytes(Image.new("RGB", (64, 64), (1, 2, 3)))
    (plain / "truncated.png").write_bytes(ok_bytes[: len(ok_bytes) // 2])
    corrupt = bytearray(ok_bytes)
    corrupt[ok_bytes.index(b"IDAT") + 8] ^= 0xFF  # flip a compressed byte: broken stream and bad CRC
    (plain / "corrupt.png").write_bytes(bytes(corrupt))
    bad_crc = bytearray(ok_bytes)
    idat = ok_bytes.index(b"IDAT")
    bad_crc[idat + 4 + struct.unpack(">I", ok_bytes[idat - 4:idat])[0]] ^= 0xFF  # pixels decode; checksum wrong
    (plain / "bad_crc.png").write_bytes(bytes(bad_crc))
    # decompression bombs: tiny on disk, huge when decoded
    Image.new("1", (5000, 5000)).save(plain / "bomb.png")  # 25 M pixels > 4096^2, under Pillow's own limit
    (plain / "pillow_bomb.png").write_bytes(_png_header_only(20000, 20000))  # 400 M pixels: Pillow refuses
    rng = random.Random(0)
    Image.frombytes("RGB", (300, 300), rng.randbytes(300 * 300 * 3)).save(plain / "oversized.png")
    (plain / "text.png").write_text("hello, I am not a picture\n")
    Image.new("RGB", (4, 4)).save(plain / "jpeg_named.png", "JPEG")
    Image.new("RGB", (4, 4)).save(plain / "png_named.gif", "PNG")
    (plain / "empty.webp").write_bytes(b"")
    Image.new("RGB", (4, 4)).save(plain / "dup.png")
    Image.new("RGB", (4, 4)).save(plain / "dup.webp", "WEBP")
    (plain / "notes.md").write_text("ignored")

    broken_meta = root / "brokenmeta"
    broken_meta.mkdir()
    (broken_meta / "pack.json").write_text("{not json")
    Image.new("RGB", (4, 4), (9, 9, 9)).save(broken_meta / "s.png")

    (root / ".hidden_pack").mkdir()
    Image.new("RGB", (4, 4)).save(root / ".hidden_pack" / "x.png")
    (root / "README.md").write_text("a file at the root is not a pack")


@pytest.fixture()
def catalog(tmp_path: Path) -> Catalog:
    _write_fixture(tmp_path / "catalog")
    return load_catalog(tmp_path / "catalog", max_bytes=MAX_BYTES)


def test_loads_exactly_the_valid_stickers(catalog: Catalog) -> None:
    assert catalog.ids() == [
        "brokenmeta/s",
        "good/a_png", "good/b_jpeg", "good/c_jpeg", "good/d_webp", "good/e_gif",
        "plain/dup", "plain/ok",
    ]
    assert list(catalog.stickers) == sorted(catalog.stickers)
    assert catalog["plain/dup"].path.name == "dup.png"  # the first file by name wins


def test_skips_every_bad_file_with_its_reason(catalog: Catalog) -> None:
    kinds = {path.name: reason.split(":")[0] for path, reason in catalog.skipped}
    assert kinds == {
        "truncated.png": "truncated",
        "corrupt.png": "corrupt",
        "bad_crc.png": "corrupt",
        "bomb.png": "too-many-pixels",
        "pillow_bomb.png": "too-many-pixels",
        "oversized.png": "too-large",
        "text.png": "not-an-image",
        "jpeg_named.png": "format-mismatch",
        "png_named.gif": "format-mismatch",
        "empty.webp": "empty",
        "dup.webp": "duplicate",
        "pack.json": "bad-pack-json",
    }
    assert set(kinds.values()) <= set(SKIP_KINDS)
    reasons = {path.name: reason for path, reason in catalog.skipped}
    assert "5000x5000" in reasons["bomb.png"]
    assert "content is JPEG" in reasons["jpeg_named.png"] and "'.png'" in reasons["jpeg_named.png"]
    skipped_paths = {path for path, _ in catalog.skipped}
    assert catalog.root / "brokenmeta" / "pack.json" in skipped_paths


def test_limits_are_parameters(tmp_path: Path) -> None:
    _write_fixture(tmp_path / "catalog")
    lenient = load_catalog(tmp_path / "catalog", max_bytes=10_000_000, max_pixels=6000 * 6000)
    assert "plain/oversized" in lenient and "plain/bomb" in lenient
    assert "plain/pillow_bomb" not in lenient  # still refused: Pillow's own bomb guard


def test_prints_the_skipped_count(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_fixture(tmp_path / "catalog")
    load_catalog(tmp_path / "catalog", max_bytes=MAX_BYTES)
    assert "8 stickers in 3 packs, 12 files skipped" in capsys.readouterr().err


def test_random_bytes_never_raise(tmp_path: Path) -> None:
    pack = tmp_path / "catalog" / "junk"
    pack.mkdir(parents=True)
    rng = random.Random(1)
    valid = _png_bytes(_rgba_sticker())
    for i in range(40):
        suffix = [".png", ".jpg", ".webp", ".gif"][i % 4]
        if i % 2:  # a real PNG header followed by garbage
            data = valid[:rng.randrange(8, len(valid))] + rng.randbytes(rng.randrange(0, 64))
        else:
            data = rng.randbytes(rng.randrange(1, 2048))
        (pack / f"junk{i}{suffix}").write_bytes(data)
    catalog = load_catalog(tmp_path / "catalog")
    assert len(catalog) == 0 and len(catalog.skipped) == 40
    assert all(reason.split(":")[0] in SKIP_KINDS for _, reason in catalog.skipped)


def test_pack_metadata(catalog: Catalog) -> None:
    good, plain = catalog.packs["good"], catalog.packs["plain"]
    assert (good.title, good.licence, good.attribution) == ("Good Pack", "CC0-1.0", "by the test")
    assert (plain.name, plain.title, plain.licence, plain.attribution) == ("plain", "plain", None, None)
    assert set(catalog.packs) == {"good", "plain", "brokenmeta"}
    sticker = catalog["good/a_png"]
    assert (sticker.pack, sticker.stem, sticker.category, sticker.emoji) == ("good", "a_png", "smileys-emotion", "😢")
    assert dict(sticker.names) == {"en": "crying face", "zh": "哭脸"}
    assert dict(sticker.tags) == {"en": ("sad", "tears"), "zh": ("哭", "泪")}
    assert dict(catalog["good/d_webp"].names) == {} and dict(catalog["good/d_webp"].tags) == {}
    assert dict(catalog["plain/ok"].names) == {} and catalog["plain/ok"].category is None


def test_describe_falls_back_to_english_then_the_stem(catalog: Catalog) -> None:
    assert catalog.describe("good/a_png") == "crying face: sad, tears"
    assert catalog.describe("good/a_png", "zh") == "哭脸: 哭, 泪"
    assert catalog.describe("good/a_png", "fr") == "crying face: sad, tears"
    assert catalog.describe("good/b_jpeg") == "green box"  # no English tags
    assert catalog.describe("good/b_jpeg", "zh") == "b_jpeg: 绿色"  # Chinese tags, no Chinese name
    assert catalog.describe("good/c_jpeg", "zh") == "c_jpeg: red"  # falls back to English tags
    assert catalog.describe("plain/ok", "zh") == "ok"


def test_open_image_is_rgb_on_white(catalog: Catalog) -> None:
    image = catalog.open_image("good/a_png")
    assert image.mode == "RGB" and image.size == (8, 8)
    assert image.getpixel((0, 0)) == (0, 0, 255)
    assert image.getpixel((6, 1)) == (255, 255, 255)  # fully transparent -> white
    red, green, blue = cast(tuple[int, int, int], image.getpixel((6, 6)))  # half-transparent red on white
    assert red == 255 and 120 <= green <= 135 and green == blue
    webp = catalog.open_image("good/d_webp")
    assert webp.getpixel((6, 1)) == (255, 255, 255) and webp.getpixel((0, 0)) == (0, 0, 255)
    gif = catalog.open_image("good/e_gif")
    assert gif.mode == "RGB" and gif.getpixel((0, 0)) == (255, 255, 255) and gif.getpixel((5, 5)) == (0, 200, 0)
    jpeg = catalog.open_image("good/b_jpeg")
    assert jpeg.mode == "RGB" and jpeg.size == (10, 6)
    assert catalog.open_image("plain/ok").getpixel((0, 0)) == (128, 128, 128)


def test_mapping_api(catalog: Catalog) -> None:
    assert len(catalog) == 8
    assert "good/a_png" in catalog and "good/not_here" not in catalog and 3 not in catalog
    assert catalog.ids(["good"]) == ["good/a_png", "good/b_jpeg", "good/c_jpeg", "good/d_webp", "good/e_gif"]
    assert catalog.ids(["plain", "brokenmeta"]) == ["brokenmeta/s", "plain/dup", "plain/ok"]
    with pytest.raises(KeyError, match="good/missing"):
        catalog["good/missing"]
    with pytest.raises(KeyError, match="nope"):
        catalog.ids(["nope"])


def test_missing_root_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="python -m training catalog"):
        load_catalog(tmp_path / "absent")


def test_empty_root_is_an_empty_catalogue(tmp_path: Path) -> None:
    catalog = load_catalog(tmp_path)
    assert len(catalog) == 0 and catalog.packs == {} and catalog.skipped == []
