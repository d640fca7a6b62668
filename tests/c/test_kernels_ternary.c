/* Tests for the ternary mul_mat kernels of every kernel variant (kernels.h):
 * for each variant this machine runs (bn_isa_supported), bn_kernels_init it
 * and compare mul_mat[type] for I2_S, TQ2_0, TQ1_0, IQ2_BN and IQ1_BN bit for
 * bit (memcmp of the float outputs, the untouched gaps of y included) with the
 * scalar reference set, on
 *   - random rows (2-bit types: random codes 0..2, plus one pass of arbitrary
 *     bytes; base-3 types: arbitrary bytes), random fp16 / f32 scales with
 *     negative and zero values,
 *   - random activation rows quantized by the scalar set's quantizer,
 *   - row lengths from one block to 8192 with odd block counts, 1..37 rows,
 *     1..17 tokens (and 37: more than one 32-token chunk of the kernels),
 *     weights at byte offsets 0..3, y_stride > n_rows,
 *   - I2_S rows whose int16 lanes wrap (all codes 2 with all activations
 *     +-127, n = 8192), where bitnet.cpp's wrap must be reproduced, and rows
 *     whose lanes would wrap only if summed over more than 32 blocks,
 *   - rows of all-extreme codes against activations of +-127 for every type
 *     (the largest int16 partial sums).
 * Weight buffers end exactly at the last row, so the sanitizer build catches
 * a kernel reading past it.
 *
 * Build: gcc -std=c11 -O2 -DBITNET_BUILD -Icore_c -Ibindings_c/include
 *        core_c/<every .c> tests/c/test_kernels_ternary.c -lm -pthread
 * Prints one line per check and "N passed, N failed"; exit status 0 when
 * everything passed. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "act_quant.h"
#include "kernels.h"
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

/* A random scale: mostly ordinary values of both signs, sometimes zero,
 * negative zero, tiny (fp16 subnormal) or large. */
static float rscale(rng *r) {
    switch (rint_below(r, 10)) {
    case 0:
        return 0.0f;
    case 1:
        return -0.0f;
    case 2:
        return runif(r, -1.0f, 1.0f) * 1e-6f;
    case 3:
        return runif(r, -3000.0f, 3000.0f);
    default:
        return runif(r, -2.0f, 2.0f);
    }
}

static void put_f16(uint8_t *p, float f) {
    const uint16_t h = bn_fp32_to_fp16(f);
    memcpy(p, &h, 2);
}
static void put_f32(uint8_t *p, float f) { memcpy(p, &f, 4); }

/* A byte of four 2-bit codes, each 0..2 (any byte when `any`). */
static uint8_t rcodes(rng *r, int any) {
    if (any)
        return (uint8_t)rnext(r);
    uint8_t b = 0;
    for (int k = 0; k < 4; k++)
        b |= (uint8_t)(rint_below(r, 3) << (2 * k));
    return b;
}

/* Fill n_rows rows of type `type` (n weights each) at w. */
static void make_rows(int type, int64_t n, int64_t n_rows, uint8_t *w, size_t row_bytes, int any, rng *r) {
    for (int64_t i = 0; i < n_rows; i++) {
        uint8_t *p = w + (size_t)i * row_bytes;
        switch (type) {
        case BN_TYPE_I2_S:
            for (size_t j = 0; j < row_bytes; j++)
                p[j] = rcodes(r, any);
            break;
        case BN_TYPE_TQ2_0:
            for (int64_t b = 0; b < n / 256; b++, p += 66) {
                for (int j = 0; j < 64; j++)
                    p[j] = rcodes(r, any);
                put_f16(p + 64, rscale(r));
            }
            break;
        case BN_TYPE_TQ1_0:
            for (int64_t b = 0; b < n / 256; b++, p += 54) {
                for (int j = 0; j < 52; j++)
                    p[j] = (uint8_t)rnext(r);
                put_f16(p + 52, rscale(r));
            }
            break;
        case BN_TYPE_IQ2_BN:
            put_f32(p, rscale(r));
            for (size_t j = 4; j < row_bytes; j++)
                p[j] = rcodes(r, any);
            break;
        case BN_TYPE_IQ1_BN:
            put_f16(p, rscale(r));
            for (size_t j = 2; j < row_bytes; j++)
                p[j] = (uint8_t)rnext(r);
            break;
        default:
            break;
        }
    }
}

/* n_tok random activation rows, quantized by the scalar set. */
static uint8_t *make_acts(const bn_kernels *ks, bn_act_kind act, int64_t n, int64_t n_tok, rng *r,
                          size_t *row_bytes) {
    *row_bytes = bn_act_row_bytes(act, n);
    uint8_t *a = malloc(*row_bytes * (size_t)n_tok);
    float *x = malloc((size_t)n * sizeof(float));
    if (!a || !x) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    for (int64_t t = 0; t < n_tok; t++) {
        const float mag = rint_below(r, 4) == 0 ? 100.0f : 1.0f;
        for (int64_t i = 0; i < n; i++) {
            x[i] = rnormal(r) * mag;
            if (rint_below(r, 64) == 0)
                x[i] *= 20.0f; /* outliers */
        }
        if (t % 5 == 3)
            memset(x, 0, (size_t)n * sizeof(float)); /* an all-zero row now and then */
        ks->quantize[act](x, a + (size_t)t * *row_bytes, n);
    }
    free(x);
    return a;
}

/* ---- the comparison ------------------------------------------------------ */

static const int k_types[] = {BN_TYPE_I2_S, BN_TYPE_TQ2_0, BN_TYPE_TQ1_0, BN_TYPE_IQ2_BN, BN_TYPE_IQ1_BN};

/* Run scalar and variant mul_mat on the same inputs; 1 when y matches. */
static int compare_mul_mat(const bn_kernels *ks, const bn_kernels *kv, int type, int64_t n, const uint8_t *w,
                           size_t wrb, int64_t n_rows, const uint8_t *act, size_t arb, int64_t n_tok,
                           int64_t y_stride, int64_t *first_bad) {
    const size_t ny = (size_t)(y_stride * (n_tok - 1) + n_rows);
    float *y0 = malloc(ny * sizeof(float)), *y1 = malloc(ny * sizeof(float));
    if (!y0 || !y1) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    memset(y0, 0x7b, ny * sizeof(float)); /* same sentinel in the gaps */
    memset(y1, 0x7b, ny * sizeof(float));
    ks->mul_mat[type](n, w, wrb, n_rows, act, arb, n_tok, y0, y_stride);
    kv->mul_mat[type](n, w, wrb, n_rows, act, arb, n_tok, y1, y_stride);
    int ok = memcmp(y0, y1, ny * sizeof(float)) == 0;
    *first_bad = -1;
    for (size_t i = 0; !ok && i < ny; i++)
        if (memcmp(&y0[i], &y1[i], sizeof(float))) {
            *first_bad = (int64_t)i;
            printf("     y[%zu]: scalar %.9g, variant %.9g\n", i, (double)y0[i], (double)y1[i]);
            break;
        }
    free(y0);
    free(y1);
    return ok;
}

typedef struct shape {
    int64_t n_rows, n_tok;
} shape;

static const shape k_shapes[] = {{1, 1}, {3, 1}, {4, 1}, {5, 1}, {37, 1}, {8, 2},  {2, 4},
                                 {7, 5}, {6, 3}, {5, 8}, {9, 4}, {1, 17}, {37, 17}, {3, 37}};

static void test_type(tally *tl, const bn_kernels *ks, const bn_kernels *kv, int type, rng *r) {
    const bn_type_traits *tt = bn_type_get((uint32_t)type);
    static const int64_t n_i2s[] = {128, 384, 4096 + 128, 6912, 8192};
    static const int64_t n_tq[] = {256, 768, 2560, 6912};
    static const int64_t n_bn[] = {64, 192, 576, 1088, 2560, 6912};
    const int64_t *ns;
    size_t nn;
    if (type == BN_TYPE_I2_S) {
        ns = n_i2s;
        nn = sizeof n_i2s / sizeof n_i2s[0];
    } else if (type == BN_TYPE_TQ2_0 || type == BN_TYPE_TQ1_0) {
        ns = n_tq;
        nn = sizeof n_tq / sizeof n_tq[0];
    } else {
        ns = n_bn;
        nn = sizeof n_bn / sizeof n_bn[0];
    }
    const int two_bit = type == BN_TYPE_I2_S || type == BN_TYPE_TQ2_0 || type == BN_TYPE_IQ2_BN;
    int combo = 0;
    for (size_t in = 0; in < nn; in++) {
        const int64_t n = ns[in];
        const size_t wrb = bn_type_row_bytes(tt, n);
        for (size_t is = 0; is < sizeof k_shapes / sizeof k_shapes[0]; is++, combo++) {
            const int64_t n_rows = k_shapes[is].n_rows, n_tok = k_shapes[is].n_tok;
            if (n >= 6912 && n_rows * n_tok > 64 && in + 1 != nn)
                continue; /* the largest shapes only at the longest row */
            const size_t off = (size_t)(combo % 4);
            const int64_t y_stride = n_rows + combo % 3;
            const int any = two_bit && combo % 5 == 4;
            uint8_t *buf = malloc(off + wrb * (size_t)n_rows);
            size_t arb;
            uint8_t *act = make_acts(ks, tt->act, n, n_tok, r, &arb);
            make_rows(type, n, n_rows, buf + off, wrb, any, r);
            int64_t bad;
            const int ok =
                compare_mul_mat(ks, kv, type, n, buf + off, wrb, n_rows, act, arb, n_tok, y_stride, &bad);
            check(tl, ok, "%-6s %-6s n=%-5lld rows=%-2lld tok=%-2lld off=%zu y_stride=%lld%s", kv->name, tt->name,
                  (long long)n, (long long)n_rows, (long long)n_tok, off, (long long)y_stride,
                  any ? " any-bytes" : "");
            free(act);
            free(buf);
        }
    }
}

/* I2_S and bitnet.cpp's int16 lanes: every code 2 (byte 0xAA), n = 8192
 * (two runs of 32 blocks), activations all equal to v except a first element
 * of 127 that sets the scale.
 *   v = +-127: a lane sums 2 * 127 * 256 = 65024 per run and wraps;
 *   v = +-39: a lane sums about 2 * 39 * 256 = 19968 per run and does not
 *   wrap, but two runs together would (a kernel that widens after more than
 *   32 blocks fails here). */
static void test_i2s_wrap(tally *tl, const bn_kernels *ks, const bn_kernels *kv) {
    const int64_t n = 8192;
    const bn_type_traits *tt = bn_type_get(BN_TYPE_I2_S);
    const size_t wrb = bn_type_row_bytes(tt, n);
    static const int values[] = {127, -127, 39, -39};
    for (size_t iv = 0; iv < sizeof values / sizeof values[0]; iv++) {
        const int v = values[iv];
        for (int64_t n_tok = 1; n_tok <= 5; n_tok += 4) {
            const int64_t n_rows = 5;
            const size_t off = (size_t)(n_tok % 4);
            uint8_t *buf = malloc(off + wrb * (size_t)n_rows);
            memset(buf + off, 0xAA, wrb * (size_t)n_rows);
            const size_t arb = bn_act_row_bytes(BN_ACT_I8_ROW, n);
            uint8_t *act = malloc(arb * (size_t)n_tok);
            float *x = malloc((size_t)n * sizeof(float));
            for (int64_t i = 0; i < n; i++)
                x[i] = (float)v;
            x[0] = 127.0f;
            for (int64_t t = 0; t < n_tok; t++)
                ks->quantize[BN_ACT_I8_ROW](x, act + (size_t)t * arb, n);
            const bn_act_i8_row *h = (const bn_act_i8_row *)(const void *)act;
            const int8_t *q = bn_i8_row_qs(h);
            int64_t bad;
            const int ok = compare_mul_mat(ks, kv, BN_TYPE_I2_S, n, buf + off, wrb, n_rows, act, arb, n_tok,
                                           n_rows + 1, &bad);
            /* the scalar value shows the wrap exactly when |v| = 127: without
             * it the sum is sum(2 q) - sum(q) */
            const float y_scalar = bn_i2_s_vec_dot(n, buf + off, act);
            const float unwrapped = ((float)(2 * h->sum) - (float)h->sum) / h->scale;
            const int wraps = v == 127 || v == -127;
            check(tl, ok && q[1] == v && (y_scalar != unwrapped) == wraps,
                  "%-6s I2_S   int16 lanes: codes 2, activations %+d, n=%lld rows=%lld tok=%lld (scalar %g, "
                  "%s)",
                  kv->name, v, (long long)n, (long long)n_rows, (long long)n_tok, (double)y_scalar,
                  wraps ? "wrapped" : "no wrap");
            free(x);
            free(act);
            free(buf);
        }
    }
}

/* Extreme rows for every type: all weight bytes 0xAA (2-bit types: every
 * code 2) or 0xFF (codes 3, which valid rows never hold), scales 1, against
 * activations all +1 or all -1 (quantized to +-127): the largest partial
 * sums a kernel's int16 stages can see. */
static void test_extremes(tally *tl, const bn_kernels *ks, const bn_kernels *kv) {
    const int64_t n = 8192;
    for (size_t it = 0; it < sizeof k_types / sizeof k_types[0]; it++) {
        const int type = k_types[it];
        const bn_type_traits *tt = bn_type_get((uint32_t)type);
        const size_t wrb = bn_type_row_bytes(tt, n);
        for (int pattern = 0; pattern < 2; pattern++) {
            for (int sign = 1; sign >= -1; sign -= 2) {
                const int64_t n_rows = 3, n_tok = sign > 0 ? 1 : 5;
                uint8_t *w = malloc(wrb * (size_t)n_rows);
                memset(w, pattern ? 0xFF : 0xAA, wrb * (size_t)n_rows);
                for (int64_t r = 0; r < n_rows; r++) { /* scales 1 */
                    uint8_t *p = w + (size_t)r * wrb;
                    if (type == BN_TYPE_TQ2_0 || type == BN_TYPE_TQ1_0) {
                        const size_t bb = tt->block_bytes;
                        for (int64_t b = 0; b < n / 256; b++)
                            put_f16(p + bb * (size_t)b + bb - 2, 1.0f);
                    } else if (type == BN_TYPE_IQ2_BN) {
                        put_f32(p, 1.0f);
                    } else if (type == BN_TYPE_IQ1_BN) {
                        put_f16(p, 1.0f);
                    }
                }
                const size_t arb = bn_act_row_bytes(tt->act, n);
                uint8_t *act = malloc(arb * (size_t)n_tok);
                float *x = malloc((size_t)n * sizeof(float));
                for (int64_t i = 0; i < n; i++)
                    x[i] = (float)sign;
                for (int64_t t = 0; t < n_tok; t++)
                    ks->quantize[tt->act](x, act + (size_t)t * arb, n);
                int64_t bad;
                const int ok = compare_mul_mat(ks, kv, type, n, w, wrb, n_rows, act, arb, n_tok, n_rows, &bad);
                check(tl, ok, "%-6s %-6s extreme: weight bytes 0x%s, activations all %+d, n=%lld tok=%lld", kv->name,
                      tt->name, pattern ? "FF" : "AA", sign, (long long)n, (long long)n_tok);
                free(x);
                free(act);
                free(w);
            }
        }
    }
}

int main(void) {
    tally tl = {0, 0};
    bn_kernels ks;
    bn_kernels_init(&ks, BN_ISA_SCALAR);
    int variants = 0;
    for (int isa = 0; isa < BN_ISA_COUNT; isa++) {
        if (!bn_isa_supported((bn_isa)isa)) {
            printf("skip %s (not supported here)\n", bn_isa_name((bn_isa)isa));
            continue;
        }
        variants++;
        bn_kernels kv;
        bn_kernels_init(&kv, (bn_isa)isa);
        rng r = {0x5eed0000u + (uint64_t)isa};
        for (size_t i = 0; i < sizeof k_types / sizeof k_types[0]; i++) {
            check(&tl, kv.mul_mat[k_types[i]] != NULL, "%-6s %s has a mul_mat (%s)", kv.name,
                  bn_type_get((uint32_t)k_types[i])->name,
                  kv.mul_mat[k_types[i]] == ks.mul_mat[k_types[i]] ? "the scalar one" : "its own");
            if (kv.mul_mat[k_types[i]])
                test_type(&tl, &ks, &kv, k_types[i], &r);
        }
        test_i2s_wrap(&tl, &ks, &kv);
        test_extremes(&tl, &ks, &kv);
    }
    printf("%d variants, %d passed, %d failed\n", variants, tl.passed, tl.failed);
    return tl.failed ? 1 : 0;
}
