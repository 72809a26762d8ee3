"""Shared fixtures: a tiny on-disk catalogue, a tiny SRS benchmark and a tiny trained EIGML checkpoint.

The checkpoint is trained once per test session through the real entry point (a few seconds), so
index and service tests exercise real weights, not fakes.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

EMOTION_WORDS = {
    "happiness": (["grinning face", "smile", "happy", "joy"], ["太好了", "开心"], "I am so happy today, great news!"),
    "sadness": (["crying face", "sad", "tears"], ["哭", "伤心"], "my dog died, I am heartbroken"),
    "anger": (["angry face", "mad", "rage"], ["生气", "愤怒"], "I am furious, he lied to me again"),
    "surprise": (["astonished face", "wow", "shock"], ["惊讶", "哇"], "what? I did not expect that at all"),
}
TINY_STEMS = [f"1f6{i:02x}" for i in range(12)]


def _draw(path: Path, index: int, style: int) -> None:
    image = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.ellipse([4, 4, 60, 60], fill=(255, 210 - 15 * index, 40 * style, 255))
    mouth = 40 + (index % 4) * 3
    draw.arc([18, mouth - 12, 46, mouth + 4], 0 if index % 2 else 180, 180 if index % 2 else 360,
             fill=(0, 0, 0, 255), width=3)
    image.save(path)


def emotion_of(index: int) -> str:
    return list(EMOTION_WORDS)[index % len(EMOTION_WORDS)]


def make_tiny_catalog(root: Path) -> Path:
    """Packs `noto` (with pack.json names/tags), `twemoji` (same emoji, other art) and `plain` (images only)."""
    for style, pack in enumerate(("noto", "twemoji", "plain")):
        folder = root / pack
        folder.mkdir(parents=True)
        stickers = {}
        for i, stem in enumerate(TINY_STEMS):
            _draw(folder / f"{stem}.png", i, style)
            en, zh, _ = EMOTION_WORDS[emotion_of(i)]
            stickers[stem] = {"names": {"en": en[0], "zh": zh[0]}, "tags": {"en": en[1:], "zh": zh[1:]},
                              "category": "smileys-emotion", "emoji": chr(0x1F600 + i)}
        if pack != "plain":
            (folder / "pack.json").write_text(json.dumps({
                "name": pack, "title": f"Tiny {pack}", "licence": "CC0-1.0", "attribution": "tests",
                "stickers": stickers}, ensure_ascii=False))
    return root


def make_tiny_srs(path: Path, count: int, seed: int) -> Path:
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as f:
        for n in range(count):
            i = rng.randrange(len(TINY_STEMS))
            emotion = emotion_of(i)
            others = [s for j, s in enumerate(TINY_STEMS) if emotion_of(j) != emotion]
            candidates = [f"noto/{TINY_STEMS[i]}"] + [f"noto/{s}" for s in rng.sample(others, 5)]
            rng.shuffle(candidates)
            item = {"id": f"tiny-{seed}-{n}", "lang": "en",
                    "context": [{"speaker": "A", "text": "hey"}, {"speaker": "B", "text": EMOTION_WORDS[emotion][2]}],
                    "responder": "A", "candidates": candidates, "answer": f"noto/{TINY_STEMS[i]}",
                    "emotion": emotion, "act": rng.choice(["inform", "question"])}
            f.write(json.dumps(item) + "\n")
    return path


@pytest.fixture(scope="session")
def tiny_catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_catalog(tmp_path_factory.mktemp("catalog"))


@pytest.fixture(scope="session")
def tiny_srs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("srs")
    return {"train": make_tiny_srs(root / "tiny_train.jsonl", 24, 0),
            "dev": make_tiny_srs(root / "tiny_dev.jsonl", 8, 1)}


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A session cache for features and converted weights, shared by every test that needs one."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory, tiny_catalog: Path, tiny_srs: dict[str, Path],
                    cache_dir: Path) -> Path:
    """A tiny EIGML checkpoint trained for a few steps through `python -m training train`."""
    from training.__main__ import main

    out = tmp_path_factory.mktemp("run")
    old = os.environ.get("STICKERS_CACHE_DIR")
    os.environ["STICKERS_CACHE_DIR"] = str(cache_dir)
    try:
        code = main(["train", "--config", "configs/tiny.yaml", "--out-dir", str(out),
                     "--data.train", str(tiny_srs["train"]), "--data.dev", str(tiny_srs["dev"]),
                     "--data.catalog", str(tiny_catalog), "--optim.max_steps", "3", "--run.num_threads", "1"])
    finally:
        if old is None:
            os.environ.pop("STICKERS_CACHE_DIR", None)
        else:
            os.environ["STICKERS_CACHE_DIR"] = old
    assert code == 0
    return out / "best"


@pytest.fixture()
def free_port() -> Callable[[], int]:
    """A function returning a loopback TCP port that nothing listens on (for servers a test starts)."""
    from live_service import free_port as pick  # the one implementation (scripts import it directly)

    return pick


@pytest.fixture()
def run_offline() -> Callable[[str, Path], subprocess.CompletedProcess[str]]:
    """Run Python code in a fresh process with the hub forbidden and an empty hub cache (HF_HOME)."""
    repo = Path(__file__).resolve().parents[1]

    def run(code: str, hf_home: Path) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(hf_home)}
        return subprocess.run([sys.executable, "-c", code], cwd=repo, env=env, capture_output=True, text=True,
                              timeout=120)

    return run
