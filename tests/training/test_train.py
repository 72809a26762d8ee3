"""Training through the real entry point on tiny data, checkpoints, and `rank` with a trained model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from eigml.catalog import load_catalog
from eigml.checkpoint import CheckpointError, load_checkpoint, read_spec
from training.__main__ import main
from training.benchmarks.eigml_ranker import load_checkpoint_ranker
from training.config import load_train_config, parse_overrides
from training.data import load_srs


def test_overrides_are_typed_and_validated() -> None:
    assert parse_overrides(["--optim.lr", "1e-4", "--run.seed=3"]) == {"optim": {"lr": 1e-4}, "run": {"seed": 3}}
    cfg = load_train_config("configs/tiny.yaml", ["--model.eiks.enabled", "false"],
                            env={"STICKERS_TRAIN__OPTIM__BATCH_SIZE": "7"})
    assert cfg.model.eiks.enabled is False and cfg.optim.batch_size == 7 and cfg.model.dim == 32
    with pytest.raises(ValueError):
        load_train_config("configs/tiny.yaml", ["--optim.no_such_key", "1"])
    with pytest.raises(ValueError):
        load_train_config("configs/tiny.yaml", ["--model.matching.kind", "bilinear"])


def test_checkpoint_describes_itself(tiny_checkpoint: Path) -> None:
    spec = read_spec(tiny_checkpoint)
    assert spec["version"].startswith("eigml-")
    assert spec["intention_labels"] == ["inform", "question"]
    assert spec["model_config"]["dim"] == 32
    assert (tiny_checkpoint / "text_encoder" / "tokenizer.json").exists()
    run_dir = tiny_checkpoint.parent
    for name in ("config.yaml", "history.json", "summary.json", "loss.png"):
        assert (run_dir / name).exists(), name


def test_rank_with_checkpoint_reproduces_dev_metrics(tiny_checkpoint: Path, tiny_catalog: Path,
                                                     tiny_srs: dict[str, Path], tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "pred.jsonl"
    assert main(["rank", "--model", str(tiny_checkpoint), "--catalog", str(tiny_catalog),
                 "--data", str(tiny_srs["dev"]), "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--data", str(tiny_srs["dev"]), "--predictions", str(out)]) == 0
    metrics = json.loads(capsys.readouterr().out)
    # the checkpoint was selected on this dev file: ranking it again must give the recorded metric
    assert metrics["map"] == pytest.approx(read_spec(tiny_checkpoint)["metrics"]["map"], abs=1e-9)


def test_ranker_batched_equals_single_and_accepts_image_only_packs(tiny_checkpoint: Path,
                                                                   tiny_catalog: Path,
                                                                   tiny_srs: dict[str, Path]) -> None:
    catalog = load_catalog(tiny_catalog)
    ranker = load_checkpoint_ranker(tiny_checkpoint, catalog)
    items = load_srs(tiny_srs["dev"])
    batched = ranker.score_candidates([i.dialogue for i in items], [i.candidates for i in items])
    for item, row in zip(items, batched, strict=True):
        single = ranker.score_candidates([item.dialogue], [item.candidates])[0]
        assert single == pytest.approx(row, abs=1e-5)
    plain = [s for s in catalog.ids(["plain"])][:20]
    scores = ranker.score_candidates([items[0].dialogue], [plain])[0]
    assert len(scores) == len(plain) and all(0 < s < 1 for s in scores)


def test_checkpoint_mismatch_is_refused(tiny_checkpoint: Path, tmp_path: Path) -> None:
    import shutil

    broken = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint, broken)
    spec = json.loads((broken / "model.json").read_text())
    spec["model_config"]["dim"] = 64
    (broken / "model.json").write_text(json.dumps(spec))
    with pytest.raises(CheckpointError, match="do not fit"):
        load_checkpoint(broken)


@pytest.mark.parametrize("switch", ["model.eiks.enabled", "model.samm.enabled"])
def test_disabling_a_component_removes_its_parameters(switch: str) -> None:
    from eigml.model.eigml import EIGML

    base = load_train_config("configs/tiny.yaml")
    ablated = load_train_config("configs/tiny.yaml", [f"--{switch}", "false"])
    full_names = {n for n, _ in EIGML(base.model).named_parameters()}
    ablated_names = {n for n, _ in EIGML(ablated.model).named_parameters()}
    prefix = switch.split(".")[1] + "."
    assert any(n.startswith(prefix) for n in full_names)
    assert not any(n.startswith(prefix) for n in ablated_names)


def test_resume_continues_from_last_state(tiny_catalog: Path, tiny_srs: dict[str, Path], tmp_path: Path,
                                          cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STICKERS_CACHE_DIR", str(cache_dir))
    args = ["train", "--config", "configs/tiny.yaml", "--out-dir", str(tmp_path),
            "--data.train", str(tiny_srs["train"]), "--data.catalog", str(tiny_catalog), "--run.num_threads", "1"]
    assert main([*args, "--optim.max_steps", "2"]) == 0
    first = torch.load(tmp_path / "last" / "state.pt", weights_only=False)
    assert first["step"] == 2
    assert main([*args, "--optim.max_steps", "4", "--run.resume", "true"]) == 0
    second = torch.load(tmp_path / "last" / "state.pt", weights_only=False)
    assert second["step"] == 4
    assert [row["step"] for row in second["history"]["train"]] == [1, 2, 3, 4]


def test_report_reads_recorded_metrics_and_maps_items_to_other_art(tiny_checkpoint: Path, tiny_catalog: Path,
                                                                   tiny_srs: dict[str, Path]) -> None:
    from training.benchmarks.report import in_other_art, recorded_row

    row = recorded_row(tiny_checkpoint, "full")
    assert row.metrics.map == pytest.approx(read_spec(tiny_checkpoint)["metrics"]["map"])
    assert row.benchmark == "tiny_dev"
    catalog = load_catalog(tiny_catalog)
    items = load_srs(tiny_srs["dev"])
    mapped = in_other_art(items, catalog, "twemoji")
    assert len(mapped) == len(items)
    for before, after in zip(items, mapped, strict=True):
        assert all(c.startswith("twemoji/") for c in after.candidates)
        assert catalog[after.answer].emoji == catalog[before.answer].emoji
    assert in_other_art(items, catalog, "plain") == []  # an images-only pack has no emoji to map by


def test_class_balance_weights() -> None:
    from training.train import class_balance_weights

    items = load_srs_like(["happiness"] * 6 + ["fear"] * 2)
    assert class_balance_weights(items, 0.0) is None
    weights = class_balance_weights(items, 1.0)
    assert weights is not None and weights.mean().item() == pytest.approx(1.0)
    # full balancing: each class carries the same total weight
    assert weights[:6].sum().item() == pytest.approx(weights[6:].sum().item())


def test_act_balance_weights_leave_items_without_an_act_out() -> None:
    import dataclasses

    from training.train import act_balance_weights

    items = load_srs_like(["happiness"] * 7)
    acts = ["inform"] * 4 + ["farewell"] * 2 + [None]
    items = [dataclasses.replace(item, act=act) for item, act in zip(items, acts, strict=True)]
    assert act_balance_weights(items, 0.0) is None
    weights = act_balance_weights(items, 1.0)
    assert weights is not None and weights[6].item() == 0.0
    assert weights[:6].mean().item() == pytest.approx(1.0)
    assert weights[:4].sum().item() == pytest.approx(weights[4:6].sum().item())  # each act the same total
    assert act_balance_weights([dataclasses.replace(i, act=None) for i in items], 1.0) is None

def load_srs_like(emotions: list[str]):
    from eigml.dialogue import Dialogue, Turn
    from training.data import SRSItem

    return [SRSItem(id=str(i), lang="en", dialogue=Dialogue((Turn("A", "x"),)), candidates=("a/1", "a/2"),
                    answer="a/1", emotion=e) for i, e in enumerate(emotions)]


def test_encoder_delay_holds_the_encoder_then_runs_its_own_schedule() -> None:
    from training.train import _lr_factor

    plain = [_lr_factor(s, 10, 2) for s in range(10)]
    assert plain[:3] == [0.5, 1.0, 1.0] and plain[-1] == pytest.approx(1 / 8)
    delayed = [_lr_factor(s, 10, 2, 4) for s in range(10)]
    assert delayed[:4] == [0.0] * 4  # LP: only the heads move
    assert delayed[4:7] == [0.5, 1.0, 1.0]  # FT: warmup and decay over the 6 steps left
    assert delayed[-1] == pytest.approx(1 / 4)
    assert all(a >= b for a, b in zip(delayed[5:], delayed[6:], strict=False))
