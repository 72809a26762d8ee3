"""Image files: never outside the catalogue root; ETag matching."""

from __future__ import annotations

from pathlib import Path

from service.images import etag, matches, resolve_image


def test_only_image_files_inside_the_root_are_served(tmp_path: Path) -> None:
    root = tmp_path / "catalog"
    (root / "noto").mkdir(parents=True)
    (root / "noto" / "a.png").write_bytes(b"png")
    (root / "noto" / "pack.json").write_text("{}")
    outside = tmp_path / "secret.png"
    outside.write_bytes(b"secret")
    (root / "noto" / "link.png").symlink_to(outside)
    assert resolve_image(root, Path("noto/a.png")) == (root / "noto" / "a.png").resolve()
    assert resolve_image(root, root / "noto" / "a.png") == (root / "noto" / "a.png").resolve()
    for bad in (Path("../secret.png"), outside, Path("noto/../../secret.png"), Path("noto/link.png"),
                Path("noto/pack.json"), Path("noto/missing.png"), Path("/etc/passwd")):
        assert resolve_image(root, bad) is None, bad


def test_paths_of_the_build_catalogue_are_rebased(tmp_path: Path) -> None:
    root = tmp_path / "mounted"
    (root / "noto").mkdir(parents=True)
    (root / "noto" / "a.png").write_bytes(b"png")
    built = Path("/build/catalog")
    assert resolve_image(root, built / "noto" / "a.png", built) == (root / "noto" / "a.png").resolve()
    assert resolve_image(root, Path("/elsewhere/noto/a.png"), built) is None


def test_etags_follow_content(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(b"one")
    first = etag(path)
    assert matches(first, first) and matches(f'W/{first}, "other"', first) and matches("*", first)
    assert not matches(None, first) and not matches('"other"', first)
    path.write_bytes(b"two!")
    assert etag(path) != first
