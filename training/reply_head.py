"""Fit the reply-emotion reader (`eigml.model.config.ReplyEmotionConfig`) once training ends.

The published emotion sets label what the writer of a text feels; the reply a sticker answers with is what
the *listener* feels about it ("I lost the book you lent me": the writer is sorry, the friend is cross). Only
the authored dialogues (data/licence_clean/authored_replies.jsonl) carry that label, and in training they are
about 6% of the rows, so the shared emotion head, which must also fit the writers' labels, reads them only
loosely (it fits its own authored training rows at about 0.80). This step keeps the trained encoder as it is
and fits one linear layer on its pooled states over those rows alone: an L2-regularised logistic
regression (scikit-learn's lbfgs, deterministic), features standardised and the scaling folded back into the
layer. Measured in docs/results.md (fifteenth session).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from eigml.model.eigml import EIGML
from training.data.srs import SRSItem


@dataclass(frozen=True)
class ReplyFit:
    rows: int
    train_accuracy: float


def is_reply_row(item_id: str, sources: Sequence[str]) -> bool:
    """Whether an item id names a row of one of `sources` ("authored2-0001" is a row of "authored2")."""
    return item_id.startswith(tuple(f"{source}-" for source in sources))


def reply_rows(items: Sequence[SRSItem], sources: Sequence[str]) -> list[SRSItem]:
    """The distinct labelled items (first copy of each id) of `sources`."""
    seen: set[str] = set()
    out = []
    for item in items:
        if is_reply_row(item.id, sources) and item.emotion is not None and item.id not in seen:
            seen.add(item.id)
            out.append(item)
    return out


@torch.inference_mode()
def pooled_states(model: EIGML, items: Sequence[SRSItem], batch_size: int = 64) -> np.ndarray:
    """(N, H) pooled text states of the items' dialogues, the encoder in eval mode (no dropout)."""
    was_training = model.training
    model.eval()
    try:
        out = [model.text_encoder(model.text_encoder.tokenize([i.dialogue for i in items[s : s + batch_size]]))[1]
               for s in range(0, len(items), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(out).float().numpy()


def fit_reply_head(model: EIGML, items: Sequence[SRSItem]) -> ReplyFit:
    """Fit and install the model's reply-emotion reader on `items`' reply rows; ValueError when there are
    none or they do not cover every emotion (the layer has one row per emotion)."""
    from sklearn.linear_model import LogisticRegression

    cfg = model.config.reply_emotion
    rows = reply_rows(items, cfg.sources)
    labels = list(model.emotion_labels)
    y = np.array([labels.index(str(item.emotion)) for item in rows], dtype=np.int64)
    missing = sorted(set(labels) - {labels[k] for k in set(y.tolist())})
    if not rows or missing:
        raise ValueError(f"the reply-emotion reader needs rows of every emotion from sources {list(cfg.sources)}: "
                         f"{len(rows)} rows, none for {missing}")
    x = pooled_states(model, rows)
    mean, scale = x.mean(0), x.std(0) + 1e-6
    reg = LogisticRegression(C=cfg.c, max_iter=5000, class_weight="balanced" if cfg.class_balanced else None)
    reg.fit((x - mean) / scale, y)
    weight = reg.coef_ / scale  # (E, H): w·(x - m)/s + b = (w/s)·x + b - (w/s)·m
    bias = reg.intercept_ - weight @ mean
    model.set_reply_emotion(torch.tensor(weight, dtype=torch.float32), torch.tensor(bias, dtype=torch.float32))
    return ReplyFit(rows=len(rows), train_accuracy=float((reg.predict((x - mean) / scale) == y).mean()))
