"""numpy emulation of the activation quantisation in front of each integer dot product.

Every function takes ``x`` of shape (n_rows, n) (one row per token, n = the matmul's
input length) and returns the dequantised values that the integer dot product of the
reference implementation effectively multiplies with the weights, as float64 (or in the
dtype of ``x`` when it is float32). The rules come from shared/docs/formats.md:

- ``q8_k``   upstream ggml Q8_K (TQ1_0, TQ2_0 and K-quant weights): blocks of 256; ``max``
  is the element of largest |x| with its sign (first one on ties); iscale = -127/max;
  q = min(127, round-half-even(iscale*x)); value = q / iscale.
- ``q8_0``   ggml Q8_0 (Q8_0 weights): blocks of 32; d = max|x|/127; q = round-half-away(x/d);
  d is stored as float16, so value = fp16(d) * q.
- ``q8_k64`` ik_llama.cpp Q8_K64 (IQ1_BN, IQ2_BN): four interleaved groups per row, group g =
  elements whose index mod 16 is in [4g, 4g+4); id_g = 127/max|x in group| (float32),
  d_g = 1/id_g, q = round-half-even(id_g*x); value = d_g * q.
Q8_K and Q8_K64 are computed in float32 exactly like the C code: the activations in
front of attn_output of a llama model are float16-exact (float16 V cache), so ties at
half-steps are common and float64 arithmetic would round some of them differently.
- ``i8_row`` bitnet.cpp I2_S: one scale per row: s = 127/max(max|x|, 1e-5) (float32);
  v = clamp(round(x*s), -128, 127); value = v / s.
"""
from __future__ import annotations

import numpy as np

from . import formats as F


def _as2d(x):
    x = np.asarray(x)
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    return x.reshape(-1, x.shape[-1]) if x.ndim != 2 else x


def q8_k(x):
    x = _as2d(x)
    n_rows, n = x.shape
    if n % 256:
        raise ValueError("Q8_K needs rows that are a multiple of 256")
    # float32 arithmetic exactly as quantize_row_q8_K_ref: iscale = -127.f/max; v = iscale*x
    b = x.reshape(n_rows, n // 256, 256).astype(np.float32)
    idx = np.abs(b).argmax(-1)[..., None]                # first index of the largest |x|
    mx = np.take_along_axis(b, idx, -1)
    with np.errstate(divide="ignore", invalid="ignore"):
        iscale = np.where(mx == 0, np.float32(0), np.float32(-127.0) / mx).astype(np.float32)
        q = np.minimum(127, np.rint(iscale * b))
        d = np.where(iscale == 0, np.float32(0), np.float32(1) / np.where(iscale == 0, np.float32(1), iscale))
    return (q.astype(np.float64) * d.astype(np.float64)).reshape(n_rows, n).astype(x.dtype)


def q8_0(x):
    x = _as2d(x)
    n_rows, n = x.shape
    if n % 32:
        raise ValueError("Q8_0 needs rows that are a multiple of 32")
    b = x.reshape(n_rows, n // 32, 32)
    d = np.abs(b).max(-1, keepdims=True) / 127.0
    with np.errstate(divide="ignore", invalid="ignore"):
        v = np.where(d > 0, b / np.where(d > 0, d, 1), 0)
    q = np.sign(v) * np.floor(np.abs(v) + 0.5)
    return (q * F.f16r(d)).reshape(n_rows, n).astype(x.dtype)


def q8_k64(x):
    x = _as2d(x)
    n_rows, n = x.shape
    if n % 16:
        raise ValueError("Q8_K64 needs rows that are a multiple of 16")
    # float32 arithmetic as ik does it (checked bit-exact against ik's goldens at position 0):
    # id = 127.f/max, d = 1.f/id, q = nearest_int(id*x), value = d*q
    g = x.reshape(n_rows, n // 16, 4, 4).astype(np.float32)     # (row, chunk of 16, group, 4)
    amax = np.abs(g).max(axis=(1, 3), keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        idd = np.where(amax > 0, np.float32(127) / np.where(amax > 0, amax, np.float32(1)), np.float32(0))
        idd = idd.astype(np.float32)
        d = np.where(idd > 0, np.float32(1) / np.where(idd > 0, idd, np.float32(1)), np.float32(0)).astype(np.float32)
    q = np.rint(idd * g)
    return (q.astype(np.float64) * d.astype(np.float64)).reshape(n_rows, n).astype(x.dtype)


def i8_row(x):
    x = _as2d(x)
    amax = np.maximum(np.abs(x).max(-1, keepdims=True).astype(np.float64), 1e-5)
    s = (127.0 / amax).astype(np.float32).astype(np.float64)
    v = np.clip(np.rint(x * s), -128, 127)
    return (v / s).astype(x.dtype)


def none(x):
    return np.asarray(x)


# weight type -> activation quantiser its reference implementation uses
FOR_WEIGHT_TYPE = {
    F.F32: none, F.F16: none, F.BF16: none,
    F.TQ1_0: q8_k, F.TQ2_0: q8_k, F.Q4_K: q8_k, F.Q6_K: q8_k,
    F.Q8_0: q8_0,
    F.IQ1_BN: q8_k64, F.IQ2_BN: q8_k64,
    F.I2_S: i8_row,
}


def for_weight_type(ttype):
    return FOR_WEIGHT_TYPE[F.type_id(ttype)]
