"""How well a model reads rendered text stickers (issue 9): the words, through OCR, into the sticker's emotion.

  python scripts/measure_text_stickers.py --model CHECKPOINT --work /tmp/text-stickers [--font PATH] [--json F]

Renders the text pack (`training/text_pack.py`: 8 emotions x 6 English + 6 Chinese phrases x 2 looks) into a
catalogue of its own, indexes it twice with the given model, without OCR (picture only) and with OCR (the
words read by rapidocr are mixed into the sticker's emotion, `index.embed.with_text_feelings`), and reports
per language:

- read_right: the sticker's emotion distribution (as stored in the index, what the service ranks with) has the
  phrase's labelled emotion first;
- first_among_8: for each phrase, the 8 stickers of the same language, look and phrase slot (one per
  emotion) are ranked by agreement with that emotion, p_sticker(e): the labelled one is first. This is the
  "right emotion's sticker first" of the issue, with the emotion given (no dialogue to read);
- probe_r1: for every probe dialogue of the same language (probes/dialogues.jsonl), the same 8-sticker sets
  reranked by the full model (IEGA + SAMM, `eigml.rerank.rerank`): the sticker of the dialogue's expected
  emotion is first. This one also depends on how well the model reads the dialogue (issue 8);
- act_top5: for every probe dialogue of the language whose expected reply intention is an act that some
  phrase of the pack does (`PHRASE_ACTS`, labelled by hand: "谢谢你" thanks, "抱抱" comfort, "明天见" farewell),
  all the language's text stickers reranked by the full model: one whose phrase does that act is in the top
  5 (`act_dialogues` counts them). Words do acts through `index.embed.with_text_feelings`;
- ocr_exact: OCR text equals the drawn phrase (case, spaces and punctuation ignored).

read_right is also given over the phrases that appear nowhere in the default model's training texts
(`read_right_unseen`; the same normalisation; e.g. "哈哈哈" is a training word from kaomoji-dataset).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from eigml.catalog import load_catalog  # noqa: E402
from eigml.checkpoint import load_checkpoint  # noqa: E402
from eigml.dialogue import Dialogue, Turn  # noqa: E402
from eigml.labels import EMOTIONS  # noqa: E402
from eigml.model.interface import StickerEncoding  # noqa: E402
from eigml.paths import Paths  # noqa: E402
from eigml.rerank import rerank  # noqa: E402
from index.build import build_index  # noqa: E402
from index.store import read_version  # noqa: E402
from training.data.licence_clean import load_texts  # noqa: E402
from training.text_pack import build_text_pack, find_cjk_font, text_stickers  # noqa: E402

CACHE = Paths.from_env().cache_dir
REPO = Path(__file__).resolve().parents[1]
PROBES = REPO / "probes" / "dialogues.jsonl"


# What each phrase of the text pack does, by hand: the judge of act_top5, written apart from the index's
# cue rules (eigml.intentions), which read "no thanks" as thanks. Phrases that do no act are left out.
PHRASE_ACTS = {
    "OK": "agreement", "got it": "agreement", "noted": "agreement", "好的": "agreement", "收到": "agreement",
    "知道了": "agreement", "see you at 5": "farewell", "明天见": "farewell", "love you": "affection",
    "miss you": "affection", "I miss you": "affection", "爱你": "affection", "想你了": "affection",
    "thank u": "thanks", "谢谢你": "thanks", "hugs": "comfort", "抱抱": "comfort", "sorry...": "apology",
    "no thanks": "refusal", "走开！": "refusal", "help!": "request", "救命": "request",
}


def _norm(text: str) -> str:
    return re.sub(r"[\W_]+", "", text).lower()


def _index(model, catalog, root: Path, *, ocr: bool, work: Path):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    build_index(model, catalog, root, packs=["text"], ocr=ocr, progress=False,
                feature_cache=CACHE / "features", text_cache=work / "ocr-cache")
    return read_version(root), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--font", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    font = find_cjk_font(args.font)
    if font is None:
        sys.exit("no CJK font (apt-get install fonts-wqy-microhei, or --font)")
    catalog_dir = args.work / "catalog"
    if not (catalog_dir / "text" / "pack.json").exists():
        build_text_pack(catalog_dir / "text", font)
    catalog = load_catalog(catalog_dir)
    model = load_checkpoint(args.model, models_dir=CACHE / "models").eval()
    torch.set_num_threads(2)
    stickers = {f"text/{s.stem}": s for s in text_stickers()}
    dialogues = [json.loads(line) for line in PROBES.read_text(encoding="utf-8").splitlines() if line.strip()]

    trained = {_norm(r["text"]) for r in load_texts()}
    unseen = {sid for sid, s in stickers.items() if _norm(s.text) not in trained}
    summary: dict = {"model": model.version, "stickers": len(stickers),
                     "unseen_phrases": sorted({stickers[sid].text for sid in unseen})}
    for mode, ocr in (("picture", False), ("picture+words", True)):
        version, seconds = _index(model, catalog, args.work / f"index-{'ocr' if ocr else 'plain'}", ocr=ocr,
                                  work=args.work)
        ids = [r.id for r in version.stickers]
        row = {sid: i for i, sid in enumerate(ids)}
        a = version.arrays
        probs = a.emotion_probs
        encoding = StickerEncoding(*(torch.from_numpy(np.asarray(x, dtype=np.float32)) for x in a.fields()))
        sets: dict[tuple[str, str, int], dict[str, int]] = defaultdict(dict)  # (lang, look, slot) -> emotion -> row
        slot: dict[tuple[str, str, str], int] = defaultdict(int)
        for sid, s in stickers.items():
            key = (s.lang, s.style, s.emotion)
            sets[(s.lang, s.style, slot[key])][s.emotion] = row[sid]
            slot[key] += 1
        result: dict = {"index_seconds": round(seconds, 1)}
        for lang in ("en", "zh"):
            mine = [sid for sid, s in stickers.items() if s.lang == lang]
            right = {sid: EMOTIONS[int(np.argmax(probs[row[sid]]))] == stickers[sid].emotion for sid in mine}
            read_right = np.mean(list(right.values()))
            read_right_unseen = np.mean([right[sid] for sid in mine if sid in unseen])
            firsts = []
            for (set_lang, _, _), members in sets.items():
                if set_lang != lang:
                    continue
                rows = np.array([members[e] for e in EMOTIONS])
                for e_i in range(len(EMOTIONS)):
                    firsts.append(int(np.argmax(probs[rows, e_i])) == e_i)
            texts = {r.id: r.text for r in version.stickers}
            ocr_exact = (np.mean([_norm(texts[sid] or "") == _norm(stickers[sid].text) for sid in mine])
                         if ocr else None)
            mine_dialogues = [d for d in dialogues if d["lang"] == lang]
            queries = model.encode_dialogues([Dialogue(tuple(Turn(t["speaker"], t["text"]) for t in d["dialogue"]),
                                                       responder=d["responder"], lang=lang) for d in mine_dialogues])
            lang_sets = [np.array([members[e] for e in EMOTIONS]) for (sl, _, _), members in sets.items() if sl == lang]
            hits = []
            for rows in lang_sets:  # one 8-sticker set for every dialogue of the language
                for d, scores in zip(mine_dialogues, rerank(model, queries, encoding, [rows] * len(mine_dialogues)),
                                     strict=True):
                    hits.append(EMOTIONS[int(np.argmax(scores))] == d["emotion"])
            mine_rows = np.array([row[sid] for sid in mine])
            acts = {PHRASE_ACTS.get(stickers[sid].text) for sid in mine} - {None}
            act_dialogues = [k for k, d in enumerate(mine_dialogues) if d["intention"] in acts]
            act_hits = []
            all_scores = rerank(model, queries, encoding, [mine_rows] * len(mine_dialogues))
            for k in act_dialogues:
                top = [mine[j] for j in np.argsort(-all_scores[k], kind="stable")[:5]]
                act_hits.append(any(PHRASE_ACTS.get(stickers[sid].text) == mine_dialogues[k]["intention"]
                                    for sid in top))
            result[lang] = {"read_right": round(float(read_right), 3),
                            "act_top5": round(float(np.mean(act_hits)), 3) if act_hits else None,
                            "act_dialogues": len(act_hits),
                            "read_right_unseen": round(float(read_right_unseen), 3),
                            "unseen_stickers": sum(sid in unseen for sid in mine), "first_among_8": round(float(np.mean(firsts)), 3),
                            "probe_r1": round(float(np.mean(hits)), 3), "probe_dialogues": len(mine_dialogues),
                            "ocr_exact": None if ocr_exact is None else round(float(ocr_exact), 3)}
        summary[mode] = result
        print(mode, json.dumps(result), file=sys.stderr)
    print(json.dumps(summary, indent=1))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
