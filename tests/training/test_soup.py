"""Runs that share `run.init_seed` start from the same weights, and `training soup` averages them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from eigml.checkpoint import CheckpointError, load_checkpoint, read_spec
from training.__main__ import main
from training.soup import average_state


def _train(out: Path, tiny_catalog: Path, tiny_srs: dict[str, Path], *extra: str) -> Path:
    assert main(["train", "--config", "configs/tiny.yaml", "--out-dir", str(out),
                 "--data.train", str(tiny_srs["train"]), "--data.dev", str(tiny_srs["dev"]),
                 "--data.catalog", str(tiny_catalog), "--optim.max_steps", "3", "--run.num_threads", "1",
                 *extra]) == 0
    return out / "best"


def test_average_state_means_floats_keeps_shared_tensors_and_refuses_odd_members() -> None:
    a = {"w": torch.tensor([1.0, 2.0]), "frozen": torch.tensor([0.1, 0.7]), "n": torch.tensor([3])}
    b = {"w": torch.tensor([3.0, 6.0]), "frozen": torch.tensor([0.1, 0.7]), "n": torch.tensor([3])}
    c = {"w": torch.tensor([2.0, 1.0]), "frozen": torch.tensor([0.1, 0.7]), "n": torch.tensor([3])}
    out = average_state([a, b, c])
    assert torch.allclose(out["w"], torch.tensor([2.0, 3.0]))
    assert torch.equal(out["frozen"], a["frozen"]) and torch.equal(out["n"], a["n"])
    with pytest.raises(ValueError, match="not a float"):
        average_state([a, {**b, "n": torch.tensor([4])}])
    with pytest.raises(ValueError, match="other weights"):
        average_state([a, {"w": b["w"]}])
    with pytest.raises(ValueError, match="shapes"):
        average_state([a, {**b, "w": torch.zeros(3)}])


def test_members_share_initial_weights_and_their_soup_is_their_mean(tiny_catalog: Path, tiny_srs: dict[str, Path],
                                                                    tmp_path: Path, cache_dir: Path,
                                                                    monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("STICKERS_CACHE_DIR", str(cache_dir))
    zero = _train(tmp_path / "m0", tiny_catalog, tiny_srs)
    one = _train(tmp_path / "m1", tiny_catalog, tiny_srs, "--run.seed=1", "--run.init_seed=0")
    other = _train(tmp_path / "o1", tiny_catalog, tiny_srs, "--run.seed=1")
    members = [load_checkpoint(zero), load_checkpoint(one)]
    states = [m.state_dict() for m in members]
    trained = [k for k in states[0] if not torch.equal(states[0][k], states[1][k])]
    assert trained, "the two members trained on different data orders and must differ somewhere"

    assert main(["soup", "--models", str(zero), str(one), "--out", str(tmp_path / "soup")]) == 0
    assert "the average of 2 runs" in capsys.readouterr().out
    soup = load_checkpoint(tmp_path / "soup").state_dict()
    for key in states[0]:
        if key in trained:
            assert torch.allclose(soup[key], (states[0][key] + states[1][key]) / 2, atol=1e-6), key
        else:
            assert torch.equal(soup[key], states[0][key]), key
    spec = read_spec(tmp_path / "soup")
    assert spec["metrics"]["soup_of"] == [members[0].version, members[1].version]
    assert spec["version"] not in spec["metrics"]["soup_of"]

    # a run with its own initial weights is further from member 0 than a run that shares them
    far = load_checkpoint(other).state_dict()
    head = next(k for k in trained if not k.startswith("text_encoder."))
    assert (far[head] - states[0][head]).norm() > (states[1][head] - states[0][head]).norm()


def test_soup_refuses_runs_of_another_config(tiny_checkpoint: Path, tmp_path: Path) -> None:
    import shutil

    odd = tmp_path / "odd"
    shutil.copytree(tiny_checkpoint, odd)
    spec = json.loads((odd / "model.json").read_text())
    spec["intention_labels"] = ["inform"]
    (odd / "model.json").write_text(json.dumps(spec))
    with pytest.raises(CheckpointError, match="intention_labels differs"):
        main(["soup", "--models", str(tiny_checkpoint), str(odd), "--out", str(tmp_path / "soup")])
