/* A loaded model: hyper-parameters, the architecture's description, and
 * weights pointing into the GGUF image. Read-only after loading, so any
 * number of contexts (and threads) can share one. */
#ifndef BN_MODEL_H
#define BN_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arch.h"
#include "gguf.h"
#include "kernels.h"
#include "tensor_types.h"

struct bn_tokenizer;

/* A weight matrix ready for matmul: n_out rows of n_in weights. */
typedef struct bn_weight {
    const char *name;          /* GGUF tensor name */
    const bn_type_traits *type;
    const uint8_t *data;       /* first row */
    int64_t n_in, n_out;
    size_t row_bytes;
    float scale;               /* applied to every output: I2_S tensor scale x arch `.scale` tensor */
    const float *bias;         /* n_out floats or NULL */
} bn_weight;

typedef struct bn_layer {
    const float *attn_norm;     /* n_embd */
    const float *attn_sub_norm; /* n_embd, or NULL when the arch has none */
    const float *ffn_norm;      /* n_embd */
    const float *ffn_sub_norm;  /* n_ff, or NULL */
    bn_weight wq, wk, wv, wo, w_gate, w_up, w_down;
} bn_layer;

typedef struct bn_hparams {
    int32_t n_vocab;
    int32_t n_ctx_train;
    int32_t n_embd;
    int32_t n_layer;
    int32_t n_ff;
    int32_t n_head;
    int32_t n_head_kv;
    int32_t head_dim;
    float rope_freq_base;
    float norm_eps;
} bn_hparams;

struct bitnet_model {
    bn_gguf *gguf;
    const bn_arch *arch;
    char arch_name[64];
    bn_hparams hp;
    bn_weight tok_embd;    /* rows are token embeddings */
    bn_weight output;      /* the output projection (token_embd when tied) */
    const float *output_norm;
    const float *rope_freqs; /* head_dim/2 frequency divisors or NULL */
    bn_layer *layers;
    float **owned_blocks;  /* 1-D tensors converted to float32 (norms, biases, scales) */
    size_t n_owned_blocks;
    int32_t token_bos, token_eos, token_eot;
    struct bn_tokenizer *tokenizer; /* NULL when the GGUF has no tokenizer */
    bn_kernels kernels;    /* the kernel variant this model runs (chosen at load) */
    char desc[256];
};

/* Load from an opened GGUF; on success the model owns g. On failure g is
 * left to the caller. `isa` must be supported (bn_isa_supported). */
bitnet_status bn_model_create(bn_gguf *g, bn_isa isa, struct bitnet_model **out, bn_error *err);
void bn_model_destroy(struct bitnet_model *m);

#endif
