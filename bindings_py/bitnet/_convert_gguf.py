"""A GGUF file -> a conversion Plan (re-quantization: ``bitnet convert in.gguf -o out.gguf``).

Read here rather than with ``gguf.GGUFReader`` because that reader only knows the
types in gguf's enum, and the inputs worth re-quantizing are exactly the ones it lacks
(bitnet.cpp's I2_S = 36, ik_llama.cpp's IQ1_BN = 134 / IQ2_BN = 135). Every key is
copied except ``general.architecture`` (the writer sets it), ``general.file_type`` (the
converter sets it) and ``general.alignment`` (the output uses the default 32).
"""

from __future__ import annotations

import mmap
import re
import struct
from pathlib import Path
from typing import Any

import numpy as np

from ._convert_common import ARRAY, EMBEDDING, KV, LINEAR, STRING, VECTOR, ConvertError, OutTensor, Plan, Raw, Rows
from ._quantize_np import FLOAT_TYPES, TERNARY_TYPES, decode_float, nbytes, unpack_ternary

_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_LINEAR_RE = re.compile(r"blk\.\d+\.(attn_q|attn_k|attn_v|attn_output|ffn_gate|ffn_up|ffn_down)\.weight")
_DROPPED_KEYS = ("general.architecture", "general.file_type", "general.alignment")
_CHUNK_ROWS = 4096


def is_gguf(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"GGUF"
    except OSError:
        return False


class _Cursor:
    def __init__(self, buf: Any, where: Path) -> None:
        self.buf, self.pos, self.where = buf, 0, where

    def take(self, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.buf):
            raise ConvertError(f"{self.where}: truncated GGUF header")
        (v,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += size
        return v

    def string(self) -> str:
        n = self.take("<Q")
        if self.pos + n > len(self.buf):
            raise ConvertError(f"{self.where}: truncated GGUF header")
        s = bytes(self.buf[self.pos : self.pos + n]).decode("utf-8", errors="surrogateescape")
        self.pos += n
        return s

    def value(self, vtype: int) -> tuple[Any, int | None]:
        if vtype in _SCALARS:
            return self.take(_SCALARS[vtype]), None
        if vtype == STRING:
            return self.string(), None
        if vtype == ARRAY:
            et, n = self.take("<I"), self.take("<Q")
            if et in _SCALARS:
                size = struct.calcsize(_SCALARS[et])
                if self.pos + n * size > len(self.buf):
                    raise ConvertError(f"{self.where}: truncated GGUF header")
                arr = np.frombuffer(self.buf, dtype=_SCALARS[et], count=n, offset=self.pos).tolist()
                self.pos += n * size
                return arr, et
            return [self.value(et)[0] for _ in range(n)], et
        raise ConvertError(f"{self.where}: unknown GGUF value type {vtype}")


def _tensor_nbytes(type_id: int, shape: tuple[int, ...], name: str, where: Path) -> int:
    n = shape[0] if shape else 1
    rows = int(np.prod(shape[1:], dtype=np.int64)) if len(shape) > 1 else 1
    try:
        return nbytes(type_id, rows, n)
    except KeyError:
        pass
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    try:
        block, size = GGML_QUANT_SIZES[GGMLQuantizationType(type_id)]
    except (ValueError, KeyError):
        raise ConvertError(f"{where}: tensor {name} has type id {type_id}, which this converter cannot read",
                           unsupported=True) from None
    return rows * n // block * size


def plan_from_gguf(path: Path) -> Plan:
    f = open(path, "rb")
    try:
        buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except ValueError:
        f.close()
        raise ConvertError(f"{path}: empty file") from None

    def close() -> None:
        try:
            buf.close()
        except BufferError:  # a tensor view still exists: the map goes with it
            pass
        f.close()

    try:
        plan = _read(buf, path)
    except BaseException:
        close()
        raise
    plan.closers.append(plan.tensors.clear)  # drops the views of the map before closing it
    plan.closers.append(close)
    return plan


def _read(buf: mmap.mmap, path: Path) -> Plan:
    c = _Cursor(buf, path)
    if bytes(buf[:4]) != b"GGUF":
        raise ConvertError(f"{path}: not a GGUF file")
    c.pos = 4
    version = c.take("<I")
    if version not in (2, 3):
        raise ConvertError(f"{path}: GGUF version {version} is not supported", unsupported=True)
    n_tensors, n_kv = c.take("<Q"), c.take("<Q")
    kvs: list[KV] = []
    arch, alignment = None, 32
    for _ in range(n_kv):
        key = c.string()
        vtype = c.take("<I")
        value, sub = c.value(vtype)
        if key == "general.architecture":
            arch = value
        if key == "general.alignment" and isinstance(value, int) and value > 0:
            alignment = value
        if key not in _DROPPED_KEYS:
            kvs.append(KV(key, value, vtype, sub))
    if not isinstance(arch, str):
        raise ConvertError(f"{path}: no general.architecture")
    infos = []
    for _ in range(n_tensors):
        name = c.string()
        nd = c.take("<I")
        shape = tuple(c.take("<Q") for _ in range(nd))
        infos.append((name, shape, c.take("<I"), c.take("<Q")))
    start = (c.pos + alignment - 1) // alignment * alignment
    data = np.frombuffer(buf, dtype=np.uint8)
    plan = Plan(arch, kvs)
    for name, shape, type_id, off in infos:
        size = _tensor_nbytes(type_id, shape, name, path)
        if start + off + size > len(data):
            raise ConvertError(f"{path}: tensor {name} runs past the end of the file")
        t = _out_tensor(name, shape, type_id, data[start + off : start + off + size])
        t.keep_nbytes = size
        plan.tensors.append(t)
    return plan


def _out_tensor(name: str, shape: tuple[int, ...], type_id: int, raw: np.ndarray) -> OutTensor:
    np_shape = tuple(reversed(shape))
    if len(shape) == 1:
        return OutTensor(name, VECTOR, np_shape, lambda: decode_float(type_id, raw, 1, shape[0]).reshape(-1), name)
    if len(shape) != 2:
        return OutTensor(name, EMBEDDING, np_shape, lambda: Raw(type_id, raw), name, keep_type=type_id)
    n, rows = shape
    if _LINEAR_RE.fullmatch(name):
        if type_id in TERNARY_TYPES:
            return OutTensor(name, LINEAR, np_shape, lambda: unpack_ternary(type_id, raw, rows, n), name)
        return OutTensor(name, LINEAR, np_shape, lambda: decode_float(type_id, raw, rows, n), name)
    if type_id in FLOAT_TYPES:
        row_bytes = raw.size // rows

        def read(sl: slice) -> np.ndarray:
            part = raw[sl.start * row_bytes : min(sl.stop, rows) * row_bytes]
            return decode_float(type_id, part, part.size // row_bytes, n)

        return OutTensor(name, EMBEDDING, np_shape, lambda: Rows(rows, n, read), name)
    # quantized embeddings (Q6_K, Q8_0, ...) are copied as they are unless a float type is asked for
    return OutTensor(name, EMBEDDING, np_shape, lambda: Raw(type_id, raw), name, keep_type=type_id)

