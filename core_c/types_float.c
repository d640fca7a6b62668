/* Float weight types: F32, F16, BF16, against plain float32 activations
 * (BN_ACT_F32).
 *
 * Reference: ggml's type table gives F16 weights F16 activations, but on the
 * x86 builds the golden data come from (ik_llama.cpp's iqk_mul_mat float
 * kernels; upstream's llamafile sgemm) activations stay float32 in practice
 * (see docs/formats.md, "F16 weights"), so all three types take float32 rows.
 * Widening F16 (bn_fp16_to_fp32) and BF16 (16-bit shift) to float is exact.
 *
 * Summation: eight float partial sums, lane j % 8 taking element j, folded
 * at the end in the order of an x86 8-lane horizontal add (bn_hsum8). This
 * is the shape of an 8-wide SIMD accumulator, so the compiler can vectorise
 * the loop without reassociation and a later AVX kernel doing mul+add (no
 * FMA) reproduces it bit for bit. Each lane sums n/8 products, which keeps
 * the rounding error well below the single-accumulator case (for n = 8192,
 * about sqrt(1024) ulp-scale errors per lane) at no cost; a double
 * accumulator would be more accurate still but cannot vectorise as well and
 * matches none of the references anyway. */
#include "act_quant.h"

void bn_f32_to_float(const void *row, float *y, int64_t n) {
    memcpy(y, row, (size_t)n * sizeof(float));
}

void bn_f16_to_float(const void *row, float *y, int64_t n) {
    const uint8_t *p = row;
    for (int64_t i = 0; i < n; i++)
        y[i] = bn_rd_f16(p + 2 * i);
}

void bn_bf16_to_float(const void *row, float *y, int64_t n) {
    const uint8_t *p = row;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, p + 2 * i, sizeof h);
        y[i] = bn_bf16_to_fp32(h);
    }
}

static inline float load_f32(const uint8_t *p, int64_t i) {
    return bn_rd_f32(p + 4 * i);
}
static inline float load_f16(const uint8_t *p, int64_t i) {
    return bn_rd_f16(p + 2 * i);
}
static inline float load_bf16(const uint8_t *p, int64_t i) {
    uint16_t h;
    memcpy(&h, p + 2 * i, sizeof h);
    return bn_bf16_to_fp32(h);
}

/* The three dot products differ only in how a weight is widened; `load` is
 * a constant at every call, so the compiler inlines it. */
static inline float dot_lanes8(int64_t n, const uint8_t *w, const float *x,
                               float (*load)(const uint8_t *, int64_t)) {
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++)
            acc[l] += load(w, i + l) * x[i + l];
    for (int l = 0; i < n; i++, l++)
        acc[l] += load(w, i) * x[i];
    return bn_hsum8(acc);
}

float bn_f32_vec_dot(int64_t n, const void *row, const void *act) {
    return dot_lanes8(n, row, act, load_f32);
}

float bn_f16_vec_dot(int64_t n, const void *row, const void *act) {
    return dot_lanes8(n, row, act, load_f16);
}

float bn_bf16_vec_dot(int64_t n, const void *row, const void *act) {
    return dot_lanes8(n, row, act, load_bf16);
}
