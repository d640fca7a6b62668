/* Tests for the tensor type table (core_c/tensor_types.h): decoders, dot
 * products and activation quantizers of every weight type.
 *
 *   1. Consistency: for random valid rows of every type and random
 *      activations, vec_dot equals a double-precision dot of to_float(row)
 *      with the dequantized activation row (dequantizers for our activation
 *      layouts are written here, from act_quant.h's description).
 *   2. Known answers: rows built by hand from the format descriptions in
 *      docs/formats.md (encoders written here, independent of the decoders),
 *      exact dot products with exactly representable activations, the I2_S
 *      tail scale, sizes, and fp16 / bf16 conversions (exhaustive round trip,
 *      subnormals, ties, overflow, nan).
 *   3. Activation quantizer edge cases: all-zero rows, a Q8_K block whose
 *      largest value is negative, ties in rounding and in the max, group
 *      layout of Q8_K64, the I8_ROW scale and sum.
 *
 * Build: gcc -std=c11 -O2 -Icore_c -Ibindings_c/include core_c/tensor_types.c
 *        core_c/fp16.c core_c/types_*.c core_c/act_quant.c
 *        tests/c/test_quants.c -lm
 * Prints one line per check and "N passed, N failed"; exit status 0 when
 * everything passed. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "act_quant.h"
#include "tensor_types.h"

/* ---- reporting ---------------------------------------------------------- */

typedef struct tally {
    int passed, failed;
} tally;

static void check(tally *t, int ok, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("%s ", ok ? "ok  " : "FAIL");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    if (ok)
        t->passed++;
    else
        t->failed++;
}

/* ---- random numbers (splitmix64) --------------------------------------- */

typedef struct rng {
    uint64_t s;
} rng;

static uint64_t rnext(rng *r) {
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static uint32_t rint_below(rng *r, uint32_t n) { return (uint32_t)(rnext(r) % n); }
static float runif(rng *r, float lo, float hi) {
    return lo + (hi - lo) * (float)((rnext(r) >> 40) * (1.0 / 16777216.0));
}
static float rnormal(rng *r) { /* sum of uniforms: good enough, bounded */
    float s = 0;
    for (int i = 0; i < 4; i++)
        s += runif(r, -1.0f, 1.0f);
    return s;
}
static uint8_t rbyte(rng *r) { return (uint8_t)rnext(r); }

static void put_f16(uint8_t *p, float f) {
    const uint16_t h = bn_fp32_to_fp16(f);
    memcpy(p, &h, 2);
}
static void put_f32(uint8_t *p, float f) { memcpy(p, &f, 4); }

/* ---- activation dequantizers (our layouts, act_quant.h) ----------------- */

static void act_dequant(bn_act_kind k, const void *a, float *x, int64_t n) {
    switch (k) {
    case BN_ACT_F32:
        memcpy(x, a, (size_t)n * 4);
        break;
    case BN_ACT_Q8_0: {
        const bn_act_q8_0 *b = a;
        for (int64_t i = 0; i < n; i++)
            x[i] = bn_fp16_to_fp32(b[i / 32].d) * b[i / 32].qs[i % 32];
        break;
    }
    case BN_ACT_Q8_K: {
        const bn_act_q8_k *b = a;
        for (int64_t i = 0; i < n; i++)
            x[i] = b[i / 256].d * b[i / 256].qs[i % 256];
        break;
    }
    case BN_ACT_Q8_K64: {
        const bn_act_q8_k64 *h = a;
        const int8_t *q = bn_q8_k64_qs(h);
        for (int64_t i = 0; i < n; i++)
            x[i] = h->d[(i % 16) / 4] * q[i];
        break;
    }
    case BN_ACT_I8_ROW: {
        const bn_act_i8_row *h = a;
        const int8_t *q = bn_i8_row_qs(h);
        for (int64_t i = 0; i < n; i++)
            x[i] = (float)((double)q[i] / h->scale);
        break;
    }
    default:
        break;
    }
}

/* ---- encoders from docs/formats.md (independent of the decoders) -------- */

/* 5 trits q[0..4] -> byte, trit s weighted 3^(4-s) (TQ1_0 convention). */
static uint8_t enc5_msd_first(const int *q, int count) {
    int v = 0;
    for (int s = 0; s < 5; s++)
        v = 3 * v + (s < count ? q[s] : 0);
    return (uint8_t)((256 * v + 242) / 243);
}
/* trits weighted 3^j (IQ1_BN convention) */
static uint8_t enc_lsd_first(const int *q, int count) {
    int v = 0, p = 1;
    for (int j = 0; j < count; j++, p *= 3)
        v += p * q[j];
    return (uint8_t)((256 * v + 242) / 243);
}

/* Fill `row` with a row of type t and n weights whose ternary codes (0..2)
 * are codes[], with block scale d; for non-ternary types codes is unused and
 * the row is random. */
static void enc_tq2_0(uint8_t *blk, const int *c, float d) {
    memset(blk, 0, 66);
    for (int p = 0; p < 256; p++) {
        const int h = p / 128, s = (p % 128) / 32, j = p % 32;
        blk[32 * h + j] |= (uint8_t)(c[p] << (2 * s));
    }
    put_f16(blk + 64, d);
}
static void enc_tq1_0(uint8_t *blk, const int *c, float d) {
    int q[5];
    for (int j = 0; j < 32; j++) { /* weights j + 32s */
        for (int s = 0; s < 5; s++)
            q[s] = c[j + 32 * s];
        blk[j] = enc5_msd_first(q, 5);
    }
    for (int j = 0; j < 16; j++) { /* weights 160 + j + 16s */
        for (int s = 0; s < 5; s++)
            q[s] = c[160 + j + 16 * s];
        blk[32 + j] = enc5_msd_first(q, 5);
    }
    for (int j = 0; j < 4; j++) { /* weights 240 + j + 4s */
        for (int s = 0; s < 4; s++)
            q[s] = c[240 + j + 4 * s];
        blk[48 + j] = enc5_msd_first(q, 4);
    }
    put_f16(blk + 52, d);
}
static void enc_iq1_bn_block(uint8_t *blk, const int *c) {
    int q[5];
    for (int g = 0; g < 4; g++)
        for (int k = 0; k < 3; k++) {
            for (int j = 0; j < 5; j++)
                q[j] = c[16 * g + 5 * k + j];
            blk[3 * g + k] = enc_lsd_first(q, 5);
        }
    for (int g = 0; g < 4; g++)
        q[g] = c[16 * g + 15];
    blk[12] = enc_lsd_first(q, 4);
}
static void enc_iq2_bn_block(uint8_t *blk, const int *c) {
    for (int j = 0; j < 16; j++)
        blk[j] = (uint8_t)(c[j] | c[j + 16] << 2 | c[j + 32] << 4 | c[j + 48] << 6);
}
static void enc_i2_s_block(uint8_t *blk, const int *c) {
    memset(blk, 0, 32);
    for (int j = 0; j < 128; j++)
        blk[j % 32] |= (uint8_t)(c[j] << (6 - 2 * (j / 32)));
}

/* Make a random valid row. For ternary types, expect[] receives the weights
 * the encoder put in (NULL: don't care). Returns row bytes. */
static size_t make_row(const bn_type_traits *t, int64_t n, uint8_t *row, float *expect, rng *r) {
    const size_t bytes = bn_type_row_bytes(t, n);
    int c[256];
    switch (t->type) {
    case BN_TYPE_F32:
        for (int64_t i = 0; i < n; i++)
            put_f32(row + 4 * i, rnormal(r));
        break;
    case BN_TYPE_F16:
        for (int64_t i = 0; i < n; i++)
            put_f16(row + 2 * i, rnormal(r));
        break;
    case BN_TYPE_BF16:
        for (int64_t i = 0; i < n; i++) {
            const float f = rnormal(r);
            uint32_t u;
            memcpy(&u, &f, 4);
            const uint16_t h = (uint16_t)(u >> 16);
            memcpy(row + 2 * i, &h, 2);
        }
        break;
    case BN_TYPE_Q8_0:
        for (int64_t b = 0; b < n / 32; b++) {
            put_f16(row + 34 * b, runif(r, 0.001f, 0.1f));
            for (int j = 0; j < 32; j++)
                row[34 * b + 2 + j] = (uint8_t)(int8_t)((int)rint_below(r, 255) - 127);
        }
        break;
    case BN_TYPE_Q4_K:
        for (int64_t b = 0; b < n / 256; b++) {
            uint8_t *p = row + 144 * b;
            for (int j = 0; j < 144; j++)
                p[j] = rbyte(r);
            put_f16(p, runif(r, 0.0005f, 0.01f));
            put_f16(p + 2, runif(r, 0.0001f, 0.005f));
        }
        break;
    case BN_TYPE_Q6_K:
        for (int64_t b = 0; b < n / 256; b++) {
            uint8_t *p = row + 210 * b;
            for (int j = 0; j < 208; j++)
                p[j] = rbyte(r);
            put_f16(p + 208, runif(r, 0.0005f, 0.01f));
        }
        break;
    case BN_TYPE_TQ1_0:
    case BN_TYPE_TQ2_0:
        for (int64_t b = 0; b < n / 256; b++) {
            const float d = bn_fp16_to_fp32(bn_fp32_to_fp16(runif(r, 0.01f, 2.0f)));
            for (int p = 0; p < 256; p++) {
                c[p] = (int)rint_below(r, 3);
                if (expect)
                    expect[256 * b + p] = (float)(c[p] - 1) * d;
            }
            if (t->type == BN_TYPE_TQ1_0)
                enc_tq1_0(row + 54 * b, c, d);
            else
                enc_tq2_0(row + 66 * b, c, d);
        }
        break;
    case BN_TYPE_IQ1_BN:
    case BN_TYPE_IQ2_BN: {
        const int is1 = t->type == BN_TYPE_IQ1_BN;
        float d = runif(r, 0.01f, 2.0f);
        if (is1) {
            d = bn_fp16_to_fp32(bn_fp32_to_fp16(d));
            put_f16(row, d);
        } else {
            put_f32(row, d);
        }
        for (int64_t b = 0; b < n / 64; b++) {
            for (int i = 0; i < 64; i++) {
                c[i] = (int)rint_below(r, 3);
                if (expect)
                    expect[64 * b + i] = (float)(c[i] - 1) * d;
            }
            if (is1)
                enc_iq1_bn_block(row + 2 + 13 * b, c);
            else
                enc_iq2_bn_block(row + 4 + 16 * b, c);
        }
        break;
    }
    case BN_TYPE_I2_S:
        for (int64_t b = 0; b < n / 128; b++) {
            for (int j = 0; j < 128; j++) {
                c[j] = (int)rint_below(r, 3);
                if (expect)
                    expect[128 * b + j] = (float)(c[j] - 1);
            }
            enc_i2_s_block(row + 32 * b, c);
        }
        break;
    default:
        break;
    }
    return bytes;
}

static void make_acts(float *x, int64_t n, rng *r, int style) {
    for (int64_t i = 0; i < n; i++)
        x[i] = rnormal(r);
    if (style == 1) /* a few outliers, as in real residual streams */
        for (int k = 0; k < 3; k++)
            x[rint_below(r, (uint32_t)n)] = runif(r, -40.0f, 40.0f);
    if (style == 2) /* tiny values */
        for (int64_t i = 0; i < n; i++)
            x[i] *= 1e-6f;
}

/* ---- 1. consistency of vec_dot with to_float and the act layout -------- */

static void test_consistency(tally *t) {
    static const uint32_t ids[] = {BN_TYPE_F32,   BN_TYPE_F16,   BN_TYPE_BF16,   BN_TYPE_Q8_0,
                                   BN_TYPE_Q4_K,  BN_TYPE_Q6_K,  BN_TYPE_TQ1_0,  BN_TYPE_TQ2_0,
                                   BN_TYPE_I2_S,  BN_TYPE_IQ1_BN, BN_TYPE_IQ2_BN};
    static const int64_t sizes[] = {64, 128, 192, 256, 768, 1024, 2560, 5120, 9216};
    rng r = {42};
    for (size_t ti = 0; ti < sizeof ids / sizeof ids[0]; ti++) {
        const bn_type_traits *tt = bn_type_get(ids[ti]);
        if (!tt) {
            check(t, 0, "type %u missing from table", ids[ti]);
            continue;
        }
        int cases = 0, bad = 0, dec_bad = 0;
        double worst = 0;
        for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
            int64_t n = sizes[si];
            if (tt->act == BN_ACT_F32 && si == 0)
                n = 1003; /* not a multiple of 8: the lane tail */
            if (bn_type_row_bytes(tt, n) == 0 || bn_act_row_bytes(tt->act, n) == 0)
                continue;
            uint8_t *row = malloc(bn_type_row_bytes(tt, n));
            float *w = malloc((size_t)n * 4), *expect = malloc((size_t)n * 4);
            float *x = malloc((size_t)n * 4), *xd = malloc((size_t)n * 4);
            void *a = malloc(bn_act_row_bytes(tt->act, n));
            for (int style = 0; style < 3; style++) {
                for (int64_t i = 0; i < n; i++)
                    expect[i] = NAN;
                make_row(tt, n, row, expect, &r);
                tt->to_float(row, w, n);
                for (int64_t i = 0; i < n; i++)
                    if (expect[i] == expect[i] && expect[i] != w[i])
                        dec_bad++;
                make_acts(x, n, &r, style);
                bn_act_quantize_row(tt->act, x, a, n);
                act_dequant(tt->act, a, xd, n);
                double ref = 0, mag = 0;
                for (int64_t i = 0; i < n; i++) {
                    ref += (double)w[i] * xd[i];
                    mag += fabs((double)w[i] * xd[i]);
                }
                const double got = tt->vec_dot(n, row, a);
                const double err = fabs(got - ref) / (mag > 0 ? mag : 1);
                if (err > worst)
                    worst = err;
                if (!(err <= 2e-6))
                    bad++;
                cases++;
            }
            free(row), free(w), free(expect), free(x), free(xd), free(a);
        }
        check(t, bad == 0 && cases > 0,
              "%-6s vec_dot == double dot(to_float, dequantized acts): %d cases, worst |err|/sum|w*x| %.2e",
              tt->name, cases, worst);
        if (tt->type == BN_TYPE_TQ1_0 || tt->type == BN_TYPE_TQ2_0 || tt->type == BN_TYPE_I2_S ||
            tt->type == BN_TYPE_IQ1_BN || tt->type == BN_TYPE_IQ2_BN)
            check(t, dec_bad == 0, "%-6s to_float reproduces the weights encoded per formats.md (%d wrong)",
                  tt->name, dec_bad);
    }
}

/* ---- 2. known answers ---------------------------------------------------- */

/* Integer activations with |x| <= 127 and one element at +-127 quantize
 * exactly in every integer format (scale 1 or -1), so dots are exact. */
static void exact_acts(float *x, int64_t n, rng *r) {
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)((int)rint_below(r, 255) - 127);
    x[0] = 127.0f;
}

static void test_known_ternary(tally *t) {
    rng r = {7};
    float x[512], w[512];
    int c[256];

    /* TQ2_0: explicit weights, d = 0.5 */
    {
        const bn_type_traits *tt = bn_type_get(BN_TYPE_TQ2_0);
        uint8_t blk[2 * 66];
        double want = 0;
        exact_acts(x, 512, &r);
        for (int b = 0; b < 2; b++) {
            for (int p = 0; p < 256; p++)
                c[p] = (p * 5 + b + 1) % 3;
            enc_tq2_0(blk + 66 * b, c, 0.5f);
            for (int p = 0; p < 256; p++)
                want += (c[p] - 1) * 0.5 * x[256 * b + p];
        }
        /* spot bytes: weight 0 -> byte 0 bits 0-1, weight 32 -> byte 0 bits 2-3,
         * weight 128 -> byte 32 bits 0-1 */
        const int b0 = (blk[0] & 3) == (0 * 5 + 1) % 3 && ((blk[0] >> 2) & 3) == (32 * 5 + 1) % 3 &&
                       (blk[32] & 3) == (128 * 5 + 1) % 3;
        tt->to_float(blk, w, 512);
        int ok = b0;
        for (int p = 0; p < 512; p++)
            ok &= w[p] == (float)(((p % 256) * 5 + p / 256 + 1) % 3 - 1) * 0.5f;
        check(t, ok, "TQ2_0  hand-built block decodes (bit pairs 2s of byte 32h+j)");
        uint8_t a[2 * sizeof(bn_act_q8_k)];
        bn_act_quantize_row(BN_ACT_Q8_K, x, a, 512);
        const float got = tt->vec_dot(512, blk, a);
        check(t, got == (float)want, "TQ2_0  exact dot with integer acts: %.1f (want %.1f)", got, want);
    }
    /* TQ1_0: byte values from the base-3 formula */
    {
        const bn_type_traits *tt = bn_type_get(BN_TYPE_TQ1_0);
        uint8_t blk[54];
        for (int p = 0; p < 256; p++)
            c[p] = 2;
        enc_tq1_0(blk, c, 1.0f);
        check(t, blk[0] == 255 && blk[47] == 255, "TQ1_0  all +1 encodes to 0xff (242 -> 255)");
        for (int p = 0; p < 256; p++)
            c[p] = p == 0 ? 2 : 1; /* trit 0 of byte 0 = +1, rest 0 */
        enc_tq1_0(blk, c, 2.0f);
        tt->to_float(blk, w, 256);
        int ok = w[0] == 2.0f;
        for (int p = 1; p < 256; p++)
            ok &= w[p] == 0.0f;
        check(t, ok && blk[0] == (uint8_t)((256 * (2 * 81 + 1 * 27 + 1 * 9 + 1 * 3 + 1) + 242) / 243),
              "TQ1_0  hand-built block (first trit weighted 3^4) decodes");
        double want = 0;
        exact_acts(x, 256, &r);
        for (int p = 0; p < 256; p++) {
            c[p] = (p * 7 + 2) % 3;
            want += (c[p] - 1) * 0.25 * x[p];
        }
        enc_tq1_0(blk, c, 0.25f);
        uint8_t a[sizeof(bn_act_q8_k)];
        bn_act_quantize_row(BN_ACT_Q8_K, x, a, 256);
        const float got = tt->vec_dot(256, blk, a);
        check(t, got == (float)want, "TQ1_0  exact dot with integer acts: %.2f (want %.2f)", got, want);
    }
    /* IQ1_BN: formats.md byte formula, fp16 row scale */
    {
        const bn_type_traits *tt = bn_type_get(BN_TYPE_IQ1_BN);
        uint8_t row[2 + 13 * 8];
        put_f16(row, 1.5f);
        double want = 0;
        exact_acts(x, 512, &r);
        for (int b = 0; b < 8; b++) {
            for (int i = 0; i < 64; i++)
                c[i] = (i * i + b) % 3;
            enc_iq1_bn_block(row + 2 + 13 * b, c);
            for (int i = 0; i < 64; i++)
                want += (c[i] - 1) * 1.5 * x[64 * b + i];
        }
        tt->to_float(row, w, 512);
        int ok = 1;
        for (int p = 0; p < 512; p++)
            ok &= w[p] == (float)((((p % 64) * (p % 64) + p / 64) % 3) - 1) * 1.5f;
        const int q5[5] = {2, 0, 1, 0, 0}; /* idx = 2 + 9 = 11 -> ceil(2816/243) = 12 */
        check(t, ok && enc_lsd_first(q5, 5) == 12, "IQ1_BN hand-built row decodes (trit j weighted 3^j, extra byte)");
        uint8_t a[32 + 512];
        bn_act_quantize_row(BN_ACT_Q8_K64, x, a, 512);
        const float got = tt->vec_dot(512, row, a);
        /* acts here quantize with d_g = max_g/127, not exactly 1: compare loosely */
        act_dequant(BN_ACT_Q8_K64, a, x, 512);
        double want2 = 0;
        for (int p = 0; p < 512; p++)
            want2 += (double)w[p] * x[p];
        check(t, fabs(got - want2) <= 1e-5 * fabs(want2) + 1e-3, "IQ1_BN dot %.3f vs dequantized %.3f (exact acts %.1f)",
              got, want2, want);
    }
    /* IQ2_BN: one block, f32 row scale */
    {
        const bn_type_traits *tt = bn_type_get(BN_TYPE_IQ2_BN);
        uint8_t row[4 + 16];
        put_f32(row, 0.125f);
        for (int i = 0; i < 64; i++)
            c[i] = (i / 7) % 3;
        enc_iq2_bn_block(row + 4, c);
        tt->to_float(row, w, 64);
        int ok = (row[4] & 3) == c[0] && (row[4] >> 6) == c[48];
        for (int i = 0; i < 64; i++)
            ok &= w[i] == (float)(c[i] - 1) * 0.125f;
        check(t, ok, "IQ2_BN hand-built block decodes (byte j = q[j] | q[j+16]<<2 | ...)");
        /* group maxima 127 make every d_g = 1 exactly -> exact dot */
        for (int i = 0; i < 64; i++)
            x[i] = (float)((int)rint_below(&r, 255) - 127);
        for (int g = 0; g < 4; g++)
            x[4 * g] = 127.0f;
        uint8_t a[32 + 64];
        bn_act_quantize_row(BN_ACT_Q8_K64, x, a, 64);
        double want = 0;
        for (int i = 0; i < 64; i++)
            want += (c[i] - 1) * 0.125 * x[i];
        const float got = tt->vec_dot(64, row, a);
        check(t, got == (float)want, "IQ2_BN exact dot (odd block count) %.3f (want %.3f)", got, want);
    }
    /* I2_S: a 2 x 256 tensor with its tail scale */
    {
        const bn_type_traits *tt = bn_type_get(BN_TYPE_I2_S);
        uint8_t tensor[2 * 64 + 32];
        memset(tensor, 0xee, sizeof tensor);
        for (int row = 0; row < 2; row++)
            for (int b = 0; b < 2; b++) {
                for (int j = 0; j < 128; j++)
                    c[j] = (j + 2 * b + row) % 3;
                enc_i2_s_block(tensor + 64 * row + 32 * b, c);
            }
        put_f32(tensor + 512 / 4, 0.75f);
        check(t, bn_type_tensor_scale(tt, tensor, 512) == 0.75f, "I2_S   tensor scale read at byte n/4");
        check(t, ((tensor[0] >> 6) & 3) == 0 && ((tensor[0] >> 4) & 3) == 32 % 3 && (tensor[31] & 3) == 127 % 3,
              "I2_S   weight j at byte j%%32, bits 6-2*(j/32)");
        tt->to_float(tensor + 64, w, 256);
        int ok = 1;
        for (int p = 0; p < 256; p++)
            ok &= w[p] == (float)((p % 128 + 2 * (p / 128) + 1) % 3 - 1);
        check(t, ok, "I2_S   row 1 decodes to trits (scale left to the caller)");
        exact_acts(x, 256, &r);
        uint8_t a[8 + 256];
        bn_act_quantize_row(BN_ACT_I8_ROW, x, a, 256);
        double want = 0;
        for (int p = 0; p < 256; p++)
            want += (double)w[p] * x[p];
        const float got = tt->vec_dot(256, tensor + 64, a);
        check(t, got == (float)want && ((const bn_act_i8_row *)(void *)a)->scale == 1.0f,
              "I2_S   exact dot %.1f (want %.1f)", got, want);
        /* bitnet.cpp sums 32 blocks in int16 lanes: all +1 against 127 wraps */
        uint8_t *big = malloc(4096 / 4);
        float *xb = malloc(4096 * 4);
        void *ab = malloc(bn_act_row_bytes(BN_ACT_I8_ROW, 4096));
        for (int j = 0; j < 128; j++)
            c[j] = 2;
        for (int b = 0; b < 32; b++)
            enc_i2_s_block(big + 32 * b, c);
        for (int i = 0; i < 4096; i++)
            xb[i] = 127.0f;
        bn_act_quantize_row(BN_ACT_I8_ROW, xb, ab, 4096);
        /* each of 16 lanes: 256 * 2 * 127 = 65024 -> -512; (16*-512 - 4096*127) / 1 */
        const float wrapped = tt->vec_dot(4096, big, ab);
        check(t, wrapped == (float)(16 * -512 - 4096 * 127), "I2_S   int16 lane wrap reproduced: %.0f", wrapped);
        free(big), free(xb), free(ab);
    }
}

static void test_known_kquants(tally *t) {
    float w[256];
    /* Q8_0 */
    {
        uint8_t blk[34];
        put_f16(blk, 0.25f);
        for (int j = 0; j < 32; j++)
            blk[2 + j] = (uint8_t)(int8_t)(j - 16);
        bn_type_get(BN_TYPE_Q8_0)->to_float(blk, w, 32);
        int ok = 1;
        for (int j = 0; j < 32; j++)
            ok &= w[j] == (j - 16) * 0.25f;
        check(t, ok, "Q8_0   hand-built block decodes");
    }
    /* Q4_K: 6-bit scales and mins, including the split high bits of 4..7 */
    {
        static const uint8_t sc[8] = {63, 1, 17, 32, 45, 60, 33, 48};
        static const uint8_t mn[8] = {0, 5, 63, 12, 40, 21, 7, 59};
        uint8_t blk[144];
        put_f16(blk, 0.5f);
        put_f16(blk + 2, 0.25f);
        for (int j = 0; j < 4; j++) {
            blk[4 + j] = (uint8_t)(sc[j] | (sc[j + 4] >> 4) << 6);
            blk[8 + j] = (uint8_t)(mn[j] | (mn[j + 4] >> 4) << 6);
            blk[12 + j] = (uint8_t)((sc[j + 4] & 15) | (mn[j + 4] & 15) << 4);
        }
        for (int i = 0; i < 128; i++)
            blk[16 + i] = (uint8_t)(i * 37 + 11);
        bn_type_get(BN_TYPE_Q4_K)->to_float(blk, w, 256);
        int ok = 1;
        for (int p = 0; p < 256; p++) {
            const int s = p / 32, byte = blk[16 + 32 * (p / 64) + p % 32];
            const int q = (p % 64) < 32 ? byte & 15 : byte >> 4;
            ok &= w[p] == 0.5f * sc[s] * q - 0.25f * mn[s];
        }
        check(t, ok, "Q4_K   hand-built block decodes (scales/mins 0..7)");
    }
    /* Q6_K */
    {
        uint8_t blk[210];
        int q[256];
        memset(blk, 0, sizeof blk);
        for (int p = 0; p < 256; p++) {
            q[p] = (p * 29 + 3) % 64;
            const int h = p / 128, t4 = (p % 128) / 32, l = p % 32;
            blk[64 * h + 32 * (t4 % 2) + l] |= (uint8_t)((q[p] & 15) << (t4 < 2 ? 0 : 4));
            blk[128 + 32 * h + l] |= (uint8_t)((q[p] >> 4) << (2 * t4));
        }
        for (int g = 0; g < 16; g++)
            blk[192 + g] = (uint8_t)(int8_t)(g * 9 - 70);
        put_f16(blk + 208, 0.125f);
        bn_type_get(BN_TYPE_Q6_K)->to_float(blk, w, 256);
        int ok = 1;
        for (int p = 0; p < 256; p++)
            ok &= w[p] == 0.125f * (float)((p / 16) * 9 - 70) * (float)(q[p] - 32);
        check(t, ok, "Q6_K   hand-built block decodes");
    }
}

static void test_sizes(tally *t) {
    check(t, bn_type_get(2) == NULL && bn_type_get(37) == NULL && bn_type_get(134) != NULL,
          "bn_type_get: unknown ids give NULL");
    struct {
        uint32_t id;
        int64_t n;
        size_t want;
    } rows[] = {{BN_TYPE_F32, 10, 40},       {BN_TYPE_F16, 10, 20},       {BN_TYPE_BF16, 3, 6},
                {BN_TYPE_Q8_0, 64, 68},      {BN_TYPE_Q4_K, 512, 288},    {BN_TYPE_Q6_K, 256, 210},
                {BN_TYPE_TQ1_0, 2560, 540},  {BN_TYPE_TQ2_0, 256, 66},    {BN_TYPE_I2_S, 2560, 640},
                {BN_TYPE_IQ1_BN, 2560, 522}, {BN_TYPE_IQ2_BN, 2560, 644}, {BN_TYPE_TQ2_0, 100, 0},
                {BN_TYPE_I2_S, 64, 0},       {BN_TYPE_IQ1_BN, 96, 0},     {BN_TYPE_F32, 0, 0},
                {BN_TYPE_F32, -4, 0}};
    int ok = 1;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const size_t got = bn_type_row_bytes(bn_type_get(rows[i].id), rows[i].n);
        if (got != rows[i].want) {
            printf("     row_bytes(%u, %lld) = %zu, want %zu\n", rows[i].id, (long long)rows[i].n, got, rows[i].want);
            ok = 0;
        }
    }
    check(t, ok, "bn_type_row_bytes (incl. row meta, invalid lengths -> 0)");
    check(t, bn_type_row_bytes(bn_type_get(BN_TYPE_F32), (int64_t)1 << 61) == ((size_t)1 << 63) &&
                 bn_type_row_bytes(bn_type_get(BN_TYPE_F32), ((int64_t)1 << 62) - 4) == SIZE_MAX - 15 &&
                 bn_type_row_bytes(bn_type_get(BN_TYPE_F32), INT64_MAX - 7) == 0,
          "bn_type_row_bytes: exact up to 2^62, 0 when size_t overflows");
    check(t, bn_type_tensor_scale(bn_type_get(BN_TYPE_TQ2_0), "", 256) == 1.0f, "bn_type_tensor_scale: 1 for non-I2_S");
    ok = bn_act_row_bytes(BN_ACT_F32, 5) == 20 && bn_act_row_bytes(BN_ACT_Q8_0, 64) == 68 &&
         bn_act_row_bytes(BN_ACT_Q8_K, 512) == 584 && bn_act_row_bytes(BN_ACT_Q8_K64, 128) == 160 &&
         bn_act_row_bytes(BN_ACT_I8_ROW, 128) == 136 && bn_act_row_bytes(BN_ACT_I8_ROW, 5) == 16 &&
         bn_act_row_bytes(BN_ACT_Q8_K, 128) == 0 && bn_act_row_bytes(BN_ACT_Q8_K64, 100) == 0 &&
         bn_act_row_bytes(BN_ACT_Q8_0, 33) == 0 && bn_act_row_bytes(BN_ACT_COUNT, 64) == 0;
    check(t, ok, "bn_act_row_bytes per kind (bad lengths -> 0)");
    int types_ok = 1;
    static const uint32_t all[] = {0, 1, 8, 12, 14, 30, 34, 35, 36, 134, 135};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        const bn_type_traits *tt = bn_type_get(all[i]);
        types_ok &= tt && (uint32_t)tt->type == all[i] && tt->to_float && tt->vec_dot && tt->name;
    }
    check(t, types_ok, "every declared type id has a complete entry");
}

/* ---- fp16 / bf16 --------------------------------------------------------- */

static float f_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void test_fp16(tally *t) {
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        const float f = bn_fp16_to_fp32((uint16_t)h);
        const uint16_t back = bn_fp32_to_fp16(f);
        const int is_nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
        if (is_nan ? !(f != f) || back != (h | 0x200) : back != h)
            bad++;
    }
    check(t, bad == 0, "fp16 -> fp32 -> fp16 is the identity on all 65536 halves (nan made quiet), %d bad", bad);

    struct {
        float f;
        uint16_t h;
    } k[] = {{1.0f, 0x3c00},
             {-2.0f, 0xc000},
             {65504.0f, 0x7bff},
             {65519.996f, 0x7bff},
             {65520.0f, 0x7c00},
             {1e10f, 0x7c00},
             {-INFINITY, 0xfc00},
             {0x1p-14f, 0x0400},
             {0x1p-24f, 0x0001},
             {0x1p-25f, 0x0000},                /* tie -> even (0) */
             {0x1.000002p-25f, 0x0001},          /* just above the tie */
             {0x3p-25f, 0x0002},                 /* 1.5 units -> 2 */
             {0x5p-25f, 0x0002},                 /* 2.5 units -> 2 */
             {0x3ffp-24f, 0x03ff},               /* largest subnormal */
             {0x7ffp-25f, 0x0400},               /* rounds up into the normals */
             {-0.0f, 0x8000},
             {1.0f + 0x1p-11f, 0x3c00},          /* tie -> even */
             {1.0f + 0x3p-11f, 0x3c02},          /* tie -> even (up) */
             {1.0f + 0x1p-11f + 0x1p-20f, 0x3c01}};
    int ok = 1;
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        const uint16_t got = bn_fp32_to_fp16(k[i].f);
        if (got != k[i].h) {
            printf("     fp32_to_fp16(%a) = 0x%04x, want 0x%04x\n", (double)k[i].f, got, k[i].h);
            ok = 0;
        }
    }
    check(t, ok, "fp32 -> fp16 known values (ties to even, subnormals, overflow)");
    check(t, bn_fp16_to_fp32(0x0001) == 0x1p-24f && bn_fp16_to_fp32(0x03ff) == 0x3ffp-24f &&
             bn_fp16_to_fp32(0x8001) == -0x1p-24f && bn_fp16_to_fp32(0x7c00) == INFINITY &&
             bn_fp16_to_fp32(0x3555) == 0x1.554p-2f,
          "fp16 -> fp32 known values (subnormals, inf)");
    check(t, bn_fp32_to_fp16(NAN) >= 0x7e00 || (bn_fp32_to_fp16(NAN) & 0x7e00) == 0x7e00, "fp32 nan -> fp16 quiet nan");

    /* random floats: the result is a nearest half, ties to even */
    rng r = {99};
    bad = 0;
    for (int i = 0; i < 200000; i++) {
        const uint32_t u = (uint32_t)rnext(&r);
        const float f = f_from_bits((u & 0x80000000u) | (0x30000000u + (u & 0x17ffffffu)));
        const uint16_t h = bn_fp32_to_fp16(f);
        const double v = bn_fp16_to_fp32(h);
        if (fabs((double)f) >= 65520.0) {
            bad += (h & 0x7fff) != 0x7c00;
            continue;
        }
        const double err = fabs((double)f - v);
        for (int dlt = -1; dlt <= 1; dlt += 2) {
            const int m = (h & 0x7fff) + dlt;
            if (m < 0 || m > 0x7bff)
                continue;
            const double vn = bn_fp16_to_fp32((uint16_t)((h & 0x8000) | m));
            const double en = fabs((double)f - vn);
            if (en < err || (en == err && (h & 1)))
                bad++;
        }
    }
    check(t, bad == 0, "fp32 -> fp16 picks the nearest half (ties even) for 200000 random floats, %d bad", bad);
    check(t, bn_bf16_to_fp32(0x3f80) == 1.0f && bn_bf16_to_fp32(0xc0a0) == -5.0f && bn_bf16_to_fp32(0x0001) == 0x1p-133f,
          "bf16 -> fp32 known values");
}

/* ---- 3. activation quantizer edge cases --------------------------------- */

static void test_act_edges(tally *t) {
    float x[512];
    /* all-zero rows */
    memset(x, 0, sizeof x);
    {
        bn_act_q8_0 a[2];
        bn_act_quantize_row(BN_ACT_Q8_0, x, a, 64);
        int ok = a[0].d == 0 && a[1].d == 0;
        for (int j = 0; j < 32; j++)
            ok &= a[0].qs[j] == 0 && a[1].qs[j] == 0;
        check(t, ok, "Q8_0   all-zero row: d = 0, q = 0");
    }
    {
        bn_act_q8_k a[2];
        memset(a, 0x55, sizeof a);
        bn_act_quantize_row(BN_ACT_Q8_K, x, a, 512);
        int ok = a[0].d == 0 && a[1].d == 0;
        for (int j = 0; j < 256; j++)
            ok &= a[1].qs[j] == 0;
        for (int g = 0; g < 16; g++)
            ok &= a[1].bsums[g] == 0;
        check(t, ok, "Q8_K   all-zero row: d = 0, q = 0, bsums = 0");
        const bn_type_traits *tq = bn_type_get(BN_TYPE_TQ2_0);
        uint8_t blk[2 * 66];
        memset(blk, 0x9a, sizeof blk);
        put_f16(blk + 64, 1.0f);
        put_f16(blk + 130, 1.0f);
        check(t, tq->vec_dot(512, blk, a) == 0.0f, "Q8_K   all-zero row dots to 0");
    }
    {
        uint8_t buf[32 + 128];
        bn_act_quantize_row(BN_ACT_Q8_K64, x, buf, 128);
        const bn_act_q8_k64 *h = (const bn_act_q8_k64 *)(void *)buf;
        int ok = 1;
        for (int g = 0; g < 4; g++)
            ok &= h->d[g] == 0 && h->minus[g] == 0;
        for (int i = 0; i < 128; i++)
            ok &= bn_q8_k64_qs(h)[i] == 0;
        check(t, ok, "Q8_K64 all-zero row: d = 0, minus = 0, q = 0");
    }
    {
        uint8_t buf[8 + 128];
        bn_act_quantize_row(BN_ACT_I8_ROW, x, buf, 128);
        const bn_act_i8_row *h = (const bn_act_i8_row *)(void *)buf;
        int ok = h->sum == 0 && h->scale == (float)(127.0 / 0.00001);
        for (int i = 0; i < 128; i++)
            ok &= bn_i8_row_qs(h)[i] == 0;
        check(t, ok, "I8_ROW all-zero row: scale = 127/1e-5, q = 0, sum = 0");
    }

    /* Q8_K: sign-keeping max */
    {
        bn_act_q8_k a;
        for (int i = 0; i < 256; i++)
            x[i] = 0.01f * (float)(i % 50) - 0.2f;
        x[77] = -2.0f; /* largest magnitude, negative */
        bn_act_quantize_row(BN_ACT_Q8_K, x, &a, 256);
        int ok = a.qs[77] == -127 && a.d > 0 && a.d == 1.0f / (-127.0f / -2.0f);
        for (int i = 0; i < 256; i++)
            ok &= fabsf(a.d * a.qs[i] - x[i]) <= 0.5f * a.d * 1.0001f;
        check(t, ok, "Q8_K   negative max: q = -127 there, d = 1/(-127/max) > 0, |d*q - x| <= d/2");
        x[77] = 2.0f;
        bn_act_quantize_row(BN_ACT_Q8_K, x, &a, 256);
        check(t, a.qs[77] == -127 && a.d < 0, "Q8_K   positive max: q = -127 there, d < 0");
        for (int i = 0; i < 256; i++)
            x[i] = 0;
        x[3] = 3.0f;
        x[9] = -3.0f;
        bn_act_quantize_row(BN_ACT_Q8_K, x, &a, 256);
        check(t, a.qs[3] == -127 && a.qs[9] == 127 && a.d < 0, "Q8_K   tie in |max|: the first element sets the sign");
        x[0] = -127.0f; /* iscale = 1 exactly */
        x[3] = 2.5f, x[9] = 3.5f, x[10] = -2.5f, x[11] = -0.5f, x[12] = 126.5f;
        bn_act_quantize_row(BN_ACT_Q8_K, x, &a, 256);
        check(t, a.d == 1.0f && a.qs[3] == 2 && a.qs[9] == 4 && a.qs[10] == -2 && a.qs[11] == 0 && a.qs[12] == 126,
              "Q8_K   rounding ties go to even");
        int sums_ok = 1;
        for (int i = 0; i < 256; i++)
            x[i] = (float)((i * 37) % 255 - 127);
        bn_act_quantize_row(BN_ACT_Q8_K, x, &a, 256);
        for (int g = 0; g < 16; g++) {
            int s = 0;
            for (int j = 0; j < 16; j++)
                s += a.qs[16 * g + j];
            sums_ok &= a.bsums[g] == s;
        }
        check(t, sums_ok, "Q8_K   bsums are the sums of 16 consecutive q");
    }
    /* Q8_K64: groups by (i % 16) / 4 */
    {
        uint8_t buf[32 + 128];
        for (int i = 0; i < 128; i++)
            x[i] = (float)((i * 13) % 7) - 3.0f;
        for (int g = 0; g < 4; g++)
            x[16 * 3 + 4 * g + 1] = -127.0f * (float)(g + 1); /* group g max */
        x[2] = 2.5f;  /* group 0: d = 1 -> tie -> 2 */
        x[6] = 5.0f;  /* group 1: d = 2 -> 2.5 -> 2 */
        x[22] = 7.0f; /* group 1: 3.5 -> 4 */
        bn_act_quantize_row(BN_ACT_Q8_K64, x, buf, 128);
        const bn_act_q8_k64 *h = (const bn_act_q8_k64 *)(void *)buf;
        const int8_t *q = bn_q8_k64_qs(h);
        int ok = 1;
        int sum[4] = {0, 0, 0, 0};
        for (int g = 0; g < 4; g++)
            ok &= h->d[g] == (float)(g + 1);
        for (int i = 0; i < 128; i++)
            sum[(i % 16) / 4] += q[i];
        for (int g = 0; g < 4; g++)
            ok &= h->minus[g] == h->d[g] * (float)sum[g] && q[48 + 4 * g + 1] == -127;
        check(t, ok, "Q8_K64 group g = (i%%16)/4 has d = max|x|/127, minus = d*sum(q)");
        check(t, q[2] == 2 && q[6] == 2 && q[22] == 4, "Q8_K64 rounding ties go to even");
    }
    /* I8_ROW */
    {
        uint8_t buf[8 + 256];
        for (int i = 0; i < 256; i++)
            x[i] = 0.001f * (float)(i - 128);
        x[5] = -2.0f;
        bn_act_quantize_row(BN_ACT_I8_ROW, x, buf, 256);
        const bn_act_i8_row *h = (const bn_act_i8_row *)(void *)buf;
        const int8_t *q = bn_i8_row_qs(h);
        int s = 0;
        for (int i = 0; i < 256; i++)
            s += q[i];
        check(t, h->scale == 63.5f && q[5] == -127 && h->sum == s, "I8_ROW scale = 127/max|x|, q = -127 at the max, sum kept");
        for (int i = 0; i < 256; i++)
            x[i] = 0;
        x[0] = 127.0f;
        x[1] = 2.5f, x[2] = -3.5f, x[3] = 0.5f;
        bn_act_quantize_row(BN_ACT_I8_ROW, x, buf, 256);
        check(t, h->scale == 1.0f && q[1] == 2 && q[2] == -4 && q[3] == 0, "I8_ROW rounding ties go to even");
    }
    /* Q8_0 (AVX2 path: multiplier 127/amax, ties to even) */
    {
        bn_act_q8_0 a;
        for (int i = 0; i < 32; i++)
            x[i] = 0;
        x[0] = -127.0f;
        x[1] = 2.5f, x[2] = 3.5f, x[3] = -2.5f;
        bn_act_quantize_row(BN_ACT_Q8_0, x, &a, 32);
        check(t, bn_fp16_to_fp32(a.d) == 1.0f && a.qs[0] == -127 && a.qs[1] == 2 && a.qs[2] == 4 && a.qs[3] == -2,
              "Q8_0   d = fp16(amax/127), rounding ties go to even");
    }
}

int main(void) {
    tally t = {0, 0};
    test_sizes(&t);
    test_fp16(&t);
    test_known_ternary(&t);
    test_known_kquants(&t);
    test_act_edges(&t);
    test_consistency(&t);
    printf("%d passed, %d failed\n", t.passed, t.failed);
    return t.failed == 0 ? 0 : 1;
}
