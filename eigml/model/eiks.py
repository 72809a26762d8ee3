"""Emotion-guided intention knowledge selection (EIKS).

An emotion classifier reads each of the R intention-knowledge vectors; the `top_m` vectors whose emotion
cross-entropy against the dialogue's emotion is highest are the least emotion-relevant. Each of them takes
one learned gradient step towards the dialogue's emotion, k_adj = k + step * δ, where δ is predicted by a
small regression net trained to imitate -∂CE/∂k (the true gradient is computed only in training, so
inference needs no autograd), and a gate mixes the adjusted and original vector. Other vectors pass through.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from eigml.labels import EMOTIONS


class EIKSConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True  # read by the model builder: disabled, no EIKS module is built
    top_m: int = Field(default=2, ge=0)  # vectors adjusted per dialogue (at most R)
    step_size: float = 1.0
    hidden: int = Field(default=256, ge=1)  # regression net hidden size
    num_emotions: int = len(EMOTIONS)


def soft_cross_entropy(logits: Tensor, target: Tensor) -> Tensor:
    """-sum_e target_e log softmax(logits)_e over the last dim; target is a distribution."""
    return -(target * F.log_softmax(logits, dim=-1)).sum(dim=-1)


def select_top_m(losses: Tensor, top_m: int) -> Tensor:
    """(B, R) bool mask of the `top_m` highest losses per row."""
    mask = torch.zeros_like(losses, dtype=torch.bool)
    if top_m > 0:
        mask.scatter_(1, losses.topk(min(top_m, losses.shape[1]), dim=1).indices, True)
    return mask


class EIKS(nn.Module):
    """(B, R, D) knowledge, (B, E) emotion target, (B, D) emotion embedding -> (B, R, D) knowledge, aux losses."""

    def __init__(self, config: EIKSConfig, dim: int) -> None:
        super().__init__()
        self.config = config
        self.emotion_classifier = nn.Linear(dim, config.num_emotions)
        self.regression_net = nn.Sequential(
            nn.Linear(2 * dim, config.hidden), nn.GELU(), nn.Linear(config.hidden, dim)
        )
        self.gate = nn.Linear(2 * dim, dim)

    def predict_step(self, knowledge: Tensor, emotion_embedding: Tensor) -> Tensor:
        """δ (B, R, D): the regression net's estimate of -∂CE/∂k for every knowledge vector."""
        context = emotion_embedding[:, None, :].expand_as(knowledge)
        return self.regression_net(torch.cat([knowledge, context], dim=-1))

    def true_step(self, knowledge: Tensor, emotion_target: Tensor) -> Tensor:
        """-∂CE/∂k (B, R, D) under the current classifier, detached; needs autograd."""
        with torch.enable_grad():
            k = knowledge.detach().requires_grad_(True)
            ce = soft_cross_entropy(self.emotion_classifier(k), emotion_target.detach())
            # ce[b, r] depends on k[b, r] only, so the gradient of the sum is each vector's own gradient
            (grad,) = torch.autograd.grad(ce.sum(), k)
        return -grad.detach()

    def forward(self, knowledge: Tensor, emotion_target: Tensor,
                emotion_embedding: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Adjusted knowledge (B, R, D) and {"eiks_emotion", "eiks_regression" (training only)}."""
        target = emotion_target.detach()
        ce = soft_cross_entropy(self.emotion_classifier(knowledge), target[:, None, :])  # (B, R)
        aux = {"eiks_emotion": ce.mean()}
        selected = select_top_m(ce.detach(), self.config.top_m)  # (B, R)

        delta = self.predict_step(knowledge, emotion_embedding)
        adjusted = knowledge + self.config.step_size * delta
        g = torch.sigmoid(self.gate(torch.cat([knowledge, adjusted], dim=-1)))
        fused = g * adjusted + (1 - g) * knowledge
        out = torch.where(selected[..., None], fused, knowledge)

        if self.training and torch.is_grad_enabled():
            target_step = self.true_step(knowledge, target[:, None, :].expand(-1, knowledge.shape[1], -1))
            # the regression net alone learns from this loss: its inputs are detached
            predicted = self.predict_step(knowledge.detach(), emotion_embedding.detach())
            aux["eiks_regression"] = F.mse_loss(predicted, target_step)
        return out, aux
