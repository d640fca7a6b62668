/* The architecture table: what differs between BitNet model families is
 * data, not if-chains (see docs/architecture.md and docs/formats.md). */
#ifndef BN_ARCH_H
#define BN_ARCH_H

#include <stdbool.h>

typedef enum bn_ffn_act {
    BN_FFN_SILU,  /* silu(gate) * up */
    BN_FFN_RELU2, /* relu(gate)^2 * up: BitNet-b1.58-2B-4T (stock llama.cpp wrongly uses SiLU) */
} bn_ffn_act;

typedef enum bn_rope_kind {
    BN_ROPE_NORM, /* GPT-J style: element 2i rotates with 2i+1 (llama) */
    BN_ROPE_NEOX, /* element i rotates with i + head_dim/2 (bitnet families) */
} bn_rope_kind;

typedef struct bn_arch {
    const char *name;        /* general.architecture */
    bn_ffn_act ffn_act;
    bn_rope_kind rope;
    bool sub_norms;          /* attn_sub_norm before wo, ffn_sub_norm before w_down */
    bool tensor_scales;      /* optional 1-element `<weight>.scale` tensors multiply matmul outputs */
    bool output_from_embd;   /* the output is always token_embd (no output.weight is read) */
} bn_arch;

/* The entry for general.architecture, or NULL if unknown. */
const bn_arch *bn_arch_find(const char *name);

/* Comma-separated list of known names, for error messages. */
const char *bn_arch_known_names(void);

#endif
