"""The served order of a dialogue's reranked stickers: cover its likely emotions, one sticker per emoji.

Numpy only, so settings and clients can import it without the model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# The served order's weight on covering the dialogue's likely emotions (xQuAD's lambda; 0: the scores' order).
# Chosen a priori (the middle of xQuAD's range), not tuned on the probe set.
DIVERSITY = 0.5
NO_FEELING = "none"  # the emotion label that shows no feeling (eigml.labels.EMOTIONS[0])

VARIATION_SELECTOR = "\ufe0f"
SKIN_TONES = frozenset(chr(c) for c in range(0x1F3FB, 0x1F400))
GENDER_SIGNS = ("\u200d\u2640", "\u200d\u2642")  # ZWJ + female / male sign, once U+FE0F is dropped


def emoji_family(emoji: str | None) -> str | None:
    """The emoji with no U+FE0F, skin tone or trailing man/woman sign: 👯‍♀️, 👯‍♂️ and 👯 are one family,
    so are 👋🏽 and 👋. None for a sticker with no emoji."""
    if not emoji:
        return None
    key = "".join(c for c in emoji if c != VARIATION_SELECTOR and c not in SKIN_TONES)
    for sign in GENDER_SIGNS:
        if key.endswith(sign) and len(key) > len(sign):
            key = key[: -len(sign)]
    return key


def feeling_aspects(query_emotion: np.ndarray, labels: Sequence[str]) -> np.ndarray:
    """The aspects a slate covers: the dialogue's emotion distribution without "none", renormalised.

    "none" is the absence of a feeling, not a feeling a sticker shows. Left in, a dialogue the model reads as
    "none" (p 0.3-0.5 for most misread ones) spends its coverage on neutral stickers (💭 😴 😐), and the
    same few of them fill the slates of every such dialogue; without it, the slate covers the feelings the
    dialogue may still carry. All zeros when nothing but "none" has mass (the scores' order then decides)."""
    q = np.asarray(query_emotion, dtype=np.float64).copy()
    if NO_FEELING in labels:
        q[list(labels).index(NO_FEELING)] = 0.0
    total = q.sum()
    return q / total if total > 0 else q


# Reply intentions that are no act a sticker performs: "inform" (the absence of one, like "none" among
# feelings) and "question" (asked in words; ❓ 💭 in every slate read as a question was a fault, docs/results.md).
NO_ACTS = frozenset({"inform", "question"})


def act_aspects(query_intention: np.ndarray, labels: Sequence[str]) -> np.ndarray:
    """The acts a slate covers besides feelings: the reply-intention distribution over the acts a sticker
    performs (👋 farewell, 🙏 thanks, 🎉 congratulations...), NOT renormalised: a dialogue whose reply is
    likely a farewell (p 0.8) asks for a 👋 among its feelings, one read as "inform" asks for almost nothing."""
    q = np.asarray(query_intention, dtype=np.float64).copy()
    for k, name in enumerate(labels):
        if name in NO_ACTS:
            q[k] = 0.0
    return q


# A reply that returns a formula in kind (a goodbye for a goodbye, hello for hello) shows it. When the reply's
# likeliest act is such a formula with at least ACT_SLOT_MIN (the share the cue rule gives an act the latest
# turn says outright, eigml.intentions.CUE_WEIGHT), the slate holds one sticker that performs it (its own
# probability of the act at least PERFORMS_MIN: 👋 reads greeting ~0.35 / farewell ~0.3), second after the
# best feeling. Without this a goodbye said in a cheerful mood ("今天玩得好开心，下次再约呀，拜拜": happiness
# 0.83, farewell 0.56) got five happy faces: a face agrees with the feeling at ~0.8, while a wave, whose
# intention is split between hello and goodbye, can agree with the act at ~0.3 at most, so neither the score
# nor the act aspect of `diverse_first` brought it in (docs/results.md, thirteenth session).
ACT_SLOT_MIN = 0.5
PERFORMS_MIN = 0.25
ACT_SLOT_POSITION = 1


def slot_act(query_intention: np.ndarray, labels: Sequence[str], acts: Sequence[str],
             min_prob: float = ACT_SLOT_MIN) -> int | None:
    """Index (into `labels`) of the reply's likeliest act when it is one of `acts` with probability at least
    `min_prob`, else None."""
    q = np.asarray(query_intention, dtype=np.float64)
    if q.size == 0 or not len(labels):
        return None
    k = int(q.argmax())
    return k if labels[k] in acts and q[k] >= min_prob else None


def with_act_slot(picked: np.ndarray, scores: np.ndarray, performs: np.ndarray,
                  families: Sequence[str | None] | None = None, *, top_k: int | None = None,
                  min_performs: float = PERFORMS_MIN, position: int = ACT_SLOT_POSITION) -> np.ndarray:
    """`picked` (positions into the candidates) with the best-scoring candidate that performs the act
    (`performs`: each candidate's probability of it, (K,)) at `position`, the last pick dropped when the slate
    is full (`top_k`; None: always), unless a pick already performs it or no candidate does. A candidate of an
    emoji family already picked is passed over."""
    picked = np.asarray(picked, dtype=np.int64)
    performs = np.asarray(performs, dtype=np.float64)
    if len(picked) == 0 or (performs[picked] >= min_performs).any():
        return picked
    keep = picked if top_k is not None and len(picked) < top_k else picked[:-1]
    taken = {families[int(j)] for j in keep if families[int(j)] is not None} if families is not None else set()
    able = [int(j) for j in np.flatnonzero(performs >= min_performs)
            if j not in set(keep.tolist()) and (families is None or families[int(j)] not in taken)]
    if not able:
        return picked
    best = max(able, key=lambda j: (float(scores[j]), -j))
    kept = [int(j) for j in keep]
    kept.insert(min(position, len(kept)), int(best))
    return np.asarray(kept, dtype=np.int64)


def diverse_first(rows: np.ndarray, scores: np.ndarray, emotion_probs: np.ndarray, query_emotion: np.ndarray,
                  top_k: int, *, diversity: float, families: Sequence[str | None] | None = None) -> np.ndarray:
    """Positions into `rows`/`scores` of `top_k` picks that cover the dialogue's likely emotions.

    xQuAD (Santos et al., WWW 2010) with the emotions as the query's aspects: each pick maximises
    (1 - diversity)·score + diversity·Σ_e q(e)·p_s(e)·Π_{t picked}(1 - p_t(e)), where q is the dialogue's
    emotion distribution (E,) and p_s a candidate's (`emotion_probs`, (K, E) aligned with `rows`). When the
    model is sure of one emotion the picks show it; when it is torn between sadness and anger, both are shown
    instead of five near-copies of one. With `families` (one key per candidate, None for none), a family
    already picked is skipped while others are left (one 👯 of 👯 👯‍♀️ 👯‍♂️). diversity 0 and no families:
    exactly the scores' order (`eigml.rerank.best_first`). Ties go to the better position in that order.
    """
    order = np.lexsort((rows, -np.asarray(scores)))
    if top_k <= 0 or len(order) == 0:
        return order[:0]
    if diversity <= 0 and families is None:
        return order[:top_k]
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    probs = np.asarray(emotion_probs, dtype=np.float64)
    uncovered = np.asarray(query_emotion, dtype=np.float64).copy()
    free = np.ones(len(order), dtype=bool)
    picked: list[int] = []
    seen: set[str] = set()
    base = (1 - diversity) * np.asarray(scores, dtype=np.float64)
    for _ in range(min(top_k, len(order))):
        allowed = free.copy()
        if families is not None and seen:
            fresh = allowed & np.array([f is None or f not in seen for f in families])
            if fresh.any():
                allowed = fresh
        gain = base + diversity * (probs @ uncovered) if diversity > 0 else base.copy()
        gain[~allowed] = -np.inf
        best = np.flatnonzero(gain == gain.max())
        j = int(best[np.argmin(rank[best])])
        picked.append(j)
        free[j] = False
        uncovered *= 1 - probs[j]
        if families is not None and families[j] is not None:
            seen.add(families[j])  # type: ignore[arg-type]
    return np.asarray(picked, dtype=np.int64)
