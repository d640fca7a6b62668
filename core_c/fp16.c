/* IEEE 754 binary16 and bfloat16 conversions.
 *
 * Follows the IEEE 754 rules themselves (round to nearest, ties to even, with
 * gradual underflow), which is what the references compute: ggml converts
 * with F16C (_cvtss_sh / _cvtsh_ss, rounding mode "nearest") on x86 and with
 * an equivalent bit-level routine elsewhere (ggml-impl.h,
 * ggml_compute_fp32_to_fp16). NaNs stay NaNs (made quiet, upper payload bits
 * kept, as F16C does); finite values >= 65520 in magnitude become infinity.
 * Pure integer code: no dependence on the FPU rounding mode. */
#include <string.h>

#include "tensor_types.h"

static float bits_to_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint32_t f32_to_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

float bn_fp16_to_fp32(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;

    if (exp == 0x1fu) /* inf / nan: widen the payload */
        return bits_to_f32(sign | 0x7f800000u | (mant << 13));
    if (exp != 0) /* normal: rebias 15 -> 127 */
        return bits_to_f32(sign | ((exp + 112u) << 23) | (mant << 13));
    if (mant == 0)
        return bits_to_f32(sign);
    /* subnormal: mant * 2^-24; normalise so the leading 1 reaches bit 10 */
    uint32_t e = 113; /* exponent of 2^-14, the smallest normal half */
    while (!(mant & 0x400u)) {
        mant <<= 1;
        e--;
    }
    return bits_to_f32(sign | (e << 23) | ((mant & 0x3ffu) << 13));
}

/* Shift `m` right by `s` bits (1 <= s <= 31) rounding to nearest, ties to even. */
static uint32_t shift_round_even(uint32_t m, unsigned s) {
    const uint32_t rest = m & ((1u << s) - 1u);
    const uint32_t half = 1u << (s - 1);
    uint32_t r = m >> s;
    if (rest > half || (rest == half && (r & 1u)))
        r++;
    return r;
}

uint16_t bn_fp32_to_fp16(float f) {
    const uint32_t u = f32_to_bits(f);
    const uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    const uint32_t a = u & 0x7fffffffu;

    if (a >= 0x7f800000u) { /* inf or nan */
        if (a == 0x7f800000u)
            return sign | 0x7c00u;
        return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
    }
    if (a >= 0x477ff000u) /* >= 65520: rounds past 65504 */
        return sign | 0x7c00u;
    if (a >= 0x38800000u) { /* normal half: exponent >= -14 */
        /* rebias 127 -> 15 and drop 13 mantissa bits; a carry out of the
         * mantissa correctly bumps the exponent */
        const uint32_t r = shift_round_even(a - (112u << 23), 13);
        return (uint16_t)(sign | r);
    }
    if (a <= 0x33000000u) /* <= 2^-25: rounds to zero (the tie goes to even 0) */
        return sign;
    /* subnormal half: value / 2^-24 = mant * 2^(e - 126), with e in 102..112 */
    const uint32_t e = a >> 23;
    const uint32_t mant = (a & 0x7fffffu) | 0x800000u;
    return (uint16_t)(sign | shift_round_even(mant, 126u - e));
}

float bn_bf16_to_fp32(uint16_t h) {
    return bits_to_f32((uint32_t)h << 16);
}
