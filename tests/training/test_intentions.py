from __future__ import annotations

from pathlib import Path

import pytest

from eigml.labels import INTENTIONS
from training.data.intentions import intention_from_text, sticker_intentions


@pytest.mark.parametrize(("text", "intention"), [
    ("Congratulations on your new job!!", "congratulations"), ("恭喜你升职了", "congratulations"),
    ("thanks so much for the help", "thanks"), ("谢谢你帮我", "thanks"),
    ("sorry, my bad", "apology"), ("对不起，我来晚了", "apology"),
    ("ok bye, see you tomorrow", "farewell"), ("晚安，明天见", "farewell"),
    ("ok, safe travels!", "farewell"), ("have a safe flight", "farewell"), ("drive safe", "farewell"),
    ("好的，一路平安", "farewell"), ("路上小心哦", "farewell"), ("我先撤了", "farewell"),
    ("好啦不聊了，我得去赶飞机了，回来再约～", "farewell"), ("我先忙了，回聊", "farewell"), ("改天再聊吧", "farewell"),
    ("ok, talk soon!", "farewell"), ("我们不聊这个了。", "inform"), ("we got to go to the bank first.", "inform"),
    ("same, talk tomorrow. night!", "farewell"), ("nite", "farewell"), ("I slept badly last night", "inform"),
    ("what are you doing tonight?", "question"), ("night shifts are the worst", "inform"),
    ("hi there!", "greeting"), ("你好呀", "greeting"),
    ("where are you?", "question"), ("你吃饭了吗", "question"),
    ("I went to the shop.", "inform"), ("我今天去了超市。", "inform"),
])
def test_intention_from_text(text: str, intention: str) -> None:
    assert intention_from_text(text) == intention


def test_sticker_intentions_from_tags() -> None:
    assert set(sticker_intentions(["waving hand", "hello", "wave", "招手"])) == {"greeting", "farewell"}
    assert sticker_intentions(["party popper", "celebration", "tada"]) == {"congratulations": 1.0}
    assert sticker_intentions(["pizza", "cheese"]) == {}
    assert set(sticker_intentions(["thinking face", "thinking"])) <= set(INTENTIONS)


def test_words_that_only_look_like_cues_mark_nothing() -> None:
    """Emojibase tags "good" on 💤 (from "good night"), 🦸 and 🧧, and "wave"/"waving" on 🌊 and flags: none of
    them agrees, greets or says goodbye (💤 used to answer goodbyes as "agreement")."""
    assert sticker_intentions(["ZZZ", "comic", "good", "goodnight", "night", "sleep", "sleepy", "tired"]) == {}
    assert sticker_intentions(["superhero", "good", "hero", "heroine", "superpower"]) == {}
    assert sticker_intentions(["water wave", "ocean", "water", "wave"]) == {}
    assert sticker_intentions(["white flag", "waving"]) == {}
    assert sticker_intentions(["thumbs up", "+1", "good", "hand", "thumb", "up"]) == {"agreement": 1.0}
    assert set(sticker_intentions(["waving hand", "hand", "wave", "waving"])) == {"greeting", "farewell"}


@pytest.mark.parametrize(("intention", "emotion", "reply"), [
    ("greeting", "happiness", "greeting"), ("thanks", "like", "affection"), ("apology", "sadness", "comfort"),
    ("congratulations", "happiness", "thanks"), ("inform", "sadness", "comfort"),
    ("inform", "happiness", "congratulations"), ("inform", "none", "inform"), ("inform", "disgust", "inform"),
])
def test_reply_intention_answers_the_turn(intention: str, emotion: str, reply: str) -> None:
    from training.data.intentions import reply_intention

    assert reply_intention(intention, emotion) == reply


def test_vendored_replies_follow_the_reply_table() -> None:
    """The vendored texts and kaomoji words were labelled by `reply_intention` as it stands (rebuilt with
    scripts/vendor_licence_clean.py and scripts/vendor_kaomoji_words.py when it changes): a plain statement
    of disgust is answered by sharing it (🤢), not with agreement, whose stickers are 👍 and 🙆 ("OK")."""
    import gzip
    import json

    from training.data.intentions import reply_intention
    from training.data.licence_clean import DEFAULT_DIR, KAOMOJI_WORDS

    with gzip.open(DEFAULT_DIR / "texts.jsonl.gz", "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    rows += [json.loads(line) for line in (DEFAULT_DIR / KAOMOJI_WORDS).read_text(encoding="utf-8").splitlines()]
    # (CPED's next-turn rows keep the act of the real next turn)
    plain_disgust = [r for r in rows if r["emotion"] == "disgust" and r["intention"] == "inform"
                     and r["source"] != "cped-next"]
    assert len(plain_disgust) > 100
    assert {r["reply_intention"] for r in plain_disgust} == {reply_intention("inform", "disgust")} == {"inform"}


def _vendor_script():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "scripts" / "vendor_licence_clean.py"
    spec = importlib.util.spec_from_file_location("vendor_licence_clean", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_trim_is_stable_when_labels_change() -> None:
    """A label fix moves only the rows it touches: every other kept row keeps its id, labels and place in
    its group (ids come from content, ranks from content and seed), so a relabelled cue does not resample
    the training set and its dev split. Fails with a shuffled trim and running-number ids."""
    vendor = _vendor_script()
    rows = [vendor.record("goemotions", "en", f"text number {i}", "none" if i % 3 else "like",
                          "farewell" if i % 7 == 0 else None) for i in range(3000)]
    rows += [dict(rows[5])]  # an exact duplicate is kept once
    before = {r["id"]: r for r in vendor.trim([dict(r) for r in rows], seed=0)}
    assert len(before) == len(set(before)) and len(before) < 3000
    assert all(i.startswith("goemotions-") for i in before)
    relabelled = [dict(r, reply_intention="inform") if r["reply_intention"] == "farewell" and r["text"].endswith("7")
                  else dict(r) for r in rows]
    after = {r["id"]: r for r in vendor.trim(relabelled, seed=0)}
    touched = {r["text"] for r in relabelled if r["text"].endswith("7") and r["intention"] == "farewell"}
    moved = {i for i in before.keys() ^ after.keys()} | {i for i in before.keys() & after.keys() if before[i] != after[i]}
    assert moved, "the relabelled rows should change"
    untouched_emotion_rows = {i for i, r in before.items() if r["reply_intention"] not in ("farewell",)}
    assert all(i in after and after[i] == before[i] for i in untouched_emotion_rows)
    assert {before.get(i, after.get(i))["text"] for i in moved} - touched <= {
        r["text"] for r in rows if r["reply_intention"] == "farewell"}
    assert vendor.trim([dict(r) for r in rows], seed=1) != list(before.values())


def test_a_rebuild_relabels_the_kept_rows_and_resamples_nothing(tmp_path: Path) -> None:
    """Rebuilding over an existing file keeps its rows, ids and order and recomputes only their labels (what
    a label fix needs); rows whose text left the sources are dropped; nothing new is drawn."""
    import gzip
    import json

    vendor = _vendor_script()
    rows = [vendor.record("xed-en", "en", f"line {i}", "like", None) for i in range(50)]
    kept = [dict(r, id=f"xed-en-{i:05d}") for i, r in enumerate(rows[::-1][:20])]  # an earlier build, its order
    kept[0] = dict(kept[0], intention="farewell", reply_intention="farewell")  # labelled by an older rule
    kept.append(dict(vendor.record("xed-en", "en", "a line the sources no longer have", "none", None), id="xed-en-99999"))
    with gzip.open(tmp_path / "texts.jsonl.gz", "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in kept)
    out = vendor.keep_selection([dict(r) for r in rows], tmp_path / "texts.jsonl.gz")
    assert [r["id"] for r in out] == [r["id"] for r in kept[:-1]]
    assert out[0]["text"] == "line 49" and (out[0]["intention"], out[0]["reply_intention"]) == ("inform", "affection")
    assert out[1:] == kept[1:-1]
