/* KV cache and the forward pass (docs/architecture.md, "The data path of one
 * token"). The block structure of each family comes from the arch table:
 *
 *   h = rmsnorm(x) * attn_norm
 *   q, k, v = h W_q, h W_k, h W_v;  RoPE(q, k)
 *   a = attention(q, K cache, V cache)         (causal, grouped KV heads)
 *   a = rmsnorm(a) * attn_sub_norm             (bitnet families only)
 *   x += a W_o
 *   h = rmsnorm(x) * ffn_norm
 *   f = act(h W_gate) * (h W_up)               (SiLU, or ReLU^2 for 2B-4T)
 *   f = rmsnorm(f) * ffn_sub_norm              (bitnet families only)
 *   x += f W_down
 * then logits = (rmsnorm(x) * output_norm) W_out. */
#include "context.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "matmul.h"
#include "tensor_types.h"

/* ---- creation ----------------------------------------------------------------- */

static size_t max_size(size_t a, size_t b) { return a > b ? a : b; }

static size_t act_scratch_bytes(const struct bitnet_model *m, int32_t n_batch) {
    size_t need = bn_matmul_scratch_bytes(&m->output, n_batch);
    for (int il = 0; il < m->hp.n_layer; il++) {
        const bn_layer *l = &m->layers[il];
        const bn_weight *ws[] = {&l->wq, &l->wk, &l->wv, &l->wo, &l->w_gate, &l->w_up, &l->w_down};
        for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++)
            need = max_size(need, bn_matmul_scratch_bytes(ws[i], n_batch));
    }
    return need;
}

/* calloc with an overflow-checked element count; NULL on failure. */
static void *alloc_array(size_t a, size_t b, size_t elem) {
    if (a && b > SIZE_MAX / a) return NULL;
    size_t n = a * b;
    if (n && elem > SIZE_MAX / n) return NULL;
    return calloc(n ? n : 1, elem);
}

bitnet_status bn_context_create(const struct bitnet_model *m, int32_t n_ctx, int32_t n_batch, int32_t n_threads,
                                bool kv_f16, struct bitnet_context **out, bn_error *err) {
    *out = NULL;
    const bn_hparams *hp = &m->hp;
    if (n_ctx <= 0 || n_batch <= 0)
        return bn_fail(err, BITNET_ERR_INVALID_ARGUMENT, "n_ctx (%d) and n_batch (%d) must be positive", n_ctx,
                       n_batch);
    if (n_batch > n_ctx) n_batch = n_ctx;
    const size_t kv_dim = (size_t)hp->n_head_kv * hp->head_dim;
    const size_t q_dim = (size_t)hp->n_head * hp->head_dim;
    /* Refuse before allocating when the KV cache alone cannot be addressed. */
    const size_t kv_elem = kv_f16 ? sizeof(uint16_t) : sizeof(float);
    double kv_bytes = 2.0 * hp->n_layer * (double)n_ctx * (double)kv_dim * (double)kv_elem;
    if (kv_bytes > (double)SIZE_MAX / 2)
        return bn_fail(err, BITNET_ERR_OUT_OF_MEMORY, "a %d-token KV cache needs %.0f bytes", n_ctx, kv_bytes);

    struct bitnet_context *c = calloc(1, sizeof *c);
    if (!c) return bn_fail(err, BITNET_ERR_OUT_OF_MEMORY, "out of memory");
    c->model = m;
    c->n_ctx = n_ctx;
    c->n_batch = n_batch;
    c->n_threads = n_threads;
    c->kv_f16 = kv_f16;
    size_t cache_rows = (size_t)hp->n_layer * (size_t)n_ctx;
    c->k_cache = alloc_array(cache_rows, kv_dim, kv_elem);
    c->v_cache = alloc_array(cache_rows, kv_dim, kv_elem);
    c->kv_row = alloc_array((size_t)hp->head_dim, 1, sizeof(float));
    c->x = alloc_array((size_t)n_batch, (size_t)hp->n_embd, sizeof(float));
    c->h = alloc_array((size_t)n_batch, max_size((size_t)hp->n_embd, q_dim), sizeof(float));
    c->q = alloc_array((size_t)n_batch, q_dim, sizeof(float));
    c->attn = alloc_array((size_t)n_batch, q_dim, sizeof(float));
    c->k = alloc_array((size_t)n_batch, kv_dim, sizeof(float));
    c->v = alloc_array((size_t)n_batch, kv_dim, sizeof(float));
    c->ffn_a = alloc_array((size_t)n_batch, (size_t)hp->n_ff, sizeof(float));
    c->ffn_b = alloc_array((size_t)n_batch, (size_t)hp->n_ff, sizeof(float));
    c->scores = alloc_array((size_t)n_ctx, 1, sizeof(float));
    c->logits = alloc_array((size_t)hp->n_vocab, 1, sizeof(float));
    c->act = alloc_array(act_scratch_bytes(m, n_batch), 1, 1);
    if (!c->k_cache || !c->v_cache || !c->kv_row || !c->x || !c->h || !c->q || !c->attn || !c->k || !c->v || !c->ffn_a ||
        !c->ffn_b || !c->scores || !c->logits || !c->act) {
        bn_context_destroy(c);
        return bn_fail(err, BITNET_ERR_OUT_OF_MEMORY,
                       "out of memory for a %d-token context (KV cache %.1f MiB)", n_ctx, kv_bytes / 1048576.0);
    }
    *out = c;
    return BITNET_OK;
}

void bn_context_destroy(struct bitnet_context *c) {
    if (!c) return;
    free(c->k_cache);
    free(c->v_cache);
    free(c->kv_row);
    free(c->x);
    free(c->h);
    free(c->q);
    free(c->attn);
    free(c->k);
    free(c->v);
    free(c->ffn_a);
    free(c->ffn_b);
    free(c->scores);
    free(c->logits);
    free(c->act);
    free(c);
}

/* ---- building blocks --------------------------------------------------------------- */

/* y = x / sqrt(mean(x^2) + eps) * w, over n elements (sum in double, as ggml does). */
static void rmsnorm(float *y, const float *x, const float *w, int64_t n, float eps) {
    double ss = 0.0;
    for (int64_t i = 0; i < n; i++) ss += (double)x[i] * x[i];
    const float inv = (float)(1.0 / sqrt(ss / (double)n + eps));
    for (int64_t i = 0; i < n; i++) y[i] = x[i] * inv * w[i];
}

/* Rotate the n_heads heads of one token's vector in place at position pos. */
static void rope(float *v, int n_heads, int head_dim, int32_t pos, const struct bitnet_model *m) {
    const int half = head_dim / 2;
    const bool neox = m->arch->rope == BN_ROPE_NEOX;
    for (int i = 0; i < half; i++) {
        double theta = (double)pos * pow((double)m->hp.rope_freq_base, -2.0 * i / head_dim);
        if (m->rope_freqs) theta /= m->rope_freqs[i];
        const float cs = (float)cos(theta), sn = (float)sin(theta);
        for (int hd = 0; hd < n_heads; hd++) {
            float *p = v + (size_t)hd * head_dim;
            const int a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
            const float x0 = p[a], x1 = p[b];
            p[a] = x0 * cs - x1 * sn;
            p[b] = x0 * sn + x1 * cs;
        }
    }
}

static float silu(float x) { return x / (1.0f + expf(-x)); }

static float relu2(float x) {
    const float r = x > 0.0f ? x : 0.0f;
    return r * r;
}

/* Store n rows of kv_dim floats into a cache at element offset `off`. */
static void cache_store(const struct bitnet_context *c, void *cache, size_t off, const float *src, size_t count) {
    if (c->kv_f16) {
        uint16_t *dst = (uint16_t *)cache + off;
        for (size_t i = 0; i < count; i++) dst[i] = bn_fp32_to_fp16(src[i]);
    } else {
        memcpy((float *)cache + off, src, count * sizeof(float));
    }
}

/* One cached head (hd values at element offset `off`) as floats. */
static const float *cache_head(struct bitnet_context *c, const void *cache, size_t off, int hd) {
    if (!c->kv_f16) return (const float *)cache + off;
    const uint16_t *src = (const uint16_t *)cache + off;
    for (int i = 0; i < hd; i++) c->kv_row[i] = bn_fp16_to_fp32(src[i]);
    return c->kv_row;
}

/* Causal grouped-query attention for n tokens whose keys/values are already
 * in the cache at positions pos0.. . out[t] = softmax(q K^T / sqrt(d)) V. */
static void attention(struct bitnet_context *c, int il, int32_t pos0, int32_t n) {
    const bn_hparams *hp = &c->model->hp;
    const int hd = hp->head_dim, group = hp->n_head / hp->n_head_kv;
    const size_t kv_dim = (size_t)hp->n_head_kv * hd, q_dim = (size_t)hp->n_head * hd;
    const size_t layer_off = (size_t)il * c->n_ctx * kv_dim;
    const float scale = 1.0f / sqrtf((float)hd);
    for (int32_t t = 0; t < n; t++) {
        const int32_t n_kv = pos0 + t + 1;
        for (int h = 0; h < hp->n_head; h++) {
            const float *q = c->q + t * q_dim + (size_t)h * hd;
            const size_t kvo = (size_t)(h / group) * hd;
            float mx = -INFINITY;
            for (int32_t j = 0; j < n_kv; j++) {
                const float *k = cache_head(c, c->k_cache, layer_off + (size_t)j * kv_dim + kvo, hd);
                float s = 0.0f;
                for (int i = 0; i < hd; i++) s += q[i] * k[i];
                s *= scale;
                c->scores[j] = s;
                if (s > mx) mx = s;
            }
            double sum = 0.0;
            for (int32_t j = 0; j < n_kv; j++) {
                c->scores[j] = expf(c->scores[j] - mx);
                sum += c->scores[j];
            }
            const float inv = (float)(1.0 / sum);
            float *o = c->attn + t * q_dim + (size_t)h * hd;
            memset(o, 0, (size_t)hd * sizeof *o);
            for (int32_t j = 0; j < n_kv; j++) {
                const float *v = cache_head(c, c->v_cache, layer_off + (size_t)j * kv_dim + kvo, hd);
                const float p = c->scores[j] * inv;
                for (int i = 0; i < hd; i++) o[i] += p * v[i];
            }
        }
    }
}

/* One forward step over n <= n_batch tokens at positions n_past.. .
 * Writes logits of every token to logits_all (if not NULL) and of the last
 * token to c->logits. */
static void forward(struct bitnet_context *c, const int32_t *tokens, int32_t n, float *logits_all) {
    const struct bitnet_model *m = c->model;
    const bn_hparams *hp = &m->hp;
    const int64_t E = hp->n_embd, F = hp->n_ff;
    const int64_t q_dim = (int64_t)hp->n_head * hp->head_dim, kv_dim = (int64_t)hp->n_head_kv * hp->head_dim;
    const int32_t pos0 = c->n_past;

    for (int32_t t = 0; t < n; t++) bn_weight_get_row(&m->tok_embd, tokens[t], c->x + t * E);

    for (int il = 0; il < hp->n_layer; il++) {
        const bn_layer *l = &m->layers[il];
        for (int32_t t = 0; t < n; t++) rmsnorm(c->h + t * E, c->x + t * E, l->attn_norm, E, hp->norm_eps);
        bn_matmul(&l->wq, c->h, n, c->q, c->act);
        bn_matmul(&l->wk, c->h, n, c->k, c->act);
        bn_matmul(&l->wv, c->h, n, c->v, c->act);
        for (int32_t t = 0; t < n; t++) {
            rope(c->q + t * q_dim, hp->n_head, hp->head_dim, pos0 + t, m);
            rope(c->k + t * kv_dim, hp->n_head_kv, hp->head_dim, pos0 + t, m);
        }
        const size_t cache_off = ((size_t)il * c->n_ctx + (size_t)pos0) * (size_t)kv_dim;
        cache_store(c, c->k_cache, cache_off, c->k, (size_t)n * (size_t)kv_dim);
        cache_store(c, c->v_cache, cache_off, c->v, (size_t)n * (size_t)kv_dim);
        attention(c, il, pos0, n);

        const float *a = c->attn;
        if (l->attn_sub_norm) {
            for (int32_t t = 0; t < n; t++)
                rmsnorm(c->h + t * q_dim, c->attn + t * q_dim, l->attn_sub_norm, q_dim, hp->norm_eps);
            a = c->h;
        }
        bn_matmul(&l->wo, a, n, c->q, c->act); /* c->q is free again: reuse it for the projection */
        for (int64_t i = 0; i < n * E; i++) c->x[i] += c->q[i];

        for (int32_t t = 0; t < n; t++) rmsnorm(c->h + t * E, c->x + t * E, l->ffn_norm, E, hp->norm_eps);
        bn_matmul(&l->w_gate, c->h, n, c->ffn_a, c->act);
        bn_matmul(&l->w_up, c->h, n, c->ffn_b, c->act);
        const bool relu_sq = m->arch->ffn_act == BN_FFN_RELU2;
        for (int64_t i = 0; i < n * F; i++) c->ffn_a[i] = (relu_sq ? relu2(c->ffn_a[i]) : silu(c->ffn_a[i])) * c->ffn_b[i];
        if (l->ffn_sub_norm)
            for (int32_t t = 0; t < n; t++)
                rmsnorm(c->ffn_a + t * F, c->ffn_a + t * F, l->ffn_sub_norm, F, hp->norm_eps);
        bn_matmul(&l->w_down, c->ffn_a, n, c->h, c->act);
        for (int64_t i = 0; i < n * E; i++) c->x[i] += c->h[i];
    }

    /* Final norm and output projection: all rows when asked, else only the last. */
    const int32_t first = logits_all ? 0 : n - 1;
    const int32_t rows = n - first;
    for (int32_t t = first; t < n; t++) rmsnorm(c->h + (t - first) * E, c->x + t * E, m->output_norm, E, hp->norm_eps);
    const size_t V = (size_t)hp->n_vocab;
    if (logits_all) {
        bn_matmul(&m->output, c->h, rows, logits_all, c->act);
        memcpy(c->logits, logits_all + (size_t)(rows - 1) * V, V * sizeof(float));
    } else {
        bn_matmul(&m->output, c->h, 1, c->logits, c->act);
    }
    c->n_past += n;
    c->has_logits = true;
}

bitnet_status bn_context_decode(struct bitnet_context *c, const int32_t *tokens, int32_t n, float *logits_all) {
    if (n <= 0 || !tokens) return bn_fail(&c->err, BITNET_ERR_INVALID_ARGUMENT, "no tokens to decode");
    if ((int64_t)c->n_past + n > c->n_ctx)
        return bn_fail(&c->err, BITNET_ERR_CONTEXT_FULL,
                       "%d tokens do not fit: the context holds %d and already has %d", n, c->n_ctx, c->n_past);
    const int32_t n_vocab = c->model->hp.n_vocab;
    for (int32_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= n_vocab)
            return bn_fail(&c->err, BITNET_ERR_INVALID_ARGUMENT, "token id %d at position %d is out of range [0, %d)",
                           tokens[i], i, n_vocab);
    for (int32_t done = 0; done < n; done += c->n_batch) {
        const int32_t step = n - done < c->n_batch ? n - done : c->n_batch;
        forward(c, tokens + done, step, logits_all ? logits_all + (size_t)done * n_vocab : NULL);
    }
    return BITNET_OK;
}
