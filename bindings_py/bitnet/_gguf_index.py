"""A minimal pure-Python reader of a GGUF file's tensor table (names, types,
shapes, byte sizes), for the command line tools.

It reads only the header: the key/value section is skipped value by value and
the tensor data is never touched. A tensor's size is the distance to the next
tensor's data (the last one: to the end of the file), so it includes the
alignment padding (< ``general.alignment`` bytes) and needs no table of
quantisation formats. The engine itself (``core_c/gguf.c``) is what validates
a file; this reader trusts the file enough to list it.

``read_gguf`` also decodes the key/value metadata (for ``bitnet inspect``),
so it works on any GGUF, including files the engine cannot run.
"""

from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass, field
from typing import Any

# GGUF value type -> struct format of a scalar (string = 8, array = 9).
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
VALUE_TYPE_NAMES = {0: "u8", 1: "i8", 2: "u16", 3: "i16", 4: "u32", 5: "i32", 6: "f32", 7: "bool", 8: "str",
                    9: "array", 10: "u64", 11: "i64", 12: "f64"}

# GGML tensor type ids -> names (ggml.h; 36 is bitnet.cpp's I2_S, 134/135 ik_llama.cpp's).
GGML_TYPE_NAMES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 9: "Q8_1", 10: "Q2_K",
    11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K", 16: "IQ2_XXS", 17: "IQ2_XS", 18: "IQ3_XXS",
    19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS", 24: "I8", 25: "I16", 26: "I32",
    27: "I64", 28: "F64", 29: "IQ1_M", 30: "BF16", 34: "TQ1_0", 35: "TQ2_0", 36: "I2_S", 134: "IQ1_BN",
    135: "IQ2_BN",
}


def type_name(type_id: int) -> str:
    """``"TQ2_0"`` for 35; ``"type 99"`` for an id this table does not know."""
    return GGML_TYPE_NAMES.get(type_id, f"type {type_id}")


@dataclass(frozen=True)
class TensorInfo:
    name: str
    type_id: int  # GGML type id (0 F32, 1 F16, 35 TQ2_0, 36 I2_S, ...)
    shape: tuple[int, ...]  # GGUF order: shape[0] is the row length
    offset: int  # from the start of the file
    nbytes: int  # up to the next tensor (includes alignment padding)


class _Cursor:
    def __init__(self, buf: bytes | mmap.mmap, path: str) -> None:
        self.buf, self.pos, self.path = buf, 0, path

    def take(self, fmt: str) -> int | float | bool:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.buf):
            raise ValueError(f"{self.path}: truncated GGUF header")
        (value,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += size
        return value

    def string(self) -> str:
        n = int(self.take("<Q"))
        if self.pos + n > len(self.buf):
            raise ValueError(f"{self.path}: truncated GGUF header")
        s = bytes(self.buf[self.pos : self.pos + n]).decode("utf-8", errors="replace")
        self.pos += n
        return s

    def value(self, vtype: int, arrays: bool = False) -> Any:
        """The next value; arrays are decoded to lists only when ``arrays``
        (skipped and returned as None otherwise: the tensor table needs none)."""
        if vtype in _SCALARS:
            return self.take(_SCALARS[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            etype, count = int(self.take("<I")), int(self.take("<Q"))
            if etype in _SCALARS:
                size = struct.calcsize(_SCALARS[etype]) * count
                if self.pos + size > len(self.buf):
                    raise ValueError(f"{self.path}: truncated GGUF header")
                start, self.pos = self.pos, self.pos + size
                if not arrays:
                    return None
                fmt = "<%d%s" % (count, _SCALARS[etype][1])
                return list(struct.unpack_from(fmt, self.buf, start))
            items = [self.value(etype, arrays) for _ in range(count)]
            return items if arrays else None
        raise ValueError(f"{self.path}: unknown GGUF value type {vtype}")


@dataclass(frozen=True)
class GGUFHeader:
    """Everything before a GGUF's tensor data."""

    path: str
    version: int
    file_size: int
    alignment: int
    data_offset: int  # where the tensor data section starts
    metadata: dict[str, Any] = field(default_factory=dict)  # arrays as lists (None unless read with arrays)
    value_types: dict[str, str] = field(default_factory=dict)  # key -> "u32", "str", "array[str]", ...
    tensors: list[TensorInfo] = field(default_factory=list)


def read_gguf(path: str | os.PathLike[str], arrays: bool = True) -> GGUFHeader:
    """A GGUF file's header: metadata (arrays decoded when ``arrays``) and
    tensor table in file order. Raises OSError or ValueError."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size < 24:
            raise ValueError(f"{path}: not a GGUF file (too short)")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            c = _Cursor(buf, path)
            if bytes(buf[:4]) != b"GGUF":
                raise ValueError(f"{path}: not a GGUF file (bad magic)")
            c.pos = 4
            version = int(c.take("<I"))
            if version < 2:
                raise ValueError(f"{path}: GGUF version {version} is not supported")
            n_tensors, n_kv = int(c.take("<Q")), int(c.take("<Q"))
            alignment = 32
            metadata: dict[str, Any] = {}
            value_types: dict[str, str] = {}
            for _ in range(n_kv):
                key = c.string()
                vtype = int(c.take("<I"))
                if vtype == _ARRAY and c.pos + 4 <= len(buf):
                    (etype,) = struct.unpack_from("<I", buf, c.pos)
                    value_types[key] = f"array[{VALUE_TYPE_NAMES.get(etype, str(etype))}]"
                else:
                    value_types[key] = VALUE_TYPE_NAMES.get(vtype, str(vtype))
                value = c.value(vtype, arrays or key == "general.alignment")
                metadata[key] = value
                if key == "general.alignment" and isinstance(value, int) and value > 0:
                    alignment = value
            raw = []
            for _ in range(n_tensors):
                name = c.string()
                n_dims = int(c.take("<I"))
                shape = tuple(int(c.take("<Q")) for _ in range(n_dims))
                type_id, offset = int(c.take("<I")), int(c.take("<Q"))
                raw.append((name, type_id, shape, offset))
            data_start = (c.pos + alignment - 1) // alignment * alignment
    ends = sorted({off for _, _, _, off in raw}) + [size - data_start]
    next_off = {off: ends[i + 1] for i, off in enumerate(ends[:-1])}
    tensors = [
        TensorInfo(name, type_id, shape, data_start + off, max(0, next_off[off] - off))
        for name, type_id, shape, off in raw
    ]
    return GGUFHeader(path, version, size, alignment, data_start, metadata, value_types, tensors)


def read_tensor_table(path: str | os.PathLike[str]) -> list[TensorInfo]:
    """The tensors of a GGUF file in file order. Raises OSError or ValueError."""
    return read_gguf(path, arrays=False).tensors


def bytes_per_token(tensors: list[TensorInfo]) -> int:
    """Weight bytes one decoded token reads: every tensor once, except that
    token_embd contributes one row (a lookup) when the output projection is a
    separate ``output.weight``; with tied embeddings the output projection IS
    token_embd and reads all of it."""
    names = {t.name for t in tensors}
    tied = "output.weight" not in names
    total = 0
    for t in tensors:
        if t.name == "token_embd.weight" and not tied:
            rows = t.shape[1] if len(t.shape) > 1 and t.shape[1] else 1
            total += t.nbytes // rows
        else:
            total += t.nbytes
    return total
