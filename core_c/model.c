/* Model loading: hyper-parameters from the GGUF metadata, tensors checked
 * for presence, shape and type, then wired into bn_layer structs. Every
 * failure names the key or tensor at fault. */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer.h"

/* Upper bounds that keep later size arithmetic far from overflow. */
#define BN_MAX_LAYERS 1024
#define BN_MAX_DIM (1 << 20)
#define BN_MAX_HEADS 4096
#define BN_MAX_VOCAB (1 << 24)

/* ---- small owned-float arena (norm vectors, biases, scales) ------------------ */

typedef struct float_arena {
    float **blocks;
    size_t n, cap;
} float_arena;

static float *arena_alloc(float_arena *a, size_t n) {
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        float **b = realloc(a->blocks, cap * sizeof *b);
        if (!b) return NULL;
        a->blocks = b;
        a->cap = cap;
    }
    float *p = malloc((n ? n : 1) * sizeof(float));
    if (p) a->blocks[a->n++] = p;
    return p;
}

typedef struct loader {
    struct bitnet_model *m;
    bn_gguf *g;
    float_arena arena;
    bn_error *err;
    char prefix[80]; /* "<arch>." */
} loader;

/* ---- hyper-parameters -------------------------------------------------------- */

static bitnet_status get_dim(loader *L, const char *suffix, int32_t *out, int32_t max, bool required,
                             int32_t dflt) {
    char key[160];
    snprintf(key, sizeof key, "%s%s", L->prefix, suffix);
    uint32_t v;
    bitnet_status st = bn_gguf_get_u32(L->g, key, &v, L->err);
    if (st == BITNET_ERR_NOT_FOUND && !required) {
        *out = dflt;
        return BITNET_OK;
    }
    if (st) return st;
    if (v == 0 || v > (uint32_t)max)
        return bn_fail(L->err, BITNET_ERR_FORMAT, "metadata key '%s' is %u (must be 1..%d)", key, v, max);
    *out = (int32_t)v;
    return BITNET_OK;
}

static bitnet_status get_float(loader *L, const char *suffix, float *out, bool required, float dflt) {
    char key[160];
    snprintf(key, sizeof key, "%s%s", L->prefix, suffix);
    bitnet_status st = bn_gguf_get_f32(L->g, key, out, L->err);
    if (st == BITNET_ERR_NOT_FOUND && !required) {
        *out = dflt;
        return BITNET_OK;
    }
    if (st) return st;
    if (!isfinite(*out) || *out <= 0.0f)
        return bn_fail(L->err, BITNET_ERR_FORMAT, "metadata key '%s' is %g (must be a positive number)", key,
                       (double)*out);
    return BITNET_OK;
}

static bitnet_status load_hparams(loader *L) {
    bn_hparams *hp = &L->m->hp;
    bitnet_status st;
    if ((st = get_dim(L, "context_length", &hp->n_ctx_train, 1 << 24, true, 0))) return st;
    if ((st = get_dim(L, "embedding_length", &hp->n_embd, BN_MAX_DIM, true, 0))) return st;
    if ((st = get_dim(L, "block_count", &hp->n_layer, BN_MAX_LAYERS, true, 0))) return st;
    if ((st = get_dim(L, "feed_forward_length", &hp->n_ff, BN_MAX_DIM, true, 0))) return st;
    if ((st = get_dim(L, "attention.head_count", &hp->n_head, BN_MAX_HEADS, true, 0))) return st;
    if ((st = get_dim(L, "attention.head_count_kv", &hp->n_head_kv, BN_MAX_HEADS, false, hp->n_head))) return st;
    if ((st = get_float(L, "attention.layer_norm_rms_epsilon", &hp->norm_eps, true, 0))) return st;
    if ((st = get_float(L, "rope.freq_base", &hp->rope_freq_base, false, 10000.0f))) return st;

    if (hp->n_embd % hp->n_head != 0)
        return bn_fail(L->err, BITNET_ERR_FORMAT, "embedding_length %d is not a multiple of head_count %d",
                       hp->n_embd, hp->n_head);
    if (hp->n_head % hp->n_head_kv != 0)
        return bn_fail(L->err, BITNET_ERR_FORMAT, "head_count %d is not a multiple of head_count_kv %d", hp->n_head,
                       hp->n_head_kv);
    hp->head_dim = hp->n_embd / hp->n_head;
    if (hp->head_dim % 2 != 0)
        return bn_fail(L->err, BITNET_ERR_FORMAT, "head dimension %d is odd (RoPE needs pairs)", hp->head_dim);
    int32_t rope_dim;
    if ((st = get_dim(L, "rope.dimension_count", &rope_dim, BN_MAX_DIM, false, hp->head_dim))) return st;
    if (rope_dim != hp->head_dim)
        return bn_fail(L->err, BITNET_ERR_UNSUPPORTED,
                       "rope.dimension_count %d differs from the head dimension %d (partial RoPE is not supported)",
                       rope_dim, hp->head_dim);
    return BITNET_OK;
}

/* ---- tensors ----------------------------------------------------------------- */

static const char *dims_str(const bn_gguf_tensor *t, char *buf, size_t cap) {
    size_t n = 0;
    buf[0] = '\0';
    for (uint32_t d = 0; d < t->n_dims && n < cap; d++)
        n += (size_t)snprintf(buf + n, cap - n, d ? " x %lld" : "%lld", (long long)t->ne[d]);
    return buf;
}

static bitnet_status find_tensor(loader *L, const char *name, bool required, const bn_gguf_tensor **out) {
    *out = bn_gguf_find_tensor(L->g, name);
    if (!*out && required) return bn_fail(L->err, BITNET_ERR_FORMAT, "required tensor %s is missing", name);
    return BITNET_OK;
}

/* A 1-D tensor of n values converted to float32 (F32, F16, BF16 or any type
 * the table can dequantize). *out stays NULL when absent and optional. */
static bitnet_status load_vector(loader *L, const char *name, int64_t n, bool required, const float **out) {
    const bn_gguf_tensor *t;
    *out = NULL;
    bitnet_status st = find_tensor(L, name, required, &t);
    if (st || !t) return st;
    if (t->n_elements != n) {
        char dims[64];
        return bn_fail(L->err, BITNET_ERR_FORMAT, "tensor %s has shape [%s], expected [%lld]", name,
                       dims_str(t, dims, sizeof dims), (long long)n);
    }
    const bn_type_traits *tt = bn_type_get(t->type);
    if (tt->tensor_tail_bytes || t->ne[0] != n)
        return bn_fail(L->err, BITNET_ERR_UNSUPPORTED, "tensor %s: type %s is not supported for a vector", name,
                       tt->name);
    float *dst = arena_alloc(&L->arena, (size_t)n);
    if (!dst) return bn_fail(L->err, BITNET_ERR_OUT_OF_MEMORY, "out of memory loading %s", name);
    tt->to_float(t->data, dst, n);
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(dst[i])) return bn_fail(L->err, BITNET_ERR_FORMAT, "tensor %s holds a non-finite value", name);
    *out = dst;
    return BITNET_OK;
}

/* name is "<base>.weight"; the optional siblings are "<base>.scale" and "<base>.bias". */
static bitnet_status load_weight(loader *L, const char *base, int64_t n_in, int64_t n_out, bool required,
                                 bn_weight *w) {
    char name[128];
    snprintf(name, sizeof name, "%s.weight", base);
    const bn_gguf_tensor *t;
    memset(w, 0, sizeof *w);
    bitnet_status st = find_tensor(L, name, required, &t);
    if (st || !t) return st;
    if (t->n_dims != 2 || t->ne[0] != n_in || t->ne[1] != n_out) {
        char dims[64];
        return bn_fail(L->err, BITNET_ERR_FORMAT, "tensor %s has shape [%s], expected [%lld x %lld]", name,
                       dims_str(t, dims, sizeof dims), (long long)n_in, (long long)n_out);
    }
    w->name = t->name;
    w->type = bn_type_get(t->type);
    w->data = t->data;
    w->n_in = n_in;
    w->n_out = n_out;
    w->row_bytes = bn_type_row_bytes(w->type, n_in);
    w->scale = bn_type_tensor_scale(w->type, t->data, t->n_elements);
    if (!isfinite(w->scale))
        return bn_fail(L->err, BITNET_ERR_FORMAT, "tensor %s: its %s scale is not finite", name, w->type->name);

    if (L->m->arch->tensor_scales) {
        const float *s;
        snprintf(name, sizeof name, "%s.scale", base);
        if ((st = load_vector(L, name, 1, false, &s))) return st;
        if (s) w->scale *= s[0];
    }
    snprintf(name, sizeof name, "%s.bias", base);
    return load_vector(L, name, n_out, false, &w->bias);
}

static bitnet_status load_layer(loader *L, int il) {
    const bn_hparams *hp = &L->m->hp;
    const bn_arch *arch = L->m->arch;
    bn_layer *ly = &L->m->layers[il];
    const int64_t q_dim = (int64_t)hp->n_head * hp->head_dim;
    const int64_t kv_dim = (int64_t)hp->n_head_kv * hp->head_dim;
    char name[96];
    bitnet_status st;
#define BLK(suffix) (snprintf(name, sizeof name, "blk.%d." suffix, il), name)
    if ((st = load_vector(L, BLK("attn_norm.weight"), hp->n_embd, true, &ly->attn_norm))) return st;
    if ((st = load_vector(L, BLK("ffn_norm.weight"), hp->n_embd, true, &ly->ffn_norm))) return st;
    if (arch->sub_norms) {
        if ((st = load_vector(L, BLK("attn_sub_norm.weight"), q_dim, true, &ly->attn_sub_norm))) return st;
        if ((st = load_vector(L, BLK("ffn_sub_norm.weight"), hp->n_ff, true, &ly->ffn_sub_norm))) return st;
    }
    if ((st = load_weight(L, BLK("attn_q"), hp->n_embd, q_dim, true, &ly->wq))) return st;
    if ((st = load_weight(L, BLK("attn_k"), hp->n_embd, kv_dim, true, &ly->wk))) return st;
    if ((st = load_weight(L, BLK("attn_v"), hp->n_embd, kv_dim, true, &ly->wv))) return st;
    if ((st = load_weight(L, BLK("attn_output"), q_dim, hp->n_embd, true, &ly->wo))) return st;
    if ((st = load_weight(L, BLK("ffn_gate"), hp->n_embd, hp->n_ff, true, &ly->w_gate))) return st;
    if ((st = load_weight(L, BLK("ffn_up"), hp->n_embd, hp->n_ff, true, &ly->w_up))) return st;
    if ((st = load_weight(L, BLK("ffn_down"), hp->n_ff, hp->n_embd, true, &ly->w_down))) return st;
#undef BLK
    return BITNET_OK;
}

static int32_t special_token(const bn_gguf *g, const char *key, int32_t n_vocab) {
    uint32_t v;
    if (bn_gguf_get_u32(g, key, &v, NULL) != BITNET_OK || v >= (uint32_t)n_vocab) return -1;
    return (int32_t)v;
}

static void describe(struct bitnet_model *m) {
    const bn_layer *l0 = &m->layers[0];
    snprintf(m->desc, sizeof m->desc,
             "%s: %d layers, n_embd %d, n_ff %d, %d heads (%d kv), vocab %d; weights %s, embeddings %s, output %s%s",
             m->arch_name, m->hp.n_layer, m->hp.n_embd, m->hp.n_ff, m->hp.n_head, m->hp.n_head_kv, m->hp.n_vocab,
             l0->wq.type->name, m->tok_embd.type->name, m->output.type->name,
             m->output.data == m->tok_embd.data ? " (tied)" : "");
}

static bitnet_status load(loader *L) {
    struct bitnet_model *m = L->m;
    bitnet_status st;
    bn_str arch;
    if ((st = bn_gguf_get_str(L->g, "general.architecture", &arch, L->err))) return st;
    if (arch.len >= sizeof m->arch_name || memchr(arch.ptr, '\0', (size_t)arch.len))
        return bn_fail(L->err, BITNET_ERR_UNSUPPORTED, "unknown architecture (general.architecture is not a name)");
    memcpy(m->arch_name, arch.ptr, (size_t)arch.len);
    m->arch_name[arch.len] = '\0';
    m->arch = bn_arch_find(m->arch_name);
    if (!m->arch)
        return bn_fail(L->err, BITNET_ERR_UNSUPPORTED, "unknown architecture '%s' (known: %s)", m->arch_name,
                       bn_arch_known_names());
    snprintf(L->prefix, sizeof L->prefix, "%s.", m->arch_name);
    if ((st = load_hparams(L))) return st;

    bn_hparams *hp = &m->hp;
    const bn_gguf_tensor *te;
    if ((st = find_tensor(L, "token_embd.weight", true, &te))) return st;
    if (te->n_dims != 2 || te->ne[1] > BN_MAX_VOCAB) {
        char dims[64];
        return bn_fail(L->err, BITNET_ERR_FORMAT, "tensor token_embd.weight has shape [%s], expected [%d x n_vocab]",
                       dims_str(te, dims, sizeof dims), hp->n_embd);
    }
    hp->n_vocab = (int32_t)te->ne[1];
    if ((st = load_weight(L, "token_embd", hp->n_embd, hp->n_vocab, true, &m->tok_embd))) return st;

    /* Optional vocab_size must agree with the embedding. */
    char key[160];
    snprintf(key, sizeof key, "%svocab_size", L->prefix);
    uint32_t vs;
    if (bn_gguf_get_u32(L->g, key, &vs, NULL) == BITNET_OK && vs != (uint32_t)hp->n_vocab)
        return bn_fail(L->err, BITNET_ERR_FORMAT, "%s is %u but token_embd.weight has %d rows", key, vs,
                       hp->n_vocab);

    if ((st = load_vector(L, "output_norm.weight", hp->n_embd, true, &m->output_norm))) return st;
    m->output = m->tok_embd;
    if (!m->arch->output_from_embd) {
        bn_weight out;
        if ((st = load_weight(L, "output", hp->n_embd, hp->n_vocab, false, &out))) return st;
        if (out.data) m->output = out;
    }
    if ((st = load_vector(L, "rope_freqs.weight", hp->head_dim / 2, false, &m->rope_freqs))) return st;

    m->layers = calloc((size_t)hp->n_layer, sizeof *m->layers);
    if (!m->layers) return bn_fail(L->err, BITNET_ERR_OUT_OF_MEMORY, "out of memory for %d layers", hp->n_layer);
    for (int il = 0; il < hp->n_layer; il++)
        if ((st = load_layer(L, il))) return st;

    m->token_bos = special_token(L->g, "tokenizer.ggml.bos_token_id", hp->n_vocab);
    m->token_eos = special_token(L->g, "tokenizer.ggml.eos_token_id", hp->n_vocab);
    m->token_eot = special_token(L->g, "tokenizer.ggml.eot_token_id", hp->n_vocab);

    st = bn_tokenizer_create(L->g, &m->tokenizer, L->err);
    if (st == BITNET_ERR_NOT_FOUND) st = BITNET_OK; /* a model without a tokenizer still runs on ids */
    if (st) {
        bn_error_prefix(L->err, "tokenizer");
        return st;
    }
    /* Many chat GGUFs name their end-of-turn token only by its text
     * (<|eot_id|>, <|im_end|>, ...), without tokenizer.ggml.eot_token_id:
     * take the one the tokenizer found by text, as llama.cpp does, so that
     * generation stops at the end of an answer. */
    if (m->token_eot < 0 && m->tokenizer) {
        int32_t eot = bn_tokenizer_eot(m->tokenizer);
        if (eot >= 0 && eot < hp->n_vocab) m->token_eot = eot;
    }
    describe(m);
    return BITNET_OK;
}

bitnet_status bn_model_create(bn_gguf *g, bn_isa isa, struct bitnet_model **out, bn_error *err) {
    *out = NULL;
    struct bitnet_model *m = calloc(1, sizeof *m);
    if (!m) return bn_fail(err, BITNET_ERR_OUT_OF_MEMORY, "out of memory");
    bn_kernels_init(&m->kernels, isa);
    loader L = {.m = m, .g = g, .err = err};
    bitnet_status st = load(&L);
    /* The arena's blocks belong to the model from here on. */
    m->owned_blocks = L.arena.blocks;
    m->n_owned_blocks = L.arena.n;
    if (st) {
        m->gguf = NULL; /* the caller still owns g */
        bn_model_destroy(m);
        return st;
    }
    m->gguf = g;
    *out = m;
    return BITNET_OK;
}

void bn_model_destroy(struct bitnet_model *m) {
    if (!m) return;
    for (size_t i = 0; i < m->n_owned_blocks; i++) free(m->owned_blocks[i]);
    free(m->owned_blocks);
    free(m->layers);
    bn_tokenizer_free(m->tokenizer);
    bn_gguf_close(m->gguf);
    free(m);
}
