"""numpy packers and unpackers for the tensor formats ``bitnet convert`` writes and reads.

Byte layouts are those of docs/formats.md (shared/docs/formats.md): TQ1_0 and TQ2_0
as upstream ggml (PyPI ``gguf`` 0.19.0 quants.py), I2_S in bitnet.cpp's x86 layout,
IQ1_BN / IQ2_BN as ik_llama.cpp.

A ternary tensor is held as a :class:`Ternary`: integer codes ``q`` in {-1, 0, +1}
of shape (rows, n) and float32 scales ``d`` of shape (rows, n_groups), one per
group of ``n // n_groups`` consecutive weights of a row, so that the weight value
is ``q * d[group]``. Every format here is such a pair with its own grouping (TQ*:
256 weights, IQ*_BN: one row, I2_S: the whole tensor), which makes moving a tensor
between formats exact whenever the target's grouping can hold the scales.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# ggml type ids (I2_S is bitnet.cpp's, IQ*_BN ik_llama.cpp's; neither is in gguf's enum)
F32, F16, Q8_0, Q4_K, Q6_K, BF16, TQ1_0, TQ2_0, I2_S, IQ1_BN, IQ2_BN = 0, 1, 8, 12, 14, 30, 34, 35, 36, 134, 135

TYPE_NAMES = {F32: "F32", F16: "F16", Q8_0: "Q8_0", Q4_K: "Q4_K", Q6_K: "Q6_K", BF16: "BF16",
              TQ1_0: "TQ1_0", TQ2_0: "TQ2_0", I2_S: "I2_S", IQ1_BN: "IQ1_BN", IQ2_BN: "IQ2_BN"}

TERNARY_TYPES = (TQ1_0, TQ2_0, I2_S, IQ1_BN, IQ2_BN)
FLOAT_TYPES = (F32, F16, BF16)

# The types a converted file may be written in (ternary ones only for the linear weights).
ENCODABLE = (F32, F16, TQ1_0, TQ2_0, I2_S)

# weights per block a row length must be a multiple of; bytes per block
_BLOCK = {F32: (1, 4), F16: (1, 2), BF16: (1, 2), TQ1_0: (256, 54), TQ2_0: (256, 66), I2_S: (128, 32),
          IQ1_BN: (64, 13), IQ2_BN: (64, 16)}
_ROW_META = {IQ1_BN: 2, IQ2_BN: 4}  # bytes of row scale in front of every row


def type_name(type_id: int) -> str:
    return TYPE_NAMES.get(type_id, f"type {type_id}")


def row_multiple(type_id: int) -> int:
    """The number a row length must be a multiple of to be stored as ``type_id``."""
    return _BLOCK[type_id][0]


def nbytes(type_id: int, n_rows: int, n: int) -> int:
    """Bytes of an (n_rows, n) tensor stored as ``type_id`` (n = row length, ggml ne0)."""
    per, size = _BLOCK[type_id]
    if n % per:
        raise ValueError(f"row length {n} is not a multiple of {per} ({type_name(type_id)})")
    if type_id == I2_S:
        return n_rows * n // 4 + 32  # the float32 tensor scale sits in a 32-byte tail
    return n_rows * (_ROW_META.get(type_id, 0) + n // per * size)


# ---- ternary tensors ------------------------------------------------------------------


@dataclass
class Ternary:
    """Codes ``q`` (rows, n) int8 in {-1, 0, 1}; scales ``d`` (rows, n_groups) float32, or
    (1, 1) for one scale for the whole tensor."""

    q: np.ndarray
    d: np.ndarray

    @property
    def group(self) -> int:
        return self.q.shape[1] // self.d.shape[1]

    def values(self, dtype: type = np.float32) -> np.ndarray:
        rows, n = self.q.shape
        g = self.q.reshape(rows, self.d.shape[1], -1).astype(dtype)
        return (g * self.d[:, :, None].astype(dtype)).reshape(rows, n)

    def regroup(self, group: int) -> Ternary | None:
        """The same values with one scale per ``group`` weights of a row (0: one scale for
        the whole tensor), or None when some new group would need two different scales.
        The scale of a group whose codes are all 0 does not matter."""
        rows, n = self.q.shape
        if self.d.shape == (1, 1):
            if group == 0:
                return self
            if n % group:
                return None
            return Ternary(self.q, np.full((rows, n // group), self.d[0, 0], dtype=np.float32))
        used = self._nonzero_groups()
        if group == 0:
            vals = self.d[used]
            if vals.size and np.any(vals != vals[0]):
                return None
            return Ternary(self.q, np.full((1, 1), vals[0] if vals.size else 0, dtype=np.float32))
        src = self.group
        if n % group:
            return None
        if src % group == 0:  # finer groups: each scale repeats
            return Ternary(self.q, np.repeat(self.d, src // group, axis=1).astype(np.float32))
        if group % src:
            return None
        k = group // src  # coarser groups: the used scales inside each must agree
        d = self.d.reshape(rows, -1, k)
        u = used.reshape(rows, -1, k)
        common = np.where(u.any(-1), np.where(u, d, -np.inf).max(-1), d[..., 0])
        if np.any(u & (d != common[..., None])):
            return None
        return Ternary(self.q, common.astype(np.float32))

    def _nonzero_groups(self) -> np.ndarray:
        rows = self.q.shape[0]
        if self.d.shape == (1, 1):
            return np.array([[bool(np.any(self.q))]])
        return np.any(self.q.reshape(rows, self.d.shape[1], -1) != 0, axis=-1)


def ternarize_absmean(w: np.ndarray) -> Ternary:
    """BitNet b1.58's weight quantizer: s = 1 / max(mean|W|, 1e-5), q = clamp(round(W*s), -1, 1),
    value q / s. This is HF transformers' ``WeightQuant.forward`` (integrations/bitnet.py) and
    1bitLLM's ``weight_quant``, computed in float32 as they do (round half to even)."""
    w32 = np.asarray(w, dtype=np.float32)
    mean = np.float32(np.abs(w32).mean(dtype=np.float32))
    s = np.float32(1) / max(mean, np.float32(1e-5))
    q = np.clip(np.rint(w32 * s), -1, 1).astype(np.int8)
    return Ternary(q.reshape(q.shape[0], -1), np.full((1, 1), np.float32(1) / s, dtype=np.float32))


def ternary_from_values(w: np.ndarray, group: int) -> Ternary | None:
    """Read float values that already are {-1, 0, +1} x one scale per ``group`` weights
    (0 = per tensor); None when they are not (exactly, up to float32 rounding)."""
    w = np.asarray(w, dtype=np.float32)
    rows, n = w.shape
    if group == 0:
        g = w.reshape(1, 1, -1)
    elif n % group:
        return None
    else:
        g = w.reshape(rows, n // group, group)
    d = np.abs(g).max(axis=-1)
    safe = np.where(d > 0, d, 1)[..., None]
    q = np.rint(g / safe)
    if np.any(np.abs(g - q * d[..., None]) > 1e-6 * safe):
        return None
    return Ternary(q.astype(np.int8).reshape(rows, n), d.astype(np.float32).reshape(1 if group == 0 else rows, -1))


# ---- encoders -------------------------------------------------------------------------


def pack_tq2_0(t: Ternary) -> np.ndarray:
    """TQ2_0: per 256 weights qs[64] then fp16 d; byte 32h + j holds weight 128h + 32s + j
    in bits 2s..2s+1 (code = q + 1)."""
    t = _need(t.regroup(256), _TQ_SCALES)
    c = (t.q + 1).astype(np.uint8).reshape(-1, 2, 4, 32)
    qs = c[:, :, 0] | c[:, :, 1] << 2 | c[:, :, 2] << 4 | c[:, :, 3] << 6
    return np.concatenate([qs.reshape(-1, 64), _block_scales_f16(t)], axis=1).reshape(-1)


def pack_tq1_0(t: Ternary) -> np.ndarray:
    """TQ1_0: per 256 weights qs[48], qh[4], fp16 d. qs[j] (j < 32): weights j + 32s, s = 0..4;
    qs[32 + j] (j < 16): weights 160 + j + 16s; qh[j]: weights 240 + j + 4s, s = 0..3. Trit s
    has weight 3^(4-s) in a base-3 number v (a 4-trit one is scaled by 3), stored as
    (256 v + 242) // 243."""
    t = _need(t.regroup(256), _TQ_SCALES)
    c = (t.q + 1).astype(np.uint16).reshape(-1, 256)
    p5 = np.array([81, 27, 9, 3, 1], dtype=np.uint16)
    a = (c[:, :160].reshape(-1, 5, 32) * p5[None, :, None]).sum(1)
    b = (c[:, 160:240].reshape(-1, 5, 16) * p5[None, :, None]).sum(1)
    h = (c[:, 240:].reshape(-1, 4, 4) * p5[None, :4, None]).sum(1)
    v = np.concatenate([a, b, h], axis=1)
    qs = ((v * 256 + 242) // 243).astype(np.uint8)
    return np.concatenate([qs, _block_scales_f16(t)], axis=1).reshape(-1)


def pack_i2_s(t: Ternary) -> np.ndarray:
    """I2_S (bitnet.cpp, x86): codes q + 1, blocks of 128 weights in 32 bytes, weight j of a
    block in byte j % 32 at bits 6 - 2 (j // 32); then the float32 tensor scale and padding
    to n/4 + 32 bytes."""
    one = _need(t.regroup(0), "its scales differ within the tensor, and I2_S holds one scale per tensor "
                                 "(tq2_0 and tq1_0 hold one per 256 weights)")
    c = (t.q + 1).astype(np.uint8).reshape(-1, 4, 32)
    packed = c[:, 0] << 6 | c[:, 1] << 4 | c[:, 2] << 2 | c[:, 3]
    tail = np.zeros(32, dtype=np.uint8)
    tail[:4] = np.frombuffer(np.float32(one.d[0, 0]).tobytes(), dtype=np.uint8)
    return np.concatenate([packed.reshape(-1), tail])


def _block_scales_f16(t: Ternary) -> np.ndarray:
    # d of a block whose codes are all 0 is written as 0, as upstream's quantizer does
    # (d = max|w|), so that a ternary tensor gives the same bytes as gguf.quants.quantize.
    nz = t._nonzero_groups()
    d = np.where(nz, t.d, 0).astype("<f2")
    if not np.all(np.isfinite(d)):
        raise ValueError("a block scale does not fit in float16")
    return d.reshape(-1, 1).view(np.uint8)


_TQ_SCALES = "its scales differ within blocks of 256 weights, which TQ1_0/TQ2_0 give one scale each"


def _need(t: Ternary | None, why: str) -> Ternary:
    if t is None:
        raise ValueError(why)
    return t


def encode(type_id: int, values: np.ndarray | None = None, ternary: Ternary | None = None) -> np.ndarray:
    """The bytes (as a uint8 / float array) of a 2-D tensor in ``type_id``; ternary types need
    ``ternary``, float types take ``values`` (or the ternary's values)."""
    if type_id in (F32, F16):
        v = values if values is not None else ternary.values()  # type: ignore[union-attr]
        return np.ascontiguousarray(v, dtype="<f4" if type_id == F32 else "<f2")
    if ternary is None:
        raise ValueError(f"{type_name(type_id)} needs ternary weights")
    if type_id == TQ2_0:
        return pack_tq2_0(ternary)
    if type_id == TQ1_0:
        return pack_tq1_0(ternary)
    if type_id == I2_S:
        return pack_i2_s(ternary)
    raise ValueError(f"cannot write {type_name(type_id)}")


# ---- decoders -------------------------------------------------------------------------


def unpack_ternary(type_id: int, raw: np.ndarray, n_rows: int, n: int) -> Ternary:
    """Codes and scales of a ternary tensor's bytes (rows of n weights)."""
    b = np.frombuffer(raw, dtype=np.uint8) if not isinstance(raw, np.ndarray) else raw.view(np.uint8).reshape(-1)
    if b.size != nbytes(type_id, n_rows, n):
        raise ValueError(f"{type_name(type_id)} tensor of {n_rows} x {n}: {b.size} bytes, "
                         f"expected {nbytes(type_id, n_rows, n)}")
    if type_id == I2_S:
        m = n_rows * n
        c = (b[: m // 4].reshape(-1, 1, 32) >> np.array([6, 4, 2, 0], dtype=np.uint8)[None, :, None]) & 3
        scale = b[m // 4 : m // 4 + 4].copy().view("<f4")[0]
        return Ternary(_codes(c, "I2_S").reshape(n_rows, n), np.full((1, 1), scale, dtype=np.float32))
    if type_id == TQ2_0:
        blk = b.reshape(-1, 66)
        c = (blk[:, :64].reshape(-1, 2, 1, 32) >> np.array([0, 2, 4, 6], dtype=np.uint8)[None, None, :, None]) & 3
        d = blk[:, 64:].copy().view("<f2").astype(np.float32)
        return Ternary(_codes(c, "TQ2_0").reshape(n_rows, n), d.reshape(n_rows, n // 256))
    if type_id == TQ1_0:
        blk = b.reshape(-1, 54)
        a = _trits(blk[:, :32], 5).reshape(-1, 160)     # weight j + 32 s
        c2 = _trits(blk[:, 32:48], 5).reshape(-1, 80)   # 160 + j + 16 s
        h = _trits(blk[:, 48:52], 4).reshape(-1, 16)    # 240 + j + 4 s
        c = np.concatenate([a, c2, h], axis=1)
        d = blk[:, 52:].copy().view("<f2").astype(np.float32)
        return Ternary(_codes(c, "TQ1_0").reshape(n_rows, n), d.reshape(n_rows, n // 256))
    if type_id == IQ2_BN:
        r = b.reshape(n_rows, -1)
        d = r[:, :4].copy().view("<f4").astype(np.float32)
        qs = r[:, 4:].reshape(n_rows, -1, 1, 16)
        c = (qs >> np.array([0, 2, 4, 6], dtype=np.uint8)[None, None, :, None]) & 3  # weight 16k + j
        return Ternary(_codes(c, "IQ2_BN").reshape(n_rows, n), d.reshape(n_rows, 1))
    if type_id == IQ1_BN:
        r = b.reshape(n_rows, -1)
        d = r[:, :2].copy().view("<f2").astype(np.float32)
        blk = r[:, 2:].reshape(n_rows, -1, 13)
        ql = blk[..., :12].reshape(n_rows, -1, 4, 3)  # group g, byte k: weights 16g + 5k + j
        c = np.empty(ql.shape[:3] + (16,), dtype=np.uint8)
        for k in range(3):
            for j in range(5):
                c[..., 5 * k + j] = _iq1_trit(ql[..., k], j)
        for g in range(4):  # weight 16g + 15 is the g-th trit of the extra byte
            c[:, :, g, 15] = _iq1_trit(blk[..., 12], g)
        return Ternary(_codes(c, "IQ1_BN").reshape(n_rows, n), d.reshape(n_rows, 1))
    raise ValueError(f"{type_name(type_id)} is not a ternary type")


def _trits(b: np.ndarray, k: int) -> np.ndarray:
    """TQ1_0 bytes (..., m) -> trits (..., k, m): trit s = ((b * 3^s mod 256) * 3) >> 8."""
    p = np.array([1, 3, 9, 27, 81][:k], dtype=np.uint8)
    m = b[:, None, :] * p[None, :, None]  # uint8 multiply wraps mod 256, as intended
    return ((m.astype(np.uint16) * 3) >> 8).astype(np.uint8)


def _iq1_trit(b: np.ndarray, j: int) -> np.ndarray:
    m = (b.astype(np.uint16) * 3 ** (4 - j)) & 0xFF
    return ((m * 3) >> 8).astype(np.uint8)


def _codes(c: np.ndarray, name: str) -> np.ndarray:
    if np.any(c > 2):
        raise ValueError(f"not a valid {name} tensor (2-bit code 3 found)")
    return c.astype(np.int8) - 1


def decode_float(type_id: int, raw: np.ndarray, n_rows: int, n: int) -> np.ndarray:
    """float32 (n_rows, n) values of a tensor in any type this module or PyPI ``gguf`` knows."""
    b = raw.view(np.uint8).reshape(-1) if isinstance(raw, np.ndarray) else np.frombuffer(raw, dtype=np.uint8)
    if type_id == F32:
        return b.view("<f4").astype(np.float32).reshape(n_rows, n)
    if type_id == F16:
        return b.view("<f2").astype(np.float32).reshape(n_rows, n)
    if type_id == BF16:
        return (b.view("<u2").astype(np.uint32) << 16).view(np.float32).reshape(n_rows, n)
    if type_id in TERNARY_TYPES:
        return unpack_ternary(type_id, b, n_rows, n).values()
    from gguf import quants  # the remaining standard ggml types (Q8_0, Q4_K, Q6_K, ...)

    from gguf.constants import GGMLQuantizationType

    try:
        qtype = GGMLQuantizationType(type_id)
    except ValueError:
        raise ValueError(f"cannot decode tensors of {type_name(type_id)}") from None
    return np.asarray(quants.dequantize(b.reshape(n_rows, -1), qtype), dtype=np.float32).reshape(n_rows, n)
