from __future__ import annotations

import pytest

from eigml.labels import INTENTIONS
from training.data.intentions import intention_from_text, sticker_intentions


@pytest.mark.parametrize(("text", "intention"), [
    ("Congratulations on your new job!!", "congratulations"), ("恭喜你升职了", "congratulations"),
    ("thanks so much for the help", "thanks"), ("谢谢你帮我", "thanks"),
    ("sorry, my bad", "apology"), ("对不起，我来晚了", "apology"),
    ("ok bye, see you tomorrow", "farewell"), ("晚安，明天见", "farewell"),
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
