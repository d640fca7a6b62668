#ifndef BN_NEON_TEMPLATE
/* ARM NEON kernel set (aarch64; BN_ISA_NEON), with dot-product (SDOT)
 * versions of the integer kernels chosen at run time when the CPU has them.
 *
 * Exactness (kernels.h): every entry returns bit for bit what the scalar set
 * returns. The scalar kernels (types_*.c) fix, per type, which positions go
 * to which integer lane and which float operations follow; integer sums are
 * exact, so here they are formed in whatever order NEON likes, and only the
 * float part copies the scalar code operation by operation:
 *   - vfmaq_f32(acc, x, y) exactly where the scalar calls fmaf(x, y, acc)
 *     (same operand order; it only decides which NaN comes out, and the
 *     compiler may swap it anyway: NaN payloads of dot products are not part
 *     of the contract, see tests/c/test_kernels_float.c);
 *   - vmulq_f32 then vaddq_f32 where the scalar writes a * b + c. GCC's
 *     arm_neon.h spells these as C operators, so this relies on the library's
 *     -std=c11 (-ffp-contract=off) like the scalar code does (clang needs
 *     -ffp-contract=off spelled out, for the scalar code as much as here);
 *   - the bn_hsum8 / bn_hsum4 fold order (hsum8_f32 / hsum4_f32 below).
 * Half floats: FCVTL (vcvt_f32_f16) is exact for every finite half, but it
 * quiets a signalling NaN where bn_fp16_to_fp32 keeps its bits, so rows or
 * chunks holding a NaN half go through the scalar conversion.
 *
 * Integer kernels are written once (the template part at the end of this
 * file) and compiled twice by including this file into itself: "_neon" with
 * the baseline instructions (SDOT emulated by SMULL + pairwise adds, or
 * int16 SMLAL accumulators where the sums provably fit), and "_dot" with
 * target("arch=armv8.2-a+dotprod") using vdotq_s32 (clang >= 16:
 * target("dotprod"); older clangs build "_neon" only). bn_kernels_fill_neon
 * picks one with getauxval(AT_HWCAP) & HWCAP_ASIMDDP, as kernels.c does.
 * tests/test_cross_aarch64.py runs the C tests under qemu with and without
 * the extension, tests/c/test_kernels_neon_smoke.c checks the choice.
 *
 * Every mul_mat walks the tokens in tiles of up to 4 (Q4_K / Q6_K: 2) so a
 * weight block is decoded once for several activation rows (prefill);
 * decode is a tile of 1 with several independent accumulator chains.
 *
 * Types: F32, F16, BF16, Q8_0, Q4_K, Q6_K, TQ1_0, TQ2_0, I2_S, IQ1_BN,
 * IQ2_BN (all mul_mat entries), axpy_f16/_f32 and the fp16 row conversions.
 * The activation quantizers stay scalar. */
#include "kernels.h"

#if defined(__aarch64__)

#include <arm_neon.h>
#include <string.h>

#include "act_quant.h"

#if defined(__linux__)
#include <sys/auxv.h>
#endif

#define BN_INLINE static inline __attribute__((always_inline))
#define BN_UNROLL _Pragma("GCC unroll 8")
#define BN_TILE 4 /* tokens per tile */

/* ---- float helpers (shared by both variants) ----------------------------- */

/* bn_hsum8 of the 8 lanes {lo, hi}: (v[i] + v[i+4]), then (h0+h2) + (h1+h3). */
BN_INLINE float hsum8_f32(float32x4_t lo, float32x4_t hi) {
    const float32x4_t h = vaddq_f32(lo, hi);
    const float32x2_t s = vadd_f32(vget_low_f32(h), vget_high_f32(h));
    return vget_lane_f32(s, 0) + vget_lane_f32(s, 1);
}

/* bn_hsum4: (v0 + v2) + (v1 + v3). */
BN_INLINE float hsum4_f32(float32x4_t v) {
    const float32x2_t s = vadd_f32(vget_low_f32(v), vget_high_f32(v));
    return vget_lane_f32(s, 0) + vget_lane_f32(s, 1);
}

/* bn_fp16_to_fp32 without a call: FCVT for finite halfs (exact), the
 * reference's bit pattern for inf / NaN (FCVT would quiet a signalling NaN). */
BN_INLINE float h2f(uint16_t h) {
    const float f = vget_lane_f32(vget_low_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(h)))), 0);
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    const uint32_t special = ((uint32_t)(h & 0x8000u) << 16) | 0x7f800000u | ((uint32_t)(h & 0x3ffu) << 13);
    u = (h & 0x7c00u) == 0x7c00u ? special : u;
    float r;
    memcpy(&r, &u, sizeof r);
    return r;
}

BN_INLINE float rd_f16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, sizeof h);
    return h2f(h);
}

/* Nonzero when one of the 8 halfs is a NaN (FCVTL would quiet it). */
BN_INLINE int has_nan_f16(uint16x8_t h) {
    return vmaxvq_u16(vandq_u16(h, vdupq_n_u16(0x7fff))) > 0x7c00;
}

/* ---- F32 / F16 / BF16 x F32 --------------------------------------------- */
/* types_float.c, dot_lanes8: acc[l] += w[i+l] * x[i+l] (mul, then add) for
 * full groups of 8, the tail into lanes 0.., then bn_hsum8. */

enum { W_F32, W_F16, W_BF16 };

BN_INLINE void load_w8(int kind, const uint8_t *w, int64_t i, float32x4_t *lo, float32x4_t *hi) {
    if (kind == W_F32) {
        *lo = vreinterpretq_f32_u8(vld1q_u8(w + 4 * i));
        *hi = vreinterpretq_f32_u8(vld1q_u8(w + 4 * i + 16));
    } else {
        const uint16x8_t h = vreinterpretq_u16_u8(vld1q_u8(w + 2 * i));
        if (kind == W_F16) {
            *lo = vcvt_f32_f16(vreinterpret_f16_u16(vget_low_u16(h)));
            *hi = vcvt_high_f32_f16(vreinterpretq_f16_u16(h));
        } else { /* bf16: the bits move up 16, exactly as bn_bf16_to_fp32 */
            *lo = vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(h), 16));
            *hi = vreinterpretq_f32_u32(vshll_high_n_u16(h, 16));
        }
    }
}

BN_INLINE float load_w1(int kind, const uint8_t *w, int64_t i) {
    if (kind == W_F32)
        return bn_rd_f32(w + 4 * i);
    uint16_t h;
    memcpy(&h, w + 2 * i, sizeof h);
    return kind == W_F16 ? bn_fp16_to_fp32(h) : bn_bf16_to_fp32(h);
}

/* Dot products of one weight row with nt activation rows x[t]. Returns
 * nonzero (and leaves out[] unset) when an F16 row holds a NaN half. */
BN_INLINE int dot_float_tile(int kind, int nt, int64_t n, const uint8_t *w, const float *const *x, float *out) {
    float32x4_t a0[BN_TILE], a1[BN_TILE];
    BN_UNROLL
    for (int t = 0; t < nt; t++)
        a0[t] = a1[t] = vdupq_n_f32(0.0f);
    uint16x8_t nan = vdupq_n_u16(0);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        float32x4_t w0, w1;
        load_w8(kind, w, i, &w0, &w1);
        if (kind == W_F16)
            nan = vmaxq_u16(nan, vandq_u16(vreinterpretq_u16_u8(vld1q_u8(w + 2 * i)), vdupq_n_u16(0x7fff)));
        BN_UNROLL
        for (int t = 0; t < nt; t++) {
            a0[t] = vaddq_f32(a0[t], vmulq_f32(w0, vld1q_f32(x[t] + i)));
            a1[t] = vaddq_f32(a1[t], vmulq_f32(w1, vld1q_f32(x[t] + i + 4)));
        }
    }
    if (kind == W_F16 && vmaxvq_u16(nan) > 0x7c00)
        return 1;
    BN_UNROLL
    for (int t = 0; t < nt; t++) {
        if (i < n) {
            float acc[8];
            vst1q_f32(acc, a0[t]);
            vst1q_f32(acc + 4, a1[t]);
            for (int64_t j = i, l = 0; j < n; j++, l++)
                acc[l] += load_w1(kind, w, j) * x[t][j];
            out[t] = bn_hsum8(acc);
        } else {
            out[t] = hsum8_f32(a0[t], a1[t]);
        }
    }
    return 0;
}

BN_INLINE void mul_mat_float(int kind, int64_t n, const uint8_t *w, size_t w_row_bytes, int64_t n_rows,
                             const uint8_t *act, size_t act_row_bytes, int64_t n_tok, float *y, int64_t y_stride) {
    for (int64_t t0 = 0; t0 < n_tok; t0 += BN_TILE) {
        const int nt = n_tok - t0 < BN_TILE ? (int)(n_tok - t0) : BN_TILE;
        const float *x[BN_TILE];
        for (int t = 0; t < nt; t++)
            x[t] = (const float *)(const void *)(act + (size_t)(t0 + t) * act_row_bytes);
        for (int64_t r = 0; r < n_rows; r++) {
            const uint8_t *wr = w + (size_t)r * w_row_bytes;
            float out[BN_TILE];
            int bad;
            switch (nt) {
            case 4: bad = dot_float_tile(kind, 4, n, wr, x, out); break;
            case 3: bad = dot_float_tile(kind, 3, n, wr, x, out); break;
            case 2: bad = dot_float_tile(kind, 2, n, wr, x, out); break;
            default: bad = dot_float_tile(kind, 1, n, wr, x, out); break;
            }
            for (int t = 0; t < nt; t++)
                y[(t0 + t) * y_stride + r] = bad ? bn_f16_vec_dot(n, wr, x[t]) : out[t];
        }
    }
}

static void mul_mat_f32(int64_t n, const uint8_t *w, size_t w_row_bytes, int64_t n_rows, const uint8_t *act,
                        size_t act_row_bytes, int64_t n_tok, float *y, int64_t y_stride) {
    mul_mat_float(W_F32, n, w, w_row_bytes, n_rows, act, act_row_bytes, n_tok, y, y_stride);
}
static void mul_mat_f16(int64_t n, const uint8_t *w, size_t w_row_bytes, int64_t n_rows, const uint8_t *act,
                        size_t act_row_bytes, int64_t n_tok, float *y, int64_t y_stride) {
    mul_mat_float(W_F16, n, w, w_row_bytes, n_rows, act, act_row_bytes, n_tok, y, y_stride);
}
static void mul_mat_bf16(int64_t n, const uint8_t *w, size_t w_row_bytes, int64_t n_rows, const uint8_t *act,
                         size_t act_row_bytes, int64_t n_tok, float *y, int64_t y_stride) {
    mul_mat_float(W_BF16, n, w, w_row_bytes, n_rows, act, act_row_bytes, n_tok, y, y_stride);
}

/* ---- axpy and half conversions ------------------------------------------ */

static void axpy_f32(int64_t n, float a, const float *x, float *y) {
    const float32x4_t va = vdupq_n_f32(a);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4)
        vst1q_f32(y + i, vaddq_f32(vld1q_f32(y + i), vmulq_f32(va, vld1q_f32(x + i))));
    for (; i < n; i++)
        y[i] = y[i] + a * x[i];
}

static void axpy_f16(int64_t n, float a, const uint16_t *x, float *y) {
    const float32x4_t va = vdupq_n_f32(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const uint16x8_t h = vld1q_u16(x + i);
        if (has_nan_f16(h)) {
            for (int64_t j = i; j < i + 8; j++)
                y[j] = y[j] + a * bn_fp16_to_fp32(x[j]);
            continue;
        }
        const float32x4_t lo = vcvt_f32_f16(vreinterpret_f16_u16(vget_low_u16(h)));
        const float32x4_t hi = vcvt_high_f32_f16(vreinterpretq_f16_u16(h));
        vst1q_f32(y + i, vaddq_f32(vld1q_f32(y + i), vmulq_f32(va, lo)));
        vst1q_f32(y + i + 4, vaddq_f32(vld1q_f32(y + i + 4), vmulq_f32(va, hi)));
    }
    for (; i < n; i++)
        y[i] = y[i] + a * bn_fp16_to_fp32(x[i]);
}

/* FCVTN rounds to nearest even (FPCR default), overflows to infinity, keeps
 * subnormals and turns a NaN into sign | 0x7e00 | frac<21:13>: all exactly
 * bn_fp32_to_fp16. */
static void fp32_to_fp16(const float *x, uint16_t *y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const float16x8_t h = vcvt_high_f16_f32(vcvt_f16_f32(vld1q_f32(x + i)), vld1q_f32(x + i + 4));
        vst1q_u16(y + i, vreinterpretq_u16_f16(h));
    }
    for (; i < n; i++)
        y[i] = bn_fp32_to_fp16(x[i]);
}

static void fp16_to_fp32(const uint16_t *x, float *y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const uint16x8_t h = vld1q_u16(x + i);
        if (has_nan_f16(h)) {
            for (int64_t j = i; j < i + 8; j++)
                y[j] = bn_fp16_to_fp32(x[j]);
            continue;
        }
        vst1q_f32(y + i, vcvt_f32_f16(vreinterpret_f16_u16(vget_low_u16(h))));
        vst1q_f32(y + i + 4, vcvt_high_f32_f16(vreinterpretq_f16_u16(h)));
    }
    for (; i < n; i++)
        y[i] = bn_fp16_to_fp32(x[i]);
}

/* ---- shared tables for the integer kernels ------------------------------ */

/* IQ1_BN: a block's 13 bytes are loaded as bytes 0..7 then 5..12 (no read
 * past the block), so byte b sits at vector index b < 8 ? b : b + 3.
 * Group g, position r: byte 3g + r/5 with multiplier 3^(4 - r%5), and for
 * r = 15 byte 12 ("extra") with multiplier 3^(4 - g). */
#define IQ1_IDX(b) ((b) < 8 ? (b) : (b) + 3)
#define IQ1_ROW(g)                                                                                              \
    {IQ1_IDX(3 * (g)), IQ1_IDX(3 * (g)), IQ1_IDX(3 * (g)), IQ1_IDX(3 * (g)), IQ1_IDX(3 * (g)),                 \
     IQ1_IDX(3 * (g) + 1), IQ1_IDX(3 * (g) + 1), IQ1_IDX(3 * (g) + 1), IQ1_IDX(3 * (g) + 1),                   \
     IQ1_IDX(3 * (g) + 1), IQ1_IDX(3 * (g) + 2), IQ1_IDX(3 * (g) + 2), IQ1_IDX(3 * (g) + 2),                   \
     IQ1_IDX(3 * (g) + 2), IQ1_IDX(3 * (g) + 2), 15}
static const uint8_t k_iq1_idx[4][16] = {IQ1_ROW(0), IQ1_ROW(1), IQ1_ROW(2), IQ1_ROW(3)};
#define IQ1_MUL(g) {81, 27, 9, 3, 1, 81, 27, 9, 3, 1, 81, 27, 9, 3, 1, (g) == 0 ? 81 : (g) == 1 ? 27 : (g) == 2 ? 9 : 3}
static const uint8_t k_iq1_mul[4][16] = {IQ1_MUL(0), IQ1_MUL(1), IQ1_MUL(2), IQ1_MUL(3)};

/* TQ1_0 qh: the 4 bytes repeated, trit s (multiplier 3^s) for bytes 4s..4s+3. */
static const uint8_t k_tq1_qh_mul[16] = {1, 1, 1, 1, 3, 3, 3, 3, 9, 9, 9, 9, 27, 27, 27, 27};

/* Trit (0..2) of base-3 bytes q for multiplier vector m:
 * ((uint8_t)(q*m) * 3) >> 8 == (x + (x >> 1)) >> 7 == hadd(x, x >> 1) >> 6. */
BN_INLINE uint8x16_t trit_u8(uint8x16_t q, uint8x16_t m) {
    const uint8x16_t x = vmulq_u8(q, m);
    return vshrq_n_u8(vhaddq_u8(x, vshrq_n_u8(x, 1)), 6);
}

/* The 8 scales and 8 mins of a Q4_K block (types_kquants.c, q4_k_scales). */
BN_INLINE void q4_k_scales(const uint8_t *s, uint8_t sc[8], uint8_t m[8]) {
    for (int j = 0; j < 4; j++) {
        sc[j] = s[j] & 63;
        m[j] = s[j + 4] & 63;
    }
    for (int j = 4; j < 8; j++) {
        sc[j] = (uint8_t)((s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4));
        m[j] = (uint8_t)((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
    }
}

/* I2_S: whether a token's int16 lanes (types_ternary.c, bn_i2_s_vec_dot)
 * provably never wrap, so the exact total is simply the sum of all products.
 * Lane m of a 32-block run collects code * q over positions (j % 32) / 2 == m;
 * |code| <= 3, so 3 * sum |q| <= 32767 per lane and run is enough. */
static int i2_s_no_wrap(const int8_t *q8, int64_t nb) {
    for (int64_t run = 0; run < nb; run += 32) {
        const int64_t end = run + 32 < nb ? run + 32 : nb;
        uint16x8_t lo = vdupq_n_u16(0), hi = vdupq_n_u16(0); /* lanes m 0..7, 8..15 */
        for (int64_t b = run; b < end; b++)
            for (int s = 0; s < 4; s++) {
                const int8_t *q = q8 + 128 * b + 32 * s;
                lo = vpadalq_u8(lo, vreinterpretq_u8_s8(vabsq_s8(vld1q_s8(q))));
                hi = vpadalq_u8(hi, vreinterpretq_u8_s8(vabsq_s8(vld1q_s8(q + 16))));
            }
        if (vmaxvq_u16(vmaxq_u16(lo, hi)) > 32767 / 3)
            return 0;
    }
    return 1;
}

/* ---- the integer kernels, twice ------------------------------------------ */

#define BN_NEON_TEMPLATE 1

#define BN_SFX(name) name##_neon
#define BN_ATTR
#define BN_DOT 0
#include "kernels_neon.c"
#undef BN_SFX
#undef BN_ATTR
#undef BN_DOT

#if defined(__ARM_FEATURE_DOTPROD)
#define BN_HAVE_DOT 1
#define BN_ATTR
#elif defined(__clang__) && (__clang_major__ >= 16 || (defined(__apple_build_version__) && __clang_major__ >= 15))
/* Before LLVM 16, arm_neon.h defines vdotq_s32 only under -march=...+dotprod:
 * older clangs build the plain variant alone. */
#define BN_HAVE_DOT 1
#define BN_ATTR __attribute__((target("dotprod")))
#elif defined(__GNUC__) && !defined(__clang__)
#define BN_HAVE_DOT 1
/* GCC 12's arm_neon.h declares vdotq_s32 under "arch=armv8.2-a+dotprod";
 * "+dotprod" alone fails to inline it. */
#define BN_ATTR __attribute__((target("arch=armv8.2-a+dotprod")))
#else
#define BN_HAVE_DOT 0
#endif

#if BN_HAVE_DOT
#define BN_SFX(name) name##_dot
#define BN_DOT 1
#include "kernels_neon.c"
#undef BN_SFX
#undef BN_ATTR
#undef BN_DOT
#endif

#if BN_HAVE_DOT
static int cpu_has_dotprod(void) {
#if defined(__ARM_FEATURE_DOTPROD)
    return 1;
#elif defined(__linux__) && defined(HWCAP_ASIMDDP)
    return (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
#elif defined(__APPLE__)
    return 1; /* every Apple arm64 CPU has the dot-product instructions */
#else
    return 0;
#endif
}
#endif

#define BN_SET_INT(k, SFX)                                                                                      \
    do {                                                                                                        \
        (k)->mul_mat[BN_TYPE_Q8_0] = mul_mat_q8_0##SFX;                                                         \
        (k)->mul_mat[BN_TYPE_Q4_K] = mul_mat_q4_k##SFX;                                                         \
        (k)->mul_mat[BN_TYPE_Q6_K] = mul_mat_q6_k##SFX;                                                         \
        (k)->mul_mat[BN_TYPE_TQ1_0] = mul_mat_tq1_0##SFX;                                                       \
        (k)->mul_mat[BN_TYPE_TQ2_0] = mul_mat_tq2_0##SFX;                                                       \
        (k)->mul_mat[BN_TYPE_I2_S] = mul_mat_i2_s##SFX;                                                         \
        (k)->mul_mat[BN_TYPE_IQ1_BN] = mul_mat_iq1_bn##SFX;                                                     \
        (k)->mul_mat[BN_TYPE_IQ2_BN] = mul_mat_iq2_bn##SFX;                                                     \
    } while (0)

void bn_kernels_fill_neon(bn_kernels *k) {
    k->mul_mat[BN_TYPE_F32] = mul_mat_f32;
    k->mul_mat[BN_TYPE_F16] = mul_mat_f16;
    k->mul_mat[BN_TYPE_BF16] = mul_mat_bf16;
    k->axpy_f16 = axpy_f16;
    k->axpy_f32 = axpy_f32;
    k->fp32_to_fp16 = fp32_to_fp16;
    k->fp16_to_fp32 = fp16_to_fp32;
#if BN_HAVE_DOT
    if (cpu_has_dotprod()) {
        BN_SET_INT(k, _dot);
        return;
    }
#endif
    BN_SET_INT(k, _neon);
}

#else /* !__aarch64__ */

void bn_kernels_fill_neon(bn_kernels *k) { (void)k; }

#endif

#else /* BN_NEON_TEMPLATE: the integer kernels, for BN_SFX / BN_ATTR / BN_DOT */

/* Integer accumulators.
 *   dot4(acc, a, b): acc[i] += sum of a[4i+j] * b[4i+j], j < 4 (SDOT).
 *   acc_t / acc_mla / acc_s32: the same sums, but without SDOT kept as
 *   per-byte int16 SMLAL sums and only folded to int32 lanes by acc_s32;
 *   callers bound the number of products between folds so int16 holds them. */
#if BN_DOT
typedef int32x4_t BN_SFX(acc_t);
BN_INLINE BN_ATTR int32x4_t BN_SFX(dot4)(int32x4_t acc, int8x16_t a, int8x16_t b) { return vdotq_s32(acc, a, b); }
BN_INLINE BN_ATTR BN_SFX(acc_t) BN_SFX(acc_zero)(void) { return vdupq_n_s32(0); }
BN_INLINE BN_ATTR BN_SFX(acc_t) BN_SFX(acc_mla)(BN_SFX(acc_t) acc, uint8x16_t a, int8x16_t b) {
    return vdotq_s32(acc, vreinterpretq_s8_u8(a), b);
}
BN_INLINE BN_ATTR int32x4_t BN_SFX(acc_s32)(BN_SFX(acc_t) acc) { return acc; }
#else
typedef struct {
    int16x8_t lo, hi;
} BN_SFX(acc_t);
BN_INLINE int32x4_t BN_SFX(dot4)(int32x4_t acc, int8x16_t a, int8x16_t b) {
    const int16x8_t p0 = vmull_s8(vget_low_s8(a), vget_low_s8(b));
    const int16x8_t p1 = vmull_high_s8(a, b);
    return vaddq_s32(acc, vpaddq_s32(vpaddlq_s16(p0), vpaddlq_s16(p1)));
}
BN_INLINE BN_SFX(acc_t) BN_SFX(acc_zero)(void) {
    BN_SFX(acc_t) z = {vdupq_n_s16(0), vdupq_n_s16(0)};
    return z;
}
BN_INLINE BN_SFX(acc_t) BN_SFX(acc_mla)(BN_SFX(acc_t) acc, uint8x16_t a, int8x16_t b) {
    const int8x16_t sa = vreinterpretq_s8_u8(a);
    acc.lo = vmlal_s8(acc.lo, vget_low_s8(sa), vget_low_s8(b));
    acc.hi = vmlal_high_s8(acc.hi, sa, b);
    return acc;
}
BN_INLINE int32x4_t BN_SFX(acc_s32)(BN_SFX(acc_t) acc) {
    return vpaddq_s32(vpaddlq_s16(acc.lo), vpaddlq_s16(acc.hi));
}
#endif

/* Q4_K / Q6_K keep 8 int32 + 8 float lanes per token: with 4 tokens a tile
 * no longer fits the 32 vector registers, so they take tiles of 2. */
#define BN_Q_K_TILE 2

/* Independent accumulator chains per token: a tile of one token (decode)
 * would otherwise wait on the latency of one SDOT/SMLAL chain. */
#define BN_CHAINS(nt) ((nt) == 1 ? 4 : (nt) == 2 ? 2 : 1)

/* Token tiles: every kernel below is `tile(nt, n, w_row, act[nt], out[nt])`,
 * always inlined with a constant nt; BN_MUL_MAT makes the mul_mat entry. */
#define BN_MUL_MAT(NAME, TILE, ACT_T, MAX_NT)                                                                   \
    static BN_ATTR void BN_SFX(NAME)(int64_t n, const uint8_t *w, size_t w_row_bytes, int64_t n_rows,          \
                                     const uint8_t *act, size_t act_row_bytes, int64_t n_tok, float *y,        \
                                     int64_t y_stride) {                                                       \
        for (int64_t t0 = 0; t0 < n_tok; t0 += (MAX_NT)) {                                                      \
            const int nt = n_tok - t0 < (MAX_NT) ? (int)(n_tok - t0) : (MAX_NT);                                \
            const ACT_T *a[BN_TILE];                                                                            \
            for (int t = 0; t < nt; t++)                                                                        \
                a[t] = (const ACT_T *)(const void *)(act + (size_t)(t0 + t) * act_row_bytes);                   \
            for (int64_t r = 0; r < n_rows; r++) {                                                              \
                const uint8_t *wr = w + (size_t)r * w_row_bytes;                                                \
                float out[BN_TILE];                                                                             \
                switch (nt) {                                                                                   \
                case 4: BN_SFX(TILE)((MAX_NT) >= 4 ? 4 : 1, n, wr, a, out); break;                              \
                case 3: BN_SFX(TILE)((MAX_NT) >= 3 ? 3 : 1, n, wr, a, out); break;                              \
                case 2: BN_SFX(TILE)(2, n, wr, a, out); break;                                                  \
                default: BN_SFX(TILE)(1, n, wr, a, out); break;                                                 \
                }                                                                                               \
                for (int t = 0; t < nt; t++)                                                                    \
                    y[(t0 + t) * y_stride + r] = out[t];                                                        \
            }                                                                                                   \
        }                                                                                                       \
    }

/* ---- TQ2_0 x Q8_K: qs[64], fp16 d ---------------------------------------
 * Byte 32h + k, bits 2s, holds position 128h + 32s + k; lane (p % 32) / 4 =
 * k / 4, so bytes 0..15 and 32..47 feed lanes 0..3, the others lanes 4..7.
 * Per block and int16 lane: 8 products of at most 3 * 128. */
BN_INLINE BN_ATTR void BN_SFX(tq2_0_tile)(int nt, int64_t n, const uint8_t *w, const bn_act_q8_k *const *a,
                                          float *out) {
    float32x4_t f_lo[BN_TILE], f_hi[BN_TILE];
    BN_UNROLL
    for (int t = 0; t < nt; t++)
        f_lo[t] = f_hi[t] = vdupq_n_f32(0.0f);
    const uint8x16_t m3 = vdupq_n_u8(3);
    for (int64_t b = 0; b < n / 256; b++, w += 66) {
        const uint8x16_t q0 = vld1q_u8(w), q1 = vld1q_u8(w + 16), q2 = vld1q_u8(w + 32), q3 = vld1q_u8(w + 48);
        const float dw = rd_f16(w + 64);
        const int nc = BN_CHAINS(nt) > 2 ? 2 : BN_CHAINS(nt);
        BN_SFX(acc_t) lo[BN_TILE][2], hi[BN_TILE][2];
        BN_UNROLL
        for (int t = 0; t < nt; t++)
            BN_UNROLL
            for (int k = 0; k < nc; k++)
                lo[t][k] = hi[t][k] = BN_SFX(acc_zero)();
        BN_UNROLL
        for (int s = 0; s < 4; s++) {
            const uint8x16_t c0 = vandq_u8(vshlq_u8(q0, vdupq_n_s8((int8_t)(-2 * s))), m3);
            const uint8x16_t c1 = vandq_u8(vshlq_u8(q1, vdupq_n_s8((int8_t)(-2 * s))), m3);
            const uint8x16_t c2 = vandq_u8(vshlq_u8(q2, vdupq_n_s8((int8_t)(-2 * s))), m3);
            const uint8x16_t c3 = vandq_u8(vshlq_u8(q3, vdupq_n_s8((int8_t)(-2 * s))), m3);
            const int k = s % nc;
            BN_UNROLL
            for (int t = 0; t < nt; t++) {
                const int8_t *y = a[t][b].qs + 32 * s;
                lo[t][k] = BN_SFX(acc_mla)(lo[t][k], c0, vld1q_s8(y));
                hi[t][k] = BN_SFX(acc_mla)(hi[t][k], c1, vld1q_s8(y + 16));
                lo[t][k] = BN_SFX(acc_mla)(lo[t][k], c2, vld1q_s8(y + 128));
                hi[t][k] = BN_SFX(acc_mla)(hi[t][k], c3, vld1q_s8(y + 144));
            }
        }
        BN_UNROLL
        for (int t = 0; t < nt; t++) {
            const bn_act_q8_k *ab = &a[t][b];
            int32x4_t s_lo = BN_SFX(acc_s32)(lo[t][0]), s_hi = BN_SFX(acc_s32)(hi[t][0]);
            if (nc > 1) {
                s_lo = vaddq_s32(s_lo, BN_SFX(acc_s32)(lo[t][1]));
                s_hi = vaddq_s32(s_hi, BN_SFX(acc_s32)(hi[t][1]));
            }
            const int32x4_t l_lo = vsubq_s32(s_lo, vpaddlq_s16(vld1q_s16(ab->bsums)));
            const int32x4_t l_hi = vsubq_s32(s_hi, vpaddlq_s16(vld1q_s16(ab->bsums + 8)));
            const float32x4_t d = vdupq_n_f32(ab->d * dw);
            f_lo[t] = vfmaq_f32(f_lo[t], vcvtq_f32_s32(l_lo), d);
            f_hi[t] = vfmaq_f32(f_hi[t], vcvtq_f32_s32(l_hi), d);
        }
    }
    BN_UNROLL
    for (int t = 0; t < nt; t++)
        out[t] = hsum8_f32(f_lo[t], f_hi[t]);
}
BN_MUL_MAT(mul_mat_tq2_0, tq2_0_tile, bn_act_q8_k, 4)

/* ---- TQ1_0 x Q8_K: qs[48], qh[4], fp16 d ---------------------------------
 * Positions 32s + k (s < 5): trit s of qs[k]; lanes k / 4.
 * 160 + 16s + j: trit s of qs[32 + j]; lanes 0..3 for even s, 4..7 for odd.
 * 240 + 4s + j: trit s of qh[j]; lane 4 + s.
 * Per block and int16 lane: 8 products of at most 2 * 128. */
BN_INLINE BN_ATTR void BN_SFX(tq1_0_tile)(int nt, int64_t n, const uint8_t *w, const bn_act_q8_k *const *a,
                                          float *out) {
    float32x4_t f_lo[BN_TILE], f_hi[BN_TILE];
    BN_UNROLL
    for (int t = 0; t < nt; t++)
        f_lo[t] = f_hi[t] = vdupq_n_f32(0.0f);
    static const uint8_t pow3[5] = {1, 3, 9, 27, 81};
    const uint8x16_t mqh = vld1q_u8(k_tq1_qh_mul);
    for (int64_t b = 0; b < n / 256; b++, w += 54) {
        const uint8x16_t q0 = vld1q_u8(w), q1 = vld1q_u8(w + 16), q2 = vld1q_u8(w + 32);
        uint32_t qh4;
        memcpy(&qh4, w + 48, sizeof qh4);
        const float dw = rd_f16(w + 52);
        const int nc = BN_CHAINS(nt) > 2 ? 2 : BN_CHAINS(nt);
        BN_SFX(acc_t) lo[BN_TILE][2], hi[BN_TILE][2];
        BN_UNROLL
        for (int t = 0; t < nt; t++)
            BN_UNROLL
            for (int k = 0; k < nc; k++)
                lo[t][k] = hi[t][k] = BN_SFX(acc_zero)();
        BN_UNROLL
        for (int s = 0; s < 5; s++) {
            const uint8x16_t m = vdupq_n_u8(pow3[s]);
            const uint8x16_t c0 = trit_u8(q0, m), c1 = trit_u8(q1, m), c2 = trit_u8(q2, m);
            const int k = s % nc;
            BN_UNROLL
            for (int t = 0; t < nt; t++) {
                const int8_t *y = a[t][b].qs;
                lo[t][k] = BN_SFX(acc_mla)(lo[t][k], c0, vld1q_s8(y + 32 * s));
                hi[t][k] = BN_SFX(acc_mla)(hi[t][k], c1, vld1q_s8(y + 32 * s + 16));
                if (s % 2 == 0)
                    lo[t][nc - 1 - k] = BN_SFX(acc_mla)(lo[t][nc - 1 - k], c2, vld1q_s8(y + 160 + 16 * s));
                else
                    hi[t][nc - 1 - k] = BN_SFX(acc_mla)(hi[t][nc - 1 - k], c2, vld1q_s8(y + 160 + 16 * s));
            }
        }
        const uint8x16_t ch = trit_u8(vreinterpretq_u8_u32(vdupq_n_u32(qh4)), mqh);
        BN_UNROLL
        for (int t = 0; t < nt; t++) {
            const bn_act_q8_k *ab = &a[t][b];
            hi[t][0] = BN_SFX(acc_mla)(hi[t][0], ch, vld1q_s8(ab->qs + 240));
            int32x4_t s_lo = BN_SFX(acc_s32)(lo[t][0]), s_hi = BN_SFX(acc_s32)(hi[t][0]);
            if (nc > 1) {
                s_lo = vaddq_s32(s_lo, BN_SFX(acc_s32)(lo[t][1]));
                s_hi = vaddq_s32(s_hi, BN_SFX(acc_s32)(hi[t][1]));
            }
            const int32x4_t l_lo = vsubq_s32(s_lo, vpaddlq_s16(vld1q_s16(ab->bsums)));
            const int32x4_t l_hi = vsubq_s32(s_hi, vpaddlq_s16(vld1q_s16(ab->bsums + 8)));
            const float32x4_t d = vdupq_n_f32(ab->d * dw);
            f_lo[t] = vfmaq_f32(f_lo[t], vcvtq_f32_s32(l_lo), d);
            f_hi[t] = vfmaq_f32(f_hi[t], vcvtq_f32_s32(l_hi), d);
        }
    }
    BN_UNROLL
    for (int t = 0; t < nt; t++)
        out[t] = hsum8_f32(f_lo[t], f_hi[t]);
}
BN_MUL_MAT(mul_mat_tq1_0, tq1_0_tile, bn_act_q8_k, 4)

/* ---- IQ2_BN / IQ1_BN x Q8_K64 ---------------------------------------------
 * Group lanes g = (i % 16) / 4 over the whole row, then
 * f = fma(d, (float)sum, -minus) and d_row * hsum4(f).
 * Without SDOT the int16 lanes take 4 products (<= 3 * 128) per block, so
 * they are folded every 16 blocks. */
BN_INLINE BN_ATTR float BN_SFX(bn_row_finish)(float d_row, const bn_act_q8_k64 *a, int32x4_t sum) {
    const float32x4_t f = vfmaq_f32(vnegq_f32(vld1q_f32(a->minus)), vld1q_f32(a->d), vcvtq_f32_s32(sum));
    return d_row * hsum4_f32(f);
}

/* IQ2_BN: f32 row scale, 16 bytes per 64: byte k, bits 2s = position 16s + k. */
BN_INLINE BN_ATTR void BN_SFX(iq2_bn_tile)(int nt, int64_t n, const uint8_t *w, const bn_act_q8_k64 *const *a,
                                           float *out) {
    const float d_row = bn_rd_f32(w);
    const uint8_t *blk = w + 4;
    const int8_t *q8[BN_TILE];
    int32x4_t sum[BN_TILE];
    BN_UNROLL
    for (int t = 0; t < nt; t++) {
        q8[t] = bn_q8_k64_qs(a[t]);
        sum[t] = vdupq_n_s32(0);
    }
    const uint8x16_t m3 = vdupq_n_u8(3);
    const int64_t nb = n / 64;
    for (int64_t b0 = 0; b0 < nb; b0 += 16) {
        const int64_t b1 = b0 + 16 < nb ? b0 + 16 : nb;
        const int nc = BN_CHAINS(nt);
        BN_SFX(acc_t) acc[BN_TILE][4];
        BN_UNROLL
        for (int t = 0; t < nt; t++)
            BN_UNROLL
            for (int k = 0; k < nc; k++)
                acc[t][k] = BN_SFX(acc_zero)();
        for (int64_t b = b0; b < b1; b++) {
            const uint8x16_t q = vld1q_u8(blk + 16 * b);
            uint8x16_t c[4];
            c[0] = vandq_u8(q, m3);
            c[1] = vandq_u8(vshrq_n_u8(q, 2), m3);
            c[2] = vandq_u8(vshrq_n_u8(q, 4), m3);
            c[3] = vshrq_n_u8(q, 6);
            BN_UNROLL
            for (int t = 0; t < nt; t++) {
                const int8_t *y = q8[t] + 64 * b;
                BN_UNROLL
                for (int s = 0; s < 4; s++)
                    acc[t][s % nc] = BN_SFX(acc_mla)(acc[t][s % nc], c[s], vld1q_s8(y + 16 * s));
            }
        }
        BN_UNROLL
        for (int t = 0; t < nt; t++)
            BN_UNROLL
            for (int k = 0; k < nc; k++)
                sum[t] = vaddq_s32(sum[t], BN_SFX(acc_s32)(acc[t][k]));
    }
    BN_UNROLL
    for (int t = 0; t < nt; t++)
        out[t] = BN_SFX(bn_row_finish)(d_row, a[t], sum[t]);
}
BN_MUL_MAT(mul_mat_iq2_bn, iq2_bn_tile, bn_act_q8_k64, 4)

/* IQ1_BN: fp16 row scale, 13 bytes per 64 (see k_iq1_idx / k_iq1_mul). */
BN_INLINE BN_ATTR void BN_SFX(iq1_bn_tile)(int nt, int64_t n, const uint8_t *w, const bn_act_q8_k64 *const *a,
                                           float *out) {
    const float d_row = rd_f16(w);
    const uint8_t *blk = w + 2;
    const int8_t *q8[BN_TILE];
    int32x4_t sum[BN_TILE];
    BN_UNROLL
    for (int t = 0; t < nt; t++) {
        q8[t] = bn_q8_k64_qs(a[t]);
        sum[t] = vdupq_n_s32(0);
    }
    uint8x16_t idx[4], mul[4];
    for (int g = 0; g < 4; g++) {
        idx[g] = vld1q_u8(k_iq1_idx[g]);
        mul[g] = vld1q_u8(k_iq1_mul[g]);
    }
    const int64_t nb = n / 64;
    for (int64_t b0 = 0; b0 < nb; b0 += 16) {
        const int64_t b1 = b0 + 16 < nb ? b0 + 16 : nb;
        const int nc = BN_CHAINS(nt);
        BN_SFX(acc_t) acc[BN_TILE][4];
        BN_UNROLL
        for (int t = 0; t < nt; t++)
            BN_UNROLL
            for (int k = 0; k < nc; k++)
                acc[t][k] = BN_SFX(acc_zero)();
        for (int64_t b = b0; b < b1; b++) {
            const uint8_t *p = blk + 13 * b;
            const uint8x16_t v = vcombine_u8(vld1_u8(p), vld1_u8(p + 5));
            uint8x16_t c[4];
            BN_UNROLL
            for (int g = 0; g < 4; g++)
                c[g] = trit_u8(vqtbl1q_u8(v, idx[g]), mul[g]);
            BN_UNROLL
            for (int t = 0; t < nt; t++) {
                const int8_t *y = q8[t] + 64 * b;
                BN_UNROLL
                for (int g = 0; g < 4; g++)
                    acc[t][g % nc] = BN_SFX(acc_mla)(acc[t][g % nc], c[g], vld1q_s8(y + 16 * g));
            }
        }
        BN_UNROLL
        for (int t = 0; t < nt; t++)
            BN_UNROLL
            for (int k = 0; k < nc; k++)
                sum[t] = vaddq_s32(sum[t], BN_SFX(acc_s32)(acc[t][k]));
    }
    BN_UNROLL
    for (int t = 0; t < nt; t++)
        out[t] = BN_SFX(bn_row_finish)(d_row, a[t], sum[t]);
}
BN_MUL_MAT(mul_mat_iq1_bn, iq1_bn_tile, bn_act_q8_k64, 4)

/* ---- I2_S x I8_ROW: 32 bytes per 128 -------------------------------------
 * Byte k, bits 6 - 2s = position 32s + k. The reference sums in 16 int16
 * lanes (m = k / 2) per run of 32 blocks and wraps. Exact path: int16 SMLAL
 * per byte (wrapping, i.e. mod 2^16 like the reference lane), pairs folded
 * with a wrapping add at the end of each run. With SDOT, tokens whose lanes
 * cannot wrap (i2_s_no_wrap) take the plain sum of all products instead. */
BN_INLINE BN_ATTR void BN_SFX(i2_s_codes)(const uint8_t *p, uint8x16_t c[8]) {
    const uint8x16_t m3 = vdupq_n_u8(3);
    const uint8x16_t qa = vld1q_u8(p), qb = vld1q_u8(p + 16);
    c[0] = vshrq_n_u8(qa, 6);
    c[1] = vshrq_n_u8(qb, 6);
    c[2] = vandq_u8(vshrq_n_u8(qa, 4), m3);
    c[3] = vandq_u8(vshrq_n_u8(qb, 4), m3);
    c[4] = vandq_u8(vshrq_n_u8(qa, 2), m3);
    c[5] = vandq_u8(vshrq_n_u8(qb, 2), m3);
    c[6] = vandq_u8(qa, m3);
    c[7] = vandq_u8(qb, m3);
}

BN_INLINE BN_ATTR void BN_SFX(i2_s_tile_exact)(int nt, int64_t n, const uint8_t *w, const bn_act_i8_row *const *a,
                                               float *out) {
    const int8_t *q8[BN_TILE];
    int32x4_t tot[BN_TILE];
    BN_UNROLL
    for (int t = 0; t < nt; t++) {
        q8[t] = bn_i8_row_qs(a[t]);
        tot[t] = vdupq_n_s32(0);
    }
    const int64_t nb = n / 128;
    for (int64_t run = 0; run < nb; run += 32) {
        const int64_t end = run + 32 < nb ? run + 32 : nb;
        int16x8_t acc[BN_TILE][4]; /* bytes k 0..7, 8..15, 16..23, 24..31 */
        BN_UNROLL
        for (int t = 0; t < nt; t++)
            acc[t][0] = acc[t][1] = acc[t][2] = acc[t][3] = vdupq_n_s16(0);
        for (int64_t b = run; b < end; b++) {
            uint8x16_t c[8];
            BN_SFX(i2_s_codes)(w + 32 * b, c);
            BN_UNROLL
            for (int t = 0; t < nt; t++) {
                const int8_t *y = q8[t] + 128 * b;
                BN_UNROLL
                for (int s = 0; s < 4; s++) {
                    const int8x16_t ya = vld1q_s8(y + 32 * s), yb = vld1q_s8(y + 32 * s + 16);
                    const int8x16_t ca = vreinterpretq_s8_u8(c[2 * s]), cb = vreinterpretq_s8_u8(c[2 * s + 1]);
                    acc[t][0] = vmlal_s8(acc[t][0], vget_low_s8(ca), vget_low_s8(ya));
                    acc[t][1] = vmlal_high_s8(acc[t][1], ca, ya);
                    acc[t][2] = vmlal_s8(acc[t][2], vget_low_s8(cb), vget_low_s8(yb));
                    acc[t][3] = vmlal_high_s8(acc[t][3], cb, yb);
                }
            }
        }
        BN_UNROLL
        for (int t = 0; t < nt; t++) {
            tot[t] = vpadalq_s16(tot[t], vpaddq_s16(acc[t][0], acc[t][1])); /* lanes m 0..7, wrapped */
            tot[t] = vpadalq_s16(tot[t], vpaddq_s16(acc[t][2], acc[t][3])); /* lanes m 8..15 */
        }
    }
    BN_UNROLL
    for (int t = 0; t < nt; t++)
        out[t] = ((float)vaddvq_s32(tot[t]) - (float)a[t]->sum) / a[t]->scale;
}

#if BN_DOT
BN_INLINE BN_ATTR void BN_SFX(i2_s_tile_fast)(int nt, int64_t n, const uint8_t *w, const bn_act_i8_row *const *a,
                                              float *out) {
    const int nc = BN_CHAINS(nt);
    const int8_t *q8[BN_TILE];
    int32x4_t tot[BN_TILE][4];
    BN_UNROLL
    for (int t = 0; t < nt; t++) {
        q8[t] = bn_i8_row_qs(a[t]);
        BN_UNROLL
        for (int k = 0; k < nc; k++)
            tot[t][k] = vdupq_n_s32(0);
    }
    for (int64_t b = 0; b < n / 128; b++) {
        uint8x16_t c[8];
        BN_SFX(i2_s_codes)(w + 32 * b, c);
        BN_UNROLL
        for (int t = 0; t < nt; t++) {
            const int8_t *y = q8[t] + 128 * b;
            BN_UNROLL
            for (int j = 0; j < 8; j++)
                tot[t][j % nc] = vdotq_s32(tot[t][j % nc], vreinterpretq_s8_u8(c[j]), vld1q_s8(y + 16 * j));
        }
    }
    BN_UNROLL
    for (int t = 0; t < nt; t++) {
        int32x4_t s = tot[t][0];
        BN_UNROLL
        for (int k = 1; k < nc; k++)
            s = vaddq_s32(s, tot[t][k]);
        out[t] = ((float)vaddvq_s32(s) - (float)a[t]->sum) / a[t]->scale;
    }
}
#endif

static BN_ATTR void BN_SFX(mul_mat_i2_s)(int64_t n, const uint8_t *w, size_t w_row_bytes, int64_t n_rows,
                                         const uint8_t *act, size_t act_row_bytes, int64_t n_tok, float *y,
                                         int64_t y_stride) {
    for (int64_t t0 = 0; t0 < n_tok; t0 += BN_TILE) {
        const int nt = n_tok - t0 < BN_TILE ? (int)(n_tok - t0) : BN_TILE;
        const bn_act_i8_row *a[BN_TILE];
        int fast = BN_DOT;
        for (int t = 0; t < nt; t++) {
            a[t] = (const bn_act_i8_row *)(const void *)(act + (size_t)(t0 + t) * act_row_bytes);
            if (fast)
                fast = i2_s_no_wrap(bn_i8_row_qs(a[t]), n / 128);
        }
        for (int64_t r = 0; r < n_rows; r++) {
            const uint8_t *wr = w + (size_t)r * w_row_bytes;
            float out[BN_TILE];
#if BN_DOT
            if (fast) {
                switch (nt) {
                case 4: BN_SFX(i2_s_tile_fast)(4, n, wr, a, out); break;
                case 3: BN_SFX(i2_s_tile_fast)(3, n, wr, a, out); break;
                case 2: BN_SFX(i2_s_tile_fast)(2, n, wr, a, out); break;
                default: BN_SFX(i2_s_tile_fast)(1, n, wr, a, out); break;
                }
            } else
#endif
            {
                switch (nt) {
                case 4: BN_SFX(i2_s_tile_exact)(4, n, wr, a, out); break;
                case 3: BN_SFX(i2_s_tile_exact)(3, n, wr, a, out); break;
                case 2: BN_SFX(i2_s_tile_exact)(2, n, wr, a, out); break;
                default: BN_SFX(i2_s_tile_exact)(1, n, wr, a, out); break;
                }
            }
            for (int t = 0; t < nt; t++)
                y[(t0 + t) * y_stride + r] = out[t];
        }
    }
}

/* ---- Q6_K x Q8_K: ql[128], qh[64], int8 sc[16], fp16 d --------------------
 * Half h, quarter t, l < 32: position 128h + 32t + l, scale sc[8h + 2t + l/16],
 * lane l / 4 (l < 16: lanes 0..3). Lane init -32 * (bsums[2L] sc[2L] + bsums[2L+1] sc[2L+1]). */
BN_INLINE BN_ATTR void BN_SFX(q6_k_tile)(int nt, int64_t n, const uint8_t *w, const bn_act_q8_k *const *a,
                                         float *out) {
    float32x4_t f_lo[BN_TILE], f_hi[BN_TILE];
    BN_UNROLL
    for (int t = 0; t < nt; t++)
        f_lo[t] = f_hi[t] = vdupq_n_f32(0.0f);
    const uint8x16_t m4 = vdupq_n_u8(0x0f), m3 = vdupq_n_u8(3);
    for (int64_t b = 0; b < n / 256; b++, w += 210) {
        const uint8_t *ql = w, *qh = w + 128;
        const int8_t *sc = (const int8_t *)(w + 192);
        const int8x16_t sc8 = vld1q_s8(sc);
        const int16x8_t sc_lo = vmovl_s8(vget_low_s8(sc8)), sc_hi = vmovl_high_s8(sc8);
        const float dw = rd_f16(w + 208);
        int32x4_t l_lo[BN_TILE], l_hi[BN_TILE];
        BN_UNROLL
        for (int t = 0; t < nt; t++) {
            const int16x8_t bs0 = vld1q_s16(a[t][b].bsums), bs1 = vld1q_s16(a[t][b].bsums + 8);
            const int32x4_t p0 = vpaddq_s32(vmull_s16(vget_low_s16(bs0), vget_low_s16(sc_lo)),
                                            vmull_high_s16(bs0, sc_lo));
            const int32x4_t p1 = vpaddq_s32(vmull_s16(vget_low_s16(bs1), vget_low_s16(sc_hi)),
                                            vmull_high_s16(bs1, sc_hi));
            l_lo[t] = vmulq_n_s32(p0, -32);
            l_hi[t] = vmulq_n_s32(p1, -32);
        }
        BN_UNROLL
        for (int h = 0; h < 2; h++) {
            const uint8x16_t q0a = vld1q_u8(ql + 64 * h), q0b = vld1q_u8(ql + 64 * h + 16);
            const uint8x16_t q1a = vld1q_u8(ql + 64 * h + 32), q1b = vld1q_u8(ql + 64 * h + 48);
            const uint8x16_t ha = vld1q_u8(qh + 32 * h), hb = vld1q_u8(qh + 32 * h + 16);
            uint8x16_t c[4][2];
            c[0][0] = vorrq_u8(vandq_u8(q0a, m4), vshlq_n_u8(vandq_u8(ha, m3), 4));
            c[0][1] = vorrq_u8(vandq_u8(q0b, m4), vshlq_n_u8(vandq_u8(hb, m3), 4));
            c[1][0] = vorrq_u8(vandq_u8(q1a, m4), vshlq_n_u8(vandq_u8(vshrq_n_u8(ha, 2), m3), 4));
            c[1][1] = vorrq_u8(vandq_u8(q1b, m4), vshlq_n_u8(vandq_u8(vshrq_n_u8(hb, 2), m3), 4));
            c[2][0] = vorrq_u8(vshrq_n_u8(q0a, 4), vshlq_n_u8(vandq_u8(vshrq_n_u8(ha, 4), m3), 4));
            c[2][1] = vorrq_u8(vshrq_n_u8(q0b, 4), vshlq_n_u8(vandq_u8(vshrq_n_u8(hb, 4), m3), 4));
            c[3][0] = vorrq_u8(vshrq_n_u8(q1a, 4), vshlq_n_u8(vshrq_n_u8(ha, 6), 4));
            c[3][1] = vorrq_u8(vshrq_n_u8(q1b, 4), vshlq_n_u8(vshrq_n_u8(hb, 6), 4));
            BN_UNROLL
            for (int q = 0; q < 4; q++) {
                const int s0 = sc[8 * h + 2 * q], s1 = sc[8 * h + 2 * q + 1];
                BN_UNROLL
                for (int t = 0; t < nt; t++) {
                    const int8_t *y = a[t][b].qs + 128 * h + 32 * q;
                    const int32x4_t z = vdupq_n_s32(0);
                    l_lo[t] = vmlaq_n_s32(l_lo[t], BN_SFX(dot4)(z, vreinterpretq_s8_u8(c[q][0]), vld1q_s8(y)), s0);
                    l_hi[t] = vmlaq_n_s32(l_hi[t], BN_SFX(dot4)(z, vreinterpretq_s8_u8(c[q][1]), vld1q_s8(y + 16)), s1);
                }
            }
        }
        BN_UNROLL
        for (int t = 0; t < nt; t++) {
            const float32x4_t d = vdupq_n_f32(a[t][b].d * dw);
            f_lo[t] = vfmaq_f32(f_lo[t], d, vcvtq_f32_s32(l_lo[t]));
            f_hi[t] = vfmaq_f32(f_hi[t], d, vcvtq_f32_s32(l_hi[t]));
        }
    }
    BN_UNROLL
    for (int t = 0; t < nt; t++)
        out[t] = hsum8_f32(f_lo[t], f_hi[t]);
}
BN_MUL_MAT(mul_mat_q6_k, q6_k_tile, bn_act_q8_k, BN_Q_K_TILE)

/* ---- Q4_K x Q8_K: fp16 d, fp16 dmin, 12 bytes scales/mins, qs[128] -------
 * Sub-block s = 2j (low nibbles of qs[32j..]) / 2j + 1 (high nibbles):
 * positions 32s + l, lane l / 4, times sc[s]. Mins in 4 more float lanes. */
BN_INLINE BN_ATTR void BN_SFX(q4_k_tile)(int nt, int64_t n, const uint8_t *w, const bn_act_q8_k *const *a,
                                         float *out) {
    float32x4_t f_lo[BN_TILE], f_hi[BN_TILE], f_m[BN_TILE];
    BN_UNROLL
    for (int t = 0; t < nt; t++)
        f_lo[t] = f_hi[t] = f_m[t] = vdupq_n_f32(0.0f);
    const uint8x16_t m4 = vdupq_n_u8(0x0f);
    for (int64_t b = 0; b < n / 256; b++, w += 144) {
        const float wd = rd_f16(w), wdmin = rd_f16(w + 2);
        uint8_t sc[8], m[8];
        q4_k_scales(w + 4, sc, m);
        const int16x8_t m16 = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(m)));
        const int32x4_t m_lo = vmovl_s16(vget_low_s16(m16)), m_hi = vmovl_high_s16(m16);
        const uint8_t *qs = w + 16;
        int32x4_t l_lo[BN_TILE], l_hi[BN_TILE];
        BN_UNROLL
        for (int t = 0; t < nt; t++) {
            const bn_act_q8_k *ab = &a[t][b];
            /* bsums[4k] + bsums[4k+1] etc. in int32 (any int16 values) */
            const int32x4_t p_lo = vpaddlq_s16(vld1q_s16(ab->bsums)), p_hi = vpaddlq_s16(vld1q_s16(ab->bsums + 8));
            const int32x4_t prod = vpaddq_s32(vmulq_s32(m_lo, p_lo), vmulq_s32(m_hi, p_hi));
            /* -y.d, then the product, like the scalar code compiles (GCC would
             * otherwise emit FNMUL, which flips the sign of a NaN product) */
            float neg_d = -ab->d;
            __asm__("" : "+w"(neg_d));
            const float dmin = neg_d * wdmin;
            f_m[t] = vfmaq_f32(f_m[t], vdupq_n_f32(dmin), vcvtq_f32_s32(prod));
            l_lo[t] = l_hi[t] = vdupq_n_s32(0);
        }
        BN_UNROLL
        for (int j = 0; j < 4; j++) {
            const uint8x16_t qa = vld1q_u8(qs + 32 * j), qb = vld1q_u8(qs + 32 * j + 16);
            const int8x16_t c0a = vreinterpretq_s8_u8(vandq_u8(qa, m4)), c0b = vreinterpretq_s8_u8(vandq_u8(qb, m4));
            const int8x16_t c1a = vreinterpretq_s8_u8(vshrq_n_u8(qa, 4)), c1b = vreinterpretq_s8_u8(vshrq_n_u8(qb, 4));
            const int s0 = sc[2 * j], s1 = sc[2 * j + 1];
            BN_UNROLL
            for (int t = 0; t < nt; t++) {
                const int8_t *y = a[t][b].qs + 64 * j;
                const int32x4_t z = vdupq_n_s32(0);
                l_lo[t] = vmlaq_n_s32(l_lo[t], BN_SFX(dot4)(z, c0a, vld1q_s8(y)), s0);
                l_hi[t] = vmlaq_n_s32(l_hi[t], BN_SFX(dot4)(z, c0b, vld1q_s8(y + 16)), s0);
                l_lo[t] = vmlaq_n_s32(l_lo[t], BN_SFX(dot4)(z, c1a, vld1q_s8(y + 32)), s1);
                l_hi[t] = vmlaq_n_s32(l_hi[t], BN_SFX(dot4)(z, c1b, vld1q_s8(y + 48)), s1);
            }
        }
        BN_UNROLL
        for (int t = 0; t < nt; t++) {
            const float32x4_t d = vdupq_n_f32(a[t][b].d * wd);
            f_lo[t] = vfmaq_f32(f_lo[t], d, vcvtq_f32_s32(l_lo[t]));
            f_hi[t] = vfmaq_f32(f_hi[t], d, vcvtq_f32_s32(l_hi[t]));
        }
    }
    BN_UNROLL
    for (int t = 0; t < nt; t++)
        out[t] = hsum8_f32(f_lo[t], f_hi[t]) + hsum4_f32(f_m[t]);
}
BN_MUL_MAT(mul_mat_q4_k, q4_k_tile, bn_act_q8_k, BN_Q_K_TILE)

/* ---- Q8_0 x Q8_0: fp16 d, qs[32]; lane L = bytes 4L..4L+3 ----------------- */
BN_INLINE BN_ATTR void BN_SFX(q8_0_tile)(int nt, int64_t n, const uint8_t *w, const bn_act_q8_0 *const *a,
                                         float *out) {
    float32x4_t f_lo[BN_TILE], f_hi[BN_TILE];
    BN_UNROLL
    for (int t = 0; t < nt; t++)
        f_lo[t] = f_hi[t] = vdupq_n_f32(0.0f);
    for (int64_t b = 0; b < n / 32; b++, w += 34) {
        const float wd = rd_f16(w);
        const int8x16_t x0 = vreinterpretq_s8_u8(vld1q_u8(w + 2)), x1 = vreinterpretq_s8_u8(vld1q_u8(w + 18));
        BN_UNROLL
        for (int t = 0; t < nt; t++) {
            const bn_act_q8_0 *ab = &a[t][b];
            const int32x4_t z = vdupq_n_s32(0);
            const int32x4_t s0 = BN_SFX(dot4)(z, x0, vld1q_s8(ab->qs));
            const int32x4_t s1 = BN_SFX(dot4)(z, x1, vld1q_s8(ab->qs + 16));
            const float32x4_t d = vdupq_n_f32(wd * h2f(ab->d));
            f_lo[t] = vfmaq_f32(f_lo[t], d, vcvtq_f32_s32(s0));
            f_hi[t] = vfmaq_f32(f_hi[t], d, vcvtq_f32_s32(s1));
        }
    }
    BN_UNROLL
    for (int t = 0; t < nt; t++)
        out[t] = hsum8_f32(f_lo[t], f_hi[t]);
}
BN_MUL_MAT(mul_mat_q8_0, q8_0_tile, bn_act_q8_0, 4)

#endif /* BN_NEON_TEMPLATE */
