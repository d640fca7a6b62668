/* AVX-512 (F, BW, VL) mul_mat kernels for I2_S, TQ2_0 and IQ2_BN (kernels.h,
 * the "avx512" variant; bn_kernels_init fills the avx2 entries first, so
 * TQ1_0, IQ1_BN and the float types keep their AVX2 kernels).
 *
 * The arithmetic is that of the AVX2 kernels (kernels_avx2_ternary.c, whose
 * header explains why each is bit-exact) on 64-byte vectors, with the
 * activation rows copied (aligned) into an order that puts two, or four,
 * weight blocks side by side:
 *   I2_S    a unit is 2 blocks (64 bytes, 256 weights); field k of the unit is
 *           sub-block 3 - k of both blocks. bitnet.cpp's int16 lane m holds
 *           bytes 2m, 2m+1 of every block of a run, so the two 256-bit halves
 *           (even and odd blocks) are added in int16, wrapping, at the end of
 *           each run of 32 blocks, then widened: the same values modulo 2^16.
 *   TQ2_0   a block's 64 code bytes are one vector: field s holds positions
 *           32s + j and 128 + 32s + j; the halves are added (int16, exact)
 *           before the per-block finish of the AVX2 kernel.
 *   IQ2_BN  a unit is 4 blocks; field k holds positions 16k + j of each; the
 *           group of a product is still j / 4, i.e. int32 lane % 4.
 * VNNI (vpdpbusd) sums 4 products into int32. That matches TQ2_0's lanes, so
 * TQ2_0 decode uses it when the CPU has it (below); it cannot reproduce
 * I2_S's int16 wrap, and prefill keeps AVX-512BW's vpmaddubsw, which has
 * every lane shape of the AVX2 kernels.
 *
 * A last unit with fewer blocks is loaded with a masked load (no access to
 * the bytes past the row) and its missing activations are zero. */
#include "kernels.h"
#include "kernels_x86.h"

#if BN_X86

#include <stdlib.h>
#include <string.h>

#include "act_quant.h"

#ifndef BN_AVX512_TARGET
#define BN_AVX512_TARGET "avx512f,avx512bw,avx512vl,avx2,fma,f16c"
#endif

BN_TARGET_BEGIN(BN_AVX512_TARGET)
#include <immintrin.h>

#if defined(__clang__)
#define BN5_UNROLL _Pragma("unroll")
#else
#define BN5_UNROLL _Pragma("GCC unroll 16")
#endif
#define BN5_AI static inline __attribute__((always_inline))

#define FOR_R BN5_UNROLL for (int r = 0; r < NR; r++)
#define FOR_T BN5_UNROLL for (int t = 0; t < NT; t++)
#define TILE_MAX_R 4
#define TILE_MAX_T 4
#define ZERO_ACC(A) FOR_R FOR_T A[r][t] = _mm512_setzero_si512()

/* Decode: software prefetch PF_DIST bytes ahead in every row of the tile (as
 * the AVX2 kernels, whose comment says why 12 KiB; prefetches never fault). */
#ifndef PF_DIST
#define PF_DIST 12288
#endif
#define PREFETCH_ROWS(P)                                                                          \
    do {                                                                                          \
        if (NT == 1) FOR_R _mm_prefetch((const char *)((P) + (size_t)r * wrb + PF_DIST), _MM_HINT_T0); \
    } while (0)

BN5_AI __m512i load512(const int8_t *p) { return _mm512_load_si512((const void *)p); }

/* The first `bytes` (0 < bytes <= 64) bytes at p, zeros above. */
BN5_AI __m512i load512_part(const uint8_t *p, int bytes) {
    const __mmask64 m = bytes >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << bytes) - 1);
    return _mm512_maskz_loadu_epi8(m, (const void *)p);
}

/* Field k (0..3) of 64 packed bytes: (x >> 2k) & 3. */
BN5_AI __m512i field512(__m512i x, int k) {
    const __m512i m3 = _mm512_set1_epi8(3);
    switch (k) {
    case 0:
        return _mm512_and_si512(x, m3);
    case 1:
        return _mm512_and_si512(_mm512_srli_epi16(x, 2), m3);
    case 2:
        return _mm512_and_si512(_mm512_srli_epi16(x, 4), m3);
    default:
        return _mm512_and_si512(_mm512_srli_epi16(x, 6), m3);
    }
}

/* int16 sum of the two 256-bit halves (wrapping). */
BN5_AI __m256i fold_epi16(__m512i v) {
    return _mm256_add_epi16(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
}

BN5_AI __m256i fold_epi32(__m512i v) {
    return _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
}

BN5_AI int32_t hsum_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
    return _mm_cvtsi128_si32(s);
}

/* bn_hsum4 / bn_hsum8 on registers, as in the AVX2 kernels. */
BN5_AI float hsum4_ps(__m128 h) {
    const __m128 s = _mm_add_ps(h, _mm_movehl_ps(h, h));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}
BN5_AI float hsum8_ps(__m256 v) {
    return hsum4_ps(_mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1)));
}

BN5_AI float rd_f16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}
BN5_AI float rd_f32(const uint8_t *p) {
    float f;
    memcpy(&f, p, 4);
    return f;
}

/* ---- driver: aligned, reordered activation copies; tiles ------------------------ */

typedef void (*tile_fn)(int64_t n, const uint8_t *w, size_t wrb, const uint8_t *act, size_t arb,
                        const int8_t *q, size_t qst, float *y, int64_t ys);
/* Reorder one activation row (n values) into q (qst bytes, zero padded). */
typedef void (*copy_fn)(const uint8_t *act, int8_t *q, int64_t n);

typedef struct tile_set {
    int dr;
    tile_fn d_rows, one; /* dr x 1, 1 x 1 */
    int pr, pt;
    tile_fn p_full, p_rows, p_toks; /* pr x pt, pr x 1, 1 x pt */
    copy_fn copy;
    float (*vec_dot)(int64_t n, const void *row, const void *act);
} tile_set;

#define TOKEN_CHUNK 32

static void run_tiles(const tile_set *ts, int64_t n, const uint8_t *w, size_t wrb, int64_t n_rows,
                      const uint8_t *act, size_t arb, int64_t n_tok, float *y, int64_t ys) {
    if (n_rows <= 0 || n_tok <= 0) return;
    const int64_t chunk = n_tok < TOKEN_CHUNK ? n_tok : TOKEN_CHUNK;
    /* every layout pads the row to whole units of at most 256 values */
    const size_t qst = ((size_t)n + 255) & ~(size_t)255;
    void *mem = malloc(qst * (size_t)chunk + 64);
    if (!mem) {
        for (int64_t r = 0; r < n_rows; r++)
            for (int64_t t = 0; t < n_tok; t++)
                y[t * ys + r] = ts->vec_dot(n, w + (size_t)r * wrb, act + (size_t)t * arb);
        return;
    }
    int8_t *const q = (int8_t *)(((uintptr_t)mem + 63) & ~(uintptr_t)63);
    for (int64_t t0 = 0; t0 < n_tok; t0 += chunk) {
        const int64_t nt = n_tok - t0 < chunk ? n_tok - t0 : chunk;
        const uint8_t *a0 = act + (size_t)t0 * arb;
        float *y0 = y + t0 * ys;
        for (int64_t t = 0; t < nt; t++)
            ts->copy(a0 + (size_t)t * arb, q + (size_t)t * qst, n);
        if (nt == 1) {
            int64_t r = 0;
            for (; r + ts->dr <= n_rows; r += ts->dr)
                ts->d_rows(n, w + (size_t)r * wrb, wrb, a0, arb, q, qst, y0 + r, ys);
            for (; r < n_rows; r++)
                ts->one(n, w + (size_t)r * wrb, wrb, a0, arb, q, qst, y0 + r, ys);
            continue;
        }
        int64_t r = 0;
        for (; r + ts->pr <= n_rows; r += ts->pr) {
            const uint8_t *wr = w + (size_t)r * wrb;
            int64_t t = 0;
            for (; t + ts->pt <= nt; t += ts->pt)
                ts->p_full(n, wr, wrb, a0 + (size_t)t * arb, arb, q + (size_t)t * qst, qst, y0 + t * ys + r, ys);
            for (; t < nt; t++)
                ts->p_rows(n, wr, wrb, a0 + (size_t)t * arb, arb, q + (size_t)t * qst, qst, y0 + t * ys + r, ys);
        }
        for (; r < n_rows; r++) {
            const uint8_t *wr = w + (size_t)r * wrb;
            int64_t t = 0;
            for (; t + ts->pt <= nt; t += ts->pt)
                ts->p_toks(n, wr, wrb, a0 + (size_t)t * arb, arb, q + (size_t)t * qst, qst, y0 + t * ys + r, ys);
            for (; t < nt; t++)
                ts->one(n, wr, wrb, a0 + (size_t)t * arb, arb, q + (size_t)t * qst, qst, y0 + t * ys + r, ys);
        }
    }
    free(mem);
}

#define DEF_TILE(KIND, NR, NT)                                                                                \
    __attribute__((unused)) static void KIND##_tile_##NR##x##NT(int64_t n, const uint8_t *w, size_t wrb,       \
                                                                const uint8_t *act, size_t arb,                \
                                                                const int8_t *q, size_t qst, float *y,         \
                                                                int64_t ys) {                                  \
        KIND##_tile(NR, NT, n, w, wrb, act, arb, q, qst, y, ys);                                               \
    }

/* Decode 4 x 1 tiles, prefill 2 x 4. */
#define DEF_KIND(KIND, COPY, VEC_DOT)                                                                        \
    DEF_TILE(KIND, 1, 1)                                                                                     \
    DEF_TILE(KIND, 4, 1)                                                                                     \
    DEF_TILE(KIND, 2, 1)                                                                                     \
    DEF_TILE(KIND, 2, 4)                                                                                     \
    DEF_TILE(KIND, 1, 4)                                                                                     \
    static const tile_set KIND##_tiles = {4, KIND##_tile_4x1, KIND##_tile_1x1, 2,       4,                  \
                                          KIND##_tile_2x4,    KIND##_tile_2x1, KIND##_tile_1x4, COPY, VEC_DOT}; \
    static void KIND##_mul_mat(int64_t n, const uint8_t *w, size_t wrb, int64_t n_rows, const uint8_t *act,   \
                               size_t arb, int64_t n_tok, float *y, int64_t ys) {                            \
        run_tiles(&KIND##_tiles, n, w, wrb, n_rows, act, arb, n_tok, y, ys);                                \
    }

/* Interleave 32-byte pieces: for each group of `per` blocks of `bs` values
 * and each of the `pieces` pieces of a block (piece p: values p * len ..
 * p * len + len - 1 of the block), the pieces of the group's blocks one
 * after the other; blocks past n are zeros. */
static void interleave(const int8_t *src, int8_t *q, int64_t n, int64_t bs, int per, int pieces, int len) {
    const int64_t nb = n / bs;
    for (int64_t b0 = 0; b0 < nb; b0 += per)
        for (int p = 0; p < pieces; p++)
            for (int i = 0; i < per; i++, q += len) {
                if (b0 + i < nb)
                    memcpy(q, src + (b0 + i) * bs + p * len, (size_t)len);
                else
                    memset(q, 0, (size_t)len);
            }
}

/* I2_S: pairs of 128-blocks, 4 pieces of 32. */
static void copy_i2s(const uint8_t *act, int8_t *q, int64_t n) {
    interleave(bn_i8_row_qs((const bn_act_i8_row *)(const void *)act), q, n, 128, 2, 4, 32);
}

/* TQ2_0: each 256-block as two halves of 128 side by side (pieces of 32). */
static void copy_tq2(const uint8_t *act, int8_t *q, int64_t n) {
    const bn_act_q8_k *a = (const bn_act_q8_k *)(const void *)act;
    for (int64_t b = 0; b < n / 256; b++)
        interleave(a[b].qs, q + 256 * b, 256, 128, 2, 4, 32);
}

/* IQ2_BN: quads of 64-blocks, 4 pieces of 16. */
static void copy_iq2bn(const uint8_t *act, int8_t *q, int64_t n) {
    interleave(bn_q8_k64_qs((const bn_act_q8_k64 *)(const void *)act), q, n, 64, 4, 4, 16);
}

/* ---- I2_S x I8_ROW ------------------------------------------------------------ */

BN5_AI void i2s_tile(const int NR, const int NT, int64_t n, const uint8_t *w, size_t wrb, const uint8_t *act,
                     size_t arb, const int8_t *q, size_t qst, float *y, int64_t ys) {
    const int64_t nb = n / 128, nu = (nb + 1) / 2;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i tot[TILE_MAX_R][TILE_MAX_T];
    FOR_R FOR_T tot[r][t] = _mm256_setzero_si256();
    __m512i acc[TILE_MAX_R][TILE_MAX_T];
    for (int64_t run = 0; run < nu; run += 16) { /* 16 units = bitnet.cpp's run of 32 blocks */
        const int64_t end = run + 16 < nu ? run + 16 : nu;
        ZERO_ACC(acc);
        for (int64_t u = run; u < end; u++) {
            __m512i x[TILE_MAX_R];
            PREFETCH_ROWS(w + 64 * u);
            if (2 * u + 1 < nb) {
                FOR_R x[r] = _mm512_loadu_si512((const void *)(w + (size_t)r * wrb + 64 * u));
            } else {
                FOR_R x[r] = load512_part(w + (size_t)r * wrb + 64 * u, 32);
            }
            /* sub-block s of both blocks: field 3 - s */
            BN5_UNROLL for (int s = 0; s < 4; s++) {
                FOR_R {
                    const __m512i c = field512(x[r], 3 - s);
                    FOR_T acc[r][t] = _mm512_add_epi16(
                        acc[r][t], _mm512_maddubs_epi16(c, load512(q + (size_t)t * qst + 256 * u + 64 * s)));
                }
            }
        }
        FOR_R FOR_T tot[r][t] = _mm256_add_epi32(tot[r][t], _mm256_madd_epi16(fold_epi16(acc[r][t]), ones));
    }
    FOR_T {
        const bn_act_i8_row *h = (const bn_act_i8_row *)(const void *)(act + (size_t)t * arb);
        FOR_R y[t * ys + r] = ((float)hsum_epi32(tot[r][t]) - (float)h->sum) / h->scale;
    }
}

/* ---- TQ2_0 x Q8_K ---------------------------------------------------------------- */

BN5_AI void tq2_tile(const int NR, const int NT, int64_t n, const uint8_t *w, size_t wrb, const uint8_t *act,
                     size_t arb, const int8_t *q, size_t qst, float *y, int64_t ys) {
    const int64_t nb = n / 256;
    const bn_act_q8_k *a[TILE_MAX_T];
    FOR_T a[t] = (const bn_act_q8_k *)(const void *)(act + (size_t)t * arb);
    __m256 accf[TILE_MAX_R][TILE_MAX_T];
    FOR_R FOR_T accf[r][t] = _mm256_setzero_ps();
    const __m256i ones = _mm256_set1_epi16(1);
    for (int64_t b = 0; b < nb; b++) {
        __m512i acc[TILE_MAX_R][TILE_MAX_T];
        ZERO_ACC(acc);
        __m512i x[TILE_MAX_R];
        PREFETCH_ROWS(w + 66 * b);
        FOR_R x[r] = _mm512_loadu_si512((const void *)(w + (size_t)r * wrb + 66 * b));
        /* field s: positions 32s + j (low half) and 128 + 32s + j (high half) */
        BN5_UNROLL for (int s = 0; s < 4; s++) {
            FOR_R {
                const __m512i c = field512(x[r], s);
                FOR_T acc[r][t] = _mm512_add_epi16(
                    acc[r][t], _mm512_maddubs_epi16(c, load512(q + (size_t)t * qst + 256 * b + 64 * s)));
            }
        }
        FOR_R {
            const float dw = rd_f16(w + (size_t)r * wrb + 66 * b + 64);
            FOR_T {
                const __m256i bs = _mm256_loadu_si256((const __m256i *)(const void *)a[t][b].bsums);
                const __m256i lane = _mm256_madd_epi16(_mm256_sub_epi16(fold_epi16(acc[r][t]), bs), ones);
                accf[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(lane), _mm256_set1_ps(a[t][b].d * dw), accf[r][t]);
            }
        }
    }
    FOR_T FOR_R y[t * ys + r] = hsum8_ps(accf[r][t]);
}

/* ---- IQ2_BN x Q8_K64 ------------------------------------------------------------- */

BN5_AI void iq2bn_tile(const int NR, const int NT, int64_t n, const uint8_t *w, size_t wrb, const uint8_t *act,
                       size_t arb, const int8_t *q, size_t qst, float *y, int64_t ys) {
    const int64_t nb = n / 64, nu = (nb + 3) / 4;
    const __m512i ones = _mm512_set1_epi16(1);
    __m512i acc32[TILE_MAX_R][TILE_MAX_T], acc[TILE_MAX_R][TILE_MAX_T];
    ZERO_ACC(acc32);
    /* int16 sums of up to 8 units: 8 * 4 * 3 * 128 * 2 = 24576 */
    for (int64_t u0 = 0; u0 < nu; u0 += 8) {
        const int64_t end = u0 + 8 < nu ? u0 + 8 : nu;
        ZERO_ACC(acc);
        for (int64_t u = u0; u < end; u++) {
            __m512i x[TILE_MAX_R];
            PREFETCH_ROWS(w + 4 + 64 * u);
            if (4 * u + 4 <= nb) {
                FOR_R x[r] = _mm512_loadu_si512((const void *)(w + (size_t)r * wrb + 4 + 64 * u));
            } else {
                FOR_R x[r] = load512_part(w + (size_t)r * wrb + 4 + 64 * u, (int)(16 * (nb - 4 * u)));
            }
            BN5_UNROLL for (int k = 0; k < 4; k++) {
                FOR_R {
                    const __m512i c = field512(x[r], k);
                    FOR_T acc[r][t] = _mm512_add_epi16(
                        acc[r][t], _mm512_maddubs_epi16(c, load512(q + (size_t)t * qst + 256 * u + 64 * k)));
                }
            }
        }
        FOR_R FOR_T acc32[r][t] = _mm512_add_epi32(acc32[r][t], _mm512_madd_epi16(acc[r][t], ones));
    }
    FOR_R {
        const float d_row = rd_f32(w + (size_t)r * wrb);
        FOR_T {
            const bn_act_q8_k64 *h = (const bn_act_q8_k64 *)(const void *)(act + (size_t)t * arb);
            const __m256i s8 = fold_epi32(acc32[r][t]);
            const __m128i s = _mm_add_epi32(_mm256_castsi256_si128(s8), _mm256_extracti128_si256(s8, 1));
            const __m128 f = _mm_fmsub_ps(_mm_loadu_ps(h->d), _mm_cvtepi32_ps(s), _mm_loadu_ps(h->minus));
            y[t * ys + r] = d_row * hsum4_ps(f);
        }
    }
}

DEF_KIND(i2s, copy_i2s, bn_i2_s_vec_dot)
DEF_KIND(tq2, copy_tq2, bn_tq2_0_vec_dot)
DEF_KIND(iq2bn, copy_iq2bn, bn_iq2_bn_vec_dot)

BN_TARGET_END

/* ---- TQ2_0 decode with VNNI ------------------------------------------------------
 *
 * vpdpbusd adds the four products code[4m..4m+3] * q[4m..4m+3] into int32
 * lane m, so a block's four fields need four instructions and no int16
 * stage. Lane m (< 8) then holds bytes 4m..4m+3 of every low 32-byte piece,
 * lane 8 + m those of every high piece: low + high are exactly the AVX2
 * kernel's int32 lanes (madd of its int16 lanes 2m, 2m + 1), and the bsums
 * enter as bs[2m] + bs[2m + 1], as there. All of that is exact integer
 * arithmetic; the float part (convert, one fused multiply-add per lane with
 * d_act * d_row, the 8-lane sum at the end) is the reference's, done for two
 * rows at once in the two halves of a 512-bit vector. */
BN_TARGET_BEGIN(BN_AVX512_TARGET ",avx512vnni")

/* Rows r0, r0 + 1 of a block: [fold(acc[r0]) | fold(acc[r0 + 1])] - bsums. */
BN5_AI __m512i tq2_pair_lanes(__m512i a0, __m512i a1, __m512i bsum2) {
    const __m512i lo = _mm512_shuffle_i64x2(a0, a1, _MM_SHUFFLE(1, 0, 1, 0));
    const __m512i hi = _mm512_shuffle_i64x2(a0, a1, _MM_SHUFFLE(3, 2, 3, 2));
    return _mm512_sub_epi32(_mm512_add_epi32(lo, hi), bsum2);
}

/* NR (even) rows x 1 token. */
BN5_AI void tq2_vnni_rows(const int NR, int64_t n, const uint8_t *w, size_t wrb, const uint8_t *act,
                          const int8_t *q, float *y) {
    const int NT = 1; /* for PREFETCH_ROWS */
    const int64_t nb = n / 256;
    const bn_act_q8_k *a = (const bn_act_q8_k *)(const void *)act;
    const __m512i m3 = _mm512_set1_epi8(3);
    __m512 accf[TILE_MAX_R / 2];
    BN5_UNROLL for (int p = 0; p < NR / 2; p++) accf[p] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        PREFETCH_ROWS(w + 66 * b);
        const int8_t *qb = q + 256 * b;
        __m512i acc[TILE_MAX_R];
        FOR_R {
            const __m512i x = _mm512_loadu_si512((const void *)(w + (size_t)r * wrb + 66 * b));
            __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_and_si512(x, m3), load512(qb));
            s = _mm512_dpbusd_epi32(s, _mm512_and_si512(_mm512_srli_epi16(x, 2), m3), load512(qb + 64));
            s = _mm512_dpbusd_epi32(s, _mm512_and_si512(_mm512_srli_epi16(x, 4), m3), load512(qb + 128));
            acc[r] = _mm512_dpbusd_epi32(s, _mm512_and_si512(_mm512_srli_epi16(x, 6), m3), load512(qb + 192));
        }
        const __m256i bs = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)(const void *)a[b].bsums),
                                             _mm256_set1_epi16(1));
        const __m512i bsum2 = _mm512_broadcast_i64x4(bs);
        BN5_UNROLL for (int p = 0; p < NR / 2; p++) {
            const float s0 = a[b].d * rd_f16(w + (size_t)(2 * p) * wrb + 66 * b + 64);
            const float s1 = a[b].d * rd_f16(w + (size_t)(2 * p + 1) * wrb + 66 * b + 64);
            const __m512 scale = _mm512_castpd_ps(  /* [s0 x 8 | s1 x 8]; insertf32x8 would need DQ */
                _mm512_insertf64x4(_mm512_castps_pd(_mm512_set1_ps(s0)), _mm256_castps_pd(_mm256_set1_ps(s1)), 1));
            const __m512i lanes = tq2_pair_lanes(acc[2 * p], acc[2 * p + 1], bsum2);
            accf[p] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(lanes), scale, accf[p]);
        }
    }
    BN5_UNROLL for (int p = 0; p < NR / 2; p++) {
        y[2 * p] = hsum8_ps(_mm512_castps512_ps256(accf[p]));
        y[2 * p + 1] = hsum8_ps(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(accf[p]), 1)));
    }
}

/* A 4 x 1 tile for run_tiles (arb, qst and ys are unused: one token). */
static void tq2_vnni_tile_4x1(int64_t n, const uint8_t *w, size_t wrb, const uint8_t *act, size_t arb,
                              const int8_t *q, size_t qst, float *y, int64_t ys) {
    (void)arb;
    (void)qst;
    (void)ys;
    tq2_vnni_rows(4, n, w, wrb, act, q, y);
}

BN_TARGET_END

/* TQ2_0's tiles with the VNNI 4 x 1 tile for decode; prefill and the rows
 * that do not fill a tile as tq2_tiles. */
static const tile_set tq2_vnni_tiles = {4, tq2_vnni_tile_4x1, tq2_tile_1x1, 2, 4,
                                        tq2_tile_2x4, tq2_tile_2x1, tq2_tile_1x4, copy_tq2, bn_tq2_0_vec_dot};

/* TQ2_0 decode (one token): with VNNI the kernel above; without it AVX2's
 * 4-row tiles, which on an AMD EPYC with AVX-512 (family 26) ran tg64 5-10%
 * faster than this file's 4 x 1 tiles, whose gain is in prefill (pp128
 * 1.5x). All are bit-exact with scalar. */
static void tq2_mul_mat_mixed(int64_t n, const uint8_t *w, size_t wrb, int64_t n_rows, const uint8_t *act,
                              size_t arb, int64_t n_tok, float *y, int64_t ys) {
    if (n_tok == 1)
        bn_avx2_tq2_0_mul_mat(n, w, wrb, n_rows, act, arb, n_tok, y, ys);
    else
        tq2_mul_mat(n, w, wrb, n_rows, act, arb, n_tok, y, ys);
}

static void tq2_mul_mat_vnni(int64_t n, const uint8_t *w, size_t wrb, int64_t n_rows, const uint8_t *act,
                             size_t arb, int64_t n_tok, float *y, int64_t ys) {
    run_tiles(&tq2_vnni_tiles, n, w, wrb, n_rows, act, arb, n_tok, y, ys);
}

void bn_kernels_fill_avx512(bn_kernels *k) {
    char features[128];
    bn_cpu_features(features, sizeof features);
    k->mul_mat[BN_TYPE_I2_S] = i2s_mul_mat;
    k->mul_mat[BN_TYPE_TQ2_0] = strstr(features, "avx512vnni") ? tq2_mul_mat_vnni : tq2_mul_mat_mixed;
    k->mul_mat[BN_TYPE_IQ2_BN] = iq2bn_mul_mat;
}

#else

void bn_kernels_fill_avx512(bn_kernels *k) { (void)k; }

#endif
