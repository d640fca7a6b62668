/* AVX2 (+FMA, F16C) mul_mat kernels for the ternary weight types:
 * I2_S, TQ2_0, TQ1_0, IQ2_BN, IQ1_BN (kernels.h, the "avx2" variant).
 *
 * Exactness: every result equals the scalar vec_dot (types_ternary.c) bit for
 * bit. The integer parts (code x int8 sums) are exact in any order, so only
 * their lane structure matters where the reference keeps lanes:
 *   I2_S    int16 lane m = bytes 2m, 2m+1 of each 32-byte group, summed with
 *           wrap-around over runs of 32 blocks, then widened (the same
 *           _mm256_maddubs_epi16 / _mm256_add_epi16 / _mm256_madd_epi16 shape
 *           as bitnet.cpp); the float finish is ((float)total - sum) / scale.
 *   TQ*_0   per 256-block int32 lane l = positions with (p % 32) / 4 == l,
 *           minus bsums[2l] + bsums[2l+1]; then acc[l] = fma((float)lane,
 *           d_act * d_w, acc[l]) and the bn_hsum8 fold. The int16 partial
 *           sums inside a block stay below 2^13 in magnitude (16 products of
 *           at most 3 * 128 each, bsums at most 16 * 128), so adding them in
 *           int16 before the widening is exact.
 *   IQ*_BN  int32 sums per Q8_K64 group g = (i % 16) / 4 over the whole row,
 *           then f_g = fma(d_g, (float)S_g, -minus_g), bn_hsum4, times d_row.
 *           int16 partials are widened before they could overflow.
 * The float steps are the scalar ones, one instruction each (-std=c11 keeps
 * GCC from contracting anything else into an FMA).
 *
 * Speed (AMD EPYC Zen 1, where this was tuned): vpmaddubsw runs on one pipe
 * at one 256-bit instruction per 2 cycles, which caps a 2-bit kernel at 16
 * weights per cycle; the kernels reach about 10 in cache and are close to
 * that when streaming from memory. What mattered:
 *   - activation rows are copied to 64-byte aligned scratch once per call
 *     (unaligned 32-byte loads doubled the time of the inner loop), in the
 *     order the weight vectors need (IQ2_BN: two blocks side by side);
 *   - decode (n_tok == 1) unpacks 2-bit codes with one shift and four ANDs
 *     ("scaled" fields, see unit_step) and prefetches the weight rows;
 *   - tiles: rows are the outer loop; decode runs 2 rows x 1 token, prefill
 *     1 row x 4 tokens (each unpacked weight vector serves 4 tokens).
 *
 * Weights may sit at any byte address: all weight loads are unaligned loads
 * that stay inside the row (IQ1_BN's last block of a row is copied out
 * first, its 13 bytes being shorter than a 16-byte load). */
#include "kernels.h"
#include "kernels_x86.h"

#if BN_X86

#include <stdlib.h>
#include <string.h>

#include "act_quant.h"

BN_TARGET_BEGIN("avx2,fma,f16c")
#include <immintrin.h>

#if defined(__clang__)
#define BN_UNROLL _Pragma("unroll")
#else
#define BN_UNROLL _Pragma("GCC unroll 16")
#endif
#define BN_AI static inline __attribute__((always_inline))

/* Loops over the tile; NR, NT are compile-time constants after inlining. */
#define FOR_R BN_UNROLL for (int r = 0; r < NR; r++)
#define FOR_T BN_UNROLL for (int t = 0; t < NT; t++)

#define TILE_MAX_R 4
#define TILE_MAX_T 4

/* ---- shared helpers ------------------------------------------------------ */

BN_AI __m256i loadu256(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }
BN_AI __m128i loadu128(const void *p) { return _mm_loadu_si128((const __m128i *)p); }

BN_AI int32_t hsum_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
    return _mm_cvtsi128_si32(s);
}

/* bn_hsum4 on a register: (v0 + v2) + (v1 + v3). */
BN_AI float hsum4_ps(__m128 h) {
    const __m128 s = _mm_add_ps(h, _mm_movehl_ps(h, h)); /* v0+v2, v1+v3 */
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

/* bn_hsum8: fold the upper 4 lanes onto the lower 4, then bn_hsum4. */
BN_AI float hsum8_ps(__m256 v) {
    return hsum4_ps(_mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1)));
}

BN_AI float rd_f16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h); /* exact, as bn_fp16_to_fp32 */
}

BN_AI float rd_f32(const uint8_t *p) {
    float f;
    memcpy(&f, p, 4);
    return f;
}

/* Trits of the base-3 formats: a byte b holding trit k of a base-3 number
 * gives m = b * 3^k mod 256 and the trit (3 * m) >> 8 = (m > 85) + (m > 170).
 * The kernels work on m' = m ^ 0x80 (signed compares): xoring the stored
 * bytes once is enough, as (b + 128) * 3^k = b * 3^k + 128 (mod 256) for an
 * odd multiplier. trit = 1 + (m' < -42 ? -1 : 0) - (m' > 42 ? -1 : 0). */
BN_AI __m256i trit_from_mx(__m256i mx) {
    const __m256i lo = _mm256_cmpgt_epi8(_mm256_set1_epi8(85 - 128 + 1), mx); /* m <= 85 */
    const __m256i hi = _mm256_cmpgt_epi8(mx, _mm256_set1_epi8(170 - 128));   /* m > 170 */
    return _mm256_sub_epi8(_mm256_add_epi8(lo, _mm256_set1_epi8(1)), hi);
}

/* [lo | hi] (_mm256_setr_m128i is missing from older compilers). */
BN_AI __m256i pair128(__m128i lo, __m128i hi) {
    return _mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1);
}

/* x * 3 mod 256 in every byte. */
BN_AI __m256i mul3_epi8(__m256i x) { return _mm256_add_epi8(_mm256_add_epi8(x, x), x); }
BN_AI __m128i mul3_epi8_128(__m128i x) { return _mm_add_epi8(_mm_add_epi8(x, x), x); }

/* ---- 2-bit units ------------------------------------------------------------------
 *
 * I2_S, TQ2_0 and IQ2_BN are all read in units of 32 weight bytes = 128
 * weights in 4 fields (field k: bits 2k, 2k+1 of every byte), each field
 * meeting 32 consecutive activations. Two ways to unpack a unit:
 *
 *   plain:  the four codes (0..3) per byte, from one 16-bit shift, four ANDs
 *           and two byte shuffles (vector shifts run on a single pipe of AMD
 *           Zen 1, shuffles on two);
 *   scaled: fields 0 and 2 as codes, fields 1 and 3 as 4 * code, from one
 *           shift and four ANDs. maddubs of a 4 * code field is exactly 4x the
 *           plain one (|4 * 3 * 128 * 2| < 2^15: no saturation), so those
 *           products go to a second int16 accumulator that is shifted right
 *           by 2 (exact) and added to the first before it could overflow
 *           (every 4 units: 2 products of at most 4 * 3 * 128 * 2 = 3072 per
 *           unit and lane). Used for decode, where the unpacking is not
 *           shared by several tokens and its cost decides the speed.
 * Codes of 3 never occur in valid rows but are handled exactly all the same. */
typedef struct nibbles {
    __m256i lo, hi; /* x & 15, (x >> 4) & 15 */
} nibbles;

BN_AI nibbles split_nibbles(__m256i x) {
    const __m256i m15 = _mm256_set1_epi8(15);
    nibbles r;
    r.lo = _mm256_and_si256(x, m15);
    r.hi = _mm256_and_si256(_mm256_srli_epi16(x, 4), m15);
    return r;
}

/* Plain field k (0..3) of a unit. */
BN_AI __m256i field_plain(nibbles v, int k) {
    const __m256i shr2 = _mm256_setr_epi8(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 0, 0, 0, 0, 1, 1, 1, 1,
                                          2, 2, 2, 2, 3, 3, 3, 3);
    const __m256i m3 = _mm256_set1_epi8(3);
    const __m256i nib = k < 2 ? v.lo : v.hi;
    return k % 2 ? _mm256_shuffle_epi8(shr2, nib) : _mm256_and_si256(nib, m3);
}

/* Scaled fields: f[0], f[2] codes, f[1], f[3] 4 * codes. */
BN_AI void split_scaled(__m256i x, __m256i f[4]) {
    const __m256i m3 = _mm256_set1_epi8(3), m12 = _mm256_set1_epi8(12);
    const __m256i hi = _mm256_srli_epi16(x, 4);
    f[0] = _mm256_and_si256(x, m3);
    f[1] = _mm256_and_si256(x, m12);
    f[2] = _mm256_and_si256(hi, m3);
    f[3] = _mm256_and_si256(hi, m12);
}

#ifndef SCALED_DECODE
#define SCALED_DECODE 1
#endif
#define SCALED(NT) ((NT) == 1 && SCALED_DECODE)

BN_AI __m256i load256(const int8_t *p) { return _mm256_load_si256((const __m256i *)(const void *)p); }

/* One unit step of a tile: x[r] the unit of row r, qa + t * qst the 128
 * activations of token t (field k at 32 * k, or 32 * (3 - k) when REV).
 * NT == 1: scaled (acc1, acc4); else plain (acc1 only). */
BN_AI void unit_step(const int NR, const int NT, const int REV, const __m256i *x, const int8_t *qa, size_t qst,
                     __m256i acc1[TILE_MAX_R][TILE_MAX_T], __m256i acc4[TILE_MAX_R][TILE_MAX_T]) {
#define UNIT_Q(t, k) load256(qa + (size_t)(t) * qst + 32 * (REV ? 3 - (k) : (k)))
    if (SCALED(NT)) {
        FOR_R {
            __m256i f[4];
            split_scaled(x[r], f);
            acc1[r][0] = _mm256_add_epi16(acc1[r][0], _mm256_add_epi16(_mm256_maddubs_epi16(f[0], UNIT_Q(0, 0)),
                                                                       _mm256_maddubs_epi16(f[2], UNIT_Q(0, 2))));
            acc4[r][0] = _mm256_add_epi16(acc4[r][0], _mm256_add_epi16(_mm256_maddubs_epi16(f[1], UNIT_Q(0, 1)),
                                                                       _mm256_maddubs_epi16(f[3], UNIT_Q(0, 3))));
        }
    } else {
        nibbles v[TILE_MAX_R];
        FOR_R v[r] = split_nibbles(x[r]);
        BN_UNROLL for (int k = 0; k < 4; k++) {
            FOR_R {
                const __m256i c = field_plain(v[r], k);
                FOR_T acc1[r][t] = _mm256_add_epi16(acc1[r][t], _mm256_maddubs_epi16(c, UNIT_Q(t, k)));
            }
        }
    }
#undef UNIT_Q
}

/* acc1 + acc4 / 4 (exact: acc4 holds 4x an int16 value). */
BN_AI __m256i unscale(__m256i acc1, __m256i acc4) { return _mm256_add_epi16(acc1, _mm256_srai_epi16(acc4, 2)); }

#define ZERO_ACC(A) FOR_R FOR_T A[r][t] = _mm256_setzero_si256()

/* Decode streams each weight row once from memory: software prefetch
 * PF_DIST bytes ahead in every row of the tile. The rows of a tile are
 * adjacent, so this keeps about PF_DIST bytes of the stream in flight. On
 * an AMD EPYC family 26 (2026-12-03, benchmarks/kernels/bench_ternary.c,
 * weights from memory, one thread) 12 KiB read 1.6-1.7x faster than 2 KiB
 * for I2_S, TQ2_0 and IQ2_BN, with both kernel sets (e.g. I2_S avx512 22 ->
 * 39 GB/s; 4 and 8 KiB fell between, 16 and 32 KiB gave no more); on AMD
 * Zen 1, 2 KiB had been worth 10-20% over the hardware prefetcher alone.
 * 12 KiB stays well inside a 32 KiB L1. Prefetches never fault, so running
 * past the last row is harmless. */
#ifndef PF_DIST
#define PF_DIST 12288
#endif
#define PREFETCH_ROWS(P)                                                                          \
    do {                                                                                          \
        if (NT == 1) FOR_R _mm_prefetch((const char *)((P) + (size_t)r * wrb + PF_DIST), _MM_HINT_T0); \
    } while (0)

/* ---- tiles and their driver -------------------------------------------------------
 *
 * A tile computes y[t * ys + r] for r < NR, t < NT: weight rows w + r * wrb,
 * activation rows act + t * arb (headers: scales, sums), whose int8 values
 * have been copied to q + t * qst (64-byte aligned: unaligned 32-byte loads
 * cost AMD Zen 1 up to twice the time of the whole loop body). */
typedef void (*tile_fn)(int64_t n, const uint8_t *w, size_t wrb, const uint8_t *act, size_t arb,
                        const int8_t *q, size_t qst, float *y, int64_t ys);

/* Copy the int8 values of one activation row (n of them) to q. */
typedef void (*copy_fn)(const uint8_t *act, int8_t *q, int64_t n);

typedef struct tile_set {
    int dr;         /* decode rows per tile */
    tile_fn d_rows; /* dr x 1 */
    tile_fn one;    /* 1 x 1 */
    int pr, pt;     /* prefill tile */
    tile_fn p_full; /* pr x pt */
    tile_fn p_rows; /* pr x 1 (token tail) */
    tile_fn p_toks; /* 1 x pt (row tail) */
    copy_fn copy;
    float (*vec_dot)(int64_t n, const void *row, const void *act); /* without scratch memory */
} tile_set;

/* Tokens per pass: the copies of their activations stay in L2 while every
 * row tile sweeps them. */
#define TOKEN_CHUNK 32

static void run_tiles(const tile_set *ts, int64_t n, const uint8_t *w, size_t wrb, int64_t n_rows,
                      const uint8_t *act, size_t arb, int64_t n_tok, float *y, int64_t ys) {
    if (n_rows <= 0 || n_tok <= 0) return;
    const int64_t chunk = n_tok < TOKEN_CHUNK ? n_tok : TOKEN_CHUNK;
    const size_t qst = ((size_t)n + 127) & ~(size_t)127; /* IQ2_BN pads to a pair of blocks */
    void *mem = malloc(qst * (size_t)chunk + 64);
    if (!mem) { /* no scratch: the reference loop */
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

/* Instantiates the 1x1, 2x1, 4x1, 2x4, 1x4, 2x2 and 1x2 tiles and the
 * mul_mat of a kind: decode DR x 1 (DR: 1, 2 or 4), prefill PR x PT (PR 1 or
 * 2, PT 2 or 4). The tile sizes can be overridden with -D for tuning. */
#define DEF_TILES_(KIND, DR, PR, PT, COPY, VEC_DOT)                                                          \
    DEF_TILE(KIND, 1, 1)                                                                                     \
    DEF_TILE(KIND, 2, 1)                                                                                     \
    DEF_TILE(KIND, 4, 1)                                                                                     \
    DEF_TILE(KIND, 2, 4)                                                                                     \
    DEF_TILE(KIND, 1, 4)                                                                                     \
    DEF_TILE(KIND, 2, 2)                                                                                     \
    DEF_TILE(KIND, 1, 2)                                                                                     \
    static const tile_set KIND##_tiles = {DR,                      KIND##_tile_##DR##x1, KIND##_tile_1x1,   \
                                          PR,                      PT,                   KIND##_tile_##PR##x##PT, \
                                          KIND##_tile_##PR##x1,    KIND##_tile_1x##PT,   COPY,              \
                                          VEC_DOT};                                                         \
    static void KIND##_mul_mat(int64_t n, const uint8_t *w, size_t wrb, int64_t n_rows, const uint8_t *act,   \
                               size_t arb, int64_t n_tok, float *y, int64_t ys) {                            \
        run_tiles(&KIND##_tiles, n, w, wrb, n_rows, act, arb, n_tok, y, ys);                                \
    }
#define DEF_TILES(KIND, DR, PR, PT, COPY, VEC_DOT) DEF_TILES_(KIND, DR, PR, PT, COPY, VEC_DOT)

static void copy_i8_row(const uint8_t *act, int8_t *q, int64_t n) {
    memcpy(q, bn_i8_row_qs((const bn_act_i8_row *)(const void *)act), (size_t)n);
}

static void copy_q8_k(const uint8_t *act, int8_t *q, int64_t n) {
    const bn_act_q8_k *a = (const bn_act_q8_k *)(const void *)act;
    for (int64_t b = 0; b < n / 256; b++)
        memcpy(q + 256 * b, a[b].qs, 256);
}

static void copy_q8_k64(const uint8_t *act, int8_t *q, int64_t n) {
    memcpy(q, bn_q8_k64_qs((const bn_act_q8_k64 *)(const void *)act), (size_t)n);
}

/* IQ2_BN order: for each pair of 64-blocks (the second one zero when the
 * count is odd) and each k < 4, positions 16k .. 16k + 15 of the first block
 * then of the second. */
static void copy_q8_k64_pairs(const uint8_t *act, int8_t *q, int64_t n) {
    const int8_t *src = bn_q8_k64_qs((const bn_act_q8_k64 *)(const void *)act);
    const int64_t nb = n / 64;
    for (int64_t b = 0; b < nb; b += 2, q += 128, src += 128)
        for (int k = 0; k < 4; k++) {
            memcpy(q + 32 * k, src + 16 * k, 16);
            if (b + 1 < nb)
                memcpy(q + 32 * k + 16, src + 64 + 16 * k, 16);
            else
                memset(q + 32 * k + 16, 0, 16);
        }
}

/* ---- I2_S x I8_ROW ------------------------------------------------------------ */

BN_AI void i2s_tile(const int NR, const int NT, int64_t n, const uint8_t *w, size_t wrb, const uint8_t *act,
                    size_t arb, const int8_t *q, size_t qst, float *y, int64_t ys) {
    const int64_t nb = n / 128;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i tot[TILE_MAX_R][TILE_MAX_T], acc1[TILE_MAX_R][TILE_MAX_T], acc4[TILE_MAX_R][TILE_MAX_T];
    ZERO_ACC(tot);
    for (int64_t run = 0; run < nb; run += 32) { /* bitnet.cpp's runs of 32 blocks */
        const int64_t run_end = run + 32 < nb ? run + 32 : nb;
        /* acc1 wraps like bitnet.cpp's int16 lanes (all of this is modulo
         * 2^16 until the widening); acc4 must not, see unit_step. */
        ZERO_ACC(acc1);
        for (int64_t b0 = run; b0 < run_end; b0 += 4) {
            const int64_t end = b0 + 4 < run_end ? b0 + 4 : run_end;
            ZERO_ACC(acc4);
            for (int64_t b = b0; b < end; b++) {
                __m256i x[TILE_MAX_R];
                PREFETCH_ROWS(w + 32 * b);
                FOR_R x[r] = loadu256(w + (size_t)r * wrb + 32 * b);
                /* weight 32s + j of the block: byte j, field 3 - s */
                unit_step(NR, NT, 1, x, q + 128 * b, qst, acc1, acc4);
            }
            if (SCALED(NT)) FOR_R acc1[r][0] = unscale(acc1[r][0], acc4[r][0]);
        }
        FOR_R FOR_T tot[r][t] = _mm256_add_epi32(tot[r][t], _mm256_madd_epi16(acc1[r][t], ones));
    }
    FOR_T {
        const bn_act_i8_row *h = (const bn_act_i8_row *)(const void *)(act + (size_t)t * arb);
        FOR_R y[t * ys + r] = ((float)hsum_epi32(tot[r][t]) - (float)h->sum) / h->scale;
    }
}

/* ---- TQ2_0 / TQ1_0 x Q8_K ------------------------------------------------------ */

/* Finish one 256-block of a (row, token) pair: acc16 holds the int16 partial
 * lane sums of code * q (int16 lane m: bytes 2m, 2m+1 of each 32-group). */
BN_AI __m256 tq_block_finish(__m256i acc16, const bn_act_q8_k *a, float dw, __m256 accf) {
    const __m256i bs = loadu256(a->bsums);
    const __m256i lane = _mm256_madd_epi16(_mm256_sub_epi16(acc16, bs), _mm256_set1_epi16(1));
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(lane), _mm256_set1_ps(a->d * dw), accf);
}

BN_AI void tq2_tile(const int NR, const int NT, int64_t n, const uint8_t *w, size_t wrb, const uint8_t *act,
                    size_t arb, const int8_t *q, size_t qst, float *y, int64_t ys) {
    const int64_t nb = n / 256;
    const bn_act_q8_k *a[TILE_MAX_T];
    FOR_T a[t] = (const bn_act_q8_k *)(const void *)(act + (size_t)t * arb);
    __m256 accf[TILE_MAX_R][TILE_MAX_T];
    FOR_R FOR_T accf[r][t] = _mm256_setzero_ps();
    __m256i acc1[TILE_MAX_R][TILE_MAX_T], acc4[TILE_MAX_R][TILE_MAX_T];
    for (int64_t b = 0; b < nb; b++) {
        ZERO_ACC(acc1);
        ZERO_ACC(acc4);
        PREFETCH_ROWS(w + 66 * b);
        BN_UNROLL for (int h = 0; h < 2; h++) {
            /* weight 128h + 32s + j: byte 32h + j, field s */
            __m256i x[TILE_MAX_R];
            FOR_R x[r] = loadu256(w + (size_t)r * wrb + 66 * b + 32 * h);
            unit_step(NR, NT, 0, x, q + 256 * b + 128 * h, qst, acc1, acc4);
        }
        FOR_R {
            const float dw = rd_f16(w + (size_t)r * wrb + 66 * b + 64);
            FOR_T accf[r][t] = tq_block_finish(SCALED(NT) ? unscale(acc1[r][t], acc4[r][t]) : acc1[r][t], &a[t][b],
                                               dw, accf[r][t]);
        }
    }
    FOR_T FOR_R y[t * ys + r] = hsum8_ps(accf[r][t]);
}

/* TQ1_0 block (54 bytes) -> the codes of positions 32k .. 32k + 31, k < 8. */
BN_AI void tq1_decode(const uint8_t *blk, __m256i out[8]) {
    /* qs[0..31]: weight j + 32s is trit s of byte j (multiplier 3^s) */
    const __m256i x80 = _mm256_set1_epi8((char)0x80);
    __m256i m = _mm256_xor_si256(loadu256(blk), x80);
    BN_UNROLL for (int s = 0; s < 5; s++) {
        out[s] = trit_from_mx(m);
        if (s < 4) m = mul3_epi8(m);
    }
    /* qs[32..47]: weight 160 + j + 16s is trit s of byte 32 + j */
    __m128i m16[5];
    m16[0] = _mm_xor_si128(loadu128(blk + 32), _mm256_castsi256_si128(x80));
    BN_UNROLL for (int s = 1; s < 5; s++) m16[s] = mul3_epi8_128(m16[s - 1]);
    /* qh[0..3]: weight 240 + j + 4s is trit s of byte 48 + j */
    uint32_t qh;
    memcpy(&qh, blk + 48, 4);
    const __m128i z1 = _mm_xor_si128(_mm_set1_epi32((int)qh), _mm256_castsi256_si128(x80));
    const __m128i z3 = mul3_epi8_128(z1), z9 = mul3_epi8_128(z3), z27 = mul3_epi8_128(z9);
    const __m128i zq = _mm_blend_epi32(_mm_blend_epi32(z1, z3, 0x2), _mm_blend_epi32(z9, z27, 0x8), 0xC);
    out[5] = trit_from_mx(pair128(m16[0], m16[1]));
    out[6] = trit_from_mx(pair128(m16[2], m16[3]));
    out[7] = trit_from_mx(pair128(m16[4], zq));
}

BN_AI void tq1_tile(const int NR, const int NT, int64_t n, const uint8_t *w, size_t wrb, const uint8_t *act,
                    size_t arb, const int8_t *q, size_t qst, float *y, int64_t ys) {
    const int64_t nb = n / 256;
    const bn_act_q8_k *a[TILE_MAX_T];
    FOR_T a[t] = (const bn_act_q8_k *)(const void *)(act + (size_t)t * arb);
    __m256 accf[TILE_MAX_R][TILE_MAX_T];
    FOR_R FOR_T accf[r][t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        __m256i c[TILE_MAX_R][8];
        PREFETCH_ROWS(w + 54 * b);
        FOR_R tq1_decode(w + (size_t)r * wrb + 54 * b, c[r]);
        __m256i acc[TILE_MAX_R][TILE_MAX_T];
        FOR_R FOR_T acc[r][t] = _mm256_setzero_si256();
        BN_UNROLL for (int k = 0; k < 8; k++) {
            FOR_T {
                const __m256i qv = load256(q + (size_t)t * qst + 256 * b + 32 * k);
                FOR_R acc[r][t] = _mm256_add_epi16(acc[r][t], _mm256_maddubs_epi16(c[r][k], qv));
            }
        }
        FOR_R {
            const float dw = rd_f16(w + (size_t)r * wrb + 54 * b + 52);
            FOR_T accf[r][t] = tq_block_finish(acc[r][t], &a[t][b], dw, accf[r][t]);
        }
    }
    FOR_T FOR_R y[t * ys + r] = hsum8_ps(accf[r][t]);
}

/* ---- IQ2_BN / IQ1_BN x Q8_K64 ------------------------------------------------- */

/* Finish a (row, token) pair from the int32 lanes (lane j: group j % 4). */
BN_AI float bn_finish(__m256i acc32, const bn_act_q8_k64 *h, float d_row) {
    const __m128i s = _mm_add_epi32(_mm256_castsi256_si128(acc32), _mm256_extracti128_si256(acc32, 1));
    const __m128 f = _mm_fmsub_ps(_mm_loadu_ps(h->d), _mm_cvtepi32_ps(s), _mm_loadu_ps(h->minus));
    return d_row * hsum4_ps(f);
}

/* IQ1_BN block (13 bytes, in the first 13 of x16): codes of positions
 * 0..31 and 32..63. Position i = 16g + r: byte 3g + r / 5 with multiplier
 * 3^(4 - r % 5) for r < 15, byte 12 with multiplier 3^(4 - g) for r = 15. */
BN_AI void iq1bn_decode(__m128i x16, __m256i *c01, __m256i *c23) {
    const __m256i idx01 = _mm256_setr_epi8(0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 12, /* g = 0 */
                                           3, 3, 3, 3, 3, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 12 /* g = 1 */);
    const __m256i idx23 = _mm256_setr_epi8(6, 6, 6, 6, 6, 7, 7, 7, 7, 7, 8, 8, 8, 8, 8, 12, /* g = 2 */
                                           9, 9, 9, 9, 9, 10, 10, 10, 10, 10, 11, 11, 11, 11, 11, 12 /* g = 3 */);
    /* multipliers of the even bytes (low byte of each 16-bit lane), then of
     * the odd bytes: r = 0..14 cycle through 81, 27, 9, 3, 1; r = 15 is 3^(4-g) */
    const __m256i mul_e = _mm256_setr_epi16(81, 9, 1, 27, 3, 81, 9, 1, 81, 9, 1, 27, 3, 81, 9, 1);
    const __m256i mul01o = _mm256_setr_epi16(27, 3, 81, 9, 1, 27, 3, 81, 27, 3, 81, 9, 1, 27, 3, 27);
    const __m256i mul23o = _mm256_setr_epi16(27, 3, 81, 9, 1, 27, 3, 9, 27, 3, 81, 9, 1, 27, 3, 3);
    const __m256i lo8 = _mm256_set1_epi16(0x00ff), hi8 = _mm256_set1_epi16((short)0xff00);
    const __m256i x = _mm256_broadcastsi128_si256(_mm_xor_si128(x16, _mm_set1_epi8((char)0x80)));
    const __m256i v01 = _mm256_shuffle_epi8(x, idx01), v23 = _mm256_shuffle_epi8(x, idx23);
    /* (byte ^ 0x80) * multiplier mod 256: even bytes from the low byte of a 16-bit
     * product, odd bytes from the product of the high byte alone */
    const __m256i m01 = _mm256_or_si256(_mm256_and_si256(_mm256_mullo_epi16(v01, mul_e), lo8),
                                        _mm256_mullo_epi16(_mm256_and_si256(v01, hi8), mul01o));
    const __m256i m23 = _mm256_or_si256(_mm256_and_si256(_mm256_mullo_epi16(v23, mul_e), lo8),
                                        _mm256_mullo_epi16(_mm256_and_si256(v23, hi8), mul23o));
    *c01 = trit_from_mx(m01);
    *c23 = trit_from_mx(m23);
}

/* Shared IQ*_BN tile: ROW_SCALE(row) reads d_row, DECODE sets c01[r], c23[r]
 * for block b of row r. */
#define BN_TILE_BODY(ROW_SCALE, DECODE)                                                                      \
    const int64_t nb = n / 64;                                                                              \
    const __m256i ones = _mm256_set1_epi16(1);                                                              \
    __m256i acc32[TILE_MAX_R][TILE_MAX_T];                                                                  \
    FOR_R FOR_T acc32[r][t] = _mm256_setzero_si256();                                                       \
    for (int64_t b0 = 0; b0 < nb; b0 += 16) {                                                               \
        const int64_t end = b0 + 16 < nb ? b0 + 16 : nb;                                                    \
        __m256i acc[TILE_MAX_R][TILE_MAX_T];                                                                \
        FOR_R FOR_T acc[r][t] = _mm256_setzero_si256();                                                     \
        for (int64_t b = b0; b < end; b++) {                                                                \
            __m256i c01[TILE_MAX_R], c23[TILE_MAX_R];                                                       \
            if ((b & 3) == 0) PREFETCH_ROWS(w + 2 + 13 * b);                                                \
            FOR_R { DECODE; }                                                                               \
            FOR_T {                                                                                         \
                const __m256i qa = load256(q + (size_t)t * qst + 64 * b);                                   \
                const __m256i qb = load256(q + (size_t)t * qst + 64 * b + 32);                              \
                FOR_R acc[r][t] = _mm256_add_epi16(                                                         \
                    acc[r][t], _mm256_add_epi16(_mm256_maddubs_epi16(c01[r], qa), _mm256_maddubs_epi16(c23[r], qb))); \
            }                                                                                               \
        }                                                                                                   \
        FOR_R FOR_T acc32[r][t] = _mm256_add_epi32(acc32[r][t], _mm256_madd_epi16(acc[r][t], ones));        \
    }                                                                                                       \
    FOR_R {                                                                                                 \
        const float d_row = ROW_SCALE(w + (size_t)r * wrb);                                                 \
        FOR_T y[t * ys + r] =                                                                               \
            bn_finish(acc32[r][t], (const bn_act_q8_k64 *)(const void *)(act + (size_t)t * arb), d_row);   \
    }

/* IQ2_BN is read two blocks (32 bytes) per unit: field k of the unit holds
 * positions 16k + j of both blocks, which copy_q8_k64_pairs lays out next to
 * each other. A last odd block is a unit with a zero upper half. The group of
 * a product is j / 4 in either half, so the lanes keep their groups. */
BN_AI void iq2bn_tile(const int NR, const int NT, int64_t n, const uint8_t *w, size_t wrb, const uint8_t *act,
                      size_t arb, const int8_t *q, size_t qst, float *y, int64_t ys) {
    const int64_t nb = n / 64, nu = (nb + 1) / 2;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i acc32[TILE_MAX_R][TILE_MAX_T], acc1[TILE_MAX_R][TILE_MAX_T], acc4[TILE_MAX_R][TILE_MAX_T];
    ZERO_ACC(acc32);
    /* int16 sums of up to 8 plain units (at most 8 * 4 * 3 * 128 * 2 = 24576)
     * or 4 scaled ones */
    const int64_t flush = SCALED(NT) ? 4 : 8;
    for (int64_t u0 = 0; u0 < nu; u0 += flush) {
        const int64_t end = u0 + flush < nu ? u0 + flush : nu;
        ZERO_ACC(acc1);
        ZERO_ACC(acc4);
        for (int64_t u = u0; u < end; u++) {
            __m256i x[TILE_MAX_R];
            PREFETCH_ROWS(w + 4 + 32 * u);
            if (2 * u + 1 < nb) {
                FOR_R x[r] = loadu256(w + (size_t)r * wrb + 4 + 32 * u);
            } else {
                FOR_R x[r] = _mm256_inserti128_si256(_mm256_setzero_si256(), loadu128(w + (size_t)r * wrb + 4 + 32 * u), 0);
            }
            unit_step(NR, NT, 0, x, q + 128 * u, qst, acc1, acc4);
        }
        FOR_R FOR_T acc32[r][t] = _mm256_add_epi32(
            acc32[r][t], _mm256_madd_epi16(SCALED(NT) ? unscale(acc1[r][t], acc4[r][t]) : acc1[r][t], ones));
    }
    FOR_R {
        const float d_row = rd_f32(w + (size_t)r * wrb);
        FOR_T y[t * ys + r] = bn_finish(acc32[r][t], (const bn_act_q8_k64 *)(const void *)(act + (size_t)t * arb), d_row);
    }
}

/* 16 bytes from an IQ1_BN block; the last block of a row is copied out so
 * the load stays inside the row. */
BN_AI __m128i iq1bn_load(const uint8_t *blk, int last) {
    if (!last) return loadu128(blk);
    uint8_t tmp[16] = {0};
    memcpy(tmp, blk, 13);
    return loadu128(tmp);
}

BN_AI void iq1bn_tile(const int NR, const int NT, int64_t n, const uint8_t *w, size_t wrb, const uint8_t *act,
                      size_t arb, const int8_t *q, size_t qst, float *y, int64_t ys) {
    BN_TILE_BODY(rd_f16,
                 iq1bn_decode(iq1bn_load(w + (size_t)r * wrb + 2 + 13 * b, b == nb - 1), &c01[r], &c23[r]))
}

/* ---- instantiation ------------------------------------------------------------- */

#ifndef TQ1_DR
#define TQ1_DR 2
#endif
#ifndef IQ1BN_DR
#define IQ1BN_DR 2
#endif
#ifndef I2S_DR
#define I2S_DR 2
#endif
#ifndef TQ2_DR
#define TQ2_DR 2
#endif
#ifndef IQ2BN_DR
#define IQ2BN_DR 2
#endif
DEF_TILES(i2s, I2S_DR, 1, 4, copy_i8_row, bn_i2_s_vec_dot)
DEF_TILES(tq2, TQ2_DR, 1, 4, copy_q8_k, bn_tq2_0_vec_dot)
DEF_TILES(tq1, TQ1_DR, 1, 4, copy_q8_k, bn_tq1_0_vec_dot)
DEF_TILES(iq2bn, IQ2BN_DR, 1, 4, copy_q8_k64_pairs, bn_iq2_bn_vec_dot)
DEF_TILES(iq1bn, IQ1BN_DR, 1, 4, copy_q8_k64, bn_iq1_bn_vec_dot)

/* For the AVX-512 set's TQ2_0 decode (kernels_avx512.c). */
void bn_avx2_tq2_0_mul_mat(int64_t n, const uint8_t *w, size_t wrb, int64_t n_rows, const uint8_t *act, size_t arb,
                           int64_t n_tok, float *y, int64_t ys) {
    tq2_mul_mat(n, w, wrb, n_rows, act, arb, n_tok, y, ys);
}

BN_TARGET_END

void bn_kernels_fill_avx2_ternary(bn_kernels *k) {
    k->mul_mat[BN_TYPE_I2_S] = i2s_mul_mat;
    k->mul_mat[BN_TYPE_TQ2_0] = tq2_mul_mat;
    k->mul_mat[BN_TYPE_TQ1_0] = tq1_mul_mat;
    k->mul_mat[BN_TYPE_IQ2_BN] = iq2bn_mul_mat;
    k->mul_mat[BN_TYPE_IQ1_BN] = iq1bn_mul_mat;
}

#else

void bn_kernels_fill_avx2_ternary(bn_kernels *k) { (void)k; }

#endif
