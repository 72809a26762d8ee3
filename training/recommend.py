"""The `recommend` command: the best stickers of the whole catalogue (or some packs) for a dialogue.

`python -m training recommend --catalog DIR [--top-k 5] [--model text-match] [--packs noto,...] TEXT ...`
The TEXTs are the dialogue's turns, oldest first, from alternating speakers; the last one is from the
other person and the sticker answers it. Any ranker that can score arbitrary candidate lists works.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from eigml.dialogue import Dialogue, Turn
from eigml.paths import Paths
from training.baselines import dialogue_key, order_by_scores
from training.rank import CandidateScorer, RankError, load_ranker

if TYPE_CHECKING:
    from eigml.catalog import Catalog


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
    """The top_k stickers by score, best first (ties in a seeded order)."""
    scores = scorer.score([dialogue], [list(sticker_ids)])[0]
    by_id = dict(zip(sticker_ids, scores, strict=True))
    ranking = order_by_scores(list(sticker_ids), scores, dialogue_key(dialogue), seed)
    return [Hit(rank=i + 1, sticker_id=s, score=by_id[s]) for i, s in enumerate(ranking[:top_k])]


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


def run(args: argparse.Namespace) -> int:
    from eigml.catalog import load_catalog

    if args.top_k < 1:
        raise SystemExit("recommend: --top-k must be at least 1")
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
        ranker = load_ranker(args.model, catalog, seed=args.seed, prior_data=args.prior_data,
                             cache_dir=Paths.from_env().cache_dir)
        if not isinstance(ranker, CandidateScorer):
            raise RankError(f"model {args.model} cannot score arbitrary candidate lists")
        hits = recommend(ranker, build_dialogue(args.texts, args.lang), sticker_ids, args.top_k, args.seed)
    except (RankError, FileNotFoundError) as e:
        raise SystemExit(f"recommend: {e}") from None
    print(format_hits(hits, catalog), file=sys.stdout)
    return 0
