"""The dialogue side of EIGML as one ONNX graph, and the query encoder that serves it.

`python -m training export --model CHECKPOINT --out FILE.onnx`

The graph maps tokenised dialogues, `input_ids`, `attention_mask`, `token_type_ids` (B, L) int64, to
`query` (B, D) unit length, `emotion_probs` (B, E), `intention_probs` (B, A; A = 0 without intention
labels), `dialogue`, `emotion`, `intention` (B, D): `EIGML.encode_dialogues` in eval mode (full text
encoder, projections, emotion head, learned knowledge, EIKS with its predicted step, intention head).
Tokenisation stays in Python (`TextEncoder.tokenize`). The file records the model version in its
metadata and `QueryEncoder` refuses a file exported from other weights.

Export uses the torch.export-based exporter (needs `onnxscript`): the TorchScript tracer bakes the
example's sequence length into transformers' BERT masking and into `nn.MultiheadAttention`'s packed
key/value projection, so its graph is wrong for any other length.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch
from torch import Tensor, nn

from eigml import __version__
from eigml.dialogue import Dialogue, Turn
from eigml.model.interface import QueryEncoding
from eigml.model.knowledge import CometKnowledgeConfig

if TYPE_CHECKING:
    import onnx
    import onnxruntime

    from eigml.model.config import ModelConfig
    from eigml.model.eigml import EIGML

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT_NAMES = ("query", "emotion_probs", "intention_probs", "dialogue", "emotion", "intention")
FORMAT_VERSION = 1
MIN_OPSET = 18  # the torch.export-based exporter's lowest; its down-conversion to 17 fails on this graph
VERSION_KEY = "model_version"  # metadata_props entries written by export_query_encoder
FORMAT_KEY = "query_encoder_format"
Backend = Literal["auto", "onnx", "torch"]

# Two dialogues of different lengths: torch.export specialises a dimension whose example size is 0 or 1.
_EXAMPLE = (
    Dialogue((Turn("A", "did you see the news this morning?"), Turn("B", "yes, I can't believe it")),
             responder="A"),
    Dialogue((Turn("B", "hi"),)),
)


class ExportError(ValueError):
    """A model that cannot be exported, or an ONNX file that does not fit the model serving it."""


def export_blocker(config: ModelConfig) -> str | None:
    """Why a model with this config has no ONNX query encoder (None: it has one)."""
    if isinstance(config.knowledge, CometKnowledgeConfig):
        return ("its intention knowledge comes from COMET, a seq2seq model that generates text for every "
                "request, which ONNX export does not cover; serve it with the PyTorch backend")
    return None


class QueryGraph(nn.Module):
    """EIGML's dialogue inference path with tensor inputs and outputs (the exported graph)."""

    def __init__(self, model: EIGML) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor) -> tuple[Tensor, ...]:
        """(B, L) int64 x3 -> the six OUTPUT_NAMES tensors, batch first."""
        tokens = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        # learned knowledge reads token states only; the last turns' texts are COMET's input
        out = self.model.encode_tokens(tokens, last_turns=())
        encoding = self.model.query_encoding(out)
        return (encoding.query, encoding.emotion_probs, encoding.intention_probs,
                *(encoding.features[name] for name in OUTPUT_NAMES[3:]))


def export_query_encoder(model: EIGML, path: Path, *, opset: int = MIN_OPSET) -> Path:
    """Write the query encoder graph to `path` atomically (aside, then renamed); returns `path`.

    Dynamic batch and sequence axes; metadata_props carry the model version and the label sets.
    Raises ExportError for a model whose inference path cannot be exported (COMET knowledge).
    """
    import onnx

    reason = export_blocker(model.config)
    if reason is not None:
        raise ExportError(f"cannot export model {model.version}: {reason}")
    if opset < MIN_OPSET:
        raise ExportError(f"opset {opset} is below {MIN_OPSET}, the lowest the exporter writes for this graph")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tokens = model.text_encoder.tokenize(_EXAMPLE)
    batch = torch.export.Dim("batch")
    sequence = torch.export.Dim("sequence", max=model.config.text.max_length)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            program = torch.onnx.export(
                QueryGraph(model), tuple(tokens[name] for name in INPUT_NAMES), dynamo=True,
                input_names=list(INPUT_NAMES), output_names=list(OUTPUT_NAMES), opset_version=opset,
                dynamic_shapes=tuple({0: batch, 1: sequence} for _ in INPUT_NAMES), verbose=False)
    finally:
        model.train(was_training)
    if program is None:
        raise ExportError("torch.onnx.export returned no program")
    proto = program.model_proto
    onnx.helper.set_model_props(proto, {
        VERSION_KEY: model.version,
        FORMAT_KEY: str(FORMAT_VERSION),
        "package_version": __version__,
        "emotion_labels": json.dumps(list(model.emotion_labels)),
        "intention_labels": json.dumps(list(model.intention_labels)),
    })
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        onnx.save_model(proto, str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def text_encoder_matmuls(proto: onnx.ModelProto) -> list[str]:
    """Names of the text encoder's weight MatMuls: every MatMul with a constant right-hand side before the
    first node that reads a head's weights (`model.*` initialisers other than the text encoder's). The heads
    (emotion, intention, knowledge, EIKS) are small and close to the outputs: they stay float32."""
    constants = {i.name for i in proto.graph.initializer}
    constants |= {o for n in proto.graph.node if n.op_type == "Constant" for o in n.output}
    names = []
    for node in proto.graph.node:
        if any(i.startswith("model.") and not i.startswith("model.text_encoder.") for i in node.input):
            break
        if node.op_type == "MatMul" and len(node.input) == 2 and node.input[1] in constants:
            names.append(node.name)
    return names


def quantize_query_encoder(source: Path, path: Path) -> Path:
    """Write an int8 copy of the exported query encoder `source` to `path` (atomically): dynamic quantisation,
    per output channel, of the text encoder's weight MatMuls (`text_encoder_matmuls`); activations are
    quantised at run time, everything else stays float32. The metadata (model version, labels) is kept.
    About 1.8x faster at batch 1 on CPU; its quality loss is measured in docs/performance.md.

    Weights are quantised to 7 bits (`reduce_range`): the file runs on CPUs we do not know, and on x86 without
    VNNI (AVX2 only) ONNX Runtime's u8 x s8 kernels add pairs of products in saturating 16-bit lanes, which 8-bit
    weights overflow (on an AVX2-only EPYC the tiny test model's queries fell to cosine 0.974 with PyTorch's)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    nodes = text_encoder_matmuls(onnx.load(str(source), load_external_data=False))
    if not nodes:
        raise ExportError(f"{source} has no text-encoder MatMul to quantise")
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        quantize_dynamic(str(source), str(tmp), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"],
                         nodes_to_quantize=nodes, per_channel=True, reduce_range=True)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_session(path: Path, model_version: str, threads: int | None = None) -> onnxruntime.InferenceSession:
    """An ONNX Runtime CPU session for `path`; ExportError unless it was exported from `model_version`."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or 0  # 0: ONNX Runtime's default, one per physical core
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    if meta.get(FORMAT_KEY) != str(FORMAT_VERSION):
        raise ExportError(f"{path} is query encoder format {meta.get(FORMAT_KEY)}; this code reads "
                          f"format {FORMAT_VERSION} (export it again)")
    if meta.get(VERSION_KEY) != model_version:
        raise ExportError(f"{path} was exported from model {meta.get(VERSION_KEY)}, but the model loaded is "
                          f"{model_version}; export it again from this checkpoint")
    outputs = [o.name for o in session.get_outputs()]
    if outputs != list(OUTPUT_NAMES):
        raise ExportError(f"{path} has outputs {outputs}, expected {list(OUTPUT_NAMES)}")
    return session


class QueryEncoder:
    """Dialogues -> QueryEncoding through ONNX Runtime or PyTorch eager; both give the same values (1e-4).

    backend "auto" uses ONNX Runtime when `onnx_path` exists and the model is exportable, else PyTorch.
    `threads` sets ONNX Runtime's intra-op threads (PyTorch's count is process-wide: set it at the entry
    point). The model is put in eval mode.
    """

    backend: Literal["onnx", "torch"]

    def __init__(self, model: EIGML, onnx_path: Path | None = None, backend: Backend = "auto",
                 threads: int | None = None) -> None:
        self.model = model.eval()
        self.session: onnxruntime.InferenceSession | None = None
        if backend == "auto":
            usable = onnx_path is not None and Path(onnx_path).is_file() and export_blocker(model.config) is None
            backend = "onnx" if usable else "torch"
        if backend == "onnx":
            reason = export_blocker(model.config)
            if reason is not None:
                raise ExportError(f"model {model.version} has no ONNX query encoder: {reason}")
            if onnx_path is None or not Path(onnx_path).is_file():
                raise ExportError(f"backend 'onnx' needs an exported query encoder; {onnx_path} is not a file")
            self.session = load_session(Path(onnx_path), model.version, threads)
        elif backend != "torch":
            raise ValueError(f"unknown backend {backend!r}; expected 'auto', 'onnx' or 'torch'")
        self.backend = backend
        # a fast tokenizer raises "Already borrowed" when two threads use it at once (service workers)
        self._tokenize_lock = threading.Lock()

    def encode(self, dialogues: Sequence[Dialogue]) -> QueryEncoding:
        """Same fields and shapes as `EIGML.encode_dialogues` (float32 CPU tensors)."""
        if not dialogues:
            return self._empty()
        if self.session is None:
            with torch.inference_mode():
                return self.model.encode_dialogues(dialogues)
        with self._tokenize_lock:
            tokens = self.model.text_encoder.tokenize(dialogues)
        outputs = self.session.run(list(OUTPUT_NAMES), {name: tokens[name].numpy() for name in INPUT_NAMES})
        values = dict(zip(OUTPUT_NAMES, (torch.from_numpy(o) for o in outputs), strict=True))
        return self.model.with_act_cues(dialogues, QueryEncoding(
            query=values["query"], emotion_probs=values["emotion_probs"], intention_probs=values["intention_probs"],
            features={name: values[name] for name in OUTPUT_NAMES[3:]}))

    def _empty(self) -> QueryEncoding:
        d = self.model.config.dim
        return QueryEncoding(query=torch.zeros(0, d), emotion_probs=torch.zeros(0, len(self.model.emotion_labels)),
                             intention_probs=torch.zeros(0, len(self.model.intention_labels)),
                             features={name: torch.zeros(0, d) for name in OUTPUT_NAMES[3:]})


def max_differences(reference: QueryEncoding, other: QueryEncoding) -> dict[str, float]:
    """Largest absolute difference per output name between two encodings of the same dialogues."""
    def named(e: QueryEncoding) -> dict[str, Tensor]:
        return {"query": e.query, "emotion_probs": e.emotion_probs, "intention_probs": e.intention_probs,
                **e.features}

    a, b = named(reference), named(other)
    return {name: float((a[name] - b[name]).abs().max()) if a[name].numel() else 0.0 for name in OUTPUT_NAMES}


CHECK_DIALOGUES = (
    Dialogue((Turn("A", "I failed my driving test again"), Turn("B", "oh no, what happened?"),
              Turn("A", "parallel parking. the examiner laughed")), responder="B"),
    Dialogue((Turn("A", "we won the match!!!"),)),
    Dialogue((Turn("A", "see you tomorrow"), Turn("B", "ok, good night")), responder=None),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, required=True, help="EIGML checkpoint folder")
    parser.add_argument("--out", type=Path, required=True, help="ONNX file to write")
    parser.add_argument("--opset", type=int, default=MIN_OPSET, help=f"ONNX opset (at least {MIN_OPSET})")
    parser.add_argument("--tolerance", type=float, default=1e-4,
                        help="largest allowed difference from PyTorch on a few check dialogues")
    parser.add_argument("--int8", action="store_true",
                        help="write the int8 (dynamically quantised) query encoder instead: faster, less exact "
                             "(serve it with STICKERS_ONNX_PATH; quality loss in docs/performance.md)")
    parser.add_argument("--int8-min-cosine", type=float, default=0.98,
                        help="with --int8: lowest allowed cosine between its retrieval vectors and PyTorch's")


def run(args: argparse.Namespace) -> int:
    from eigml.checkpoint import CheckpointError, load_checkpoint
    from eigml.paths import Paths

    paths = Paths.from_env()
    out = Path(args.out)
    candidate = out.with_name(f".{out.name}.unchecked")  # renamed into place once it matches PyTorch
    try:
        model = load_checkpoint(args.model, models_dir=paths.cache_dir / "models")
        export_query_encoder(model, candidate, opset=args.opset)
        differences = max_differences(QueryEncoder(model, backend="torch").encode(CHECK_DIALOGUES),
                                      QueryEncoder(model, candidate, backend="onnx").encode(CHECK_DIALOGUES))
        worst = max(differences.values())
        if worst > args.tolerance:
            raise ExportError(f"the ONNX graph differs from PyTorch by up to {worst:.2e} > {args.tolerance} "
                              f"({differences}); {out} left unchanged")
        if args.int8:
            quantize_query_encoder(candidate, candidate)
            reference = QueryEncoder(model, backend="torch").encode(CHECK_DIALOGUES).query
            quantised = QueryEncoder(model, candidate, backend="onnx").encode(CHECK_DIALOGUES).query
            cosine = float(torch.nn.functional.cosine_similarity(reference, quantised).min())
            if cosine < args.int8_min_cosine:
                raise ExportError(f"the int8 graph's retrieval vectors reach cosine {cosine:.4f} with PyTorch's, "
                                  f"below {args.int8_min_cosine}; {out} left unchanged")
            worst = 1 - cosine
        os.replace(candidate, out)
    except (CheckpointError, ExportError) as e:
        raise SystemExit(f"export: {e}") from None
    finally:
        candidate.unlink(missing_ok=True)
    gap = "1 - lowest cosine of the retrieval vectors" if args.int8 else "largest difference"
    print(f"export: wrote {'int8 ' if args.int8 else ''}{out} ({out.stat().st_size / 2**20:.1f} MiB) for model "
          f"{model.version}; {gap} from PyTorch {worst:.2e}", file=sys.stderr)
    return 0
