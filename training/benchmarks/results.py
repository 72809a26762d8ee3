"""The metric tables the benchmark commands write into docs/results.md: one row type, one renderer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from eigml.markdown import markdown_table
from training.benchmarks.evaluation import Metrics

METRIC_COLUMNS = ("items", "MAP", "R@1", "R@2", "R@5", "macro-R@1 by emotion", "macro-F1")


@dataclass(frozen=True)
class Row:
    benchmark: str
    model: str
    metrics: Metrics
    training: str | None = None  # how the model was trained (steps, time, memory), when known


def format_metric(value: float | None, percent: bool = False) -> str:
    """A fraction to 3 decimals, a percentage to 1; "–" for a metric that is not defined."""
    if value is None:
        return "–"
    return f"{value:.1f}" if percent else f"{value:.3f}"


def display_path(path: Path) -> str:
    """A path as a reader would type it: the home folder as ~."""
    home = str(Path.home())
    text = str(path)
    return "~" + text[len(home):] if text == home or text.startswith(home + "/") else text


def metrics_table(rows: Sequence[Row], *, training_column: bool = False) -> list[str]:
    """Markdown lines: benchmark, model, the metrics, and (when asked) how each model was trained."""
    header = ["benchmark", "model", *METRIC_COLUMNS, *(["training"] if training_column else [])]
    cells = []
    for row in rows:
        m = row.metrics
        cells.append([row.benchmark, row.model, m.items, format_metric(m.map), format_metric(m.r_at_1),
                      format_metric(m.r_at_2), format_metric(m.r_at_5), format_metric(m.macro_r_at_1_by_emotion),
                      format_metric(m.macro_f1, percent=True),
                      *([row.training or "–"] if training_column else [])])
    return markdown_table(header, cells)
