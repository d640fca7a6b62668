/* The tensor type table: one entry per on-disk weight format.
 *
 * Every format the engine reads is described here once (block size, bytes,
 * how to dequantize a row, how to take the dot product of a row with a
 * prepared activation row). The engine dispatches through this table, never
 * through switch statements scattered over the code (see docs/architecture.md).
 *
 * Arithmetic follows the reference implementation of each format exactly
 * (see ../shared/docs/formats.md, copied in docs/formats.md):
 *   TQ1_0, TQ2_0, Q4_K, Q6_K  x  Q8_K activations    (upstream llama.cpp)
 *   Q8_0                      x  Q8_0 activations    (upstream llama.cpp)
 *   IQ1_BN, IQ2_BN            x  Q8_K64 activations  (ik_llama.cpp)
 *   I2_S                      x  one int8 scale per token (bitnet.cpp)
 *   F32, F16, BF16            x  float32 activations
 */
#ifndef BN_TENSOR_TYPES_H
#define BN_TENSOR_TYPES_H

#include <stddef.h>
#include <stdint.h>

/* GGUF / ggml type ids (the numbers stored in files). */
typedef enum bn_type_id {
    BN_TYPE_F32 = 0,
    BN_TYPE_F16 = 1,
    BN_TYPE_Q8_0 = 8,
    BN_TYPE_Q4_K = 12,
    BN_TYPE_Q6_K = 14,
    BN_TYPE_BF16 = 30,
    BN_TYPE_TQ1_0 = 34,
    BN_TYPE_TQ2_0 = 35,
    BN_TYPE_I2_S = 36,    /* Microsoft bitnet.cpp, x86 layout */
    BN_TYPE_IQ1_BN = 134, /* ik_llama.cpp */
    BN_TYPE_IQ2_BN = 135, /* ik_llama.cpp */
} bn_type_id;

/* How activations are prepared before they meet a weight row. */
typedef enum bn_act_kind {
    BN_ACT_F32 = 0,    /* plain float32 row */
    BN_ACT_Q8_0 = 1,   /* blocks of 32: fp16 scale + 32 int8 (upstream ggml) */
    BN_ACT_Q8_K = 2,   /* blocks of 256: float scale, 256 int8, 16 int16 group sums */
    BN_ACT_Q8_K64 = 3, /* per row: 4 group scales, 4 group sums, n int8 (ik_llama) */
    BN_ACT_I8_ROW = 4, /* per row: one float scale, int32 sum, n int8 (bitnet.cpp I2_S) */
    BN_ACT_COUNT
} bn_act_kind;

typedef struct bn_type_traits {
    int type;                 /* bn_type_id */
    const char *name;         /* "F32", "TQ2_0", "IQ2_BN", ... */
    int64_t block_size;       /* weights per block; a row length must be a multiple */
    size_t block_bytes;       /* bytes per block */
    size_t row_meta_bytes;    /* bytes in front of every row (IQ1_BN: 2, IQ2_BN: 4) */
    size_t tensor_tail_bytes; /* bytes after all rows (I2_S: 32, the scale lives there) */
    bn_act_kind act;          /* activation format vec_dot consumes */

    /* Dequantize one row of n weights. `row` points at the row's first byte
     * (its row meta included). For I2_S the result is the trit (-1/0/+1):
     * the per-tensor scale is applied by the caller (see bn_type_tensor_scale). */
    void (*to_float)(const void *row, float *y, int64_t n);

    /* Dot product of one weight row (n weights) with one activation row
     * prepared by bn_act_quantize_row(act, ...). Same scale convention as
     * to_float: I2_S returns the sum without the per-tensor scale. */
    float (*vec_dot)(int64_t n, const void *row, const void *act_row);
} bn_type_traits;

/* The entry for a GGUF type id, or NULL when the engine does not know it. */
const bn_type_traits *bn_type_get(uint32_t type);

/* Bytes of one row of n weights, or 0 when n is not a multiple of the block
 * size. (Overflow-safe for n < 2^62.) */
size_t bn_type_row_bytes(const bn_type_traits *t, int64_t n);

/* Per-tensor scale stored in the tensor's tail (I2_S), else 1.0f.
 * `data` is the tensor's first byte, n_elements the total weight count. */
float bn_type_tensor_scale(const bn_type_traits *t, const void *data, int64_t n_elements);

/* Bytes needed for one activation row of n floats in format `act`
 * (n must be a multiple of the format's block: 32 for Q8_0, 256 for Q8_K,
 * 64 for Q8_K64). */
size_t bn_act_row_bytes(bn_act_kind act, int64_t n);

/* Quantize one activation row of n floats into `out` (bn_act_row_bytes bytes),
 * exactly as the format's reference implementation does. */
void bn_act_quantize_row(bn_act_kind act, const float *x, void *out, int64_t n);

/* IEEE half / bfloat16 conversions (round to nearest even). */
float bn_fp16_to_fp32(uint16_t h);
uint16_t bn_fp32_to_fp16(float f);
float bn_bf16_to_fp32(uint16_t h);

#endif
