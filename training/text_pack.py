"""`python -m training text-pack --out DIR`: a pack of text stickers (phrases drawn as images), emotion-labelled.

Chat stickers often carry their message as drawn text ("BYE BYE", "气死我了"). This renders a curated list of
short English and Chinese phrases, each labelled with the emotion it expresses (eigml.labels.EMOTIONS), in
two looks, as 256 px transparent PNGs with a pack.json in the catalogue format. Each sticker entry carries
`emotion`, `lang` and `text` beside the usual names, so the pack is labelled evaluation art for the OCR path
and the unseen-style figures. The phrases are this project's own (CC0-1.0); the font is found on the system
(`find_cjk_font`: WenQuanYi Micro Hei or Noto Sans CJK; `apt-get install fonts-wqy-microhei`).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from eigml.labels import EMOTIONS

SIZE_PX = 256
PACK_NAME = "text"
FONT_CANDIDATES = (  # Debian paths: fonts-wqy-microhei, fonts-wqy-zenhei, fonts-noto-cjk
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
)

# emotion -> (English phrases, Chinese phrases); short, as drawn on chat stickers
PHRASES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "none": (("OK", "got it", "noted", "on my way", "see you at 5", "what time?"),
             ("收到", "好的", "知道了", "在路上", "几点见", "明天见")),
    "like": (("love you", "thank u", "you're the best", "so cute", "miss you", "hugs"),
             ("爱你", "谢谢你", "你最棒", "好可爱", "想你了", "抱抱")),
    "happiness": (("YAY!", "hahaha", "so happy", "LOL", "woohoo", "best day ever"),
                  ("哈哈哈", "开心", "太好了", "笑死我了", "耶！", "好开心呀")),
    "sadness": (("so sad", "crying", "I miss you", "sorry...", "heartbroken", "why me"),
                ("好难过", "哭了", "伤心", "呜呜呜", "心碎了", "我好惨")),
    "anger": (("so angry", "GRR", "stop it!", "I'm mad", "how dare you", "enough!"),
              ("气死我了", "生气", "烦死了", "走开！", "别惹我", "怒了")),
    "fear": (("so scared", "help!", "I'm afraid", "nooo", "creepy", "run!"),
             ("好怕", "吓死我了", "救命", "害怕", "好可怕", "不要啊")),
    "disgust": (("ew", "gross", "yuck", "disgusting", "so cringe", "no thanks"),
                ("恶心", "好恶心", "呕", "嫌弃", "真恶心", "辣眼睛")),
    "surprise": (("WOW", "OMG", "what?!", "no way!", "really?", "unbelievable"),
                 ("哇", "天哪", "什么？！", "不会吧", "真的吗", "震惊")),
}
# two looks: dark text on a pale bubble, and white text with a dark outline on transparency
STYLES: dict[str, dict[str, tuple[int, int, int, int] | None]] = {
    "bubble": {"fill": (30, 30, 30, 255), "stroke": None, "bubble": (255, 236, 150, 255)},
    "outline": {"fill": (255, 255, 255, 255), "stroke": (40, 40, 90, 255), "bubble": None},
}
_CJK = re.compile(r"[\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]")
LICENCE = "CC0-1.0"
ATTRIBUTION = ("Text stickers rendered by this project (python -m training text-pack) from its own phrase list, "
               "dedicated to the public domain (CC0 1.0); typeface: {font}.")


@dataclass(frozen=True)
class TextSticker:
    stem: str
    text: str
    lang: str  # "en" or "zh"
    emotion: str  # one of eigml.labels.EMOTIONS
    style: str


def text_stickers() -> Iterator[TextSticker]:
    """Every sticker of the pack, in a stable order (stem: <lang>-<emotion>-<nn>-<style>)."""
    for emotion, by_lang in PHRASES.items():
        assert emotion in EMOTIONS, emotion
        for lang, phrases in zip(("en", "zh"), by_lang, strict=True):
            for n, text in enumerate(phrases):
                for style in STYLES:
                    yield TextSticker(f"{lang}-{emotion}-{n:02d}-{style}", text, lang, emotion, style)


def draws_cjk(path: Path) -> bool:
    """Whether the font at `path` has Chinese glyphs. A font without them still draws something for "气": its
    missing-glyph box (DejaVu Sans, which fontconfig offers when no CJK font is installed), the same box for
    every character it lacks, so two different characters drawn alike mean no glyphs."""
    try:
        font = ImageFont.truetype(str(path), 20)
    except OSError:
        return False
    masks = [font.getmask(ch) for ch in ("气", "乐", "\U0010fffd")]  # the last: a code point no font draws
    drawn = [(m.size, bytes(m)) for m in masks]
    return masks[0].getbbox() is not None and len(set(drawn)) == 3


def find_cjk_font(explicit: Path | None = None) -> Path | None:
    """A font file drawing both Latin and CJK: `explicit`, a known Debian path, or what fontconfig offers."""
    if explicit is not None:
        return explicit if explicit.is_file() and draws_cjk(explicit) else None
    for candidate in FONT_CANDIDATES:
        if Path(candidate).is_file() and draws_cjk(Path(candidate)):
            return Path(candidate)
    if shutil.which("fc-match"):
        result = subprocess.run(["fc-match", "-f", "%{file}", ":lang=zh-cn"], capture_output=True, text=True,
                                check=False)
        path = Path(result.stdout.strip())
        if (result.returncode == 0 and path.is_file() and path.suffix.lower() in (".ttf", ".ttc", ".otf")
                and draws_cjk(path)):
            return path
    return None


def _cuts(text: str) -> list[int]:
    """Where `text` may break onto a second line: at a space, or between two CJK characters ("气死|我了"); never
    inside a Latin word ("hahaha" stays whole and is drawn smaller, as a designer would)."""
    spaces = [i for i, c in enumerate(text) if c == " "]
    if spaces:
        return spaces
    return [i for i in range(1, len(text)) if _CJK.match(text[i - 1]) and _CJK.match(text[i])]


def _wrap(text: str, font: ImageFont.FreeTypeFont, width: int) -> list[str]:
    """One line if it fits, else split at the allowed break (`_cuts`) nearest the middle; one line when none."""
    cuts = _cuts(text)
    if font.getlength(text) <= width or not cuts:
        return [text]
    cut = min(cuts, key=lambda i: abs(i - len(text) / 2))
    return [text[:cut].strip(), text[cut:].strip()]


def render_text_sticker(text: str, font_path: Path, style: str = "bubble", size_px: int = SIZE_PX) -> Image.Image:
    """An RGBA sticker with `text` centred, as large as fits its box (at most two lines): 80% of the
    sticker, or the inside of the speech bubble."""
    look = STYLES[style]
    image = Image.new("RGBA", (size_px, size_px), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    margin = size_px // 16
    bubble = (margin, size_px // 5, size_px - margin, size_px - size_px // 5)
    if look["bubble"] is not None:
        draw.rounded_rectangle(bubble, radius=size_px // 6, fill=look["bubble"], outline=(60, 60, 60, 255), width=3)
        box_w, box_h = int((bubble[2] - bubble[0]) * 0.85), int((bubble[3] - bubble[1]) * 0.8)
    else:
        box_w = box_h = int(size_px * 0.8)
    for points in range(size_px // 3, 11, -2):
        font = ImageFont.truetype(str(font_path), points)
        lines = _wrap(text, font, box_w)
        stroke = max(2, points // 12) if look["stroke"] else 0
        spacing = points // 5
        bbox = draw.multiline_textbbox((0, 0), "\n".join(lines), font=font, stroke_width=stroke, spacing=spacing)
        if bbox[2] - bbox[0] <= box_w and bbox[3] - bbox[1] <= box_h:
            break
    draw.multiline_text((size_px / 2, size_px / 2), "\n".join(lines), font=font, fill=look["fill"], anchor="mm",
                        align="center", spacing=spacing, stroke_width=stroke, stroke_fill=look["stroke"])
    return image


def build_text_pack(out: Path, font_path: Path, *, limit: int | None = None) -> int:
    """Render the pack into `out` (PNGs + pack.json); returns the number of stickers written."""
    out.mkdir(parents=True, exist_ok=True)
    entries = {}
    for sticker in list(text_stickers())[:limit]:
        render_text_sticker(sticker.text, font_path, sticker.style).save(out / f"{sticker.stem}.png", optimize=True)
        entries[sticker.stem] = {"names": {sticker.lang: sticker.text}, "tags": {}, "category": "text",
                                 "emoji": None, "emotion": sticker.emotion, "lang": sticker.lang,
                                 "text": sticker.text, "style": sticker.style}
    meta = {"name": PACK_NAME, "title": "Text stickers (en, zh)", "licence": LICENCE,
            "attribution": ATTRIBUTION.format(font=_font_name(font_path)), "font": font_path.name,
            "labels": "per-sticker `emotion` is the emotion the phrase expresses (eigml.labels.EMOTIONS)",
            "stickers": entries}
    (out / "pack.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return len(entries)


def pack_emotions(pack_dir: Path) -> dict[str, str]:
    """Sticker id -> labelled emotion, from a pack.json that has per-sticker `emotion` (e.g. this pack)."""
    meta = json.loads((pack_dir / "pack.json").read_text(encoding="utf-8"))
    return {f"{pack_dir.name}/{stem}": entry["emotion"] for stem, entry in meta.get("stickers", {}).items()
            if isinstance(entry, dict) and entry.get("emotion") in EMOTIONS}


def _font_name(path: Path) -> str:
    family, _ = ImageFont.truetype(str(path), 12).getname()
    return f"{family} ({path.name})"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="the pack folder to write (e.g. CATALOG/text)")
    parser.add_argument("--font", type=Path, default=None,
                        help="a font with Latin and CJK glyphs (default: WenQuanYi Micro Hei / Noto Sans CJK)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N stickers (tests)")


def run(args: argparse.Namespace) -> int:
    font = find_cjk_font(args.font)
    if font is None:
        print("text-pack: no font with Chinese glyphs found; `apt-get install fonts-wqy-microhei` or pass --font",
              file=sys.stderr)
        return 1
    count = build_text_pack(args.out.expanduser(), font, limit=args.limit)
    print(f"{args.out}: {count} text stickers ({_font_name(font)})")
    return 0
