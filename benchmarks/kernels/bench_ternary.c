/* Single-thread micro benchmark of the ternary mul_mat kernels
 * (core_c/kernels_avx2_ternary.c, core_c/kernels_avx512.c) against the
 * scalar reference set.
 *
 * Build and run from the repository root:
 *   gcc -std=c11 -O2 -D_POSIX_C_SOURCE=200809L -DBITNET_BUILD -Icore_c \
 *       -Ibindings_c/include -Ibindings_c/src core_c/\*.c \
 *       benchmarks/kernels/bench_ternary.c -lm -pthread -o /tmp/bench_ternary
 *   /tmp/bench_ternary [options]
 * options:
 *   --types I2_S,TQ2_0,...   types to run (default: I2_S,TQ2_0,IQ2_BN,TQ1_0,IQ1_BN)
 *   --variants scalar,avx2   variants to run (default: every one this CPU runs)
 *   --tok 1,8,32             token counts (default 1,8,32)
 *   --mb N                   weight bytes per shape, cycled over (default 160;
 *                            use 1 to measure with the weights in cache)
 *   --shapes 0,1,2,3         which of the shapes below (default all)
 *   --min-s S                seconds of work per measurement (default 0.3)
 *
 * Shapes: the BitNet-b1.58-2B-4T matrices, rows x row length:
 *   0: 2560 x 2560 (attn q, attn output)   1: 640 x 2560 (attn k, v)
 *   2: 6912 x 2560 (ffn gate, up)          3: 2560 x 6912 (ffn down)
 * Each shape gets as many copies of its matrix as fill --mb megabytes (at
 * least 100 MB by default, far beyond the caches), and consecutive calls
 * cycle over the copies, so every call streams its weights from memory as
 * decode does. One call is one mul_mat over the whole matrix with n_tok
 * tokens (decode: 1; prefill: 8, 32).
 *
 * Output, one line per (type, shape, n_tok, variant):
 *   GB/s    bytes of weights read per second (each call reads its matrix
 *           once, whatever n_tok);
 *   Gw/s    weights x tokens per second (multiply-adds, in billions);
 *   x       scalar time / variant time (measured with the same settings).
 * Times are the best of several measurements of thread CPU time, so they
 * stay meaningful on a machine shared with other work (memory bandwidth
 * shared with other processes still is not). Each variant's results are
 * also compared with the scalar ones (bit-exact expected; "MISMATCH" if not). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "act_quant.h"
#include "kernels.h"
#include "tensor_types.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t rng_state = 0x7e57ab1eu;
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

/* Random valid-looking weights: 2-bit types get codes 0..2, base-3 types
 * arbitrary bytes; scales are overwritten with small fp16/f32 values. */
static void fill_matrix(int type, uint8_t *w, int64_t rows, int64_t n, size_t wrb) {
    for (int64_t r = 0; r < rows; r++) {
        uint8_t *p = w + (size_t)r * wrb;
        for (size_t j = 0; j < wrb; j++) {
            uint8_t b = (uint8_t)rnext();
            if (type == BN_TYPE_I2_S || type == BN_TYPE_TQ2_0 || type == BN_TYPE_IQ2_BN) {
                b = 0;
                for (int k = 0; k < 4; k++)
                    b |= (uint8_t)((rnext() % 3) << (2 * k));
            }
            p[j] = b;
        }
        const uint16_t h = bn_fp32_to_fp16(0.5f + 0.1f * rfloat());
        const float f = 0.5f;
        if (type == BN_TYPE_TQ2_0)
            for (int64_t b = 0; b < n / 256; b++)
                memcpy(p + 66 * b + 64, &h, 2);
        if (type == BN_TYPE_TQ1_0)
            for (int64_t b = 0; b < n / 256; b++)
                memcpy(p + 54 * b + 52, &h, 2);
        if (type == BN_TYPE_IQ1_BN)
            memcpy(p, &h, 2);
        if (type == BN_TYPE_IQ2_BN)
            memcpy(p, &f, 4);
    }
}

typedef struct shape {
    int64_t rows, n;
    const char *what;
} shape;

static const shape k_shapes[] = {
    {2560, 2560, "attn q/o"}, {640, 2560, "attn k/v"}, {6912, 2560, "ffn gate/up"}, {2560, 6912, "ffn down"}};

static int in_list(const char *list, const char *name) {
    if (!list)
        return 1;
    const size_t len = strlen(name);
    for (const char *p = list; *p;) {
        const char *e = strchr(p, ',');
        const size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == len && !strncmp(p, name, len))
            return 1;
        if (!e)
            break;
        p = e + 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    const char *types_arg = "I2_S,TQ2_0,IQ2_BN,TQ1_0,IQ1_BN", *variants_arg = NULL, *tok_arg = "1,8,32",
               *shapes_arg = NULL;
    double mb = 160, min_s = 0.3;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--types"))
            types_arg = argv[i + 1];
        else if (!strcmp(argv[i], "--variants"))
            variants_arg = argv[i + 1];
        else if (!strcmp(argv[i], "--tok"))
            tok_arg = argv[i + 1];
        else if (!strcmp(argv[i], "--mb"))
            mb = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--shapes"))
            shapes_arg = argv[i + 1];
        else if (!strcmp(argv[i], "--min-s"))
            min_s = atof(argv[i + 1]);
        else {
            fprintf(stderr, "unknown option %s (see the comment at the top of bench_ternary.c)\n", argv[i]);
            return 2;
        }
    }
    static const int k_types[] = {BN_TYPE_I2_S, BN_TYPE_TQ2_0, BN_TYPE_IQ2_BN, BN_TYPE_TQ1_0, BN_TYPE_IQ1_BN};
    int toks[8], n_toks = 0;
    for (const char *p = tok_arg; *p && n_toks < 8;) {
        toks[n_toks++] = atoi(p);
        const char *e = strchr(p, ',');
        if (!e)
            break;
        p = e + 1;
    }
    char feats[128];
    bn_cpu_features(feats, sizeof feats);
    printf("cpu features: %s\n", feats);
    printf("%-7s %-13s %-11s %3s %-7s %8s %8s %7s\n", "type", "shape", "what", "tok", "variant", "GB/s", "Gw/s", "x");

    bn_kernels ks;
    bn_kernels_init(&ks, BN_ISA_SCALAR);
    for (size_t it = 0; it < sizeof k_types / sizeof k_types[0]; it++) {
        const bn_type_traits *tt = bn_type_get((uint32_t)k_types[it]);
        if (!in_list(types_arg, tt->name))
            continue;
        for (size_t is = 0; is < sizeof k_shapes / sizeof k_shapes[0]; is++) {
            char sname[8];
            snprintf(sname, sizeof sname, "%zu", is);
            if (shapes_arg && !in_list(shapes_arg, sname))
                continue;
            const shape sh = k_shapes[is];
            const size_t wrb = bn_type_row_bytes(tt, sh.n), mat = wrb * (size_t)sh.rows;
            size_t copies = (size_t)(mb * 1e6 / (double)mat) + 1;
            uint8_t *w = xmalloc(mat * copies);
            fill_matrix(tt->type, w, sh.rows, sh.n, wrb);
            for (size_t c = 1; c < copies; c++)
                memcpy(w + c * mat, w, mat);
            for (int ik = 0; ik < n_toks; ik++) {
                const int n_tok = toks[ik];
                const size_t arb = bn_act_row_bytes(tt->act, sh.n);
                uint8_t *act = xmalloc(arb * (size_t)n_tok);
                float *x = xmalloc((size_t)sh.n * sizeof(float));
                for (int t = 0; t < n_tok; t++) {
                    for (int64_t i = 0; i < sh.n; i++)
                        x[i] = rfloat();
                    ks.quantize[tt->act](x, act + (size_t)t * arb, sh.n);
                }
                float *y0 = xmalloc((size_t)(sh.rows * n_tok) * sizeof(float));
                float *y1 = xmalloc((size_t)(sh.rows * n_tok) * sizeof(float));
                ks.mul_mat[tt->type](sh.n, w, wrb, sh.rows, act, arb, n_tok, y0, sh.rows);
                double t_scalar = 0;
                for (int isa = 0; isa < BN_ISA_COUNT; isa++) {
                    if (!bn_isa_supported((bn_isa)isa) || !in_list(variants_arg, bn_isa_name((bn_isa)isa)))
                        continue;
                    bn_kernels k;
                    bn_kernels_init(&k, (bn_isa)isa);
                    k.mul_mat[tt->type](sh.n, w, wrb, sh.rows, act, arb, n_tok, y1, sh.rows);
                    const int same = !memcmp(y0, y1, (size_t)(sh.rows * n_tok) * sizeof(float));
                    /* best of 5 measurements, each >= min_s / 5 and >= one pass over the copies
                     * (decode) */
                    double best = 1e30;
                    size_t c = 0;
                    for (int rep = 0; rep < 5; rep++) {
                        int calls = 0;
                        const double t0 = now_s();
                        double t1 = t0;
                        do {
                            k.mul_mat[tt->type](sh.n, w + c * mat, wrb, sh.rows, act, arb, n_tok, y1, sh.rows);
                            c = (c + 1) % copies;
                            calls++;
                            t1 = now_s();
                        } while (t1 - t0 < min_s / 5 || (n_tok == 1 && (size_t)calls < copies && t1 - t0 < 2));
                        const double per = (t1 - t0) / calls;
                        if (per < best)
                            best = per;
                    }
                    if (isa == BN_ISA_SCALAR)
                        t_scalar = best;
                    char ratio[16] = "-";
                    if (t_scalar > 0)
                        snprintf(ratio, sizeof ratio, "%.1f", t_scalar / best);
                    printf("%-7s %5lldx%-7lld %-11s %3d %-7s %8.2f %8.2f %7s%s\n", tt->name, (long long)sh.rows,
                           (long long)sh.n, sh.what, n_tok, k.name, (double)mat / best / 1e9,
                           (double)sh.rows * (double)sh.n * n_tok / best / 1e9, ratio, same ? "" : "  MISMATCH");
                    fflush(stdout);
                }
                free(y0);
                free(y1);
                free(x);
                free(act);
            }
            free(w);
        }
    }
    return 0;
}
