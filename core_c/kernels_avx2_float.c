/* AVX2 (+FMA, F16C) kernels for the float weight types (F32, F16, BF16),
 * the k-quant weight types (Q8_0, Q4_K, Q6_K), the attention helpers (axpy,
 * half <-> float rows) and the activation quantizers.
 *
 * Every entry returns bit for bit what the scalar set (kernels.c over
 * types_float.c / types_kquants.c / act_quant.c / fp16.c) returns:
 *
 *   F32/F16/BF16: 8 float lanes, lane j % 8 takes element j, a multiply then
 *       an add (never an fma), the tail (n % 8 elements) goes to lanes
 *       0..n%8-1 (zero padding adds +0 products, which leaves a lane that
 *       started at +0 unchanged), folded with the bn_hsum8 order.
 *   Q8_0/Q4_K/Q6_K: the same per-lane integer sums as the scalar (exact, so
 *       any exact integer schedule is fine) and the same fma per block.
 *       Q8_0 widens both operands to int16 (the sign trick of ggml's
 *       maddubs kernel is wrong for -128 * -128, the scalar is not).
 *   fp16_to_fp32: F16C quiets signalling NaNs, bn_fp16_to_fp32 keeps them:
 *       the quiet bit is cleared again in those lanes. fp32_to_fp16: F16C
 *       with round to nearest even agrees with bn_fp32_to_fp16 on all 2^32
 *       inputs (NaN payloads included) as long as MXCSR.DAZ is clear.
 *   Quantizers: the scalar's max search (a NaN never wins), its division
 *       vs. multiplication choices, round_i8 (NaN -> 0, clamp to
 *       [-128, 127], then nearest-even in the current rounding mode, i.e.
 *       what rintf does).
 *
 * Shapes:
 *   F32/F16/BF16: tiles of R rows x T tokens with all R*T accumulators in
 *       registers (8x1, 4x2, 2x4), token chunks that stay in L2 and row
 *       blocks that stay in L1/L2 while the chunk passes over them; short
 *       rows far apart (attention over a KV cache) are prefetched ahead.
 *   Q4_K/Q6_K decode (n_tok = 1): one row at a time, unpacked in registers,
 *       with a software prefetch ~1 KiB ahead. Interleaving 4 rows per pass
 *       was no faster in cache and slower from memory (the unpacked blocks
 *       spill; the activation row sits in L1 either way).
 *   Q4_K/Q6_K prefill: tiles of 4 rows x 16 tokens; each weight block is
 *       unpacked once into L1 and used for all 16 tokens.
 *   Q8_0: one row x up to 4 tokens, widened weights reused. */
#include "kernels.h"
#include "kernels_x86.h"

#if BN_X86

#include <math.h>
#include <string.h>

#include "act_quant.h"

BN_TARGET_BEGIN("avx2,fma,f16c")
#include <immintrin.h>

#define AI static inline __attribute__((always_inline))

/* ---- shared helpers -------------------------------------------------------- */

static inline __m256i ldu256(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }
static inline __m128i ldu128(const void *p) { return _mm_loadu_si128((const __m128i *)p); }

/* bn_hsum8: (v0+v4 + v2+v6) + (v1+v5 + v3+v7) in exactly that shape. */
AI float hsum8(__m256 v) {
    const __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    const __m128 s = _mm_add_ps(h, _mm_movehl_ps(h, h));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

/* bn_hsum4 of the low 4 lanes. */
AI float hsum4(__m128 h) {
    const __m128 s = _mm_add_ps(h, _mm_movehl_ps(h, h));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

/* Four bn_hsum8 at once: {hsum8(a), hsum8(b), hsum8(c), hsum8(d)}. */
AI __m128 hsum8x4(__m256 a, __m256 b, __m256 c, __m256 d) {
    const __m128 ha = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    const __m128 hb = _mm_add_ps(_mm256_castps256_ps128(b), _mm256_extractf128_ps(b, 1));
    const __m128 hc = _mm_add_ps(_mm256_castps256_ps128(c), _mm256_extractf128_ps(c, 1));
    const __m128 hd = _mm_add_ps(_mm256_castps256_ps128(d), _mm256_extractf128_ps(d, 1));
    const __m128 ab = _mm_add_ps(_mm_unpacklo_ps(ha, hb), _mm_unpackhi_ps(ha, hb)); /* a0+a2 b0+b2 a1+a3 b1+b3 */
    const __m128 cd = _mm_add_ps(_mm_unpacklo_ps(hc, hd), _mm_unpackhi_ps(hc, hd));
    return _mm_add_ps(_mm_movelh_ps(ab, cd), _mm_movehl_ps(cd, ab));
}

AI void store4_strided(float *y, int64_t stride, __m128 v) {
    float t[4];
    _mm_storeu_ps(t, v);
    y[0] = t[0];
    y[stride] = t[1];
    y[2 * stride] = t[2];
    y[3 * stride] = t[3];
}

/* Weight scales: F16C widening is exact (a NaN scale only ever meets float
 * arithmetic, which quiets it anyway). */
AI float rd_f16c(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, sizeof h);
    return _cvtsh_ss(h);
}

/* ---- F32 / F16 / BF16 x float32 ---------------------------------------------- */

enum { K_F32 = 0, K_F16 = 1, K_BF16 = 2 };

AI __m256 ld_w(const int kind, const uint8_t *p) {
    if (kind == K_F32)
        return _mm256_loadu_ps((const float *)(const void *)p);
    const __m128i h = ldu128(p);
    if (kind == K_F16)
        return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

/* R weight rows x T tokens, all accumulators in registers (R * T <= 8). */
AI void float_tile(const int kind, const int R, const int T, const int tail, int64_t n, const uint8_t *w, size_t wrb,
                   const uint8_t *x, size_t xrb, float *y, int64_t ys) {
    const int esz = kind == K_F32 ? 4 : 2;
    __m256 acc[8][4];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int t = 0; t < T; t++)
            acc[r][t] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 xv[4];
#pragma GCC unroll 4
        for (int t = 0; t < T; t++)
            xv[t] = _mm256_loadu_ps((const float *)(const void *)(x + (size_t)t * xrb) + i);
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            const __m256 wv = ld_w(kind, w + (size_t)r * wrb + (size_t)(esz * i));
#pragma GCC unroll 4
            for (int t = 0; t < T; t++)
                acc[r][t] = _mm256_add_ps(acc[r][t], _mm256_mul_ps(wv, xv[t]));
        }
    }
    if (tail && i < n) { /* n % 8 elements into lanes 0..: zero padding adds +0 */
        const size_t rem = (size_t)(n - i);
        __m256 xv[4];
        for (int t = 0; t < T; t++) {
            float xt[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            memcpy(xt, (const float *)(const void *)(x + (size_t)t * xrb) + i, rem * sizeof(float));
            xv[t] = _mm256_loadu_ps(xt);
        }
        for (int r = 0; r < R; r++) {
            uint8_t wt[32] = {0};
            memcpy(wt, w + (size_t)r * wrb + (size_t)(esz * i), rem * (size_t)esz);
            const __m256 wv = ld_w(kind, wt);
            for (int t = 0; t < T; t++)
                acc[r][t] = _mm256_add_ps(acc[r][t], _mm256_mul_ps(wv, xv[t]));
        }
    }
    if (R % 4 == 0) {
#pragma GCC unroll 4
        for (int t = 0; t < T; t++)
#pragma GCC unroll 2
            for (int r = 0; r < R; r += 4)
                _mm_storeu_ps(y + t * ys + r, hsum8x4(acc[r][t], acc[r + 1][t], acc[r + 2][t], acc[r + 3][t]));
    } else if (T == 4) {
#pragma GCC unroll 8
        for (int r = 0; r < R; r++)
            store4_strided(y + r, ys, hsum8x4(acc[r][0], acc[r][1], acc[r][2], acc[r][3]));
    } else {
#pragma GCC unroll 8
        for (int r = 0; r < R; r++)
#pragma GCC unroll 4
            for (int t = 0; t < T; t++)
                y[t * ys + r] = hsum8(acc[r][t]);
    }
}

#ifndef FLOAT_PF_ROWS
#define FLOAT_PF_ROWS 8
#endif

/* One token tile: rows r0..r1 with the widest row tile that fits. */
AI void float_rows(const int kind, const int T, int64_t n, const uint8_t *w, size_t wrb, int64_t r0, int64_t r1,
                   const uint8_t *x, size_t xrb, float *y, int64_t ys) {
    const int RM = 8 / T;
    const size_t row = (size_t)n * (kind == K_F32 ? 4 : 2);
    /* Short rows far apart (attention over a KV cache): the hardware
     * prefetchers do not follow them, so ask for the rows FLOAT_PF_ROWS ahead. */
    const int pf = row <= 1024 && wrb >= row + 64;
    int64_t r = r0;
#define FT(RR)                                                                                                    \
    for (; r + (RR) <= r1; r += (RR)) {                                                                           \
        if (pf)                                                                                                   \
            for (int64_t q = r + FLOAT_PF_ROWS; q < r + FLOAT_PF_ROWS + (RR) && q < r1; q++)                      \
                for (size_t o = 0; o < row; o += 64)                                                              \
                    _mm_prefetch((const char *)(w + (size_t)q * wrb + o), _MM_HINT_T0);                          \
        if (n % 8)                                                                                                \
            float_tile(kind, RR, T, 1, n, w + (size_t)r * wrb, wrb, x, xrb, y + r, ys);                           \
        else /* no tail code: the accumulators never leave the registers */                                      \
            float_tile(kind, RR, T, 0, n, w + (size_t)r * wrb, wrb, x, xrb, y + r, ys);                           \
    }
    if (RM >= 8)
        FT(8);
    if (RM >= 4)
        FT(4);
    FT(2);
    FT(1);
#undef FT
}

AI void mul_mat_float(const int kind, int64_t n, const uint8_t *w, size_t wrb, int64_t n_rows, const uint8_t *act,
                      size_t arb, int64_t n_tok, float *y, int64_t ys) {
    const size_t esz = kind == K_F32 ? 4 : 2;
    /* Token chunks whose activations stay in L2 (~192 KiB), row blocks whose
     * weights stay in L1/L2 (~48 KiB) while the chunk's tokens pass over them. */
    int64_t tc = (int64_t)((192u * 1024u) / ((size_t)n * 4u + 1u)) & ~(int64_t)3;
    if (tc < 4)
        tc = 4;
    int64_t rb = (int64_t)((48u * 1024u) / ((size_t)n * esz + 1u)) & ~(int64_t)7;
    if (rb < 8)
        rb = 8;
    for (int64_t t0 = 0; t0 < n_tok; t0 += tc) {
        const int64_t t1 = t0 + tc < n_tok ? t0 + tc : n_tok;
        for (int64_t r0 = 0; r0 < n_rows; r0 += rb) {
            const int64_t r1 = r0 + rb < n_rows ? r0 + rb : n_rows;
            int64_t t = t0;
            for (; t + 4 <= t1; t += 4)
                float_rows(kind, 4, n, w, wrb, r0, r1, act + (size_t)t * arb, arb, y + t * ys, ys);
            for (; t + 2 <= t1; t += 2)
                float_rows(kind, 2, n, w, wrb, r0, r1, act + (size_t)t * arb, arb, y + t * ys, ys);
            for (; t < t1; t++)
                float_rows(kind, 1, n, w, wrb, r0, r1, act + (size_t)t * arb, arb, y + t * ys, ys);
        }
    }
}

static void mul_mat_f32(int64_t n, const uint8_t *w, size_t wrb, int64_t n_rows, const uint8_t *act, size_t arb,
                        int64_t n_tok, float *y, int64_t ys) {
    mul_mat_float(K_F32, n, w, wrb, n_rows, act, arb, n_tok, y, ys);
}
static void mul_mat_f16(int64_t n, const uint8_t *w, size_t wrb, int64_t n_rows, const uint8_t *act, size_t arb,
                        int64_t n_tok, float *y, int64_t ys) {
    mul_mat_float(K_F16, n, w, wrb, n_rows, act, arb, n_tok, y, ys);
}
static void mul_mat_bf16(int64_t n, const uint8_t *w, size_t wrb, int64_t n_rows, const uint8_t *act, size_t arb,
                         int64_t n_tok, float *y, int64_t ys) {
    mul_mat_float(K_BF16, n, w, wrb, n_rows, act, arb, n_tok, y, ys);
}

/* ---- Q8_0 x Q8_0 ----------------------------------------------------------- */

/* Integer lanes of one block in the order L0 L1 L4 L5 L2 L3 L6 L7 (lane L =
 * bytes 4L..4L+3); the accumulator keeps that order and is put back in
 * lane order before the fold. */
AI __m256i q8_0_isum(__m256i w_lo, __m256i w_hi, const int8_t *aq) {
    const __m256i p = _mm256_madd_epi16(w_lo, _mm256_cvtepi8_epi16(ldu128(aq)));
    const __m256i q = _mm256_madd_epi16(w_hi, _mm256_cvtepi8_epi16(ldu128(aq + 16)));
    return _mm256_hadd_epi32(p, q);
}

AI float q8_0_fold(__m256 acc) {
    return hsum8(_mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(acc), _MM_SHUFFLE(3, 1, 2, 0))));
}

AI void q8_0_tile(const int T, int64_t nb, const uint8_t *w, const uint8_t *act, size_t arb, float *y, int64_t ys) {
    __m256 acc[4];
#pragma GCC unroll 4
    for (int t = 0; t < T; t++)
        acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++, w += 34) {
        const __m256i w_lo = _mm256_cvtepi8_epi16(ldu128(w + 2));
        const __m256i w_hi = _mm256_cvtepi8_epi16(ldu128(w + 18));
        const float dw = rd_f16c(w);
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) {
            const bn_act_q8_0 *a = (const bn_act_q8_0 *)(const void *)(act + (size_t)t * arb) + b;
            const __m256 d = _mm256_set1_ps(dw * _cvtsh_ss(a->d));
            acc[t] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(q8_0_isum(w_lo, w_hi, a->qs)), acc[t]);
        }
    }
#pragma GCC unroll 4
    for (int t = 0; t < T; t++)
        y[t * ys] = q8_0_fold(acc[t]);
}

static void mul_mat_q8_0(int64_t n, const uint8_t *w, size_t wrb, int64_t n_rows, const uint8_t *act, size_t arb,
                         int64_t n_tok, float *y, int64_t ys) {
    const int64_t nb = n / 32;
    const int64_t tc = 32; /* token chunk: 32 activation rows stay in L2 */
    for (int64_t t0 = 0; t0 < n_tok; t0 += tc) {
        const int64_t t1 = t0 + tc < n_tok ? t0 + tc : n_tok;
        for (int64_t r = 0; r < n_rows; r++) {
            const uint8_t *wr = w + (size_t)r * wrb;
            int64_t t = t0;
            for (; t + 4 <= t1; t += 4)
                q8_0_tile(4, nb, wr, act + (size_t)t * arb, arb, y + t * ys + r, ys);
            for (; t < t1; t++)
                q8_0_tile(1, nb, wr, act + (size_t)t * arb, arb, y + t * ys + r, ys);
        }
    }
}

/* ---- Q4_K / Q6_K x Q8_K -------------------------------------------------------- */

/* One weight block unpacked for the integer dot products:
 *   q[c]   the codes of positions 32c..32c+31 as unsigned bytes;
 *   scl[c] the int16 multipliers of maddubs' 16 pair sums of chunk c;
 * plus what the per-token correction needs (Q6_K: the 16 scales as int16 for
 * the -32 offset; Q4_K: each min twice, as int16, for the bsums pairs). */
typedef struct kq_blk {
    __m256i q[8];
    __m256i scl[8];
    __m256i corr;
    float d, dmin;
} kq_blk;

enum { K_Q4_K = 0, K_Q6_K = 1 };

/* Q6_K block: ql[128] @0, qh[64] @128, int8 scales[16] @192, fp16 d @208. */
AI void q6_k_unpack(const uint8_t *p, kq_blk *k) {
    const __m256i m4 = _mm256_set1_epi8(0x0f), m30 = _mm256_set1_epi8(0x30);
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
        const __m256i l0 = ldu256(p + 64 * h), l1 = ldu256(p + 64 * h + 32), hb = ldu256(p + 128 + 32 * h);
        k->q[4 * h + 0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_and_si256(_mm256_slli_epi16(hb, 4), m30));
        k->q[4 * h + 1] = _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_and_si256(_mm256_slli_epi16(hb, 2), m30));
        k->q[4 * h + 2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), _mm256_and_si256(hb, m30));
        k->q[4 * h + 3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                                          _mm256_and_si256(_mm256_srli_epi16(hb, 2), m30));
    }
    const __m128i sc = ldu128(p + 192);
    /* [s0 s2 .. s14 | s1 s3 .. s15] as int16; chunk c (positions 32c..) takes
     * element c of each 128-bit lane: s[2c] for its first 16 positions, s[2c+1]
     * for the last 16 */
    const __m256i eo = _mm256_cvtepi8_epi16(
        _mm_shuffle_epi8(sc, _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15)));
#pragma GCC unroll 8
    for (int c = 0; c < 8; c++)
        k->scl[c] = _mm256_shuffle_epi8(eo, _mm256_set1_epi16((short)(0x0100 * (2 * c + 1) + 2 * c)));
    k->corr = _mm256_cvtepi8_epi16(sc);
    k->d = rd_f16c(p + 208);
    k->dmin = 0.0f;
}

/* Q4_K block: fp16 d @0, fp16 dmin @2, 12 bytes of scales/mins @4, qs[128] @16. */
AI void q4_k_unpack(const uint8_t *p, kq_blk *k) {
    const __m256i m4 = _mm256_set1_epi8(0x0f);
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
        const __m256i v = ldu256(p + 16 + 32 * j);
        k->q[2 * j] = _mm256_and_si256(v, m4);
        k->q[2 * j + 1] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
    }
    /* get_scale_min_k4, j = 0..7 */
    const uint8_t *s = p + 4;
    uint8_t sc[8], m[8];
    for (int j = 0; j < 4; j++) {
        sc[j] = s[j] & 63;
        m[j] = s[j + 4] & 63;
    }
    for (int j = 4; j < 8; j++) {
        sc[j] = (uint8_t)((s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4));
        m[j] = (uint8_t)((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
    }
#pragma GCC unroll 8
    for (int c = 0; c < 8; c++)
        k->scl[c] = _mm256_set1_epi16((short)sc[c]);
    k->corr = _mm256_setr_epi16((short)m[0], (short)m[0], (short)m[1], (short)m[1], (short)m[2], (short)m[2],
                                (short)m[3], (short)m[3], (short)m[4], (short)m[4], (short)m[5], (short)m[5],
                                (short)m[6], (short)m[6], (short)m[7], (short)m[7]);
    k->d = rd_f16c(p);
    k->dmin = rd_f16c(p + 2);
}

AI void kq_unpack(const int kind, const uint8_t *p, kq_blk *k) {
    if (kind == K_Q6_K)
        q6_k_unpack(p, k);
    else
        q4_k_unpack(p, k);
}

/* Sum over the 8 chunks of scl * (pair sums of code * q8): lane L gets the
 * positions p with p % 32 / 4 == L. Codes are unsigned (<= 63), q8 signed:
 * maddubs cannot saturate; madd cannot overflow. */
AI __m256i kq_isum(const kq_blk *k, const int8_t *qs) {
    __m256i s = _mm256_madd_epi16(_mm256_maddubs_epi16(k->q[0], ldu256(qs)), k->scl[0]);
#pragma GCC unroll 7
    for (int c = 1; c < 8; c++)
        s = _mm256_add_epi32(s, _mm256_madd_epi16(_mm256_maddubs_epi16(k->q[c], ldu256(qs + 32 * c)), k->scl[c]));
    return s;
}

/* One block of one row with one token: acc += d * lanes (Q4_K: also acc_m). */
AI void kq_block_dot(const int kind, const kq_blk *k, const bn_act_q8_k *a, __m256 *acc, __m128 *acc_m) {
    __m256i s = kq_isum(k, a->qs);
    const __m256i bs = ldu256(a->bsums);
    if (kind == K_Q6_K) {
        /* -32 * (bsums[2L]*sc[2L] + bsums[2L+1]*sc[2L+1]) per lane */
        s = _mm256_sub_epi32(s, _mm256_slli_epi32(_mm256_madd_epi16(bs, k->corr), 5));
    } else {
        /* m[j]*(bsums[2j]+bsums[2j+1]) in 32 bits, then pairs j = 2k, 2k+1 */
        const __m256i mb = _mm256_madd_epi16(bs, k->corr);
        const __m128i prod = _mm_hadd_epi32(_mm256_castsi256_si128(mb), _mm256_extracti128_si256(mb, 1));
        *acc_m = _mm_fmadd_ps(_mm_set1_ps(-a->d * k->dmin), _mm_cvtepi32_ps(prod), *acc_m);
    }
    *acc = _mm256_fmadd_ps(_mm256_set1_ps(a->d * k->d), _mm256_cvtepi32_ps(s), *acc);
}

AI float kq_fold(const int kind, __m256 acc, __m128 acc_m) {
    if (kind == K_Q6_K)
        return hsum8(acc);
    return hsum8(acc) + hsum4(acc_m);
}

#define KQ_TR 4  /* rows per tile */
#define KQ_TT 16 /* tokens per tile (prefill) */
#ifndef KQ_PREFETCH
#define KQ_PREFETCH 1024
#endif

/* Prefetch the 4 cache lines `ahead` bytes past p (an address computed as an
 * integer: it may lie past the end of the weights, which a prefetch ignores). */
AI void prefetch_block(const uint8_t *p, size_t ahead) {
    const uintptr_t a = (uintptr_t)p + ahead;
    _mm_prefetch((const char *)a, _MM_HINT_T0);
    _mm_prefetch((const char *)(a + 64), _MM_HINT_T0);
    _mm_prefetch((const char *)(a + 128), _MM_HINT_T0);
    _mm_prefetch((const char *)(a + 192), _MM_HINT_T0);
}

/* Decode: one row, one token, nothing leaves the registers. The prefetch ~5
 * blocks ahead keeps the stream in flight while the (compute heavy)
 * unpacking runs. */
AI float kq_row_1tok(const int kind, int64_t nb, const uint8_t *w, const bn_act_q8_k *a) {
    const size_t bb = kind == K_Q6_K ? 210 : 144;
    __m256 acc = _mm256_setzero_ps();
    __m128 acc_m = _mm_setzero_ps();
    for (int64_t b = 0; b < nb; b++, w += bb) {
        prefetch_block(w, KQ_PREFETCH);
        kq_blk k;
        kq_unpack(kind, w, &k);
        kq_block_dot(kind, &k, a + b, &acc, &acc_m);
    }
    return kq_fold(kind, acc, acc_m);
}

/* Prefill: nr <= KQ_TR rows x nt <= KQ_TT tokens; each block of each row is
 * unpacked once and used for all nt tokens. */
AI void kq_tile(const int kind, int nr, int nt, int64_t nb, const uint8_t *w, size_t wrb, int64_t rows_after,
                const uint8_t *act, size_t arb, float *y, int64_t ys) {
    const size_t bb = kind == K_Q6_K ? 210 : 144;
    kq_blk k[KQ_TR];
    __m256 acc[KQ_TT][KQ_TR];
    __m128 acc_m[KQ_TT][KQ_TR];
    for (int t = 0; t < nt; t++)
        for (int r = 0; r < KQ_TR; r++) {
            acc[t][r] = _mm256_setzero_ps();
            acc_m[t][r] = _mm_setzero_ps();
        }
    for (int64_t b = 0; b < nb; b++) {
        for (int r = 0; r < nr; r++) {
            const uint8_t *p = w + (size_t)r * wrb + (size_t)b * bb;
            if (r < rows_after) /* the same block of the next tile's rows */
                prefetch_block(p, (size_t)KQ_TR * wrb);
            kq_unpack(kind, p, &k[r]);
        }
        for (int t = 0; t < nt; t++) {
            const bn_act_q8_k *a = (const bn_act_q8_k *)(const void *)(act + (size_t)t * arb) + b;
            for (int r = 0; r < nr; r++)
                kq_block_dot(kind, &k[r], a, &acc[t][r], &acc_m[t][r]);
        }
    }
    for (int t = 0; t < nt; t++)
        for (int r = 0; r < nr; r++)
            y[t * ys + r] = kq_fold(kind, acc[t][r], acc_m[t][r]);
}

AI void mul_mat_kq(const int kind, int64_t n, const uint8_t *w, size_t wrb, int64_t n_rows, const uint8_t *act,
                   size_t arb, int64_t n_tok, float *y, int64_t ys) {
    const int64_t nb = n / 256;
    if (n_tok == 1) { /* one row at a time: a single sequential weight stream */
        const bn_act_q8_k *a = (const bn_act_q8_k *)(const void *)act;
        for (int64_t r = 0; r < n_rows; r++)
            y[r] = kq_row_1tok(kind, nb, w + (size_t)r * wrb, a);
        return;
    }
    for (int64_t t = 0; t < n_tok; t += KQ_TT) {
        const int nt = (int)(n_tok - t < KQ_TT ? n_tok - t : KQ_TT);
        for (int64_t r = 0; r < n_rows; r += KQ_TR) {
            const int nr = (int)(n_rows - r < KQ_TR ? n_rows - r : KQ_TR);
            kq_tile(kind, nr, nt, nb, w + (size_t)r * wrb, wrb, n_rows - r - KQ_TR, act + (size_t)t * arb, arb,
                    y + t * ys + r, ys);
        }
    }
}

static void mul_mat_q6_k(int64_t n, const uint8_t *w, size_t wrb, int64_t n_rows, const uint8_t *act, size_t arb,
                         int64_t n_tok, float *y, int64_t ys) {
    mul_mat_kq(K_Q6_K, n, w, wrb, n_rows, act, arb, n_tok, y, ys);
}
static void mul_mat_q4_k(int64_t n, const uint8_t *w, size_t wrb, int64_t n_rows, const uint8_t *act, size_t arb,
                         int64_t n_tok, float *y, int64_t ys) {
    mul_mat_kq(K_Q4_K, n, w, wrb, n_rows, act, arb, n_tok, y, ys);
}

/* ---- attention helpers ------------------------------------------------------ */

static void axpy_f32(int64_t n, float a, const float *x, float *y) {
    const __m256 va = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(y + i), _mm256_mul_ps(va, _mm256_loadu_ps(x + i))));
    if (i < n) {
        const size_t rem = (size_t)(n - i);
        float xt[8] = {0}, yt[8] = {0};
        memcpy(xt, x + i, rem * sizeof(float));
        memcpy(yt, y + i, rem * sizeof(float));
        _mm256_storeu_ps(yt, _mm256_add_ps(_mm256_loadu_ps(yt), _mm256_mul_ps(va, _mm256_loadu_ps(xt))));
        memcpy(y + i, yt, rem * sizeof(float));
    }
}

static void axpy_f16(int64_t n, float a, const uint16_t *x, float *y) {
    const __m256 va = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i,
                         _mm256_add_ps(_mm256_loadu_ps(y + i), _mm256_mul_ps(va, _mm256_cvtph_ps(ldu128(x + i)))));
    if (i < n) {
        const size_t rem = (size_t)(n - i);
        uint16_t xt[8] = {0};
        float yt[8] = {0};
        memcpy(xt, x + i, rem * sizeof(uint16_t));
        memcpy(yt, y + i, rem * sizeof(float));
        _mm256_storeu_ps(yt, _mm256_add_ps(_mm256_loadu_ps(yt), _mm256_mul_ps(va, _mm256_cvtph_ps(ldu128(xt)))));
        memcpy(y + i, yt, rem * sizeof(float));
    }
}

static void fp32_to_fp16(const float *x, uint16_t *y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(void *)(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    if (i < n) {
        const size_t rem = (size_t)(n - i);
        float xt[8] = {0};
        uint16_t yt[8];
        memcpy(xt, x + i, rem * sizeof(float));
        _mm_storeu_si128((__m128i *)(void *)yt, _mm256_cvtps_ph(_mm256_loadu_ps(xt), _MM_FROUND_TO_NEAREST_INT));
        memcpy(y + i, yt, rem * sizeof(uint16_t));
    }
}

/* F16C's widening, with the quiet bit of signalling NaNs cleared again. */
AI __m256 f16_to_f32x8(__m128i h) {
    const __m256 f = _mm256_cvtph_ps(h);
    const __m128i exp_q = _mm_and_si128(h, _mm_set1_epi16(0x7e00));
    const __m128i snan = _mm_andnot_si128(_mm_cmpeq_epi16(_mm_and_si128(h, _mm_set1_epi16(0x01ff)), _mm_setzero_si128()),
                                          _mm_cmpeq_epi16(exp_q, _mm_set1_epi16(0x7c00)));
    const __m256i qbit = _mm256_and_si256(_mm256_cvtepi16_epi32(snan), _mm256_set1_epi32(0x00400000));
    return _mm256_castsi256_ps(_mm256_andnot_si256(qbit, _mm256_castps_si256(f)));
}

static void fp16_to_fp32(const uint16_t *x, float *y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, f16_to_f32x8(ldu128(x + i)));
    if (i < n) {
        const size_t rem = (size_t)(n - i);
        uint16_t xt[8] = {0};
        float yt[8];
        memcpy(xt, x + i, rem * sizeof(uint16_t));
        _mm256_storeu_ps(yt, f16_to_f32x8(ldu128(xt)));
        memcpy(y + i, yt, rem * sizeof(float));
    }
}

/* ---- activation quantizers ------------------------------------------------------ */

/* round_i8 of act_quant.c on 8 lanes: NaN -> 0, clamp to [-128, 127], then
 * round in the current rounding mode (nearest even by default), as rintf. */
AI __m256i round_i8x8(__m256 v) {
    v = _mm256_and_ps(v, _mm256_cmp_ps(v, v, _CMP_ORD_Q));
    v = _mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps(-128.0f)), _mm256_set1_ps(127.0f));
    return _mm256_cvtps_epi32(v);
}

/* 32 int32 in [-128, 127] (four vectors, memory order) -> 32 int8. */
AI void store_i8x32(int8_t *dst, __m256i a, __m256i b, __m256i c, __m256i d) {
    const __m256i ab = _mm256_packs_epi32(a, b); /* a0-3 b0-3 | a4-7 b4-7 */
    const __m256i cd = _mm256_packs_epi32(c, d);
    const __m256i abcd = _mm256_packs_epi16(ab, cd); /* a0-3 b0-3 c0-3 d0-3 | a4-7 b4-7 c4-7 d4-7 */
    _mm256_storeu_si256((__m256i *)(void *)dst,
                        _mm256_permutevar8x32_epi32(abcd, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
}

AI __m256 abs8(__m256 v) { return _mm256_and_ps(v, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff))); }

/* Largest lane; no lane is NaN. */
AI float hmax8(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    return _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
}

/* The scalar's "if (|x| > amax) amax = |x|" from amax = 0: max_ps(|x|, acc)
 * returns acc when |x| is NaN, so NaN never wins; lanes never hold NaN. */
AI __m256 amax_acc(__m256 acc, __m256 v) { return _mm256_max_ps(abs8(v), acc); }

static void quantize_q8_0(const float *x, void *out, int64_t n) {
    bn_act_q8_0 *y = out;
    for (int64_t b = 0; b < n / 32; b++, x += 32) {
        const __m256 v0 = _mm256_loadu_ps(x), v1 = _mm256_loadu_ps(x + 8), v2 = _mm256_loadu_ps(x + 16),
                     v3 = _mm256_loadu_ps(x + 24);
        __m256 m = amax_acc(_mm256_setzero_ps(), v0);
        m = amax_acc(m, v1);
        m = amax_acc(m, v2);
        m = amax_acc(m, v3);
        const float amax = hmax8(m);
        y[b].d = _cvtss_sh(amax / 127.0f, _MM_FROUND_TO_NEAREST_INT); /* == bn_fp32_to_fp16 */
        const __m256 id = _mm256_set1_ps(amax != 0.0f ? 127.0f / amax : 0.0f);
        store_i8x32(y[b].qs, round_i8x8(_mm256_mul_ps(v0, id)), round_i8x8(_mm256_mul_ps(v1, id)),
                    round_i8x8(_mm256_mul_ps(v2, id)), round_i8x8(_mm256_mul_ps(v3, id)));
    }
}

/* Sums of lanes: {sum(a), sum(b), sum(c), sum(d)} (exact integers). */
AI __m128i hsum_i32x4(__m256i a, __m256i b, __m256i c, __m256i d) {
    const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(a, b), _mm256_hadd_epi32(c, d));
    return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

static void quantize_q8_k(const float *x, void *out, int64_t n) {
    bn_act_q8_k *y = out;
    for (int64_t b = 0; b < n / 256; b++, x += 256) {
        __m256 m0 = _mm256_setzero_ps(), m1 = _mm256_setzero_ps();
        for (int j = 0; j < 256; j += 16) {
            m0 = amax_acc(m0, _mm256_loadu_ps(x + j));
            m1 = amax_acc(m1, _mm256_loadu_ps(x + j + 8));
        }
        const float amax = hmax8(_mm256_max_ps(m0, m1));
        if (amax == 0.0f) {
            memset(&y[b], 0, sizeof y[b]);
            continue;
        }
        /* the first element whose magnitude is amax keeps its sign */
        const __m256 va = _mm256_set1_ps(amax);
        int j = 0;
        for (;; j += 8) {
            const int hit = _mm256_movemask_ps(_mm256_cmp_ps(abs8(_mm256_loadu_ps(x + j)), va, _CMP_EQ_OQ));
            if (hit) {
                j += __builtin_ctz((unsigned)hit);
                break;
            }
        }
        const float iscale = -127.0f / x[j];
        const __m256 vs = _mm256_set1_ps(iscale);
        __m256i gs[16];
        for (int c = 0; c < 8; c++) { /* 32 values: groups 2c and 2c+1 */
            const float *xc = x + 32 * c;
            const __m256i q0 = round_i8x8(_mm256_mul_ps(vs, _mm256_loadu_ps(xc)));
            const __m256i q1 = round_i8x8(_mm256_mul_ps(vs, _mm256_loadu_ps(xc + 8)));
            const __m256i q2 = round_i8x8(_mm256_mul_ps(vs, _mm256_loadu_ps(xc + 16)));
            const __m256i q3 = round_i8x8(_mm256_mul_ps(vs, _mm256_loadu_ps(xc + 24)));
            store_i8x32(y[b].qs + 32 * c, q0, q1, q2, q3);
            gs[2 * c] = _mm256_add_epi32(q0, q1);
            gs[2 * c + 1] = _mm256_add_epi32(q2, q3);
        }
        for (int g = 0; g < 16; g += 8) {
            const __m128i s0 = hsum_i32x4(gs[g], gs[g + 1], gs[g + 2], gs[g + 3]);
            const __m128i s1 = hsum_i32x4(gs[g + 4], gs[g + 5], gs[g + 6], gs[g + 7]);
            _mm_storeu_si128((__m128i *)(void *)(y[b].bsums + g), _mm_packs_epi32(s0, s1));
        }
        y[b].d = 1.0f / iscale;
    }
}

static void quantize_q8_k64(const float *x, void *out, int64_t n) {
    bn_act_q8_k64 *h = out;
    int8_t *q = (int8_t *)(void *)(h + 1);
    /* lanes of x[16k .. 16k+7]: groups 0 0 0 0 1 1 1 1; of x[16k+8 ..]: 2 2 2 2 3 3 3 3 */
    __m256 ma = _mm256_setzero_ps(), mb = _mm256_setzero_ps();
    for (int64_t i = 0; i < n; i += 16) {
        ma = amax_acc(ma, _mm256_loadu_ps(x + i));
        mb = amax_acc(mb, _mm256_loadu_ps(x + i + 8));
    }
    float la[8], lb[8], amax[4];
    _mm256_storeu_ps(la, ma);
    _mm256_storeu_ps(lb, mb);
    for (int g = 0; g < 2; g++) {
        amax[g] = fmaxf(fmaxf(la[4 * g], la[4 * g + 1]), fmaxf(la[4 * g + 2], la[4 * g + 3]));
        amax[g + 2] = fmaxf(fmaxf(lb[4 * g], lb[4 * g + 1]), fmaxf(lb[4 * g + 2], lb[4 * g + 3]));
    }
    float id[4];
    for (int g = 0; g < 4; g++) {
        h->d[g] = amax[g] / 127.0f;
        id[g] = h->d[g] > 0.0f ? 1.0f / h->d[g] : 0.0f;
    }
    const __m256 ia = _mm256_setr_ps(id[0], id[0], id[0], id[0], id[1], id[1], id[1], id[1]);
    const __m256 ib = _mm256_setr_ps(id[2], id[2], id[2], id[2], id[3], id[3], id[3], id[3]);
    __m256i sa = _mm256_setzero_si256(), sb = _mm256_setzero_si256();
    for (int64_t i = 0; i < n; i += 32) {
        const __m256i q0 = round_i8x8(_mm256_mul_ps(ia, _mm256_loadu_ps(x + i)));
        const __m256i q1 = round_i8x8(_mm256_mul_ps(ib, _mm256_loadu_ps(x + i + 8)));
        const __m256i q2 = round_i8x8(_mm256_mul_ps(ia, _mm256_loadu_ps(x + i + 16)));
        const __m256i q3 = round_i8x8(_mm256_mul_ps(ib, _mm256_loadu_ps(x + i + 24)));
        store_i8x32(q + i, q0, q1, q2, q3);
        sa = _mm256_add_epi32(sa, _mm256_add_epi32(q0, q2));
        sb = _mm256_add_epi32(sb, _mm256_add_epi32(q1, q3));
    }
    int32_t ta[8], tb[8];
    _mm256_storeu_si256((__m256i *)(void *)ta, sa);
    _mm256_storeu_si256((__m256i *)(void *)tb, sb);
    const int32_t sum[4] = {ta[0] + ta[1] + ta[2] + ta[3], ta[4] + ta[5] + ta[6] + ta[7], tb[0] + tb[1] + tb[2] + tb[3],
                            tb[4] + tb[5] + tb[6] + tb[7]};
    for (int g = 0; g < 4; g++)
        h->minus[g] = h->d[g] * (float)sum[g];
}

static void quantize_i8_row(const float *x, void *out, int64_t n) {
    bn_act_i8_row *h = out;
    int8_t *q = (int8_t *)(void *)(h + 1);
    const int64_t n32 = n & ~(int64_t)31;
    const size_t rem = (size_t)(n - n32);
    float tail[32] = {0}; /* the last n % 32 values, zero padded (|0| never raises the max, q = 0 adds 0) */
    memcpy(tail, x + n32, rem * sizeof(float));

    __m256 m0 = _mm256_setzero_ps(), m1 = _mm256_setzero_ps();
    for (int64_t i = 0; i < n32; i += 16) {
        m0 = amax_acc(m0, _mm256_loadu_ps(x + i));
        m1 = amax_acc(m1, _mm256_loadu_ps(x + i + 8));
    }
    for (int i = 0; i < 32; i += 16) {
        m0 = amax_acc(m0, _mm256_loadu_ps(tail + i));
        m1 = amax_acc(m1, _mm256_loadu_ps(tail + i + 8));
    }
    /* max over |x| in double from 1e-5: the double of the float max */
    const double amax = (double)hmax8(_mm256_max_ps(m0, m1));
    const float s = (float)(127.0 / (amax > 0.00001 ? amax : 0.00001));
    const __m256 vs = _mm256_set1_ps(s);
    __m256i sum = _mm256_setzero_si256();
    for (int64_t i = 0; i <= n32; i += 32) {
        const float *xi = i < n32 ? x + i : tail;
        if (i == n32 && rem == 0)
            break;
        const __m256i q0 = round_i8x8(_mm256_mul_ps(_mm256_loadu_ps(xi), vs));
        const __m256i q1 = round_i8x8(_mm256_mul_ps(_mm256_loadu_ps(xi + 8), vs));
        const __m256i q2 = round_i8x8(_mm256_mul_ps(_mm256_loadu_ps(xi + 16), vs));
        const __m256i q3 = round_i8x8(_mm256_mul_ps(_mm256_loadu_ps(xi + 24), vs));
        sum = _mm256_add_epi32(sum, _mm256_add_epi32(_mm256_add_epi32(q0, q1), _mm256_add_epi32(q2, q3)));
        if (i < n32) {
            store_i8x32(q + i, q0, q1, q2, q3);
        } else {
            int8_t t8[32];
            store_i8x32(t8, q0, q1, q2, q3);
            memcpy(q + i, t8, rem);
        }
    }
    const __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
    const __m128i s2 = _mm_add_epi32(s4, _mm_unpackhi_epi64(s4, s4));
    h->scale = s;
    h->sum = _mm_cvtsi128_si32(_mm_add_epi32(s2, _mm_shuffle_epi32(s2, 1)));
    const size_t pad = bn_act_row_bytes(BN_ACT_I8_ROW, n) - sizeof *h - (size_t)n;
    memset(q + n, 0, pad);
}

BN_TARGET_END

void bn_kernels_fill_avx2_float(bn_kernels *k) {
    k->mul_mat[BN_TYPE_F32] = mul_mat_f32;
    k->mul_mat[BN_TYPE_F16] = mul_mat_f16;
    k->mul_mat[BN_TYPE_BF16] = mul_mat_bf16;
    k->mul_mat[BN_TYPE_Q8_0] = mul_mat_q8_0;
    k->mul_mat[BN_TYPE_Q4_K] = mul_mat_q4_k;
    k->mul_mat[BN_TYPE_Q6_K] = mul_mat_q6_k;
    k->axpy_f16 = axpy_f16;
    k->axpy_f32 = axpy_f32;
    k->fp32_to_fp16 = fp32_to_fp16;
    k->fp16_to_fp32 = fp16_to_fp32;
    k->quantize[BN_ACT_Q8_0] = quantize_q8_0;
    k->quantize[BN_ACT_Q8_K] = quantize_q8_k;
    k->quantize[BN_ACT_Q8_K64] = quantize_q8_k64;
    k->quantize[BN_ACT_I8_ROW] = quantize_i8_row;
}

#else /* !BN_X86 */

void bn_kernels_fill_avx2_float(bn_kernels *k) { (void)k; }

#endif
