/* aarch64 checks of the NEON kernel set (core_c/kernels_neon.c) that the
 * generic variant tests (test_kernels_ternary.c, test_kernels_float.c) do
 * not make:
 *
 *   1. selection: bn_isa_best() is BN_ISA_NEON, and bn_cpu_features reports
 *      "dotprod" exactly when BITNET_EXPECT_DOTPROD=1 (tests/test_cross_aarch64.py
 *      sets it per qemu CPU model, so both kernel variants are known to run);
 *   2. no read past a weight row: every mul_mat reads its last row where the
 *      next byte is an inaccessible page (IQ1_BN's 13-byte blocks, TQ1_0's
 *      54-byte blocks, F16/F32 tails...);
 *   3. I2_S: rows whose int16 lanes wrap (the reference wraps them) and rows
 *      that cannot wrap, since the SDOT variant has a fast path for the latter.
 *
 * On other architectures it prints "skipped" and exits 0.
 * Prints one line per check and "N passed, N failed". */
#include <stdio.h>

#if defined(__aarch64__) && defined(__linux__)

#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "act_quant.h"
#include "kernels.h"
#include "tensor_types.h"

static int n_pass, n_fail;

static void check(int ok, const char *what) {
    printf("%s %s\n", ok ? "ok  " : "FAIL", what);
    if (ok)
        n_pass++;
    else
        n_fail++;
}

static uint64_t rng_state = 0x243f6a8885a308d3ull;
static uint64_t rnd(void) {
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static float frand(void) { return (float)((double)(rnd() >> 11) / 9007199254740992.0 * 2.0 - 1.0); }

static int same(float a, float b) {
    uint32_t x, y;
    memcpy(&x, &a, 4);
    memcpy(&y, &b, 4);
    return x == y || (a != a && b != b);
}

/* `size` bytes that end right before a PROT_NONE page. */
typedef struct guarded {
    uint8_t *map, *p;
    size_t map_len;
} guarded;

static int guarded_alloc(guarded *g, size_t size) {
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    g->map_len = (size + page - 1) / page * page + page;
    const int fd = open("/dev/zero", O_RDWR);
    if (fd < 0)
        return 0;
    void *m = mmap(NULL, g->map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED)
        return 0;
    g->map = m;
    if (mprotect(g->map + g->map_len - page, page, PROT_NONE) != 0)
        return 0;
    g->p = g->map + g->map_len - page - size;
    return 1;
}

static void guarded_free(guarded *g) { munmap(g->map, g->map_len); }

/* Random weight bytes with sane float scales where a type has them. */
static void fill_weights(int type, uint8_t *p, size_t bytes, int64_t n, int64_t rows, size_t row_bytes) {
    for (size_t i = 0; i < bytes; i++)
        p[i] = (uint8_t)rnd();
    for (int64_t r = 0; r < rows; r++) {
        uint8_t *row = p + r * row_bytes;
        if (type == BN_TYPE_F32)
            for (int64_t i = 0; i < n; i++) {
                const float f = frand();
                memcpy(row + 4 * i, &f, 4);
            }
        if (type == BN_TYPE_F16 || type == BN_TYPE_BF16)
            for (int64_t i = 0; i < n; i++) {
                const float f = frand();
                uint32_t u;
                memcpy(&u, &f, 4);
                const uint16_t h = type == BN_TYPE_F16 ? bn_fp32_to_fp16(f) : (uint16_t)(u >> 16);
                memcpy(row + 2 * i, &h, 2);
            }
        if (type == BN_TYPE_IQ2_BN) {
            const float d = frand();
            memcpy(row, &d, 4);
        }
    }
}

static void test_no_overread(const bn_kernels *ref, const bn_kernels *k) {
    static const int types[] = {BN_TYPE_F32,   BN_TYPE_F16,   BN_TYPE_BF16, BN_TYPE_Q8_0,   BN_TYPE_Q4_K,  BN_TYPE_Q6_K,
                                BN_TYPE_TQ1_0, BN_TYPE_TQ2_0, BN_TYPE_I2_S, BN_TYPE_IQ1_BN, BN_TYPE_IQ2_BN};
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        const bn_type_traits *tt = bn_type_get((uint32_t)types[ti]);
        const int64_t block = tt->block_size < 64 ? 64 : tt->block_size;
        int ok = 1;
        for (int64_t mult = 1; mult <= 5 && ok; mult += 2) {
            int64_t n = block * mult;
            if (tt->block_size == 1)
                n += mult; /* float rows: odd lengths too */
            const size_t row_bytes = bn_type_row_bytes(tt, n);
            const int64_t rows = 3;
            const int64_t n_tok = 5; /* a tile of 4 and a tile of 1 */
            guarded g;
            if (!guarded_alloc(&g, row_bytes * rows)) {
                ok = 0;
                break;
            }
            fill_weights(tt->type, g.p, row_bytes * rows, n, rows, row_bytes);
            const size_t arb = bn_act_row_bytes(tt->act, n);
            uint8_t *act = aligned_alloc(64, (arb * n_tok + 63) / 64 * 64);
            float *x = malloc((size_t)n * sizeof(float));
            for (int64_t t = 0; t < n_tok; t++) {
                for (int64_t i = 0; i < n; i++)
                    x[i] = frand();
                bn_act_quantize_row(tt->act, x, act + arb * t, n);
            }
            float y0[3 * 5], y1[3 * 5];
            ref->mul_mat[tt->type](n, g.p, row_bytes, rows, act, arb, n_tok, y0, rows);
            k->mul_mat[tt->type](n, g.p, row_bytes, rows, act, arb, n_tok, y1, rows);
            for (int i = 0; i < rows * n_tok; i++)
                ok &= same(y0[i], y1[i]);
            free(act);
            free(x);
            guarded_free(&g);
        }
        char what[160];
        snprintf(what, sizeof what, "%s mul_mat %-6s last row ends at a PROT_NONE page, equals scalar", k->name, tt->name);
        check(ok, what);
    }
}

/* I2_S: codes mostly 2 and 3 against activations all +127 wrap the
 * reference's int16 lanes; random activations do not. */
static void test_i2_s_wrap(const bn_kernels *ref, const bn_kernels *k) {
    const int64_t n = 8192 + 128 * 3, n_tok = 6;
    const bn_type_traits *tt = bn_type_get(BN_TYPE_I2_S);
    const size_t rb = bn_type_row_bytes(tt, n), arb = bn_act_row_bytes(tt->act, n);
    const int64_t rows = 5;
    uint8_t *w = malloc(rb * rows);
    for (size_t i = 0; i < rb * rows; i++)
        w[i] = (uint8_t)rnd() | (i < rb * 2 ? 0xaa : 0x00);
    uint8_t *act = aligned_alloc(64, (arb * n_tok + 63) / 64 * 64);
    float *x = malloc((size_t)n * sizeof(float));
    for (int64_t t = 0; t < n_tok; t++) {
        for (int64_t i = 0; i < n; i++)
            x[i] = t % 3 == 0 ? 1.0f : t % 3 == 1 ? -1.0f : frand();
        bn_act_quantize_row(tt->act, x, act + arb * t, n);
    }
    float y0[5 * 6], y1[5 * 6];
    ref->mul_mat[BN_TYPE_I2_S](n, w, rb, rows, act, arb, n_tok, y0, rows);
    k->mul_mat[BN_TYPE_I2_S](n, w, rb, rows, act, arb, n_tok, y1, rows);
    int ok = 1;
    for (int i = 0; i < rows * n_tok; i++)
        ok &= same(y0[i], y1[i]);
    /* the wrap really happened: the reference differs from the exact dot */
    float *wf = malloc((size_t)n * sizeof(float));
    bn_i2_s_to_float(w, wf, n);
    const bn_act_i8_row *h = (const void *)act;
    double exact = 0;
    for (int64_t i = 0; i < n; i++)
        exact += wf[i] * bn_i8_row_qs(h)[i];
    exact /= h->scale;
    char what[160];
    snprintf(what, sizeof what, "%s mul_mat I2_S with wrapping and non-wrapping int16 lanes equals scalar", k->name);
    check(ok, what);
    check(fabs(exact - y0[0]) > 1.0, "I2_S wrap case does wrap in the reference");
    free(wf);
    free(w);
    free(act);
    free(x);
}

int main(void) {
    char what[160];
    check(bn_isa_best() == BN_ISA_NEON, "bn_isa_best() is neon on aarch64");
    check(bn_isa_supported(BN_ISA_NEON), "neon supported");
    char feat[96];
    bn_cpu_features(feat, sizeof feat);
    printf("cpu features: %s\n", feat);
    const int has_dot = strstr(feat, "dotprod") != NULL;
    const char *expect = getenv("BITNET_EXPECT_DOTPROD");
    if (expect && *expect) {
        snprintf(what, sizeof what, "dotprod reported (%d) as expected (%s)", has_dot, expect);
        check(has_dot == (expect[0] == '1'), what);
    }
    bn_kernels ref, k;
    bn_kernels_init(&ref, BN_ISA_SCALAR);
    bn_kernels_init(&k, BN_ISA_NEON);
    int overridden = 0;
    for (int t = 0; t < BN_TYPE_ID_LIMIT; t++)
        overridden += k.mul_mat[t] && k.mul_mat[t] != ref.mul_mat[t];
    snprintf(what, sizeof what, "neon overrides %d mul_mat entries (11 expected)", overridden);
    check(overridden == 11, what);
    test_no_overread(&ref, &k);
    test_i2_s_wrap(&ref, &k);
    printf("%d passed, %d failed\n", n_pass, n_fail);
    return n_fail != 0;
}

#else

int main(void) {
    printf("skipped: not aarch64 Linux\n");
    return 0;
}

#endif
