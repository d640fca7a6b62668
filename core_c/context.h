/* A context: the KV caches of n_seq sequences plus the scratch memory of a
 * forward pass. Everything is allocated at creation, so decoding never fails
 * for lack of memory half-way through a sequence or a batch.
 *
 * Each sequence owns a separate cache region of n_ctx positions (memory =
 * n_seq x one sequence's cache): the simplest layout in which a sequence can
 * be reset or grow without moving any other. Sequence 0 is the one
 * bitnet_decode and the generation loop use. */
#ifndef BN_CONTEXT_H
#define BN_CONTEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include <stdatomic.h>

#include "threadpool.h"

struct bitnet_context {
    const struct bitnet_model *model;
    bn_error err;
    int32_t n_ctx;
    int32_t n_batch;
    int32_t n_threads;
    int32_t n_seq;   /* sequences (separate KV cache regions) */
    int32_t *seq_len;/* n_seq: tokens in each sequence's cache */
    bool has_logits; /* c->logits holds the logits after sequence 0's last token */
    bool kv_f16;     /* K/V stored as IEEE half (llama.cpp's default) or float32 */

    void *k_cache;   /* [n_layer][n_seq][n_ctx][kv_dim] of uint16_t (kv_f16) or float */
    void *v_cache;
    bn_threadpool *pool; /* n_threads threads, the caller's included */

    /* scratch, sized for n_batch tokens */
    float *x, *h;        /* n_batch x n_embd: residual stream, normed input */
    float *q, *attn;     /* n_batch x q_dim */
    float *k, *v;        /* n_batch x kv_dim */
    float *ffn_a, *ffn_b;/* n_batch x n_ff */
    float *scores;       /* per thread: (n_head / n_head_kv) x n_ctx attention scores */
    float *logits;       /* n_vocab: logits after sequence 0's last token */
    /* per token of a forward step (n_batch each): its sequence, its position
     * in that sequence, and whether its logits are wanted */
    int32_t *tok_seq, *tok_pos;
    uint8_t *tok_want;
    int32_t *seq_next;   /* n_seq: a batch's running length per sequence */
    void *act;           /* quantized activations for bn_matmul */
    size_t act_bytes;
    atomic_int in_use;   /* 1 while a public API call runs on this context (api.c) */
};

bitnet_status bn_context_create(const struct bitnet_model *m, int32_t n_ctx, int32_t n_batch, int32_t n_threads,
                                bool kv_f16, int32_t n_seq, struct bitnet_context **out, bn_error *err);
void bn_context_destroy(struct bitnet_context *c);

/* Run n tokens of sequence 0 at positions seq_len[0].. (see bitnet_decode).
 * Validates everything before changing any state. */
bitnet_status bn_context_decode(struct bitnet_context *c, const int32_t *tokens, int32_t n, float *logits_all);

/* Append tokens[i] to sequence seq_ids[i] for i < n, all in one forward pass
 * per n_batch tokens (see bitnet_decode_batch). want_logits NULL = every
 * item. Validates everything before changing any state. */
bitnet_status bn_context_decode_batch(struct bitnet_context *c, const int32_t *tokens, const int32_t *seq_ids,
                                      const int8_t *want_logits, int32_t n, float *logits_out);

/* Empty one sequence (or, with seq = -1, all of them). */
void bn_context_seq_reset(struct bitnet_context *c, int32_t seq);

#endif
