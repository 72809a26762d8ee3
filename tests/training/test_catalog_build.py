"""The catalogue builder on tiny synthetic npm packages (no network): conversion, checksums, the CLI."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from eigml.catalog import load_catalog
from training.__main__ import main
from training.catalog_build import (
    PACK_SOURCES,
    CatalogBuildError,
    ChecksumError,
    Fetch,
    LockedPackage,
    build_datasource_pack,
    build_openmoji_pack,
    extract_tarball,
    fetch_tarball,
    integrity_of,
    load_emojibase,
)

# ---------------------------------------------------------------- synthetic packages

DATASOURCE_RECORDS = [
    {"name": "LOUDLY CRYING FACE", "unified": "1F62D", "image": "1f62d.png", "short_names": ["sob"],
     "category": "Smileys & Emotion", "subcategory": "face-concerned"},
    {"name": "HEAVY BLACK HEART", "unified": "2764-FE0F", "image": "2764-fe0f.png", "short_names": ["heart"],
     "category": "Smileys & Emotion", "subcategory": "heart"},
    {"name": "THUMBS UP SIGN", "unified": "1F44D", "image": "1f44d.png", "short_names": ["+1", "thumbsup"],
     "category": "People & Body", "subcategory": "hand-fingers-closed",
     "skin_variations": {"1F3FB": {"unified": "1F44D-1F3FB", "image": "1f44d-1f3fb.png"}}},
    {"name": "SHAKING FACE", "unified": "1FAE8", "image": "1fae8.png", "short_names": ["shaking_face"],
     "category": "Smileys & Emotion", "subcategory": "face-neutral-skeptical"},  # no emojibase entry
    {"name": "GRINNING FACE", "unified": "1F600", "image": "1f600.png", "short_names": ["grinning"],
     "category": "Smileys & Emotion", "subcategory": "face-smiling"},  # its PNG is missing
]
EMOJIBASE = {
    "en": [
        {"label": "loudly crying face", "hexcode": "1F62D", "tags": ["cry", "sad", "sob"]},
        {"label": "red heart", "hexcode": "2764", "tags": ["heart", "love"]},  # emojibase drops FE0F
        {"label": "thumbs up", "hexcode": "1F44D", "tags": ["good", "like"],
         "skins": [{"label": "thumbs up: light skin tone", "hexcode": "1F44D-1F3FB"}]},
    ],
    "zh": [
        {"label": "放声大哭", "hexcode": "1F62D", "tags": ["哭", "泪"]},
        {"label": "红心", "hexcode": "2764", "tags": ["爱"]},
        {"label": "拇指向上", "hexcode": "1F44D", "tags": ["赞"],
         "skins": [{"label": "拇指向上: 较浅肤色", "hexcode": "1F44D-1F3FB"}]},
    ],
}
SVG = '<svg viewBox="0 0 72 72" xmlns="http://www.w3.org/2000/svg"><rect x="0" y="0" width="72" height="72" fill="{color}"{extra}/></svg>'
OPENMOJI_RECORDS = [
    {"emoji": "😭", "hexcode": "1F62D", "group": "smileys-emotion", "subgroups": "face-concerned",
     "annotation": "loudly crying face", "tags": "cry, sad", "openmoji_tags": "tears, cry", "skintone": ""},
    {"emoji": "\ue000", "hexcode": "E000", "group": "extras-openmoji", "subgroups": "animal",
     "annotation": "goldfish", "tags": "", "openmoji_tags": "fish, water", "skintone": ""},
    {"emoji": "👍🏻", "hexcode": "1F44D-1F3FB", "group": "people-body", "subgroups": "hand-fingers-closed",
     "annotation": "thumbs up: light skin tone", "tags": "good", "openmoji_tags": "", "skintone": 1},
    {"emoji": "🏴", "hexcode": "1F3F4", "group": "flags", "subgroups": "flag",
     "annotation": "black flag", "tags": "flag", "openmoji_tags": "", "skintone": ""},  # dangling marker
    {"emoji": "😀", "hexcode": "1F600", "group": "smileys-emotion", "subgroups": "face-smiling",
     "annotation": "grinning face", "tags": "face", "openmoji_tags": "", "skintone": ""},  # broken SVG
]


def _png(color: tuple[int, int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", (64, 64), color).save(buffer, "PNG")
    return buffer.getvalue()


def datasource_files(image_dir: str) -> dict[str, bytes]:
    files = {"emoji.json": json.dumps(DATASOURCE_RECORDS).encode()}
    for index, image in enumerate(["1f62d.png", "2764-fe0f.png", "1f44d.png", "1f44d-1f3fb.png", "1fae8.png"]):
        files[f"{image_dir}/{image}"] = _png((40 * index, 100, 200, 255))
    return files


def emojibase_files() -> dict[str, bytes]:
    return {f"{lang}/data.json": json.dumps(records, ensure_ascii=False).encode() for lang, records in EMOJIBASE.items()}


def openmoji_files() -> dict[str, bytes]:
    files = {"data/openmoji.json": json.dumps(OPENMOJI_RECORDS).encode()}
    for hexcode, color, extra in [("1F62D", "#ff0000", ""), ("E000", "#00ff00", ""), ("1F44D-1F3FB", "#0000ff", ""),
                                  ("1F3F4", "#000000", '/><path d="m10 10v5" stroke="#000" marker-end="url(#Dot)"')]:
        files[f"color/svg/{hexcode}.svg"] = SVG.format(color=color, extra=extra).encode()
    files["color/svg/1F600.svg"] = b"<svg this is not xml"
    return files


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def write_tarball(path: Path, files: dict[str, bytes]) -> Path:
    """An npm-shaped tarball: every member under package/."""
    with tarfile.open(path, "w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


# ---------------------------------------------------------------- conversion

def test_datasource_pack_conversion(tmp_path: Path) -> None:
    package = write_tree(tmp_path / "google", datasource_files("img/google/64"))
    emojibase = load_emojibase(write_tree(tmp_path / "emojibase", emojibase_files()))
    report, entries = build_datasource_pack(package, "img/google/64", emojibase, tmp_path / "out")

    assert report.written == 4
    assert [stem for stem, _ in report.skipped] == ["1f600"]
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == [
        "1f44d.png", "1f62d.png", "1fae8.png", "2764-fe0f.png"]  # skin tones left out by default
    assert (tmp_path / "out" / "1f62d.png").read_bytes() == (package / "img/google/64/1f62d.png").read_bytes()
    assert entries["2764-fe0f"] == {
        "names": {"en": "red heart", "zh": "红心"}, "tags": {"en": ["heart", "love"], "zh": ["爱"]},
        "category": "smileys-emotion", "emoji": "\u2764\ufe0f", "subcategory": "heart"}
    assert entries["1f62d"]["tags"]["en"] == ["cry", "sad", "sob"]  # short name "sob" not repeated
    assert entries["1f44d"]["tags"]["en"] == ["good", "like", "+1", "thumbsup"]
    assert entries["1f44d"]["category"] == "people-body"
    # no emojibase entry: the emoji-datasource name, lower-cased; no Chinese
    assert entries["1fae8"]["names"] == {"en": "shaking face"} and entries["1fae8"]["tags"] == {}


def test_datasource_skin_tones_on_request(tmp_path: Path) -> None:
    package = write_tree(tmp_path / "google", datasource_files("img/google/64"))
    emojibase = load_emojibase(write_tree(tmp_path / "emojibase", emojibase_files()))
    report, entries = build_datasource_pack(package, "img/google/64", emojibase, tmp_path / "out", skin_tones=True)
    assert report.written == 5
    assert entries["1f44d-1f3fb"]["names"] == {"en": "thumbs up: light skin tone", "zh": "拇指向上: 较浅肤色"}
    assert entries["1f44d-1f3fb"]["tags"]["zh"] == ["赞"]  # a skin variant inherits its base's tags
    assert entries["1f44d-1f3fb"]["emoji"] == "👍🏻"


def test_openmoji_pack_renders_svgs(tmp_path: Path) -> None:
    package = write_tree(tmp_path / "openmoji", openmoji_files())
    emojibase = load_emojibase(write_tree(tmp_path / "emojibase", emojibase_files()))
    report, entries = build_openmoji_pack(package, emojibase, tmp_path / "out")

    assert report.written == 3 and [stem for stem, _ in report.skipped] == ["1f600"]
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["1f3f4.png", "1f62d.png", "e000.png"]
    with Image.open(tmp_path / "out" / "1f62d.png") as image:
        assert image.size == (72, 72) and image.convert("RGBA").getpixel((36, 36)) == (255, 0, 0, 255)
    with Image.open(tmp_path / "out" / "1f3f4.png") as image:  # rendered despite the dangling marker
        assert image.convert("RGBA").getpixel((36, 36)) == (0, 0, 0, 255)
    assert entries["1f62d"] == {
        "names": {"en": "loudly crying face", "zh": "放声大哭"},
        "tags": {"en": ["cry", "sad", "tears"], "zh": ["哭", "泪"]},
        "category": "smileys-emotion", "emoji": "😭", "subcategory": "face-concerned"}
    assert entries["e000"]["emoji"] is None  # private-use code point: not a real emoji
    assert entries["e000"]["names"] == {"en": "goldfish"}


# ---------------------------------------------------------------- tarballs and checksums

def _package(name: str, tarball: Path) -> LockedPackage:
    return LockedPackage(name, "0.0.1", integrity_of(tarball))


def _serving(source: Path, calls: list[str] | None = None) -> Fetch:
    """A fake `npm pack` that "downloads" the bytes of `source`."""
    def fetch(package: LockedPackage, dest: Path) -> Path:
        if calls is not None:
            calls.append(package.spec)
        shutil.copyfile(source, dest / package.tarball_name)
        return dest / package.tarball_name
    return fetch


def test_fetch_reuses_a_verified_cached_tarball(tmp_path: Path) -> None:
    source = write_tarball(tmp_path / "source.tgz", emojibase_files())
    package = _package("emojibase-data", source)
    calls: list[str] = []
    cache = tmp_path / "cache"
    first = fetch_tarball(package, cache, _serving(source, calls))
    second = fetch_tarball(package, cache, _serving(source, calls))
    assert first == second == cache / "emojibase-data-0.0.1.tgz" and calls == ["emojibase-data@0.0.1"]
    assert sorted(path.name for path in cache.iterdir()) == ["emojibase-data-0.0.1.tgz"]


def test_checksum_mismatch_is_a_clear_error(tmp_path: Path) -> None:
    good = write_tarball(tmp_path / "good.tgz", emojibase_files())
    tampered = write_tarball(tmp_path / "tampered.tgz", {**emojibase_files(), "extra.js": b"evil()"})
    package = _package("emojibase-data", good)
    cache = tmp_path / "cache"
    with pytest.raises(ChecksumError) as error:
        fetch_tarball(package, cache, _serving(tampered))
    message = str(error.value)
    assert "emojibase-data@0.0.1" in message and package.integrity in message
    assert integrity_of(tampered) in message
    assert not (cache / package.tarball_name).exists()  # unverified bytes never enter the cache
    # a tampered file already in the cache is replaced by a fresh, verified fetch
    shutil.copyfile(tampered, cache / package.tarball_name)
    calls: list[str] = []
    fetch_tarball(package, cache, _serving(good, calls))
    assert calls == ["emojibase-data@0.0.1"] and integrity_of(cache / package.tarball_name) == package.integrity


def test_extraction_cannot_escape_the_destination(tmp_path: Path) -> None:
    tarball = tmp_path / "evil.tgz"
    with tarfile.open(tarball, "w:gz") as archive:
        for name in ["package/ok.json", "package/../../escaped.txt"]:
            info = tarfile.TarInfo(name)
            info.size = 2
            archive.addfile(info, io.BytesIO(b"{}"))
        link = tarfile.TarInfo("package/link.json")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        archive.addfile(link)
    with pytest.raises(tarfile.FilterError):
        extract_tarball(tarball, tmp_path / "dest", ["ok.json", "../../escaped.txt"])
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "dest" / "escaped.txt").exists()
    package_dir = extract_tarball(tarball, tmp_path / "dest2", ["ok.json", "link.json"])
    assert sorted(path.name for path in package_dir.iterdir()) == ["ok.json"]  # links are never extracted


def test_extraction_refuses_escapes_without_tarfile_filters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Python before 3.11.4 (Debian bookworm's 3.11.2, the stand-in image) has no extraction filters."""
    tarball = tmp_path / "evil.tgz"
    with tarfile.open(tarball, "w:gz") as archive:
        for name in ["package/ok.json", "package/../../escaped.txt"]:
            info = tarfile.TarInfo(name)
            info.size = 2
            archive.addfile(info, io.BytesIO(b"{}"))
    monkeypatch.delattr(tarfile, "data_filter")
    with pytest.raises(CatalogBuildError, match="unsafe path"):
        extract_tarball(tarball, tmp_path / "dest", ["ok.json", "../../escaped.txt"])
    assert not (tmp_path / "escaped.txt").exists()
    assert (extract_tarball(tarball, tmp_path / "dest2", ["ok.json"]) / "ok.json").read_text() == "{}"


# ---------------------------------------------------------------- the command, end to end

@pytest.fixture()
def offline_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Synthetic tarballs in a fake registry and already in the cache, a lock pinning them, benchmark data
    asking for two ids; `npm pack` is replaced by a copy from the fake registry (calls recorded)."""
    registry, cache = tmp_path / "registry", tmp_path / "cache"
    registry.mkdir()
    (cache / "npm").mkdir(parents=True)
    contents = {
        PACK_SOURCES["noto"].package: datasource_files("img/google/64"),
        PACK_SOURCES["twemoji"].package: datasource_files("img/twitter/64"),
        PACK_SOURCES["openmoji"].package: openmoji_files(),
        "emojibase-data": emojibase_files(),
    }
    lock: dict[str, dict[str, Any]] = {"packages": {}}
    for name, files in contents.items():
        tarball = write_tarball(registry / f"{name}-0.0.1.tgz", files)
        shutil.copyfile(tarball, cache / "npm" / tarball.name)
        lock["packages"][name] = {"version": "0.0.1", "integrity": integrity_of(tarball)}
    (tmp_path / "lock.json").write_text(json.dumps(lock))
    srs = tmp_path / "data" / "srs"
    srs.mkdir(parents=True)
    (srs / "bench.jsonl").write_text(json.dumps({"candidates": ["noto/1f62d", "noto/2764-fe0f"],
                                                 "answer": "noto/1f62d"}) + "\n")
    calls: list[str] = []

    def fake_npm_pack(package: LockedPackage, dest: Path) -> Path:
        return _serving(registry / package.tarball_name, calls)(package, dest)

    monkeypatch.setenv("STICKERS_CACHE_DIR", str(cache))
    monkeypatch.setenv("STICKERS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr("training.catalog_build.npm_pack", fake_npm_pack)
    return {"lock": tmp_path / "lock.json", "out": tmp_path / "catalogs" / "default", "srs": srs,
            "calls": calls}


def test_command_builds_an_up_to_date_catalogue(offline_packages: dict[str, Any],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    out, lock = offline_packages["out"], str(offline_packages["lock"])
    (out.parent / ".default.building-abc").mkdir(parents=True)  # left by an interrupted build
    assert main(["catalog", "--out", str(out), "--lock", lock]) == 0
    printed = capsys.readouterr().out
    assert "noto          4 stickers, 1 skipped" in printed and "openmoji      3 stickers, 1 skipped" in printed
    assert "11 stickers in 3 packs" in printed and "2 benchmark ids present" in printed

    catalog = load_catalog(out)
    assert catalog.skipped == [] and len(catalog) == 11
    assert {name: pack.licence for name, pack in catalog.packs.items()} == {
        "noto": "Apache-2.0", "twemoji": "CC-BY-4.0", "openmoji": "CC-BY-SA-4.0"}
    assert all(pack.attribution for pack in catalog.packs.values())
    assert catalog.describe("noto/1f62d", "zh") == "放声大哭: 哭, 泪"
    assert catalog["twemoji/2764-fe0f"].emoji == "\u2764\ufe0f"
    assert sorted(p.name for p in out.parent.iterdir()) == [".default.lock", "default"]  # no temp dirs left

    stamp_before = (out / ".catalog-build.json").read_text()
    started = time.perf_counter()
    assert main(["catalog", "--out", str(out), "--lock", lock]) == 0
    assert time.perf_counter() - started < 2.0
    assert "up to date" in capsys.readouterr().out
    assert (out / ".catalog-build.json").read_text() == stamp_before

    assert main(["catalog", "--out", str(out), "--lock", lock, "--packs", "noto"]) == 0  # other options: rebuild
    assert set(load_catalog(out).packs) == {"noto"}
    assert main(["catalog", "--out", str(out), "--lock", lock, "--packs", "noto", "--force"]) == 0
    assert "up to date" not in capsys.readouterr().out
    assert offline_packages["calls"] == []  # every tarball came from the cache


def test_command_fails_cleanly_when_benchmark_ids_are_missing(offline_packages: dict[str, Any],
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    out = offline_packages["out"]
    (offline_packages["srs"] / "more.jsonl").write_text(json.dumps({"candidates": [], "answer": "noto/1f999"}))
    assert main(["catalog", "--out", str(out), "--lock", str(offline_packages["lock"])]) == 1
    assert "noto/1f999" in capsys.readouterr().err
    assert not out.exists() and list(out.parent.iterdir()) == [out.parent / ".default.lock"]


def test_command_refuses_a_checksum_mismatch(offline_packages: dict[str, Any],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    lock = json.loads(offline_packages["lock"].read_text())
    lock["packages"]["openmoji"]["integrity"] = "sha512-" + "A" * 86 + "=="
    offline_packages["lock"].write_text(json.dumps(lock))
    assert main(["catalog", "--out", str(offline_packages["out"]), "--lock", str(offline_packages["lock"])]) == 1
    error = capsys.readouterr().err
    assert "checksum mismatch for openmoji@0.0.1" in error and "refusing" in error
    assert offline_packages["calls"] == ["openmoji@0.0.1"]  # the stale cached copy was fetched again
    assert not offline_packages["out"].exists()


def test_command_will_not_replace_a_folder_it_did_not_build(offline_packages: dict[str, Any],
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    out, lock = offline_packages["out"], str(offline_packages["lock"])
    out.mkdir(parents=True)
    (out / "my_notes.txt").write_text("precious")
    assert main(["catalog", "--out", str(out), "--lock", lock]) == 1
    assert "--force" in capsys.readouterr().err and (out / "my_notes.txt").exists()
    assert main(["catalog", "--out", str(out), "--lock", lock, "--force"]) == 0
    assert not (out / "my_notes.txt").exists() and len(load_catalog(out)) == 11


@pytest.mark.slow
def test_real_default_catalogue(tmp_path: Path) -> None:
    """Builds the real catalogue from the pinned npm packages (network on first use, ~1 min)."""
    from eigml.paths import Paths
    from training.catalog_build import CatalogBuildConfig, benchmark_sticker_ids, build_catalog

    paths = Paths.from_env()
    required = benchmark_sticker_ids(paths.srs_dir) if paths.srs_dir.is_dir() else frozenset()
    reports = build_catalog(CatalogBuildConfig(out=tmp_path / "default", cache_dir=paths.cache_dir / "npm",
                                               required_ids=required))
    assert reports is not None
    assert {pack: report.written for pack, report in reports.items()} == {
        "noto": 1911, "twemoji": 1911, "openmoji": 2465}
    catalog = load_catalog(tmp_path / "default")
    assert catalog.skipped == [] and all(sticker_id in catalog for sticker_id in required)
    assert catalog.describe("noto/1f62d", "zh") == "放声大哭: 哭, 大哭, 放声大哭的脸, 泪, 痛哭, 脸"
