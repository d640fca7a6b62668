"""Read tensors from a directory of ``*.safetensors`` files, one tensor at a time.

The format (github huggingface/safetensors, docs "format"): an 8-byte little-endian
header length N, N bytes of JSON ``{name: {"dtype", "shape", "data_offsets": [begin,
end]}, "__metadata__": {...}}``, then the raw little-endian data, offsets relative to
its start. We read it ourselves over ``numpy.memmap`` instead of ``safetensors.safe_open``
because numpy has no bfloat16, so the ``safetensors`` numpy backend refuses BF16
tensors, the dtype of BitNet-b1.58-2B-4T's master weights. A memmap also gives
zero-copy row slices: converting a tensor never holds more than that tensor (and the
embedding is converted in row chunks).
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._convert_common import ConvertError

# safetensors dtype -> numpy dtype of the raw data (BF16 is read as its uint16 bits)
_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2", "I64": "<i8", "I32": "<i4",
           "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?"}
FLOAT_DTYPES = ("F64", "F32", "F16", "BF16")


@dataclass(frozen=True)
class _Entry:
    path: Path
    dtype: str
    shape: tuple[int, ...]
    begin: int  # absolute file offsets
    end: int


class SafetensorsDir:
    """The tensors of every ``*.safetensors`` file of a checkpoint directory (a sharded
    checkpoint's ``model.safetensors.index.json`` names the files)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        index = directory / "model.safetensors.index.json"
        if index.is_file():
            try:
                weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
                files = sorted({directory / f for f in weight_map.values()})
            except (ValueError, KeyError, TypeError) as exc:
                raise ConvertError(f"{index}: not a safetensors index ({exc})") from None
        else:
            files = sorted(directory.glob("*.safetensors"))
        if not files:
            other = sorted(p.name for p in directory.glob("*.bin")) + sorted(p.name for p in directory.glob("*.pt"))
            hint = f" (found {', '.join(other[:3])}: PyTorch pickles are not read; save the model with " \
                   f"safe_serialization=True)" if other else ""
            raise ConvertError(f"{directory}: no *.safetensors files{hint}")
        self._entries: dict[str, _Entry] = {}
        self._maps: dict[Path, np.memmap] = {}
        for f in files:
            self._read_header(f)

    def _read_header(self, path: Path) -> None:
        if not path.is_file():
            raise ConvertError(f"{path}: missing (named by model.safetensors.index.json)")
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise ConvertError(f"{path}: not a safetensors file (too short)")
            (n,) = struct.unpack("<Q", head)
            if n > size - 8 or n > 100 << 20:
                raise ConvertError(f"{path}: not a safetensors file (header length {n})")
            try:
                header = json.loads(fh.read(n).decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as exc:
                raise ConvertError(f"{path}: not a safetensors file ({exc})") from None
        base = 8 + n
        for name, info in header.items():
            if name == "__metadata__":
                continue
            try:
                dtype, shape = str(info["dtype"]), tuple(int(x) for x in info["shape"])
                begin, end = (int(x) for x in info["data_offsets"])
            except (KeyError, TypeError, ValueError):
                raise ConvertError(f"{path}: tensor {name}: malformed header entry") from None
            if dtype not in _DTYPES:
                raise ConvertError(f"{path}: tensor {name}: dtype {dtype} is not supported")
            want = int(np.prod(shape, dtype=np.int64)) * np.dtype(_DTYPES[dtype]).itemsize
            if end - begin != want or begin < 0 or base + end > size:
                raise ConvertError(f"{path}: tensor {name}: data offsets {begin}..{end} do not fit its "
                                  f"shape {list(shape)} {dtype} or the file")
            if name in self._entries:
                raise ConvertError(f"{path}: tensor {name} is also in {self._entries[name].path.name}")
            self._entries[name] = _Entry(path, dtype, shape, base + begin, base + end)

    # ---- queries ----------------------------------------------------------------------

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def shape(self, name: str) -> tuple[int, ...]:
        return self._entry(name).shape

    def dtype(self, name: str) -> str:
        """The safetensors dtype name: "BF16", "F32", "U8", ..."""
        return self._entry(name).dtype

    def raw(self, name: str) -> np.ndarray:
        """The tensor's data as a read-only array view of the file (BF16 as uint16 bits)."""
        e = self._entry(name)
        m = self._maps.get(e.path)
        if m is None:
            m = self._maps[e.path] = np.memmap(e.path, dtype=np.uint8, mode="r")
        return m[e.begin : e.end].view(_DTYPES[e.dtype]).reshape(e.shape)

    def float32(self, name: str, rows: slice | None = None) -> np.ndarray:
        """The tensor (or a slice of its first axis) as float32."""
        e = self._entry(name)
        if e.dtype not in FLOAT_DTYPES:
            raise ConvertError(f"tensor {name} is {e.dtype}, expected a float tensor")
        a = self.raw(name)
        if rows is not None:
            a = a[rows]
        if e.dtype == "BF16":
            return (a.astype(np.uint32) << 16).view(np.float32)
        return a.astype(np.float32)

    def _entry(self, name: str) -> _Entry:
        try:
            return self._entries[name]
        except KeyError:
            raise ConvertError(f"{self.directory}: tensor {name} is missing from the checkpoint") from None

    def close(self) -> None:
        self._maps.clear()


def is_safetensors_dir(path: str | os.PathLike[str]) -> bool:
    p = Path(path)
    return p.is_dir() and (any(p.glob("*.safetensors")) or (p / "model.safetensors.index.json").is_file())
