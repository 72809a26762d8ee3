"""OCR of words drawn on stickers: line joining, the text cache, incremental reading, and the real engine on
stickers rendered from Chinese and English text (skipped without rapidocr-onnxruntime or a CJK font)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image

from eigml.catalog import load_catalog
from eigml.ocr import TextCache, cache_key, join_lines, ocr_available, sticker_texts, sticker_texts_with_stats
from training.text_pack import _cuts, build_text_pack, draws_cjk, find_cjk_font, render_text_sticker


def box(left: float, top: float, right: float, bottom: float) -> list[list[float]]:
    return [[left, top], [right, top], [right, bottom], [left, bottom]]


def test_lines_are_joined_in_reading_order() -> None:
    result = [[box(120, 10, 200, 40), "BYE", 0.9], [box(10, 12, 100, 38), "BYE", 0.9],
              [box(10, 60, 100, 90), "see  you", 0.8], [box(0, 0, 1, 1), "  ", 0.9]]
    assert join_lines(result) == "BYE BYE see you"
    assert join_lines([]) == ""


def test_chinese_fragments_join_without_a_space() -> None:
    """A two-line Chinese sticker ("气死" over "我了") is one phrase; Latin words keep their spaces, and a
    Latin word beside a Chinese one is still set apart."""
    assert join_lines([[box(10, 10, 90, 40), "气死", 0.9], [box(10, 60, 90, 90), "我了！", 0.9]]) == "气死我了！"
    assert join_lines([[box(10, 10, 90, 40), "拜拜", 0.9], [box(10, 60, 90, 90), "BYE", 0.9]]) == "拜拜 BYE"
    assert join_lines([[box(10, 10, 90, 40), "OK", 0.9], [box(100, 12, 190, 38), "好的", 0.9]]) == "OK 好的"
    assert join_lines([[box(10, 10, 90, 40), "see", 0.9], [box(10, 60, 90, 90), "you", 0.9]]) == "see you"


def test_text_cache_keeps_empty_text_apart_from_missing(tmp_path: Path) -> None:
    cache = TextCache(tmp_path, "k")
    a, b = "a" * 64, "b" * 64
    assert cache.get(a) is None
    cache.put(a, "")
    cache.put(b, "气死我了")
    assert cache.get(a) == "" and cache.get(b) == "气死我了"
    assert TextCache.under(tmp_path).key == cache_key()
    with pytest.raises(ValueError):
        cache.put("../x", "no")


class CountingReader:
    """Stands in for the engine: 'reads' an image's size, and counts calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, image: Image.Image) -> str:
        self.calls += 1
        return f"{image.width}x{image.height}"


def test_unchanged_images_are_read_once(tmp_path: Path) -> None:
    pack = tmp_path / "catalog" / "p"
    pack.mkdir(parents=True)
    for i, size in enumerate((20, 30, 40)):
        Image.new("RGB", (size, size), "white").save(pack / f"{i}.png")
    catalog = load_catalog(tmp_path / "catalog")
    cache = TextCache(tmp_path / "cache", "k")
    reader = CountingReader()
    first, read = sticker_texts_with_stats(catalog, catalog.ids(), cache=cache, reader=reader)  # type: ignore[arg-type]
    assert first == {"p/0": "20x20", "p/1": "30x30", "p/2": "40x40"} and read == 3
    Image.new("RGB", (50, 50), "white").save(pack / "1.png")  # one image changes
    catalog = load_catalog(tmp_path / "catalog")
    again, read = sticker_texts_with_stats(catalog, catalog.ids(), cache=cache, reader=reader)  # type: ignore[arg-type]
    assert again == {"p/0": "20x20", "p/1": "50x50", "p/2": "40x40"} and read == 1 and reader.calls == 4


LATIN_ONLY = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")  # Debian's fonts-dejavu-core


@pytest.mark.skipif(not LATIN_ONLY.is_file(), reason="DejaVu Sans is not installed")
def test_a_font_without_chinese_glyphs_is_not_taken_for_a_cjk_font() -> None:
    # fontconfig offers DejaVu Sans for lang=zh-cn when no CJK font is installed; it draws its missing-glyph
    # box for every Chinese character, which once rendered the zh text stickers as boxes (OCR read nothing)
    assert not draws_cjk(LATIN_ONLY)
    assert find_cjk_font(LATIN_ONLY) is None
    found = find_cjk_font()
    assert found is None or draws_cjk(found)


# ---- the real engine on rendered text stickers ------------------------------------------------------------

@pytest.fixture(scope="module")
def font() -> Path:
    found = find_cjk_font()
    if found is None:
        pytest.skip("no CJK font (apt-get install fonts-wqy-microhei)")
    return found


@pytest.fixture(scope="module")
def reader():  # type: ignore[no-untyped-def]
    if not ocr_available():
        pytest.skip("rapidocr-onnxruntime is not installed (see docs/unseen.md)")
    from eigml.ocr import TextReader

    return TextReader(num_threads=2)


def normalise(text: str) -> str:
    return re.sub(r"[\W_]+", "", text.lower())


@pytest.mark.parametrize(("text", "style"), [("BYE BYE", "bubble"), ("thank u", "outline"), ("气死我了", "outline"),
                                           ("哈哈哈", "bubble"), ("what?!", "outline")])
def test_reads_english_and_chinese_drawn_on_stickers(font: Path, reader, text: str, style: str) -> None:  # type: ignore[no-untyped-def]
    image = render_text_sticker(text, font, style)
    assert normalise(reader(image)) == normalise(text)


@pytest.mark.parametrize(("text", "style"), [("气死我了", "outline"), ("好开心呀", "bubble"), ("hahaha", "bubble"),
                                           ("unbelievable", "outline")])
def test_a_rendered_phrase_reads_back_exactly(font: Path, reader, text: str, style: str) -> None:  # type: ignore[no-untyped-def]
    """Not only up to spaces: a Chinese phrase drawn on two lines reads without a space in it, and a long
    English word is drawn whole (never "hah" over "aha"), so the text side reads the word it was given."""
    assert reader(render_text_sticker(text, font, style)) == text


def test_lines_break_at_spaces_or_between_chinese_characters_only() -> None:
    assert _cuts("best day ever") == [4, 8]
    assert _cuts("hahaha") == [] and _cuts("what?!") == []
    assert _cuts("气死我了") == [1, 2, 3]
    assert _cuts("耶！") == [1]


def test_a_sticker_without_words_reads_empty(reader) -> None:  # type: ignore[no-untyped-def]
    image = Image.new("RGBA", (128, 128), (0, 0, 0, 0))
    from PIL import ImageDraw

    ImageDraw.Draw(image).ellipse([10, 10, 118, 118], fill=(250, 200, 40, 255))
    assert reader(image) == ""


def test_sticker_texts_over_a_rendered_pack(tmp_path: Path, font: Path, reader) -> None:  # type: ignore[no-untyped-def]
    build_text_pack(tmp_path / "catalog" / "text", font, limit=4)
    catalog = load_catalog(tmp_path / "catalog")
    cache = TextCache.under(tmp_path / "ocr")
    texts = sticker_texts(catalog, catalog.ids(), cache=cache, reader=reader)
    assert {normalise(t) for t in texts.values()} == {"ok", "gotit"}
    _, read = sticker_texts_with_stats(catalog, catalog.ids(), cache=cache, reader=reader)
    assert read == 0
