"""The probe set (probes/) is well formed, and bench/probe.py judges served stickers right, end to end."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from service_helpers import free_port

REPO = Path(__file__).resolve().parents[2]


def _load_probe_module() -> Any:
    spec = importlib.util.spec_from_file_location("bench_probe", REPO / "bench" / "probe.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_probe"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


probe = _load_probe_module()


# ---- the files -------------------------------------------------------------------------------------------
def test_probe_file_covers_both_languages_every_emotion_and_intention() -> None:
    probes = probe.load_probes(probe.PROBES)  # also refuses unknown labels and repeated ids
    by_lang = Counter(p.lang for p in probes)
    assert len(probes) >= 120 and by_lang["en"] >= 60 and by_lang["zh"] >= 60
    for lang in ("en", "zh"):
        mine = [p for p in probes if p.lang == lang]
        emotions = Counter(p.emotion for p in mine)
        assert all(emotions[e] >= 8 for e in probe.EMOTIONS), (lang, emotions)
        turns = Counter(min(len(p.dialogue), 2) for p in mine)
        assert turns[1] >= 10 and turns[2] >= 10, (lang, turns)  # single- and multi-turn
        assert all(len(p.dialogue) <= 5 for p in mine)
        assert all({s for s, _ in p.dialogue} <= {"A", "B"} and p.dialogue[-1][0] != p.responder for p in mine)
    assert {p.intention for p in probes} == set(probe.INTENTIONS)
    assert all(p.id.startswith(f"{p.lang}-") for p in probes)
    zh = [p for p in probes if p.lang == "zh"]
    assert all(any("\u4e00" <= c <= "\u9fff" for _, t in p.dialogue for c in t) for p in zh)


def test_vocabularies_are_the_core_ones() -> None:
    from eigml import labels

    assert probe.EMOTIONS == labels.EMOTIONS
    assert probe.INTENTIONS == getattr(labels, "INTENTIONS", probe.INTENTIONS)


@pytest.mark.parametrize(("line", "message"), [
    ('{"id": "x-1", "lang": "en", "dialogue": [{"speaker": "A", "text": "hi"}], "responder": "B", '
     '"emotion": "joy", "intention": "greeting"}', "emotion 'joy'"),
    ('{"id": "x-1", "lang": "en", "dialogue": [{"speaker": "A", "text": "hi"}], "responder": "B", '
     '"emotion": "none", "intention": "hello"}', "intention 'hello'"),
    ('{"id": "x-1", "lang": "fr", "dialogue": [{"speaker": "A", "text": "hi"}], "responder": "B", '
     '"emotion": "none", "intention": "greeting"}', "lang 'fr'"),
    ('{"id": "x-1", "lang": "en", "dialogue": [], "responder": "B", "emotion": "none", "intention": "greeting"}',
     "dialogue must be"),
    ('{"id": "x-1", "lang": "en"', "not JSON"),
])
def test_a_bad_probe_line_is_refused_with_its_line_number(tmp_path: Path, line: str, message: str) -> None:
    good = ('{"id": "x-0", "lang": "en", "dialogue": [{"speaker": "A", "text": "hi"}], "responder": "B", '
            '"emotion": "happiness", "intention": "greeting"}')
    path = tmp_path / "probes.jsonl"
    path.write_text(good + "\n" + line + "\n")
    with pytest.raises(probe.ProbeError, match=f"probes.jsonl:2: .*{message}"):
        probe.load_probes(path)


def test_a_repeated_probe_id_is_refused(tmp_path: Path) -> None:
    line = ('{"id": "x-0", "lang": "en", "dialogue": [{"speaker": "A", "text": "hi"}], "responder": "B", '
            '"emotion": "happiness", "intention": "greeting"}')
    path = tmp_path / "probes.jsonl"
    path.write_text(line + "\n" + line + "\n")
    with pytest.raises(probe.ProbeError, match="probes.jsonl:2: id 'x-0' is used twice"):
        probe.load_probes(path)


def test_sticker_emotions_parse_and_read_right() -> None:
    table = probe.load_sticker_emotions(probe.STICKER_EMOTIONS)
    assert 150 <= len(table) <= 250
    assert all("\ufe0f" not in emoji for emoji in table)
    shown = Counter(e for emotions in table.values() for e in emotions)
    assert all(shown[e] >= 2 for e in probe.EMOTIONS), shown  # every expected emotion can be hit
    assert table["😂"] == {"happiness"} and table["🥹"] == {"happiness", "sadness"}
    assert table["💔"] == {"sadness"} and table["😡"] == {"anger"} and table["🤮"] == {"disgust"}
    assert table["😱"] == {"fear", "surprise"} and table["🥰"] == {"like"} and table["🎉"] == {"happiness"}


def test_a_bad_sticker_emotions_line_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "emotions.tsv"
    path.write_text("# comment\nemoji\temotions\n😂\thappiness\n😭\tsad\n")
    with pytest.raises(probe.ProbeError, match="emotions.tsv:4: unknown emotion"):
        probe.load_sticker_emotions(path)


# ---- judging ---------------------------------------------------------------------------------------------
def _response(*emoji: str | None, emotion: str = "like", intention: str | None = None) -> dict[str, Any]:
    hits = [{"sticker_id": f"p/{i}", "pack": "p", "score": 1.0 - i / 10, "image_url": "", "emotion": "none",
             "name": None, "emoji": e} for i, e in enumerate(emoji)]
    return {"hits": hits, "emotion": {"label": emotion, "probability": 0.9},
            "intention": None if intention is None else {"label": intention, "probability": 0.8},
            "model_version": "m", "index_version": "i"}


LOVE = probe.Probe(id="en-x", lang="en", dialogue=(("A", "I miss you"),), responder="B", emotion="like",
                   intention="affection")
TABLE = {"❤": frozenset({"like"}), "😡": frozenset({"anger"}), "👍": frozenset({"none", "happiness"}),
         "🤦": frozenset({"disgust"})}


def test_a_right_emotion_sticker_counts_and_a_wrong_one_does_not() -> None:
    assert probe.judge(LOVE, _response("😡", "❤️"), TABLE)["sticker_top5"]  # U+FE0F stripped before lookup
    assert not probe.judge(LOVE, _response("😡", "😡", "🚗", None), TABLE)["sticker_top5"]
    assert not probe.judge(LOVE, _response("😡", "😡", "😡", "😡", "😡", "❤"), TABLE)["sticker_top5"]  # 6th
    record = probe.judge(LOVE, _response("❤️", "🚗", None), TABLE)
    assert [h["shows"] for h in record["stickers"]] == [["like"], ["none"], []]  # unlisted: none; no emoji: nothing


def test_emoji_variants_read_as_their_base() -> None:
    assert probe.emoji_key("❤️") == "❤" and probe.emoji_key("👍🏽") == "👍"
    assert probe.emoji_key("🤦\u200d♂️") == "🤦" and probe.emoji_key("😶\u200d🌫️") == "😶\u200d🌫"
    assert probe.sticker_emotions("👍🏿", TABLE) == {"none", "happiness"}


def test_served_emotion_and_intention_are_judged_by_label_and_null_is_wrong() -> None:
    assert probe.judge(LOVE, _response("❤", emotion="like"), TABLE)["emotion_right"]
    assert not probe.judge(LOVE, _response("❤", emotion="happiness"), TABLE)["emotion_right"]
    assert not probe.judge(LOVE, _response("❤"), TABLE)["intention_right"]
    assert probe.judge(LOVE, _response("❤", intention="affection"), TABLE)["intention_right"]
    assert not probe.judge(LOVE, _response("❤", intention="tease"), TABLE)["intention_right"]


def test_summary_counts_per_language_and_overall() -> None:
    zh = probe.Probe(id="zh-x", lang="zh", dialogue=(("A", "气死我了"),), responder="B", emotion="anger",
                     intention="agreement")
    records = [probe.judge(LOVE, _response("❤", intention="affection"), TABLE),
               probe.judge(LOVE, _response("😡", emotion="none"), TABLE),
               probe.judge(zh, _response("😡", emotion="anger"), TABLE)]
    summary = probe.summarise(records)
    assert summary["en"]["n"] == 2 and summary["en"]["sticker_top5"] == 0.5
    assert summary["en"]["emotion_accuracy"] == 0.5 and summary["en"]["intention_accuracy"] == 0.5
    assert summary["zh"]["counts"] == {"sticker_top5": 1, "emotion_right": 1, "intention_right": 0,
                                       "intention_null": 1, "act_top5": 0, "act_dialogues": 1}
    assert summary["all"]["n"] == 3 and summary["all"]["counts"]["sticker_top5"] == 2
    assert summary["by_emotion"]["zh"] == {"anger": {"n": 1, "sticker_top5": 1.0, "act_top5": 0.0,
                                                     "emotion_accuracy": 1.0, "intention_accuracy": 0.0}}


def test_a_sticker_that_does_the_reply_act_counts_by_its_name() -> None:
    bye = probe.Probe(id="en-y", lang="en", dialogue=(("A", "gotta go, see you!"),), responder="B",
                      emotion="happiness", intention="farewell")
    ask = probe.Probe(id="en-z", lang="en", dialogue=(("A", "what time is it?"),), responder="B",
                      emotion="none", intention="question")
    wave = _response("😀", "👋")
    wave["hits"][1]["name"] = "waving hand"
    hearts = _response("❤", "❤")
    hearts["hits"][0]["name"] = "red heart"
    assert probe.judge(bye, wave, TABLE)["act_top5"] is True
    assert probe.judge(bye, hearts, TABLE)["act_top5"] is False
    assert probe.judge(ask, wave, TABLE)["act_top5"] is None  # a question is no act: not counted
    summary = probe.summarise([probe.judge(bye, wave, TABLE), probe.judge(bye, hearts, TABLE), probe.judge(ask, wave, TABLE)])
    assert summary["en"]["act_top5"] == 0.5 and summary["en"]["counts"]["act_dialogues"] == 2


# ---- end to end ------------------------------------------------------------------------------------------
def _naive_sticker_table() -> dict[str, set[str]]:
    """The reference read the obvious way, to check the scorer's lookup against."""
    table = {}
    for line in probe.STICKER_EMOTIONS.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#") and not line.startswith("emoji\t"):
            emoji, emotions = line.split("\t")
            table[emoji] = set(emotions.split(","))
    return table


def test_scores_the_tiny_model_through_the_service_app(tmp_path: Path, tiny_checkpoint: Path, index_root: Path,
                                                       tiny_catalog: Path, cache_dir: Path) -> None:
    details, summary_path, md = tmp_path / "details.jsonl", tmp_path / "summary.json", tmp_path / "results.md"
    md.write_text("# Results\n\nkept\n<!-- probe:start -->\nold\n<!-- probe:end -->\n")
    code = probe.main(["--model", str(tiny_checkpoint), "--index", str(index_root), "--catalog", str(tiny_catalog),
                       "--cache-dir", str(cache_dir), "--backend", "torch", "--details", str(details),
                       "--json", str(summary_path), "--out", str(md)])
    assert code == 0
    summary = json.loads(summary_path.read_text())
    assert (summary["en"]["n"], summary["zh"]["n"], summary["all"]["n"]) == (64, 64, 128)
    for part in ("en", "zh", "all"):
        for key in ("sticker_top5", "emotion_accuracy", "intention_accuracy"):
            assert 0.0 <= summary[part][key] <= 1.0
    records = [json.loads(line) for line in details.read_text().splitlines()]
    assert [r["id"] for r in records] == [p.id for p in probe.load_probes(probe.PROBES)]
    assert all(1 <= len(r["stickers"]) <= 5 and r["served"]["emotion"] in probe.EMOTIONS for r in records)
    naive = _naive_sticker_table()
    hits = Counter(r["lang"] for r in records if any(
        s["emoji"] and r["expected"]["emotion"] in naive.get(s["emoji"].replace("\ufe0f", ""), {"none"})
        for s in r["stickers"]))
    assert (summary["en"]["counts"]["sticker_top5"], summary["zh"]["counts"]["sticker_top5"]) == (hits["en"], hits["zh"])
    emotion_right = sum(r["served"]["emotion"] == r["expected"]["emotion"] for r in records)
    assert summary["all"]["counts"]["emotion_right"] == emotion_right
    text = md.read_text()
    assert text.startswith("# Results\n\nkept\n") and "\nold\n" not in text and "| zh | 64 |" in text


def test_an_unreachable_service_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert probe.main(["--url", url, "--startup-seconds", "1"]) == 2
    assert "cannot reach the service" in capsys.readouterr().err


def test_a_missing_probe_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert probe.main(["--url", "http://127.0.0.1:9", "--probes", str(tmp_path / "none.jsonl")]) == 2
    assert "cannot read the probe file" in capsys.readouterr().err


def test_act_words_are_the_training_sides_and_judge_like_it() -> None:
    """The probe's act reference is written out (bench does not import training); it must stay the training
    side's sticker cue table, and judge a name as `sticker_intentions` does."""
    from training.data.intentions import STICKER_CUES, sticker_intentions

    assert probe.ACT_WORDS == {act: frozenset(words) for act, words in STICKER_CUES.items()}
    for name in ("waving hand", "folded hands", "party popper", "red heart", "people hugging", "thumbs up",
                 "grinning face", "face with tongue", "", "  "):
        assert probe.sticker_acts(name) == set(sticker_intentions([name])), name
