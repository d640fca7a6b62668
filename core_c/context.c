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
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "matmul.h"
#include "tensor_types.h"

/* ---- creation ----------------------------------------------------------------- */

static size_t max_size(size_t a, size_t b) { return a > b ? a : b; }

static size_t act_scratch_bytes(const struct bitnet_model *m, int32_t n_batch) {
    const bn_weight *out[] = {&m->output};
    size_t need = bn_matmul_scratch_bytes(out, 1, n_batch);
    for (int il = 0; il < m->hp.n_layer; il++) {
        const bn_layer *l = &m->layers[il];
        const bn_weight *qkv[] = {&l->wq, &l->wk, &l->wv}, *o[] = {&l->wo}, *gu[] = {&l->w_gate, &l->w_up},
                        *down[] = {&l->w_down};
        need = max_size(need, bn_matmul_scratch_bytes(qkv, 3, n_batch));
        need = max_size(need, bn_matmul_scratch_bytes(o, 1, n_batch));
        need = max_size(need, bn_matmul_scratch_bytes(gu, 2, n_batch));
        need = max_size(need, bn_matmul_scratch_bytes(down, 1, n_batch));
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
    c->x = alloc_array((size_t)n_batch, (size_t)hp->n_embd, sizeof(float));
    c->h = alloc_array((size_t)n_batch, max_size((size_t)hp->n_embd, q_dim), sizeof(float));
    c->q = alloc_array((size_t)n_batch, q_dim, sizeof(float));
    c->attn = alloc_array((size_t)n_batch, q_dim, sizeof(float));
    c->k = alloc_array((size_t)n_batch, kv_dim, sizeof(float));
    c->v = alloc_array((size_t)n_batch, kv_dim, sizeof(float));
    c->ffn_a = alloc_array((size_t)n_batch, (size_t)hp->n_ff, sizeof(float));
    c->ffn_b = alloc_array((size_t)n_batch, (size_t)hp->n_ff, sizeof(float));
    bitnet_status st = bn_threadpool_create(n_threads > 0 ? n_threads : bn_cpu_count(), &c->pool, err);
    if (st) {
        bn_context_destroy(c);
        return st;
    }
    c->n_threads = bn_threadpool_size(c->pool);
    const size_t group = (size_t)(hp->n_head / hp->n_head_kv);
    c->scores = alloc_array((size_t)c->n_threads * group, (size_t)n_ctx, sizeof(float));
    c->logits = alloc_array((size_t)hp->n_vocab, 1, sizeof(float));
    c->act_bytes = act_scratch_bytes(m, n_batch);
    c->act = alloc_array(c->act_bytes, 1, 1);
    if (!c->k_cache || !c->v_cache || !c->x || !c->h || !c->q || !c->attn || !c->k || !c->v || !c->ffn_a ||
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
    bn_threadpool_destroy(c->pool);
    free(c->k_cache);
    free(c->v_cache);
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

/* Store count floats into a cache at element offset `off`. */
static void cache_store(const struct bitnet_context *c, void *cache, size_t off, const float *src, size_t count) {
    if (c->kv_f16)
        c->model->kernels.fp32_to_fp16(src, (uint16_t *)cache + off, (int64_t)count);
    else
        memcpy((float *)cache + off, src, count * sizeof(float));
}

typedef struct attention_job {
    struct bitnet_context *c;
    int il;
    int32_t pos0, n;
    atomic_int next; /* the next (token, kv head) pair to take */
} attention_job;

/* Causal grouped-query attention of one token t against the cached keys and
 * values of one kv head g, for the `group` query heads that share it:
 *     scores = q K^T * (1 / sqrt(d))   one mul_mat: the query heads are its "tokens"
 *     out    = softmax(scores) V       an axpy per cached position */
static void attend(struct bitnet_context *c, const attention_job *j, int32_t t, int g, float *scores) {
    const bn_hparams *hp = &c->model->hp;
    const bn_kernels *k = &c->model->kernels;
    const int hd = hp->head_dim, group = hp->n_head / hp->n_head_kv;
    const size_t kv_dim = (size_t)hp->n_head_kv * hd, q_dim = (size_t)hp->n_head * hd;
    const size_t elem = c->kv_f16 ? sizeof(uint16_t) : sizeof(float);
    const size_t head0 = ((size_t)j->il * c->n_ctx * kv_dim + (size_t)g * hd) * elem; /* byte offset, position 0 */
    const int32_t n_kv = j->pos0 + t + 1;
    const float scale = 1.0f / sqrtf((float)hd);
    const float *q = c->q + (size_t)t * q_dim + (size_t)g * group * hd;

    k->mul_mat[c->kv_f16 ? BN_TYPE_F16 : BN_TYPE_F32](hd, (const uint8_t *)c->k_cache + head0, kv_dim * elem, n_kv,
                                                       (const uint8_t *)q, (size_t)hd * sizeof(float), group, scores,
                                                       n_kv);
    for (int h = 0; h < group; h++) {
        float *s = scores + (size_t)h * n_kv;
        float mx = -INFINITY;
        for (int32_t p = 0; p < n_kv; p++) {
            s[p] *= scale;
            if (s[p] > mx) mx = s[p];
        }
        double sum = 0.0;
        for (int32_t p = 0; p < n_kv; p++) {
            s[p] = expf(s[p] - mx);
            sum += s[p];
        }
        const float inv = (float)(1.0 / sum);
        float *o = c->attn + (size_t)t * q_dim + (size_t)(g * group + h) * hd;
        memset(o, 0, (size_t)hd * sizeof *o);
        const uint8_t *v = (const uint8_t *)c->v_cache + head0;
        for (int32_t p = 0; p < n_kv; p++, v += kv_dim * elem) {
            if (c->kv_f16)
                k->axpy_f16(hd, s[p] * inv, (const uint16_t *)(const void *)v, o);
            else
                k->axpy_f32(hd, s[p] * inv, (const float *)(const void *)v, o);
        }
    }
}

static void attention_task(void *arg, int ith, int nth) {
    (void)nth;
    attention_job *j = arg;
    struct bitnet_context *c = j->c;
    const int n_kv_head = c->model->hp.n_head_kv, group = c->model->hp.n_head / n_kv_head;
    float *scores = c->scores + (size_t)ith * group * c->n_ctx;
    for (;;) {
        const int item = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
        if (item >= j->n * n_kv_head) return;
        attend(c, j, item / n_kv_head, item % n_kv_head, scores);
    }
}

/* Attention for n tokens whose keys and values are already in the cache at
 * positions pos0.. ; (token, kv head) pairs are split over the threads. */
static void attention(struct bitnet_context *c, int il, int32_t pos0, int32_t n) {
    attention_job j = {.c = c, .il = il, .pos0 = pos0, .n = n};
    atomic_init(&j.next, 0);
    bn_threadpool_run(c->pool, attention_task, &j);
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
    const bn_kernels *kern = &m->kernels;

    for (int32_t t = 0; t < n; t++) bn_weight_get_row(&m->tok_embd, tokens[t], c->x + t * E);

    for (int il = 0; il < hp->n_layer; il++) {
        const bn_layer *l = &m->layers[il];
        for (int32_t t = 0; t < n; t++) rmsnorm(c->h + t * E, c->x + t * E, l->attn_norm, E, hp->norm_eps);
        const bn_weight *qkv[] = {&l->wq, &l->wk, &l->wv};
        float *const qkv_out[] = {c->q, c->k, c->v};
        bn_matmul(kern, c->pool, qkv, qkv_out, 3, c->h, n, c->act);
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
        const bn_weight *o[] = {&l->wo};
        float *const o_out[] = {c->q}; /* c->q is free again: reuse it for the projection */
        bn_matmul(kern, c->pool, o, o_out, 1, a, n, c->act);
        for (int64_t i = 0; i < n * E; i++) c->x[i] += c->q[i];

        for (int32_t t = 0; t < n; t++) rmsnorm(c->h + t * E, c->x + t * E, l->ffn_norm, E, hp->norm_eps);
        const bn_weight *gu[] = {&l->w_gate, &l->w_up};
        float *const gu_out[] = {c->ffn_a, c->ffn_b};
        bn_matmul(kern, c->pool, gu, gu_out, 2, c->h, n, c->act);
        const bool relu_sq = m->arch->ffn_act == BN_FFN_RELU2;
        for (int64_t i = 0; i < n * F; i++) c->ffn_a[i] = (relu_sq ? relu2(c->ffn_a[i]) : silu(c->ffn_a[i])) * c->ffn_b[i];
        if (l->ffn_sub_norm)
            for (int32_t t = 0; t < n; t++)
                rmsnorm(c->ffn_a + t * F, c->ffn_a + t * F, l->ffn_sub_norm, F, hp->norm_eps);
        const bn_weight *down[] = {&l->w_down};
        float *const down_out[] = {c->h};
        bn_matmul(kern, c->pool, down, down_out, 1, c->ffn_a, n, c->act);
        for (int64_t i = 0; i < n * E; i++) c->x[i] += c->h[i];
    }

    /* Final norm and output projection: all rows when asked, else only the last. */
    const int32_t first = logits_all ? 0 : n - 1;
    const int32_t rows = n - first;
    for (int32_t t = first; t < n; t++) rmsnorm(c->h + (t - first) * E, c->x + t * E, m->output_norm, E, hp->norm_eps);
    const size_t V = (size_t)hp->n_vocab;
    const bn_weight *out[] = {&m->output};
    float *const logits_out[] = {logits_all ? logits_all : c->logits};
    bn_matmul(kern, c->pool, out, logits_out, 1, c->h, rows, c->act);
    if (logits_all) memcpy(c->logits, logits_all + (size_t)(rows - 1) * V, V * sizeof(float));
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
