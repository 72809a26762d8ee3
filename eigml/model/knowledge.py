"""Intention knowledge: one (B, R, D) vector per dialogue and relation (xIntent, xNeed, xWant, xEffect).

Two sources behind one call, `source(KnowledgeInputs) -> (B, R, D)`:
- "learned": four relation-specific generators over the encoded context; each relation has its own learned
  query attending over the text token states and its own MLP. The model supervises them (dialogue acts).
- "comet": a COMET-style seq2seq model, loaded from a local folder, generates an inference for the last
  turn and each relation; the texts are encoded by the caller's text encoder and projected to D.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Literal, NamedTuple

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from eigml.dialogue import Dialogue
from eigml.labels import KNOWLEDGE_RELATIONS

IntentionSource = Literal["learned", "comet"]
TextEncoder = Callable[[Sequence[str]], Tensor]  # texts -> (N, H) vectors


class LearnedKnowledgeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: Literal["learned"] = "learned"
    heads: int = Field(default=4, ge=1)
    hidden: int = Field(default=512, ge=1)
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0)


class CometKnowledgeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: Literal["comet"] = "comet"
    model_path: Path  # a local folder that AutoModelForSeq2SeqLM and AutoTokenizer load
    prompt: str = "{text} {relation} [GEN]"
    max_new_tokens: int = Field(default=24, ge=1)
    max_input_tokens: int = Field(default=128, ge=8)
    batch_size: int = Field(default=32, ge=1)
    max_cache_entries: int = Field(default=100_000, ge=0)


KnowledgeConfig = Annotated[LearnedKnowledgeConfig | CometKnowledgeConfig, Field(discriminator="source")]


class KnowledgeInputs(NamedTuple):
    """What a knowledge source may read; each source says which fields it needs."""

    token_states: Tensor | None = None  # (B, L, H) text encoder states
    attention_mask: Tensor | None = None  # (B, L), 1 for real tokens, 0 for padding (Hugging Face style)
    last_turns: Sequence[str] | None = None  # B texts: each dialogue's last turn


def last_turn_texts(dialogues: Sequence[Dialogue]) -> list[str]:
    """The text of each dialogue's last turn ("" for a dialogue without turns)."""
    return [d.turns[-1].text if d.turns else "" for d in dialogues]


class LearnedKnowledge(nn.Module):
    """Relation-specific generators: (B, L, H) token states -> (B, R, D)."""

    def __init__(self, config: LearnedKnowledgeConfig, dim: int, input_dim: int) -> None:
        super().__init__()
        if input_dim % config.heads:
            raise ValueError(f"input_dim {input_dim} is not divisible by heads {config.heads}")
        self.config = config
        self.relations = KNOWLEDGE_RELATIONS
        self.queries = nn.Parameter(torch.randn(len(self.relations), input_dim) * 0.02)
        self.attention = nn.MultiheadAttention(input_dim, config.heads, dropout=config.dropout, batch_first=True)
        self.generators = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(input_dim), nn.Linear(input_dim, config.hidden), nn.GELU(),
                          nn.Dropout(config.dropout), nn.Linear(config.hidden, dim))
            for _ in self.relations
        )

    def forward(self, inputs: KnowledgeInputs) -> Tensor:
        states, mask = inputs.token_states, inputs.attention_mask
        if states is None:
            raise ValueError("LearnedKnowledge needs token_states")
        queries = self.queries[None].expand(states.shape[0], -1, -1)  # (B, R, H)
        padding = (mask == 0) if mask is not None else None
        attended, _ = self.attention(queries, states, states, key_padding_mask=padding, need_weights=False)
        return torch.stack([gen(attended[:, r]) for r, gen in enumerate(self.generators)], dim=1)


class CometGenerator:
    """Frozen seq2seq COMET model with an in-memory cache of generations keyed by (text, relation)."""

    def __init__(self, config: CometKnowledgeConfig, device: str | torch.device = "cpu") -> None:
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        self.config = config
        self.device = torch.device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(config.model_path)
        self.model = AutoModelForSeq2SeqLM.from_pretrained(config.model_path).eval().to(self.device)
        self.model.requires_grad_(False)
        self.cache: OrderedDict[tuple[str, str], str] = OrderedDict()

    def prompt(self, text: str, relation: str) -> str:
        return self.config.prompt.format(text=text, relation=relation)

    @torch.no_grad()
    def generate(self, prompts: Sequence[str]) -> list[str]:
        """Greedy generations for `prompts`, uncached."""
        out: list[str] = []
        for start in range(0, len(prompts), self.config.batch_size):
            batch = self.tokenizer(list(prompts[start:start + self.config.batch_size]), padding=True,
                                   truncation=True, max_length=self.config.max_input_tokens,
                                   return_tensors="pt").to(self.device)
            ids = self.model.generate(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                      max_new_tokens=self.config.max_new_tokens, do_sample=False, num_beams=1)
            out += [t.strip() for t in self.tokenizer.batch_decode(ids, skip_special_tokens=True)]
        return out

    def infer(self, pairs: Sequence[tuple[str, str]]) -> list[str]:
        """The generation for each (text, relation), from the cache where present."""
        missing = list(dict.fromkeys(p for p in pairs if p not in self.cache))
        generated = dict(zip(missing, self.generate([self.prompt(t, r) for t, r in missing]), strict=True))
        results = []
        for pair in pairs:
            if pair in self.cache:
                self.cache.move_to_end(pair)
                results.append(self.cache[pair])
            else:
                results.append(generated[pair])
        for pair, text in generated.items():
            self.cache[pair] = text
        while len(self.cache) > self.config.max_cache_entries:
            self.cache.popitem(last=False)
        return results


class CometKnowledge(nn.Module):
    """Last turns -> COMET inferences per relation -> caller's text encoder (N, H) -> (B, R, D)."""

    def __init__(self, config: CometKnowledgeConfig, dim: int, input_dim: int, text_encoder: TextEncoder,
                 generator: CometGenerator | None = None) -> None:
        super().__init__()
        self.config = config
        self.relations = KNOWLEDGE_RELATIONS
        # plain attributes, not submodules: COMET stays frozen and out of state_dict and the optimiser
        self.generator = generator or CometGenerator(config)
        self.text_encoder = text_encoder
        self.projection = nn.Linear(input_dim, dim)

    def forward(self, inputs: KnowledgeInputs) -> Tensor:
        if inputs.last_turns is None:
            raise ValueError("CometKnowledge needs last_turns")
        turns = list(inputs.last_turns)
        pairs = [(text, relation) for text in turns for relation in self.relations]
        texts = self.generator.infer(pairs)  # row b * R + r is dialogue b, relation r
        encoded = self.text_encoder(texts)  # (B * R, H)
        return self.projection(encoded).reshape(len(turns), len(self.relations), -1)


def build_knowledge(config: LearnedKnowledgeConfig | CometKnowledgeConfig, dim: int, input_dim: int,
                    text_encoder: TextEncoder | None = None) -> LearnedKnowledge | CometKnowledge:
    """The knowledge source named by `config.source`; COMET needs the model's text encoder."""
    if isinstance(config, CometKnowledgeConfig):
        if text_encoder is None:
            raise ValueError("the comet knowledge source needs a text_encoder")
        return KNOWLEDGE_SOURCES["comet"](config, dim, input_dim, text_encoder)
    return KNOWLEDGE_SOURCES["learned"](config, dim, input_dim)


KNOWLEDGE_SOURCES: dict[IntentionSource, Callable[..., LearnedKnowledge | CometKnowledge]] = {
    "learned": LearnedKnowledge,
    "comet": CometKnowledge,
}
