"""SRS loading: a good file round-trips; each kind of bad line fails with the file and its line number."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.data import DataError, load_srs, write_srs

GOOD = {
    "id": "x-1", "lang": "en",
    "context": [{"speaker": "A", "text": "How are you?"}, {"speaker": "B", "text": "I lost my job."}],
    "responder": "A", "candidates": ["noto/1f62d", "noto/1f600", "noto/1f621"], "answer": "noto/1f62d",
    "emotion": "sadness", "act": "inform", "context_emotions": ["neutral", "sadness"],
    "context_acts": ["question", "inform"], "response_text": "Oh no, I'm so sorry.",
}
TWEET = {"id": "te-1", "lang": "en", "context": [{"speaker": "A", "text": "so hot today"}], "responder": "A",
         "candidates": ["noto/2600-fe0f", "noto/2764-fe0f"], "answer": "noto/2600-fe0f", "label": 12}


def _write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "bench.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_load_good_file(tmp_path: Path) -> None:
    items = load_srs(_write(tmp_path, [json.dumps(GOOD), json.dumps(TWEET)]))
    first, second = items
    assert first.dialogue.turns[-1].text == "I lost my job." and first.dialogue.responder == "A"
    assert first.dialogue.lang == "en"
    assert first.candidates == ("noto/1f62d", "noto/1f600", "noto/1f621")
    assert first.context_emotions == ("neutral", "sadness") and first.emotion == "sadness"
    assert second.emotion is None and second.act is None and second.context_acts is None
    assert second.label == 12 and second.response_text is None


def test_write_then_load_round_trips(tmp_path: Path) -> None:
    items = load_srs(_write(tmp_path, [json.dumps(GOOD), json.dumps(TWEET)]))
    out = tmp_path / "sub" / "copy.jsonl"
    write_srs(out, items)
    assert load_srs(out) == items


def _bad(**changes: object) -> str:
    record = {**GOOD, **changes}
    return json.dumps({k: v for k, v in record.items() if v is not ...})


@pytest.mark.parametrize(("line", "message"), [
    ("{not json", "bad JSON"),
    ("[1, 2]", "expected a JSON object"),
    (_bad(id=...), "missing field 'id'"),
    (_bad(candidates="noto/1f62d"), "'candidates' must be list"),
    (_bad(candidates=[]), "'candidates' is empty"),
    (_bad(candidates=["noto/1f62d", "noto/1f62d"]), "duplicate candidates: noto/1f62d"),
    (_bad(answer="noto/1f44d"), "not among the candidates"),
    (_bad(context=[{"speaker": "A"}]), "context\\[0\\]"),
    (_bad(context=[]), "'context' is empty"),
    (_bad(label=True), "'label' must be int"),
    (_bad(context_emotions=["neutral"]), "1 labels for 2 context turns"),
    (_bad(candidates=["noto/1f62d", 5]), "list of strings"),
])
def test_bad_line_names_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = _write(tmp_path, [json.dumps(TWEET), "", line])
    with pytest.raises(DataError, match=rf"bench.jsonl:3: .*{message}"):
        load_srs(path)


def test_duplicate_id(tmp_path: Path) -> None:
    path = _write(tmp_path, [json.dumps(GOOD), json.dumps(TWEET), json.dumps(GOOD)])
    with pytest.raises(DataError, match=r"bench.jsonl:3: duplicate id 'x-1' \(first on line 1\)"):
        load_srs(path)
