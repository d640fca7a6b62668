/* Exactness of the float / k-quant kernel entries of every kernel variant
 * this machine can run (kernels.h: "every entry returns bit for bit what the
 * scalar reference returns"):
 *
 *   mul_mat[F32, F16, BF16]  n = 1 .. 8192 (n % 8 != 0 included), attention
 *                            shapes (n = 128, a KV-cache row stride, 4 query
 *                            heads as tokens, up to 4096 cached rows), rows
 *                            containing inf / nan / subnormal values;
 *   mul_mat[Q8_0, Q4_K, Q6_K] n from one block to 8192, random weight bytes,
 *                            activations from the scalar quantizer and raw
 *                            random activation bytes (q = -128, any bsums);
 *   every matrix shape with n_rows 1..37, n_tok 1..17, weights at byte
 *   offsets 0..3, row strides larger than a row, y_stride > n_rows (the gaps
 *   of y must stay untouched);
 *   axpy_f16 / axpy_f32, fp16_to_fp32 (all 65536 halves), fp32_to_fp16
 *   (every edge class: ties at every half, subnormals, overflow, inf, nan
 *   payloads, plus a random sample);
 *   quantize[Q8_0, Q8_K, Q8_K64, I8_ROW] on random rows and rows with zeros,
 *   ties, huge, tiny, negative-max, inf and nan values.
 *
 * A result matches when its bits are equal, or when both are NaN (which NaN
 * an x86 operation returns when both inputs are NaN depends on operand order
 * the C compiler picks, so NaN payloads of dot products are not part of the
 * contract; quantizer bytes and half conversions are compared bit for bit).
 *
 * Build (from the repository root):
 *   gcc -std=c11 -O2 -Wall -Wextra -D_POSIX_C_SOURCE=200809L -DBITNET_BUILD \
 *       -Icore_c -Ibindings_c/include -Ibindings_c/src core_c/\*.c \
 *       tests/c/test_kernels_float.c -lm -pthread -o test_kernels_float
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
static uint32_t rbelow(rng *r, uint32_t n) { return (uint32_t)(rnext(r) % n); }
static float runif(rng *r, float lo, float hi) {
    return lo + (hi - lo) * (float)((rnext(r) >> 40) * (1.0 / 16777216.0));
}
static float rnormal(rng *r) {
    float s = 0;
    for (int i = 0; i < 4; i++)
        s += runif(r, -1.0f, 1.0f);
    return s;
}

static float f_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static uint32_t bits_of(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static void put_f16(uint8_t *p, float f) {
    const uint16_t h = bn_fp32_to_fp16(f);
    memcpy(p, &h, 2);
}

/* equal bits, or both NaN */
static int same_f32(float a, float b) { return bits_of(a) == bits_of(b) || (a != a && b != b); }

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

/* ---- weight rows ----------------------------------------------------------- */

/* style 0: ordinary values; 1: extreme values (inf, nan, subnormal, huge)
 * sprinkled in (float types only). */
static void fill_float_row(int type, uint8_t *p, int64_t n, int style, rng *r) {
    for (int64_t i = 0; i < n; i++) {
        float f = rnormal(r) * ldexpf(1.0f, (int)rbelow(r, 9) - 4);
        if (style == 1 && rbelow(r, 16) == 0) {
            static const uint32_t specials[] = {0x7f800000u, 0xff800000u, 0x7fc00000u, 0x7f800001u, 0xffa00001u,
                                                0x00000001u, 0x80000010u, 0x33800000u, 0x387fc000u, 0x477fe000u,
                                                0x7f7fffffu, 0x80000000u, 0x00000000u, 0x38000000u};
            f = f_from_bits(specials[rbelow(r, sizeof specials / sizeof specials[0])]);
        }
        switch (type) {
        case BN_TYPE_F32:
            memcpy(p + 4 * i, &f, 4);
            break;
        case BN_TYPE_F16:
            if (style == 1 && rbelow(r, 16) == 0) { /* any half, nan payloads and subnormals included */
                const uint16_t h = (uint16_t)rnext(r);
                memcpy(p + 2 * i, &h, 2);
            } else {
                put_f16(p + 2 * i, f);
            }
            break;
        default: { /* BF16: upper half of the float bits */
            const uint16_t h = (uint16_t)(bits_of(f) >> 16);
            memcpy(p + 2 * i, &h, 2);
        }
        }
    }
}

static void fill_kquant_row(int type, uint8_t *p, int64_t n, rng *r) {
    const bn_type_traits *tt = bn_type_get((uint32_t)type);
    const size_t bytes = bn_type_row_bytes(tt, n);
    for (size_t i = 0; i < bytes; i++)
        p[i] = (uint8_t)rnext(r);
    for (int64_t b = 0; b < n / tt->block_size; b++) { /* finite scales */
        uint8_t *blk = p + (size_t)b * tt->block_bytes;
        const float d = runif(r, -2.0f, 2.0f) * ldexpf(1.0f, -(int)rbelow(r, 12));
        switch (type) {
        case BN_TYPE_Q8_0:
            put_f16(blk, d);
            break;
        case BN_TYPE_Q4_K:
            put_f16(blk, d);
            put_f16(blk + 2, runif(r, 0.0f, 1.0f) * ldexpf(1.0f, -(int)rbelow(r, 12)));
            break;
        case BN_TYPE_Q6_K:
            put_f16(blk + 208, d);
            break;
        }
    }
}

/* ---- activation rows --------------------------------------------------------- */

/* style 0: quantized (by the scalar quantizer) from random floats;
 * 1: raw random bytes with finite scales (int8 -128, bsums of any value). */
static void fill_act_row(bn_act_kind kind, const bn_kernels *ref, uint8_t *a, int64_t n, int style, rng *r,
                         float *scratch) {
    for (int64_t i = 0; i < n; i++)
        scratch[i] = rnormal(r) * ldexpf(1.0f, (int)rbelow(r, 7) - 3);
    if (kind == BN_ACT_F32 || style == 0) {
        ref->quantize[kind](scratch, a, n);
        return;
    }
    const size_t bytes = bn_act_row_bytes(kind, n);
    for (size_t i = 0; i < bytes; i++)
        a[i] = (uint8_t)rnext(r);
    if (kind == BN_ACT_Q8_0) {
        for (int64_t b = 0; b < n / 32; b++)
            ((bn_act_q8_0 *)(void *)a)[b].d = bn_fp32_to_fp16(runif(r, -1.0f, 1.0f));
    } else if (kind == BN_ACT_Q8_K) {
        for (int64_t b = 0; b < n / 256; b++)
            ((bn_act_q8_k *)(void *)a)[b].d = runif(r, -1.0f, 1.0f) * ldexpf(1.0f, -(int)rbelow(r, 10));
    }
}

/* ---- one mul_mat comparison ------------------------------------------------- */

typedef struct mm_case {
    int type;
    int64_t n, n_rows, n_tok;
    size_t w_extra;   /* bytes between rows beyond the row itself */
    int w_off;        /* weight base address offset, 0..3 */
    int64_t y_extra;  /* y_stride - n_rows */
    size_t act_extra; /* F32 activations only: bytes between token rows beyond n floats */
    int w_style, a_style;
} mm_case;

static int is_float_type(int type) { return type == BN_TYPE_F32 || type == BN_TYPE_F16 || type == BN_TYPE_BF16; }

/* Returns 1 when k's mul_mat equals ref's; describes the first mismatch in msg. */
static int run_mm(const bn_kernels *ref, const bn_kernels *k, const mm_case *c, rng *r, char *msg, size_t cap) {
    const bn_type_traits *tt = bn_type_get((uint32_t)c->type);
    const size_t row_bytes = bn_type_row_bytes(tt, c->n);
    const size_t wrb = row_bytes + c->w_extra;
    uint8_t *wbuf = xmalloc(wrb * (size_t)c->n_rows + 4);
    uint8_t *w = wbuf + c->w_off;
    memset(wbuf, 0xcd, wrb * (size_t)c->n_rows + 4);
    for (int64_t row = 0; row < c->n_rows; row++) {
        if (is_float_type(c->type))
            fill_float_row(c->type, w + (size_t)row * wrb, c->n, c->w_style, r);
        else
            fill_kquant_row(c->type, w + (size_t)row * wrb, c->n, r);
    }
    const size_t arb = bn_act_row_bytes(tt->act, c->n) + (tt->act == BN_ACT_F32 ? c->act_extra : 0);
    uint8_t *act = xmalloc(arb * (size_t)c->n_tok);
    memset(act, 0xab, arb * (size_t)c->n_tok);
    float *scratch = xmalloc((size_t)c->n * sizeof(float));
    for (int64_t t = 0; t < c->n_tok; t++)
        fill_act_row(tt->act, ref, act + (size_t)t * arb, c->n, c->a_style, r, scratch);
    const int64_t ys = c->n_rows + c->y_extra;
    const size_t ny = (size_t)(ys * c->n_tok);
    float *y0 = xmalloc(ny * sizeof(float)), *y1 = xmalloc(ny * sizeof(float));
    for (size_t i = 0; i < ny; i++)
        y0[i] = y1[i] = -12345.0f;
    ref->mul_mat[c->type](c->n, w, wrb, c->n_rows, act, arb, c->n_tok, y0, ys);
    k->mul_mat[c->type](c->n, w, wrb, c->n_rows, act, arb, c->n_tok, y1, ys);
    int ok = 1;
    for (size_t i = 0; i < ny && ok; i++)
        if (!same_f32(y0[i], y1[i])) {
            ok = 0;
            snprintf(msg, cap, "type %s n %lld rows %lld tok %lld: y[%zu] = %.9g (%08x), scalar %.9g (%08x)", tt->name,
                     (long long)c->n, (long long)c->n_rows, (long long)c->n_tok, i, (double)y1[i], bits_of(y1[i]),
                     (double)y0[i], bits_of(y0[i]));
        }
    free(wbuf);
    free(act);
    free(scratch);
    free(y0);
    free(y1);
    return ok;
}

/* Runs a batch of cases, one check line per batch. */
typedef struct batch {
    int cases, failed;
    char first[320];
} batch;

static void batch_run(batch *b, const bn_kernels *ref, const bn_kernels *k, const mm_case *c, rng *r) {
    char msg[320];
    b->cases++;
    if (!run_mm(ref, k, c, r, msg, sizeof msg)) {
        if (!b->failed)
            snprintf(b->first, sizeof b->first, "%s", msg);
        b->failed++;
    }
}

static void batch_report(tally *t, const batch *b, const char *isa, const char *what) {
    if (b->failed)
        check(t, 0, "%-6s %s: %d of %d cases differ; first: %s", isa, what, b->failed, b->cases, b->first);
    else
        check(t, 1, "%-6s %s: %d cases bit-exact", isa, what, b->cases);
}

/* ---- mul_mat tests ------------------------------------------------------------- */

static void test_float_types(tally *t, const bn_kernels *ref, const bn_kernels *k, rng *r) {
    static const int types[] = {BN_TYPE_F32, BN_TYPE_F16, BN_TYPE_BF16};
    static const int64_t ns[] = {1,  2,  3,  4,  5,   6,   7,   8,   9,   10,  11,   12,   13,   15,   16,   17,  23,
                                 24, 25, 31, 32, 33,  47,  63,  64,  65,  100, 127,  128,  129,  255,  256,  257, 1000,
                                 1001, 2560, 2567, 4095, 4096, 6912, 8191, 8192};
    for (size_t ti = 0; ti < 3; ti++) {
        const int type = types[ti];
        const char *name = bn_type_get((uint32_t)type)->name;
        char what[96];
        batch b = {0};
        /* every n with random shapes */
        for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
            const int64_t n = ns[ni];
            const int reps = n >= 4096 ? 2 : 4;
            for (int rep = 0; rep < reps; rep++) {
                mm_case c = {.type = type, .n = n, .n_rows = 1 + rbelow(r, n >= 4096 ? 12 : 37),
                             .n_tok = 1 + rbelow(r, n >= 4096 ? 6 : 17), .w_extra = rbelow(r, 3) * 2 * rbelow(r, 9),
                             .w_off = (int)rbelow(r, 4), .y_extra = rbelow(r, 4), .act_extra = 4 * rbelow(r, 3)};
                batch_run(&b, ref, k, &c, r);
            }
        }
        snprintf(what, sizeof what, "mul_mat %-4s n 1..8192, random rows/tokens/offsets", name);
        batch_report(t, &b, k->name, what);

        /* every n_rows x n_tok combination on short rows (tile edges) */
        memset(&b, 0, sizeof b);
        for (int64_t rows = 1; rows <= 37; rows++)
            for (int64_t tok = 1; tok <= 17; tok++) {
                mm_case c = {.type = type, .n = 20 + (rows + tok) % 9, .n_rows = rows, .n_tok = tok,
                             .w_extra = (size_t)(rows % 3) * 6, .w_off = (int)((rows + tok) % 4),
                             .y_extra = tok % 3, .act_extra = 0};
                batch_run(&b, ref, k, &c, r);
            }
        snprintf(what, sizeof what, "mul_mat %-4s n_rows 1..37 x n_tok 1..17", name);
        batch_report(t, &b, k->name, what);

        /* inf / nan / subnormal / huge values in the rows */
        memset(&b, 0, sizeof b);
        for (int rep = 0; rep < 40; rep++) {
            mm_case c = {.type = type, .n = 1 + rbelow(r, 300), .n_rows = 1 + rbelow(r, 20), .n_tok = 1 + rbelow(r, 6),
                         .w_off = (int)rbelow(r, 4), .y_extra = rbelow(r, 3), .w_style = 1};
            batch_run(&b, ref, k, &c, r);
        }
        snprintf(what, sizeof what, "mul_mat %-4s rows with inf/nan/subnormal/huge values", name);
        batch_report(t, &b, k->name, what);
    }

    /* attention: n = 128 key rows in a KV cache (row stride of 5 heads plus
     * padding), the 4 query heads of a group as tokens, 1..4096 cached rows */
    static const int64_t cached[] = {1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 31, 33, 100, 255, 1000, 4096};
    for (int ti = 0; ti < 2; ti++) {
        const int type = ti ? BN_TYPE_F32 : BN_TYPE_F16;
        const size_t esz = ti ? 4 : 2;
        batch b = {0};
        for (size_t ci = 0; ci < sizeof cached / sizeof cached[0]; ci++)
            for (int64_t tok = 1; tok <= 4; tok++) {
                mm_case c = {.type = type, .n = 128, .n_rows = cached[ci], .n_tok = tok, .w_extra = esz * 128 * 4 + 64,
                             .w_off = 0, .y_extra = 1 + (int64_t)ci % 5, .act_extra = 128 * 4 * (size_t)(ci % 2)};
                batch_run(&b, ref, k, &c, r);
            }
        char what[96];
        snprintf(what, sizeof what, "mul_mat %-4s attention shape (n 128, strided rows, 1..4 heads)", ti ? "F32" : "F16");
        batch_report(t, &b, k->name, what);
    }
}

static void test_kquant_types(tally *t, const bn_kernels *ref, const bn_kernels *k, rng *r) {
    static const int types[] = {BN_TYPE_Q8_0, BN_TYPE_Q4_K, BN_TYPE_Q6_K};
    for (size_t ti = 0; ti < 3; ti++) {
        const int type = types[ti];
        const bn_type_traits *tt = bn_type_get((uint32_t)type);
        const int64_t bs = tt->block_size;
        const int64_t ns[] = {bs, 2 * bs, 3 * bs, 2560, 6912, 8192};
        char what[96];
        for (int a_style = 0; a_style < 2; a_style++) {
            batch b = {0};
            for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
                const int64_t n = ns[ni];
                for (int rep = 0; rep < 4; rep++) {
                    mm_case c = {.type = type, .n = n, .n_rows = 1 + rbelow(r, n >= 4096 ? 9 : 37),
                                 .n_tok = 1 + rbelow(r, n >= 4096 ? 5 : 17), .w_extra = rbelow(r, 2) * rbelow(r, 40),
                                 .w_off = (int)rbelow(r, 4), .y_extra = rbelow(r, 4), .a_style = a_style};
                    if (rep == 0)
                        c.n_tok = 1; /* decode */
                    if (rep == 1 && n < 4096)
                        c.n_tok = 17; /* more than one token tile */
                    batch_run(&b, ref, k, &c, r);
                }
            }
            snprintf(what, sizeof what, "mul_mat %-4s n %lld..8192, %s activations", tt->name, (long long)bs,
                     a_style ? "raw random" : "quantized");
            batch_report(t, &b, k->name, what);
        }
        batch b = {0};
        for (int64_t rows = 1; rows <= 37; rows++)
            for (int64_t tok = 1; tok <= 17; tok += (rows % 2 ? 1 : 4)) {
                mm_case c = {.type = type, .n = bs * (1 + (rows + tok) % 2), .n_rows = rows, .n_tok = tok,
                             .w_extra = (size_t)(rows % 3) * 5, .w_off = (int)((rows * 7 + tok) % 4),
                             .y_extra = tok % 3, .a_style = (int)(tok % 2)};
                batch_run(&b, ref, k, &c, r);
            }
        snprintf(what, sizeof what, "mul_mat %-4s n_rows 1..37 x n_tok 1..17", tt->name);
        batch_report(t, &b, k->name, what);
    }
}

/* ---- axpy and half conversions ----------------------------------------------- */

static void test_axpy(tally *t, const bn_kernels *ref, const bn_kernels *k, rng *r) {
    static const int64_t ns[] = {0, 1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 31, 64, 100, 127, 128, 129, 1000, 4096};
    int ok16 = 1, ok32 = 1;
    float x32[4096], y0[4096], y1[4096];
    uint16_t x16[4096];
    for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++)
        for (int rep = 0; rep < 6; rep++) {
            const int64_t n = ns[ni];
            float a = rnormal(r);
            if (rep == 1)
                a = 0.0f;
            if (rep == 2)
                a = -0.0f;
            if (rep == 3)
                a = 3e38f;
            for (int64_t i = 0; i < n; i++) {
                x32[i] = rnormal(r) * ldexpf(1.0f, (int)rbelow(r, 20) - 10);
                x16[i] = rep == 4 ? (uint16_t)rnext(r) : bn_fp32_to_fp16(x32[i]); /* rep 4: every half, nan incl. */
                y0[i] = y1[i] = rep == 5 && i % 7 == 0 ? f_from_bits(0x7f800000u) : rnormal(r);
            }
            ref->axpy_f16(n, a, x16, y0);
            k->axpy_f16(n, a, x16, y1);
            for (int64_t i = 0; i < n; i++)
                ok16 &= same_f32(y0[i], y1[i]);
            for (int64_t i = 0; i < n; i++)
                y0[i] = y1[i] = rnormal(r);
            ref->axpy_f32(n, a, x32, y0);
            k->axpy_f32(n, a, x32, y1);
            for (int64_t i = 0; i < n; i++)
                ok32 &= same_f32(y0[i], y1[i]);
        }
    check(t, ok16, "%-6s axpy_f16 n 0..4096 (a = 0, -0, huge; every half incl. nan)", k->name);
    check(t, ok32, "%-6s axpy_f32 n 0..4096", k->name);
}

static void test_fp16_rows(tally *t, const bn_kernels *ref, const bn_kernels *k, rng *r) {
    /* every half, at every alignment and tail length */
    uint16_t *h = xmalloc(65536 * sizeof(uint16_t) + 64);
    float *f0 = xmalloc(65536 * sizeof(float) + 64), *f1 = xmalloc(65536 * sizeof(float) + 64);
    for (uint32_t i = 0; i < 65536; i++)
        h[i] = (uint16_t)i;
    int ok = 1;
    ref->fp16_to_fp32(h, f0, 65536);
    k->fp16_to_fp32(h, f1, 65536);
    for (uint32_t i = 0; i < 65536; i++)
        if (bits_of(f0[i]) != bits_of(f1[i])) {
            if (ok)
                printf("     fp16_to_fp32(%04x) = %08x, scalar %08x\n", i, bits_of(f1[i]), bits_of(f0[i]));
            ok = 0;
        }
    for (int64_t n = 0; n <= 40; n++) {
        const uint32_t off = rbelow(r, 65536 - 64);
        memset(f1, 0x5a, 64 * sizeof(float));
        k->fp16_to_fp32(h + off, f1, n);
        for (int64_t i = 0; i < n; i++)
            ok &= bits_of(f1[i]) == bits_of(f0[off + i]);
        ok &= bits_of(f1[n]) == 0x5a5a5a5au; /* nothing past the end */
    }
    check(t, ok, "%-6s fp16_to_fp32 all 65536 halves bit-exact (signalling nan kept), tails 0..40", k->name);

    /* fp32 -> fp16: ties, one ulp around every tie, every half's float,
     * subnormal / overflow / underflow ranges, inf, nan payloads, random */
    const size_t cap = 1u << 20;
    float *x = xmalloc(cap * sizeof(float));
    uint16_t *o0 = xmalloc(cap * sizeof(uint16_t)), *o1 = xmalloc(cap * sizeof(uint16_t));
    size_t total = 0, bad = 0;
    uint32_t first_bad = 0;
    uint16_t first_got = 0, first_want = 0;
    for (int pass = 0; pass < 8; pass++) {
        size_t m = 0;
        if (pass == 0) { /* every half as a float, and the ties just above it, with both signs */
            for (uint32_t v = 0; v < 0x7c00u && m + 8 <= cap; v++) {
                const uint32_t b = bits_of(bn_fp16_to_fp32((uint16_t)v));
                const uint32_t nb = bits_of(bn_fp16_to_fp32((uint16_t)(v + 1)));
                const uint32_t mid = b + (nb - b) / 2; /* the tie between v and v+1 (exact for normals) */
                x[m++] = f_from_bits(b);
                x[m++] = f_from_bits(mid - 1);
                x[m++] = f_from_bits(mid);
                x[m++] = f_from_bits(mid + 1);
                x[m++] = f_from_bits(0x80000000u | b);
                x[m++] = f_from_bits(0x80000000u | (mid - 1));
                x[m++] = f_from_bits(0x80000000u | mid);
                x[m++] = f_from_bits(0x80000000u | (mid + 1));
            }
        } else if (pass == 1) { /* windows around the boundaries */
            static const uint32_t centers[] = {0x00000000u, 0x33000000u, 0x33800000u, 0x33c00000u, 0x387fc000u,
                                               0x38800000u, 0x477fe000u, 0x477ff000u, 0x47800000u, 0x7f7fffffu,
                                               0x7f800000u, 0x7fc00000u, 0x7fffffffu, 0x7fbfffffu};
            for (size_t ci = 0; ci < sizeof centers / sizeof centers[0]; ci++)
                for (int64_t d = -4096; d <= 4096; d++) {
                    const uint32_t u = (uint32_t)((int64_t)centers[ci] + d) & 0x7fffffffu;
                    x[m++] = f_from_bits(u);
                    x[m++] = f_from_bits(u | 0x80000000u);
                }
        } else if (pass == 2) { /* nan payloads: every top-10-bit pattern, quiet and signalling */
            for (uint32_t p = 0; p < (1u << 10); p++)
                for (uint32_t low = 0; low < 8; low++) {
                    const uint32_t mant = (p << 13) | (low * 0x3ffu);
                    if (!mant)
                        continue;
                    x[m++] = f_from_bits(0x7f800000u | mant);
                    x[m++] = f_from_bits(0xff800000u | mant);
                    x[m++] = f_from_bits(0x7f800000u | (mant & 0x3fffffu));
                }
        } else if (pass == 3) { /* the whole half-subnormal range, sampled */
            for (; m < cap; m++)
                x[m] = f_from_bits((uint32_t)(0x33000000u + rbelow(r, 0x38800000u - 0x33000000u)) |
                                   (uint32_t)(rnext(r) & 0x80000000u));
        } else { /* random bit patterns */
            for (; m < cap; m++)
                x[m] = f_from_bits((uint32_t)rnext(r));
        }
        ref->fp32_to_fp16(x, o0, (int64_t)m);
        k->fp32_to_fp16(x, o1, (int64_t)m);
        for (size_t i = 0; i < m; i++)
            if (o0[i] != o1[i]) {
                if (!bad) {
                    first_bad = bits_of(x[i]);
                    first_got = o1[i];
                    first_want = o0[i];
                }
                bad++;
            }
        total += m;
    }
    for (int64_t n = 0; n <= 40; n++) { /* tails */
        const size_t off = rbelow(r, (uint32_t)(cap - 64));
        memset(o1, 0x5a, 64 * sizeof(uint16_t));
        k->fp32_to_fp16(x + off, o1, n);
        ref->fp32_to_fp16(x + off, o0, n);
        for (int64_t i = 0; i < n; i++)
            bad += o0[i] != o1[i];
        bad += o1[n] != 0x5a5au;
    }
    if (bad)
        printf("     first mismatch: fp32_to_fp16(%08x) = %04x, scalar %04x\n", first_bad, first_got, first_want);
    check(t, bad == 0, "%-6s fp32_to_fp16 %zu values (ties, boundaries, nan payloads, subnormals, random): %zu differ",
          k->name, total, bad);
    free(h);
    free(f0);
    free(f1);
    free(x);
    free(o0);
    free(o1);
}

/* ---- activation quantizers --------------------------------------------------- */

/* style: 0 random, 1 zeros, 2 rounding ties, 3 huge, 4 tiny, 5 negative max,
 * 6 ties in the max, 7 inf/nan sprinkled, 8 a zero block among others,
 * 9 values where multiplying by 127/max and by 1/(max/127) round apart */
static void make_row_style(float *x, int64_t n, int style, rng *r) {
    for (int64_t i = 0; i < n; i++)
        x[i] = rnormal(r);
    switch (style) {
    case 1:
        for (int64_t i = 0; i < n; i++)
            x[i] = (i % 5 == 0) ? -0.0f : 0.0f;
        break;
    case 2: /* multipliers of exactly 1: every half-integer is a tie */
        for (int64_t i = 0; i < n; i++)
            x[i] = (float)((int)rbelow(r, 255) - 127) + (rbelow(r, 2) ? 0.5f : 0.0f);
        for (int64_t i = 0; i < n; i += 16)
            x[i] = (i / 16) % 2 ? -127.0f : 127.0f;
        break;
    case 3:
        for (int64_t i = 0; i < n; i++)
            x[i] *= 1e37f;
        if (n > 3)
            x[3] = 3.4e38f;
        break;
    case 4:
        for (int64_t i = 0; i < n; i++)
            x[i] = f_from_bits((uint32_t)rbelow(r, 0x00800000u) | (uint32_t)(rnext(r) & 0x80000000u)); /* subnormal */
        if (n > 1)
            x[1] = 1e-38f;
        break;
    case 5:
        for (int64_t i = 0; i < n; i++)
            x[i] = fabsf(x[i]) * 0.5f;
        for (int64_t i = 7; i < n; i += 37)
            x[i] = -5.0f;
        break;
    case 6:
        for (int64_t i = 0; i < n; i++)
            x[i] = (float)((int)rbelow(r, 7) - 3);
        break;
    case 7:
        for (int64_t i = 0; i < n; i += 1 + (int64_t)rbelow(r, 97))
            x[i] = f_from_bits(rbelow(r, 2) ? 0x7fc00000u : (rbelow(r, 2) ? 0x7f800000u : 0xff800000u));
        break;
    case 8:
        for (int64_t i = 0; i < n && i < 300; i++)
            x[i] = 0.0f;
        break;
    case 9: { /* multiply-vs-divide traps: every group's max is A, where
               * 127/A != 1/(A/127), and the other values sit where rounding
               * x*(127/A) and x*(1/(A/127)) gives different integers */
        float A = 1.0f;
        for (int tries = 0; tries < 100000; tries++) {
            A = runif(r, 0.5f, 4.0f);
            if (127.0f / A != 1.0f / (A / 127.0f))
                break;
        }
        const float i1 = 127.0f / A, i2 = 1.0f / (A / 127.0f);
        float traps[64];
        int nt = 0;
        for (int m = 0; m < 127 && nt < 64; m++) {
            const float c = ((float)m + 0.5f) / i1;
            for (int d = -3; d <= 3 && nt < 64; d++) {
                const float v = f_from_bits(bits_of(c) + (uint32_t)d);
                if (rintf(v * i1) != rintf(v * i2))
                    traps[nt++] = v;
            }
        }
        for (int64_t i = 0; i < n; i++) {
            const float v = nt ? traps[rbelow(r, (uint32_t)nt)] : 0.5f;
            x[i] = rbelow(r, 2) ? v : -v;
        }
        for (int64_t i = 0; i < n; i += 4)
            x[i] = (i / 4) % 3 ? A : -A;
        break;
    }
    }
}

static void test_quantizers(tally *t, const bn_kernels *ref, const bn_kernels *k, rng *r) {
    static const struct {
        bn_act_kind kind;
        const char *name;
        int64_t block;
    } kinds[] = {{BN_ACT_Q8_0, "Q8_0", 32}, {BN_ACT_Q8_K, "Q8_K", 256}, {BN_ACT_Q8_K64, "Q8_K64", 64},
                 {BN_ACT_I8_ROW, "I8_ROW", 1}};
    const int64_t nmax = 8192;
    float *x = xmalloc((size_t)nmax * sizeof(float));
    const size_t bytes_max = bn_act_row_bytes(BN_ACT_I8_ROW, nmax) + bn_act_row_bytes(BN_ACT_Q8_0, nmax);
    uint8_t *o0 = xmalloc(bytes_max), *o1 = xmalloc(bytes_max);
    for (size_t ki = 0; ki < sizeof kinds / sizeof kinds[0]; ki++) {
        const int64_t bl = kinds[ki].block;
        const int64_t ns[] = {bl, 2 * bl, 3 * bl, 256, 512, 2560, 6912, 8192, bl == 1 ? 7 : bl, bl == 1 ? 33 : bl};
        int cases = 0, bad = 0;
        for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++)
            for (int style = 0; style <= 9; style++) {
                const int64_t n = ns[ni];
                const size_t bytes = bn_act_row_bytes(kinds[ki].kind, n);
                make_row_style(x, n, style, r);
                memset(o0, 0xee, bytes);
                memset(o1, 0xee, bytes);
                ref->quantize[kinds[ki].kind](x, o0, n);
                k->quantize[kinds[ki].kind](x, o1, n);
                cases++;
                if (memcmp(o0, o1, bytes)) {
                    if (!bad) {
                        size_t at = 0;
                        while (o0[at] == o1[at])
                            at++;
                        printf("     %s n %lld style %d: byte %zu = %02x, scalar %02x\n", kinds[ki].name,
                               (long long)n, style, at, o1[at], o0[at]);
                    }
                    bad++;
                }
            }
        check(t, bad == 0, "%-6s quantize %-6s %d rows (zeros, ties, huge, tiny, negative max, inf/nan, mul-vs-div traps): %d differ",
              k->name, kinds[ki].name, cases, bad);
    }
    free(x);
    free(o0);
    free(o1);
}

int main(void) {
    tally t = {0, 0};
    bn_kernels ref;
    bn_kernels_init(&ref, BN_ISA_SCALAR);
    int variants = 0;
    for (int isa = 0; isa < BN_ISA_COUNT; isa++) {
        if (!bn_isa_supported((bn_isa)isa))
            continue;
        variants++;
        bn_kernels k;
        bn_kernels_init(&k, (bn_isa)isa);
        rng r = {0x5eed0000u + (uint64_t)isa};
        printf("== variant %s\n", k.name);
        test_float_types(&t, &ref, &k, &r);
        test_kquant_types(&t, &ref, &k, &r);
        test_axpy(&t, &ref, &k, &r);
        test_fp16_rows(&t, &ref, &k, &r);
        test_quantizers(&t, &ref, &k, &r);
    }
    check(&t, variants >= 1, "at least the scalar variant ran (%d variants)", variants);
    printf("%d passed, %d failed\n", t.passed, t.failed);
    return t.failed == 0 ? 0 : 1;
}
