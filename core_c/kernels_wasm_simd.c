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
 * I2_S keeps the reference's lanes: exact int32 sums of bitnet.cpp's int16
 * lanes (bytes 2m, 2m + 1 of the 32-byte block), wrapped to int16 at the end
 * of each run of 32 blocks, exactly as its AVX2 kernel (types_ternary.c).
 * It uses i32x4.dot_i16x8_s on shifted weight bytes against pre-combined
 * int16 activations, one token at a time (mul_mat_i2_s). TQ2_0 keeps int16
 * lanes per block (8 products of at most 3 * 128 per lane).
 *
 * TQ2_0, F32 and F16 with several tokens walk the tokens in tiles of up to 4,
 * so a decoded weight block serves several activation rows (prefill). I2_S
 * and F16 with one token (decode) take several weight rows per pass, rows
 * n_rows / R apart, so that each weight stream runs on through consecutive
 * rows (hardware prefetch: this alone took F16 from ~9.4 to ~5.7 ms for the
 * 32000 x 1536 output matrix).
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
/* F16 rows, one token (decode): R rows at a time (independent add chains).
 * Halfs go to float without the inf/NaN case: the 32-bit pattern
 * sign << 31 | (h & 0x7fff) << 13 is built in int16 halves (hi = h >> 3
 * arithmetic, masked to sign | exponent-mantissa top; lo = h << 13) and
 * interleaved, then scaled by 2^112 (exact for zeros, subnormals and
 * normals of either sign). A pass tracks max(h << 1) (u16) over its rows;
 * when any half has exponent 31 (>= 0xf800) its rows are redone by the
 * exact general path.
 * When every |x| < 2^15 (finite), the 2^112 goes on x instead, once per call
 * (xs = x * 2^112, exact): f * xs is the same real number as (f * 2^112) * x,
 * so it rounds to the same float (overflow and underflow included). */
#define F16_R 5     /* rows per pass (4 and 6 measured slower, 8 spills) */
#define F16_XS 4096 /* longest row whose x is pre-scaled (stack floats) */

BN_INLINE void h2f_8_fast(int scaled, v128_t h, v128_t *lo, v128_t *hi, v128_t m8fff, v128_t k) {
    const v128_t top = wasm_v128_and(wasm_i16x8_shr(h, 3), m8fff);
    const v128_t bot = wasm_i16x8_shl(h, 13);
    *lo = wasm_i16x8_shuffle(bot, top, 0, 8, 1, 9, 2, 10, 3, 11);
    *hi = wasm_i16x8_shuffle(bot, top, 4, 12, 5, 13, 6, 14, 7, 15);
    if (!scaled) {
        *lo = wasm_f32x4_mul(*lo, k);
        *hi = wasm_f32x4_mul(*hi, k);
    }
}

/* xv: x, or x * 2^112 when scaled; the tail (n % 8) uses x. */
BN_INLINE int f16_rows_fast(int R, int scaled, int64_t n, const uint8_t *w, size_t w_row_bytes, const float *x,
                            const float *xv, float *out) {
    v128_t a0[F16_R], a1[F16_R], mx = wasm_i16x8_splat(0);
    for (int r = 0; r < R; r++)
        a0[r] = a1[r] = wasm_f32x4_splat(0.0f);
    const v128_t m8fff = wasm_i16x8_splat((int16_t)0x8fff);
    const v128_t k112 = wasm_f32x4_splat(0x1p112f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const v128_t x0 = wasm_v128_load(xv + i), x1 = wasm_v128_load(xv + i + 4);
        for (int r = 0; r < R; r++) {
            const v128_t h = wasm_v128_load(w + (size_t)r * w_row_bytes + 2 * i);
            mx = wasm_u16x8_max(mx, wasm_i16x8_shl(h, 1));
            v128_t w0, w1;
            h2f_8_fast(scaled, h, &w0, &w1, m8fff, k112);
            a0[r] = wasm_f32x4_add(a0[r], wasm_f32x4_mul(w0, x0));
            a1[r] = wasm_f32x4_add(a1[r], wasm_f32x4_mul(w1, x1));
        }
    }
    const int special = wasm_v128_any_true(wasm_u16x8_ge(mx, wasm_i16x8_splat((int16_t)0xf800)));
    for (int r = 0; r < R; r++) {
        const uint8_t *wr = w + (size_t)r * w_row_bytes;
        if (i < n) {
            float acc[8];
            wasm_v128_store(acc, a0[r]);
            wasm_v128_store(acc + 4, a1[r]);
            for (int64_t j = i, l = 0; j < n; j++, l++)
                acc[l] += bn_rd_f16(wr + 2 * j) * x[j];
            out[r] = bn_hsum8(acc);
        } else {
            out[r] = hsum8_f32(a0[r], a1[r]);
        }
    }
    return special;
}

static void mul_mat_f16(int64_t n, const uint8_t *w, size_t w_row_bytes, int64_t n_rows, const uint8_t *act,
                        size_t act_row_bytes, int64_t n_tok, float *y, int64_t y_stride) {
    if (n_tok != 1) {
        mul_mat_float(W_F16, n, w, w_row_bytes, n_rows, act, act_row_bytes, n_tok, y, y_stride);
        return;
    }
    const float *x = (const float *)(const void *)act;
    float xs[F16_XS] __attribute__((aligned(16)));
    int scaled = n <= F16_XS;
    for (int64_t i = 0; scaled && i < n; i++)
        scaled = fabsf(x[i]) < 0x1p15f; /* false for NaN */
    if (scaled) {
        int64_t i = 0;
        for (; i + 4 <= n; i += 4)
            wasm_v128_store(xs + i, wasm_f32x4_mul(wasm_v128_load(x + i), wasm_f32x4_splat(0x1p112f)));
        for (; i < n; i++)
            xs[i] = x[i] * 0x1p112f;
    }
    /* Pass j takes rows j + k * q (k < F16_R): each of the F16_R weight streams
     * runs on through consecutive rows, which the hardware prefetchers like. */
    const int64_t q = n_rows / F16_R;
    const size_t stride = (size_t)q * w_row_bytes;
    for (int64_t j = 0; j < q; j++) {
        const uint8_t *wr = w + (size_t)j * w_row_bytes;
        float out[F16_R];
        const int special = scaled ? f16_rows_fast(F16_R, 1, n, wr, stride, x, xs, out)
                                   : f16_rows_fast(F16_R, 0, n, wr, stride, x, x, out);
        for (int k = 0; k < F16_R; k++) {
            if (special)
                mul_mat_float(W_F16, n, wr + k * stride, w_row_bytes, 1, act, act_row_bytes, 1, y + j + k * q, 1);
            else
                y[j + k * q] = out[k];
        }
    }
    for (int64_t r = q * F16_R; r < n_rows; r++) {
        const uint8_t *wr = w + (size_t)r * w_row_bytes;
        float out[1];
        const int special = scaled ? f16_rows_fast(1, 1, n, wr, w_row_bytes, x, xs, out)
                                   : f16_rows_fast(1, 0, n, wr, w_row_bytes, x, x, out);
        if (special)
            mul_mat_float(W_F16, n, wr, w_row_bytes, 1, act, act_row_bytes, 1, y + r, 1);
        else
            y[r] = out[0];
    }
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

/* ---- I2_S x I8_ROW: 32 bytes per 128 ----------------------------------------- */

/* One token (decode; prefill calls it token by token). Byte k of a block is W = 64 c0 + 16 c1 + 4 c2 + c3
 * (c_s for position 32s + k, activation y_s). With z_3 = y_3 and
 * z_s = y_s - 4 y_{s+1} (|z| <= 640),
 *     (W >> 6) z_0 + (W >> 4) z_1 + (W >> 2) z_2 + W z_3 = sum_s c_s y_s
 * exactly (W >> (6 - 2s) = sum_{t<=s} 4^(s-t) c_t; the z telescope). The z
 * of a run of 32 blocks are formed once per call (int16, on the stack);
 * per row, a byte-per-int16 load of 8 weight bytes, three shifts and four
 * i32x4.dot_i16x8_s sum bytes 2m and 2m + 1 into int32 lane m exactly
 * (|lane| < 2^26 per run); at the end of the run (lane << 16) >> 16 is the
 * reference's int16 wrap of the lane sum. */
#define I2S_RUN 32 /* blocks per run */
#define I2S_R 8    /* rows per pass (2 and 4 measured slower) */
#define I2S_RG 64  /* rows per group when a row has several runs */

BN_INLINE void i2_s_widen(const int8_t *q, int64_t nblk, int16_t *ys) {
    for (int64_t b = 0; b < nblk; b++)
        for (int h = 0; h < 32; h += 8) {
            const int8_t *qb = q + 128 * b + h;
            const v128_t y0 = wasm_i16x8_load8x8(qb), y1 = wasm_i16x8_load8x8(qb + 32);
            const v128_t y2 = wasm_i16x8_load8x8(qb + 64), y3 = wasm_i16x8_load8x8(qb + 96);
            int16_t *z = ys + 128 * b + h;
            wasm_v128_store(z, wasm_i16x8_sub(y0, wasm_i16x8_shl(y1, 2)));
            wasm_v128_store(z + 32, wasm_i16x8_sub(y1, wasm_i16x8_shl(y2, 2)));
            wasm_v128_store(z + 64, wasm_i16x8_sub(y2, wasm_i16x8_shl(y3, 2)));
            wasm_v128_store(z + 96, y3);
        }
}

/* Sum over nblk blocks of R rows (at w + r * w_row_bytes): wrapped lane totals.
 * Bytes 8g..8g+7 of every block (lanes m = 4g..4g+3) for all blocks, then
 * the next g, so R rows share each activation load with few live registers. */
BN_INLINE void i2_s_run_rows(int R, int64_t nblk, const uint8_t *w, size_t w_row_bytes, const int16_t *ys,
                             int32_t *tot, int64_t tot_stride) {
    v128_t t[I2S_R];
    for (int r = 0; r < R; r++)
        t[r] = wasm_i32x4_splat(0);
    for (int g = 0; g < 4; g++) {
        v128_t acc[I2S_R];
        for (int r = 0; r < R; r++)
            acc[r] = wasm_i32x4_splat(0);
        const uint8_t *wg = w + 8 * g;
        const int16_t *yg = ys + 8 * g;
        for (int64_t b = 0; b < nblk; b++) {
            const int16_t *yb = yg + 128 * b;
            const v128_t y0 = wasm_v128_load(yb), y1 = wasm_v128_load(yb + 32);
            const v128_t y2 = wasm_v128_load(yb + 64), y3 = wasm_v128_load(yb + 96);
            for (int r = 0; r < R; r++) {
                const v128_t c = wasm_u16x8_load8x8(wg + (size_t)r * w_row_bytes + 32 * b);
                const v128_t p01 = wasm_i32x4_add(wasm_i32x4_dot_i16x8(wasm_u16x8_shr(c, 6), y0),
                                                  wasm_i32x4_dot_i16x8(wasm_u16x8_shr(c, 4), y1));
                const v128_t p23 = wasm_i32x4_add(wasm_i32x4_dot_i16x8(wasm_u16x8_shr(c, 2), y2),
                                                  wasm_i32x4_dot_i16x8(c, y3));
                acc[r] = wasm_i32x4_add(acc[r], wasm_i32x4_add(p01, p23));
            }
        }
        for (int r = 0; r < R; r++)
            t[r] = wasm_i32x4_add(t[r], wasm_i32x4_shr(wasm_i32x4_shl(acc[r], 16), 16));
    }
    for (int r = 0; r < R; r++)
        tot[r * tot_stride] += hsum_i32x4(t[r]);
}

BN_INLINE void i2_s_rows(int64_t nblk, const uint8_t *w, size_t w_row_bytes, int64_t n_rows, const int16_t *ys,
                         int32_t *tot) {
    /* Pass j takes rows j + k * q (k < I2S_R), so each weight stream runs on
     * through consecutive rows (hardware prefetch). */
    const int64_t q = n_rows / I2S_R;
    for (int64_t j = 0; j < q; j++)
        i2_s_run_rows(I2S_R, nblk, w + (size_t)j * w_row_bytes, (size_t)q * w_row_bytes, ys, tot + j, q);
    for (int64_t r = q * I2S_R; r < n_rows; r++)
        i2_s_run_rows(1, nblk, w + (size_t)r * w_row_bytes, w_row_bytes, ys, tot + r, 1);
}

static void mul_mat_i2_s(int64_t n, const uint8_t *w, size_t w_row_bytes, int64_t n_rows, const uint8_t *act,
                         size_t act_row_bytes, int64_t n_tok, float *y, int64_t y_stride) {
    if (n_tok != 1) { /* token by token: faster than sharing decoded codes (measured) */
        for (int64_t t = 0; t < n_tok; t++)
            mul_mat_i2_s(n, w, w_row_bytes, n_rows, act + (size_t)t * act_row_bytes, act_row_bytes, 1,
                         y + t * y_stride, y_stride);
        return;
    }
    const bn_act_i8_row *a = (const bn_act_i8_row *)(const void *)act;
    const int8_t *q8 = bn_i8_row_qs(a);
    const int64_t nb = n / 128;
    int16_t ys[128 * I2S_RUN] __attribute__((aligned(16)));
    int32_t tot[I2S_RG];
    for (int64_t r0 = 0; r0 < n_rows; r0 += I2S_RG) {
        const int64_t nr = n_rows - r0 < I2S_RG ? n_rows - r0 : I2S_RG;
        for (int64_t r = 0; r < nr; r++)
            tot[r] = 0;
        for (int64_t run = 0; run < nb; run += I2S_RUN) {
            const int64_t nblk = nb - run < I2S_RUN ? nb - run : I2S_RUN;
            if (r0 == 0 || nb > I2S_RUN)
                i2_s_widen(q8 + 128 * run, nblk, ys);
            i2_s_rows(nblk, w + (size_t)r0 * w_row_bytes + 32 * run, w_row_bytes, nr, ys, tot);
        }
        for (int64_t r = 0; r < nr; r++)
            y[r0 + r] = ((float)tot[r] - (float)a->sum) / a->scale;
    }
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
