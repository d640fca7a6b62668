/* Kernel sets: the hot loops of the engine, one implementation per
 * instruction-set variant, chosen at run time.
 *
 * A bn_kernels value is a table of function pointers. bn_kernels_init fills
 * it with the scalar reference (built from the type table's vec_dot, see
 * tensor_types.h) and then lets the chosen variant override the entries it
 * implements. Each loaded model holds its own copy, so two models in one
 * process can run different variants (tests and benchmarks force one with
 * BITNET_KERNEL=scalar|avx2|avx512|neon|wasm_simd).
 *
 * Exactness contract (tests/c/test_kernels*.c check it for every variant
 * the machine can run): every entry returns bit for bit what the scalar
 * reference returns. The scalar kernels are written in the lane shape of the
 * reference builds' AVX2 code (see types_*.c), so a SIMD variant reproduces
 * them by keeping the same per-lane integer sums and the same float
 * operations (fma where the scalar calls fmaf, mul then add elsewhere, the
 * bn_hsum8 fold at the end).
 *
 * Variant files (kernels_<isa>_*.c) compile on every platform: on a target
 * where the ISA cannot exist they reduce to a fill function that does
 * nothing, so the build never needs per-file flags. x86 variants use
 * function-level target attributes (never -march), see kernels_x86.h. */
#ifndef BN_KERNELS_H
#define BN_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "bn_error.h"
#include "tensor_types.h"

typedef enum bn_isa {
    BN_ISA_SCALAR = 0,
    BN_ISA_AVX2 = 1,      /* x86-64: AVX2 + FMA + F16C */
    BN_ISA_AVX512 = 2,    /* x86-64: AVX-512 F/BW/VL (+VNNI when present), includes AVX2 */
    BN_ISA_NEON = 3,      /* aarch64: Advanced SIMD (+dotprod when present) */
    BN_ISA_WASM_SIMD = 4, /* WebAssembly SIMD128 */
    BN_ISA_COUNT
} bn_isa;

/* Largest GGUF type id in the type table, plus one (IQ2_BN = 135). */
#define BN_TYPE_ID_LIMIT 136

/* Raw dot products of a block of weight rows with a block of prepared
 * activation rows:
 *     y[t * y_stride + r] = vec_dot(n, w + r * w_row_bytes, act + t * act_row_bytes)
 * for r < n_rows, t < n_tok, where vec_dot is the type's scalar reference
 * (tensor_types.h): no tensor scale, no bias. `w` may be any byte address
 * (weights are mmapped); `act` rows are laid out by bn_act_quantize_row and
 * act_row_bytes is bn_act_row_bytes(...), so their headers are aligned.
 * Prefill calls this with many tokens so a kernel can reuse each loaded
 * weight block for several tokens (GEMM); decode calls it with n_tok = 1. */
typedef void (*bn_mul_mat_fn)(int64_t n, const uint8_t *w, size_t w_row_bytes, int64_t n_rows,
                              const uint8_t *act, size_t act_row_bytes, int64_t n_tok, float *y,
                              int64_t y_stride);

/* Prepare one activation row (bn_act_quantize_row's contract). */
typedef void (*bn_act_quantize_fn)(const float *x, void *out, int64_t n);

typedef struct bn_kernels {
    bn_isa isa;
    const char *name; /* "scalar", "avx2", ... */

    /* Indexed by GGUF type id; NULL where the type table has no entry. */
    bn_mul_mat_fn mul_mat[BN_TYPE_ID_LIMIT];
    /* Indexed by bn_act_kind; BN_ACT_F32 copies the row. */
    bn_act_quantize_fn quantize[BN_ACT_COUNT];

    /* Attention over the KV cache. Scores are mul_mat[F16 or F32] over the
     * cached keys (rows with a stride of one cache row, the query heads of a
     * group as the "tokens"); the values are accumulated with axpy:
     *     y[i] = y[i] + a * x[i]  (a multiply, then an add: two roundings). */
    void (*axpy_f16)(int64_t n, float a, const uint16_t *x, float *y);
    void (*axpy_f32)(int64_t n, float a, const float *x, float *y);
    /* IEEE half conversions of whole rows, round to nearest even (exactly
     * bn_fp32_to_fp16 / bn_fp16_to_fp32 element by element). */
    void (*fp32_to_fp16)(const float *x, uint16_t *y, int64_t n);
    void (*fp16_to_fp32)(const uint16_t *x, float *y, int64_t n);
} bn_kernels;

/* The variant a model gets by default: the best this CPU runs among those
 * tested on real hardware (AVX-512 must be asked for by name for now). */
bn_isa bn_isa_best(void);

/* Whether this build carries `isa` and this CPU can run it. */
int bn_isa_supported(bn_isa isa);

/* "scalar", "avx2", "avx512", "neon", "wasm_simd". */
const char *bn_isa_name(bn_isa isa);

/* Parse a variant name (case-insensitive); "auto" or "" is bn_isa_best().
 * Unknown names and variants this CPU cannot run fail with a message that
 * lists what can run here. */
bitnet_status bn_isa_parse(const char *name, bn_isa *out, bn_error *err);

/* Fill k with the scalar reference, then with `isa`'s overrides.
 * `isa` must be supported (bn_isa_supported). */
void bn_kernels_init(bn_kernels *k, bn_isa isa);

/* CPU features this build can detect, space-separated into buf (cap bytes,
 * 96 is enough), e.g. "avx2 fma f16c avx512f avx512bw avx512vl avx512vnni"
 * or "neon dotprod"; "" when none. */
void bn_cpu_features(char *buf, size_t cap);

/* Variant fill functions (kernels_<isa>_*.c). Each overrides only the
 * entries it implements; on targets without the ISA they do nothing. */
void bn_kernels_fill_avx2_ternary(bn_kernels *k);
void bn_kernels_fill_avx2_float(bn_kernels *k);
void bn_kernels_fill_avx512(bn_kernels *k);
/* AVX2's TQ2_0 mul_mat (x86 builds only), which the AVX-512 set uses for decode. */
void bn_avx2_tq2_0_mul_mat(int64_t n, const uint8_t *w, size_t w_row_bytes, int64_t n_rows, const uint8_t *act,
                           size_t act_row_bytes, int64_t n_tok, float *y, int64_t y_stride);
void bn_kernels_fill_neon(bn_kernels *k);
void bn_kernels_fill_wasm_simd(bn_kernels *k);

#endif
