"""Intention labels from cue phrases, for texts whose source has no dialogue act and for sticker tags.

A text's intention is what its words do ("thanks a lot" thanks, "对不起" apologises, "see you" says
farewell); the first rule that matches wins, a question mark makes a question, and anything else informs.
A sticker's intentions come from its names and tags in English and Chinese (👋 "wave, hello, bye" greets
and says farewell; 🙏 "thanks, please"; 🎉 "party, celebration"). Rules are data, kept in one table per
side (both in the core, `eigml.intentions`, which the index reads them with too); the vocabulary is
eigml.labels.INTENTIONS.
"""

from __future__ import annotations

from eigml.intentions import STICKER_CUES, TEXT_RULES, intention_from_text, sticker_intentions

__all__ = ["STICKER_CUES", "TEXT_RULES", "intention_from_text", "reply_intention", "sticker_intentions"]

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
