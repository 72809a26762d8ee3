"""Opt-in art-style packs: Iconify sets rendered under the default catalogue's stems, pinned and verified."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_catalog_build import (
    EMOJIBASE,
    _serving,
    datasource_files,
    emojibase_files,
    write_tarball,
    write_tree,
)

from eigml.catalog import load_catalog
from training.catalog_build import ChecksumError, LockedPackage, integrity_of, load_emojibase
from training.style_packs import (
    NAMES_SOURCE,
    StyleBuildConfig,
    build_style_pack,
    build_styles,
    datasource_stems,
    icon_svg,
    name_index,
    slug,
)

BODY = '<rect width="32" height="32" fill="{}"/>'
ICON_SET = {
    "prefix": "test", "width": 32, "height": 32,
    "icons": {"loudly-crying-face": {"body": BODY.format("#00f")}, "red-heart": {"body": BODY.format("#f00")},
              "thumbs-up": {"body": BODY.format("#ff0")}, "thumbs-up-light": {"body": BODY.format("#fe0")},
              "avocado": {"body": BODY.format("#0f0")}},  # avocado: in no name source here
    "aliases": {"heart-again": {"parent": "red-heart"}, "sob-flipped": {"parent": "loudly-crying-face", "hFlip": True}},
}
CHARS = {"1f44d": "thumbs-up", "1f44d-1f3fb": "thumbs-up-light"}  # Fluent flat's chars.json shape


def test_slug_matches_iconify_names() -> None:
    assert slug("Face with Tears of Joy") == "face-with-tears-of-joy"
    assert slug("flag: United States") == "flag-united-states"
    assert slug("people holding hands") == "people-holding-hands"


def test_icon_svg_resolves_plain_aliases_only() -> None:
    assert icon_svg(ICON_SET, "heart-again") == icon_svg(ICON_SET, "red-heart")
    assert icon_svg(ICON_SET, "sob-flipped") is None and icon_svg(ICON_SET, "nope") is None
    assert 'viewBox="0 0 32 32"' in (icon_svg(ICON_SET, "red-heart") or "")


def test_style_pack_uses_the_default_stems_and_emoji(tmp_path: Path) -> None:
    emojibase = load_emojibase(write_tree(tmp_path / "eb", emojibase_files()))
    stems = datasource_stems(write_tree(tmp_path / "ds", datasource_files("img/google/64")))
    report, entries = build_style_pack(ICON_SET, name_index(emojibase, CHARS), stems, emojibase,
                                       tmp_path / "catalog" / "style")
    # noto's stems: FE0F kept where emoji-datasource has it; skin tones left out by default
    assert sorted(entries) == ["1f44d", "1f62d", "2764-fe0f"] and report.written == 3
    assert entries["1f62d"]["emoji"] == "😭" and entries["2764-fe0f"]["emoji"] == "❤"
    assert entries["1f62d"]["names"] == {"en": "loudly crying face", "zh": "放声大哭"}
    skipped = dict(report.skipped)
    assert skipped["avocado"] == "no emoji with this name" and "already drawn" in skipped["heart-again"]
    catalog = load_catalog(tmp_path / "catalog")
    assert catalog.ids() == ["style/1f44d", "style/1f62d", "style/2764-fe0f"] and not catalog.skipped


def _registry(tmp_path: Path) -> tuple[Path, Path, Path]:
    """Tarballs of the packages a style build needs, and the two lock files pinning them."""
    registry = tmp_path / "registry"
    registry.mkdir()
    tarballs = {
        "emojibase-data": write_tarball(registry / "emojibase-data-0.0.1.tgz", emojibase_files()),
        "emoji-datasource-google": write_tarball(registry / "emoji-datasource-google-0.0.1.tgz",
                                                 datasource_files("img/google/64")),
        NAMES_SOURCE: write_tarball(registry / "iconify-json-fluent-emoji-flat-0.0.1.tgz",
                                    {"icons.json": json.dumps(ICON_SET).encode(), "chars.json": json.dumps(CHARS).encode()}),
        "@iconify-json/emojione": write_tarball(registry / "iconify-json-emojione-0.0.1.tgz",
                                                {"icons.json": json.dumps(ICON_SET).encode()}),
    }

    def lock(names: list[str]) -> dict[str, object]:
        return {"packages": {n: {"version": "0.0.1", "integrity": integrity_of(tarballs[n])} for n in names}}

    base = tmp_path / "base-lock.json"
    base.write_text(json.dumps(lock(["emojibase-data", "emoji-datasource-google"])))
    styles = tmp_path / "style-lock.json"
    styles.write_text(json.dumps(lock([NAMES_SOURCE, "@iconify-json/emojione"])))
    return registry, base, styles


def _fetch_from(registry: Path):  # type: ignore[no-untyped-def]
    def fetch(package: LockedPackage, dest: Path) -> Path:
        return _serving(registry / package.tarball_name)(package, dest)
    return fetch


def test_build_styles_adds_packs_beside_the_others(tmp_path: Path) -> None:
    registry, base, styles = _registry(tmp_path)
    out = tmp_path / "catalog"
    (out / "noto").mkdir(parents=True)
    shutil.copyfile(Path(__file__).parent.parent.parent / "README.md", out / "noto" / "README.md")
    config = StyleBuildConfig(out=out, cache_dir=tmp_path / "npm", styles=("fluent-flat", "emojione"),
                              lock_path=styles, base_lock_path=base)
    reports = build_styles(config, _fetch_from(registry))
    assert {s: r.written for s, r in reports.items()} == {"fluent-flat": 3, "emojione": 3}
    assert sorted(p.name for p in out.iterdir()) == ["emojione", "fluent-flat", "noto"]  # others untouched
    meta = json.loads((out / "emojione" / "pack.json").read_text())
    assert meta["licence"] == "CC-BY-4.0" and "CC BY 4.0" in meta["attribution"]
    assert meta["source"] == "@iconify-json/emojione@0.0.1"
    again = build_styles(config, _fetch_from(registry))  # replaces each style pack in place
    assert again["emojione"].written == 3 and len(load_catalog(out).ids(["emojione"])) == 3


def test_a_tampered_style_tarball_is_refused(tmp_path: Path) -> None:
    registry, base, styles = _registry(tmp_path)
    write_tarball(registry / "iconify-json-emojione-0.0.1.tgz", {"icons.json": b"{}"})
    config = StyleBuildConfig(out=tmp_path / "catalog", cache_dir=tmp_path / "npm", styles=("emojione",),
                              lock_path=styles, base_lock_path=base)
    with pytest.raises(ChecksumError):
        build_styles(config, _fetch_from(registry))
    assert not (tmp_path / "catalog" / "emojione").exists()


assert EMOJIBASE  # the synthetic emojibase this file's names come from
