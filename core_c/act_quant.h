/* Private to the tensor-type code (tensor_types.c, act_quant.c, types_*.c):
 * the in-memory layouts of prepared activation rows, the quantizers that
 * fill them, the per-type kernels the table in tensor_types.c points at, and
 * a few byte-level helpers they share. Nothing here is part of the engine's
 * interface: the engine only sees bn_act_row_bytes / bn_act_quantize_row and
 * the table (tensor_types.h).
 *
 * Activation rows are produced by us, in buffers the engine allocates with
 * malloc-like alignment, so their headers may be read through the structs
 * below. Weight rows come straight from a (memory-mapped) file and can sit at
 * any byte offset (an IQ1_BN row is 2 + 13k bytes), so weight scales are
 * always read with bn_rd_f16 / bn_rd_f32 (memcpy), never through a cast.
 *
 * Floating-point contraction: the kernels spell out every fused multiply-add
 * the reference builds perform (fmaf) and expect plain a*b+c elsewhere to stay
 * two roundings, i.e. compile with -ffp-contract=off (the default under
 * -std=c11; GNU dialects with -mfma would otherwise fuse on their own). */
#ifndef BN_ACT_QUANT_H
#define BN_ACT_QUANT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tensor_types.h"

/* ---- Activation layouts ------------------------------------------------ */

/* BN_ACT_Q8_0: n/32 blocks, as upstream ggml's block_q8_0. 34 bytes. */
#define BN_Q8_0_BLOCK 32
typedef struct bn_act_q8_0 {
    uint16_t d;                 /* float16 scale */
    int8_t qs[BN_Q8_0_BLOCK];   /* x ~ d * qs */
} bn_act_q8_0;

/* BN_ACT_Q8_K: n/256 blocks, as upstream ggml's block_q8_K. 292 bytes. */
#define BN_Q8_K_BLOCK 256
typedef struct bn_act_q8_k {
    float d;                        /* x ~ d * qs; d may be negative */
    int8_t qs[BN_Q8_K_BLOCK];
    int16_t bsums[BN_Q8_K_BLOCK / 16]; /* bsums[g] = sum of qs[16g .. 16g+15] */
} bn_act_q8_k;

/* BN_ACT_Q8_K64 (ik_llama.cpp): one header per row, then n int8.
 * Element i belongs to group (i % 16) / 4; x_i ~ d[group] * q_i.
 * minus[g] = d[g] * (sum of q in group g), rounded to float once. */
#define BN_Q8_K64_BLOCK 64
typedef struct bn_act_q8_k64 {
    float d[4];
    float minus[4];
} bn_act_q8_k64; /* followed by int8_t q[n] */

/* BN_ACT_I8_ROW (bitnet.cpp I2_S): one header per row, then n int8, padded
 * to a multiple of 8 bytes so consecutive rows keep the header aligned.
 * x_i ~ q_i / scale. */
typedef struct bn_act_i8_row {
    float scale;   /* 127 / max(max|x|, 1e-5) */
    int32_t sum;   /* sum of q */
} bn_act_i8_row; /* followed by int8_t q[n] */

static inline const int8_t *bn_q8_k64_qs(const bn_act_q8_k64 *h) {
    return (const int8_t *)(const void *)(h + 1);
}
static inline const int8_t *bn_i8_row_qs(const bn_act_i8_row *h) {
    return (const int8_t *)(const void *)(h + 1);
}

/* ---- Quantizers (act_quant.c) ------------------------------------------ */

void bn_quantize_row_q8_0(const float *x, void *out, int64_t n);
void bn_quantize_row_q8_k(const float *x, void *out, int64_t n);
void bn_quantize_row_q8_k64(const float *x, void *out, int64_t n);
void bn_quantize_row_i8_row(const float *x, void *out, int64_t n);

/* ---- Kernels referenced by the type table ------------------------------ */

void bn_f32_to_float(const void *row, float *y, int64_t n);
float bn_f32_vec_dot(int64_t n, const void *row, const void *act);
void bn_f16_to_float(const void *row, float *y, int64_t n);
float bn_f16_vec_dot(int64_t n, const void *row, const void *act);
void bn_bf16_to_float(const void *row, float *y, int64_t n);
float bn_bf16_vec_dot(int64_t n, const void *row, const void *act);

void bn_q8_0_to_float(const void *row, float *y, int64_t n);
float bn_q8_0_vec_dot(int64_t n, const void *row, const void *act);
void bn_q4_k_to_float(const void *row, float *y, int64_t n);
float bn_q4_k_vec_dot(int64_t n, const void *row, const void *act);
void bn_q6_k_to_float(const void *row, float *y, int64_t n);
float bn_q6_k_vec_dot(int64_t n, const void *row, const void *act);

void bn_tq1_0_to_float(const void *row, float *y, int64_t n);
float bn_tq1_0_vec_dot(int64_t n, const void *row, const void *act);
void bn_tq2_0_to_float(const void *row, float *y, int64_t n);
float bn_tq2_0_vec_dot(int64_t n, const void *row, const void *act);
void bn_iq1_bn_to_float(const void *row, float *y, int64_t n);
float bn_iq1_bn_vec_dot(int64_t n, const void *row, const void *act);
void bn_iq2_bn_to_float(const void *row, float *y, int64_t n);
float bn_iq2_bn_vec_dot(int64_t n, const void *row, const void *act);
void bn_i2_s_to_float(const void *row, float *y, int64_t n);
float bn_i2_s_vec_dot(int64_t n, const void *row, const void *act);

/* ---- Shared helpers ---------------------------------------------------- */

/* Little-endian loads from unaligned weight bytes. */
static inline float bn_rd_f32(const uint8_t *p) {
    float f;
    memcpy(&f, p, sizeof f);
    return f;
}
static inline float bn_rd_f16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, sizeof h);
    return bn_fp16_to_fp32(h);
}

/* Sum of 8 lanes in the order of the x86 horizontal add every reference
 * kernel here ends with: fold the upper 4 lanes onto the lower 4, then
 * lanes 2,3 onto 0,1, then lane 1 onto lane 0. */
static inline float bn_hsum4(const float v[4]) {
    return (v[0] + v[2]) + (v[1] + v[3]);
}
static inline float bn_hsum8(const float v[8]) {
    const float h[4] = {v[0] + v[4], v[1] + v[5], v[2] + v[6], v[3] + v[7]};
    return bn_hsum4(h);
}

/* The kernels' fused multiply-add: fmaf(x, y, z), x * y + z rounded once.
 * MinGW-w64's fmaf (libmingwex, 10.0 at least) is not correctly rounded (it
 * splits the operands and rounds partial sums), so on Windows the scalar
 * kernels would not reproduce the FMA instructions of the SIMD ones
 * (test_kernels_*.c under wine, tests/test_c_windows.py). There it is
 * computed here instead: x * y is exact in double; TwoSum gives the exact
 * error of adding z; rounding that sum to odd in double (53 >= 24 + 2 bits)
 * and then to float rounds the exact value once, subnormals included. */
#if defined(__MINGW32__) && !defined(__FMA__)
static inline float bn_fmaf(float x, float y, float z) {
    const double xy = (double)x * (double)y;
    const double s = xy + (double)z;
    if (!(s - s == 0)) return (float)s; /* inf or nan */
    const double zz = s - xy;
    const double err = (xy - (s - zz)) + ((double)z - zz);
    if (err != 0) {
        uint64_t u;
        memcpy(&u, &s, sizeof u);
        if (!(u & 1)) u += ((err > 0) == (s > 0)) ? 1 : (uint64_t)-1; /* to odd, toward the exact value */
        double odd;
        memcpy(&odd, &u, sizeof odd);
        return (float)odd;
    }
    return (float)s;
}
#else
#define bn_fmaf fmaf
#endif

#endif
