"""Generated sections of the docs (docs/results.md, docs/performance.md): one writer and one table renderer.

Each benchmark command owns the block between its two HTML-comment markers and rewrites only that block,
so hand-written text and other commands' sections around it survive every run.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def replace_section(path: Path, block: str, start: str, end: str, title: str = "# Results") -> None:
    """Put `block` (which begins with `start` and ends with `end`) in place of the old block of `path`;
    append it when the file has none; create the file (with `title`) when missing."""
    path = Path(path)
    text = path.read_text(encoding="utf-8") if path.exists() else title + "\n"
    if start in text and end in text.split(start, 1)[1]:
        before, rest = text.split(start, 1)
        text = before + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]],
                   align: Sequence[str] | None = None) -> list[str]:
    """Lines of a markdown table; `align` per column is "---" (default), "---:" or ":---:"."""
    rule = align if align is not None else ["---"] * len(header)
    return ["| " + " | ".join(header) + " |", "|" + "|".join(rule) + "|",
            *("| " + " | ".join(str(cell) for cell in row) + " |" for row in rows)]
