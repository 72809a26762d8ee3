"""The ONNX query encoder against the PyTorch model it was exported from (tiny trained checkpoint)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from eigml import export
from eigml.checkpoint import load_checkpoint
from eigml.dialogue import Dialogue, Turn
from eigml.export import ExportError, QueryEncoder, export_blocker, export_query_encoder, max_differences
from eigml.intentions import UNSAID_SHARE
from eigml.model.config import ModelConfig
from eigml.model.eigml import EIGML
from eigml.model.interface import QueryEncoding
from eigml.model.knowledge import CometKnowledgeConfig

TOLERANCE = 1e-4
LONG_TURN = "this sentence is long enough that a few of them fill the whole token budget of the tiny model"
DIALOGUES = [
    Dialogue((Turn("A", "hey"), Turn("B", "I am so happy today, great news!")), responder="A"),
    Dialogue((Turn("A", "my dog died, I am heartbroken"),)),  # responder None, one turn
    Dialogue(tuple(Turn("AB"[i % 2], f"{LONG_TURN} {i}") for i in range(12)), responder="B"),  # truncated
    Dialogue((Turn("A", "what?"), Turn("B", "I did not expect that at all"), Turn("A", "wow")), responder=None),
    Dialogue(()),  # no turns: [CLS] only
]


@pytest.fixture(scope="module")
def model(tiny_checkpoint: Path, cache_dir: Path) -> EIGML:
    torch.set_num_threads(1)
    return load_checkpoint(tiny_checkpoint, models_dir=cache_dir / "models")


@pytest.fixture(scope="module")
def onnx_file(tiny_checkpoint: Path, cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Written by `python -m training export`, which also checks it against PyTorch."""
    from training.__main__ import main

    out = tmp_path_factory.mktemp("export") / "query.onnx"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STICKERS_CACHE_DIR", str(cache_dir))
        assert main(["export", "--model", str(tiny_checkpoint), "--out", str(out)]) == 0
    return out


def torch_encoding(model: EIGML, dialogues: list[Dialogue]) -> QueryEncoding:
    with torch.inference_mode():
        return model.encode_dialogues(dialogues)


def test_export_writes_one_file_with_the_model_version(onnx_file: Path, model: EIGML) -> None:
    import onnx

    assert [p.name for p in onnx_file.parent.iterdir()] == [onnx_file.name]  # no temporary files left
    proto = onnx.load(str(onnx_file), load_external_data=False)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta[export.VERSION_KEY] == model.version
    assert [o.name for o in proto.graph.output] == list(export.OUTPUT_NAMES)


def test_onnx_matches_pytorch_on_varied_dialogues(onnx_file: Path, model: EIGML) -> None:
    tokens = model.text_encoder.tokenize(DIALOGUES)
    assert tokens["input_ids"].shape[1] == model.config.text.max_length  # the long dialogue was cut
    assert len(set(tokens["attention_mask"].sum(1).tolist())) == len(DIALOGUES)  # every length differs
    encoder = QueryEncoder(model, onnx_file, threads=1)
    assert encoder.backend == "onnx"
    got, want = encoder.encode(DIALOGUES), torch_encoding(model, DIALOGUES)
    assert want.intention_probs.shape == (len(DIALOGUES), len(model.intention_labels)) and model.intention_labels
    for name in ("query", "emotion_probs", "intention_probs"):
        assert getattr(got, name).shape == getattr(want, name).shape, name
    assert {k: v.shape for k, v in got.features.items()} == {k: v.shape for k, v in want.features.items()}
    differences = max_differences(want, got)
    assert max(differences.values()) < TOLERANCE, differences
    assert torch.allclose(got.query.norm(dim=-1), torch.ones(len(DIALOGUES)), atol=1e-5)


def test_batch_of_one_equals_batch_of_many(onnx_file: Path, model: EIGML) -> None:
    encoder = QueryEncoder(model, onnx_file, threads=1)
    batch = encoder.encode(DIALOGUES)
    for i, dialogue in enumerate(DIALOGUES):
        single = encoder.encode([dialogue])
        row = QueryEncoding(batch.query[i : i + 1], batch.emotion_probs[i : i + 1],
                            batch.intention_probs[i : i + 1], {k: v[i : i + 1] for k, v in batch.features.items()})
        differences = max_differences(row, single)
        assert max(differences.values()) < 1e-5, (i, differences)


def test_empty_batch_has_the_right_shapes(onnx_file: Path, model: EIGML) -> None:
    for backend in ("onnx", "torch"):
        empty = QueryEncoder(model, onnx_file, backend=backend).encode([])  # type: ignore[arg-type]
        assert empty.query.shape == (0, model.config.dim)
        assert empty.intention_probs.shape == (0, len(model.intention_labels))


def test_other_model_version_is_refused(onnx_file: Path, model: EIGML, monkeypatch: pytest.MonkeyPatch) -> None:
    exported = model.version
    monkeypatch.setattr(model, "version", "eigml-000000000000")
    with pytest.raises(ExportError) as error:
        QueryEncoder(model, onnx_file)  # auto does not silently fall back: the file is stale
    assert exported in str(error.value) and "eigml-000000000000" in str(error.value)


def test_falls_back_to_pytorch_without_an_onnx_file(model: EIGML, tmp_path: Path) -> None:
    encoder = QueryEncoder(model, tmp_path / "missing.onnx")
    assert encoder.backend == "torch"
    assert QueryEncoder(model).backend == "torch"
    got, want = encoder.encode(DIALOGUES), torch_encoding(model, DIALOGUES)
    assert max(max_differences(want, got).values()) == 0.0
    with pytest.raises(ExportError, match="missing.onnx"):
        QueryEncoder(model, tmp_path / "missing.onnx", backend="onnx")


def test_comet_knowledge_is_refused_with_a_clear_message(
    onnx_file: Path, model: EIGML, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    comet = CometKnowledgeConfig(model_path=tmp_path / "comet")
    assert export_blocker(ModelConfig.model_validate({})) is None
    assert "COMET" in (export_blocker(ModelConfig.model_validate({"knowledge": comet.model_dump()})) or "")
    monkeypatch.setattr(model, "config", model.config.model_copy(update={"knowledge": comet}))
    with pytest.raises(ExportError, match="COMET"):
        export_query_encoder(model, tmp_path / "comet.onnx")
    assert not (tmp_path / "comet.onnx").exists()
    assert QueryEncoder(model, onnx_file).backend == "torch"  # auto: PyTorch, even beside an ONNX file
    with pytest.raises(ExportError, match="COMET"):
        QueryEncoder(model, onnx_file, backend="onnx")


def test_model_without_intention_labels_gives_empty_intention_probs(
    model: EIGML, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(model, "intention_labels", ())
    monkeypatch.setattr(model, "intention_head", None)  # what EIGML builds without intention labels
    path = export_query_encoder(model, tmp_path / "no_intention.onnx")
    got = QueryEncoder(model, path, threads=1).encode(DIALOGUES)
    assert got.intention_probs.shape == (len(DIALOGUES), 0)
    assert max(max_differences(torch_encoding(model, DIALOGUES), got).values()) < TOLERANCE


def test_opset_below_the_exporters_minimum_is_refused(model: EIGML, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="opset 17"):
        export_query_encoder(model, tmp_path / "old.onnx", opset=17)


def test_export_command_refuses_a_folder_that_is_not_a_checkpoint(tmp_path: Path) -> None:
    from training.__main__ import main

    with pytest.raises(SystemExit, match="export: .*not an EIGML checkpoint"):
        main(["export", "--model", str(tmp_path), "--out", str(tmp_path / "query.onnx")])
    assert not (tmp_path / "query.onnx").exists()


def test_int8_export_keeps_the_version_is_smaller_and_stays_close(tiny_checkpoint: Path, cache_dir: Path,
                                                                  onnx_file: Path, tmp_path: Path) -> None:
    """`export --int8`: the text encoder's weight MatMuls become int8 (the heads stay float32), the file
    loads under the same model version, and the retrieval vector stays near PyTorch's."""
    import onnx

    from training.__main__ import main

    model = load_checkpoint(tiny_checkpoint, models_dir=cache_dir / "models")  # not the module's, patched above

    out = tmp_path / "query.int8.onnx"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STICKERS_CACHE_DIR", str(cache_dir))
        assert main(["export", "--model", str(tiny_checkpoint), "--out", str(out), "--int8"]) == 0
    assert [p.name for p in tmp_path.iterdir()] == [out.name]
    proto = onnx.load(str(out), load_external_data=False)
    ops = {n.op_type for n in proto.graph.node}
    assert "DynamicQuantizeLinear" in ops or "MatMulInteger" in ops
    assert export.text_encoder_matmuls(onnx.load(str(onnx_file), load_external_data=False))
    assert out.stat().st_size < onnx_file.stat().st_size
    got, want = QueryEncoder(model, out, threads=1).encode(DIALOGUES), torch_encoding(model, DIALOGUES)
    assert max_differences(want, got)["query"] > 0  # not the float32 graph
    assert torch.nn.functional.cosine_similarity(got.query, want.query).min() > 0.98


def test_int8_export_over_its_tolerance_leaves_nothing(tiny_checkpoint: Path, cache_dir: Path,
                                                       tmp_path: Path) -> None:
    from training.__main__ import main

    out = tmp_path / "query.int8.onnx"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STICKERS_CACHE_DIR", str(cache_dir))
        with pytest.raises(SystemExit, match="int8 graph"):
            main(["export", "--model", str(tiny_checkpoint), "--out", str(out), "--int8", "--int8-min-cosine", "1"])
    assert list(tmp_path.iterdir()) == []


def test_both_backends_follow_a_greeting_said_outright(onnx_file: Path, tiny_checkpoint: Path,
                                                      cache_dir: Path) -> None:
    # a fresh copy of the tiny model (other tests patch the shared one), its two intentions renamed so that
    # one is an act a cue sets (same head, same ONNX file)
    model = load_checkpoint(tiny_checkpoint, models_dir=cache_dir / "models")
    greeter = load_checkpoint(tiny_checkpoint, models_dir=cache_dir / "models")
    greeter.intention_labels = ("inform", "greeting")
    dialogues = [Dialogue((Turn("A", "good morning!"),)), Dialogue((Turn("A", "the bus is late"),))]
    raw = torch_encoding(model, dialogues).intention_probs  # the tiny model's labels: no cue applies
    unsaid = raw[1].clone()
    unsaid[1] *= UNSAID_SHARE  # no greeting said: the greeting keeps a share
    for backend in ("torch", "onnx"):
        encoded = QueryEncoder(greeter, onnx_file, backend=backend).encode(dialogues).intention_probs
        assert encoded[0, 1].item() >= 0.5, backend
        torch.testing.assert_close(encoded[1], unsaid / unsaid.sum(), atol=TOLERANCE, rtol=0)
