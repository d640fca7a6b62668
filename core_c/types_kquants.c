/* Upstream ggml weight types Q8_0, Q4_K and Q6_K.
 *
 * Layouts and dequantization: upstream llama.cpp ggml/src/ggml-common.h
 * (block_q8_0, block_q4_K, block_q6_K) and ggml/src/ggml-quants.c
 * (dequantize_row_q8_0, dequantize_row_q4_K with get_scale_min_k4,
 * dequantize_row_q6_K), including their float operation order.
 *
 * Dot products: what the AVX2 kernels of ggml/src/ggml-cpu/arch/x86/quants.c
 * compute (ggml_vec_dot_q8_0_q8_0, ggml_vec_dot_q4_K_q8_K,
 * ggml_vec_dot_q6_K_q8_K), which is what the golden runs executed. Their
 * integer sums are exact, so only the float side needs care: each kernel
 * keeps 8 float lanes, lane L collecting the integer partial sum of the
 * activation positions p with (p % 32) / 4 == L, multiplied by the block's
 * combined scale with a fused multiply-add (_mm256_fmadd_ps -> fmaf), and
 * folds the lanes at the end (bn_hsum8). We form the same per-lane integers
 * and the same float operations in plain C.
 *
 *   Q8_0 x Q8_0: lane L of block b = sum of x*y over bytes 4L..4L+3;
 *       scale fp16(x.d) * fp16(y.d).
 *   Q4_K x Q8_K: lane L = sum over the 8 sub-blocks j of sc[j] * (sum of
 *       q4*y at positions of lane L in sub-block j); scale y.d * fp16(d).
 *       The mins go to 4 separate float lanes: lane k gets
 *       m[2k]*(bsums[4k]+bsums[4k+1]) + m[2k+1]*(bsums[4k+2]+bsums[4k+3])
 *       times -y.d * fp16(dmin); the result is hsum8(acc) + hsum4(acc_m).
 *   Q6_K x Q8_K: the 6-bit codes are used unsigned (0..63) and the -32
 *       offset is taken off per lane as 32*(bsums[2L]*sc[2L] +
 *       bsums[2L+1]*sc[2L+1]); scale y.d * fp16(d). */
#include <math.h>

#include "act_quant.h"

/* ---- Q8_0: fp16 d, 32 int8 ---------------------------------------------- */

void bn_q8_0_to_float(const void *row, float *y, int64_t n) {
    const uint8_t *p = row;
    for (int64_t b = 0; b < n / 32; b++, p += 34) {
        const float d = bn_rd_f16(p);
        const int8_t *qs = (const int8_t *)(p + 2);
        for (int j = 0; j < 32; j++)
            *y++ = (float)qs[j] * d;
    }
}

float bn_q8_0_vec_dot(int64_t n, const void *row, const void *act) {
    const uint8_t *p = row;
    const bn_act_q8_0 *a = act;
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int64_t b = 0; b < n / 32; b++, p += 34) {
        const int8_t *qs = (const int8_t *)(p + 2);
        const float d = bn_rd_f16(p) * bn_fp16_to_fp32(a[b].d);
        for (int l = 0; l < 8; l++) {
            int sum = 0;
            for (int k = 4 * l; k < 4 * l + 4; k++)
                sum += qs[k] * a[b].qs[k];
            acc[l] = bn_fmaf(d, (float)sum, acc[l]);
        }
    }
    return bn_hsum8(acc);
}

/* ---- Q4_K: fp16 d, fp16 dmin, 12 bytes of 6-bit scales/mins, 128 qs ---- */

/* The 8 scales and 8 mins of a Q4_K block (get_scale_min_k4 for j = 0..7). */
static void q4_k_scales(const uint8_t *s, uint8_t sc[8], uint8_t m[8]) {
    for (int j = 0; j < 4; j++) {
        sc[j] = s[j] & 63;
        m[j] = s[j + 4] & 63;
    }
    for (int j = 4; j < 8; j++) {
        sc[j] = (uint8_t)((s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4));
        m[j] = (uint8_t)((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
    }
}

/* 4-bit code of weight p (0..255): sub-block pair j = p / 64 uses bytes
 * qs[32j .. 32j+31], low nibbles first. */
static inline int q4_k_code(const uint8_t *qs, int p) {
    const uint8_t byte = qs[32 * (p / 64) + p % 32];
    return (p % 64) < 32 ? (byte & 0x0f) : (byte >> 4);
}

void bn_q4_k_to_float(const void *row, float *y, int64_t n) {
    const uint8_t *p = row;
    for (int64_t b = 0; b < n / 256; b++, p += 144) {
        const float d = bn_rd_f16(p);
        const float dmin = bn_rd_f16(p + 2);
        uint8_t sc[8], m[8];
        q4_k_scales(p + 4, sc, m);
        const uint8_t *qs = p + 16;
        for (int s = 0; s < 8; s++) { /* sub-blocks of 32 */
            const float ds = d * (float)sc[s];
            const float ms = dmin * (float)m[s];
            for (int l = 0; l < 32; l++)
                *y++ = ds * (float)q4_k_code(qs, 32 * s + l) - ms;
        }
    }
}

float bn_q4_k_vec_dot(int64_t n, const void *row, const void *act) {
    const uint8_t *p = row;
    const bn_act_q8_k *a = act;
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    float acc_m[4] = {0, 0, 0, 0};
    for (int64_t b = 0; b < n / 256; b++, p += 144) {
        const float d = a[b].d * bn_rd_f16(p);
        const float dmin = -a[b].d * bn_rd_f16(p + 2);
        uint8_t sc[8], m[8];
        q4_k_scales(p + 4, sc, m);
        const uint8_t *qs = p + 16;

        for (int k = 0; k < 4; k++) {
            const int16_t *bs = a[b].bsums;
            const int prod = m[2 * k] * (bs[4 * k] + bs[4 * k + 1]) +
                             m[2 * k + 1] * (bs[4 * k + 2] + bs[4 * k + 3]);
            acc_m[k] = bn_fmaf(dmin, (float)prod, acc_m[k]);
        }

        int32_t lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (int s = 0; s < 8; s++) {
            int32_t part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            for (int l = 0; l < 32; l++) {
                const int pos = 32 * s + l;
                part[l / 4] += q4_k_code(qs, pos) * a[b].qs[pos];
            }
            for (int l = 0; l < 8; l++)
                lane[l] += sc[s] * part[l];
        }
        for (int l = 0; l < 8; l++)
            acc[l] = bn_fmaf(d, (float)lane[l], acc[l]);
    }
    return bn_hsum8(acc) + bn_hsum4(acc_m);
}

/* ---- Q6_K: 128 ql, 64 qh, 16 int8 scales, fp16 d ---------------------- */

/* Unsigned 6-bit code (0..63) of weight p; the value is code - 32. In each
 * 128-weight half h, quarter t (32 weights) takes the low (t = 0, 1) or high
 * (t = 2, 3) nibbles of ql[64h + 32*(t%2) + l] and bits 2t..2t+1 of qh[32h + l]. */
static inline int q6_k_code(const uint8_t *ql, const uint8_t *qh, int p) {
    const int h = p / 128, t = (p % 128) / 32, l = p % 32;
    const uint8_t lo = ql[64 * h + 32 * (t % 2) + l];
    const int low4 = t < 2 ? (lo & 0x0f) : (lo >> 4);
    const int high2 = (qh[32 * h + l] >> (2 * t)) & 3;
    return low4 | (high2 << 4);
}

void bn_q6_k_to_float(const void *row, float *y, int64_t n) {
    const uint8_t *p = row;
    for (int64_t b = 0; b < n / 256; b++, p += 210) {
        const uint8_t *ql = p, *qh = p + 128;
        const int8_t *sc = (const int8_t *)(p + 192);
        const float d = bn_rd_f16(p + 208);
        for (int i = 0; i < 256; i++)
            *y++ = d * (float)sc[i / 16] * (float)(q6_k_code(ql, qh, i) - 32);
    }
}

float bn_q6_k_vec_dot(int64_t n, const void *row, const void *act) {
    const uint8_t *p = row;
    const bn_act_q8_k *a = act;
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int64_t b = 0; b < n / 256; b++, p += 210) {
        const uint8_t *ql = p, *qh = p + 128;
        const int8_t *sc = (const int8_t *)(p + 192);
        const float d = a[b].d * bn_rd_f16(p + 208);

        int32_t lane[8];
        for (int l = 0; l < 8; l++) /* the -32 offset, per lane */
            lane[l] = -32 * (a[b].bsums[2 * l] * sc[2 * l] + a[b].bsums[2 * l + 1] * sc[2 * l + 1]);
        for (int g = 0; g < 16; g++) { /* groups of 16 share a scale */
            int32_t part[4] = {0, 0, 0, 0};
            for (int k = 0; k < 16; k++) {
                const int pos = 16 * g + k;
                part[k / 4] += q6_k_code(ql, qh, pos) * a[b].qs[pos];
            }
            for (int k = 0; k < 4; k++) /* lane of position 16g + 4k */
                lane[(16 * g) % 32 / 4 + k] += sc[g] * part[k];
        }
        for (int l = 0; l < 8; l++)
            acc[l] = bn_fmaf(d, (float)lane[l], acc[l]);
    }
    return bn_hsum8(acc);
}
