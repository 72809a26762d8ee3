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
