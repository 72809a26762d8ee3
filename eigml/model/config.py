"""The EIGML model's config: encoders, component switches for ablation, loss weights."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from eigml.model.dlcf import DLCFConfig
from eigml.model.eiks import EIKSConfig
from eigml.model.iega import MatchingConfig
from eigml.model.image_encoder import ImageEncoderConfig
from eigml.model.knowledge import KnowledgeConfig, LearnedKnowledgeConfig
from eigml.model.samm import SAMMConfig
from eigml.model.text_encoder import TextEncoderConfig


class LossWeights(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bce: float = 1.0  # BCE on the final SAMM score of every candidate
    emotion: float = 1.0  # dialogue emotion head vs the reply's labelled emotion, where labelled
    sticker_emotion: float = 0.5  # sticker emotion head vs the emotions its training answers carry
    intention: float = 0.5  # intention head over the knowledge vs the reply's dialogue act, where labelled
    sticker_intention: float = 0.5  # sticker intention (through the shared head) vs its tags' intentions, if given
    eiks: float = 0.5  # EIKS' knowledge-emotion classifier and its gradient regression net


class ReplyEmotionConfig(BaseModel):
    """A second reader of the reply's emotion: one linear layer over the pooled text states, fitted once
    training ends (`training.reply_head`) as an L2-regularised logistic regression on the rows whose label
    is the replier's own appraisal (the authored dialogues: "I spilled coffee on your laptop" -> anger), not
    the writer's feeling that the published sets label. Once fitted it gives the served dialogue emotion,
    and with it SAMM's emotion agreement; training's losses and EIKS keep the shared emotion head."""
    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    # training items whose id starts with "<source>-": the two sets of authored dialogues (authored_replies.jsonl)
    sources: tuple[str, ...] = ("authored", "authored2")
    c: float = Field(default=0.01, gt=0.0)  # inverse L2 strength; 0.003-0.01 tie in 5-fold CV on the authored rows
    class_balanced: bool = True


class ModelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: TextEncoderConfig = Field(default_factory=TextEncoderConfig)
    image: ImageEncoderConfig = Field(default_factory=ImageEncoderConfig)
    dim: int = Field(256, ge=8)  # shared embedding size of queries, stickers, emotion and intention
    patch_grid: int = Field(3, ge=1)  # sticker patches are pooled to grid x grid (+ CLS) for IEGA and the index
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    knowledge: KnowledgeConfig = Field(default_factory=LearnedKnowledgeConfig)
    eiks: EIKSConfig = Field(default_factory=EIKSConfig)
    matching: MatchingConfig = Field(default_factory=MatchingConfig)
    samm: SAMMConfig = Field(default_factory=SAMMConfig)
    dlcf: DLCFConfig = Field(default_factory=DLCFConfig)
    weights: LossWeights = Field(default_factory=LossWeights)
    # p_vl = matching head + scale * cos(query, visual): the rerank refines the retrieval score
    retrieval_residual: bool = True
    reply_emotion: ReplyEmotionConfig = Field(default_factory=ReplyEmotionConfig)
