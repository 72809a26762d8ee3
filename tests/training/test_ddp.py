"""Two-process DDP training over gloo on CPU, launched with torchrun, through the real entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from eigml.checkpoint import read_spec


def test_torchrun_two_processes(tiny_catalog: Path, tiny_srs: dict[str, Path], cache_dir: Path,
                                tmp_path: Path) -> None:
    env = dict(os.environ, STICKERS_CACHE_DIR=str(cache_dir), OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "training", "train", "--config", "configs/tiny.yaml", "--out-dir", str(tmp_path),
               "--data.train", str(tiny_srs["train"]), "--data.dev", str(tiny_srs["dev"]),
               "--data.catalog", str(tiny_catalog), "--optim.max_steps", "3", "--run.num_threads", "1"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 3
    assert read_spec(tmp_path / "best")["version"].startswith("eigml-")
