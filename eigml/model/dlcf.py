"""Dual-level contrastive framework (DLCF): inter-modality InfoNCE and intra-modality view consistency.

Inter-modality: the dialogue query, emotion and intention embeddings are pulled towards the answer sticker's
visual, emotion and intention embeddings, with the other stickers in the batch as negatives.
Intra-modality: two dropout views of the same input must agree, both on their emotion/intention
distributions (symmetric KL, as in R-Drop) and as instances (InfoNCE between the views).
"""

from __future__ import annotations

import math
from typing import NamedTuple, TypeVar

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, model_validator
from torch import Tensor, nn


def info_nce(queries: Tensor, keys: Tensor, temperature: float | Tensor,
             positives: Tensor | None = None) -> Tensor:
    """Mean InfoNCE of queries (N, D) against keys (M, D); both are L2-normalised here.

    Without `positives`, key i is the positive of query i (needs M >= N) and every other key is a negative.
    With `positives` (N, M) bool, every True key is a positive and is never a negative: row i's loss is the
    mean over its positives p of -log(e^{s_ip} / (e^{s_ip} + sum_{j not positive} e^{s_ij})): for a query
    whose answer sticker is duplicated in the batch, the loss equals that of a batch with one copy.
    Every row needs a positive.
    """
    logits = F.normalize(queries, dim=-1) @ F.normalize(keys, dim=-1).T / temperature
    if positives is None:
        if keys.shape[0] < queries.shape[0]:
            raise ValueError(f"need at least as many keys as queries, got {keys.shape[0]} < {queries.shape[0]}")
        labels = torch.arange(queries.shape[0], device=queries.device)
        return F.cross_entropy(logits, labels)
    if positives.shape != logits.shape:
        raise ValueError(f"positives must be {tuple(logits.shape)}, got {tuple(positives.shape)}")
    positives = positives.to(torch.bool)
    counts = positives.sum(dim=1)
    if bool((counts == 0).any()):
        raise ValueError("every query needs at least one positive key")
    # log-sum-exp over the negatives only; -inf when a row has none (its loss is then 0)
    negative_lse = torch.logsumexp(logits.masked_fill(positives, float("-inf")), dim=1, keepdim=True)
    # -log(e^s / (e^s + e^neg)) = softplus(neg - s)
    per_pair = F.softplus(negative_lse - logits)
    per_query = (per_pair * positives).sum(dim=1) / counts
    return per_query.mean()


def same_id_positives(ids: Tensor) -> Tensor:
    """(N, N) bool: True where two rows carry the same id (e.g. the same answer sticker)."""
    return ids[:, None] == ids[None, :]


def symmetric_kl(p: Tensor, q: Tensor, eps: float = 1e-6) -> Tensor:
    """Mean over rows of ½(KL(p‖q) + KL(q‖p)) for distributions p, q (N, C).

    Both are smoothed by `eps` and renormalised first, so zero-probability entries stay finite.
    """
    if p.shape != q.shape:
        raise ValueError(f"p and q must have one shape, got {tuple(p.shape)} and {tuple(q.shape)}")
    p = (p + eps) / (p + eps).sum(dim=-1, keepdim=True)
    q = (q + eps) / (q + eps).sum(dim=-1, keepdim=True)
    log_p, log_q = p.log(), q.log()
    kl_pq = (p * (log_p - log_q)).sum(dim=-1)
    kl_qp = (q * (log_q - log_p)).sum(dim=-1)
    return 0.5 * (kl_pq + kl_qp).mean()


class DLCFConfig(BaseModel):
    """Which DLCF terms are on, their weights and the contrastive temperature."""

    model_config = ConfigDict(extra="forbid")

    inter_query: bool = True  # inter_d2s, inter_s2d: dialogue query vs answer-sticker visual
    inter_emotion: bool = True  # dialogue vs sticker emotion embedding
    inter_intention: bool = True  # dialogue vs sticker intention embedding
    intra_text: bool = True  # intra_text_kl, intra_text_nce over two dropout views of the dialogue
    intra_image: bool = True  # intra_image_kl, intra_image_nce over two dropout views of the sticker
    inter_weight: float = 0.5
    intra_weight: float = 0.5
    temperature: float = 0.07  # initial value when learned
    learn_temperature: bool = True
    min_temperature: float = 0.01
    max_temperature: float = 1.0

    @model_validator(mode="after")
    def _check_temperature(self) -> DLCFConfig:
        if not 0 < self.min_temperature <= self.temperature <= self.max_temperature:
            raise ValueError("need 0 < min_temperature <= temperature <= max_temperature")
        return self

    @property
    def uses_temperature(self) -> bool:
        return self.inter_query or self.inter_emotion or self.inter_intention or self.intra_text or self.intra_image


class Views(NamedTuple):
    """Two dropout views of one batch: vectors (N, D), emotion (N, E) and intention (N, A) distributions.

    Intention distributions are optional: when absent, the view KL covers emotion only.
    """

    vector_a: Tensor
    vector_b: Tensor
    emotion_a: Tensor
    emotion_b: Tensor
    intention_a: Tensor | None = None
    intention_b: Tensor | None = None


_T = TypeVar("_T", Tensor, Views)


def _require(name: str, value: _T | None) -> _T:
    if value is None:
        raise ValueError(f"DLCFLoss: input `{name}` is required by an enabled term")
    return value


class DLCFLoss(nn.Module):
    """Named, already weighted DLCF terms; the training loop sums them. Disabled terms are absent."""

    def __init__(self, config: DLCFConfig | None = None) -> None:
        super().__init__()
        self.config = config or DLCFConfig()
        c = self.config
        if c.uses_temperature:
            init = torch.tensor(math.log(c.temperature))
            # temperature is learned in log space so it stays positive; clamped in `temperature`
            if c.learn_temperature:
                self.log_temperature = nn.Parameter(init)
            else:
                self.register_buffer("log_temperature", init)

    def temperature(self) -> Tensor:
        c = self.config
        return self.log_temperature.exp().clamp(c.min_temperature, c.max_temperature)

    def forward(
        self,
        *,
        query: Tensor | None = None,  # (B, D) dialogue query
        sticker: Tensor | None = None,  # (B, D) answer-sticker visual vector
        query_emotion: Tensor | None = None,  # (B, D)
        sticker_emotion: Tensor | None = None,  # (B, D)
        query_intention: Tensor | None = None,  # (B, D)
        sticker_intention: Tensor | None = None,  # (B, D)
        text_views: Views | None = None,
        image_views: Views | None = None,  # views of the answer stickers, in `sticker_ids` order
        sticker_ids: Tensor | None = None,  # (B,) answer ids: equal ids are positives, not negatives
    ) -> dict[str, Tensor]:
        c = self.config
        terms: dict[str, Tensor] = {}
        if not c.uses_temperature:
            return terms
        tau = self.temperature()
        positives = same_id_positives(sticker_ids) if sticker_ids is not None else None
        positives_t = positives.T if positives is not None else None
        if c.inter_query:
            q, s = _require("query", query), _require("sticker", sticker)
            terms["inter_d2s"] = c.inter_weight * info_nce(q, s, tau, positives)
            terms["inter_s2d"] = c.inter_weight * info_nce(s, q, tau, positives_t)
        if c.inter_emotion:
            q, s = _require("query_emotion", query_emotion), _require("sticker_emotion", sticker_emotion)
            terms["inter_emotion"] = c.inter_weight * info_nce(q, s, tau, positives)
        if c.inter_intention:
            q, s = _require("query_intention", query_intention), _require("sticker_intention", sticker_intention)
            terms["inter_intention"] = c.inter_weight * info_nce(q, s, tau, positives)
        for name, enabled, views in (("text", c.intra_text, text_views), ("image", c.intra_image, image_views)):
            if not enabled:
                continue
            v = _require(f"{name}_views", views)
            kl = symmetric_kl(v.emotion_a, v.emotion_b)
            if v.intention_a is not None and v.intention_b is not None:
                kl = kl + symmetric_kl(v.intention_a, v.intention_b)
            terms[f"intra_{name}_kl"] = c.intra_weight * kl
            # the two views of one instance are positives; image views of duplicate stickers are too
            view_positives = positives if name == "image" else None
            terms[f"intra_{name}_nce"] = c.intra_weight * info_nce(v.vector_a, v.vector_b, tau, view_positives)
        return terms
