"""What the readers of ``bitnet convert`` (Hugging Face directory, GGUF file) hand to the
writer: a :class:`Plan` of metadata and output tensors, each loaded only when written."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Union

import numpy as np

from ._errors import BitNetError
from ._quantize_np import Ternary


class ConvertError(BitNetError):
    """A checkpoint or file ``bitnet convert`` cannot convert; the message says which part."""

    def __init__(self, message: str, unsupported: bool = False) -> None:
        if unsupported:
            super().__init__(message, -4, "unsupported")
        else:
            super().__init__(message, -3, "malformed file")


# Roles decide a tensor's output type (see convert.py): the linear layers of the blocks
# take the requested ternary type, embeddings/output stay float, the rest stays F32.
LINEAR, EMBEDDING, VECTOR = "linear", "embedding", "vector"

# What a loader returns: float values, a ternary tensor, or raw bytes already in
# ``Raw.type_id`` (a GGUF tensor copied as it is).
@dataclass
class Raw:
    type_id: int
    data: np.ndarray  # uint8


@dataclass
class Rows:
    """A float matrix handed over in row chunks: the embedding, the largest tensor, is
    converted chunk by chunk instead of as one float32 copy."""

    n_rows: int
    n: int
    read: Callable[[slice], np.ndarray]  # rows -> float32 (len(rows), n)


Loaded = Union[np.ndarray, Ternary, Raw, Rows]


@dataclass
class OutTensor:
    """One tensor of the output file; ``shape`` is numpy order: (rows, row length) or (n,)."""

    name: str
    role: str
    shape: tuple[int, ...]
    load: Callable[[], Loaded]
    source: str = ""  # where it comes from, for messages (a Hugging Face tensor name)
    keep_type: int | None = None  # set: a quantized source type kept as it is (its bytes copied)
    keep_nbytes: int = 0  # the byte size of such a tensor


@dataclass
class KV:
    """One metadata entry; ``vtype``/``sub_type`` are GGUF value type ids."""

    key: str
    value: Any
    vtype: int
    sub_type: int | None = None


@dataclass
class Plan:
    arch: str
    kvs: list[KV] = field(default_factory=list)
    tensors: list[OutTensor] = field(default_factory=list)
    closers: list[Callable[[], None]] = field(default_factory=list)


# GGUF metadata value types (the GGUF spec's numbering)
UINT8, INT8, UINT16, INT16, UINT32, INT32, FLOAT32, BOOL, STRING, ARRAY, UINT64, INT64, FLOAT64 = range(13)


def read_json(path: Path, required: bool = True) -> dict[str, Any] | None:
    if not path.is_file():
        if required:
            raise ConvertError(f"{path.parent}: no {path.name} (not a Hugging Face model directory?)")
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ConvertError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ConvertError(f"{path}: expected a JSON object")
    return data
