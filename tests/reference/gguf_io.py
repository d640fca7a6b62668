"""Minimal GGUF reader/writer for the tests (little-endian GGUF v2/v3).

Tensors are kept as raw bytes with their ggml type id, so any type works, including
ones the PyPI ``gguf`` package does not know (IQ1_BN 134, IQ2_BN 135, I2_S 36).

The writer is split into pieces (``header_bytes``, ``kv_bytes``, ``tensor_info_bytes``,
``data_section``) so tests can assemble malformed files on purpose; ``GGUFFile.to_bytes``
joins them into a valid file.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from . import formats

GGUF_MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32

# GGUF metadata value types
UINT8, INT8, UINT16, INT16, UINT32, INT32, FLOAT32, BOOL, STRING, ARRAY, UINT64, INT64, FLOAT64 = range(13)
_SCALAR_FMT = {UINT8: "<B", INT8: "<b", UINT16: "<H", INT16: "<h", UINT32: "<I", INT32: "<i",
               FLOAT32: "<f", BOOL: "<?", UINT64: "<Q", INT64: "<q", FLOAT64: "<d"}


class GGUFFormatError(ValueError):
    pass


@dataclass
class KV:
    """One metadata entry. For ARRAY, ``value`` is a list and ``elem_type`` its element type."""
    type: int
    value: Any
    elem_type: int | None = None


@dataclass
class Tensor:
    name: str
    shape: tuple          # ggml order: shape[0] is the row length (ne0)
    type: int
    data: bytes = b""     # raw bytes, exactly nbytes long
    offset: int | None = None  # relative to the data section start (filled by reader / layout)

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= int(d)
        return n


@dataclass
class GGUFFile:
    kv: dict = field(default_factory=dict)          # name -> KV, insertion ordered
    tensors: list = field(default_factory=list)     # list[Tensor]
    version: int = 3
    alignment: int = DEFAULT_ALIGNMENT

    # -- convenience ------------------------------------------------------------------
    def get(self, key, default=None):
        kv = self.kv.get(key)
        return default if kv is None else kv.value

    def tensor(self, name) -> Tensor:
        for t in self.tensors:
            if t.name == name:
                return t
        raise KeyError(name)

    def has_tensor(self, name) -> bool:
        return any(t.name == name for t in self.tensors)

    def array(self, name):
        """Decode a tensor to a float64 numpy array of shape (ne[n-1], ..., ne[0])."""
        t = self.tensor(name)
        return formats.decode(t.type, t.data, t.shape)

    def to_bytes(self) -> bytes:
        align = self.alignment
        if "general.alignment" in self.kv:
            align = int(self.kv["general.alignment"].value)
        infos, data = data_section(self.tensors, align)
        head = header_bytes(self.version, len(self.tensors), len(self.kv)) + kv_bytes(self.kv) + \
            tensor_info_bytes(infos)
        return head + b"\0" * (_pad(len(head), align) - len(head)) + data

    def write(self, path):
        with open(path, "wb") as f:
            f.write(self.to_bytes())


def _pad(n, align):
    return (n + align - 1) // align * align


# ---------------------------------------------------------------------------------------
# writer pieces
def header_bytes(version: int, n_tensors: int, n_kv: int, magic: bytes = GGUF_MAGIC) -> bytes:
    return magic + struct.pack("<IQQ", version, n_tensors, n_kv)


def string_bytes(s) -> bytes:
    b = s.encode("utf-8") if isinstance(s, str) else bytes(s)
    return struct.pack("<Q", len(b)) + b


def value_bytes(vtype: int, value, elem_type=None) -> bytes:
    if vtype == STRING:
        return string_bytes(value)
    if vtype == ARRAY:
        out = [struct.pack("<IQ", elem_type, len(value))]
        if elem_type in _SCALAR_FMT:
            fmt = _SCALAR_FMT[elem_type]
            out.append(struct.pack("<%d%s" % (len(value), fmt[1]), *value))
        else:
            out.extend(value_bytes(elem_type, v) for v in value)
        return b"".join(out)
    return struct.pack(_SCALAR_FMT[vtype], value)


def kv_bytes(kv: dict) -> bytes:
    out = []
    for k, e in kv.items():
        out.append(string_bytes(k) + struct.pack("<I", e.type) + value_bytes(e.type, e.value, e.elem_type))
    return b"".join(out)


def tensor_info_bytes(tensors) -> bytes:
    out = []
    for t in tensors:
        out.append(string_bytes(t.name) + struct.pack("<I", len(t.shape)) +
                   struct.pack("<%dQ" % len(t.shape), *t.shape) + struct.pack("<IQ", t.type, t.offset))
    return b"".join(out)


def data_section(tensors, align=DEFAULT_ALIGNMENT):
    """Lay tensors out back to back, each padded to ``align``; return (infos, bytes)."""
    infos, chunks, off = [], [], 0
    for t in tensors:
        infos.append(Tensor(t.name, tuple(t.shape), t.type, t.data, off))
        chunks.append(t.data)
        end = off + len(t.data)
        chunks.append(b"\0" * (_pad(end, align) - end))
        off = _pad(end, align)
    return infos, b"".join(chunks)


# convenience constructors
def kv_u32(v): return KV(UINT32, int(v))
def kv_i32(v): return KV(INT32, int(v))
def kv_f32(v): return KV(FLOAT32, float(v))
def kv_bool(v): return KV(BOOL, bool(v))
def kv_str(v): return KV(STRING, str(v))
def kv_arr(elem_type, values): return KV(ARRAY, list(values), elem_type)


# ---------------------------------------------------------------------------------------
# reader
class _Buf:
    def __init__(self, data: bytes):
        self.b = memoryview(data)
        self.p = 0

    def take(self, n):
        if n < 0 or self.p + n > len(self.b):
            raise GGUFFormatError(f"truncated: need {n} bytes at offset {self.p}, file has {len(self.b)}")
        v = self.b[self.p:self.p + n]
        self.p += n
        return v

    def unpack(self, fmt):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self):
        n = self.unpack("<Q")
        return bytes(self.take(n)).decode("utf-8", errors="surrogateescape")


def _read_value(buf: _Buf, vtype: int):
    if vtype == STRING:
        return buf.string(), None
    if vtype == ARRAY:
        et = buf.unpack("<I")
        n = buf.unpack("<Q")
        if et in _SCALAR_FMT:
            fmt = _SCALAR_FMT[et]
            size = struct.calcsize(fmt)
            raw = buf.take(n * size)
            return list(struct.unpack("<%d%s" % (n, fmt[1]), raw)), et
        if et in (STRING, ARRAY):
            return [_read_value(buf, et)[0] for _ in range(n)], et
        raise GGUFFormatError(f"bad array element type {et}")
    if vtype in _SCALAR_FMT:
        return buf.unpack(_SCALAR_FMT[vtype]), None
    raise GGUFFormatError(f"bad value type {vtype}")


def read(path_or_bytes) -> GGUFFile:
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        data = bytes(path_or_bytes)
    else:
        with open(path_or_bytes, "rb") as f:
            data = f.read()
    buf = _Buf(data)
    if bytes(buf.take(4)) != GGUF_MAGIC:
        raise GGUFFormatError("bad magic")
    version = buf.unpack("<I")
    if version not in (2, 3):
        raise GGUFFormatError(f"unsupported version {version}")
    n_tensors = buf.unpack("<Q")
    n_kv = buf.unpack("<Q")
    g = GGUFFile(version=version)
    for _ in range(n_kv):
        key = buf.string()
        vt = buf.unpack("<I")
        val, et = _read_value(buf, vt)
        g.kv[key] = KV(vt, val, et)
    align = int(g.get("general.alignment", DEFAULT_ALIGNMENT))
    g.alignment = align
    infos = []
    for _ in range(n_tensors):
        name = buf.string()
        nd = buf.unpack("<I")
        shape = tuple(buf.unpack("<Q") for _ in range(nd))
        ttype = buf.unpack("<I")
        off = buf.unpack("<Q")
        infos.append((name, shape, ttype, off))
    start = _pad(buf.p, align)
    for name, shape, ttype, off in infos:
        n = 1
        for d in shape:
            n *= d
        nbytes = formats.nbytes(ttype, shape)
        a = start + off
        if a + nbytes > len(data):
            raise GGUFFormatError(f"tensor {name} data past end of file")
        g.tensors.append(Tensor(name, shape, ttype, data[a:a + nbytes], off))
    return g
