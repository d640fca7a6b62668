"""numpy encoders and decoders for the tensor types the engine reads.

Written from shared/docs/formats.md (and ggml's documented block layouts); decoders return
float64. ``encode(type, array)`` takes a float array whose last axis is the row (ggml ne0)
and returns the raw bytes; ``decode(type, data, shape)`` takes the ggml shape (ne0 first)
and returns an array of shape ``reversed(shape)``.

Encoders for the ternary types code values that already are {-1,0,+1}*scale exactly
(that is what the tests use); for other inputs they follow the quantiser the reference
implementation uses (threshold / rounding described per type). K-quant encoders produce a
valid encoding, not upstream's exact bytes.
"""
from __future__ import annotations

import numpy as np

# ggml type ids
F32, F16, Q4_0, Q8_0, Q4_K, Q6_K, Q8_K, BF16, TQ1_0, TQ2_0, I2_S, IQ1_BN, IQ2_BN = \
    0, 1, 2, 8, 12, 14, 15, 30, 34, 35, 36, 134, 135

NAMES = {F32: "F32", F16: "F16", Q8_0: "Q8_0", Q4_K: "Q4_K", Q6_K: "Q6_K", BF16: "BF16",
         TQ1_0: "TQ1_0", TQ2_0: "TQ2_0", I2_S: "I2_S", IQ1_BN: "IQ1_BN", IQ2_BN: "IQ2_BN"}
BY_NAME = {v: k for k, v in NAMES.items()}

# type -> (weights per block, bytes per block, row meta bytes in front of every row)
BLOCK = {F32: (1, 4, 0), F16: (1, 2, 0), BF16: (1, 2, 0), Q8_0: (32, 34, 0),
         Q4_K: (256, 144, 0), Q6_K: (256, 210, 0), TQ1_0: (256, 54, 0), TQ2_0: (256, 66, 0),
         IQ1_BN: (64, 13, 2), IQ2_BN: (64, 16, 4), I2_S: (128, 32, 0)}

TERNARY = (TQ1_0, TQ2_0, I2_S, IQ1_BN, IQ2_BN)


def type_id(t) -> int:
    return BY_NAME[t] if isinstance(t, str) else int(t)


def _nel(shape):
    n = 1
    for d in shape:
        n *= int(d)
    return n


def row_size(ttype, ne0) -> int:
    ttype = type_id(ttype)
    if ttype not in BLOCK:
        raise ValueError(f"unknown tensor type {ttype}")
    be, bb, meta = BLOCK[ttype]
    if ne0 % be:
        raise ValueError(f"row length {ne0} not a multiple of {be} for {NAMES.get(ttype, ttype)}")
    return meta + ne0 // be * bb


def nbytes(ttype, shape) -> int:
    ttype = type_id(ttype)
    n = _nel(shape)
    if ttype == I2_S:
        if n % 128:
            raise ValueError("I2_S needs a multiple of 128 weights")
        return n // 4 + 32
    return row_size(ttype, int(shape[0])) * (n // int(shape[0]))


def f16r(x):
    return np.asarray(x, dtype=np.float64).astype(np.float16).astype(np.float64)


def bf16_bits(x):
    """float -> bf16 bit patterns (uint16), round to nearest even, NaN kept quiet."""
    u = np.ascontiguousarray(np.asarray(x, dtype=np.float32)).view(np.uint32).astype(np.uint64)
    nan = (u & 0x7FFFFFFF) > 0x7F800000
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    r[nan] = ((u[nan] >> 16) | 64).astype(np.uint16)
    return r


def bf16r(x):
    return (bf16_bits(x).astype(np.uint32) << 16).view(np.float32).astype(np.float64)


def _rows(x, ne0):
    return np.asarray(x, dtype=np.float64).reshape(-1, ne0)


def _u8(data):
    return np.frombuffer(bytes(data), dtype=np.uint8)


# ----------------------------------------------------------------------------------------
# base-3 packing shared by TQ1_0 and IQ1_BN: n trits (most significant first) in one byte
_POW3 = np.array([1, 3, 9, 27, 81], dtype=np.int64)


def _pack_trits(q):
    """q (..., k) in {0,1,2}, k <= 5; first trit most significant -> byte ceil(256*v/243)."""
    k = q.shape[-1]
    v = (q.astype(np.int64) * _POW3[:k][::-1]).sum(-1)
    # a k-trit number (k < 5) is scaled to a 5-trit one by multiplying by 3^(5-k)
    v = v * 3 ** (5 - k)
    return ((256 * v + 242) // 243).astype(np.uint8)


def _unpack_trits(b, k):
    """bytes (...,) -> (..., k) trits, most significant first."""
    b = b.astype(np.int64)[..., None]
    m = (b * _POW3[:k]) & 0xFF
    return (m * 3) >> 8


# ----------------------------------------------------------------------------------------
# TQ2_0: 256 weights, qs[64] then fp16 d; byte 32h+j, bits 2s: weight 128h + 32s + j
def enc_tq2_0(x):
    b = _rows(x, 256)
    d = np.abs(b).max(-1, keepdims=True)
    q = (np.round(np.divide(b, d, out=np.zeros_like(b), where=d > 0)) + 1).astype(np.uint8)
    q = q.reshape(-1, 2, 4, 32)                       # half, s, j
    qs = q[:, :, 0] | q[:, :, 1] << 2 | q[:, :, 2] << 4 | q[:, :, 3] << 6
    dd = d.astype(np.float16).view(np.uint8)
    return np.concatenate([qs.reshape(-1, 64), dd], 1).tobytes()


def dec_tq2_0(data):
    blk = _u8(data).reshape(-1, 66)
    d = blk[:, 64:].copy().view(np.float16).astype(np.float64)
    qs = blk[:, :64].reshape(-1, 2, 1, 32)
    q = (qs >> (2 * np.arange(4, dtype=np.uint8)).reshape(1, 1, 4, 1)) & 3
    return (q.reshape(-1, 256).astype(np.float64) - 1) * d


# TQ1_0: 256 weights; qs[48], qh[4], fp16 d
def enc_tq1_0(x):
    b = _rows(x, 256)
    d = np.abs(b).max(-1, keepdims=True)
    q = (np.round(np.divide(b, d, out=np.zeros_like(b), where=d > 0)) + 1).astype(np.int64)
    # weights j + 32 s (s=0..4) -> qs[j]; 160 + j + 16 s -> qs[32+j]; 240 + j + 4 s -> qh[j]
    a = q[:, :160].reshape(-1, 5, 32).transpose(0, 2, 1)
    c = q[:, 160:240].reshape(-1, 5, 16).transpose(0, 2, 1)
    h = q[:, 240:].reshape(-1, 4, 4).transpose(0, 2, 1)
    out = np.concatenate([_pack_trits(a), _pack_trits(c), _pack_trits(h),
                          d.astype(np.float16).view(np.uint8)], 1)
    return out.tobytes()


def dec_tq1_0(data):
    blk = _u8(data).reshape(-1, 54)
    d = blk[:, 52:].copy().view(np.float16).astype(np.float64)
    a = _unpack_trits(blk[:, :32], 5).transpose(0, 2, 1).reshape(-1, 160)
    c = _unpack_trits(blk[:, 32:48], 5).transpose(0, 2, 1).reshape(-1, 80)
    h = _unpack_trits(blk[:, 48:52], 4).transpose(0, 2, 1).reshape(-1, 16)
    q = np.concatenate([a, c, h], 1)
    return (q.astype(np.float64) - 1) * d


# ----------------------------------------------------------------------------------------
# ik_llama.cpp IQ2_BN / IQ1_BN: per-row scale d = max|w| in front of the row
def _bn_trits(rows):
    d = np.abs(rows).max(-1, keepdims=True)
    q = np.where(np.abs(rows) < 0.5 * d, 1, np.where(rows < 0, 0, 2)).astype(np.uint8)
    return d, q


def enc_iq2_bn(x, ne0):
    r = _rows(x, ne0)
    d, q = _bn_trits(r)
    q = q.reshape(r.shape[0], -1, 4, 16)              # block, k, j : weight 16k + j
    qs = q[:, :, 0] | q[:, :, 1] << 2 | q[:, :, 2] << 4 | q[:, :, 3] << 6
    meta = d.astype(np.float32).view(np.uint8)
    return np.concatenate([meta, qs.reshape(r.shape[0], -1)], 1).tobytes()


def dec_iq2_bn(data, ne0):
    rs = row_size(IQ2_BN, ne0)
    r = _u8(data).reshape(-1, rs)
    d = r[:, :4].copy().view(np.float32).astype(np.float64)
    qs = r[:, 4:].reshape(r.shape[0], -1, 1, 16)
    q = (qs >> (2 * np.arange(4, dtype=np.uint8)).reshape(1, 1, 4, 1)) & 3
    return (q.reshape(r.shape[0], ne0).astype(np.float64) - 1) * d


def enc_iq1_bn(x, ne0):
    r = _rows(x, ne0)
    d, q = _bn_trits(r)
    nr = r.shape[0]
    g = q.reshape(nr, -1, 4, 16).astype(np.int64)   # row, block, group, 16
    # weights 16g + 5k + j -> ql[3g+k], j = trit position; weight 16g+15 -> extra trit g.
    # formats.md: idx = sum_j 3^j q_j, decoded trit j uses multiplier 3^(4-j): so trit j
    # sits at digit position j counted from the least significant end.
    five = g[..., :15].reshape(nr, -1, 4, 3, 5)
    ql = _pack_trits(five[..., ::-1]).reshape(nr, -1, 12)   # _pack_trits: first = most significant
    # extra: v = sum_g 3^g q_(16g+15), stored as ceil(256 v / 243) (a 4-trit number, not rescaled)
    ext = ((256 * (g[..., 15] * np.array([1, 3, 9, 27])).sum(-1) + 242) // 243).astype(np.uint8)
    blocks = np.concatenate([ql, ext[..., None]], -1).reshape(nr, -1)
    meta = d.astype(np.float16).view(np.uint8)
    return np.concatenate([meta, blocks], 1).tobytes()


def _iq1_trit(b, j):
    m = (b.astype(np.int64) * 3 ** (4 - j)) & 0xFF
    return (m * 3) >> 8


def dec_iq1_bn(data, ne0):
    rs = row_size(IQ1_BN, ne0)
    r = _u8(data).reshape(-1, rs)
    nr = r.shape[0]
    d = r[:, :2].copy().view(np.float16).astype(np.float64)
    blk = r[:, 2:].reshape(nr, -1, 13)
    ql = blk[..., :12].reshape(nr, -1, 4, 3)
    q = np.empty(ql.shape[:3] + (16,), dtype=np.int64)
    for k in range(3):
        for j in range(5):
            q[..., 5 * k + j] = _iq1_trit(ql[..., k], j)
    for g in range(4):
        q[:, :, g, 15] = _iq1_trit(blk[..., 12], g)
    return (q.reshape(nr, ne0).astype(np.float64) - 1) * d


# ----------------------------------------------------------------------------------------
# bitnet.cpp I2_S (x86): 2-bit codes, block of 128 -> 32 bytes, weight j of a block in byte
# j % 32 at bit 6 - 2*(j // 32); one float32 scale at byte n/4; tensor is n/4 + 32 bytes.
def enc_i2_s(x):
    w = np.asarray(x, dtype=np.float64).reshape(-1)
    scale = np.float32(np.abs(w).max()) if w.size else np.float32(0)
    code = np.where(np.abs(w) < 1e-6, 1, np.where(w * scale > 0, 2, 0)).astype(np.uint8)
    c = code.reshape(-1, 4, 32)
    packed = c[:, 0] << 6 | c[:, 1] << 4 | c[:, 2] << 2 | c[:, 3]
    tail = np.zeros(32, dtype=np.uint8)
    tail[:4] = np.frombuffer(np.float32(scale).tobytes(), dtype=np.uint8)
    return packed.reshape(-1).tobytes() + tail.tobytes()


def dec_i2_s(data, n):
    b = _u8(data)
    if len(b) != n // 4 + 32:
        raise ValueError("I2_S tensor must be n/4 + 32 bytes (x86 layout)")
    scale = float(b[n // 4:n // 4 + 4].copy().view(np.float32)[0])
    p = b[:n // 4].reshape(-1, 1, 32)
    c = (p >> np.array([6, 4, 2, 0], dtype=np.uint8).reshape(1, 4, 1)) & 3
    return (c.reshape(n).astype(np.float64) - 1) * scale


# ----------------------------------------------------------------------------------------
# Q8_0: 32 weights: fp16 d, int8 qs[32]; d = max|x|/127, q = round-half-away(x/d)
def enc_q8_0(x):
    b = _rows(x, 32).astype(np.float32)
    d = np.abs(b).max(-1, keepdims=True) / np.float32(127)
    idd = np.divide(np.float32(1), d, out=np.zeros_like(d), where=d > 0)
    v = b * idd
    q = (np.sign(v) * np.floor(np.abs(v) + 0.5)).astype(np.int8)
    return np.concatenate([d.astype(np.float16).view(np.uint8), q.view(np.uint8)], 1).tobytes()


def dec_q8_0(data):
    blk = _u8(data).reshape(-1, 34)
    d = blk[:, :2].copy().view(np.float16).astype(np.float64)
    return blk[:, 2:].copy().view(np.int8).astype(np.float64) * d


# ----------------------------------------------------------------------------------------
# Q6_K: 256 weights: ql[128], qh[64], int8 scales[16], fp16 d.
# Per 128-half n, l = 0..31: element 128n + l + 32m (m = 0..3) has
#   low 4 bits: ql[64n + l + 32*(m&1)] >> (4*(m>>1)), high 2 bits: qh[32n + l] >> 2m,
#   scale scales[8n + l//16 + 2m], value d*scale*(q - 32).
def _q6_pos():
    n, m, l = np.meshgrid(np.arange(2), np.arange(4), np.arange(32), indexing="ij")
    return n, m, l


def dec_q6_k(data):
    blk = _u8(data).reshape(-1, 210)
    ql, qh = blk[:, :128].astype(np.int64), blk[:, 128:192].astype(np.int64)
    sc = blk[:, 192:208].copy().view(np.int8).astype(np.float64)
    d = blk[:, 208:210].copy().view(np.float16).astype(np.float64)
    n, m, l = _q6_pos()
    lo = (ql[:, 64 * n + l + 32 * (m & 1)] >> (4 * (m >> 1))) & 0xF
    hi = (qh[:, 32 * n + l] >> (2 * m)) & 3
    q = (lo | hi << 4) - 32
    s = sc[:, 8 * n + l // 16 + 2 * m]
    return (d[:, :, None, None] * s * q).reshape(-1, 256)


def enc_q6_k(x):
    b = _rows(x, 256)
    nb = b.shape[0]
    n, m, l = _q6_pos()
    idx = 128 * n + 32 * m + l                       # element index of (n, m, l)
    sub = b.reshape(nb, 16, 16)                      # sub-block k = elements 16k..16k+15
    ssc = np.abs(sub).max(-1) / 31.0                 # per sub-block scale
    d = f16r(ssc.max(-1, keepdims=True) / 127.0)
    isc = np.clip(np.round(np.divide(ssc, d, out=np.zeros_like(ssc), where=d > 0)), 0, 127)
    step = d * isc                                   # (nb, 16)
    q = np.clip(np.round(np.divide(sub, step[..., None], out=np.zeros_like(sub),
                                   where=step[..., None] > 0)), -32, 31).astype(np.int64) + 32
    q = q.reshape(nb, 256)[:, idx]                   # (nb, 2, 4, 32)
    ql = np.zeros((nb, 128), np.int64)
    qh = np.zeros((nb, 64), np.int64)
    for mm in range(4):
        for nn in range(2):
            v = q[:, nn, mm]
            np.bitwise_or.at(ql, (slice(None), 64 * nn + np.arange(32) + 32 * (mm & 1)),
                             (v & 0xF) << (4 * (mm >> 1)))
            qh[:, 32 * nn + np.arange(32)] |= (v >> 4) << (2 * mm)
    # scale index 8n + l//16 + 2m must address sub-block (128n + 32m + l)//16 = 8n + 2m + l//16
    out = np.concatenate([ql.astype(np.uint8), qh.astype(np.uint8),
                          isc.astype(np.int8).view(np.uint8),
                          d.astype(np.float16).view(np.uint8)], 1)
    return out.tobytes()


# ----------------------------------------------------------------------------------------
# Q4_K: 256 weights: fp16 d, fp16 dmin, scales[12] (6-bit scale+min per 32), qs[128].
# Sub-block j (32 weights): value = d*sc_j*q - dmin*m_j; chunk c = j//2 of 64 weights:
# qs[32c + l] low nibble = element 64c + l, high nibble = element 64c + 32 + l.
def _q4k_scales(s):
    s = s.astype(np.int64)
    sc = np.empty(s.shape[:-1] + (8,), np.int64)
    mn = np.empty_like(sc)
    for j in range(8):
        if j < 4:
            sc[..., j] = s[..., j] & 63
            mn[..., j] = s[..., j + 4] & 63
        else:
            sc[..., j] = (s[..., j + 4] & 0xF) | ((s[..., j - 4] >> 6) << 4)
            mn[..., j] = (s[..., j + 4] >> 4) | ((s[..., j] >> 6) << 4)
    return sc, mn


def dec_q4_k(data):
    blk = _u8(data).reshape(-1, 144)
    d = blk[:, 0:2].copy().view(np.float16).astype(np.float64)
    dmin = blk[:, 2:4].copy().view(np.float16).astype(np.float64)
    sc, mn = _q4k_scales(blk[:, 4:16])
    qs = blk[:, 16:].reshape(-1, 4, 32).astype(np.int64)
    q = np.stack([qs & 0xF, qs >> 4], 2).reshape(-1, 8, 32)
    return (d[:, :, None] * sc[..., None] * q - dmin[:, :, None] * mn[..., None]).reshape(-1, 256)


def enc_q4_k(x):
    b = _rows(x, 256)
    nb = b.shape[0]
    sub = b.reshape(nb, 8, 32)
    lo = np.minimum(sub.min(-1), 0.0)
    hi = np.maximum(sub.max(-1), 0.0)
    sscale = (hi - lo) / 15.0
    smin = -lo
    d = f16r(sscale.max(-1, keepdims=True) / 63.0)
    dmin = f16r(smin.max(-1, keepdims=True) / 63.0)
    sc = np.clip(np.round(np.divide(sscale, d, out=np.zeros_like(sscale), where=d > 0)), 0, 63).astype(np.int64)
    mn = np.clip(np.round(np.divide(smin, dmin, out=np.zeros_like(smin), where=dmin > 0)), 0, 63).astype(np.int64)
    step = d * sc
    q = np.clip(np.round(np.divide(sub + (dmin * mn)[..., None], step[..., None], out=np.zeros_like(sub),
                                   where=step[..., None] > 0)), 0, 15).astype(np.int64)
    s = np.zeros((nb, 12), np.int64)
    for j in range(4):
        s[:, j] = sc[:, j] | (sc[:, j + 4] >> 4) << 6
        s[:, j + 4] = mn[:, j] | (mn[:, j + 4] >> 4) << 6
        s[:, j + 8] = (sc[:, j + 4] & 0xF) | (mn[:, j + 4] & 0xF) << 4
    q = q.reshape(nb, 4, 2, 32)
    qs = (q[:, :, 0] | q[:, :, 1] << 4).reshape(nb, 128)
    out = np.concatenate([d.astype(np.float16).view(np.uint8), dmin.astype(np.float16).view(np.uint8),
                          s.astype(np.uint8), qs.astype(np.uint8)], 1)
    return out.tobytes()


# ----------------------------------------------------------------------------------------
def encode(ttype, x) -> bytes:
    """Encode ``x`` (last axis = row, ggml ne0) as tensor type ``ttype``; returns bytes."""
    ttype = type_id(ttype)
    x = np.asarray(x)
    ne0 = x.shape[-1] if x.ndim else 1
    row_size(ttype, ne0) if ttype != I2_S else None
    if ttype == F32:
        return np.ascontiguousarray(x, dtype="<f4").tobytes()
    if ttype == F16:
        return np.ascontiguousarray(x, dtype="<f4").astype("<f2").tobytes()
    if ttype == BF16:
        return bf16_bits(x).astype("<u2").tobytes()
    if ttype == Q8_0:
        return enc_q8_0(x)
    if ttype == Q4_K:
        return enc_q4_k(x)
    if ttype == Q6_K:
        return enc_q6_k(x)
    if ttype == TQ1_0:
        return enc_tq1_0(x)
    if ttype == TQ2_0:
        return enc_tq2_0(x)
    if ttype == IQ1_BN:
        return enc_iq1_bn(x, ne0)
    if ttype == IQ2_BN:
        return enc_iq2_bn(x, ne0)
    if ttype == I2_S:
        return enc_i2_s(x)
    raise ValueError(f"no encoder for type {ttype}")


def decode(ttype, data, shape) -> np.ndarray:
    """Decode raw tensor bytes of ggml ``shape`` (ne0 first) to float64, shape reversed."""
    ttype = type_id(ttype)
    shape = tuple(int(s) for s in shape)
    n = _nel(shape)
    out_shape = tuple(reversed(shape))
    if len(data) != nbytes(ttype, shape):
        raise ValueError(f"{NAMES.get(ttype, ttype)} tensor of shape {shape}: {len(data)} bytes, "
                         f"expected {nbytes(ttype, shape)}")
    if ttype == F32:
        v = np.frombuffer(bytes(data), dtype="<f4").astype(np.float64)
    elif ttype == F16:
        v = np.frombuffer(bytes(data), dtype="<f2").astype(np.float64)
    elif ttype == BF16:
        v = (np.frombuffer(bytes(data), dtype="<u2").astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    elif ttype == Q8_0:
        v = dec_q8_0(data)
    elif ttype == Q4_K:
        v = dec_q4_k(data)
    elif ttype == Q6_K:
        v = dec_q6_k(data)
    elif ttype == TQ1_0:
        v = dec_tq1_0(data)
    elif ttype == TQ2_0:
        v = dec_tq2_0(data)
    elif ttype == IQ1_BN:
        v = dec_iq1_bn(data, shape[0])
    elif ttype == IQ2_BN:
        v = dec_iq2_bn(data, shape[0])
    elif ttype == I2_S:
        v = dec_i2_s(data, n)
    else:
        raise ValueError(f"no decoder for type {ttype}")
    return np.asarray(v, dtype=np.float64).reshape(out_shape)
