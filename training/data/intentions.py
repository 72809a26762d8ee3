"""Intention labels from cue phrases, for texts whose source has no dialogue act and for sticker tags.

A text's intention is what its words do ("thanks a lot" thanks, "对不起" apologises, "see you" says
farewell); the first rule that matches wins, a question mark makes a question, and anything else informs.
A sticker's intentions come from its names and tags in English and Chinese (👋 "wave, hello, bye" greets
and says farewell; 🙏 "thanks, please"; 🎉 "party, celebration"). Rules are data, kept in one table per
side so that both are easy to read and extend; the vocabulary is eigml.labels.INTENTIONS.
"""

from __future__ import annotations

from collections.abc import Iterable

from eigml.intentions import TEXT_RULES, intention_from_text
from eigml.labels import INTENTIONS

__all__ = ["TEXT_RULES", "intention_from_text", "reply_intention", "sticker_intentions"]

# What a sticker reply does to a turn that does `intention` (the reply mirrors greetings and farewells,
# answers thanks with warmth, an apology with comfort, good news with congratulations...). Used to label
# the reply of single-utterance data, whose labels describe the utterance itself.
REPLY_TO_INTENTION: dict[str, str] = {
    "greeting": "greeting", "farewell": "farewell", "thanks": "affection", "apology": "comfort",
    "congratulations": "thanks", "comfort": "thanks", "question": "inform", "request": "agreement",
    "agreement": "agreement", "refusal": "inform", "affection": "affection", "tease": "tease",
}
# A plain statement: the reply answers its feeling. Disgust is shared (🤢), not agreed with: answered with
# "agreement", whose stickers are 👍 and 🙆 ("OK"), a hair in the soup got 🙆‍♂️ (docs/results.md, 2026-12-07).
REPLY_TO_INFORM: dict[str, str] = {
    "none": "inform", "happiness": "congratulations", "like": "affection", "sadness": "comfort",
    "fear": "comfort", "anger": "comfort", "disgust": "inform", "surprise": "question",
}


def reply_intention(intention: str, emotion: str) -> str:
    """The intention of a sticker sent in reply to a turn with this intention and emotion."""
    if intention == "inform":
        return REPLY_TO_INFORM[emotion]
    return REPLY_TO_INTENTION[intention]


# Sticker tags (emojibase names and tags, en and zh): whole tags or words that mark an intention.
STICKER_CUES: dict[str, tuple[str, ...]] = {
    "greeting": ("waving hand", "hello", "hi", "招手", "你好", "打招呼", "挥手"),
    "farewell": ("waving hand", "bye", "goodbye", "再见", "拜拜", "挥手"),
    "thanks": ("thanks", "thank you", "grateful", "pray", "folded hands", "谢谢", "感谢", "祈祷", "双手合十"),
    "apology": ("sorry", "apology", "bow", "bowing", "鞠躬", "道歉", "对不起"),
    "congratulations": ("congratulations", "celebration", "celebrate", "party", "tada", "confetti", "clap",
                        "clapping", "trophy", "medal", "祝贺", "庆祝", "派对", "鼓掌", "奖杯", "彩带"),
    "comfort": ("hug", "hugging", "comfort", "拥抱", "抱抱", "安慰"),
    "agreement": ("ok", "okay", "thumbs up", "+1", "yes", "agree", "approve", "check mark",
                  "好", "赞", "同意", "可以", "点赞", "竖起大拇指"),
    "refusal": ("no", "not", "prohibited", "forbidden", "thumbs down", "-1", "cross mark", "no good",
                "stop", "禁止", "不行", "拒绝", "不", "叉"),
    "question": ("question", "thinking", "thought", "wonder", "confused", "shrug", "疑问", "问号", "思考",
                 "困惑", "耸肩"),
    "affection": ("kiss", "love", "heart", "in love", "adore", "亲", "飞吻", "爱", "爱心", "心"),
    "tease": ("tongue", "wink", "winking", "zany", "silly", "joke", "吐舌", "眨眼", "调皮", "鬼脸"),
    "request": ("please", "beg", "pleading", "请", "拜托", "求"),
}
_STICKER_WORD = {name: frozenset(words) for name, words in STICKER_CUES.items()}


def sticker_intentions(words: Iterable[str]) -> dict[str, float]:
    """Intentions a sticker's names and tags mark, each with weight 1 / (number marked); {} when none."""
    tags = {w.strip().lower() for w in words if w and w.strip()}
    # a multi-word name also counts its words ("waving hand" -> "waving")
    tags |= {part for tag in list(tags) if " " in tag for part in tag.split()}
    marked = [name for name in INTENTIONS if name in _STICKER_WORD and tags & _STICKER_WORD[name]]
    return {name: 1.0 / len(marked) for name in marked}
