#include "arch.h"

#include <string.h>

/* Facts from ../shared/docs/formats.md ("Architectures"), checked against the
 * golden outputs of ik_llama.cpp and upstream llama.cpp in tests/. */
static const bn_arch arch_table[] = {
    /* Microsoft BitNet-b1.58-2B-4T; ik_llama.cpp treats both names the same. */
    {"bitnet-b1.58", BN_FFN_RELU2, BN_ROPE_NEOX, true, false, false},
    {"bitnet-25", BN_FFN_RELU2, BN_ROPE_NEOX, true, false, false},
    /* 1bitLLM bitnet_b1_58-large / 3B: SiLU, sub norms, per-tensor scales, tied output. */
    {"bitnet", BN_FFN_SILU, BN_ROPE_NEOX, true, true, true},
    /* Ternary (Falcon3-1.58bit, Llama3-8B-1.58) and plain float LLaMA. */
    {"llama", BN_FFN_SILU, BN_ROPE_NORM, false, false, false},
};

const bn_arch *bn_arch_find(const char *name) {
    for (size_t i = 0; i < sizeof arch_table / sizeof arch_table[0]; i++)
        if (strcmp(arch_table[i].name, name) == 0) return &arch_table[i];
    return NULL;
}

const char *bn_arch_known_names(void) { return "bitnet-b1.58, bitnet-25, bitnet, llama"; }
