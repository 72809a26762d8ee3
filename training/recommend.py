"""The `recommend` command: the best stickers of the whole catalogue (or some packs) for a dialogue.

`python -m training recommend --catalog DIR [--top-k 5] [--model text-match|CHECKPOINT] [--index DIR]
[--packs noto,...] TEXT ...` The TEXTs are the dialogue's turns, oldest first, from alternating speakers;
the last one is from the other person and the sticker answers it.

A checkpoint recommends the way the service does: encode the dialogue, retrieve `--candidates` stickers
from a sticker index (`--index`, or one built for this call from the catalogue), rerank them with
`eigml.rerank.rerank`, best first with ties by index row. A baseline scores every sticker of the catalogue.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from eigml.dialogue import Dialogue, Turn
from eigml.paths import Paths
from eigml.selection import DIVERSITY
from training.benchmarks.baselines import dialogue_key, order_by_scores
from training.benchmarks.rank import BASELINES, CandidateScorer, RankError, load_ranker

if TYPE_CHECKING:
    from eigml.catalog import Catalog
    from eigml.model.eigml import EIGML
    from index.search import StickerIndex


@dataclass(frozen=True)
class Hit:
    rank: int
    sticker_id: str
    score: float


def build_dialogue(texts: Sequence[str], lang: str = "en") -> Dialogue:
    """Turns alternate between A and B, ending with B (the other person); A sends the sticker."""
    n = len(texts)
    turns = tuple(Turn(speaker="B" if (n - 1 - i) % 2 == 0 else "A", text=t) for i, t in enumerate(texts))
    return Dialogue(turns=turns, responder="A", lang=lang)


def recommend(scorer: CandidateScorer, dialogue: Dialogue, sticker_ids: Sequence[str], top_k: int,
              seed: int = 0) -> list[Hit]:
    """A baseline's top_k of `sticker_ids` by score, best first (ties in a seeded order)."""
    scores = scorer.score_candidates([dialogue], [list(sticker_ids)])[0]
    by_id = dict(zip(sticker_ids, scores, strict=True))
    ranking = order_by_scores(list(sticker_ids), scores, dialogue_key(dialogue), seed)
    return [Hit(rank=i + 1, sticker_id=s, score=by_id[s]) for i, s in enumerate(ranking[:top_k])]


def recommend_from_index(model: EIGML, index: StickerIndex, dialogue: Dialogue, top_k: int, *,
                         packs: Collection[str] | None = None, candidates: int = 100,
                         diversity: float = DIVERSITY, one_per_emoji: bool = True, agreement: bool = True) -> list[Hit]:
    """The service's path for one dialogue: retrieve `candidates` from `index` by the visual vector and (for a
    model with an agreement term) as many by emotion/intention agreement, rerank, and pick top_k in the
    served order (`eigml.rerank.pick_hits`: covering the dialogue's likely emotions and acts, one sticker per
    emoji). `agreement=False` leaves out the second set (for comparison only)."""
    import numpy as np
    import torch

    from eigml.rerank import (
        agreement_candidates,
        agreement_retrieval,
        pick_hits,
        rerank,
        sticker_intention_probs,
    )
    from eigml.selection import emoji_family

    with torch.inference_mode():
        queries = model.eval().encode_dialogues([dialogue])
    _, found = index.search(queries.query.numpy(), candidates, packs=packs)
    rows = found[0][found[0] >= 0]
    stickers = index.encodings()
    intentions = sticker_intention_probs(model, stickers) if agreement_retrieval(model) else None
    if intentions is not None and agreement:  # the service's second candidate set (service.recommender._retrieve)
        allowed = None if packs is None else np.flatnonzero(np.isin(
            np.array([index.sticker(r).pack for r in range(len(index))]), list(packs))).astype(np.int64)
        more = agreement_candidates(model, queries, stickers.emotion_probs, intentions, [allowed], candidates)[0]
        rows = np.concatenate([rows, more[~np.isin(more, rows)]])
    scores = rerank(model, queries, stickers, [rows])[0]
    families = np.array([emoji_family(index.sticker(r).emoji) for r in range(len(index))], dtype=object)
    order = pick_hits(rows, scores, stickers.emotion_probs, queries.emotion_probs[0], families, top_k,
                      diversity=diversity, one_per_emoji=one_per_emoji, emotion_labels=model.emotion_labels,
                      # the acts as the service covers them (with a distribution-SAMM model, service.recommender)
                      sticker_intention_probs=intentions,
                      query_intention=queries.intention_probs[0], intention_labels=model.intention_labels)
    return [Hit(rank=i + 1, sticker_id=index.ids[int(rows[j])], score=float(scores[j]))
            for i, j in enumerate(order)]


def load_model_and_index(checkpoint: Path, catalog: Catalog, index_root: Path | None, cache_dir: Path,
                         scratch: Path) -> tuple[EIGML, StickerIndex]:
    """The checkpoint and the index to retrieve from: `index_root`'s current version, or one built into
    `scratch` from the whole catalogue (sticker features come from the shared feature cache)."""
    from eigml.checkpoint import load_checkpoint
    from index.build import build_index
    from index.search import load_index

    model = load_checkpoint(checkpoint, models_dir=cache_dir / "models")
    if index_root is None:
        index_root = scratch / "index"
        build_index(model, catalog, index_root, feature_cache=cache_dir / "features", device="cpu", progress=False)
    index = load_index(index_root)
    if index.model_version != model.version:
        raise RankError(f"index {index.version} was built with model {index.model_version}, "
                        f"but {checkpoint} is model {model.version}")
    return model, index


def format_hits(hits: Sequence[Hit], catalog: Catalog) -> str:
    """A plain-text table: rank, sticker id, emoji, English name, score, image path."""
    rows = [("rank", "sticker", "emoji", "name", "score", "image")]
    for hit in hits:
        sticker = catalog[hit.sticker_id]
        rows.append((str(hit.rank), hit.sticker_id, sticker.emoji or "-", sticker.names.get("en", "-"),
                     f"{hit.score:.3f}", str(sticker.path)))
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)) + "  " + row[-1]
                     for row in rows)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("texts", nargs="+", metavar="TEXT",
                        help="dialogue turns, oldest first, alternating speakers; the last is the other person's")
    parser.add_argument("--catalog", type=Path, required=True, help="sticker catalogue folder")
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--model", default="text-match", help="a baseline name or a checkpoint path")
    parser.add_argument("--packs", default=None, help="comma-separated packs to recommend from (default: all)")
    parser.add_argument("--lang", default="en", help="language of the dialogue")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--prior-data", type=Path, default=None, help="training file, for --model prior")
    parser.add_argument("--index", type=Path, default=None,
                        help="sticker index root built from the checkpoint (default: build one for this call)")
    parser.add_argument("--candidates", type=int, default=100,
                        help="stickers retrieved from the index before the rerank, as the service does")
    parser.add_argument("--diversity", type=float, default=DIVERSITY,
                        help="weight on covering the dialogue's likely emotions in the top k (0: score order), "
                             "as the service's STICKERS_DIVERSITY")
    parser.add_argument("--all-per-emoji", action="store_true",
                        help="allow several stickers of one emoji (art styles, genders, skin tones) in the top k")


def run(args: argparse.Namespace) -> int:
    from eigml.catalog import load_catalog

    if args.top_k < 1:
        raise SystemExit("recommend: --top-k must be at least 1")
    if not 0.0 <= args.diversity <= 1.0:
        raise SystemExit("recommend: --diversity must be in [0, 1]")
    cache_dir = Paths.from_env().cache_dir
    dialogue = build_dialogue(args.texts, args.lang)
    try:
        catalog = load_catalog(args.catalog)
        packs = None
        if args.packs:
            packs = [p.strip() for p in args.packs.split(",") if p.strip()]
            known = set(catalog.packs)
            unknown = [p for p in packs if p not in known]
            if unknown:
                raise RankError(f"unknown pack(s) {', '.join(unknown)}; the catalogue has {', '.join(sorted(known))}")
        sticker_ids = catalog.ids(packs)
        if not sticker_ids:
            raise RankError(f"no stickers to recommend from in {args.catalog}")
        if args.model not in BASELINES and Path(args.model).expanduser().exists():
            with tempfile.TemporaryDirectory(prefix="recommend-") as scratch:
                model, index = load_model_and_index(Path(args.model).expanduser(), catalog, args.index, cache_dir,
                                                    Path(scratch))
                missing = sorted(set(packs or ()) - {index.sticker(r).pack for r in range(len(index))})
                if missing:
                    raise RankError(f"pack(s) {', '.join(missing)} are not in index {index.version}")
                hits = recommend_from_index(model, index, dialogue, args.top_k, packs=packs,
                                            candidates=args.candidates, diversity=args.diversity,
                                            one_per_emoji=not args.all_per_emoji)
        else:
            ranker = load_ranker(args.model, catalog, seed=args.seed, prior_data=args.prior_data, cache_dir=cache_dir)
            if not isinstance(ranker, CandidateScorer):
                raise RankError(f"model {args.model} cannot score arbitrary candidate lists")
            hits = recommend(ranker, dialogue, sticker_ids, args.top_k, args.seed)
    except (RankError, FileNotFoundError) as e:
        raise SystemExit(f"recommend: {e}") from None
    print(format_hits(hits, catalog), file=sys.stdout)
    return 0
