"""How often served slates hold pictures of people that show no reaction (a hair style, a job, a costume).

    python bench/probe.py ... --details D.jsonl          # one line per dialogue, with its top-5 stickers
    python scripts/people_in_slates.py D.jsonl [E.jsonl ...] [--catalog ~/.cache/stickers/catalog/default]

"woman: blond hair" or "man in tuxedo" says nothing as a reply, yet a sticker side that reads feelings from
pictures can read a neutral face as sad and put it into every sad slate (docs/results.md, sixteenth session).
A sticker counts when its catalogue category is people-body and its English name is one of a person, a hair
style, a job or a costume (`NO_REACTION`, by hand); gestures and expressions ("person frowning", "woman
shrugging", "palms up together") are reactions and do not count. Per file: the slots and the slates holding
such a sticker, and the most frequent ones.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from eigml.catalog import load_catalog  # noqa: E402
from eigml.paths import Paths  # noqa: E402

NO_REACTION = re.compile(
    r"^(man|woman|person|girl|boy|baby|child|adult|older \w+)$|\b(hair|bald|beard|tuxedo|veil|worker|officer|guard|"
    r"teacher|student|judge|pilot|astronaut|cook|mechanic|scientist|technologist|singer|artist|farmer|"
    r"firefighter|detective|health|prince|princess|ninja|mage|fairy|vampire|merperson|elf|genie|zombie|"
    r"superhero|supervillain|pregnant|breast-feeding|santa|claus)\b")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("details", type=Path, nargs="+", help="bench/probe.py --details files")
    parser.add_argument("--catalog", type=Path, default=Paths.from_env().cache_dir / "catalog" / "default")
    args = parser.parse_args()
    catalog = load_catalog(args.catalog)
    for path in args.details:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

        def no_reaction(hit: dict) -> bool:
            sticker = catalog[hit["sticker_id"]]
            return (sticker.category == "people-body"
                    and bool(NO_REACTION.search(sticker.names.get("en", "").lower())))

        slots = [hit["name"] for row in rows for hit in row["stickers"] if no_reaction(hit)]
        slates = sum(any(no_reaction(hit) for hit in row["stickers"]) for row in rows)
        total = sum(len(row["stickers"]) for row in rows)
        print(f"{path}: {len(slots)} of {total} slots, in {slates} of {len(rows)} slates; "
              f"most often {Counter(slots).most_common(6)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
