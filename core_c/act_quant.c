/* Activation quantizers: turn one float row into the form a weight type's
 * vec_dot consumes. Each follows the code path its reference actually runs
 * on an x86 AVX2 build (the machines the golden data came from):
 *
 * Q8_0   upstream llama.cpp, ggml/src/ggml-cpu/arch/x86/quants.c,
 *        quantize_row_q8_0 (AVX2 branch): amax over the 32 values,
 *        d = amax/127 stored as float16, multiplier 127/amax (0 when amax is
 *        0), products rounded to nearest with ties to even, saturated to int8.
 *        (The portable quantize_row_q8_0_ref multiplies by 1/d and rounds
 *        ties away from zero; the two can differ by one step on a tie or
 *        when 127/amax and 1/d round differently. We follow the AVX2 path.)
 * Q8_K   upstream llama.cpp, ggml/src/ggml-quants.c, quantize_row_q8_K_ref
 *        (the x86 quantize_row_q8_K calls it): per 256 block keep the
 *        element of largest magnitude with its sign (first one on ties),
 *        iscale = -127/max, q = min(127, nearest_int(iscale*x)) with ties to
 *        even, d = 1/iscale, bsums over groups of 16. All-zero block: d = 0.
 * Q8_K64 ik_llama.cpp, ggml/src/iqk/iqk_quantize.cpp, quantize_row_q8_K64_ref
 *        (__AVX__ branch): 4 groups by (i % 16) / 4, each with
 *        d = max|x|/127, multiplier 1/d (0 when d is 0), round to nearest
 *        even, saturate to int8; minus = d * (float)sum(q). ik asserts
 *        n >= 512; we take any multiple of 64.
 * I8_ROW bitnet.cpp's llama.cpp fork, ggml/src/ggml-quants.c,
 *        quantize_row_i8_s: max over |x| in double starting at 1e-5,
 *        scale = (float)(127/max), q = nearest_int(x*scale) (float product,
 *        ties to even), clamped to [-128, 127]; the int32 sum of q is kept.
 *
 * Values are assumed finite (the engine validates its inputs); a NaN is
 * mapped to 0 instead of whatever the reference's integer conversion gives. */
#include <math.h>
#include <string.h>

#include "act_quant.h"

/* Round to nearest, ties to even, saturated to the int8 range. For inputs
 * inside (-2^22, 2^22) this is exactly the references' nearest_int (the
 * 1.5*2^23 trick) and _mm_round_ps(_MM_ROUND_NEAREST); outside, it matches
 * their int8 saturation. */
static int round_i8(float v) {
    if (v != v)
        return 0;
    if (v <= -128.0f)
        return -128;
    if (v >= 127.0f)
        return 127;
    return (int)rintf(v); /* default rounding mode: nearest, ties to even */
}

void bn_quantize_row_q8_0(const float *x, void *out, int64_t n) {
    bn_act_q8_0 *y = out;
    for (int64_t b = 0; b < n / BN_Q8_0_BLOCK; b++, x += BN_Q8_0_BLOCK) {
        float amax = 0.0f;
        for (int j = 0; j < BN_Q8_0_BLOCK; j++) {
            const float a = fabsf(x[j]);
            if (a > amax)
                amax = a;
        }
        y[b].d = bn_fp32_to_fp16(amax / 127.0f);
        const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        for (int j = 0; j < BN_Q8_0_BLOCK; j++)
            y[b].qs[j] = (int8_t)round_i8(x[j] * id);
    }
}

void bn_quantize_row_q8_k(const float *x, void *out, int64_t n) {
    bn_act_q8_k *y = out;
    for (int64_t b = 0; b < n / BN_Q8_K_BLOCK; b++, x += BN_Q8_K_BLOCK) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < BN_Q8_K_BLOCK; j++) {
            const float a = fabsf(x[j]);
            if (a > amax) {
                amax = a;
                max = x[j];
            }
        }
        if (amax == 0.0f) {
            memset(&y[b], 0, sizeof y[b]);
            continue;
        }
        const float iscale = -127.0f / max;
        for (int j = 0; j < BN_Q8_K_BLOCK; j++)
            y[b].qs[j] = (int8_t)round_i8(iscale * x[j]);
        for (int g = 0; g < BN_Q8_K_BLOCK / 16; g++) {
            int sum = 0;
            for (int j = 0; j < 16; j++)
                sum += y[b].qs[16 * g + j];
            y[b].bsums[g] = (int16_t)sum;
        }
        y[b].d = 1.0f / iscale;
    }
}

void bn_quantize_row_q8_k64(const float *x, void *out, int64_t n) {
    bn_act_q8_k64 *h = out;
    int8_t *q = (int8_t *)(void *)(h + 1);

    float amax[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int64_t i = 0; i < n; i++) {
        const int g = (int)(i % 16) / 4;
        const float a = fabsf(x[i]);
        if (a > amax[g])
            amax[g] = a;
    }
    float id[4];
    for (int g = 0; g < 4; g++) {
        h->d[g] = amax[g] / 127.0f;
        id[g] = h->d[g] > 0.0f ? 1.0f / h->d[g] : 0.0f;
    }
    int32_t sum[4] = {0, 0, 0, 0};
    for (int64_t i = 0; i < n; i++) {
        const int g = (int)(i % 16) / 4;
        q[i] = (int8_t)round_i8(id[g] * x[i]);
        sum[g] += q[i];
    }
    for (int g = 0; g < 4; g++)
        h->minus[g] = h->d[g] * (float)sum[g];
}

void bn_quantize_row_i8_row(const float *x, void *out, int64_t n) {
    bn_act_i8_row *h = out;
    int8_t *q = (int8_t *)(void *)(h + 1);

    double max = 0.00001;
    for (int64_t i = 0; i < n; i++) {
        const double a = fabs((double)x[i]);
        if (a > max)
            max = a;
    }
    const float s = (float)(127.0 / max);
    int32_t sum = 0;
    for (int64_t i = 0; i < n; i++) {
        q[i] = (int8_t)round_i8(x[i] * s);
        sum += q[i];
    }
    h->scale = s;
    h->sum = sum;
    /* zero the padding so rows compare and hash deterministically */
    const size_t pad = bn_act_row_bytes(BN_ACT_I8_ROW, n) - sizeof *h - (size_t)n;
    memset(q + n, 0, pad);
}
