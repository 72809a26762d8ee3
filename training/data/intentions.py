"""Intention labels from cue phrases, for texts whose source has no dialogue act and for sticker tags.

A text's intention is what its words do ("thanks a lot" thanks, "对不起" apologises, "see you" says
farewell); the first rule that matches wins, a question mark makes a question, and anything else informs.
A sticker's intentions come from its names and tags in English and Chinese (👋 "wave, hello, bye" greets
and says farewell; 🙏 "thanks, please"; 🎉 "party, celebration"). Rules are data, kept in one table per
side so that both are easy to read and extend; the vocabulary is eigml.labels.INTENTIONS.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from eigml.labels import INTENTIONS

# (intention, English pattern, Chinese pattern), tried in order. English patterns are matched on the
# lower-cased text with word boundaries; Chinese ones as plain substrings.
TEXT_RULES: tuple[tuple[str, str, str], ...] = (
    ("congratulations", r"congrat\w*|well done|proud of you|good job|you did it|happy birthday",
     r"恭喜|祝贺|生日快乐|干得漂亮|太棒了你|真厉害"),
    ("thanks", r"thanks?|thank you|thx|ty|appreciate it|grateful", r"谢谢|多谢|感谢|谢啦|谢了"),
    ("apology", r"sorry|apologi[sz]e|my bad|forgive me|my fault", r"对不起|抱歉|不好意思|是我的错|原谅我"),
    ("farewell", r"bye|goodbye|see (you|ya)|good ?night|talk later|take care|gotta go",
     r"再见|拜拜|晚安|回头见|明天见|先走了|下次见"),
    ("greeting", r"^(hi|hello|hey|yo|morning|good (morning|afternoon|evening))\b|long time no see",
     r"^(你好|您好|嗨|哈喽|早上好|早安|早啊|下午好|晚上好)|好久不见"),
    ("comfort", r"it'?s (going to be|gonna be) ok|don'?t worry|cheer up|you'?ll be fine|i'?m here for you|hugs?",
     r"别担心|没事的|别难过|加油|会好的|抱抱|别哭|我陪你"),
    ("affection", r"love you|miss you|luv u|xoxo|kisses", r"爱你|想你|喜欢你|亲亲|么么哒"),
    ("refusal", r"^no\b|no way|nope|not going to|i won'?t|i refuse|forget it|never mind",
     r"不要|不行|不用了|没门|算了吧|我不去|拒绝|才不"),
    ("agreement", r"^(ok|okay|sure|yes|yeah|yep|agreed|deal|exactly|right)\b|sounds good|of course",
     r"^(好的|好啊|行|可以|没问题|对|是的|嗯嗯|当然)|同意|就这么定了"),
    ("request", r"^(please|pls|can you|could you|would you|help me)\b|let'?s\b",
     r"^(请|帮我|麻烦你|能不能|你能)|我们一起"),
    ("tease", r"\blol\b.*\byou\b|just kidding|jk|haha you|gotcha", r"开玩笑|逗你|哈哈你|你真笨|略略略"),
)
_QUESTION = re.compile(r"[?？]\s*$|(吗|呢|么)[。！!]?\s*$|^(what|why|how|who|where|when|do you|did you|are you|is it)\b")
_COMPILED = tuple((name, re.compile(rf"\b(?:{en})\b"), re.compile(zh)) for name, en, zh in TEXT_RULES)


def intention_from_text(text: str) -> str:
    """The intention of one utterance by the cue rules; "inform" when none applies."""
    lowered = text.strip().lower()
    for name, english, chinese in _COMPILED:
        if english.search(lowered) or chinese.search(lowered):
            return name
    return "question" if _QUESTION.search(lowered) else "inform"


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
