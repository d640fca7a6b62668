/* Placeholder: the wasm_simd kernels are not written yet; the scalar set stays. */
#include "kernels.h"

void bn_kernels_fill_wasm_simd(bn_kernels *k) { (void)k; }
