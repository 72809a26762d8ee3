"""Checks on the shared benchmark data (skipped where it is absent, e.g. on a user's machine)."""

from __future__ import annotations

import pytest

from eigml.paths import Paths
from training.benchmarks.baselines import PriorRanker, RandomRanker, default_prior_data
from training.benchmarks.bench_baselines import full_label_set_items
from training.benchmarks.evaluation import evaluate
from training.benchmarks.rank import load_ranker, rank_items
from training.data import load_srs

pytestmark = pytest.mark.data

SRS_DIR = Paths.from_env().srs_dir
EXPECTED_ITEMS = {"xdd_en_dev": 874, "xdd_zh_dev": 874, "cped_valid": 1587, "tweeteval_emoji_val": 5000}


def _require(name: str):
    path = SRS_DIR / f"{name}.jsonl"
    if not path.exists():
        pytest.skip(f"shared benchmark data not found at {path} (set STICKERS_DATA_DIR)")
    return path


@pytest.mark.parametrize("name", list(EXPECTED_ITEMS))
def test_dev_files_load(name: str) -> None:
    items = load_srs(_require(name))
    assert len(items) == EXPECTED_ITEMS[name]
    assert all(len(i.candidates) == 10 and i.response_text is None for i in items)
    assert all(c.startswith("noto/") for i in items for c in i.candidates)


def test_prior_and_random_match_the_reference_points_on_xdd_en_dev() -> None:
    """README (held-out test): random R@1 0.093, prior R@1 0.716, prior macro-R@1 by emotion 0.167."""
    path = _require("xdd_en_dev")
    items = load_srs(path)
    prior_path, note = default_prior_data(path)
    assert prior_path.name == "xdd_en_train.jsonl" and note is None
    answers = {i.id: i for i in items}
    prior = evaluate(items, dict(zip(answers, rank_items(PriorRanker.from_file(prior_path), items, progress=False),
                                     strict=True)))
    chance = evaluate(items, dict(zip(answers, rank_items(RandomRanker(), items, progress=False), strict=True)))
    assert 0.65 < prior.r_at_1 < 0.80 and 0.10 < (prior.macro_r_at_1_by_emotion or 0) < 0.25
    assert 0.06 < chance.r_at_1 < 0.14 and chance.map < prior.map
    assert set(prior.r_at_1_by_emotion) == {"happiness", "sadness", "anger", "fear", "disgust", "surprise"}


def test_cped_prior_falls_back_to_xdd_zh_train() -> None:
    path, note = default_prior_data(_require("cped_valid"))
    assert path.name == "xdd_zh_train.jsonl" and "cped" in (note or "")


def test_tweeteval_full_label_set_has_the_20_emoji_in_label_order() -> None:
    items = full_label_set_items(load_srs(_require("tweeteval_emoji_val")))
    labels = items[0].candidates
    assert len(labels) == 20 and all(i.candidates == labels for i in items)
    assert all(labels[i.label] == i.answer for i in items if i.label is not None)
    metrics = evaluate(items, {i.id: list(i.candidates) for i in items})  # fixed order: always label 0 (❤)
    assert metrics.macro_f1 is not None and 0 < metrics.macro_f1 < 5


@pytest.mark.slow
def test_text_match_beats_random_on_macro_r1_xdd_en_dev() -> None:
    """Needs the default catalogue too (`make catalog`)."""
    catalog_dir = Paths.from_env().cache_dir / "catalog" / "default"
    if not catalog_dir.is_dir():
        pytest.skip(f"default catalogue not built at {catalog_dir} (run `make catalog`)")
    import torch

    from eigml.catalog import load_catalog

    torch.set_num_threads(2)
    items = load_srs(_require("xdd_en_dev"))
    catalog = load_catalog(catalog_dir)
    results = {}
    for model in ("random", "text-match"):
        rankings = rank_items(load_ranker(model, catalog), items, progress=False)
        results[model] = evaluate(items, {i.id: r for i, r in zip(items, rankings, strict=True)})
    assert (results["text-match"].macro_r_at_1_by_emotion or 0) > (results["random"].macro_r_at_1_by_emotion or 0) + 0.03
