"""Similarity-adjusted matching mechanism (SAMM): the final score of each candidate sticker, in [0, 1].

s_EI = α·cos(emotion_text, emotion_sticker) + (1 − α)·cos(intention_text, intention_sticker), mapped to
[0, 1] as (1 + s_EI) / 2, and final = β·σ(p_vl) + (1 − β)·s_EI. α and β are learned as sigmoids of logits
so they stay in (0, 1). The score is a probability, so BCE applies to it directly.

`similarity: distribution` compares the predicted label distributions instead of the embeddings:
s_EI = α·Σ_e p_text(e)·p_sticker(e) + (1 − α)·Σ_a p_text(a)·p_sticker(a), the probability that dialogue
and sticker agree on emotion (intention) when each is drawn from its distribution. It is the ranking a
linear probe makes (the candidate whose class is likeliest first), kept inside SAMM's learned mixture.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

SimilarityKind = Literal["cosine", "distribution"]


class SAMMConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    similarity: SimilarityKind = "cosine"  # cosine of embeddings (the paper) or agreement of distributions

    enabled: bool = True  # disabled: final = σ(p_vl), and the module owns no parameters
    alpha: float = Field(default=0.5, gt=0.0, lt=1.0)  # initial weight of emotion vs intention similarity
    beta: float = Field(default=0.5, gt=0.0, lt=1.0)  # initial weight of p_vl vs s_EI
    # False: beta stays at its configured value (a buffer, not trained). The matching head is trained on
    # candidate lists of one pack's labelled stickers; over a whole index of other packs and objects it
    # rates hands, people and animals high and faces near 0, and a learned beta lets it rank the slate.
    learn_beta: bool = True
    eps: float = Field(default=1e-6, gt=0.0, lt=0.5)  # scores are clamped to [eps, 1 - eps] so log(score) is finite


def emotion_intention_similarity(emotion_text: Tensor, intention_text: Tensor, emotion_sticker: Tensor,
                                 intention_sticker: Tensor, alpha: Tensor | float) -> Tensor:
    """s_EI in [0, 1], (B, K), from (B, D) dialogue vectors and (B, K, D) sticker vectors."""
    emotion_cos = F.cosine_similarity(emotion_text[:, None, :], emotion_sticker, dim=-1)
    intention_cos = F.cosine_similarity(intention_text[:, None, :], intention_sticker, dim=-1)
    return (1 + alpha * emotion_cos + (1 - alpha) * intention_cos) / 2


def distribution_agreement(emotion_text: Tensor, intention_text: Tensor, emotion_sticker: Tensor,
                           intention_sticker: Tensor, alpha: Tensor | float) -> Tensor:
    """s_EI in [0, 1], (B, K), from (B, E)/(B, A) dialogue distributions and (B, K, E)/(B, K, A) sticker ones.

    Without intention labels (A = 0) only the emotion term counts."""
    emotion = (emotion_text[:, None, :] * emotion_sticker).sum(-1)
    if intention_text.shape[-1] == 0:
        return emotion
    intention = (intention_text[:, None, :] * intention_sticker).sum(-1)
    return alpha * emotion + (1 - alpha) * intention


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


class SAMM(nn.Module):
    def __init__(self, config: SAMMConfig | None = None) -> None:
        super().__init__()
        self.config = config or SAMMConfig()
        if self.config.enabled:
            self.alpha_logit = nn.Parameter(torch.tensor(_logit(self.config.alpha)))
            beta_logit = torch.tensor(_logit(self.config.beta))
            if self.config.learn_beta:
                self.beta_logit = nn.Parameter(beta_logit)
            else:
                self.register_buffer("beta_logit", beta_logit)

    @property
    def alpha(self) -> Tensor:
        return torch.sigmoid(self.alpha_logit)

    @property
    def beta(self) -> Tensor:
        return torch.sigmoid(self.beta_logit)

    def forward(self, p_vl: Tensor, emotion_text: Tensor | None = None, intention_text: Tensor | None = None,
                emotion_sticker: Tensor | None = None, intention_sticker: Tensor | None = None) -> Tensor:
        """Final scores (B, K) in [eps, 1 - eps] from logits p_vl (B, K); dialogue (B, D), stickers (B, K, D)."""
        c = self.config
        matching = torch.sigmoid(p_vl)
        if c.enabled:
            if emotion_text is None or intention_text is None or emotion_sticker is None or intention_sticker is None:
                raise ValueError("SAMM needs the emotion and intention vectors of the dialogue and the stickers")
            similarity = (distribution_agreement if c.similarity == "distribution"
                          else emotion_intention_similarity)
            s_ei = similarity(emotion_text, intention_text, emotion_sticker, intention_sticker, self.alpha)
            matching = self.beta * matching + (1 - self.beta) * s_ei
        return matching.clamp(c.eps, 1 - c.eps)
