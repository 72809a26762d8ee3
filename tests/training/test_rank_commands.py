"""`rank`, `evaluate`, `recommend` and `bench-baselines` end to end through `training.__main__.main`,
on a tiny benchmark and a tiny catalogue built in tmp_path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from eigml.catalog import load_catalog
from eigml.paths import Paths
from training.__main__ import main
from training.benchmarks.baselines import PriorRanker, RandomRanker, default_prior_data
from training.benchmarks.rank import RankError, load_ranker, rank_items
from training.data import load_srs

STICKERS = {  # stem: (en name, tags, emoji)
    "1f62d": ("loudly crying face", ["cry", "sad", "tears", "sob"], "😭"),
    "1f600": ("grinning face", ["happy", "smile", "grin"], "😀"),
    "1f621": ("enraged face", ["angry", "mad", "rage", "furious"], "😡"),
    "1f631": ("face screaming in fear", ["scared", "fear", "scream"], "😱"),
    "1f382": ("birthday cake", ["birthday", "cake", "celebration"], "🎂"),
    "1f436": ("dog face", ["dog", "pet", "puppy"], "🐶"),
}
ZH = {"1f62d": ("放声大哭", ["哭", "大哭"])}

# (last turn, answer stem): an unambiguous match for a sentence encoder
CLEAR = [
    ("I can't stop crying, I am so sad and in tears.", "1f62d"),
    ("Happy birthday! Let's eat some cake.", "1f382"),
    ("I am furious, so angry and mad right now!", "1f621"),
    ("My new puppy is the cutest dog.", "1f436"),
]


def _png(path: Path, colour: tuple[int, int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (16, 16), colour).save(path)


@pytest.fixture()
def catalog_dir(tmp_path: Path) -> Path:
    root = tmp_path / "catalog"
    meta = {"name": "noto", "title": "Noto", "licence": "Apache-2.0", "attribution": "Google", "stickers": {}}
    for i, (stem, (name, tags, emoji)) in enumerate(STICKERS.items()):
        _png(root / "noto" / f"{stem}.png", (40 * i, 100, 200))
        names, zh_tags = {"en": name}, {"en": tags}
        if stem in ZH:
            names["zh"], zh_tags["zh"] = ZH[stem][0], ZH[stem][1]
        meta["stickers"][stem] = {"names": names, "tags": zh_tags, "emoji": emoji}
    (root / "noto" / "pack.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
    for stem in ("cat01", "cat02"):  # a pack with images only, no metadata
        _png(root / "art" / f"{stem}.png", (0, 0, 0))
    return root


def _item(item_id: str, text: str, answer: str, candidates: list[str], **extra: object) -> dict[str, object]:
    return {"id": item_id, "lang": "en", "context": [{"speaker": "A", "text": "hey"}, {"speaker": "B", "text": text}],
            "responder": "A", "candidates": candidates, "answer": answer, **extra}


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    """A tiny data folder: srs/xdd_en_dev.jsonl (clear items, varied candidate counts) + xdd_en_train.jsonl."""
    srs = tmp_path / "data" / "srs"
    srs.mkdir(parents=True)
    noto = [f"noto/{s}" for s in STICKERS]
    dev = [_item(f"d{i}", text, f"noto/{stem}", noto + ["art/cat01"], emotion=emo)
           for i, ((text, stem), emo) in enumerate(zip(CLEAR, ["sadness", "happiness", "anger", "happiness"],
                                                        strict=True))]
    dev.append(_item("d-two", "Oh no, I'm crying.", "noto/1f62d", ["art/cat02", "noto/1f62d"], emotion="sadness"))
    dev.append(_item("d-one", "whatever", "art/cat01", ["art/cat01"], emotion="happiness"))
    (srs / "xdd_en_dev.jsonl").write_text("".join(json.dumps(d) + "\n" for d in dev), encoding="utf-8")
    # the prior: 1f600 is the answer 3 times, 1f631 once; pools give 1f382 a back-off share via "happiness"
    train = [_item(f"t{i}", "x", f"noto/{s}", noto, emotion=e)
             for i, (s, e) in enumerate([("1f600", "happiness")] * 3 + [("1f631", "fear")])]
    (srs / "xdd_en_train.jsonl").write_text("".join(json.dumps(t) + "\n" for t in train), encoding="utf-8")
    (srs / "emotion_pools.json").write_text(json.dumps({"happiness": ["noto/1f600", "noto/1f382"],
                                                        "fear": ["noto/1f631"]}))
    return tmp_path / "data"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("STICKERS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(1)


def _rank_and_evaluate(model: str, catalog_dir: Path, data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                       *extra: str) -> tuple[list[dict[str, object]], dict[str, object]]:
    pred = tmp_path / f"{model}.jsonl"
    assert main(["rank", "--model", model, "--catalog", str(catalog_dir), "--data", str(data), "--out", str(pred),
                 "--batch-size", "2", *extra]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--data", str(data), "--predictions", str(pred)]) == 0
    metrics = json.loads(capsys.readouterr().out)
    return [json.loads(line) for line in pred.read_text().splitlines()], metrics


@pytest.mark.parametrize("model", ["random", "prior", "text-match"])
def test_rank_then_evaluate(model: str, catalog_dir: Path, data_dir: Path, tmp_path: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    data = data_dir / "srs" / "xdd_en_dev.jsonl"
    predictions, metrics = _rank_and_evaluate(model, catalog_dir, data, tmp_path, capsys)
    items = load_srs(data)
    assert [p["id"] for p in predictions] == [i.id for i in items]
    for p, item in zip(predictions, items, strict=True):
        assert sorted(p["ranking"]) == sorted(item.candidates)
    assert metrics["items"] == 6 and metrics["macro_f1"] is None
    if model == "text-match":
        # every clear item, and the 2-candidate one, has its answer first; the 1-candidate item trivially
        assert metrics["r_at_1"] == 1.0 and metrics["macro_r_at_1_by_emotion"] == 1.0
    if model == "prior":
        # 1f600 (seen 3x) beats 1f382 (pool back-off) beats unseen stickers: the birthday item ranks 1f382 2nd
        birthday = predictions[1]["ranking"]
        assert birthday[:2] == ["noto/1f600", "noto/1f382"] and birthday[2] == "noto/1f631"


def test_random_is_seeded_and_batch_independent(catalog_dir: Path, data_dir: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    data = data_dir / "srs" / "xdd_en_dev.jsonl"
    a, _ = _rank_and_evaluate("random", catalog_dir, data, tmp_path, capsys, "--seed", "7")
    items = load_srs(data)
    ranker = RandomRanker(seed=7)
    assert [p["ranking"] for p in a] == rank_items(ranker, items, batch_size=5, progress=False)
    assert [p["ranking"] for p in a] == [ranker.rank([i])[0] for i in items]
    assert [p["ranking"] for p in a] != rank_items(RandomRanker(seed=8), items, progress=False)


def test_text_match_batched_equals_single(catalog_dir: Path, data_dir: Path) -> None:
    catalog = load_catalog(catalog_dir)
    items = load_srs(data_dir / "srs" / "xdd_en_dev.jsonl")
    ranker = load_ranker("text-match", catalog)
    batched = ranker.score_candidates([i.dialogue for i in items], [i.candidates for i in items])
    fresh = load_ranker("text-match", catalog)  # uncached sticker embeddings
    for item, scores in zip(items, batched, strict=True):
        assert fresh.score_candidates([item.dialogue], [item.candidates])[0] == pytest.approx(scores, abs=1e-5)


def test_text_match_disk_store_equals_fresh(catalog_dir: Path, data_dir: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import training.benchmarks.baselines as baselines

    catalog = load_catalog(catalog_dir)
    items = load_srs(data_dir / "srs" / "xdd_en_dev.jsonl")
    dialogues, candidates = [i.dialogue for i in items], [i.candidates for i in items]
    fresh = load_ranker("text-match", catalog).score_candidates(dialogues, candidates)
    load_ranker("text-match", catalog, cache_dir=tmp_path / "store").score_candidates(dialogues, candidates)
    encoded: list[str] = []
    real = baselines.encode_texts
    monkeypatch.setattr(baselines, "encode_texts", lambda texts, *a, **k: encoded.extend(texts) or real(texts, *a, **k))
    ranker = load_ranker("text-match", catalog, cache_dir=tmp_path / "store")
    stored = ranker.score_candidates(dialogues, candidates)
    assert sorted(encoded) == sorted(ranker.query_text(d) for d in dialogues)  # no sticker text re-encoded
    for a, b in zip(fresh, stored, strict=True):
        assert a == pytest.approx(b, abs=1e-6)


def test_default_prior_file(data_dir: Path, tmp_path: Path) -> None:
    srs = data_dir / "srs"
    assert default_prior_data(srs / "xdd_en_dev.jsonl") == (srs / "xdd_en_train.jsonl", None)
    (srs / "xdd_zh_train.jsonl").write_text("")
    path, note = default_prior_data(srs / "cped_valid.jsonl")
    assert path == srs / "xdd_zh_train.jsonl" and "no cped training split" in (note or "")
    with pytest.raises(FileNotFoundError, match="--prior-data"):
        default_prior_data(srs / "tweeteval_emoji_val.jsonl")
    prior = PriorRanker.from_file(srs / "xdd_en_train.jsonl")
    assert prior.prob("noto/1f600") == pytest.approx(3 / 4)
    assert prior.prob("noto/1f382") == pytest.approx(3 / 4 / 2)  # P(happiness) / pool size
    assert prior.prob("noto/1f436") == 0.0


def test_rank_errors(catalog_dir: Path, data_dir: Path, tmp_path: Path) -> None:
    data = data_dir / "srs" / "xdd_en_dev.jsonl"
    out = str(tmp_path / "p.jsonl")
    with pytest.raises(SystemExit, match="no such baseline or checkpoint: nope.pt"):
        main(["rank", "--model", "nope.pt", "--catalog", str(catalog_dir), "--data", str(data), "--out", out])
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(_item("z", "hi", "noto/1f44d", ["noto/1f44d", "pack9/x", "noto/1f600"])) + "\n")
    with pytest.raises(SystemExit, match=r"2 candidate sticker id\(s\) are not in the catalogue.*noto/1f44d, pack9/x"):
        main(["rank", "--model", "random", "--catalog", str(catalog_dir), "--data", str(bad), "--out", out])
    with pytest.raises(RankError, match="no such baseline"):
        load_ranker(str(tmp_path / "missing"), load_catalog(catalog_dir))


def test_evaluate_command_reports_bad_prediction(data_dir: Path, tmp_path: Path) -> None:
    pred = tmp_path / "p.jsonl"
    pred.write_text(json.dumps({"id": "d0", "ranking": ["noto/1f62d"]}) + "\n")
    with pytest.raises(SystemExit, match="no prediction for 5 item"):
        main(["evaluate", "--data", str(data_dir / "srs" / "xdd_en_dev.jsonl"), "--predictions", str(pred)])


def test_recommend_prints_top_k(catalog_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["recommend", "--catalog", str(catalog_dir), "--top-k", "3",
                 "How was the exam?", "I failed again, I just want to cry, so sad."]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["rank", "sticker", "emoji"] and len(lines) == 4
    first = lines[1].split()
    assert first[:3] == ["1", "noto/1f62d", "😭"] and "loudly crying face" in lines[1]
    assert lines[1].rstrip().endswith(str(catalog_dir / "noto" / "1f62d.png"))
    assert main(["recommend", "--catalog", str(catalog_dir), "--packs", "art", "--top-k", "5", "hello"]) == 0
    rows = capsys.readouterr().out.splitlines()[1:]
    assert [r.split()[1] for r in rows] == ["art/cat01", "art/cat02"] or \
        [r.split()[1] for r in rows] == ["art/cat02", "art/cat01"]
    with pytest.raises(SystemExit, match="unknown pack"):
        main(["recommend", "--catalog", str(catalog_dir), "--packs", "nope", "hello"])


def test_bench_baselines_writes_table(catalog_dir: Path, data_dir: Path, tmp_path: Path) -> None:
    srs = data_dir / "srs"
    # 2 of the 3 emoji per item, so candidate sets differ and macro-F1 is only defined on the derived file
    a, b, c = "noto/1f62d", "noto/1f600", "noto/1f382"
    tweets = [_item(f"te{i}", text, answer, cands, label=label) for i, (text, answer, cands, label) in enumerate([
        ("so sad", a, [a, b], 0), ("yay", b, [b, c], 1), ("cake!", c, [a, c], 2), ("lol", b, [a, b], 1)])]
    (srs / "tweeteval_emoji_val.jsonl").write_text("".join(json.dumps(t) + "\n" for t in tweets))
    (srs / "tweeteval_emoji_train.jsonl").write_text("".join(json.dumps(t) + "\n" for t in tweets))
    out = tmp_path / "docs" / "results.md"
    out.parent.mkdir()
    out.write_text("# Results\n\nkeep me\n\n<!-- baselines:start -->\nold\n<!-- baselines:end -->\n\ntail\n")
    assert main(["bench-baselines", "--catalog", str(catalog_dir), "--data-dir", str(data_dir),
                 "--out", str(out), "--models", "random,prior,text-match"]) == 0  # lr-probe: slow (e5)
    text = out.read_text()
    assert "keep me" in text and text.rstrip().endswith("tail") and "old" not in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line][1:]
    # xdd_en_dev (3 models) + tweeteval val (3) + its all-emoji variant (3); the cped/xdd_zh files are absent
    assert len(rows) == 9
    assert all(r.split("|")[9].strip() == "–" for r in rows if "all 3 emoji" not in r)
    assert all(r.split("|")[9].strip() != "–" for r in rows if "all 3 emoji" in r)
    text_match = next(r for r in rows if r.startswith("| xdd_en_dev | text-match"))
    assert text_match.split("|")[5].strip() == "1.000"  # R@1
    assert "python -m training bench-baselines --catalog" in text
    derived = Paths.from_env().cache_dir / "bench" / "tweeteval_emoji_val_all_labels.jsonl"
    assert all(len(i.candidates) == 3 for i in load_srs(derived))
    assert not list((tmp_path / "docs").glob("*.jsonl"))


def test_bench_baselines_skips_missing_data(catalog_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "results.md"
    assert main(["bench-baselines", "--catalog", str(catalog_dir), "--data-dir", str(tmp_path / "absent"),
                 "--out", str(out)]) == 0
    assert "no benchmark data" in capsys.readouterr().err and not out.exists()
