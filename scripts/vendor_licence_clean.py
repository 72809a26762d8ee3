"""Build `data/licence_clean/` from ../shared/data/licence-clean: the texts the default model trains on.

Run once by a maintainer (the output is committed, so a fresh clone needs nothing else):

    python scripts/vendor_licence_clean.py --src ../shared/data/licence-clean --out data/licence_clean [--reselect]

Every source label is mapped onto the model's emotions (eigml.labels.EMOTIONS) by the tables below, and
every text gets an intention from the product vocabulary (eigml.labels.INTENTIONS): from the source's own
labels where it has them (CPED dialogue acts, GoEmotions gratitude/remorse/caring/...), else from the cue
phrases in `training.data.intentions` (the same rules label sticker tags). Rows are trimmed to a per-class
cap, so the classes are closer to balanced and the file stays small. A rebuild keeps the rows (and ids) of
the existing file and only recomputes their labels, so a label fix changes labels, not the sample or the dev
split; `--reselect` draws the rows anew (each row ranked by a hash of its content and the seed, ids from
content, so even then a label fix moves only the rows it touches). The benchmark files in
../shared/data/srs are never read.

Output: `texts.jsonl.gz` (one record per training text: id, source, lang, context turns, text, emotion,
the text's own intention and the intention of a reply to it), `emotag.csv` (EmoTag1200: emoji x 8 Plutchik scores), and NOTICE.md (licences, attribution).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import json
import shutil
from collections import Counter, defaultdict
from pathlib import Path

from eigml.labels import EMOTIONS, INTENTIONS
from training.data.intentions import intention_from_text, reply_intention

GOEMOTIONS = {  # the GoEmotions paper's Ekman grouping, with love/admiration/caring/desire as "like"
    "admiration": "like", "amusement": "happiness", "anger": "anger", "annoyance": "anger",
    "approval": "happiness", "caring": "like", "confusion": "surprise", "curiosity": "none",
    "desire": "like", "disappointment": "sadness", "disapproval": "anger", "disgust": "disgust",
    "embarrassment": "sadness", "excitement": "happiness", "fear": "fear", "gratitude": "happiness",
    "grief": "sadness", "joy": "happiness", "love": "like", "nervousness": "fear", "optimism": "happiness",
    "pride": "happiness", "realization": "surprise", "relief": "happiness", "remorse": "sadness",
    "sadness": "sadness", "surprise": "surprise", "neutral": "none",
}
GOEMOTIONS_INTENTION = {"gratitude": "thanks", "remorse": "apology", "caring": "comfort", "approval": "agreement",
                        "disapproval": "refusal", "curiosity": "question", "confusion": "question",
                        "love": "affection", "admiration": "congratulations", "pride": "congratulations"}
PLUTCHIK = {1: "anger", 2: None, 3: "disgust", 4: "fear", 5: "happiness", 6: "sadness", 7: "surprise",
            8: "like", 9: "none"}  # XED label ids; anticipation (2) has no counterpart and is dropped
ZH_MULTI = {"平静": "none", "开心": "happiness", "关心": "like", "生气": "anger", "惊讶": "surprise",
            "伤心": "sadness", "厌恶": "disgust", "疑问": "none"}
ZH_MULTI_INTENTION = {"关心": "comfort", "疑问": "question"}
CPED = {"neutral": "none", "happy": "happiness", "relaxed": "happiness", "grateful": "happiness",
        "positive-other": "happiness", "anger": "anger", "disgust": "disgust", "fear": "fear",
        "worried": "fear", "depress": "sadness", "sadness": "sadness", "astonished": "surprise",
        "negative-other": None}  # "negative-other" names no one feeling: dropped
CPED_ACT = {"greeting": "greeting", "conventional-closing": "farewell", "thanking": "thanks",
            "apology": "apology", "comfort": "comfort", "agreement": "agreement", "acknowledge": "agreement",
            "reject": "refusal", "disagreement": "refusal", "question": "question", "command": "request",
            "appreciation": "congratulations", "irony": "tease"}

CAPS = {  # rows kept per (source, emotion); Chinese sources are kept whole where small
    "goemotions": 650, "xed-en": 260, "xed-zh": 400, "zh-multi": 700, "cped-turn": 450, "cped-next": 550,
}


def record(source: str, lang: str, text: str, emotion: str, intention: str | None,
           context: list[dict[str, str]] | None = None, reply: str | None = None) -> dict:
    """One training text. `emotion` and `reply_intention` describe the sticker a person sends in reply:
    the reply mirrors the text's feeling, and its intention answers the text's (training.data.intentions);
    `reply` gives the reply's intention where the data has it (CPED's next turn)."""
    text = " ".join(text.split())
    own = intention or intention_from_text(text)
    return {"source": source, "lang": lang, "context": context or [], "text": text, "emotion": emotion,
            "intention": own, "reply_intention": reply or reply_intention(own, emotion)}


def goemotions(src: Path) -> list[dict]:
    names = (src / "goemotions" / "emotions.txt").read_text().split()
    rows = []
    for text, labels, _ in csv.reader((src / "goemotions" / "train.tsv").open(encoding="utf-8"), delimiter="\t"):
        ids = [int(x) for x in labels.split(",")]
        if len(ids) != 1:  # multi-label rows are ambiguous as a single sticker target
            continue
        label = names[ids[0]]
        reply = "tease" if label == "amusement" else None  # a joke is answered by laughing along
        rows.append(record("goemotions", "en", text.replace("[NAME]", "Sam"), GOEMOTIONS[label],
                           GOEMOTIONS_INTENTION.get(label), reply=reply))
    return rows


def _xed(path: Path, source: str, lang: str, text_first: bool = True) -> list[dict]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) != 2:
            continue
        text, labels = parts if text_first else parts[::-1]
        ids = [int(x) for x in labels.replace(" ", "").split(",") if x.isdigit()]
        if len(ids) == 1 and PLUTCHIK.get(ids[0]):
            rows.append(record(source, lang, text, PLUTCHIK[ids[0]], None))
    return rows


def xed(src: Path) -> list[dict]:
    rows = _xed(src / "xed" / "en-annotated.tsv", "xed-en", "en")
    rows += _xed(src / "xed" / "neu_en.txt", "xed-en", "en", text_first=False)
    rows += _xed(src / "xed" / "cn-projections.tsv", "xed-zh", "zh")  # simplified script only
    return rows


def zh_multi(src: Path) -> list[dict]:
    path = src / "zh_multi_emotion" / "Simplified_Chinese_Multi-Emotion_Dialogue_Dataset.csv"
    return [record("zh-multi", "zh", row["text"], ZH_MULTI[row["label"]], ZH_MULTI_INTENTION.get(row["label"]))
            for row in csv.DictReader(path.open(encoding="utf-8")) if row["label"] in ZH_MULTI]


def cped(src: Path, context_turns: int = 3) -> list[dict]:
    """Two kinds of item per dialogue: a turn labelled with its own feeling ("cped-turn"), and the turns so
    far labelled with the feeling of the next speaker's reply ("cped-next", what a sticker reply answers)."""
    dialogues: dict[str, list[dict]] = defaultdict(list)
    for row in csv.DictReader((src / "cped" / "valid_split.csv").open(encoding="utf-8-sig")):
        dialogues[row["Dialogue_ID"]].append(row)
    rows = []
    for turns in dialogues.values():
        letters: dict[str, str] = {}
        spoken = [{"speaker": letters.setdefault(t["Speaker"], "AB"[len(letters) % 2]), "text": t["Utterance"]}
                  for t in turns]
        for i, turn in enumerate(turns):
            emotion = CPED.get(turn["Emotion"])
            if emotion is None:
                continue
            intention = CPED_ACT.get(turn["DA"])
            context = spoken[max(0, i - context_turns):i]
            rows.append(record("cped-turn", "zh", turn["Utterance"], emotion, intention, context))
            if i > 0 and turns[i - 1]["Speaker"] != turn["Speaker"]:
                previous = spoken[max(0, i - 1 - context_turns):i - 1]
                rows.append(record("cped-next", "zh", spoken[i - 1]["text"], emotion,
                                   CPED_ACT.get(turns[i - 1]["DA"]), previous, reply=intention or "inform"))
    return rows


# Reply intentions that the capped rows would leave with a few dozen examples (a sticker answering a
# greeting, a goodbye, thanks, an apology, a request, a refusal, a joke): rows that carry one are kept
# beyond their emotion's cap, up to RARE_CAP per source and intention.
COMMON_INTENTIONS = frozenset({"inform", "comfort", "agreement", "question", "congratulations"})
RARE_CAP = 400


def content_key(row: dict) -> str:
    """A row's identity: its source, context and text, not its labels (so a label fix keeps the row's id)."""
    turns = "\n".join(f"{t['speaker']}: {t['text']}" for t in row["context"])
    return hashlib.sha1(f"{row['source']}\n{turns}\n{row['text']}".encode()).hexdigest()


def trim(rows: list[dict], seed: int) -> list[dict]:
    """Cap each (source, emotion) group, then top up rare reply intentions; ids from content.

    Stable under relabelling: every row has a rank fixed by its content and the seed (not by the order or
    the labels of other rows), and each group keeps its lowest-ranked rows. A label fix that moves some rows
    between groups changes only those groups' picks, and every other row keeps its place, id and split.
    Rows that repeat the same content and labels are kept once.
    """
    unique: dict[tuple, dict] = {}
    for row in rows:
        if row["text"] and len(row["text"]) <= 300:
            row["_key"] = content_key(row)
            unique.setdefault((row["_key"], row["emotion"], row["intention"], row["reply_intention"]), row)

    def rank(row: dict) -> str:
        return hashlib.sha1(f"{seed}:{row['_key']}:{row['emotion']}".encode()).hexdigest()

    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    rare: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for row in unique.values():
        groups[(row["source"], row["emotion"])].append(row)
        if row["reply_intention"] not in COMMON_INTENTIONS:
            rare[(row["source"], row["reply_intention"])].append(row)
    kept = {id(row): row for (source, _), group in groups.items() for row in sorted(group, key=rank)[: CAPS[source]]}
    for group in rare.values():
        room = RARE_CAP - sum(id(row) in kept for row in group)
        extra = [row for row in sorted(group, key=rank) if id(row) not in kept][: max(0, room)]
        kept.update((id(row), row) for row in extra)
    out, seen = [], Counter()
    for row in sorted(kept.values(), key=lambda r: (r["_key"], r["emotion"], r["intention"], r["reply_intention"])):
        key = row.pop("_key")
        seen[key] += 1  # the same text with different labels in one source (rare) keeps both, numbered
        row["id"] = f"{row['source']}-{key[:12]}" + (f"-{seen[key]}" if seen[key] > 1 else "")
        out.append(row)
    return out


def keep_selection(rows: list[dict], kept_file: Path) -> list[dict]:
    """The rows of an earlier build, relabelled: each kept row is matched by content (source, context, text)
    and takes the labels the tables give it now, keeping its id (so its dev split) and its place. Nothing
    is resampled, so a label fix changes labels only; rows whose content left the sources are dropped."""
    fresh: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        fresh[content_key(row)].append(row)
    for group in fresh.values():
        group.sort(key=lambda r: (r["emotion"], r["intention"], r["reply_intention"]))
    with gzip.open(kept_file, "rt", encoding="utf-8") as f:
        kept = [json.loads(line) for line in f if line.strip()]
    out = []
    for old in kept:
        group = fresh.get(content_key(old))
        if group:
            # the same content with the same emotion first (a source that labels one text twice)
            match = next((r for r in group if r["emotion"] == old["emotion"]), group[0])
            group.remove(match)
            out.append({**match, "id": old["id"]})
    return out


NOTICE = """# Licence-clean training data vendored for the default model

`texts.jsonl.gz` holds trimmed rows of the sets below (labels mapped onto the model's emotions and
intentions by `scripts/vendor_licence_clean.py`, which rebuilds it); `emotag.csv` is EmoTag1200 as published.
Each keeps its licence; attribution as the licences ask:

| source | what we kept | licence | attribution |
|---|---|---|---|
| GoEmotions (Demszky et al., ACL 2020), github.com/google-research/google-research `goemotions/data` | single-label rows of train.tsv (Reddit comments, [NAME] replaced) | CC BY 4.0 | © Google Research |
| XED (Öhman et al., COLING 2020), github.com/Helsinki-NLP/XED @76666d25 | single-label rows of en-annotated, neu_en, cn-projections (subtitles) | CC BY 4.0 | © University of Helsinki, Language Technology |
| Simplified Chinese Multi-Emotion Dialogue Dataset, github.com/zzhdbw/DLNU-NLP-2025 @49adfb7f | all rows | MIT (original) / Apache-2.0 (this copy), as stated on the dataset cards | the dataset's original authors |
| CPED (Chen et al., arXiv:2205.14727), github.com/scutcyr/CPED @1e4b81c2, valid split | utterances with emotion and dialogue act, with up to 3 context turns | Apache-2.0 | © SCUT, Chen Yirong et al. |
| EmoTag1200 (Shoeb & de Melo, EMNLP 2020), github.com/abushoeb/EmoTag @37d27757 | data/EmoTag1200-scores.csv | MIT, © 2019 Abu Shoeb | |
| kaomoji-dataset 1.0.6 (PyPI), its emoticons' `emotion` / `intent` facets and `keywords` (en, zh) | 226 single words whose emoticons agree on one emotion or intent (`kaomoji_words.jsonl`, built by `scripts/vendor_kaomoji_words.py`) | CC BY 4.0 | kaomoji-dataset and the sources it merges: see `kaomoji-dataset-NOTICE.txt` (its NOTICE, copied whole) |
| Authored reply dialogues (`authored_replies.jsonl`, not built by the script) | 166 short dialogues (83 en, 83 zh) written by this project, each labelled with what the *listener* feels and does in reply ("I spilled coffee on your laptop" -> anger): the appraisal no published set labels. Kept apart from the probe set (a test checks that no dialogue overlaps a probe turn) | CC0 1.0 | none needed |

Caveats from the sources: the text of XED and CPED is third-party subtitle / TV-script text (the grants
cover the annotations); XED's Chinese labels are projections from English, not native annotation.
CPED's valid split is also the source of the benchmark file cped_valid.jsonl: a model trained on this
data is never scored on that file.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, default=Path("../shared/data/licence-clean"))
    parser.add_argument("--out", type=Path, default=Path("data/licence_clean"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reselect", action="store_true",
                        help="draw the rows anew (trim) instead of relabelling the rows of OUT/texts.jsonl.gz")
    args = parser.parse_args()
    rows = goemotions(args.src) + xed(args.src) + zh_multi(args.src) + cped(args.src)
    kept_file = args.out / "texts.jsonl.gz"
    rows = trim(rows, args.seed) if args.reselect or not kept_file.is_file() else keep_selection(rows, kept_file)
    assert all(r["emotion"] in EMOTIONS and {r["intention"], r["reply_intention"]} <= set(INTENTIONS) for r in rows)
    args.out.mkdir(parents=True, exist_ok=True)
    with gzip.open(args.out / "texts.jsonl.gz", "wt", encoding="utf-8", compresslevel=9) as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
    shutil.copyfile(args.src / "emoji_en" / "EmoTag1200-scores.csv", args.out / "emotag.csv")
    (args.out / "NOTICE.md").write_text(NOTICE)
    print(f"{len(rows)} rows")
    for key in ("source", "lang", "emotion", "intention", "reply_intention"):
        print(key, dict(Counter(r[key] for r in rows).most_common()))


if __name__ == "__main__":
    main()
