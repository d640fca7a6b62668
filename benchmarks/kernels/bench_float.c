/* Single-thread micro benchmark of the float / k-quant kernel entries
 * (core_c/kernels_avx2_float.c against the scalar reference set).
 *
 * Build and run from the repository root:
 *   gcc -std=c11 -O2 -D_POSIX_C_SOURCE=200809L -DBITNET_BUILD -Icore_c \
 *       -Ibindings_c/include -Ibindings_c/src core_c/\*.c \
 *       benchmarks/kernels/bench_float.c -lm -pthread -o /tmp/bench_float
 *   /tmp/bench_float [variant [sections]]
 * variant: auto (the best this CPU runs, default), avx2, avx512, scalar...;
 * sections: any of q6k,f16,other,attn,quant (comma separated; default all).
 * Times are best-of-N thread CPU time, so they stay meaningful on a machine
 * shared with other work.
 *
 * Shapes:
 *   Q6_K 128256 x 2560   output projection of BitNet-b1.58-2B-4T (269 MB),
 *                        n_tok 1 (decode) and 8 (prefill);
 *   F16  128256 x 2560   the same matrix in F16 (657 MB), n_tok 1;
 *   F16 attention        128-wide key rows with a KV-cache row stride (5 KV
 *                        heads: 1280 bytes), 4 query heads as tokens,
 *                        1..4096 cached rows;
 *   quantizers           rows of 2560 and 6912 floats.
 * GB/s counts the bytes of weights (or input floats, for the quantizers)
 * read per second; "x" is scalar time / variant time. Matrix results are
 * also compared with the scalar ones (bit-exact expected). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "act_quant.h"
#include "kernels.h"
#include "tensor_types.h"

/* CPU time of this thread: the figures stay meaningful on a loaded machine
 * (cache and memory bandwidth shared with other processes still are not). */
static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t rng_state = 0x1234567u;
static uint64_t rnext(void) {
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static float rfloat(void) { return (float)((int64_t)(rnext() >> 40) - (1 << 23)) / (float)(1 << 23); }

static void *xmalloc(size_t n) {
    void *p = malloc(n);
    if (!p) {
        fprintf(stderr, "out of memory (%zu bytes)\n", n);
        exit(1);
    }
    return p;
}

/* Best-of-reps seconds of one mul_mat call (at least min_s of work in all);
 * short calls are timed in batches of at least ~2 ms. */
static double time_mm(bn_mul_mat_fn f, int64_t n, const uint8_t *w, size_t wrb, int64_t rows, const uint8_t *act,
                      size_t arb, int64_t n_tok, float *y, int64_t ys, double min_s) {
    int inner = 1;
    for (;;) {
        const double t0 = now_s();
        for (int i = 0; i < inner; i++)
            f(n, w, wrb, rows, act, arb, n_tok, y, ys);
        if (now_s() - t0 >= 2e-3 || inner >= (1 << 24))
            break;
        inner *= 2;
    }
    double best = 1e30, spent = 0;
    int reps = 0;
    while (reps < 3 || (spent < min_s && reps < 1000)) {
        const double t0 = now_s();
        for (int i = 0; i < inner; i++)
            f(n, w, wrb, rows, act, arb, n_tok, y, ys);
        const double dt = (now_s() - t0) / inner;
        if (dt < best)
            best = dt;
        spent += dt * inner;
        reps++;
    }
    return best;
}

static void fill_weights(int type, uint8_t *w, size_t bytes, int64_t n, int64_t rows) {
    const bn_type_traits *t = bn_type_get((uint32_t)type);
    if (type == BN_TYPE_F32 || type == BN_TYPE_F16 || type == BN_TYPE_BF16) { /* finite values */
        for (size_t i = 0; i < bytes; i += t->block_bytes) {
            const float f = rfloat();
            uint32_t u;
            memcpy(&u, &f, 4);
            const uint16_t h = type == BN_TYPE_F16 ? bn_fp32_to_fp16(f) : (uint16_t)(u >> 16);
            memcpy(w + i, type == BN_TYPE_F32 ? (const void *)&f : (const void *)&h, t->block_bytes);
        }
        return;
    }
    for (size_t i = 0; i < bytes; i += 8) {
        const uint64_t v = rnext();
        memcpy(w + i, &v, bytes - i < 8 ? bytes - i : 8);
    }
    const size_t rb = bn_type_row_bytes(t, n);
    for (int64_t r = 0; r < rows; r++) {
        uint8_t *row = w + (size_t)r * rb;
        for (int64_t b = 0; b < n / t->block_size; b++) {
            uint8_t *blk = row + (size_t)b * t->block_bytes;
            const uint16_t h = bn_fp32_to_fp16(0.01f * rfloat());
            switch (type) {
            case BN_TYPE_Q6_K:
                memcpy(blk + 208, &h, 2);
                break;
            case BN_TYPE_Q4_K:
                memcpy(blk, &h, 2);
                memcpy(blk + 2, &h, 2);
                break;
            case BN_TYPE_Q8_0:
                memcpy(blk, &h, 2);
                break;
            default:
                break;
            }
        }
    }
}

static int same(const float *a, const float *b, size_t n) { return memcmp(a, b, n * sizeof(float)) == 0; }

/* The variant runs on all `rows`; the (much slower) scalar reference on the
 * first `scalar_rows` of them, which is still far larger than the caches,
 * and the ratio compares bytes per second. */
static void bench_matrix(const bn_kernels *ref, const bn_kernels *k, int type, int64_t n, int64_t rows,
                         int64_t scalar_rows, const int64_t *toks, int ntoks, double min_s) {
    const bn_type_traits *t = bn_type_get((uint32_t)type);
    const size_t rb = bn_type_row_bytes(t, n);
    const size_t bytes = rb * (size_t)rows;
    if (scalar_rows > rows)
        scalar_rows = rows;
    uint8_t *w = xmalloc(bytes);
    fill_weights(type, w, bytes, n, rows);
    int64_t tmax = 1;
    for (int i = 0; i < ntoks; i++)
        if (toks[i] > tmax)
            tmax = toks[i];
    const size_t arb = bn_act_row_bytes(t->act, n);
    uint8_t *act = xmalloc(arb * (size_t)tmax);
    float *x = xmalloc((size_t)n * sizeof(float));
    for (int64_t tok = 0; tok < tmax; tok++) {
        for (int64_t i = 0; i < n; i++)
            x[i] = rfloat();
        ref->quantize[t->act](x, act + (size_t)tok * arb, n);
    }
    float *y0 = xmalloc((size_t)rows * (size_t)tmax * sizeof(float));
    float *y1 = xmalloc((size_t)rows * (size_t)tmax * sizeof(float));
    for (int i = 0; i < ntoks; i++) {
        const int64_t nt = toks[i];
        const double ts = time_mm(ref->mul_mat[type], n, w, rb, scalar_rows, act, arb, nt, y0, scalar_rows, min_s);
        const double tv = time_mm(k->mul_mat[type], n, w, rb, rows, act, arb, nt, y1, rows, min_s);
        int ok = 1;
        for (int64_t tok = 0; tok < nt; tok++)
            ok &= same(y0 + tok * scalar_rows, y1 + tok * rows, (size_t)scalar_rows);
        const double gbv = (double)bytes / 1e9 / tv, gbs = (double)(rb * (size_t)scalar_rows) / 1e9 / ts;
        printf("%-5s %6lld x %-5lld n_tok %-3lld %-7s %8.2f ms %6.2f GB/s   scalar %6.3f GB/s   x%6.2f %s\n",
               t->name, (long long)rows, (long long)n, (long long)nt, k->name, tv * 1e3, gbv, gbs, gbv / gbs,
               ok ? "" : "MISMATCH");
        fflush(stdout);
    }
    free(w);
    free(act);
    free(x);
    free(y0);
    free(y1);
}

/* Attention scores: n = 128, key rows 1280 bytes apart (5 KV heads), 4 query
 * heads as tokens. Reports ns per call and the key bytes read per second. */
static void bench_attention(const bn_kernels *ref, const bn_kernels *k, int type) {
    const int64_t n = 128, max_rows = 4096, heads = 4;
    const size_t esz = type == BN_TYPE_F16 ? 2 : 4;
    const size_t wrb = 5 * (size_t)n * esz;
    uint8_t *w = xmalloc(wrb * (size_t)max_rows);
    for (size_t i = 0; i < wrb * (size_t)max_rows; i += esz) {
        if (esz == 2) {
            const uint16_t h = bn_fp32_to_fp16(rfloat());
            memcpy(w + i, &h, 2);
        } else {
            const float f = rfloat();
            memcpy(w + i, &f, 4);
        }
    }
    float *q = xmalloc((size_t)(n * heads) * sizeof(float));
    for (int64_t i = 0; i < n * heads; i++)
        q[i] = rfloat();
    float *y0 = xmalloc((size_t)(max_rows * heads) * sizeof(float));
    float *y1 = xmalloc((size_t)(max_rows * heads) * sizeof(float));
    static const int64_t rows_list[] = {1, 4, 16, 64, 256, 1024, 4096};
    for (size_t i = 0; i < sizeof rows_list / sizeof rows_list[0]; i++) {
        const int64_t rows = rows_list[i];
        const double ts = time_mm(ref->mul_mat[type], n, w, wrb, rows, (const uint8_t *)q, (size_t)n * 4, heads, y0,
                                  rows, 0.05);
        const double tv =
            time_mm(k->mul_mat[type], n, w, wrb, rows, (const uint8_t *)q, (size_t)n * 4, heads, y1, rows, 0.05);
        const double gb = (double)rows * (double)n * (double)esz / 1e9;
        printf("%-4s attention 128 x %-5lld 4 heads  %-8s %9.0f ns %6.2f GB/s   scalar %9.0f ns %6.2f GB/s   x%5.2f %s\n",
               type == BN_TYPE_F16 ? "F16" : "F32", (long long)rows, k->name, tv * 1e9, gb / tv, ts * 1e9, gb / ts,
               ts / tv, same(y0, y1, (size_t)(rows * heads)) ? "" : "MISMATCH");
    }
    free(w);
    free(q);
    free(y0);
    free(y1);
}

static void bench_quantizers(const bn_kernels *ref, const bn_kernels *k) {
    static const struct {
        bn_act_kind kind;
        const char *name;
    } kinds[] = {{BN_ACT_Q8_0, "Q8_0"}, {BN_ACT_Q8_K, "Q8_K"}, {BN_ACT_Q8_K64, "Q8_K64"}, {BN_ACT_I8_ROW, "I8_ROW"}};
    static const int64_t ns[] = {2560, 6912};
    float *x = xmalloc(6912 * sizeof(float));
    for (int i = 0; i < 6912; i++)
        x[i] = 3.0f * rfloat();
    uint8_t *o0 = xmalloc(bn_act_row_bytes(BN_ACT_I8_ROW, 6912) + 4096), *o1 = xmalloc(bn_act_row_bytes(BN_ACT_I8_ROW, 6912) + 4096);
    for (size_t ki = 0; ki < sizeof kinds / sizeof kinds[0]; ki++)
        for (size_t ni = 0; ni < 2; ni++) {
            const int64_t n = ns[ni];
            double best[2] = {1e30, 1e30};
            for (int which = 0; which < 2; which++) {
                const bn_act_quantize_fn f = which ? k->quantize[kinds[ki].kind] : ref->quantize[kinds[ki].kind];
                for (int rep = 0; rep < 30; rep++) {
                    const double t0 = now_s();
                    for (int j = 0; j < 200; j++)
                        f(x, which ? o1 : o0, n);
                    const double dt = (now_s() - t0) / 200;
                    if (dt < best[which])
                        best[which] = dt;
                }
            }
            const size_t bytes = bn_act_row_bytes(kinds[ki].kind, n);
            const double gb = (double)n * 4 / 1e9;
            printf("quantize %-6s n %-5lld  %-8s %8.0f ns %6.2f GB/s   scalar %8.0f ns %6.2f GB/s   x%5.2f %s\n",
                   kinds[ki].name, (long long)n, k->name, best[1] * 1e9, gb / best[1], best[0] * 1e9, gb / best[0],
                   best[0] / best[1], memcmp(o0, o1, bytes) ? "MISMATCH" : "");
        }
    free(x);
    free(o0);
    free(o1);
}

int main(int argc, char **argv) {
    bn_error err = {0};
    bn_isa isa;
    if (bn_isa_parse(argc > 1 ? argv[1] : "auto", &isa, &err) != BITNET_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    bn_kernels ref, k;
    bn_kernels_init(&ref, BN_ISA_SCALAR);
    bn_kernels_init(&k, isa);
    char feat[128];
    bn_cpu_features(feat, sizeof feat);
    printf("variant %s (cpu: %s), single thread\n", k.name, feat);

    const char *sec = argc > 2 ? argv[2] : "q6k,f16,other,attn,quant";
    static const int64_t tok_1_8[] = {1, 8}, tok_1[] = {1};
    if (strstr(sec, "q6k"))
        bench_matrix(&ref, &k, BN_TYPE_Q6_K, 2560, 128256, 16384, tok_1_8, 2, 0.5);
    if (strstr(sec, "f16"))
        bench_matrix(&ref, &k, BN_TYPE_F16, 2560, 128256, 16384, tok_1, 1, 0.5);
    if (strstr(sec, "other")) {
        bench_matrix(&ref, &k, BN_TYPE_Q4_K, 2560, 32768, 8192, tok_1_8, 2, 0.2);
        bench_matrix(&ref, &k, BN_TYPE_Q8_0, 2560, 32768, 8192, tok_1_8, 2, 0.2);
        bench_matrix(&ref, &k, BN_TYPE_F32, 2560, 32768, 8192, tok_1_8, 2, 0.2);
        bench_matrix(&ref, &k, BN_TYPE_BF16, 2560, 32768, 8192, tok_1_8, 2, 0.2);
    }
    if (strstr(sec, "attn")) {
        bench_attention(&ref, &k, BN_TYPE_F16);
        bench_attention(&ref, &k, BN_TYPE_F32);
    }
    if (strstr(sec, "quant"))
        bench_quantizers(&ref, &k);
    return 0;
}
