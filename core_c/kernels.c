/* Kernel-set selection and the scalar reference set (kernels.h). */
#include "kernels.h"

#include <ctype.h>
#include <string.h>

#include "act_quant.h"

#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#endif

/* ---- the scalar reference: every mul_mat is a loop over vec_dot --------- */

/* One definition per type so the table needs no type argument; vec_dot is a
 * direct call the compiler can inline. */
#define BN_SCALAR_MUL_MAT(NAME, VEC_DOT)                                                               \
    static void NAME(int64_t n, const uint8_t *w, size_t w_row_bytes, int64_t n_rows, const uint8_t *act, \
                     size_t act_row_bytes, int64_t n_tok, float *y, int64_t y_stride) {                \
        for (int64_t r = 0; r < n_rows; r++)                                                           \
            for (int64_t t = 0; t < n_tok; t++)                                                        \
                y[t * y_stride + r] = VEC_DOT(n, w + (size_t)r * w_row_bytes, act + (size_t)t * act_row_bytes); \
    }

BN_SCALAR_MUL_MAT(mul_mat_f32, bn_f32_vec_dot)
BN_SCALAR_MUL_MAT(mul_mat_f16, bn_f16_vec_dot)
BN_SCALAR_MUL_MAT(mul_mat_bf16, bn_bf16_vec_dot)
BN_SCALAR_MUL_MAT(mul_mat_q8_0, bn_q8_0_vec_dot)
BN_SCALAR_MUL_MAT(mul_mat_q4_k, bn_q4_k_vec_dot)
BN_SCALAR_MUL_MAT(mul_mat_q6_k, bn_q6_k_vec_dot)
BN_SCALAR_MUL_MAT(mul_mat_tq1_0, bn_tq1_0_vec_dot)
BN_SCALAR_MUL_MAT(mul_mat_tq2_0, bn_tq2_0_vec_dot)
BN_SCALAR_MUL_MAT(mul_mat_i2_s, bn_i2_s_vec_dot)
BN_SCALAR_MUL_MAT(mul_mat_iq1_bn, bn_iq1_bn_vec_dot)
BN_SCALAR_MUL_MAT(mul_mat_iq2_bn, bn_iq2_bn_vec_dot)

static void quantize_f32(const float *x, void *out, int64_t n) { memcpy(out, x, (size_t)n * sizeof(float)); }

static void axpy_f16(int64_t n, float a, const uint16_t *x, float *y) {
    for (int64_t i = 0; i < n; i++) y[i] = y[i] + a * bn_fp16_to_fp32(x[i]);
}

static void axpy_f32(int64_t n, float a, const float *x, float *y) {
    for (int64_t i = 0; i < n; i++) y[i] = y[i] + a * x[i];
}

static void fp32_to_fp16(const float *x, uint16_t *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = bn_fp32_to_fp16(x[i]);
}

static void fp16_to_fp32(const uint16_t *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = bn_fp16_to_fp32(x[i]);
}

static void fill_scalar(bn_kernels *k) {
    memset(k, 0, sizeof *k);
    k->isa = BN_ISA_SCALAR;
    k->name = "scalar";
    k->mul_mat[BN_TYPE_F32] = mul_mat_f32;
    k->mul_mat[BN_TYPE_F16] = mul_mat_f16;
    k->mul_mat[BN_TYPE_BF16] = mul_mat_bf16;
    k->mul_mat[BN_TYPE_Q8_0] = mul_mat_q8_0;
    k->mul_mat[BN_TYPE_Q4_K] = mul_mat_q4_k;
    k->mul_mat[BN_TYPE_Q6_K] = mul_mat_q6_k;
    k->mul_mat[BN_TYPE_TQ1_0] = mul_mat_tq1_0;
    k->mul_mat[BN_TYPE_TQ2_0] = mul_mat_tq2_0;
    k->mul_mat[BN_TYPE_I2_S] = mul_mat_i2_s;
    k->mul_mat[BN_TYPE_IQ1_BN] = mul_mat_iq1_bn;
    k->mul_mat[BN_TYPE_IQ2_BN] = mul_mat_iq2_bn;
    k->quantize[BN_ACT_F32] = quantize_f32;
    k->quantize[BN_ACT_Q8_0] = bn_quantize_row_q8_0;
    k->quantize[BN_ACT_Q8_K] = bn_quantize_row_q8_k;
    k->quantize[BN_ACT_Q8_K64] = bn_quantize_row_q8_k64;
    k->quantize[BN_ACT_I8_ROW] = bn_quantize_row_i8_row;
    k->axpy_f16 = axpy_f16;
    k->axpy_f32 = axpy_f32;
    k->fp32_to_fp16 = fp32_to_fp16;
    k->fp16_to_fp32 = fp16_to_fp32;
}

void bn_kernels_init(bn_kernels *k, bn_isa isa) {
    fill_scalar(k);
    switch (isa) {
    case BN_ISA_AVX512:
        bn_kernels_fill_avx2_ternary(k);
        bn_kernels_fill_avx2_float(k);
        bn_kernels_fill_avx512(k);
        break;
    case BN_ISA_AVX2:
        bn_kernels_fill_avx2_ternary(k);
        bn_kernels_fill_avx2_float(k);
        break;
    case BN_ISA_NEON:
        bn_kernels_fill_neon(k);
        break;
    case BN_ISA_WASM_SIMD:
        bn_kernels_fill_wasm_simd(k);
        break;
    default:
        break;
    }
    k->isa = isa;
    k->name = bn_isa_name(isa);
}

/* ---- CPU detection ------------------------------------------------------------ */

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define BN_X86_DETECT 1
#include <cpuid.h>

/* Read with CPUID and XGETBV directly (not __builtin_cpu_supports, whose
 * feature names differ between compilers and versions). A feature counts
 * only when the OS also saves the registers it needs (XCR0). */
static uint64_t xgetbv0(void) {
    uint32_t lo, hi;
    __asm__ __volatile__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static int x86_has(const char *what) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    const unsigned ecx1 = c;
    const int osxsave = (ecx1 >> 27) & 1;
    const uint64_t xcr0 = osxsave ? xgetbv0() : 0;
    const int os_avx = (xcr0 & 0x6) == 0x6;       /* XMM and YMM state */
    const int os_avx512 = (xcr0 & 0xe6) == 0xe6;  /* plus opmask and ZMM state */
    unsigned ebx7 = 0, ecx7 = 0;
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
        ebx7 = b;
        ecx7 = c;
    }
    if (!strcmp(what, "fma")) return os_avx && ((ecx1 >> 12) & 1);
    if (!strcmp(what, "f16c")) return os_avx && ((ecx1 >> 29) & 1);
    if (!strcmp(what, "avx2")) return os_avx && ((ebx7 >> 5) & 1);
    if (!strcmp(what, "avx512f")) return os_avx512 && ((ebx7 >> 16) & 1);
    if (!strcmp(what, "avx512bw")) return os_avx512 && ((ebx7 >> 30) & 1);
    if (!strcmp(what, "avx512vl")) return os_avx512 && ((ebx7 >> 31) & 1);
    if (!strcmp(what, "avx512vnni")) return os_avx512 && ((ecx7 >> 11) & 1);
    return 0;
}
#endif

#if defined(__aarch64__)
static int arm_has_dotprod(void) {
#if defined(__linux__) && defined(HWCAP_ASIMDDP)
    return (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
#elif defined(__APPLE__)
    return 1; /* every Apple arm64 CPU has the dot-product instructions */
#else
    return 0;
#endif
}
#endif

int bn_isa_supported(bn_isa isa) {
    switch (isa) {
    case BN_ISA_SCALAR:
        return 1;
#ifdef BN_X86_DETECT
    case BN_ISA_AVX2:
        return x86_has("avx2") && x86_has("fma") && x86_has("f16c");
    case BN_ISA_AVX512:
        return bn_isa_supported(BN_ISA_AVX2) && x86_has("avx512f") && x86_has("avx512bw") && x86_has("avx512vl");
#endif
#if defined(__aarch64__)
    case BN_ISA_NEON:
        return 1;
#endif
#if defined(__wasm_simd128__)
    case BN_ISA_WASM_SIMD:
        return 1;
#endif
    default:
        return 0;
    }
}

bn_isa bn_isa_best(void) {
    /* AVX-512 (F, BW, VL) first: on an AMD EPYC with AVX-512 (family 26) it
     * ran the 2B-4T shape's pp128 1.5-1.7x and tg64 1.05-1.15x faster than
     * AVX2, bit-exact (docs/performance.md, 2026-12-03). BITNET_KERNEL=avx2
     * picks AVX2 on such a CPU. */
    static const bn_isa order[] = {BN_ISA_AVX512, BN_ISA_AVX2, BN_ISA_NEON, BN_ISA_WASM_SIMD};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
        if (bn_isa_supported(order[i])) return order[i];
    return BN_ISA_SCALAR;
}

const char *bn_isa_name(bn_isa isa) {
    static const char *const names[BN_ISA_COUNT] = {"scalar", "avx2", "avx512", "neon", "wasm_simd"};
    return (unsigned)isa < BN_ISA_COUNT ? names[isa] : "unknown";
}

static int name_eq(const char *a, const char *b) {
    for (; *a && *b; a++, b++)
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b)) return 0;
    return *a == *b;
}

static void append_word(char *buf, size_t cap, const char *word) {
    const size_t len = strlen(buf), add = strlen(word) + (len ? 1 : 0);
    if (len + add + 1 > cap) return;
    if (len) buf[len] = ' ';
    memcpy(buf + len + (len ? 1 : 0), word, strlen(word) + 1);
}

bitnet_status bn_isa_parse(const char *name, bn_isa *out, bn_error *err) {
    if (!name || !*name || name_eq(name, "auto")) {
        *out = bn_isa_best();
        return BITNET_OK;
    }
    char runnable[96] = "";
    for (int i = 0; i < BN_ISA_COUNT; i++)
        if (bn_isa_supported((bn_isa)i)) append_word(runnable, sizeof runnable, bn_isa_name((bn_isa)i));
    for (int i = 0; i < BN_ISA_COUNT; i++) {
        if (!name_eq(name, bn_isa_name((bn_isa)i))) continue;
        if (!bn_isa_supported((bn_isa)i))
            return bn_fail(err, BITNET_ERR_UNSUPPORTED, "kernel variant '%s' cannot run on this CPU (it runs: %s)",
                           name, runnable);
        *out = (bn_isa)i;
        return BITNET_OK;
    }
    return bn_fail(err, BITNET_ERR_INVALID_ARGUMENT,
                   "unknown kernel variant '%s' (known: scalar, avx2, avx512, neon, wasm_simd, auto; this CPU runs: %s)",
                   name, runnable);
}

void bn_cpu_features(char *buf, size_t cap) {
    if (!buf || !cap) return;
    buf[0] = '\0';
#ifdef BN_X86_DETECT
    static const char *const names[] = {"avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512vnni"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (x86_has(names[i])) append_word(buf, cap, names[i]);
#elif defined(__aarch64__)
    append_word(buf, cap, "neon");
    if (arm_has_dotprod()) append_word(buf, cap, "dotprod");
#elif defined(__wasm_simd128__)
    append_word(buf, cap, "simd128");
#endif
}
