"""Turn benchmark items into tensors: tokenised dialogues, candidate rows in the sticker bank, labels."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from eigml.dialogue import Dialogue
from eigml.labels import EMOTIONS, emotion_index
from eigml.model.eigml import TrainingBatch
from eigml.model.knowledge import last_turn_texts
from eigml.model.text_encoder import TextEncoder
from training.data import SRSItem
from training.data.sticker_bank import StickerBank


@dataclass
class Batch:
    tokens: dict[str, torch.Tensor]  # text encoder inputs for B dialogues
    last_turns: list[str]  # each dialogue's last turn (read by the COMET knowledge source)
    candidate_rows: torch.Tensor  # (B, K) rows of the sticker bank; padding rows are 0 (masked)
    candidate_mask: torch.Tensor  # (B, K) True for real candidates (items may have different K)
    targets: torch.Tensor  # (B, K) 1.0 for the answer, else 0.0
    answer_rows: torch.Tensor  # (B,) bank row of the answer as shown (maybe another pack's art)
    answer_ids: torch.Tensor  # (B,) primary bank row of the answer: equal ids are the same sticker
    emotion_target: torch.Tensor  # (B, E) the reply's emotion: one-hot where labelled, else a tagger's guess
    emotion_weight: torch.Tensor  # (B,) 1 for labelled items, `pseudo_weight` for tagged ones, 0 for neither
    act: torch.Tensor  # (B,) index into the model's intention labels, -1 when absent
    item_weight: torch.Tensor | None = None  # (B,) class-balancing weights of the ranking losses (None: 1)
    act_weight: torch.Tensor | None = None  # (B,) class-balancing weights of the intention loss (None: 1)

    def __len__(self) -> int:
        return int(self.candidate_rows.shape[0])


if TYPE_CHECKING:  # mypy checks here that a Batch is what EIGML.forward reads
    _FITS_THE_MODEL: type[TrainingBatch] = Batch


def make_batch(items: Sequence[SRSItem], tokenize: Callable[[Sequence[Dialogue]], dict[str, torch.Tensor]],
               bank: StickerBank, intention_index: dict[str, int], *, style_prob: float = 0.0,
               generator: torch.Generator | None = None,
               pseudo_emotions: Mapping[str, np.ndarray] | None = None, pseudo_weight: float = 0.0,
               prefixes: Sequence[torch.Tensor] | None = None) -> Batch:
    """Tensors for `items`; `pseudo_emotions` (item id -> (E,) distribution) stand in for missing labels,
    `prefixes` (one (L_i, H) tensor per item, from `build_prefix_cache`) skip the frozen text layers."""
    width = max(len(item.candidates) for item in items)
    rows = torch.zeros(len(items), width, dtype=torch.long)
    mask = torch.zeros(len(items), width, dtype=torch.bool)
    targets = torch.zeros(len(items), width)
    answer_ids = torch.empty(len(items), dtype=torch.long)
    for i, item in enumerate(items):
        k = len(item.candidates)
        rows[i, :k] = bank.rows(item.candidates)
        mask[i, :k] = True
        position = item.candidates.index(item.answer)
        targets[i, position] = 1.0
        answer_ids[i] = rows[i, position]
    if style_prob > 0:
        rows = torch.where(mask, bank.swap_styles(rows, style_prob, generator or torch.Generator()), rows)
    answer_rows = rows.gather(1, targets.argmax(dim=1, keepdim=True)).squeeze(1)
    emotion_target = torch.zeros(len(items), len(EMOTIONS))
    emotion_weight = torch.zeros(len(items))
    for i, item in enumerate(items):
        e = emotion_index(item.emotion)
        if e is not None:
            emotion_target[i, e], emotion_weight[i] = 1.0, 1.0
        elif pseudo_emotions is not None and item.id in pseudo_emotions and pseudo_weight > 0:
            emotion_target[i] = torch.as_tensor(pseudo_emotions[item.id], dtype=torch.float32)
            emotion_weight[i] = pseudo_weight
    acts = [intention_index.get(item.act, -1) if item.act is not None else -1 for item in items]
    tokens = tokenize([item.dialogue for item in items])
    if prefixes is not None:
        padded = torch.zeros(*tokens["input_ids"].shape, prefixes[0].shape[-1], dtype=prefixes[0].dtype)
        for i, prefix in enumerate(prefixes):
            padded[i, : prefix.shape[0]] = prefix
        tokens["prefix_states"] = padded
    return Batch(
        tokens=tokens,
        last_turns=last_turn_texts([item.dialogue for item in items]),
        candidate_rows=rows,
        candidate_mask=mask,
        targets=targets,
        answer_rows=answer_rows,
        answer_ids=answer_ids,
        emotion_target=emotion_target,
        emotion_weight=emotion_weight,
        act=torch.tensor(acts, dtype=torch.long),
    )


def epoch_batches(num_items: int, batch_size: int, generator: torch.Generator, rank: int = 0,
                  world_size: int = 1) -> Iterator[list[int]]:
    """Shuffled item indices in batches; each of `world_size` processes gets its own equal share.

    Every process yields the same number of batches (the tail that does not divide evenly is dropped),
    so DDP's collective calls stay in step.
    """
    order = torch.randperm(num_items, generator=generator).tolist()
    per_step = batch_size * world_size
    if num_items < per_step:  # tiny data: one smaller batch rather than none
        yield order[rank::world_size]
        return
    for start in range(0, num_items - per_step + 1, per_step):
        chunk = order[start:start + per_step]
        yield chunk[rank::world_size]


def build_prefix_cache(items: Sequence[SRSItem], text_encoder: TextEncoder, batch_size: int = 64,
                       progress: bool = True) -> list[torch.Tensor]:
    """Per item, the frozen lower text layers' output over its real tokens, (L_i, H) fp16."""
    from tqdm import tqdm

    # batches of similar length waste no compute on padding (a third of it in file order); results go
    # back to the items' order
    order = sorted(range(len(items)), key=lambda i: sum(len(t.text) for t in items[i].dialogue.turns))
    out: list[torch.Tensor | None] = [None] * len(items)
    for start in tqdm(range(0, len(order), batch_size), desc="text prefix cache", unit="batch",
                      disable=not progress):
        chunk = order[start:start + batch_size]
        tokens = text_encoder.tokenize([items[i].dialogue for i in chunk])
        states = text_encoder.prefix_states(tokens).to(torch.float16)
        lengths = tokens["attention_mask"].sum(dim=1).tolist()
        for row, (i, n) in enumerate(zip(chunk, lengths, strict=True)):
            out[i] = states[row, :n].clone()
    return [t for t in out if t is not None]
