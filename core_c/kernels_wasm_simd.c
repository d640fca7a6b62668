/* WebAssembly SIMD128 kernel set (BN_ISA_WASM_SIMD), built by emcc with
 * -msimd128 (web/build.py). Without __wasm_simd128__ the fill function does
 * nothing, so this file compiles everywhere (kernels.h).
 *
 * Exactness (kernels.h): every entry returns bit for bit what the scalar set
 * returns. Integer sums are exact, so they are formed in whatever order the
 * vectors like; the float part copies the scalar code operation by
 * operation:
 *   - wasm has no fused multiply-add (relaxed SIMD is not used: emscripten
 *     3.1.6 has no relaxed intrinsics, and relaxed_madd may or may not fuse),
 *     so where the scalar code calls fmaf the lanes are taken out and fmaf
 *     (musl's, the same function the scalar set calls) is applied per lane;
 *   - a * b + c is f32x4 mul then add (wasm never contracts);
 *   - the bn_hsum8 fold order (hsum8_f32 below).
 * Half floats: wasm has no half conversion, so it is done with integer
 * operations that give exactly bn_fp16_to_fp32's bits for every input,
 * NaN payloads included (h2f_4 below); wasm floats keep subnormals.
 *
 * I2_S uses the reference's own shape: int16 lanes that wrap, per byte of
 * the 32-byte block (i16x8.extmul of the 2-bit codes with the int8
 * activations), folded pairwise with the int16 wrap at the end of each run of
 * 32 blocks, exactly as bitnet.cpp's AVX2 kernel (types_ternary.c). TQ2_0
 * keeps int16 lanes per block (8 products of at most 3 * 128 per lane).
 *
 * mul_mat entries walk the tokens in tiles of up to 4, so a decoded weight
 * block serves several activation rows (prefill); decode is a tile of 1.
 *
 * Types: I2_S, TQ2_0, F32, F16 (mul_mat), axpy_f32/_f16, fp16_to_fp32.
 * The others (TQ1_0, IQ1_BN, IQ2_BN, BF16, Q8_0, Q4_K, Q6_K, fp32_to_fp16
 * and the activation quantizers) stay scalar. */
#include "kernels.h"

#if defined(__wasm_simd128__)

#include <math.h>
#include <string.h>
#include <wasm_simd128.h>

#include "act_quant.h"

#define BN_INLINE static inline __attribute__((always_inline))
#define BN_TILE 4 /* tokens per tile */

/* ---- float helpers --------------------------------------------------------- */

/* bn_hsum8 of the 8 lanes {lo, hi}: h = lo + hi, then (h0 + h2) + (h1 + h3). */
BN_INLINE float hsum8_f32(v128_t lo, v128_t hi) {
    const v128_t h = wasm_f32x4_add(lo, hi);
    const float a = wasm_f32x4_extract_lane(h, 0) + wasm_f32x4_extract_lane(h, 2);
    const float b = wasm_f32x4_extract_lane(h, 1) + wasm_f32x4_extract_lane(h, 3);
    return a + b;
}

BN_INLINE int32_t hsum_i32x4(v128_t v) {
    return wasm_i32x4_extract_lane(v, 0) + wasm_i32x4_extract_lane(v, 1) + wasm_i32x4_extract_lane(v, 2) +
           wasm_i32x4_extract_lane(v, 3);
}

/* Four halfs (in the low 16 bits of each u32 lane) to float, with exactly
 * bn_fp16_to_fp32's bits: (h & 0x7fff) << 13 read as a float and scaled by
 * 2^112 is exact for zeros, subnormals and normals; exponent 31 (inf, NaN)
 * widens the payload under an all-ones exponent; the sign goes on last. */
BN_INLINE v128_t h2f_4(v128_t h) {
    const v128_t em = wasm_v128_and(h, wasm_i32x4_splat(0x7fff));
    const v128_t sh = wasm_i32x4_shl(em, 13);
    const v128_t fin = wasm_f32x4_mul(sh, wasm_f32x4_splat(0x1p112f));
    const v128_t inf = wasm_v128_or(sh, wasm_i32x4_splat(0x7f800000));
    const v128_t special = wasm_i32x4_ge(em, wasm_i32x4_splat(0x7c00));
    const v128_t sign = wasm_i32x4_shl(wasm_v128_and(h, wasm_i32x4_splat(0x8000)), 16);
    return wasm_v128_or(sign, wasm_v128_bitselect(inf, fin, special));
}

/* Eight halfs at p (any alignment) to two float vectors. */
BN_INLINE void h2f_8(const void *p, v128_t *lo, v128_t *hi) {
    const v128_t h = wasm_v128_load(p);
    *lo = h2f_4(wasm_u32x4_extend_low_u16x8(h));
    *hi = h2f_4(wasm_u32x4_extend_high_u16x8(h));
}

/* ---- F32 / F16 x F32 --------------------------------------------------------
 * types_float.c, dot_lanes8: acc[l] += w[i+l] * x[i+l] (mul, then add) for
 * full groups of 8, the tail into lanes 0.., then bn_hsum8. */

enum { W_F32, W_F16 };

BN_INLINE void load_w8(int kind, const uint8_t *w, int64_t i, v128_t *lo, v128_t *hi) {
    if (kind == W_F32) {
        *lo = wasm_v128_load(w + 4 * i);
        *hi = wasm_v128_load(w + 4 * i + 16);
    } else {
        h2f_8(w + 2 * i, lo, hi);
    }
}

BN_INLINE float load_w1(int kind, const uint8_t *w, int64_t i) {
    return kind == W_F32 ? bn_rd_f32(w + 4 * i) : bn_rd_f16(w + 2 * i);
}

BN_INLINE void dot_float_tile(int kind, int nt, int64_t n, const uint8_t *w, const float *const *x, float *out) {
    v128_t a0[BN_TILE], a1[BN_TILE];
    for (int t = 0; t < nt; t++)
        a0[t] = a1[t] = wasm_f32x4_splat(0.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        v128_t w0, w1;
        load_w8(kind, w, i, &w0, &w1);
        for (int t = 0; t < nt; t++) {
            a0[t] = wasm_f32x4_add(a0[t], wasm_f32x4_mul(w0, wasm_v128_load(x[t] + i)));
            a1[t] = wasm_f32x4_add(a1[t], wasm_f32x4_mul(w1, wasm_v128_load(x[t] + i + 4)));
        }
    }
    for (int t = 0; t < nt; t++) {
        if (i < n) {
            float acc[8];
            wasm_v128_store(acc, a0[t]);
            wasm_v128_store(acc + 4, a1[t]);
            for (int64_t j = i, l = 0; j < n; j++, l++)
                acc[l] += load_w1(kind, w, j) * x[t][j];
            out[t] = bn_hsum8(acc);
        } else {
            out[t] = hsum8_f32(a0[t], a1[t]);
        }
    }
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
            switch (nt) {
            case 4: dot_float_tile(kind, 4, n, wr, x, out); break;
            case 3: dot_float_tile(kind, 3, n, wr, x, out); break;
            case 2: dot_float_tile(kind, 2, n, wr, x, out); break;
            default: dot_float_tile(kind, 1, n, wr, x, out); break;
            }
            for (int t = 0; t < nt; t++)
                y[(t0 + t) * y_stride + r] = out[t];
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

/* ---- axpy and half rows ------------------------------------------------------ */

static void axpy_f32(int64_t n, float a, const float *x, float *y) {
    const v128_t va = wasm_f32x4_splat(a);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4)
        wasm_v128_store(y + i, wasm_f32x4_add(wasm_v128_load(y + i), wasm_f32x4_mul(va, wasm_v128_load(x + i))));
    for (; i < n; i++)
        y[i] = y[i] + a * x[i];
}

static void axpy_f16(int64_t n, float a, const uint16_t *x, float *y) {
    const v128_t va = wasm_f32x4_splat(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        v128_t lo, hi;
        h2f_8(x + i, &lo, &hi);
        wasm_v128_store(y + i, wasm_f32x4_add(wasm_v128_load(y + i), wasm_f32x4_mul(va, lo)));
        wasm_v128_store(y + i + 4, wasm_f32x4_add(wasm_v128_load(y + i + 4), wasm_f32x4_mul(va, hi)));
    }
    for (; i < n; i++)
        y[i] = y[i] + a * bn_fp16_to_fp32(x[i]);
}

static void fp16_to_fp32(const uint16_t *x, float *y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        v128_t lo, hi;
        h2f_8(x + i, &lo, &hi);
        wasm_v128_store(y + i, lo);
        wasm_v128_store(y + i + 4, hi);
    }
    for (; i < n; i++)
        y[i] = bn_fp16_to_fp32(x[i]);
}

/* ---- I2_S x I8_ROW: 32 bytes per 128 -----------------------------------------
 * Byte k, bits 6 - 2s = position 32s + k. The reference sums in 16 int16
 * lanes (m = k / 2) per run of 32 blocks and wraps. Here: one wrapping int16
 * lane per byte k (extmul code * q, i16x8.add), pairs folded at the end of
 * each run with the int16 wrap (sums mod 2^16 agree, so the wrapped lane
 * values agree), then widened into int32. */
BN_INLINE void i2_s_codes(const uint8_t *p, v128_t c[8]) {
    const v128_t m3 = wasm_i8x16_splat(3);
    const v128_t qa = wasm_v128_load(p), qb = wasm_v128_load(p + 16);
    c[0] = wasm_u8x16_shr(qa, 6);
    c[1] = wasm_u8x16_shr(qb, 6);
    c[2] = wasm_v128_and(wasm_u8x16_shr(qa, 4), m3);
    c[3] = wasm_v128_and(wasm_u8x16_shr(qb, 4), m3);
    c[4] = wasm_v128_and(wasm_u8x16_shr(qa, 2), m3);
    c[5] = wasm_v128_and(wasm_u8x16_shr(qb, 2), m3);
    c[6] = wasm_v128_and(qa, m3);
    c[7] = wasm_v128_and(qb, m3);
}

/* int16 lanes j (2m, 2m+1) -> int32 lane m, wrapped to int16 and sign-extended. */
BN_INLINE v128_t fold_wrap16(v128_t acc) {
    const v128_t p = wasm_i32x4_extadd_pairwise_i16x8(acc);
    return wasm_i32x4_shr(wasm_i32x4_shl(p, 16), 16);
}

BN_INLINE void i2_s_tile(int nt, int64_t n, const uint8_t *w, const bn_act_i8_row *const *a, float *out) {
    const int8_t *q8[BN_TILE];
    v128_t tot[BN_TILE];
    for (int t = 0; t < nt; t++) {
        q8[t] = bn_i8_row_qs(a[t]);
        tot[t] = wasm_i32x4_splat(0);
    }
    const int64_t nb = n / 128;
    for (int64_t run = 0; run < nb; run += 32) {
        const int64_t end = run + 32 < nb ? run + 32 : nb;
        v128_t acc[BN_TILE][4]; /* bytes k 0..7, 8..15, 16..23, 24..31 */
        for (int t = 0; t < nt; t++)
            acc[t][0] = acc[t][1] = acc[t][2] = acc[t][3] = wasm_i16x8_splat(0);
        for (int64_t b = run; b < end; b++) {
            v128_t c[8];
            i2_s_codes(w + 32 * b, c);
            for (int t = 0; t < nt; t++) {
                const int8_t *y = q8[t] + 128 * b;
                for (int s = 0; s < 4; s++) {
                    const v128_t ya = wasm_v128_load(y + 32 * s), yb = wasm_v128_load(y + 32 * s + 16);
                    acc[t][0] = wasm_i16x8_add(acc[t][0], wasm_i16x8_extmul_low_i8x16(c[2 * s], ya));
                    acc[t][1] = wasm_i16x8_add(acc[t][1], wasm_i16x8_extmul_high_i8x16(c[2 * s], ya));
                    acc[t][2] = wasm_i16x8_add(acc[t][2], wasm_i16x8_extmul_low_i8x16(c[2 * s + 1], yb));
                    acc[t][3] = wasm_i16x8_add(acc[t][3], wasm_i16x8_extmul_high_i8x16(c[2 * s + 1], yb));
                }
            }
        }
        for (int t = 0; t < nt; t++) {
            const v128_t f01 = wasm_i32x4_add(fold_wrap16(acc[t][0]), fold_wrap16(acc[t][1]));
            const v128_t f23 = wasm_i32x4_add(fold_wrap16(acc[t][2]), fold_wrap16(acc[t][3]));
            tot[t] = wasm_i32x4_add(tot[t], wasm_i32x4_add(f01, f23));
        }
    }
    for (int t = 0; t < nt; t++)
        out[t] = ((float)hsum_i32x4(tot[t]) - (float)a[t]->sum) / a[t]->scale;
}

/* Token tiles: `tile(nt, n, w_row, act[nt], out[nt])`, inlined with a
 * constant nt; BN_MUL_MAT makes the mul_mat entry. */
#define BN_MUL_MAT(NAME, TILE, ACT_T)                                                                          \
    static void NAME(int64_t n, const uint8_t *w, size_t w_row_bytes, int64_t n_rows, const uint8_t *act,      \
                     size_t act_row_bytes, int64_t n_tok, float *y, int64_t y_stride) {                        \
        for (int64_t t0 = 0; t0 < n_tok; t0 += BN_TILE) {                                                       \
            const int nt = n_tok - t0 < BN_TILE ? (int)(n_tok - t0) : BN_TILE;                                  \
            const ACT_T *a[BN_TILE];                                                                            \
            for (int t = 0; t < nt; t++)                                                                        \
                a[t] = (const ACT_T *)(const void *)(act + (size_t)(t0 + t) * act_row_bytes);                   \
            for (int64_t r = 0; r < n_rows; r++) {                                                              \
                const uint8_t *wr = w + (size_t)r * w_row_bytes;                                                \
                float out[BN_TILE];                                                                             \
                switch (nt) {                                                                                   \
                case 4: TILE(4, n, wr, a, out); break;                                                          \
                case 3: TILE(3, n, wr, a, out); break;                                                          \
                case 2: TILE(2, n, wr, a, out); break;                                                          \
                default: TILE(1, n, wr, a, out); break;                                                         \
                }                                                                                               \
                for (int t = 0; t < nt; t++)                                                                    \
                    y[(t0 + t) * y_stride + r] = out[t];                                                        \
            }                                                                                                   \
        }                                                                                                       \
    }

BN_MUL_MAT(mul_mat_i2_s, i2_s_tile, bn_act_i8_row)

/* ---- TQ2_0 x Q8_K: qs[64], fp16 d; 66 bytes per 256 ---------------------------
 * Byte 32h + k, bits 2s, holds position 128h + 32s + k, which goes to lane
 * (p % 32) / 4 = k / 4: bytes 0..15 and 32..47 feed lanes 0..3, the others
 * lanes 4..7. One int16 lane per byte k (8 products of at most 3 * 128 per
 * block), folded by 4 into int32 lanes per block; the per-block float update
 * is the reference's fmaf((float)lane, d, acc) lane by lane. */

/* int16 lanes (k 0..7 in a, 8..15 in b) -> int32 lanes k / 4. */
BN_INLINE v128_t fold4(v128_t a, v128_t b) {
    const v128_t ea = wasm_i32x4_extadd_pairwise_i16x8(a), eb = wasm_i32x4_extadd_pairwise_i16x8(b);
    return wasm_i32x4_add(wasm_i32x4_shuffle(ea, eb, 0, 2, 4, 6), wasm_i32x4_shuffle(ea, eb, 1, 3, 5, 7));
}

BN_INLINE void fma_lanes(float *acc, v128_t lanes_i32, float d) {
    float f[4];
    wasm_v128_store(f, wasm_f32x4_convert_i32x4(lanes_i32));
    for (int l = 0; l < 4; l++)
        acc[l] = bn_fmaf(f[l], d, acc[l]);
}

BN_INLINE void tq2_0_tile(int nt, int64_t n, const uint8_t *w, const bn_act_q8_k *const *a, float *out) {
    float acc[BN_TILE][8];
    for (int t = 0; t < nt; t++)
        for (int l = 0; l < 8; l++)
            acc[t][l] = 0.0f;
    const v128_t m3 = wasm_i8x16_splat(3);
    for (int64_t b = 0; b < n / 256; b++, w += 66) {
        const v128_t q0 = wasm_v128_load(w), q1 = wasm_v128_load(w + 16);
        const v128_t q2 = wasm_v128_load(w + 32), q3 = wasm_v128_load(w + 48);
        const float dw = bn_rd_f16(w + 64);
        v128_t la[BN_TILE], lb[BN_TILE], ha[BN_TILE], hb[BN_TILE];
        for (int t = 0; t < nt; t++)
            la[t] = lb[t] = ha[t] = hb[t] = wasm_i16x8_splat(0);
        for (int s = 0; s < 4; s++) {
            const v128_t c0 = wasm_v128_and(wasm_u8x16_shr(q0, 2 * s), m3);
            const v128_t c1 = wasm_v128_and(wasm_u8x16_shr(q1, 2 * s), m3);
            const v128_t c2 = wasm_v128_and(wasm_u8x16_shr(q2, 2 * s), m3);
            const v128_t c3 = wasm_v128_and(wasm_u8x16_shr(q3, 2 * s), m3);
            for (int t = 0; t < nt; t++) {
                const int8_t *y = a[t][b].qs + 32 * s;
                const v128_t y0 = wasm_v128_load(y), y1 = wasm_v128_load(y + 16);
                const v128_t y2 = wasm_v128_load(y + 128), y3 = wasm_v128_load(y + 144);
                la[t] = wasm_i16x8_add(la[t], wasm_i16x8_extmul_low_i8x16(c0, y0));
                lb[t] = wasm_i16x8_add(lb[t], wasm_i16x8_extmul_high_i8x16(c0, y0));
                ha[t] = wasm_i16x8_add(ha[t], wasm_i16x8_extmul_low_i8x16(c1, y1));
                hb[t] = wasm_i16x8_add(hb[t], wasm_i16x8_extmul_high_i8x16(c1, y1));
                la[t] = wasm_i16x8_add(la[t], wasm_i16x8_extmul_low_i8x16(c2, y2));
                lb[t] = wasm_i16x8_add(lb[t], wasm_i16x8_extmul_high_i8x16(c2, y2));
                ha[t] = wasm_i16x8_add(ha[t], wasm_i16x8_extmul_low_i8x16(c3, y3));
                hb[t] = wasm_i16x8_add(hb[t], wasm_i16x8_extmul_high_i8x16(c3, y3));
            }
        }
        for (int t = 0; t < nt; t++) {
            const bn_act_q8_k *ab = &a[t][b];
            const v128_t bs_lo = wasm_i32x4_extadd_pairwise_i16x8(wasm_v128_load(ab->bsums));
            const v128_t bs_hi = wasm_i32x4_extadd_pairwise_i16x8(wasm_v128_load(ab->bsums + 8));
            const v128_t l_lo = wasm_i32x4_sub(fold4(la[t], lb[t]), bs_lo);
            const v128_t l_hi = wasm_i32x4_sub(fold4(ha[t], hb[t]), bs_hi);
            const float d = ab->d * dw;
            fma_lanes(acc[t], l_lo, d);
            fma_lanes(acc[t] + 4, l_hi, d);
        }
    }
    for (int t = 0; t < nt; t++)
        out[t] = bn_hsum8(acc[t]);
}
BN_MUL_MAT(mul_mat_tq2_0, tq2_0_tile, bn_act_q8_k)

void bn_kernels_fill_wasm_simd(bn_kernels *k) {
    k->mul_mat[BN_TYPE_F32] = mul_mat_f32;
    k->mul_mat[BN_TYPE_F16] = mul_mat_f16;
    k->mul_mat[BN_TYPE_I2_S] = mul_mat_i2_s;
    k->mul_mat[BN_TYPE_TQ2_0] = mul_mat_tq2_0;
    k->axpy_f16 = axpy_f16;
    k->axpy_f32 = axpy_f32;
    k->fp16_to_fp32 = fp16_to_fp32;
}

#else /* !__wasm_simd128__ */

void bn_kernels_fill_wasm_simd(bn_kernels *k) { (void)k; }

#endif
