"""deploy/docker/prepare.sh (the init job): runs the Makefile's targets against the data volume, then
points serving/{catalog,model,index} at the paths the Makefile reports, with relative links (the volume
is mounted elsewhere by other containers) that a second run with a new model key moves."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "docker" / "prepare.sh"

# a stand-in for the project's Makefile: the same variables and targets, a model key from a file
MAKEFILE = """\
STICKERS_CACHE_DIR ?= /nowhere
KEY := $(shell cat key)
CATALOG ?= $(STICKERS_CACHE_DIR)/catalog/default
MODEL ?= $(STICKERS_CACHE_DIR)/runs/default-$(KEY)/best
INDEX ?= $(STICKERS_CACHE_DIR)/index/default-$(KEY)
index:
\tmkdir -p $(CATALOG) $(MODEL) $(INDEX) && touch $(INDEX)/CURRENT
onnx:
\ttouch $(MODEL)/query_encoder.onnx
"""


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_prepare_links_what_the_makefile_built(tmp_path: Path) -> None:
    src, data = tmp_path / "src", tmp_path / "data"
    src.mkdir()
    data.mkdir()
    (src / "Makefile").write_text(MAKEFILE)
    env = {**os.environ, "STICKERS_DATA": str(data), "STICKERS_SRC": str(src)}

    def prepare(key: str) -> str:
        (src / "key").write_text(key)
        result = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    log = prepare("aaa")
    assert "serving/model -> ../runs/default-aaa/best" in log and "ready in" in log
    serving = data / "serving"
    assert os.readlink(serving / "index") == "../index/default-aaa"
    assert (serving / "model" / "query_encoder.onnx").is_file() and (serving / "index" / "CURRENT").is_file()
    assert (serving / "catalog").resolve() == (data / "catalog" / "default").resolve()

    prepare("bbb")  # a new model version: the links move, nothing is left half-replaced
    assert os.readlink(serving / "model") == "../runs/default-bbb/best"
    assert sorted(p.name for p in serving.iterdir()) == ["catalog", "index", "model"]

