"""Loss and dev-metric curves of a training run, as PNG files beside its checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402

DEV_METRICS = ("map", "r_at_1", "macro_r_at_1_by_emotion", "macro_f1")


def plot_history(history: dict[str, list[dict[str, Any]]], out_dir: Path) -> list[Path]:
    """Write loss.png (every named term) and dev.png (dev metrics by step); returns the files written."""
    written = []
    train = history.get("train", [])
    if train:
        fig, ax = plt.subplots(figsize=(8, 4.5))
        names = [k for k in train[-1] if k != "step"]
        for name in names:
            points = [(row["step"], row[name]) for row in train if name in row]
            ax.plot([p[0] for p in points], [p[1] for p in points], label=name,
                    linewidth=2.0 if name == "loss" else 1.0)
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.set_yscale("log")
        ax.legend(fontsize=7, ncol=2)
        ax.set_title("training loss by term")
        fig.tight_layout()
        written.append(out_dir / "loss.png")
        fig.savefig(written[-1], dpi=100)
        plt.close(fig)
    dev = history.get("dev", [])
    if dev:
        fig, ax = plt.subplots(figsize=(8, 4.5))
        for name in DEV_METRICS:
            points = [(row["step"], row[name]) for row in dev if row.get(name) is not None]
            if points:
                scale = 0.01 if name == "macro_f1" else 1.0  # macro-F1 is in percent
                ax.plot([p[0] for p in points], [p[1] * scale for p in points], marker="o", label=name)
        ax.set_xlabel("step")
        ax.set_ylabel("dev metric (0-1)")
        ax.legend(fontsize=8)
        ax.set_title("dev metrics")
        fig.tight_layout()
        written.append(out_dir / "dev.png")
        fig.savefig(written[-1], dpi=100)
        plt.close(fig)
    return written
