"""EIGML: emotion- and intention-guided multi-modal sticker ranking (arXiv 2511.17587).

Dialogue side: text encoder -> retrieval query, emotion embedding (+ distribution), intention knowledge
(four relations) refined by EIKS, pooled into an intention embedding (+ distribution over dialogue acts).
Sticker side: frozen ViT tokens -> visual vector, emotion and intention embeddings, pooled patch grid.
Score: IEGA cross-attention from [intention; emotion] onto the sticker's patches gives p_vl (plus the
retrieval cosine as a residual); SAMM mixes it with emotion and intention cosine similarity.
Training adds BCE on the final score, label heads, EIKS' auxiliary losses and the DLCF terms.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from eigml.animation import Frames
from eigml.dialogue import Dialogue, Turn
from eigml.intentions import with_act_cues
from eigml.labels import EMOTIONS
from eigml.model.config import ModelConfig
from eigml.model.dlcf import DLCFLoss, Views
from eigml.model.eiks import EIKS, soft_cross_entropy
from eigml.model.iega import build_matching_head
from eigml.model.image_encoder import FeatureCache, ImageEncoder
from eigml.model.interface import QueryEncoding, StickerEncoding
from eigml.model.knowledge import KnowledgeInputs, build_knowledge, last_turn_texts
from eigml.model.samm import SAMM
from eigml.model.text_encoder import TextEncoder


class TrainingBatch(Protocol):
    """What `EIGML.forward` reads of a training batch (`training.data.batching.Batch` is one)."""

    tokens: dict[str, Tensor]  # text encoder inputs for B dialogues
    last_turns: list[str]  # each dialogue's last turn (read by the COMET knowledge source)
    candidate_rows: Tensor  # (B, K) rows of the feature tensor; padding rows are 0 (masked)
    candidate_mask: Tensor  # (B, K) True for real candidates
    targets: Tensor  # (B, K) 1.0 for the answer, else 0.0
    answer_rows: Tensor  # (B,) row of the answer as shown (maybe another pack's art)
    answer_ids: Tensor  # (B,) primary row of the answer: equal ids are the same sticker
    emotion_target: Tensor  # (B, E) the reply's emotion distribution
    emotion_weight: Tensor  # (B,) weight of each item's emotion target (0: none)
    act: Tensor  # (B,) index into the model's intention labels, -1 when absent
    item_weight: Tensor | None  # (B,) weights of the ranking losses (None: 1)
    act_weight: Tensor | None  # (B,) weights of the intention loss (None: 1)

    def __len__(self) -> int: ...


def _mlp(inputs: int, dim: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(inputs, dim), nn.GELU(), nn.Linear(dim, dim))


class EIGML(nn.Module):
    def __init__(self, config: ModelConfig, intention_labels: Sequence[str] = (),
                 models_dir: Path | None = None, text_weights_dir: Path | None = None) -> None:
        super().__init__()
        self.config = config
        self.emotion_labels: tuple[str, ...] = EMOTIONS
        self.intention_labels: tuple[str, ...] = tuple(intention_labels)
        self.version = "untrained"
        c, d = config, config.dim
        self.text_encoder = TextEncoder(c.text, weights_dir=text_weights_dir, models_dir=models_dir)
        self.image_encoder = ImageEncoder(c.image, models_dir=models_dir)
        ht, hv = self.text_encoder.hidden_size, self.image_encoder.hidden_size
        # dialogue side
        self.query_proj = nn.Sequential(nn.Dropout(c.dropout), nn.Linear(ht, d))
        self.dialogue_proj = nn.Sequential(nn.Dropout(c.dropout), nn.Linear(ht, d))
        self.emotion_proj = _mlp(ht, d, c.dropout)
        self.emotion_head = nn.Linear(d, len(EMOTIONS))  # shared: one emotion space for text and stickers
        self.knowledge = build_knowledge(c.knowledge, dim=d, input_dim=ht, text_encoder=self._encode_texts)
        self.eiks = EIKS(c.eiks, d) if c.eiks.enabled else None
        self.intention_proj = nn.Sequential(nn.Dropout(c.dropout), nn.Linear(d, d))
        self.intention_head = nn.Linear(d, len(self.intention_labels)) if self.intention_labels else None
        # the reply's own emotion (ReplyEmotionConfig): fitted after training, used once fitted
        self.reply_emotion_head = nn.Linear(ht, len(EMOTIONS)) if c.reply_emotion.enabled else None
        if self.reply_emotion_head is not None:
            self.register_buffer("reply_emotion_fitted", torch.tensor(False))
            self.register_load_state_dict_post_hook(lambda module, _keys: module._sync_reply_emotion())
        self.reply_emotion_ready = False  # a Python flag (read while exporting), mirrors the buffer
        # sticker side: [CLS; mean patch] of the frozen backbone
        self.visual_proj = nn.Sequential(nn.Dropout(c.dropout), nn.Linear(2 * hv, d))
        self.sticker_emotion_proj = _mlp(2 * hv, d, c.dropout)
        self.sticker_intention_proj = _mlp(2 * hv, d, c.dropout)
        self.patch_proj = nn.Linear(hv, d)
        # score
        self.matching = build_matching_head(c.matching, d)
        self.residual = c.retrieval_residual and c.matching.kind != "cosine"
        if self.residual:
            # learned in log space so the scale stays positive
            self.residual_log_scale = nn.Parameter(torch.tensor(float(np.log(10.0))))
        self.samm = SAMM(c.samm) if c.samm.enabled else None
        self.dlcf = DLCFLoss(c.dlcf)

    def _sync_reply_emotion(self) -> None:
        self.reply_emotion_ready = (self.reply_emotion_head is not None
                                    and bool(self.get_buffer("reply_emotion_fitted")))

    @torch.no_grad()
    def set_reply_emotion(self, weight: Tensor, bias: Tensor) -> None:
        """Install the fitted reply-emotion reader: logits = pooled text states @ weight.T + bias."""
        if self.reply_emotion_head is None:
            raise ValueError("this model has no reply-emotion head (model.reply_emotion.enabled is false)")
        self.reply_emotion_head.weight.copy_(weight)
        self.reply_emotion_head.bias.copy_(bias)
        self.get_buffer("reply_emotion_fitted").fill_(True)
        self._sync_reply_emotion()

    # ---- stickers -------------------------------------------------------------------------------
    def image_features(self, images: Sequence[Image.Image | Frames]) -> Tensor:
        """(N, 1+P, Hv) frozen-backbone tokens; deterministic, so safe to cache by checksum."""
        return self.image_encoder.features(images)

    def cached_image_features(self, cache_root: Path) -> Callable[[Sequence[Image.Image | Frames]], Tensor]:
        """A featurizer that reads and fills the on-disk feature cache under `cache_root`."""
        cache = None if self.config.image.trainable else FeatureCache(cache_root, self.image_encoder.cache_key)
        return lambda images: self.image_encoder.features(images, cache)

    def _patch_grid(self, tokens: Tensor) -> Tensor:
        """(N, 1+P, Hv) -> (N, 1+g*g, Hv): CLS plus patches average-pooled to a g x g grid."""
        patches = tokens[:, 1:]
        side = int(round(patches.shape[1] ** 0.5))
        grid = patches.transpose(1, 2).reshape(tokens.shape[0], -1, side, side)
        pooled = F.adaptive_avg_pool2d(grid, self.config.patch_grid).flatten(2).transpose(1, 2)
        return torch.cat([tokens[:, :1], pooled], dim=1)

    def encode_stickers(self, features: Tensor) -> StickerEncoding:
        """Backbone tokens (N, 1+P, Hv) -> unit visual (N, D), emotion/intention (N, D), patches (N, T, D)."""
        tokens = features.float()
        hidden = torch.cat([tokens[:, 0], tokens[:, 1:].mean(dim=1)], dim=-1)
        emotion = self.sticker_emotion_proj(hidden)
        return StickerEncoding(
            visual=F.normalize(self.visual_proj(hidden), dim=-1),
            emotion=emotion,
            intention=self.sticker_intention_proj(hidden),
            emotion_probs=self.emotion_head(emotion).softmax(dim=-1),
            patches=self.patch_proj(self._patch_grid(tokens)),
        )

    # ---- dialogues ------------------------------------------------------------------------------
    def _encode_texts(self, texts: Sequence[str]) -> Tensor:
        """(N, Ht) pooled states of single-turn texts (COMET knowledge is encoded with this)."""
        dialogues = [Dialogue((Turn("A", text),)) for text in texts]
        return self.text_encoder(self.text_encoder.tokenize(dialogues))[1]

    def encode_tokens(self, tokens: dict[str, Tensor], last_turns: Sequence[str]) -> dict[str, Tensor]:
        """Every dialogue-side tensor, batch first, from `TextEncoder.tokenize` output: unit `query` (B, D),
        `dialogue`/`emotion`/`intention` (B, D), label logits, and EIKS' `aux_*` terms (training only).
        `last_turns` feeds the COMET knowledge source; learned knowledge ignores it."""
        states, pooled = self.text_encoder(tokens)
        emotion = self.emotion_proj(pooled)
        emotion_logits = self.emotion_head(emotion)
        knowledge = self.knowledge(KnowledgeInputs(states, tokens["attention_mask"], last_turns))  # (B, R, D)
        out: dict[str, Tensor] = {}
        if self.eiks is not None:
            knowledge, aux = self.eiks(knowledge, emotion_logits.softmax(dim=-1), emotion)
            out.update({f"aux_{k}": v for k, v in aux.items()})
        intention = self.intention_proj(knowledge.mean(dim=1))
        intention_logits = (self.intention_head(intention) if self.intention_head is not None
                            else intention.new_zeros(intention.shape[0], 0))
        query = F.normalize(self.query_proj(pooled), dim=-1)
        dialogue = query if self.config.matching.kind == "cosine" else self.dialogue_proj(pooled)
        out.update(query=query, dialogue=dialogue, emotion=emotion, emotion_logits=emotion_logits,
                   intention=intention, intention_logits=intention_logits)
        if self.reply_emotion_ready and not self.training:
            assert self.reply_emotion_head is not None
            out["reply_emotion_logits"] = self.reply_emotion_head(pooled)
        return out

    @staticmethod
    def query_encoding(out: dict[str, Tensor]) -> QueryEncoding:
        """The inference view of `encode_tokens`' output: label logits become probabilities; the dialogue's
        emotion is the fitted reply reader's where there is one."""
        return QueryEncoding(
            query=out["query"],
            emotion_probs=out.get("reply_emotion_logits", out["emotion_logits"]).softmax(dim=-1),
            intention_probs=out["intention_logits"].softmax(dim=-1),
            features={"dialogue": out["dialogue"], "emotion": out["emotion"], "intention": out["intention"]},
        )

    def encode_dialogues(self, dialogues: Sequence[Dialogue]) -> QueryEncoding:
        tokens = self.text_encoder.tokenize(dialogues)
        return self.with_act_cues(dialogues, self.query_encoding(self.encode_tokens(tokens, last_turn_texts(dialogues))))

    def with_act_cues(self, dialogues: Sequence[Dialogue], encoding: QueryEncoding) -> QueryEncoding:
        """`encoding` whose reply intentions follow a greeting, goodbye or affection the latest turn says
        outright (`eigml.intentions.with_act_cues`); every path that encodes dialogues ends here."""
        if not self.intention_labels:
            return encoding
        return encoding._replace(intention_probs=with_act_cues(dialogues, encoding.intention_probs,
                                                               self.intention_labels))

    # ---- score ----------------------------------------------------------------------------------
    def score(self, queries: QueryEncoding, stickers: StickerEncoding, candidates: Tensor) -> Tensor:
        """(B, K) final scores in (0, 1); candidates (B, K) index rows of `stickers`."""
        f = queries.features
        visual = stickers.visual[candidates]
        p_vl = self.matching(intention=f["intention"], emotion=f["emotion"], dialogue=f["dialogue"],
                             visual=visual, patches=stickers.patches.float(), candidates=candidates)
        if self.residual:
            p_vl = p_vl + self.residual_log_scale.exp() * (queries.query[:, None, :] * visual).sum(-1)
        if self.samm is None:
            return torch.sigmoid(p_vl).clamp(1e-6, 1 - 1e-6)
        if self.config.samm.similarity == "distribution":
            return self.samm(p_vl, queries.emotion_probs, queries.intention_probs,
                             stickers.emotion_probs[candidates],
                             self.sticker_intention_logits(stickers.intention[candidates]).softmax(-1))
        return self.samm(p_vl, f["emotion"], f["intention"], stickers.emotion[candidates],
                         stickers.intention[candidates])

    # ---- training -------------------------------------------------------------------------------
    def forward(self, batch: TrainingBatch, features: Tensor, sticker_targets: Tensor,
                sticker_intentions: Tensor | None = None, sweep_rows: Tensor | None = None) -> dict[str, Tensor]:
        """Named, weighted loss terms for one batch; `features` are the bank's backbone tokens,
        `sticker_targets` (rows, E) and `sticker_intentions` (rows, A; optional) their label distributions.
        `sweep_rows` (optional) are more bank rows whose emotion and intention losses count with the batch's
        candidates (stickers that are rarely a candidate still learn their labels)."""
        w = self.config.weights
        out = self.encode_tokens(batch.tokens, batch.last_turns)
        used, inverse = torch.unique(batch.candidate_rows, return_inverse=True)
        stickers = self.encode_stickers(features[used])
        final = self.score(self.query_encoding(out), stickers, inverse)
        mask = batch.candidate_mask
        item_weight = batch.item_weight if batch.item_weight is not None else torch.ones(len(batch))
        bce = F.binary_cross_entropy(final, batch.targets, reduction="none") * mask
        per_item = bce.sum(dim=1) / mask.sum(dim=1)
        terms = {"bce": w.bce * (per_item * item_weight).sum() / item_weight.sum()}

        emotion_weight = batch.emotion_weight * item_weight
        if (emotion_weight > 0).any():
            ce = soft_cross_entropy(out["emotion_logits"], batch.emotion_target)
            terms["emotion"] = w.emotion * (ce * emotion_weight).sum() / emotion_weight.sum()
        has_act = batch.act >= 0
        if self.intention_head is not None and has_act.any():
            ce = F.cross_entropy(out["intention_logits"][has_act], batch.act[has_act], reduction="none")
            act_weight = batch.act_weight[has_act] if batch.act_weight is not None else torch.ones_like(ce)
            terms["intention"] = w.intention * (ce * act_weight).sum() / act_weight.sum()
        rows, emotion, intention = used, stickers.emotion, stickers.intention
        if sweep_rows is not None and len(sweep_rows):
            swept = self.encode_stickers(features[sweep_rows])
            rows = torch.cat([used, sweep_rows])
            emotion = torch.cat([emotion, swept.emotion])
            intention = torch.cat([intention, swept.intention])
        row_targets = sticker_targets[rows]
        labelled = row_targets.sum(dim=1) > 0
        if labelled.any():
            logits = self.emotion_head(emotion[labelled])
            terms["sticker_emotion"] = w.sticker_emotion * soft_cross_entropy(logits, row_targets[labelled]).mean()
        if self.intention_head is not None and sticker_intentions is not None:
            logits = self.sticker_intention_logits(intention)
            terms["sticker_intention"] = w.sticker_intention * soft_cross_entropy(logits, sticker_intentions[rows]).mean()
        for name, value in out.items():
            if name.startswith("aux_"):
                terms[name[4:]] = w.eiks * value
        terms.update(self._dlcf_terms(batch, out, features, stickers, used))
        return terms

    def _dlcf_terms(self, batch: TrainingBatch, out: dict[str, Tensor], features: Tensor, stickers: StickerEncoding,
                    used: Tensor) -> dict[str, Tensor]:
        c = self.config.dlcf
        answer = torch.searchsorted(used, batch.answer_rows)  # position of each answer row in `used`
        text_views = image_views = None
        if c.intra_text:
            again = self.encode_tokens(batch.tokens, batch.last_turns)  # a second dropout view of the same dialogues
            text_views = Views(out["query"], again["query"], out["emotion_logits"].softmax(-1),
                               again["emotion_logits"].softmax(-1), *self._intention_pair(out, again))
        if c.intra_image:
            a = StickerEncoding(*(t[answer] for t in stickers))
            b = self.encode_stickers(features[batch.answer_rows])
            pair = self._intention_pair({"intention_logits": self.sticker_intention_logits(a.intention)},
                                        {"intention_logits": self.sticker_intention_logits(b.intention)})
            image_views = Views(a.visual, b.visual, a.emotion_probs, b.emotion_probs, *pair)
        return self.dlcf(query=out["query"], sticker=stickers.visual[answer],
                         query_emotion=out["emotion"], sticker_emotion=stickers.emotion[answer],
                         query_intention=out["intention"], sticker_intention=stickers.intention[answer],
                         text_views=text_views, image_views=image_views, sticker_ids=batch.answer_ids)

    def sticker_intention_logits(self, intention: Tensor) -> Tensor:
        """(..., A) intention logits of sticker intention embeddings (..., D); A = 0 without intention labels."""
        if self.intention_head is None:
            return intention.new_zeros(*intention.shape[:-1], 0)
        return self.intention_head(intention)

    @staticmethod
    def _intention_pair(a: dict[str, Tensor], b: dict[str, Tensor]) -> tuple[Tensor | None, Tensor | None]:
        if a["intention_logits"].shape[-1] == 0:
            return None, None
        return a["intention_logits"].softmax(-1), b["intention_logits"].softmax(-1)

