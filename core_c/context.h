/* A context: one sequence's KV cache plus the scratch memory of a forward
 * pass. Everything is allocated at creation, so decoding never fails for
 * lack of memory half-way through a sequence. */
#ifndef BN_CONTEXT_H
#define BN_CONTEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "threadpool.h"

struct bitnet_context {
    const struct bitnet_model *model;
    bn_error err;
    int32_t n_ctx;
    int32_t n_batch;
    int32_t n_threads;
    int32_t n_past;  /* tokens in the KV cache */
    bool has_logits;
    bool kv_f16;     /* K/V stored as IEEE half (llama.cpp's default) or float32 */

    void *k_cache;   /* [n_layer][n_ctx][kv_dim] of uint16_t (kv_f16) or float */
    void *v_cache;
    bn_threadpool *pool; /* n_threads threads, the caller's included */

    /* scratch, sized for n_batch tokens */
    float *x, *h;        /* n_batch x n_embd: residual stream, normed input */
    float *q, *attn;     /* n_batch x q_dim */
    float *k, *v;        /* n_batch x kv_dim */
    float *ffn_a, *ffn_b;/* n_batch x n_ff */
    float *scores;       /* per thread: (n_head / n_head_kv) x n_ctx attention scores */
    float *logits;       /* n_vocab: logits of the last decoded token */
    void *act;           /* quantized activations for bn_matmul */
    size_t act_bytes;
};

bitnet_status bn_context_create(const struct bitnet_model *m, int32_t n_ctx, int32_t n_batch, int32_t n_threads,
                                bool kv_f16, struct bitnet_context **out, bn_error *err);
void bn_context_destroy(struct bitnet_context *c);

/* Run n tokens at positions n_past.. (see bitnet_decode). Validates
 * everything before changing any state. */
bitnet_status bn_context_decode(struct bitnet_context *c, const int32_t *tokens, int32_t n, float *logits_all);

#endif
