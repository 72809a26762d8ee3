"""Dialogue encodings one row at a time: split a batch, stack rows back, and bytes for the cache."""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from eigml.model.interface import QueryEncoding

# the per-dialogue fields of a QueryEncoding, in the order they are cached
ENCODING_FIELDS: tuple[str, ...] = ("query", "emotion_probs", "intention_probs", "dialogue", "emotion", "intention")


def pack_encoding(row: Mapping[str, np.ndarray]) -> bytes:
    """One dialogue's encoding as bytes: a JSON header of field sizes, then float32 values."""
    arrays = [np.ascontiguousarray(row[name], dtype=np.float32).ravel() for name in ENCODING_FIELDS]
    header = json.dumps([len(a) for a in arrays]).encode()
    return struct.pack("<I", len(header)) + header + b"".join(a.tobytes() for a in arrays)


def unpack_encoding(data: bytes) -> dict[str, np.ndarray]:
    """What `pack_encoding` wrote; ValueError for anything else (a foreign or damaged value)."""
    try:
        (size,) = struct.unpack_from("<I", data)
        lengths = json.loads(data[4 : 4 + size])
        flat = np.frombuffer(data, dtype=np.float32, offset=4 + size)
    except (struct.error, TypeError, ValueError) as error:
        raise ValueError(f"cached dialogue encoding is unreadable: {error}") from None
    if (not isinstance(lengths, list) or len(lengths) != len(ENCODING_FIELDS)
            or not all(isinstance(n, int) and n >= 0 for n in lengths) or sum(lengths) != flat.size):
        raise ValueError("cached dialogue encoding has the wrong layout")
    out, start = {}, 0
    for name, length in zip(ENCODING_FIELDS, lengths, strict=True):
        out[name] = flat[start : start + length]
        start += length
    return out


def encoding_layout(row: Mapping[str, np.ndarray]) -> dict[str, int]:
    """Each field's length in one dialogue's encoding: what a cached value must match to be used."""
    return {name: int(np.asarray(row[name]).size) for name in ENCODING_FIELDS}


def check_encoding(data: bytes, layout: Mapping[str, int]) -> dict[str, np.ndarray]:
    """`unpack_encoding` plus the checks a value from a shared store needs before the model sees it: every
    field float32 with the model's length, every value finite, probabilities in [0, 1]. ValueError if not."""
    row = unpack_encoding(data)
    for name in ENCODING_FIELDS:
        values = row[name]
        if values.dtype != np.float32 or values.size != layout[name]:
            raise ValueError(f"cached {name} is {values.dtype} x {values.size}, the model makes "
                             f"float32 x {layout[name]}")
        if not np.isfinite(values).all():
            raise ValueError(f"cached {name} holds NaN or infinite values")
    for name in ("emotion_probs", "intention_probs"):
        if row[name].size and ((row[name] < 0).any() or (row[name] > 1).any()):
            raise ValueError(f"cached {name} are not probabilities")
    return row


def encoding_rows(encoding: QueryEncoding) -> list[dict[str, np.ndarray]]:
    """(B, ...) QueryEncoding -> B dicts of float32 vectors."""
    fields = {"query": encoding.query, "emotion_probs": encoding.emotion_probs,
              "intention_probs": encoding.intention_probs, **encoding.features}
    arrays = {name: fields[name].detach().float().cpu().numpy() for name in ENCODING_FIELDS}
    return [{name: arrays[name][i] for name in ENCODING_FIELDS} for i in range(encoding.query.shape[0])]


def stack_rows(rows: Sequence[Mapping[str, np.ndarray]]) -> QueryEncoding:
    t = {name: torch.from_numpy(np.stack([r[name] for r in rows]).astype(np.float32, copy=False))
         for name in ENCODING_FIELDS}
    return QueryEncoding(query=t["query"], emotion_probs=t["emotion_probs"], intention_probs=t["intention_probs"],
                         features={"dialogue": t["dialogue"], "emotion": t["emotion"], "intention": t["intention"]})
