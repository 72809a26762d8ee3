"""Image files: never outside the catalogue root; ETag matching."""

from __future__ import annotations

from pathlib import Path

from eigml.catalog import IMAGE_FORMATS
from service.images import content_type, etag, matches, resolve_image


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


def test_every_catalogue_format_is_served_with_its_type(tmp_path: Path) -> None:
    """Animated stickers are served as their original files: GIF, APNG (.png or .apng) and WebP."""
    from PIL import Image

    root = tmp_path / "catalog"
    (root / "anim").mkdir(parents=True)
    frames = [Image.new("RGB", (16, 16), colour) for colour in ("red", "blue")]
    expected = {".gif": "image/gif", ".png": "image/png", ".apng": "image/apng", ".webp": "image/webp"}
    for suffix, kind in expected.items():
        path = root / "anim" / f"a{suffix}"
        frames[0].save(path, format="PNG" if "png" in suffix else None, save_all=True, append_images=frames[1:])
        served = resolve_image(root, Path(f"anim/a{suffix}"))
        assert served is not None and content_type(served) == kind
        with Image.open(served) as image:
            assert image.n_frames == 2
    assert {suffix: content_type(Path(f"x{suffix}")).split("/")[0] for suffix in IMAGE_FORMATS} == dict.fromkeys(
        IMAGE_FORMATS, "image")
