"""Stickers the model has never seen: OCR text stored per row and reused incrementally, animated stickers
embedded as their pooled frames, and index format 1 still readable."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from eigml.catalog import load_catalog
from eigml.model.eigml import EIGML
from eigml.ocr import cache_key
from index.build import build_index, update_index
from index.store import CURRENT_FILE, MANIFEST_FILE, VERSIONS_DIR, IndexStoreError, read_version


class FakeReader:
    """Stands in for the OCR engine (tests without rapidocr): the 'text' is the image's mean red value."""

    calls = 0

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def __call__(self, image: Image.Image) -> str:
        FakeReader.calls += 1
        return f"red {int(np.asarray(image.convert('RGB'))[..., 0].mean())}"


@pytest.fixture
def fake_ocr(monkeypatch: pytest.MonkeyPatch) -> type[FakeReader]:
    FakeReader.calls = 0
    monkeypatch.setattr("eigml.ocr.TextReader", FakeReader)
    return FakeReader


def _catalog_copy(tiny_catalog: Path, tmp_path: Path, packs: tuple[str, ...]) -> Path:
    root = tmp_path / "catalog"
    for pack in packs:
        shutil.copytree(tiny_catalog / pack, root / pack)
    return root


def _animated_pack(root: Path) -> None:
    folder = root / "anim"
    folder.mkdir()
    frames = []
    for i in range(6):
        frame = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
        ImageDraw.Draw(frame).ellipse([4 + i, 4, 60 - i, 60], fill=(255, 40 * i, 60, 255))
        frames.append(frame)
    frames[0].save(folder / "wobble.gif", save_all=True, append_images=frames[1:], duration=60, loop=0, disposal=2)
    frames[0].save(folder / "wobble2.webp", save_all=True, append_images=frames[1:], duration=60, lossless=True)


def test_ocr_text_is_stored_and_reused_for_unchanged_images(tmp_path: Path, tiny_catalog: Path, cache_dir: Path,
                                                            tiny_model: EIGML, fake_ocr: type[FakeReader]) -> None:
    root_dir = _catalog_copy(tiny_catalog, tmp_path, ("noto", "twemoji"))
    catalog = load_catalog(root_dir)
    root = tmp_path / "index"
    build_index(tiny_model, catalog, root, packs=["noto"], feature_cache=cache_dir / "features", progress=False,
                ocr=True, text_cache=None)
    first = read_version(root)
    assert first.manifest.ocr == cache_key() and first.manifest.ocr_read == 12 == fake_ocr.calls
    assert all(s.text is not None and s.text.startswith("red ") for s in first.stickers)
    # adding a pack reads only its images; noto's text comes from the parent version (no disk cache here)
    update_index(tiny_model, catalog, root, add_packs=["twemoji"], feature_cache=cache_dir / "features",
                 progress=False, text_cache=None)
    second = read_version(root)
    assert second.manifest.ocr_read == 12 and fake_ocr.calls == 24
    assert {s.id: s.text for s in second.stickers if s.pack == "noto"} == {s.id: s.text for s in first.stickers}
    # without a parent, the disk cache serves unchanged images
    cached = tmp_path / "ocr"
    build_index(tiny_model, catalog, tmp_path / "index2", feature_cache=cache_dir / "features", progress=False,
                ocr=True, text_cache=cached)
    build_index(tiny_model, catalog, tmp_path / "index3", feature_cache=cache_dir / "features", progress=False,
                ocr=True, text_cache=cached)
    assert read_version(tmp_path / "index3").manifest.ocr_read == 0 and fake_ocr.calls == 48
    assert read_version(tmp_path / "index3").stickers == second.stickers



def test_a_worded_sticker_takes_its_emotion_from_its_words_too(tmp_path: Path, tiny_catalog: Path, cache_dir: Path,
                                                               tiny_model: EIGML, fake_ocr: type[FakeReader]) -> None:
    from eigml.dialogue import Dialogue, Turn
    from index.embed import TEXT_EMOTION_WEIGHT, has_words

    catalog = load_catalog(_catalog_copy(tiny_catalog, tmp_path, ("noto",)))
    build_index(tiny_model, catalog, tmp_path / "plain", feature_cache=cache_dir / "features", progress=False)
    build_index(tiny_model, catalog, tmp_path / "worded", feature_cache=cache_dir / "features", progress=False,
                ocr=True, text_cache=None)
    plain, worded = read_version(tmp_path / "plain"), read_version(tmp_path / "worded")
    texts = [s.text or "" for s in worded.stickers]
    assert all(has_words(t) for t in texts)
    with torch.inference_mode():
        read = tiny_model.eval().encode_dialogues([Dialogue((Turn("A", t),)) for t in texts])
    w = TEXT_EMOTION_WEIGHT
    np.testing.assert_allclose(worded.arrays.emotion_probs,
                               (1 - w) * plain.arrays.emotion_probs + w * read.emotion_probs.numpy(), atol=1e-5)
    np.testing.assert_allclose(worded.arrays.emotion,
                               (1 - w) * plain.arrays.emotion + w * read.features["emotion"].numpy(), atol=1e-5)
    np.testing.assert_array_equal(worded.arrays.visual, plain.arrays.visual)  # retrieval still by the picture
    assert not np.allclose(worded.arrays.emotion_probs, plain.arrays.emotion_probs, atol=1e-4)


class ActReader(FakeReader):
    """Words by a hash of the image: some do an act (thanks, farewell), some only say a feeling."""

    WORDS = ("谢谢你", "BYE BYE", "so angry")

    def __call__(self, image: Image.Image) -> str:
        import hashlib

        return self.WORDS[hashlib.sha256(image.convert("RGB").tobytes()).digest()[0] % len(self.WORDS)]


def test_a_worded_sticker_does_the_act_its_words_do(tmp_path: Path, tiny_catalog: Path, cache_dir: Path,
                                                     tiny_model: EIGML, monkeypatch: pytest.MonkeyPatch) -> None:
    import copy

    from eigml.labels import INTENTIONS
    from index.embed import TEXT_EMOTION_WEIGHT, WORD_ACT_PROB, act_embedding

    monkeypatch.setattr("eigml.ocr.TextReader", ActReader)
    # the tiny checkpoint knows only inform/question: give a copy the product's intention vocabulary
    model = copy.deepcopy(tiny_model).eval()
    torch.manual_seed(0)
    model.intention_labels = tuple(INTENTIONS)
    model.intention_head = torch.nn.Linear(model.config.dim, len(INTENTIONS))
    labels = list(model.intention_labels)
    with torch.inference_mode():
        for act in ("thanks", "farewell"):  # the embedding stands for the act at the asked probability
            probs = model.sticker_intention_logits(act_embedding(model, act)).softmax(-1)
            assert probs.argmax().item() == labels.index(act)
            assert probs[labels.index(act)].item() == pytest.approx(WORD_ACT_PROB, abs=1e-4)
    catalog = load_catalog(_catalog_copy(tiny_catalog, tmp_path, ("noto",)))
    build_index(model, catalog, tmp_path / "plain", feature_cache=cache_dir / "features", progress=False)
    build_index(model, catalog, tmp_path / "worded", feature_cache=cache_dir / "features", progress=False,
                ocr=True, text_cache=None)
    plain, worded = read_version(tmp_path / "plain"), read_version(tmp_path / "worded")
    w, acts = TEXT_EMOTION_WEIGHT, {"谢谢你": "thanks", "BYE BYE": "farewell"}
    with torch.inference_mode():
        before = model.sticker_intention_logits(torch.from_numpy(plain.arrays.intention)).softmax(-1)
        after = model.sticker_intention_logits(torch.from_numpy(worded.arrays.intention)).softmax(-1)
    seen = set()
    for row, sticker in enumerate(worded.stickers):
        seen.add(sticker.text)
        if sticker.text in acts:
            act = labels.index(acts[sticker.text])
            assert after[row].argmax().item() == act and after[row, act] > before[row, act]
            np.testing.assert_allclose(worded.arrays.intention[row], (1 - w) * plain.arrays.intention[row]
                                       + w * act_embedding(model, acts[sticker.text]).numpy(), atol=1e-5)
        else:  # words that only say a feeling leave the picture's intention alone
            np.testing.assert_array_equal(worded.arrays.intention[row], plain.arrays.intention[row])
    assert seen >= {"谢谢你", "BYE BYE"}, seen


def test_ocr_noise_is_not_words() -> None:
    from index.embed import has_words

    assert has_words("BYE BYE") and has_words("气死") and has_words("ok")
    assert not has_words("") and not has_words("!!") and not has_words("a.") and not has_words(" ~ ")

def test_without_ocr_rows_have_no_text(built_root: Path) -> None:
    stored = read_version(built_root)
    assert stored.manifest.ocr is None and all(s.text is None for s in stored.stickers)


def test_animated_stickers_are_indexed_as_their_pooled_frames(tmp_path: Path, tiny_catalog: Path,
                                                              cache_dir: Path, tiny_model: EIGML) -> None:
    root_dir = _catalog_copy(tiny_catalog, tmp_path, ("noto",))
    _animated_pack(root_dir)
    catalog = load_catalog(root_dir)
    assert catalog.ids(["anim"]) == ["anim/wobble", "anim/wobble2"]
    build_index(tiny_model, catalog, tmp_path / "index", feature_cache=cache_dir / "features", progress=False)
    stored = read_version(tmp_path / "index")
    rows = {s.id: r for r, s in enumerate(stored.stickers)}
    for sticker_id in catalog.ids(["anim"]):
        frames = catalog.open_sticker(sticker_id)
        assert not isinstance(frames, Image.Image) and len(frames) == 4
        # the obvious path: each frame through the backbone alone, tokens averaged, then the heads
        tokens = torch.stack([tiny_model.image_features([f])[0] for f in frames.images]).mean(dim=0)
        with torch.inference_mode():
            expected = tiny_model.encode_stickers(tokens.half().float()[None]).visual[0].numpy()
        np.testing.assert_allclose(stored.arrays.visual[rows[sticker_id]], expected, atol=2e-2)
        first_frame_only = tiny_model.encode_stickers(tiny_model.image_features([frames.images[0]])).visual[0]
        assert not np.allclose(stored.arrays.visual[rows[sticker_id]], first_frame_only.detach().numpy(), atol=1e-3)


def _manifest_path(root: Path) -> Path:
    return root / VERSIONS_DIR / (root / CURRENT_FILE).read_text().strip() / MANIFEST_FILE


def test_format_1_indexes_still_load_and_unknown_formats_are_refused(tmp_path: Path, built_root: Path) -> None:
    root = tmp_path / "old"
    shutil.copytree(built_root, root)
    path = _manifest_path(root)
    manifest = json.loads(path.read_text())
    for field in ("ocr", "ocr_read"):
        manifest.pop(field)
    path.write_text(json.dumps({**manifest, "format_version": 1}))
    stored = read_version(root)
    assert stored.manifest.format_version == 1 and stored.manifest.ocr is None
    path.write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(IndexStoreError, match="is format 99; this code reads formats 1, 2"):
        read_version(root)
