/* Compile the rest of an x86 kernel file for a given instruction set without
 * -m flags on the command line: the library is built for the baseline CPU
 * and these functions are only called after bn_isa_supported() said yes.
 *
 *   #include "kernels_x86.h"
 *   #if BN_X86
 *   BN_TARGET_BEGIN("avx2,fma,f16c")
 *   #include <immintrin.h>
 *   ... kernels ...
 *   BN_TARGET_END
 *   #endif
 *
 * GCC applies the pragma to every function after it (intrinsics included);
 * Clang needs its attribute push. No FMA contraction happens on its own:
 * the library compiles with -std=c11, whose default is -ffp-contract=off,
 * so the kernels spell out every fma they want (_mm256_fmadd_ps). */
#ifndef BN_KERNELS_X86_H
#define BN_KERNELS_X86_H

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define BN_X86 1
#else
#define BN_X86 0
#endif

#define BN_PRAGMA(x) _Pragma(#x)
#if defined(__clang__)
#define BN_TARGET_BEGIN(isa) BN_PRAGMA(clang attribute push(__attribute__((target(isa))), apply_to = function))
#define BN_TARGET_END BN_PRAGMA(clang attribute pop)
#elif defined(__GNUC__)
#define BN_TARGET_BEGIN(isa) BN_PRAGMA(GCC push_options) BN_PRAGMA(GCC target(isa))
#define BN_TARGET_END BN_PRAGMA(GCC pop_options)
#endif

#endif
