"""The inference contract between the model and its users (`rank`, `index`, `service`).

A sticker is encoded in two steps so that the expensive, frozen part can be cached on disk:
  image_features(images) -> (N, P, Dp) backbone patch features, cached by image checksum;
  encode_stickers(features) -> StickerEncoding, cheap, stored in the index.
A dialogue is encoded once per request (`encode_dialogues`), retrieval is inner product between
`QueryEncoding.query` and `StickerEncoding.visual`, and `EIGML.score` is the full rerank (IEGA, SAMM),
called through `eigml.rerank.rerank`.
"""

from __future__ import annotations

from typing import NamedTuple

import torch


class QueryEncoding(NamedTuple):
    query: torch.Tensor  # (B, D) unit-length retrieval vectors; inner product with StickerEncoding.visual
    emotion_probs: torch.Tensor  # (B, E) dialogue emotion distribution over eigml.labels.EMOTIONS
    intention_probs: torch.Tensor  # (B, A) distribution over the model's intention (dialogue act) labels
    features: dict[str, torch.Tensor]  # everything else the rerank needs, batch-first


class StickerEncoding(NamedTuple):
    visual: torch.Tensor  # (N, D) unit-length retrieval vectors
    emotion: torch.Tensor  # (N, D) sticker emotion embedding (SAMM cosine; emotion index)
    intention: torch.Tensor  # (N, D) sticker intention embedding (SAMM cosine; intention index)
    emotion_probs: torch.Tensor  # (N, E) sticker emotion distribution over EMOTIONS
    patches: torch.Tensor  # (N, P, D) compact patch features for IEGA (may be stored as fp16)

