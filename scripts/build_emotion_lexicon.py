"""Write training/data/emotion_lexicon_en.py from kaomoji-dataset and vaderSentiment (both installed).

    python scripts/build_emotion_lexicon.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import kaomoji_dataset
import vaderSentiment
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from training.data.emotion_taggers import derive_english_lexicon

OUT = Path(__file__).resolve().parents[1] / "training" / "data" / "emotion_lexicon_en.py"

HEADER = '''"""English emotion lexicon: word or phrase -> emotion of eigml.labels.EMOTIONS. Generated; do not edit.

Regenerate with `python scripts/build_emotion_lexicon.py`; tests check that it matches the packages.
Derived from kaomoji-dataset {kaomoji} (CC BY 4.0, FontVibe, https://fontvibe.ai/tools/kaomoji): the
words of its emotion and intent vocabularies, grouped and mapped to emotions in
training.data.emotion_taggers.KAOMOJI_GROUP_EMOTION; and from vaderSentiment {vader} (MIT): inflections of those
words found in the VADER lexicon.
"""

KAOMOJI_DATASET_VERSION = "{kaomoji}"
VADER_SENTIMENT_VERSION = "{vader}"

ENGLISH_EMOTION_LEXICON: dict[str, str] = {{
'''


def render() -> str:
    lexicon = derive_english_lexicon(kaomoji_dataset.all(), SentimentIntensityAnalyzer().lexicon)
    vader = getattr(vaderSentiment, "__version__", "3.3.2")
    lines = [HEADER.format(kaomoji=kaomoji_dataset.__version__, vader=vader)]
    lines += [f"    {word!r}: {emotion!r},\n" for word, emotion in lexicon.items()]
    lines.append("}\n")
    return "".join(lines).replace("'", '"')


def main() -> int:
    OUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
