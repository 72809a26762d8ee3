"""Redrawn packs: same stickers, same metadata, a new look."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from eigml.catalog import load_catalog
from training.augment_packs import build_augmented_pack, run


def _pack(root: Path) -> Path:
    pack = root / "noto"
    pack.mkdir(parents=True)
    stickers = {}
    for stem, colour in (("1f600", (250, 200, 40, 255)), ("1f621", (230, 60, 30, 255))):
        image = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
        draw = ImageDraw.Draw(image)
        draw.ellipse((4, 4, 60, 60), fill=colour)
        draw.ellipse((20, 22, 26, 28), fill=(40, 20, 0, 255))
        image.save(pack / f"{stem}.png")
        stickers[stem] = {"names": {"en": stem}, "tags": {"en": ["face"]}, "category": "smileys-emotion",
                          "emoji": None}
    (pack / "pack.json").write_text(json.dumps({"name": "noto", "title": "Noto", "licence": "Apache-2.0",
                                                "attribution": "Google.", "stickers": stickers}))
    return pack


def test_each_look_keeps_the_stickers_and_changes_the_pixels(tmp_path: Path) -> None:
    source = _pack(tmp_path)
    for look in ("outline", "gray"):
        out = tmp_path / f"noto-{look}"
        assert build_augmented_pack(source, out, look) == 2
        meta = json.loads((out / "pack.json").read_text())
        assert meta["name"] == f"noto-{look}" and set(meta["stickers"]) == {"1f600", "1f621"}
        assert meta["licence"] == "Apache-2.0" and look in meta["title"]
        for stem in meta["stickers"]:
            new = np.asarray(Image.open(out / f"{stem}.png").convert("RGBA"), dtype=np.int16)
            old = np.asarray(Image.open(source / f"{stem}.png").convert("RGBA").resize(new.shape[:2][::-1]),
                             dtype=np.int16)
            assert new.shape == (128, 128, 4) and np.abs(new - old).mean() > 5  # redrawn, not copied
            if look == "gray":
                assert (new[..., 0] == new[..., 1]).all() and (new[..., 1] == new[..., 2]).all()
            else:  # dark lines around the face
                assert (new[..., :3].max(-1) < 60).sum() > 100
    catalog = load_catalog(tmp_path)
    assert {"noto", "noto-outline", "noto-gray"} <= set(catalog.packs)


def test_unknown_look_or_pack_is_refused(tmp_path: Path) -> None:
    import argparse

    _pack(tmp_path)
    assert run(argparse.Namespace(catalog=tmp_path, source="noto", looks="sepia")) == 2
    assert run(argparse.Namespace(catalog=tmp_path, source="twemoji", looks="gray")) == 2
    assert not (tmp_path / "noto-sepia").exists()
