"""Convert a Hugging Face BitNet / ternary LLaMA checkpoint to GGUF, or re-quantize a GGUF.

    >>> from bitnet.convert import convert
    >>> convert("bitnet-b1.58-2B-4T", "model.gguf", outtype="i2_s")     # doctest: +SKIP
    >>> convert("model.gguf", "model-tq2_0.gguf", outtype="tq2_0")      # doctest: +SKIP

The source is a directory with config.json, *.safetensors and tokenizer.json or
tokenizer.model (which checkpoints are understood, and how their weights are read:
``bitnet._convert_hf``; the tokenizer: ``bitnet._convert_vocab``), or a GGUF file.

Output types (``outtype``): ``i2_s``, ``tq2_0``, ``tq1_0`` (ternary), ``f16``, ``f32``.
They apply to the blocks' linear weights (attn_q/k/v/output, ffn_gate/up/down). The
token embedding and a separate output matrix are written F16 (F32 for ``f32``); a GGUF
source whose embedding/output is already quantized (Q6_K, Q8_0, ...) keeps it as it is
unless ``f16``/``f32`` is asked for. Norms, biases, ``.scale`` and ``rope_freqs`` are F32.

A ternary type stores the weights exactly: the values must be {-1, 0, +1} x a scale (one
per tensor for I2_S, one per 256 weights for TQ*), which every BitNet checkpoint gives
(its weights are ternarized on reading). A weight that is not ternary (a plain float
LLaMA) is an error naming the tensor. Fallback: a linear weight whose row length is not a
multiple of the type's block (256 for TQ*, 128 for I2_S) is written F16, with a warning.

Needs the ``gguf`` package (``pip install 'libbitnet[convert]'``): the file is written
with its ``GGUFWriter``, header first, then one tensor at a time, into a temporary file
renamed over ``out_path`` at the end, so a failed conversion leaves nothing behind.
"""

from __future__ import annotations

import errno
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ._convert_common import EMBEDDING, LINEAR, ConvertError, OutTensor, Plan, Raw, Rows
from ._convert_gguf import is_gguf, plan_from_gguf
from ._quantize_np import (F16, F32, I2_S, TQ1_0, TQ2_0, Ternary, decode_float, encode, nbytes, row_multiple,
                           ternary_from_values, type_name)

OUTTYPES = {"i2_s": I2_S, "tq2_0": TQ2_0, "tq1_0": TQ1_0, "f16": F16, "f32": F32}
# general.file_type ("mostly <type>"): llama.cpp's llama_ftype numbers; 40 is bitnet.cpp's
# LLAMA_FTYPE_MOSTLY_I2_S (the value in Microsoft's BitNet-b1.58-2B-4T GGUF)
FILE_TYPES = {F32: 0, F16: 1, TQ1_0: 36, TQ2_0: 37, I2_S: 40}
QUANTIZATION_VERSION = 2  # ggml's GGML_QNT_VERSION, which llama.cpp writes into every file
_SCALE_GROUP = {I2_S: 0, TQ2_0: 256, TQ1_0: 256}  # weights per scale (0: the whole tensor)
_CHUNK_ROWS = 4096


def convert(src_dir_or_gguf: str | os.PathLike[str], out_path: str | os.PathLike[str], outtype: str = "i2_s",
            progress: bool = True) -> Path:
    """Convert a Hugging Face model directory (or re-quantize a GGUF file) into a GGUF file
    at ``out_path`` whose linear weights are ``outtype``; returns ``Path(out_path)``.

    Raises ``FileNotFoundError`` for a missing source, ``ValueError`` for an unknown
    ``outtype`` and ``bitnet.BitNetError`` for a source it cannot convert (the message
    names the file, key or tensor at fault)."""
    target = outtype_id(outtype)
    gguf = _import_gguf()
    src, out = Path(src_dir_or_gguf), Path(out_path)
    if not src.exists():
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(src))
    if src.is_dir():
        plan = _plan_hf(src)
    elif is_gguf(src):
        plan = plan_from_gguf(src)
    else:
        raise ConvertError(f"{src}: neither a Hugging Face model directory nor a GGUF file")
    try:
        _write(gguf, plan, out, target, progress)
    finally:
        for close in plan.closers:
            close()
    return out


def outtype_id(outtype: str) -> int:
    try:
        return OUTTYPES[outtype.lower()]
    except (KeyError, AttributeError):
        raise ValueError(f"unknown outtype {outtype!r} (choose from {', '.join(OUTTYPES)})") from None


def _import_gguf() -> Any:
    try:
        import gguf
    except ImportError:
        raise ConvertError("bitnet convert needs the gguf package: pip install 'libbitnet[convert]'",
                           unsupported=True) from None
    return gguf


def _plan_hf(directory: Path) -> Plan:
    from ._convert_hf import plan_from_hf
    from ._convert_vocab import vocab_kvs

    plan, _hp, config = plan_from_hf(directory)
    n_vocab = plan.tensors[0].shape[0]  # token_embd comes first
    try:
        plan.kvs += vocab_kvs(directory, n_vocab, config)
    except BaseException:
        for close in plan.closers:
            close()
        raise
    return plan


# ---- choosing types ---------------------------------------------------------------------


def output_type(t: OutTensor, target: int) -> int:
    """The type ``t`` is written in for the requested ``target`` type (module docstring)."""
    if t.role == LINEAR:
        if target in (F16, F32) or t.shape[-1] % row_multiple(target) == 0:
            return target
        return F16
    if t.role == EMBEDDING:
        if t.keep_type is not None and target not in (F16, F32):
            return t.keep_type
        return F32 if target == F32 else F16
    return F32


def _nbytes(t: OutTensor, type_id: int) -> int:
    if t.keep_type is not None and type_id == t.keep_type:
        return t.keep_nbytes
    n = t.shape[-1]
    rows = int(np.prod(t.shape[:-1], dtype=np.int64)) if len(t.shape) > 1 else 1
    return nbytes(type_id, rows, n)


# ---- producing tensor bytes --------------------------------------------------------------


def _label(t: OutTensor) -> str:
    return t.name if t.source in ("", t.name) else f"{t.name} (from {t.source})"


def _produce(t: OutTensor, type_id: int) -> np.ndarray:
    """The data of ``t`` in ``type_id`` (an array whose bytes are the tensor's)."""
    x = t.load()
    rows, n = (t.shape[0], t.shape[-1]) if len(t.shape) > 1 else (1, t.shape[0])
    if isinstance(x, Raw):
        if x.type_id == type_id:
            return x.data
        x = decode_float(x.type_id, x.data, rows, n)
    if isinstance(x, Rows):
        return _float_rows(t, x, type_id)
    if type_id in (F16, F32):
        values = x.values() if isinstance(x, Ternary) else np.asarray(x, dtype=np.float32)
        return _finite(t, np.ascontiguousarray(values.reshape(t.shape), dtype="<f4" if type_id == F32 else "<f2"))
    if isinstance(x, np.ndarray):
        tern = ternary_from_values(x.reshape(rows, n), _SCALE_GROUP[type_id])
        if tern is None:
            raise ConvertError(f"tensor {_label(t)} is not ternary ({{-1, 0, +1}} x one scale per "
                               f"{'tensor' if type_id == I2_S else '256 weights'}); {type_name(type_id)} cannot "
                               f"hold it: convert with --outtype f16 or f32", unsupported=True)
        x = tern
    try:
        return encode(type_id, ternary=x)
    except ValueError as exc:
        raise ConvertError(f"tensor {_label(t)}: {exc}", unsupported=True) from None


def _float_rows(t: OutTensor, x: Rows, type_id: int) -> np.ndarray:
    out = np.empty((x.n_rows, x.n), dtype="<f4" if type_id == F32 else "<f2")
    for i in range(0, x.n_rows, _CHUNK_ROWS):
        part = x.read(slice(i, i + _CHUNK_ROWS))
        out[i : i + part.shape[0]] = part
    return _finite(t, out)


def _finite(t: OutTensor, a: np.ndarray) -> np.ndarray:
    if not np.all(np.isfinite(a)):
        hint = " (too large for float16: use --outtype f32)" if a.dtype == np.float16 else ""
        raise ConvertError(f"tensor {_label(t)} has non-finite values{hint}")
    return a


# ---- writing -------------------------------------------------------------------------------


def _write(gguf: Any, plan: Plan, out: Path, target: int, progress: bool) -> None:
    from tqdm import tqdm

    types = [output_type(t, target) for t in plan.tensors]
    fallback = [t.name for t, ty in zip(plan.tensors, types) if t.role == LINEAR and ty != target]
    if fallback:
        warnings.warn(f"{len(fallback)} linear weights written F16: their row length is not a multiple of "
                      f"{row_multiple(target)} ({type_name(target)}): {', '.join(fallback[:4])}"
                      f"{' ...' if len(fallback) > 4 else ''}", stacklevel=3)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    w = gguf.GGUFWriter(tmp, plan.arch)
    try:
        for kv in plan.kvs:
            if kv.vtype == 9 and not kv.value:  # GGUFWriter refuses empty arrays
                continue
            sub = gguf.GGUFValueType(kv.sub_type) if kv.sub_type is not None else None
            w.add_key_value(kv.key, kv.value, gguf.GGUFValueType(kv.vtype), sub_type=sub)
        w.add_uint32("general.file_type", FILE_TYPES[target])
        if not any(kv.key == "general.quantization_version" for kv in plan.kvs):
            w.add_uint32("general.quantization_version", QUANTIZATION_VERSION)
        for t, ty in zip(plan.tensors, types):
            try:
                raw_dtype: Any = gguf.GGMLQuantizationType(ty)
            except ValueError:  # I2_S, IQ*_BN: ids gguf's enum lacks; the writer only packs the number
                raw_dtype = ty
            # tensor_dtype is only looked at when it is uint8 (then the shape would be read as
            # bytes): the shape given is in elements, so say float32.
            w.add_tensor_info(t.name, t.shape, np.dtype(np.float32), _nbytes(t, ty), raw_dtype=raw_dtype)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_ti_data_to_file()
        bar = tqdm(total=len(plan.tensors), unit="tensor", desc=f"converting to {type_name(target)}",
                   disable=not progress, leave=False)
        with bar:
            for t, ty in zip(plan.tensors, types):
                bar.set_postfix_str(t.name, refresh=False)
                w.write_tensor_data(_produce(t, ty))
                bar.update(1)
        w.close()
        os.replace(tmp, out)
    except BaseException:
        w.close()
        tmp.unlink(missing_ok=True)
        raise


def summary(path: str | os.PathLike[str]) -> dict[str, Any]:
    """What a GGUF file holds, for printing: size, tensor count, count per type, arch."""
    from ._gguf_index import read_tensor_table

    table = read_tensor_table(path)
    per_type: dict[str, int] = {}
    for t in table:
        name = type_name(t.type_id)
        per_type[name] = per_type.get(name, 0) + 1
    return {"path": str(path), "bytes": os.path.getsize(path), "tensors": len(table), "types": per_type}
