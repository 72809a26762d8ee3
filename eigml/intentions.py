"""What an utterance does, by cue phrases: "thanks a lot" thanks, "对不起" apologises, "see you" says farewell.

Used where no dialogue act is labelled: training labels its texts with it, and the index reads the words
drawn on a sticker ("BYE BYE", "谢谢你") with it, so a worded sticker does what its words say. The first
rule that matches wins, a question mark makes a question, anything else informs; the vocabulary is
eigml.labels.INTENTIONS.

A sticker's acts come from its names and tags in English and Chinese (`STICKER_CUES`: 👋 "waving hand, bye,
hello" greets and says farewell; 🙏 "folded hands, thanks"): training takes them as the stickers' intention
labels, and the index mixes them into what a tagged sticker does (`index.embed.with_tag_acts`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

import torch

from eigml.catalog import Sticker
from eigml.dialogue import Dialogue
from eigml.labels import INTENTIONS

# (intention, English pattern, Chinese pattern), tried in order. English patterns are matched on the
# lower-cased text with word boundaries; Chinese ones as plain substrings.
TEXT_RULES: tuple[tuple[str, str, str], ...] = (
    ("congratulations", r"congrat\w*|well done|proud of you|good job|you did it|happy birthday",
     r"恭喜|祝贺|生日快乐|干得漂亮|太棒了你|真厉害"),
    ("thanks", r"thanks?|thank you|thx|ty|appreciate it|grateful", r"谢谢|多谢|感谢|谢啦|谢了"),
    ("apology", r"sorry|apologi[sz]e|my bad|forgive me|my fault", r"对不起|抱歉|不好意思|是我的错|原谅我"),
    ("farewell", r"bye|goodbye|see (you|ya)|good ?night|talk later|(talk|speak) (to you )?soon|take care|gotta go|ttyl|cya"
                 r"|catch you later"
                 r"|safe (travels|trip|flight|journey)|have a (safe|good) (trip|flight|journey)|(drive|get home) safe(ly)?"
                 r"|(?<![a-z]\s)(night|nite|night night|nighty night|gn)(?=[\s!.~]*$)",  # "talk tomorrow. night!"
     r"再见|拜拜|晚安|回头见|明天见|先走了|下次见|一路平安|一路顺风|路上小心|慢走|先撤了"
     r"|不聊了|(回来|回头|改天|下次|有空)再(约|聊)|回聊|先下了|先忙了|你先忙"),  # "不聊了…回来再约": leaving, said without 再见
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


# Social formulas that a reply returns in kind: hello is answered with hello, a goodbye with a goodbye, "I miss
# you" with affection (training.data.intentions.REPLY_TO_INTENTION maps each to itself). When the latest turn
# says one outright ("拜拜", "good morning", "想你了"), the reply does that act whatever else the model reads:
# the default model read "好久不见！我回国啦" as a goodbye (0.82) and "我要去机场了，拜拜！下个月见" as a
# question (docs/results.md, 2026-12-07, tenth session). Rules for other acts are looser ("yeah" agrees) or
# the reply is no mirror (an apology may anger), so only these three are trusted.
MIRRORED_ACTS = ("greeting", "farewell", "affection")
CUE_WEIGHT = 0.5  # the share of the reply's intention distribution the cue takes: argmax whenever it fires
# Greetings and goodbyes are formulas: a reply greets or says goodbye when the message does. When the latest
# turn says neither, they keep this share of their probability (the rest spread over the other intentions by
# renormalising). The default model read "the meeting moved to 3pm" and "I'll pick you up at 7" as goodbyes
# (words near "good night" and "see you at 5") and answered them with 👋.
FORMULAS = ("greeting", "farewell")
UNSAID_SHARE = 0.25


def acts_said(text: str) -> list[str]:
    """Every act whose cue words appear in `text`, in the rules' order ("谢谢招待，我先回去啦，拜拜" thanks and
    says goodbye; `intention_from_text` keeps only the first)."""
    lowered = text.strip().lower()
    return [name for name, english, chinese in _COMPILED if english.search(lowered) or chinese.search(lowered)]


def mirrored_act(dialogue: Dialogue) -> str | None:
    """The act a reply returns in kind (MIRRORED_ACTS) that the latest turn does outright, the first in the
    rules' order (goodbye, greeting, affection) when it does several, else None."""
    if not dialogue.turns:
        return None
    return next((act for act in acts_said(dialogue.turns[-1].text) if act in MIRRORED_ACTS), None)


def with_act_cues(dialogues: Sequence[Dialogue], intention_probs: torch.Tensor, labels: Sequence[str],
                  weight: float = CUE_WEIGHT, unsaid: float = UNSAID_SHARE) -> torch.Tensor:
    """(B, A) reply intention distributions after the cues of each dialogue's latest turn:
    - it does a mirrored act: (1 - weight) p + weight one_hot(act);
    - it does neither a greeting nor a goodbye: those two keep `unsaid` of their probability, renormalised.
    Intentions the model lacks are skipped; the input is not modified."""
    names = list(labels)
    formulas = [names.index(a) for a in FORMULAS if a in names]
    out = intention_probs.clone()
    for i, dialogue in enumerate(dialogues):
        act = mirrored_act(dialogue)
        if act not in FORMULAS and formulas:
            out[i, formulas] *= unsaid
            out[i] /= out[i].sum().clamp_min(1e-12)
        if act is not None and act in names:
            out[i] = (1 - weight) * out[i]
            out[i, names.index(act)] += weight
    return out


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


# Pictures of people together (couples, kisses, families, people holding hands) are about those people, not
# a reaction one sends: they answered thanks and good news with kissing couples (docs/results.md,
# 2026-12-07). They show no feeling and mark no intention, so they are ranked by what they match.
SCENE_TAGS = frozenset({"couple", "family"})
SCENE_NAMES = ("kiss:", "couple with heart", "family")  # name prefixes; also the name "kiss" itself (💏)


def depicts_people(sticker: Sticker) -> bool:
    """Whether the sticker pictures people together (see SCENE_TAGS): no feeling, no intention."""
    name = sticker.names.get("en", "").lower()
    # not a bare "kiss" prefix: 😗 "kissing face" and 💋 "kiss mark" are reactions
    return bool(SCENE_TAGS & set(sticker.tags.get("en", ()))) or name == "kiss" or name.startswith(SCENE_NAMES)


def sticker_acts(sticker: Sticker) -> Mapping[str, float]:
    """The intentions a sticker's names and tags mark (`sticker_intentions`), none for pictures of people."""
    if depicts_people(sticker):
        return {}
    return sticker_intentions([*sticker.names.values(), *(t for tags in sticker.tags.values() for t in tags)])
