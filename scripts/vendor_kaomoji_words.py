"""Emotion and intention words in English and Chinese from kaomoji-dataset's keywords (CC BY 4.0).

    pip download --no-deps kaomoji-dataset==1.0.6 -d /tmp/kd && unzip -o /tmp/kd/*.whl -d /tmp/kd/w
    python scripts/vendor_kaomoji_words.py --src /tmp/kd/w/kaomoji_dataset/data/kaomoji.jsonl.gz \
        --out data/licence_clean/kaomoji_words.jsonl

kaomoji-dataset gives each of its 82,109 emoticons an emotion facet (`emotion`: ["angry", "mad", ...]), an
intent facet (`intent`: ["goodbye", ...]) and keywords per language that mix the facets' words with others
(sparkle, weapon, ...). A keyword becomes a training text when it is common (at least MIN_ROWS emoticons)
and pure: at least PURITY of its emoticons share one emotion facet, or one intent facet, that maps onto the
model's labels. So "气死", "火大", "furious" become anger, "拜拜", "bye" a farewell; "闪闪" (sparkle) and
"哈哈" under both happy and excited faces are kept only where one label dominates.
Each row: the keyword as a one-turn message, the emotion a reply sticker shows (the word's own: a reply
mirrors an explicit feeling), its own intention and the reply's (training.data.intentions.reply_intention).
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from training.data.intentions import reply_intention  # noqa: E402

EMOTION_FACETS = {"happy": "happiness", "excited": "happiness", "angry": "anger", "dissatisfied": "anger",
                  "surprised": "surprise", "sad": "sadness", "crying": "sadness", "hurt": "sadness",
                  "scared": "fear", "panic": "fear", "love": "like", "disgusted": "disgust"}
INTENT_FACETS = {"greeting": "greeting", "goodbye": "farewell", "thanks": "thanks", "apology": "apology",
                 "cheer up": "comfort", "celebrate": "congratulations", "kiss": "affection", "hug": "affection",
                 "tease": "tease", "refuse": "refusal", "question": "question"}
# The intent facet "greeting" lumps hello, goodbye and thanks together; these words say which one they are.
INTENT_WORDS = {"farewell": ("bye", "goodbye", "farewell", "see you", "拜拜", "再见", "告别", "撤了", "溜了"),
                "thanks": ("thanks", "thank you", "appreciate", "grateful", "多谢", "感恩", "感谢", "谢谢")}
SUBJECT_SHARE = 0.95  # a word found (almost) only on emoticons with a subject (food, weapon, magic) names the
# subject, not a feeling: "coffee" or "刀" on happy or angry faces says nothing about the writer
MIN_ROWS = 15
PURITY = 0.9
LANGS = ("en", "zh")


def words(src: Path) -> list[dict]:
    emotion_of: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    intent_of: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    with_subject: Counter[tuple[str, str]] = Counter()
    with gzip.open(src, "rt", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            emotion = EMOTION_FACETS.get((row.get("emotion") or ["-"])[0], "-")
            intent = INTENT_FACETS.get((row.get("intent") or ["-"])[0], "-")
            for lang in LANGS:
                for word in dict.fromkeys(row.get("keywords", {}).get(lang, [])):
                    word = " ".join(word.split())
                    if word:
                        emotion_of[(lang, word)][emotion] += 1
                        intent_of[(lang, word)][intent] += 1
                        with_subject[(lang, word)] += bool(row.get("subject"))
    out = []
    for (lang, word), emotions in sorted(emotion_of.items()):
        total = sum(emotions.values())
        if total < MIN_ROWS or (lang == "zh" and word.isascii()):  # "hi", "sorry", "emo" in the zh lists
            continue
        if with_subject[(lang, word)] / total >= SUBJECT_SHARE:
            continue
        emotion, e_count = emotions.most_common(1)[0]
        intent, i_count = intent_of[(lang, word)].most_common(1)[0]
        emotion_ok = emotion != "-" and e_count / total >= PURITY
        intent_ok = intent != "-" and i_count / total >= PURITY
        if not (emotion_ok or intent_ok):
            continue
        feeling = emotion if emotion_ok else "none"
        own = intent if intent_ok else "inform"
        own = next((name for name, said in INTENT_WORDS.items() if word in said), own)
        out.append({"source": "kaomoji", "lang": lang, "context": [], "text": word, "emotion": feeling,
                    "intention": own, "reply_intention": reply_intention(own, feeling)})
    for i, row in enumerate(out):
        row["id"] = f"kaomoji-{i:04d}"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, required=True, help="kaomoji_dataset/data/kaomoji.jsonl.gz")
    parser.add_argument("--out", type=Path, default=Path("data/licence_clean/kaomoji_words.jsonl"))
    args = parser.parse_args()
    rows = words(args.src)
    args.out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    counts = Counter((r["lang"], r["emotion"], r["reply_intention"]) for r in rows)
    print(f"{len(rows)} words -> {args.out}", file=sys.stderr)
    for key, n in sorted(counts.items()):
        print(key, n, file=sys.stderr)


if __name__ == "__main__":
    main()
