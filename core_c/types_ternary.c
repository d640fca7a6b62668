/* Ternary weight types: TQ1_0, TQ2_0 (upstream ggml), IQ1_BN, IQ2_BN
 * (ik_llama.cpp) and I2_S (bitnet.cpp). Layouts: docs/formats.md.
 *
 * TQ1_0, TQ2_0 x Q8_K -- upstream llama.cpp:
 *   layout and dequantization: ggml/src/ggml-common.h (block_tq1_0,
 *   block_tq2_0), ggml/src/ggml-quants.c (dequantize_row_tq1_0 / _tq2_0:
 *   value = (float)(trit - 1) * fp16(d)); trit of a base-3 byte b with
 *   multiplier 3^s: ((uint8_t)(b * 3^s) * 3) >> 8.
 *   dot product: ggml/src/ggml-cpu/arch/x86/quants.c, ggml_vec_dot_tq1_0_q8_K
 *   and ggml_vec_dot_tq2_0_q8_K (AVX2). They multiply the stored codes 0..2
 *   (not the trits) with the int8 activations, keep 8 int32 lanes (lane L:
 *   positions p with (p % 32) / 4 == L), subtract the activation group sums
 *   bsums[2L] + bsums[2L+1] from lane L (this undoes the +1 offset), then
 *   per block acc[L] += (float)lane[L] * (y.d * fp16(d)) and finally fold the
 *   lanes (bn_hsum8). The kernel writes that update as _mm256_mul_ps then
 *   _mm256_add_ps; GCC (the compiler of the golden builds, -march=native,
 *   GNU C's default -ffp-contract=fast) fuses the pair into one FMA, so we
 *   use fmaf. (The generic C kernel instead sums one int per block and does
 *   sumf += (float)sumi * d; the two agree to float rounding.)
 *
 * IQ1_BN, IQ2_BN x Q8_K64 -- ik_llama.cpp:
 *   layout and dequantization: ggml/src/iqk/iqk_quantize.cpp,
 *   dequantize_row_iq1_bn / dequantize_row_iq2_bn (multipliers 81, 27, 9,
 *   3, 1; trit = (3 * (uint8_t)(b * mult)) >> 8); the row scale in front of
 *   the row (ggml.c row_meta_size; iqk_common.h BaseDequantizer::new_row)
 *   multiplies the trit here, since to_float returns the weights.
 *   dot product: ggml/src/iqk/iqk_gemm_1bit.cpp, mul_mat_iq1bn_q8_K64 and
 *   mul_mat_iq2bn_q8_K64 (AVX2): the codes 0..2 times int8 activations are
 *   summed in int32 over the whole row into 4 lanes, lane g holding the
 *   positions with (i % 16) / 4 == g (the Q8_K64 groups); then
 *   f_g = fma(d_g, (float)S_g, -minus_g) (_mm_fmsub_ps), and the result is
 *   d_row * ((f_0 + f_2) + (f_1 + f_3)) (hsum_float_4).
 *   Not reproduced: for an odd number of 64-blocks, ik's IQ2_BN AVX2 tail
 *   multiplies the last block's weights 32..63 with activations 0..31 of
 *   that block (it loads quant group 0 twice); we compute the correct dot.
 *   Every shape ik can run with these types (rows >= 512, n_embd and n_ff
 *   multiples of 128) has an even block count, so this never matters there.
 *
 * I2_S x I8_ROW -- bitnet.cpp (github microsoft/BitNet 16da220a):
 *   layout: src/ggml-bitnet-mad.cpp, quantize_i2_s (ACT_PARALLEL, the
 *   default in include/gemm-config.h, x86: QK_I2_S = 128): weight j of a
 *   128-block sits in byte j % 32 of the block's 32 bytes at bits
 *   6 - 2*(j / 32); code 0, 1, 2 = -1, 0, +1.
 *   dot product: ggml_vec_dot_i2_i8_s_1x1 / _Nx1 (AVX2) sum code * q8 in
 *   16 int16 lanes (lane m: bytes 2m, 2m+1 of each 32-byte block) over runs
 *   of 32 blocks (4096 weights), widening to int32 after each run; a lane
 *   that passes +-32767 inside a run wraps. We reproduce the wrap (it needs
 *   |activation| sums beyond anything RMS-normed rows produce).
 *   The fork's ggml.c (mul_mat, I2_S case) then computes
 *   ((float)sumi - act_sum) / act_scale * tensor_scale; vec_dot returns
 *   the part before "* tensor_scale", which the caller applies. */
#include <math.h>

#include "act_quant.h"

/* Trit (0..2) stored in a base-3 byte, selected by its multiplier 3^k. */
static inline int trit(uint8_t b, unsigned mult) {
    const uint8_t m = (uint8_t)(b * mult);
    return (m * 3) >> 8;
}

static const unsigned k_pow3[5] = {1, 3, 9, 27, 81};

/* ---- TQ1_0: qs[48], qh[4], fp16 d; 54 bytes per 256 ------------------- */

static inline int tq1_0_code(const uint8_t *blk, int p) {
    if (p < 160) /* qs[0..31]: weights j + 32s */
        return trit(blk[p % 32], k_pow3[p / 32]);
    if (p < 240) { /* qs[32..47]: weights 160 + j + 16s */
        const int r = p - 160;
        return trit(blk[32 + r % 16], k_pow3[r / 16]);
    }
    const int r = p - 240; /* qh[0..3]: weights 240 + j + 4s */
    return trit(blk[48 + r % 4], k_pow3[r / 4]);
}

/* ---- TQ2_0: qs[64], fp16 d; 66 bytes per 256 --------------------------- */

static inline int tq2_0_code(const uint8_t *blk, int p) {
    const int half = p / 128, r = p % 128;
    return (blk[32 * half + r % 32] >> (2 * (r / 32))) & 3;
}

typedef int (*block_code_fn)(const uint8_t *blk, int p);

static void tq_to_float(const uint8_t *p, float *y, int64_t n, size_t bytes, block_code_fn code) {
    for (int64_t b = 0; b < n / 256; b++, p += bytes) {
        const float d = bn_rd_f16(p + bytes - 2);
        for (int i = 0; i < 256; i++)
            *y++ = (float)(code(p, i) - 1) * d;
    }
}

static float tq_vec_dot(int64_t n, const uint8_t *p, const bn_act_q8_k *a, size_t bytes,
                        block_code_fn code) {
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int64_t b = 0; b < n / 256; b++, p += bytes) {
        int32_t lane[8];
        for (int l = 0; l < 8; l++)
            lane[l] = -(a[b].bsums[2 * l] + a[b].bsums[2 * l + 1]);
        for (int i = 0; i < 256; i++)
            lane[(i % 32) / 4] += code(p, i) * a[b].qs[i];
        const float d = a[b].d * bn_rd_f16(p + bytes - 2);
        for (int l = 0; l < 8; l++)
            acc[l] = bn_fmaf((float)lane[l], d, acc[l]);
    }
    return bn_hsum8(acc);
}

void bn_tq1_0_to_float(const void *row, float *y, int64_t n) {
    tq_to_float(row, y, n, 54, tq1_0_code);
}

float bn_tq1_0_vec_dot(int64_t n, const void *row, const void *act) {
    return tq_vec_dot(n, row, act, 54, tq1_0_code);
}

void bn_tq2_0_to_float(const void *row, float *y, int64_t n) {
    tq_to_float(row, y, n, 66, tq2_0_code);
}

float bn_tq2_0_vec_dot(int64_t n, const void *row, const void *act) {
    return tq_vec_dot(n, row, act, 66, tq2_0_code);
}

/* ---- IQ1_BN: fp16 row scale, then 13 bytes per 64 ---------------------- */

/* Weight i of a block: group g = i / 16; the first 15 of each group are
 * 3 bytes x 5 trits in ql[3g .. 3g+2], the 16th is trit g of `extra`. */
static inline int iq1_bn_code(const uint8_t *blk, int i) {
    const int g = i / 16, r = i % 16;
    if (r == 15)
        return trit(blk[12], k_pow3[4 - g]);
    return trit(blk[3 * g + r / 5], k_pow3[4 - r % 5]);
}

/* ---- IQ2_BN: f32 row scale, then 16 bytes per 64 ------------------------ */

static inline int iq2_bn_code(const uint8_t *blk, int i) {
    return (blk[i % 16] >> (2 * (i / 16))) & 3;
}

static void bn_row_to_float(const uint8_t *blocks, float d, float *y, int64_t n, size_t bytes,
                            block_code_fn code) {
    for (int64_t b = 0; b < n / 64; b++, blocks += bytes)
        for (int i = 0; i < 64; i++)
            *y++ = (float)(code(blocks, i) - 1) * d;
}

static float bn_row_vec_dot(int64_t n, const uint8_t *blocks, float d_row, const bn_act_q8_k64 *a,
                            size_t bytes, block_code_fn code) {
    const int8_t *q8 = bn_q8_k64_qs(a);
    int32_t sum[4] = {0, 0, 0, 0};
    for (int64_t b = 0; b < n / 64; b++, blocks += bytes, q8 += 64)
        for (int i = 0; i < 64; i++)
            sum[(i % 16) / 4] += code(blocks, i) * q8[i];
    float f[4];
    for (int g = 0; g < 4; g++)
        f[g] = bn_fmaf(a->d[g], (float)sum[g], -a->minus[g]);
    return d_row * bn_hsum4(f);
}

void bn_iq1_bn_to_float(const void *row, float *y, int64_t n) {
    const uint8_t *p = row;
    bn_row_to_float(p + 2, bn_rd_f16(p), y, n, 13, iq1_bn_code);
}

float bn_iq1_bn_vec_dot(int64_t n, const void *row, const void *act) {
    const uint8_t *p = row;
    return bn_row_vec_dot(n, p + 2, bn_rd_f16(p), act, 13, iq1_bn_code);
}

void bn_iq2_bn_to_float(const void *row, float *y, int64_t n) {
    const uint8_t *p = row;
    bn_row_to_float(p + 4, bn_rd_f32(p), y, n, 16, iq2_bn_code);
}

float bn_iq2_bn_vec_dot(int64_t n, const void *row, const void *act) {
    const uint8_t *p = row;
    return bn_row_vec_dot(n, p + 4, bn_rd_f32(p), act, 16, iq2_bn_code);
}

/* ---- I2_S: 32 bytes per 128, per-tensor scale in the tensor's tail ----- */

static inline int i2_s_code(const uint8_t *blk, int j) {
    return (blk[j % 32] >> (6 - 2 * (j / 32))) & 3;
}

void bn_i2_s_to_float(const void *row, float *y, int64_t n) {
    const uint8_t *p = row;
    for (int64_t b = 0; b < n / 128; b++, p += 32)
        for (int j = 0; j < 128; j++)
            *y++ = (float)(i2_s_code(p, j) - 1);
}

/* Value of an int16 register lane holding v modulo 2^16. */
static inline int32_t wrap_i16(int32_t v) {
    int32_t w = v & 0xffff;
    return w >= 0x8000 ? w - 0x10000 : w;
}

float bn_i2_s_vec_dot(int64_t n, const void *row, const void *act) {
    const uint8_t *p = row;
    const bn_act_i8_row *a = act;
    const int8_t *q8 = bn_i8_row_qs(a);
    const int64_t nb = n / 128;
    int32_t total = 0;
    for (int64_t run = 0; run < nb; run += 32) { /* runs of 32 blocks */
        int32_t lane[16] = {0};
        const int64_t end = run + 32 < nb ? run + 32 : nb;
        for (int64_t b = run; b < end; b++)
            for (int j = 0; j < 128; j++)
                lane[(j % 32) / 2] += i2_s_code(p + 32 * b, j) * q8[128 * b + j];
        for (int m = 0; m < 16; m++)
            total += wrap_i16(lane[m]);
    }
    return ((float)total - (float)a->sum) / a->scale;
}
