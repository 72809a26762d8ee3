"""Matching heads that give the vision-language logit p_vl (B, K) of each candidate sticker.

`IEGAHead` (intention- and emotion-guided attention): the dialogue's intention and emotion vectors
(B, 2, D) attend over each candidate sticker's patch features, and an MLP fuses the query vectors, the
attended vectors, the sticker's visual vector and the dialogue's pooled vector into one logit.
`CosineHead` is the ablation without IEGA: a scaled cosine between dialogue and sticker vectors.

Patches come either per candidate, (B, K, T, D) with a (B, K, T) padding mask, or as one bank shared by
the batch, (N, T, D) with a (N, T) mask and `candidates` (B, K) indexing it. With a bank, the key/value
projections run once per distinct candidate sticker instead of once per (dialogue, candidate) pair.
Masks follow nn.MultiheadAttention: True marks padding. Every candidate needs one unpadded patch.

At inference (eval mode, a shared bank) the same numbers come from a cheaper order of operations, because the
rerank scores every retrieved candidate once per request:
- attention in patch space: a head's score q·(W_k p + b_k) is (W_kᵀ q)·p plus a constant that softmax
  ignores, and its output Σ_t w_t (W_v p_t + b_v) is W_v (Σ_t w_t p_t) + b_v. So the query is moved into
  patch space once per dialogue and the key/value projections of T patches per candidate (2·T·D² multiply-adds)
  become one projection of the pooled patches per query (Q·D²);
- the fusion's LayerNorm + first Linear split by input: W·LN(x) = (A x − μ A·1)/σ + W β + b with A = W·diag(γ),
  and A x is a per-dialogue part (the query and dialogue vectors) plus a per-candidate part; μ and σ come from
  the parts' sums and sums of squares.
`tests/core/test_iega.py` holds both to the training-mode computation.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

MatchingKind = Literal["iega", "cosine"]


class MatchingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: MatchingKind = "iega"
    heads: int = Field(default=4, ge=1)
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0)
    hidden: int = Field(default=512, ge=1)
    # also feed element-wise products (dialogue·visual, query·attended): an MLP over a plain
    # concatenation finds similarity only slowly
    interactions: bool = True
    cosine_scale: float = Field(default=10.0, gt=0.0)  # initial logit scale of the cosine head


class IEGAHead(nn.Module):
    def __init__(self, config: MatchingConfig, dim: int) -> None:
        super().__init__()
        if dim % config.heads:
            raise ValueError(f"dim {dim} is not divisible by heads {config.heads}")
        self.config = config
        self.attention = nn.MultiheadAttention(dim, config.heads, dropout=config.dropout, batch_first=True)
        n_inputs = 9 if config.interactions else 6
        self.fusion = nn.Sequential(
            nn.LayerNorm(n_inputs * dim),
            nn.Linear(n_inputs * dim, config.hidden),
            nn.GELU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.hidden, 1),
        )
        self._fusion_cache: tuple[tuple[object, ...], dict[str, Tensor]] | None = None  # see _fusion_matrices

    def attend(self, queries: Tensor, patches: Tensor, patch_mask: Tensor | None = None,
               candidates: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Queries (B, Q, D) over each candidate's patches -> attended (B, K, Q, D), weights (B, K, Q, T).

        Weights are averaged over heads; padded patches get exactly zero weight.
        """
        if candidates is None:
            return self._attend_per_candidate(queries, patches, patch_mask)
        if not self.training:
            return self._attend_patch_space(queries, patches, patch_mask, candidates)
        return self._attend_bank(queries, patches, patch_mask, candidates)

    def _attend_per_candidate(self, queries: Tensor, patches: Tensor,
                              patch_mask: Tensor | None) -> tuple[Tensor, Tensor]:
        b, k, t, d = patches.shape
        q = queries.repeat_interleave(k, dim=0)  # (B*K, Q, D): row b*K + j is dialogue b
        mask = patch_mask.reshape(b * k, t) if patch_mask is not None else None
        attended, weights = self.attention(q, patches.reshape(b * k, t, d), patches.reshape(b * k, t, d),
                                           key_padding_mask=mask, need_weights=True)
        return attended.reshape(b, k, -1, d), weights.reshape(b, k, -1, t)

    def _attend_bank(self, queries: Tensor, bank: Tensor, bank_mask: Tensor | None,
                     candidates: Tensor) -> tuple[Tensor, Tensor]:
        """The nn.MultiheadAttention computation, with keys/values projected once per distinct sticker."""
        b, k = candidates.shape
        _, t, d = bank.shape
        h = self.config.heads
        w, bias = self.attention.in_proj_weight, self.attention.in_proj_bias
        used, inverse = torch.unique(candidates, return_inverse=True)  # inverse (B, K) indexes `used`
        kv = F.linear(bank[used], w[d:], bias[d:] if bias is not None else None)  # (U, T, 2D)
        keys, values = kv.reshape(len(used), t, 2, h, d // h).permute(2, 0, 3, 1, 4)  # each (U, h, T, dh)
        q = F.linear(queries, w[:d], bias[:d] if bias is not None else None)
        q = q.reshape(b, -1, h, d // h).transpose(1, 2)  # (B, h, Q, dh)
        # the one per-pair copy: projected keys/values gathered for each (dialogue, candidate)
        keys, values = keys[inverse], values[inverse]  # (B, K, h, T, dh)
        scores = torch.einsum("bhqe,bkhte->bkhqt", q, keys) / math.sqrt(d // h)
        if bank_mask is not None:
            scores = scores.masked_fill(bank_mask[candidates][:, :, None, None, :], float("-inf"))
        weights = scores.softmax(dim=-1)
        dropped = F.dropout(weights, p=self.attention.dropout, training=self.training)
        attended = torch.einsum("bkhqt,bkhte->bkqhe", dropped, values).reshape(b, k, -1, d)
        return self.attention.out_proj(attended), weights.mean(dim=2)

    def _attend_patch_space(self, queries: Tensor, bank: Tensor, bank_mask: Tensor | None,
                            candidates: Tensor) -> tuple[Tensor, Tensor]:
        """`_attend_bank` without dropout, with the key/value projections moved to the query side."""
        b, k = candidates.shape
        _, t, d = bank.shape
        h, nq = self.config.heads, queries.shape[1]
        dh = d // h
        w, bias = self.attention.in_proj_weight, self.attention.in_proj_bias
        q = F.linear(queries, w[:d], bias[:d] if bias is not None else None).reshape(b, nq, h, dh)
        # (B, h*Q, D): each head's query in patch space; the key bias adds a constant per query: dropped
        q_patch = torch.einsum("bqhe,hed->bhqd", q, w[d:2 * d].reshape(h, dh, d)).reshape(b, h * nq, d)
        patches = bank[candidates]  # (B, K, T, D)
        scores = torch.bmm(patches.reshape(b, k * t, d), q_patch.transpose(1, 2)) / math.sqrt(dh)  # (B, K*T, h*Q)
        scores = scores.reshape(b, k, t, h * nq).transpose(2, 3)  # (B, K, h*Q, T)
        if bank_mask is not None:
            scores = scores.masked_fill(bank_mask[candidates][:, :, None, :], float("-inf"))
        weights = scores.softmax(dim=-1)
        pooled = torch.bmm(weights.reshape(b * k, h * nq, t), patches.reshape(b * k, t, d))  # (B*K, h*Q, D)
        values = torch.einsum("nhqd,hed->nqhe", pooled.reshape(b * k, h, nq, d), w[2 * d:].reshape(h, dh, d))
        if bias is not None:  # the weights sum to one, so the value bias passes through unchanged
            values = values + bias[2 * d:].reshape(h, dh)
        attended = self.attention.out_proj(values.reshape(b, k, nq, d))
        return attended, weights.reshape(b, k, h, nq, t).mean(dim=2)

    def _fusion_matrices(self, d: int) -> dict[str, Tensor]:
        """What `_fuse_split` derives from the weights alone: A = W·diag(γ) split into the per-dialogue block,
        the attended block and the per-candidate rest, Σ_j A_ij, and W β + b. Under inference mode (serving)
        it is kept until a weight changes (in-place updates bump a tensor's `_version`)."""
        norm, first = self.fusion[0], self.fusion[1]
        assert isinstance(norm, nn.LayerNorm) and isinstance(first, nn.Linear)
        params = (first.weight, first.bias, norm.weight, norm.bias)
        key = (d, *((t.data_ptr(), t._version) for t in params))
        if self._fusion_cache is not None and self._fusion_cache[0] == key and torch.is_inference_mode_enabled():
            return self._fusion_cache[1]
        blocks = (first.weight * norm.weight).split(d, dim=1)  # one (H, D) block per input
        out = {
            "dialogue": torch.cat([blocks[i] for i in (0, 1, 5)], dim=1),  # q0, q1, context
            "attended": torch.cat([blocks[2], blocks[3]], dim=1),
            "visual": blocks[4],
            "a_sum": sum(block.sum(1) for block in blocks[: 9 if self.config.interactions else 6]),
            "bias": first.weight @ norm.bias + first.bias,
        }
        if self.config.interactions:
            out.update(context_visual=blocks[6], q0_attended=blocks[7], q1_attended=blocks[8])
        if torch.is_inference_mode_enabled():
            self._fusion_cache = (key, out)
        return out

    def _fuse_split(self, q: Tensor, context: Tensor, attended: Tensor, visual: Tensor) -> Tensor:
        """The fusion MLP in eval mode with its LayerNorm + first Linear split into a per-dialogue part
        ((B, D) queries q[:, 0], q[:, 1] and context) and a per-candidate part; equal to `fusion(cat(...))`.

        W·LN(x) = (A x − μ A·1)/σ + W β + b: A x is summed from each input's block, so the concatenated
        (B, K, nD) input is never built, and μ, σ come from the parts' sums and sums of squares. An
        interaction input (c ⊙ v) multiplies one per-dialogue vector c into a per-candidate one v, so its
        block folds into v's: A_v v + A_cv (c ⊙ v) = (A_v + A_cv diag(c)) v. Each candidate then costs three
        D-wide products (the two attended vectors and the sticker's), not six."""
        norm, act, last = self.fusion[0], self.fusion[2], self.fusion[4]
        assert isinstance(norm, nn.LayerNorm)
        b, k, d = visual.shape
        m = self._fusion_matrices(d)
        x_d = torch.cat([q[:, 0], q[:, 1], context], dim=-1)  # (B, 3D)
        att = attended.reshape(b, k, 2 * d)  # the two attended vectors, one contiguous view
        sums = x_d.sum(-1)[:, None] + att.sum(-1) + visual.sum(-1)  # (B, K)
        squares = (x_d * x_d).sum(-1)[:, None] + (att * att).sum(-1) + (visual * visual).sum(-1)
        n = x_d.shape[-1] + 3 * d
        if self.config.interactions:
            n += 3 * d
            # per dialogue (B, H, D) blocks with the interactions folded in
            a_att = torch.cat([m["attended"][None, :, :d] + m["q0_attended"][None] * q[:, None, 0],
                               m["attended"][None, :, d:] + m["q1_attended"][None] * q[:, None, 1]], dim=-1)
            a_vis = m["visual"][None] + m["context_visual"][None] * context[:, None]
            # the interaction inputs' sums and sums of squares, without building them
            weights = torch.cat([q[:, 0], q[:, 1]], dim=-1)  # (B, 2D)
            sums = sums + (att @ weights[..., None]).squeeze(-1) + (visual @ context[..., None]).squeeze(-1)
            squares = (squares + ((att * att) @ (weights * weights)[..., None]).squeeze(-1)
                       + ((visual * visual) @ (context * context)[..., None]).squeeze(-1))
            hidden = (x_d @ m["dialogue"].T)[:, None] + att @ a_att.transpose(1, 2) + visual @ a_vis.transpose(1, 2)
        else:
            hidden = (x_d @ m["dialogue"].T)[:, None] + att @ m["attended"].T + visual @ m["visual"].T
        mean = sums / n  # (B, K)
        var = squares / n - mean * mean
        hidden = ((hidden - mean[..., None] * m["a_sum"]) * torch.rsqrt(var.clamp_min(0) + norm.eps)[..., None]
                  + m["bias"])
        return last(act(hidden)).squeeze(-1)

    def forward(self, *, intention: Tensor, emotion: Tensor, dialogue: Tensor, visual: Tensor,
                patches: Tensor | None = None, patch_mask: Tensor | None = None,
                candidates: Tensor | None = None) -> Tensor:
        """Logits p_vl (B, K) from (B, D) intention/emotion/dialogue vectors and (B, K, D) sticker vectors."""
        if patches is None:
            raise ValueError("IEGAHead needs sticker patch features")
        queries = torch.stack([intention, emotion], dim=1)  # (B, 2, D)
        attended, _ = self.attend(queries, patches, patch_mask, candidates)  # (B, K, 2, D)
        k = visual.shape[1]
        if not self.training:
            return self._fuse_split(queries, dialogue, attended, visual)
        q = queries[:, None].expand(-1, k, -1, -1)
        context = dialogue[:, None].expand(-1, k, -1)
        features = [q[:, :, 0], q[:, :, 1], attended[:, :, 0], attended[:, :, 1], visual, context]
        if self.config.interactions:
            features += [context * visual, q[:, :, 0] * attended[:, :, 0], q[:, :, 1] * attended[:, :, 1]]
        return self.fusion(torch.cat(features, dim=-1)).squeeze(-1)


class CosineHead(nn.Module):
    """p_vl = scale * cos(dialogue, visual) + bias: the matching score without IEGA."""

    def __init__(self, config: MatchingConfig, dim: int) -> None:
        super().__init__()
        self.config = config
        # learned in log space so the scale stays positive
        self.log_scale = nn.Parameter(torch.tensor(math.log(config.cosine_scale)))
        self.bias = nn.Parameter(torch.zeros(()))

    def forward(self, *, dialogue: Tensor, visual: Tensor, **_: Tensor | None) -> Tensor:
        cos = F.cosine_similarity(dialogue[:, None, :], visual, dim=-1)  # (B, K)
        return self.log_scale.exp() * cos + self.bias


MATCHING_HEADS: dict[MatchingKind, type[IEGAHead] | type[CosineHead]] = {"iega": IEGAHead, "cosine": CosineHead}


def build_matching_head(config: MatchingConfig, dim: int) -> IEGAHead | CosineHead:
    """The matching head named by `config.kind`; every head takes the same keyword arguments."""
    return MATCHING_HEADS[config.kind](config, dim)
