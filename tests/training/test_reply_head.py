"""The reply-emotion reader: fitted on the replier's rows only, it gives the served emotion, survives a
checkpoint and an ONNX export, and leaves a model without it (or not yet fitted) as it was."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import torch

from eigml.checkpoint import load_checkpoint, save_checkpoint
from eigml.dialogue import Dialogue, Turn
from eigml.export import QueryEncoder, export_query_encoder
from eigml.labels import EMOTIONS
from eigml.model.eigml import EIGML
from training.config import load_train_config
from training.data import SRSItem
from training.reply_head import fit_reply_head, is_reply_row, reply_rows

# one cue word per emotion, said in three different sentences; the model must learn word -> emotion
CUES = {"none": "schedule", "like": "gift", "happiness": "won", "sadness": "funeral", "anger": "stole",
        "fear": "burglar", "disgust": "maggots", "surprise": "suddenly"}
FRAMES = ("my neighbour {} today", "guess what, {} again", "so the {} thing happened")


def item(item_id: str, text: str, emotion: str) -> SRSItem:
    dialogue = Dialogue((Turn("A", text),), responder="B", lang="en")
    return SRSItem(id=item_id, lang="en", dialogue=dialogue, candidates=("x",), answer="x", emotion=emotion)


def reply_items() -> list[SRSItem]:
    rows = [item(f"own-{e}-{i}", frame.format(cue), e) for e, cue in CUES.items() for i, frame in enumerate(FRAMES)]
    # repeated copies count once; other sources (the writer's own feeling) and unlabelled rows are left out
    return rows + rows[:5] + [item(f"other-{i}", f"the {cue} one", "happiness") for i, cue in enumerate(CUES.values())] \
        + [item("own-unlabelled", "no label here", None)]  # type: ignore[arg-type]


def tiny_model(enabled: bool = True) -> EIGML:
    cfg = load_train_config("configs/tiny.yaml", [f"--model.reply_emotion.enabled={str(enabled).lower()}",
                                                  "--model.reply_emotion.c=1.0"])
    config = cfg.model.model_copy(update={"reply_emotion": cfg.model.reply_emotion.model_copy(
        update={"sources": ("own",)})})
    torch.manual_seed(0)
    return EIGML(config).eval()


DIALOGUES = [row.dialogue for row in reply_items()[:24:3]] + [
    Dialogue((Turn("A", "hi"), Turn("B", "the burglar was in our garden")), responder="A")]


def test_reply_rows_take_each_labelled_row_of_the_named_sources_once() -> None:
    rows = reply_rows(reply_items(), ("own",))
    assert len(rows) == 24
    assert {r.id.split("-")[0] for r in rows} == {"own"}


def test_the_default_reader_is_fitted_on_every_authored_row_and_nothing_else() -> None:
    sources = load_train_config("configs/default.yaml").model.reply_emotion.sources
    authored = Path("data/licence_clean/authored_replies.jsonl").read_text(encoding="utf-8").splitlines()
    ids = [json.loads(line)["id"] for line in authored if line.strip()]
    assert len(ids) > 800 and all(is_reply_row(i, sources) for i in ids)
    with gzip.open("data/licence_clean/texts.jsonl.gz", "rt", encoding="utf-8") as f:
        assert not any(is_reply_row(json.loads(line)["id"], sources) for line in f if line.strip())


def test_the_fitted_reader_gives_the_served_emotion_and_an_unfitted_one_changes_nothing() -> None:
    model = tiny_model()
    with torch.inference_mode():
        before = model.encode_dialogues(DIALOGUES)
        tokens = model.text_encoder.tokenize(DIALOGUES)
        shared = model.emotion_head(model.emotion_proj(model.text_encoder(tokens)[1])).softmax(-1)
    torch.testing.assert_close(before.emotion_probs, shared)  # not fitted: the shared head, as before

    fit = fit_reply_head(model, reply_items())
    assert fit.rows == 24 and fit.train_accuracy == 1.0
    assert model.reply_emotion_head is not None
    with torch.inference_mode():
        after = model.encode_dialogues(DIALOGUES)
        reader = model.reply_emotion_head(model.text_encoder(tokens)[1]).softmax(-1)
    torch.testing.assert_close(after.emotion_probs, reader)
    assert [EMOTIONS[k] for k in after.emotion_probs[:8].argmax(-1).tolist()] == list(CUES)
    torch.testing.assert_close(after.query, before.query)  # retrieval and intention are untouched
    torch.testing.assert_close(after.intention_probs, before.intention_probs)

    model.train()  # training's losses never see the reader
    with torch.no_grad():
        out = model.encode_tokens(model.text_encoder.tokenize(DIALOGUES), [d.turns[-1].text for d in DIALOGUES])
    assert "reply_emotion_logits" not in out


def test_the_reader_survives_a_checkpoint_and_the_onnx_export(tmp_path: Path) -> None:
    model = tiny_model()
    fit_reply_head(model, reply_items())
    save_checkpoint(model, tmp_path / "ckpt")
    loaded = load_checkpoint(tmp_path / "ckpt")
    assert loaded.reply_emotion_ready
    with torch.inference_mode():
        reference = model.encode_dialogues(DIALOGUES)
        torch.testing.assert_close(loaded.encode_dialogues(DIALOGUES).emotion_probs, reference.emotion_probs)
    onnx = export_query_encoder(loaded, tmp_path / "query.onnx")
    served = QueryEncoder(loaded, onnx, backend="onnx").encode(DIALOGUES)
    torch.testing.assert_close(served.emotion_probs, reference.emotion_probs, atol=1e-4, rtol=1e-4)

    unfitted = tiny_model()
    save_checkpoint(unfitted, tmp_path / "unfitted")
    assert not load_checkpoint(tmp_path / "unfitted").reply_emotion_ready


def test_a_model_without_the_reader_refuses_one_and_rows_missing_an_emotion_are_refused() -> None:
    with pytest.raises(ValueError, match="no reply-emotion head"):
        tiny_model(enabled=False).set_reply_emotion(torch.zeros(8, 1), torch.zeros(8))
    rows = [r for r in reply_items() if r.emotion != "fear"]
    with pytest.raises(ValueError, match=r"none for \['fear'\]"):
        fit_reply_head(tiny_model(), rows)
