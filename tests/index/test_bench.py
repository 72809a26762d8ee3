"""bench/index_scale.py end to end at a tiny size: it measures every option and rewrites only its own section."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_index_scale_bench_writes_its_section(tmp_path: Path) -> None:
    out = tmp_path / "performance.md"
    out.write_text("# Performance\n\nservice numbers stay\n<!-- index-scale:start -->\nold\n<!-- index-scale:end -->\n"
                   "\n## after\n")
    command = [sys.executable, "bench/index_scale.py", "--count", "3000", "--clusters", "30", "--nlist", "16",
               "--queries", "50", "--timed", "10", "--timed-flat", "5", "--train", "3000", "--pq-train", "1000",
               "--nprobe", "4", "16", "--ef-search", "64", "--threads", "1", "--out", str(out)]
    subprocess.run(command, cwd=REPO, check=True, capture_output=True, timeout=300)
    text = out.read_text()
    assert text.startswith("# Performance\n\nservice numbers stay\n") and text.endswith("\n## after\n")
    assert text.count("<!-- index-scale:start -->") == 1 and "\nold\n" not in text
    rows = re.findall(r"^\| (\S+) \| (\S+) \|.*\| ([0-9.]+) \|$", text, re.M)
    assert [(o, s) for o, s, _ in rows] == [
        ("Flat", "exact"), ("IVF16,Flat", "nprobe=4"), ("IVF16,Flat", "nprobe=16"),
        ("IVF16,PQ32*", "nprobe=4"), ("IVF16,PQ32*", "nprobe=16"), ("HNSW32", "efSearch=64")]
    recall = {(o, s): float(r) for o, s, r in rows}
    assert recall[("Flat", "exact")] == 1.0 and recall[("IVF16,Flat", "nprobe=16")] == 1.0  # all lists: exact
    assert recall[("IVF16,Flat", "nprobe=4")] < 1.0


def test_index_scale_bench_measures_sq8_with_exact_rescoring(tmp_path: Path) -> None:
    out = tmp_path / "performance.md"
    command = [sys.executable, "bench/index_scale.py", "--count", "3000", "--clusters", "30", "--nlist", "16",
               "--queries", "50", "--timed", "10", "--train", "3000", "--options", "ivf,ivfsq",
               "--nprobe", "4", "16", "--sq-k-factor", "2", "--threads", "1", "--out", str(out)]
    subprocess.run(command, cwd=REPO, check=True, capture_output=True, timeout=300)
    rows = re.findall(r"^\| (\S+) \| ([^|]+) \|.*\| ([0-9.]+) \|$", out.read_text(), re.M)
    recall = {(o, s.strip()): float(r) for o, s, r in rows}
    assert set(recall) == {("IVF16,Flat", "nprobe=4"), ("IVF16,Flat", "nprobe=16"),
                           ("IVF16,SQ8,RFlat*", "nprobe=4, k_factor=2"), ("IVF16,SQ8,RFlat*", "nprobe=16, k_factor=2")}
    # every list visited, 2k SQ8 candidates re-scored exactly: the exact top 100
    assert recall[("IVF16,SQ8,RFlat*", "nprobe=16, k_factor=2")] >= 0.99
    assert recall[("IVF16,SQ8,RFlat*", "nprobe=4, k_factor=2")] < 1.0


def test_real_like_vectors_are_noisy_copies_of_the_stickers() -> None:
    import importlib.util

    import numpy as np

    spec = importlib.util.spec_from_file_location("index_scale", REPO / "bench" / "index_scale.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    sys.modules["index_scale"] = bench  # its dataclasses look their module up there
    spec.loader.exec_module(bench)
    rng = np.random.default_rng(123)  # not the bench's noise seed (0)
    stickers = rng.standard_normal((7, 32)).astype(np.float32)
    stickers /= np.linalg.norm(stickers, axis=1, keepdims=True)
    vectors = bench.real_like_vectors(stickers, 70, noise=0.3)
    assert vectors.shape == (70, 32) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # row i is a copy of sticker i % 7: nearest to it, near but not equal
    similarity = vectors @ stickers.T
    assert (similarity.argmax(1) == np.arange(70) % 7).all()
    own = similarity[np.arange(70), np.arange(70) % 7]
    assert (own > 0.9).all() and (own < 0.9999).all()
    assert len({tuple(np.round(v, 4)) for v in vectors}) == 70  # every copy differs


def test_index_scale_bench_measures_refined_fast_scan_pq(tmp_path: Path) -> None:
    out = tmp_path / "performance.md"
    command = [sys.executable, "bench/index_scale.py", "--count", "3000", "--clusters", "30", "--nlist", "16",
               "--queries", "50", "--timed", "10", "--train", "3000", "--nprobe", "2", "16", "--options", "ivfpqfs",
               "--k-factor", "4", "--threads", "1", "--out", str(out)]
    subprocess.run(command, cwd=REPO, check=True, capture_output=True, timeout=300)
    rows = re.findall(r"^\| (\S+) \| ([^|]+) \|.*\| ([0-9.]+) \|$", out.read_text(), re.M)
    assert [(o, s.strip()) for o, s, _ in rows] == [("IVF16,PQ64x4fs,RFlat", "nprobe=2, k_factor=4"),
                                                   ("IVF16,PQ64x4fs,RFlat", "nprobe=16, k_factor=4")]
    recall = [float(r) for _, _, r in rows]
    assert recall[1] > 0.99 and recall[0] < recall[1]  # every list, re-scored exactly: near exact
