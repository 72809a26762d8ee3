"""The framework-free pipeline against the obvious slow paths: the checkpoint ranker, the command-line
recommender, the core rerank, single requests, no cache."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from service_helpers import TEXTS

from eigml.dialogue import Dialogue, Turn
from eigml.labels import EMOTIONS
from service.cache import MemoryCache
from service.encodings import pack_encoding, unpack_encoding
from service.metrics import ServiceMetrics
from service.recommender import (
    MismatchError,
    Recommender,
    RecommendRequest,
)


def make_dialogue(text: str, *earlier: str, responder: str | None = None) -> Dialogue:
    texts = [*earlier, text]
    turns = tuple(Turn("B" if (len(texts) - 1 - i) % 2 == 0 else "A", t) for i, t in enumerate(texts))
    return Dialogue(turns, responder=responder)


@pytest.fixture
def recommender(tiny_model: Any, torch_encoder: Any, tiny_index: Any) -> Recommender:
    """In the scores' order (no emotion coverage, several stickers per emoji allowed), to compare with rankers."""
    return Recommender(tiny_model, torch_encoder, tiny_index, candidates=100, diversity=0.0, one_per_emoji=False)


@pytest.fixture
def served(tiny_model: Any, torch_encoder: Any, tiny_index: Any) -> Recommender:
    """With the served order's defaults (`eigml.selection`)."""
    return Recommender(tiny_model, torch_encoder, tiny_index, candidates=100)


def test_ranking_equals_eigml_ranker(recommender: Recommender, tiny_model: Any, tiny_index: Any,
                                     tiny_catalog: Path, cache_dir: Path) -> None:
    """The service against `rank`'s checkpoint ranker, which encodes the stickers itself from the feature
    cache (fp16 features, not the index's stored rows): the same ranking, scores within 2e-3."""
    from eigml.catalog import load_catalog
    from training.benchmarks.eigml_ranker import EIGMLRanker
    from training.data.sticker_bank import StickerBank

    empty = StickerBank(ids=[], index={}, features=torch.empty(0), variants=[])
    ranker = EIGMLRanker(tiny_model, empty, catalog=load_catalog(tiny_catalog), cache_root=cache_dir / "features")
    everything = len(tiny_index)  # candidates (100) cover the tiny catalogue: the same candidate set
    for text in TEXTS[:4]:
        d = make_dialogue(text, "hey")
        result = recommender.recommend(d, top_k=min(everything, 50))
        scores = ranker.score_candidates([d], [list(tiny_index.ids)])[0]
        expected = sorted(zip(scores, tiny_index.ids, strict=True), key=lambda p: -p[0])
        got = [(h.score, h.sticker_id) for h in result.hits]
        assert len(got) == everything
        assert [s for _, s in got] == [s for _, s in expected]
        np.testing.assert_allclose([s for s, _ in got], [s for s, _ in expected], atol=2e-3)


def test_command_line_recommend_equals_the_service(served: Recommender, recommender: Recommender,
                                                   tiny_model: Any, tiny_index: Any) -> None:
    """`python -m training recommend --model CHECKPOINT` takes the service's path: the same hits, bit for bit,
    in the served order and in the scores' order."""
    from training.recommend import build_dialogue, recommend_from_index

    for text, packs in [(TEXTS[0], None), (TEXTS[1], ["twemoji"]), (TEXTS[6], ["noto", "plain"])]:
        d = build_dialogue(["hey", text])
        for service, options in ((served, {}), (recommender, {"diversity": 0.0, "one_per_emoji": False})):
            hits = service.recommend(d, top_k=7, packs=packs).hits
            cli = recommend_from_index(tiny_model, tiny_index, d, 7, packs=packs, candidates=service.candidates,
                                       **options)
            assert [(h.sticker_id, h.score) for h in hits] == [(h.sticker_id, h.score) for h in cli]


def test_service_answer_is_the_core_rerank(recommender: Recommender, tiny_model: Any, tiny_index: Any) -> None:
    """What the service answers is the core's rerank over every sticker, reordered: nothing else scores."""
    from eigml.rerank import best_first, rerank

    d = make_dialogue(TEXTS[3], "hey")
    queries = tiny_model.encode_dialogues([d])
    rows = np.arange(len(tiny_index))
    scores = rerank(tiny_model, queries, tiny_index.encodings(), [rows])[0]
    expected = [(tiny_index.ids[j], float(scores[j])) for j in best_first(rows, scores, 10)]
    hits = recommender.recommend(d, top_k=10).hits
    assert [h.sticker_id for h in hits] == [sticker_id for sticker_id, _ in expected]
    # the service scores its candidates in a narrower batch than every row at once: the same numbers up to the
    # float rounding of another matrix shape (2 ulp seen on an AMD EPYC)
    assert [h.score for h in hits] == pytest.approx([score for _, score in expected], rel=1e-6, abs=1e-7)


def test_served_order_covers_emotions_with_one_sticker_per_emoji(served: Recommender, recommender: Recommender,
                                                                 tiny_model: Any, tiny_index: Any) -> None:
    """The default order is `pick_hits` over the same rerank scores: no emoji twice in the top 10 (the tiny
    catalogue has each emoji in three packs, so the scores' order repeats them), the same scores."""
    from eigml.rerank import pick_hits, rerank
    from eigml.selection import emoji_family

    d = make_dialogue(TEXTS[3], "hey")
    queries = tiny_model.encode_dialogues([d])
    rows = np.arange(len(tiny_index))
    stickers = tiny_index.encodings()
    scores = rerank(tiny_model, queries, stickers, [rows])[0]
    families = np.array([emoji_family(tiny_index.sticker(r).emoji) for r in rows], dtype=object)
    order = pick_hits(rows, scores, stickers.emotion_probs, queries.emotion_probs[0], families, 10,
                      diversity=served.diversity, one_per_emoji=True,
                      emotion_labels=tiny_model.emotion_labels)
    hits = served.recommend(d, top_k=10).hits
    assert [(h.sticker_id, h.score) for h in hits] == [(tiny_index.ids[j], float(scores[j])) for j in order]
    emoji = [f for h in hits if (f := emoji_family(h.emoji)) is not None]
    assert len(set(emoji)) == len(emoji)
    by_score = [f for h in recommender.recommend(d, top_k=10).hits if (f := emoji_family(h.emoji)) is not None]
    assert len(set(by_score)) < len(by_score)


def test_diversity_out_of_range_is_refused(tiny_model: Any, torch_encoder: Any, tiny_index: Any) -> None:
    with pytest.raises(ValueError, match="diversity"):
        Recommender(tiny_model, torch_encoder, tiny_index, diversity=1.5)


def test_result_fields(recommender: Recommender, tiny_model: Any, tiny_index: Any) -> None:
    result = recommender.recommend(make_dialogue("I am furious, he lied to me again"), top_k=5)
    assert len(result.hits) == 5
    assert result.model_version == tiny_model.version and result.index_version == tiny_index.version
    assert result.emotion.label in EMOTIONS and 0 < result.emotion.probability <= 1
    if tiny_model.intention_labels:
        assert result.intention is not None and result.intention.label in tiny_model.intention_labels
    else:
        assert result.intention is None
    scores = [h.score for h in result.hits]
    assert scores == sorted(scores, reverse=True) and all(0 < s < 1 for s in scores)
    for hit in result.hits:
        assert hit.sticker_id in tiny_index.ids and hit.sticker_id.startswith(hit.pack + "/")
        assert hit.image_url == f"/stickers/{hit.sticker_id}" and hit.emotion in EMOTIONS


def test_pack_filter_and_exclude(recommender: Recommender, tiny_index: Any) -> None:
    d = make_dialogue("my dog died, I am heartbroken")
    only = recommender.recommend(d, top_k=50, packs=["twemoji"])
    assert {h.pack for h in only.hits} == {"twemoji"} and len(only.hits) == 12
    full = recommender.recommend(d, top_k=50)
    dropped = [h.sticker_id for h in full.hits[:3]]
    rest = recommender.recommend(d, top_k=50, exclude=dropped)
    assert [h.sticker_id for h in rest.hits] == [h.sticker_id for h in full.hits[3:]]
    assert recommender.recommend(d, top_k=5, packs=["no-such-pack"]).hits == []
    assert recommender.unknown_packs(["noto", "nope"]) == ["nope"]


def test_batched_equals_single(recommender: Recommender) -> None:
    requests = [RecommendRequest(make_dialogue(t, "hey", "hello there"), top_k=k, packs=p, exclude=x)
                for t, k, p, x in [(TEXTS[0], 5, None, None), (TEXTS[1], 7, ("noto",), None),
                                   (TEXTS[2], 3, None, ("noto/1f600", "plain/1f601")),
                                   (TEXTS[3], 10, ("plain", "twemoji"), None), (TEXTS[0], 5, None, None)]]
    batched = recommender.recommend_many(requests)
    for request, result in zip(requests, batched, strict=True):
        single = recommender.recommend_many([request])[0]
        assert [h.sticker_id for h in result.hits] == [h.sticker_id for h in single.hits]
        np.testing.assert_allclose([h.score for h in result.hits], [h.score for h in single.hits], atol=1e-5)
        assert result.emotion.label == single.emotion.label


def test_cached_equals_uncached(tiny_model: Any, torch_encoder: Any, tiny_index: Any) -> None:
    metrics = ServiceMetrics()
    cached = Recommender(tiny_model, torch_encoder, tiny_index, cache=MemoryCache(100, 60, metrics))
    plain = Recommender(tiny_model, torch_encoder, tiny_index)
    d = make_dialogue(TEXTS[5], "hi")
    first, second, reference = cached.recommend(d), cached.recommend(d), plain.recommend(d)
    assert metrics.registry.get_sample_value("stickers_cache_hits_total") == 1
    assert metrics.registry.get_sample_value("stickers_cache_misses_total") == 1
    assert first == second == reference  # float32 values survive the cache bit for bit


def test_cache_key_normalises_what_the_encoder_ignores(recommender: Recommender) -> None:
    key = recommender.cache_key
    base = Dialogue((Turn("A", "hello"), Turn("B", "I failed")), responder="A")
    renamed = Dialogue((Turn("Ann", " hello "), Turn("Bob", "I failed\n")), responder="Ann")
    assert key(base) == key(renamed)
    assert key(base) != key(Dialogue(base.turns, responder="B"))  # roles change the token types
    assert key(base) != key(Dialogue((Turn("A", "hello"), Turn("B", "I passed")), responder="A"))


def test_encoding_bytes_roundtrip() -> None:
    row = {name: np.random.default_rng(0).normal(size=n).astype(np.float32)
           for name, n in zip(("query", "emotion_probs", "intention_probs", "dialogue", "emotion", "intention"),
                              (32, 8, 0, 32, 32, 32), strict=True)}
    back = unpack_encoding(pack_encoding(row))
    assert all(np.array_equal(back[k], v) for k, v in row.items())
    for damaged in (pack_encoding(row)[:-4], pack_encoding(row)[:-1], b"", b"\x02\x00\x00\x00{}", b"junk" * 9):
        with pytest.raises(ValueError):
            unpack_encoding(damaged)


class _OtherModelIndex:
    """The real index, claiming another model version (an index built with other weights)."""

    def __init__(self, index: Any) -> None:
        self._index = index
        self.model_version = "eigml-other"

    def __getattr__(self, name: str) -> Any:
        return getattr(self._index, name)

    def __len__(self) -> int:
        return len(self._index)


def test_mismatched_index_is_refused(recommender: Recommender, tiny_index: Any, tiny_model: Any,
                                     torch_encoder: Any) -> None:
    with pytest.raises(MismatchError, match=f"eigml-other.*{tiny_model.version}"):
        recommender.swap_index(_OtherModelIndex(tiny_index))
    with pytest.raises(MismatchError):
        Recommender(tiny_model, torch_encoder, _OtherModelIndex(tiny_index))
    assert recommender.index is tiny_index


def test_swap_is_seen_by_the_next_request(recommender: Recommender, tiny_index: Any) -> None:
    class Renamed(_OtherModelIndex):
        def __init__(self, index: Any) -> None:
            super().__init__(index)
            self.model_version = index.model_version
            self.version = "v-next"

    d = make_dialogue(TEXTS[0])
    before = recommender.recommend(d)
    assert recommender.swap_index(Renamed(tiny_index)) is tiny_index
    after = recommender.recommend(d)
    assert (before.index_version, after.index_version) == (tiny_index.version, "v-next")
    assert replace(after, index_version=before.index_version) == before


def test_a_batch_in_flight_finishes_on_its_index(tiny_model: Any, torch_encoder: Any, tiny_index: Any) -> None:
    class Next(_OtherModelIndex):
        def __init__(self, index: Any) -> None:
            super().__init__(index)
            self.model_version = index.model_version
            self.version = "v-next"

    recommender: Recommender

    def swap_mid_batch(stage: str, seconds: float) -> None:
        if stage == "encode" and recommender.index is tiny_index:
            recommender.swap_index(Next(tiny_index))  # what a reload from another thread does

    recommender = Recommender(tiny_model, torch_encoder, tiny_index, on_stage=swap_mid_batch)
    d = make_dialogue(TEXTS[2])
    assert recommender.recommend(d).index_version == tiny_index.version  # swapped after encode: still the old
    assert recommender.recommend(d).index_version == "v-next"


@pytest.mark.parametrize("prebuilt_index", [True, False])
def test_recommend_command_prints_the_service_hits(recommender: Recommender, tiny_checkpoint: Path,
                                                   tiny_catalog: Path, index_root: Path, cache_dir: Path,
                                                   prebuilt_index: bool, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """`python -m training recommend --model CHECKPOINT` with a built index, or one it builds itself."""
    from training.__main__ import main
    from training.recommend import build_dialogue

    monkeypatch.setenv("STICKERS_CACHE_DIR", str(cache_dir))
    texts = ["hey", TEXTS[2]]
    argv = ["recommend", "--catalog", str(tiny_catalog), "--model", str(tiny_checkpoint), "--top-k", "4",
            "--packs", "noto,plain", *(["--index", str(index_root)] if prebuilt_index else []), *texts]
    assert main(argv) == 0
    printed = [line.split()[1] for line in capsys.readouterr().out.splitlines()[1:]]
    expected = recommender.recommend(build_dialogue(texts), top_k=4, packs=["noto", "plain"])
    assert printed == [h.sticker_id for h in expected.hits]


def test_cache_key_and_tokens_read_one_dialogue_view(recommender: Recommender, tiny_model: Any) -> None:
    """Dialogues the encoder cannot tell apart share a cache key, and vice versa: both read
    `TextEncoder.dialogue_view` (here: NFC vs NFD text, extra whitespace, other speaker names)."""
    import unicodedata

    a = Dialogue((Turn("A", "caf\u00e9 tonight?"), Turn("B", "I failed")), responder="A")
    b = Dialogue((Turn("x", " " + unicodedata.normalize("NFD", "caf\u00e9 tonight?")), Turn("y", "I failed\n")),
                 responder="x")
    c = Dialogue((Turn("A", "cafe tonight?"), Turn("B", "I failed")), responder="B")
    tokenize = tiny_model.text_encoder.tokenize
    assert recommender.cache_key(a) == recommender.cache_key(b)
    assert all(torch.equal(tokenize([a])[k], tokenize([b])[k]) for k in tokenize([a]))
    assert recommender.cache_key(a) != recommender.cache_key(c)
    assert not torch.equal(tokenize([a])["token_type_ids"], tokenize([c])["token_type_ids"])


def test_command_line_recommend_takes_the_agreement_candidates_too(tiny_model: Any, torch_encoder: Any,
                                                                   tiny_index: Any) -> None:
    """With a distribution-SAMM model (the default's) the service adds the rows whose emotion and intention
    agree most to the visual ones; the command-line recommender does the same, so with few candidates (where
    the two sets differ) both still answer alike. Before, the command line reranked the visual rows only and
    answered a fear dialogue with flags and food (docs/results.md, thirteenth session)."""
    from training.recommend import build_dialogue, recommend_from_index

    similarity = tiny_model.config.samm.similarity
    tiny_model.config.samm.similarity = "distribution"
    try:
        service = Recommender(tiny_model, torch_encoder, tiny_index, candidates=3)
        differs = 0
        for text in TEXTS[:6]:
            d = build_dialogue(["hey", text])
            hits = service.recommend(d, top_k=5).hits
            cli = recommend_from_index(tiny_model, tiny_index, d, 5, candidates=3)
            assert [(h.sticker_id, h.score) for h in hits] == [(h.sticker_id, h.score) for h in cli]
            visual = recommend_from_index(tiny_model, tiny_index, d, 5, candidates=3, agreement=False)
            differs += [h.sticker_id for h in visual] != [h.sticker_id for h in hits]
        assert differs  # the test can tell the two candidate sets apart
    finally:
        tiny_model.config.samm.similarity = similarity
