"""The one rerank step: score each dialogue's retrieved candidates with the full model (IEGA, SAMM).

The service, the command-line recommender, the checkpoint ranker used by `rank`/training, and the bench
scripts all call `rerank`, so a ranking is the same whichever of them produced it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from eigml.intentions import MIRRORED_ACTS
from eigml.model.eigml import EIGML
from eigml.model.interface import QueryEncoding, StickerEncoding
from eigml.selection import PERFORMS_MIN, act_aspects, diverse_first, feeling_aspects, slot_act, with_act_slot


@torch.inference_mode()
def rerank(model: EIGML, queries: QueryEncoding, stickers: StickerEncoding,
           candidate_rows: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Final scores in (0, 1), one float32 array per query aligned with its `candidate_rows` (rows of
    `stickers`), from one `EIGML.score` call; only the rows some query uses are read.

    Queries may have different numbers of candidates: shorter ones are padded with a real row and the
    padding's scores dropped (scores of one candidate never depend on the others).
    """
    rows = [np.asarray(r, dtype=np.int64) for r in candidate_rows]
    width = max((len(r) for r in rows), default=0)
    if width == 0:
        return [np.empty(0, dtype=np.float32) for _ in rows]
    candidates = torch.zeros(len(rows), width, dtype=torch.long)
    if stickers.patches.dtype == torch.float32:
        # the model reads only the candidates' rows of a float32 bank: index it directly, copy nothing
        subset = stickers
        for i, r in enumerate(rows):
            candidates[i, : len(r)] = torch.from_numpy(r)
            candidates[i, len(r):] = int(r[0]) if len(r) else 0
    else:
        # a bank stored narrower (fp16 patches) is widened by `score`: widen only the rows in use
        used, inverse = np.unique(np.concatenate(rows), return_inverse=True)
        subset = StickerEncoding(*(t[torch.from_numpy(used)] for t in stickers))
        start = 0
        for i, r in enumerate(rows):
            candidates[i, : len(r)] = torch.from_numpy(inverse[start : start + len(r)])
            start += len(r)
    scores = model.score(queries, subset, candidates).float().numpy()
    return [scores[i, : len(r)] for i, r in enumerate(rows)]


def best_first(rows: np.ndarray, scores: np.ndarray, top_k: int | None = None) -> np.ndarray:
    """Positions into `rows`/`scores` of the `top_k` best (all when None): highest score first, ties by row."""
    order = np.lexsort((rows, -scores))
    return order if top_k is None else order[:top_k]


def pick_hits(rows: np.ndarray, scores: np.ndarray, sticker_emotion_probs: torch.Tensor,
              query_emotion: torch.Tensor, row_families: np.ndarray, top_k: int, *, diversity: float,
              one_per_emoji: bool, emotion_labels: Sequence[str],
              sticker_intention_probs: torch.Tensor | None = None, query_intention: torch.Tensor | None = None,
              intention_labels: Sequence[str] = ()) -> np.ndarray:
    """The served order of one dialogue's reranked candidates (positions into `rows`): `diverse_first` with
    every row's emotion distribution (`sticker_emotion_probs`, (N, E)) and emoji family (`row_families`,
    (N,)). The aspects covered are the dialogue's feelings (`feeling_aspects`: "none" left out) and, given
    the intention distributions ((N, A) and (A,)), the acts its reply may perform (`act_aspects`: a likely
    farewell asks for a 👋 as a feeling asks for a face), each aspect weighted by its probability. When the
    reply's likeliest act is a formula returned in kind (greeting, farewell, affection) with probability
    at least `eigml.selection.ACT_SLOT_MIN`, one sticker that performs it takes the second place
    (`with_act_slot`). The service and the command-line recommender both answer with this."""
    if diversity <= 0 and not one_per_emoji:
        return best_first(rows, scores, top_k)
    index = torch.from_numpy(np.asarray(rows, dtype=np.int64))
    probs = sticker_emotion_probs[index].detach().float().numpy()
    families = list(row_families[rows]) if one_per_emoji else None
    aspects = feeling_aspects(query_emotion.detach().float().numpy(), emotion_labels)
    if sticker_intention_probs is not None and query_intention is not None and len(intention_labels):
        acts = act_aspects(query_intention.detach().float().numpy(), intention_labels)
        probs = np.concatenate([probs, sticker_intention_probs[index].detach().float().numpy()], axis=1)
        aspects = np.concatenate([aspects, acts])
        aspects = aspects / aspects.sum() if aspects.sum() > 0 else aspects
    order = diverse_first(rows, scores, probs, aspects, top_k, diversity=diversity, families=families)
    act = (slot_act(query_intention.detach().float().numpy(), intention_labels, MIRRORED_ACTS)
           if sticker_intention_probs is not None and query_intention is not None and len(intention_labels) else None)
    if act is not None:
        performs = sticker_intention_probs[index, act].detach().float().numpy()  # type: ignore[index]
        order = with_act_slot(order, scores, performs, families, top_k=top_k)
    return order


@torch.inference_mode()
def sticker_intention_probs(model: EIGML, stickers: StickerEncoding) -> torch.Tensor:
    """(N, A) intention distribution of every sticker (A = 0 without intention labels)."""
    return model.sticker_intention_logits(stickers.intention).softmax(-1)


def agreement_retrieval(model: EIGML) -> bool:
    """Whether the model's final score has a linear emotion/intention agreement term worth retrieving by
    (SAMM with `similarity: distribution`)."""
    return model.samm is not None and model.config.samm.similarity == "distribution"


ACT_CANDIDATES = 10  # rows added for a reply that returns a formula in kind (agreement_candidates)


@torch.inference_mode()
def agreement_candidates(model: EIGML, queries: QueryEncoding, emotion_probs: torch.Tensor,
                         intention_probs: torch.Tensor, allowed: Sequence[np.ndarray | None],
                         top_m: int, act_m: int = ACT_CANDIDATES) -> list[np.ndarray]:
    """Per query, the `top_m` rows (among `allowed`, None: all) whose emotion and intention agree most
    with the dialogue's: SAMM's s_EI, exact over every row ((N, E + A) multiply-adds per query).

    Retrieval by the visual vector alone can miss the stickers that show the dialogue's feeling; the
    union of both candidate sets is what the full model reranks. A query whose reply returns a formula in
    kind (`eigml.selection.slot_act`) also gets up to `act_m` rows that perform it (probability at least
    `PERFORMS_MIN`; 👋 for a goodbye said in a cheerful mood agrees little overall: the happy faces fill the
    `top_m`), after the others.
    """
    assert model.samm is not None
    alpha = float(model.samm.alpha)
    scores = queries.emotion_probs @ emotion_probs.T
    if intention_probs.shape[-1]:
        scores = alpha * scores + (1 - alpha) * (queries.intention_probs @ intention_probs.T)
    out = []
    for i, rows in enumerate(allowed):
        row_scores = scores[i] if rows is None else scores[i, torch.from_numpy(rows)]
        k = min(top_m, row_scores.numel())
        top = torch.topk(row_scores, k).indices.numpy()
        found = top.astype(np.int64) if rows is None else rows[top]
        act = slot_act(queries.intention_probs[i].float().numpy(), model.intention_labels, MIRRORED_ACTS)
        if act is not None and act_m > 0:
            performs = intention_probs[:, act] if rows is None else intention_probs[torch.from_numpy(rows), act]
            top_p, top_rows = torch.topk(performs, min(act_m, performs.numel()))
            best = top_rows[top_p >= PERFORMS_MIN].numpy().astype(np.int64)  # only stickers that perform it
            more = best if rows is None else rows[best]
            found = np.concatenate([found, more[~np.isin(more, found)]])
        out.append(found)
    return out
