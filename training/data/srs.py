"""Sticker-response-selection (SRS) benchmark files: one JSON item per line (see ../shared/data/README.md).

An item is a dialogue, the candidate sticker ids and the one `answer`. Loading validates every line and
raises `DataError` naming the file and the 1-based line number, so a bad file fails before any ranking.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eigml.dialogue import Dialogue, Turn


def strip_label_leaks(text: str) -> str:
    """Text without U+FE0F. TweetEval left the variation selector where ❤️/☀️ was removed (87% of texts that
    carry it answer ❤): a label leak, not language, so no model or baseline may see it (../shared/data/README.md)."""
    return text.replace("\ufe0f", "")


class DataError(ValueError):
    """A benchmark line that cannot be used; the message starts with `path:line:`."""


@dataclass(frozen=True)
class SRSItem:
    """One benchmark item. Optional labels are None when the file does not carry them.

    `response_text` (the reply's words, training files only) is kept for training-time analysis and
    must never be shown to a ranker: it is the answer in words.
    """

    id: str
    lang: str
    dialogue: Dialogue
    candidates: tuple[str, ...]
    answer: str
    emotion: str | None = None
    act: str | None = None
    context_emotions: tuple[str, ...] | None = None
    context_acts: tuple[str, ...] | None = None
    label: int | None = None  # TweetEval class index (0..19) in tweeteval_* files
    response_text: str | None = None


def _require(record: dict[str, Any], key: str, kind: type, *, optional: bool = False) -> Any:
    if key not in record or record[key] is None:
        if optional:
            return None
        raise ValueError(f"missing field {key!r}")
    value = record[key]
    # bool is a subclass of int; a JSON true is not a label index
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(f"field {key!r} must be {kind.__name__}, got {type(value).__name__}")
    return value


def _str_tuple(record: dict[str, Any], key: str, *, optional: bool) -> tuple[str, ...] | None:
    values = _require(record, key, list, optional=optional)
    if values is None:
        return None
    if not all(isinstance(v, str) for v in values):
        raise ValueError(f"field {key!r} must be a list of strings")
    return tuple(values)


def parse_item(record: object) -> SRSItem:
    """Validate one decoded JSON line and build the item; ValueError says what is wrong."""
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
    item_id = _require(record, "id", str)
    lang = _require(record, "lang", str)
    context = _require(record, "context", list)
    if not context:
        raise ValueError("field 'context' is empty")
    turns = []
    for i, turn in enumerate(context):
        if not isinstance(turn, dict) or not isinstance(turn.get("speaker"), str) \
                or not isinstance(turn.get("text"), str):
            raise ValueError(f"context[{i}] must be an object with string 'speaker' and 'text'")
        turns.append(Turn(speaker=turn["speaker"], text=strip_label_leaks(turn["text"])))
    responder = _require(record, "responder", str, optional=True)
    candidates = _str_tuple(record, "candidates", optional=False)
    assert candidates is not None
    if not candidates:
        raise ValueError("field 'candidates' is empty")
    if len(set(candidates)) != len(candidates):
        dupes = sorted({c for c in candidates if candidates.count(c) > 1})
        raise ValueError(f"duplicate candidates: {', '.join(dupes)}")
    answer = _require(record, "answer", str)
    if answer not in candidates:
        raise ValueError(f"answer {answer!r} is not among the candidates")
    context_emotions = _str_tuple(record, "context_emotions", optional=True)
    context_acts = _str_tuple(record, "context_acts", optional=True)
    for key, values in (("context_emotions", context_emotions), ("context_acts", context_acts)):
        if values is not None and len(values) != len(turns):
            raise ValueError(f"field {key!r} has {len(values)} labels for {len(turns)} context turns")
    return SRSItem(
        id=item_id,
        lang=lang,
        dialogue=Dialogue(turns=tuple(turns), responder=responder, lang=lang),
        candidates=candidates,
        answer=answer,
        emotion=_require(record, "emotion", str, optional=True),
        act=_require(record, "act", str, optional=True),
        context_emotions=context_emotions,
        context_acts=context_acts,
        label=_require(record, "label", int, optional=True),
        response_text=_require(record, "response_text", str, optional=True),
    )


def iter_srs(path: str | Path) -> Iterator[SRSItem]:
    """Items of a benchmark file in file order; DataError (with path:line) on the first bad line."""
    path = Path(path)
    seen: dict[str, int] = {}
    with path.open(encoding="utf-8") as f:
        for line_number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                item = parse_item(json.loads(line))
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{line_number}: bad JSON: {e.msg} (column {e.colno})") from e
            except ValueError as e:
                raise DataError(f"{path}:{line_number}: {e}") from e
            if item.id in seen:
                raise DataError(f"{path}:{line_number}: duplicate id {item.id!r} (first on line {seen[item.id]})")
            seen[item.id] = line_number
            yield item


def load_srs(path: str | Path) -> list[SRSItem]:
    """All items of a benchmark file; see `iter_srs`."""
    return list(iter_srs(path))


def item_to_record(item: SRSItem) -> dict[str, Any]:
    """The JSON object `parse_item` reads back into an equal item (absent optional fields are left out)."""
    record: dict[str, Any] = {
        "id": item.id,
        "lang": item.lang,
        "context": [{"speaker": t.speaker, "text": t.text} for t in item.dialogue.turns],
        "responder": item.dialogue.responder,
        "candidates": list(item.candidates),
        "answer": item.answer,
    }
    optional: dict[str, Any] = {
        "emotion": item.emotion, "act": item.act,
        "context_emotions": None if item.context_emotions is None else list(item.context_emotions),
        "context_acts": None if item.context_acts is None else list(item.context_acts),
        "label": item.label, "response_text": item.response_text,
    }
    record.update({k: v for k, v in optional.items() if v is not None})
    return record


def write_srs(path: str | Path, items: list[SRSItem]) -> None:
    """Write items as a benchmark file (creating parent folders)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for item in items:
            f.write(json.dumps(item_to_record(item), ensure_ascii=False) + "\n")
