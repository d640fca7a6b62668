/* The tensor type table and the activation-format dispatch.
 *
 * Block sizes and byte counts are those of the on-disk formats:
 *   upstream ggml (ggml/src/ggml-common.h): Q8_0, Q4_K, Q6_K, TQ1_0, TQ2_0;
 *   ik_llama.cpp (ggml/src/ggml.c type_traits, row_meta_size): IQ1_BN with a
 *     float16 and IQ2_BN with a float32 scale in front of every row;
 *   bitnet.cpp (src/ggml-bitnet-mad.cpp, x86 layout, QK_I2_S = 128): I2_S,
 *     2 bits a weight, one float32 scale for the whole tensor stored right
 *     after the packed bytes, the tensor padded by 32 bytes.
 * The kernels live in types_float.c, types_kquants.c and types_ternary.c,
 * the activation quantizers in act_quant.c. */
#include <stdint.h>
#include <string.h>

#include "act_quant.h"
#include "tensor_types.h"

static const bn_type_traits k_types[] = {
    {BN_TYPE_F32, "F32", 1, 4, 0, 0, BN_ACT_F32, bn_f32_to_float, bn_f32_vec_dot},
    {BN_TYPE_F16, "F16", 1, 2, 0, 0, BN_ACT_F32, bn_f16_to_float, bn_f16_vec_dot},
    {BN_TYPE_BF16, "BF16", 1, 2, 0, 0, BN_ACT_F32, bn_bf16_to_float, bn_bf16_vec_dot},
    {BN_TYPE_Q8_0, "Q8_0", 32, 34, 0, 0, BN_ACT_Q8_0, bn_q8_0_to_float, bn_q8_0_vec_dot},
    {BN_TYPE_Q4_K, "Q4_K", 256, 144, 0, 0, BN_ACT_Q8_K, bn_q4_k_to_float, bn_q4_k_vec_dot},
    {BN_TYPE_Q6_K, "Q6_K", 256, 210, 0, 0, BN_ACT_Q8_K, bn_q6_k_to_float, bn_q6_k_vec_dot},
    {BN_TYPE_TQ1_0, "TQ1_0", 256, 54, 0, 0, BN_ACT_Q8_K, bn_tq1_0_to_float, bn_tq1_0_vec_dot},
    {BN_TYPE_TQ2_0, "TQ2_0", 256, 66, 0, 0, BN_ACT_Q8_K, bn_tq2_0_to_float, bn_tq2_0_vec_dot},
    {BN_TYPE_I2_S, "I2_S", 128, 32, 0, 32, BN_ACT_I8_ROW, bn_i2_s_to_float, bn_i2_s_vec_dot},
    {BN_TYPE_IQ1_BN, "IQ1_BN", 64, 13, 2, 0, BN_ACT_Q8_K64, bn_iq1_bn_to_float, bn_iq1_bn_vec_dot},
    {BN_TYPE_IQ2_BN, "IQ2_BN", 64, 16, 4, 0, BN_ACT_Q8_K64, bn_iq2_bn_to_float, bn_iq2_bn_vec_dot},
};

const bn_type_traits *bn_type_get(uint32_t type) {
    for (size_t i = 0; i < sizeof k_types / sizeof k_types[0]; i++)
        if ((uint32_t)k_types[i].type == type)
            return &k_types[i];
    return NULL;
}

/* blocks * block_bytes + extra, or 0 if n is not a positive multiple of
 * block or the size does not fit a size_t. */
static size_t blocks_bytes(int64_t n, int64_t block, size_t block_bytes, size_t extra) {
    if (n <= 0 || block <= 0 || n % block != 0)
        return 0;
    const uint64_t nb = (uint64_t)(n / block);
    if (nb > (SIZE_MAX - extra) / block_bytes)
        return 0;
    return (size_t)nb * block_bytes + extra;
}

size_t bn_type_row_bytes(const bn_type_traits *t, int64_t n) {
    if (!t)
        return 0;
    return blocks_bytes(n, t->block_size, t->block_bytes, t->row_meta_bytes);
}

float bn_type_tensor_scale(const bn_type_traits *t, const void *data, int64_t n_elements) {
    if (!t || !data || t->type != BN_TYPE_I2_S || n_elements <= 0)
        return 1.0f;
    /* bitnet.cpp: the float sits right after the n/4 packed bytes */
    return bn_rd_f32((const uint8_t *)data + n_elements / 4);
}

size_t bn_act_row_bytes(bn_act_kind act, int64_t n) {
    switch (act) {
    case BN_ACT_F32:
        return blocks_bytes(n, 1, sizeof(float), 0);
    case BN_ACT_Q8_0:
        return blocks_bytes(n, BN_Q8_0_BLOCK, sizeof(bn_act_q8_0), 0);
    case BN_ACT_Q8_K:
        return blocks_bytes(n, BN_Q8_K_BLOCK, sizeof(bn_act_q8_k), 0);
    case BN_ACT_Q8_K64:
        return blocks_bytes(n, BN_Q8_K64_BLOCK, BN_Q8_K64_BLOCK, sizeof(bn_act_q8_k64));
    case BN_ACT_I8_ROW: {
        /* header + n int8, rounded up to 8 bytes */
        const size_t raw = blocks_bytes(n, 1, 1, sizeof(bn_act_i8_row));
        if (raw == 0 || raw > SIZE_MAX - 7)
            return 0;
        return (raw + 7) & ~(size_t)7;
    }
    case BN_ACT_COUNT:
        break;
    }
    return 0;
}

void bn_act_quantize_row(bn_act_kind act, const float *x, void *out, int64_t n) {
    switch (act) {
    case BN_ACT_F32:
        memcpy(out, x, (size_t)n * sizeof(float));
        return;
    case BN_ACT_Q8_0:
        bn_quantize_row_q8_0(x, out, n);
        return;
    case BN_ACT_Q8_K:
        bn_quantize_row_q8_k(x, out, n);
        return;
    case BN_ACT_Q8_K64:
        bn_quantize_row_q8_k64(x, out, n);
        return;
    case BN_ACT_I8_ROW:
        bn_quantize_row_i8_row(x, out, n);
        return;
    case BN_ACT_COUNT:
        break;
    }
}
