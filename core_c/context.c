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
#include "memlimit.h"
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
                                bool kv_f16, int32_t n_seq, struct bitnet_context **out, bn_error *err) {
    *out = NULL;
    const bn_hparams *hp = &m->hp;
    if (n_ctx <= 0 || n_batch <= 0 || n_seq <= 0)
        return bn_fail(err, BITNET_ERR_INVALID_ARGUMENT, "n_ctx (%d), n_batch (%d) and n_seq_max (%d) must be positive",
                       n_ctx, n_batch, n_seq);
    if (n_batch > n_ctx) n_batch = n_ctx;
    const size_t kv_dim = (size_t)hp->n_head_kv * hp->head_dim;
    const size_t q_dim = (size_t)hp->n_head * hp->head_dim;
    /* Refuse before allocating when the KV cache alone cannot be addressed. */
    const size_t kv_elem = kv_f16 ? sizeof(uint16_t) : sizeof(float);
    double kv_bytes = 2.0 * hp->n_layer * (double)n_seq * (double)n_ctx * (double)kv_dim * (double)kv_elem;
    if (kv_bytes > (double)SIZE_MAX / 2)
        return bn_fail(err, BITNET_ERR_OUT_OF_MEMORY, "%d KV caches of %d tokens need %.0f bytes", n_seq, n_ctx,
                       kv_bytes);
    const double limit = (double)bn_memory_limit_bytes();
    if (limit > 0 && kv_bytes > limit) {
        const double per_token = kv_bytes / ((double)n_seq * n_ctx);
        return bn_fail(err, BITNET_ERR_OUT_OF_MEMORY,
                       "n_ctx = %d: the KV cache of %d x %d tokens needs %.2f GiB, more than the %.2f GiB of memory "
                       "this process may use (physical memory or its cgroup limit); at most about %.0f tokens fit",
                       n_ctx, n_seq, n_ctx, kv_bytes / 1073741824.0, limit / 1073741824.0,
                       limit / per_token / n_seq);
    }

    struct bitnet_context *c = calloc(1, sizeof *c);
    if (!c) return bn_fail(err, BITNET_ERR_OUT_OF_MEMORY, "out of memory");
    c->model = m;
    atomic_init(&c->in_use, 0);
    c->n_ctx = n_ctx;
    c->n_batch = n_batch;
    c->n_threads = n_threads;
    c->kv_f16 = kv_f16;
    c->n_seq = n_seq;
    c->seq_len = alloc_array((size_t)n_seq, 1, sizeof(int32_t));
    c->seq_next = alloc_array((size_t)n_seq, 1, sizeof(int32_t));
    c->tok_seq = alloc_array((size_t)n_batch, 1, sizeof(int32_t));
    c->tok_pos = alloc_array((size_t)n_batch, 1, sizeof(int32_t));
    c->tok_want = alloc_array((size_t)n_batch, 1, sizeof(uint8_t));
    size_t cache_rows = (size_t)hp->n_layer * (size_t)n_seq * (size_t)n_ctx;
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
        !c->ffn_b || !c->scores || !c->logits || !c->act || !c->seq_len || !c->seq_next || !c->tok_seq ||
        !c->tok_pos || !c->tok_want) {
        bn_context_destroy(c);
        return bn_fail(err, BITNET_ERR_OUT_OF_MEMORY,
                       "out of memory for a context of %d x %d tokens (KV cache %.1f MiB)", n_seq, n_ctx,
                       kv_bytes / 1048576.0);
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
    free(c->seq_len);
    free(c->seq_next);
    free(c->tok_seq);
    free(c->tok_pos);
    free(c->tok_want);
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

/* Element offset of (layer il, sequence seq, position pos) in a cache. */
static size_t cache_offset(const struct bitnet_context *c, int il, int32_t seq, int32_t pos) {
    const bn_hparams *hp = &c->model->hp;
    const size_t kv_dim = (size_t)hp->n_head_kv * hp->head_dim;
    return (((size_t)il * (size_t)c->n_seq + (size_t)seq) * (size_t)c->n_ctx + (size_t)pos) * kv_dim;
}

typedef struct attention_job {
    struct bitnet_context *c;
    int il;
    int32_t n;
    atomic_int next; /* the next (token, kv head) pair to take */
} attention_job;

/* Causal grouped-query attention of one token t against the cached keys and
 * values of its own sequence (positions 0..tok_pos[t]) of one kv head g, for
 * the `group` query heads that share it:
 *     scores = q K^T * (1 / sqrt(d))   one mul_mat: the query heads are its "tokens"
 *     out    = softmax(scores) V       an axpy per cached position */
static void attend(struct bitnet_context *c, const attention_job *j, int32_t t, int g, float *scores) {
    const bn_hparams *hp = &c->model->hp;
    const bn_kernels *k = &c->model->kernels;
    const int hd = hp->head_dim, group = hp->n_head / hp->n_head_kv;
    const size_t kv_dim = (size_t)hp->n_head_kv * hd, q_dim = (size_t)hp->n_head * hd;
    const size_t elem = c->kv_f16 ? sizeof(uint16_t) : sizeof(float);
    /* byte offset of this head at position 0 of the token's sequence */
    const size_t head0 = (cache_offset(c, j->il, c->tok_seq[t], 0) + (size_t)g * hd) * elem;
    const int32_t n_kv = c->tok_pos[t] + 1;
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

/* Attention for n tokens whose keys and values are already in the cache;
 * (token, kv head) pairs are split over the threads. Tokens of different
 * sequences are independent pairs like any others. */
static void attention(struct bitnet_context *c, int il, int32_t n) {
    attention_job j = {.c = c, .il = il, .n = n};
    atomic_init(&j.next, 0);
    bn_threadpool_run(c->pool, attention_task, &j);
}

/* One forward step over n <= n_batch tokens: token t belongs to sequence
 * c->tok_seq[t] at position c->tok_pos[t] (its keys and values are stored
 * there before attention runs, so a later token of the same sequence in the
 * step sees an earlier one). Every matmul runs over all n tokens at once.
 * The logits of each token with c->tok_want[t] go to consecutive rows of
 * `out`, in token order; returns how many rows were written. Each token's
 * numbers depend only on its own sequence: kernels compute every (row,
 * token) dot product independently (kernels.h), activations are quantized
 * per token, and norms, RoPE and attention are per token. */
static int32_t forward(struct bitnet_context *c, const int32_t *tokens, int32_t n, float *out) {
    const struct bitnet_model *m = c->model;
    const bn_hparams *hp = &m->hp;
    const int64_t E = hp->n_embd, F = hp->n_ff;
    const int64_t q_dim = (int64_t)hp->n_head * hp->head_dim, kv_dim = (int64_t)hp->n_head_kv * hp->head_dim;
    const bn_kernels *kern = &m->kernels;

    for (int32_t t = 0; t < n; t++) bn_weight_get_row(&m->tok_embd, tokens[t], c->x + t * E);

    for (int il = 0; il < hp->n_layer; il++) {
        const bn_layer *l = &m->layers[il];
        for (int32_t t = 0; t < n; t++) rmsnorm(c->h + t * E, c->x + t * E, l->attn_norm, E, hp->norm_eps);
        const bn_weight *qkv[] = {&l->wq, &l->wk, &l->wv};
        float *const qkv_out[] = {c->q, c->k, c->v};
        bn_matmul(kern, c->pool, qkv, qkv_out, 3, c->h, n, c->act);
        for (int32_t t = 0; t < n; t++) {
            rope(c->q + t * q_dim, hp->n_head, hp->head_dim, c->tok_pos[t], m);
            rope(c->k + t * kv_dim, hp->n_head_kv, hp->head_dim, c->tok_pos[t], m);
            const size_t off = cache_offset(c, il, c->tok_seq[t], c->tok_pos[t]);
            cache_store(c, c->k_cache, off, c->k + t * kv_dim, (size_t)kv_dim);
            cache_store(c, c->v_cache, off, c->v + t * kv_dim, (size_t)kv_dim);
        }
        attention(c, il, n);

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

    /* Final norm and output projection, only for the rows asked for: the
     * projection of every prompt token would be most of a prefill's work. */
    int32_t rows = 0;
    for (int32_t t = 0; t < n; t++)
        if (c->tok_want[t]) rmsnorm(c->h + (rows++) * E, c->x + t * E, m->output_norm, E, hp->norm_eps);
    if (rows) {
        const bn_weight *w_out[] = {&m->output};
        float *const logits_out[] = {out};
        bn_matmul(kern, c->pool, w_out, logits_out, 1, c->h, rows, c->act);
    }
    return rows;
}

bitnet_status bn_context_decode(struct bitnet_context *c, const int32_t *tokens, int32_t n, float *logits_all) {
    if (n <= 0 || !tokens) return bn_fail(&c->err, BITNET_ERR_INVALID_ARGUMENT, "no tokens to decode");
    const int32_t n_past = c->seq_len[0];
    if ((int64_t)n_past + n > c->n_ctx)
        return bn_fail(&c->err, BITNET_ERR_CONTEXT_FULL,
                       "%d tokens do not fit: the context holds %d and already has %d", n, c->n_ctx, n_past);
    const int32_t n_vocab = c->model->hp.n_vocab;
    for (int32_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= n_vocab)
            return bn_fail(&c->err, BITNET_ERR_INVALID_ARGUMENT, "token id %d at position %d is out of range [0, %d)",
                           tokens[i], i, n_vocab);
    for (int32_t done = 0; done < n; done += c->n_batch) {
        const int32_t step = n - done < c->n_batch ? n - done : c->n_batch;
        for (int32_t t = 0; t < step; t++) {
            c->tok_seq[t] = 0;
            c->tok_pos[t] = n_past + done + t;
            c->tok_want[t] = logits_all || done + t == n - 1; /* without logits_all only the last token's */
        }
        forward(c, tokens + done, step, logits_all ? logits_all + (size_t)done * n_vocab : c->logits);
    }
    if (logits_all) memcpy(c->logits, logits_all + (size_t)(n - 1) * n_vocab, (size_t)n_vocab * sizeof(float));
    c->seq_len[0] = n_past + n;
    c->has_logits = true;
    return BITNET_OK;
}

bitnet_status bn_context_decode_batch(struct bitnet_context *c, const int32_t *tokens, const int32_t *seq_ids,
                                      const int8_t *want_logits, int32_t n, float *logits_out) {
    if (n <= 0 || !tokens || !seq_ids)
        return bn_fail(&c->err, BITNET_ERR_INVALID_ARGUMENT, "no tokens to decode (n_tokens %d, tokens or seq_ids NULL)",
                       n);
    const int32_t n_vocab = c->model->hp.n_vocab;
    /* Validate every item before touching any sequence: seq_next counts
     * each sequence's length as the batch would leave it. */
    memcpy(c->seq_next, c->seq_len, (size_t)c->n_seq * sizeof *c->seq_next);
    int32_t n_rows = 0;
    for (int32_t i = 0; i < n; i++) {
        const int32_t s = seq_ids[i];
        if (s < 0 || s >= c->n_seq)
            return bn_fail(&c->err, BITNET_ERR_INVALID_ARGUMENT, "item %d: sequence id %d is out of range [0, %d)", i,
                           s, c->n_seq);
        if (tokens[i] < 0 || tokens[i] >= n_vocab)
            return bn_fail(&c->err, BITNET_ERR_INVALID_ARGUMENT,
                           "item %d: token id %d (sequence %d) is out of range [0, %d)", i, tokens[i], s, n_vocab);
        if (c->seq_next[s] >= c->n_ctx)
            return bn_fail(&c->err, BITNET_ERR_CONTEXT_FULL,
                           "item %d: sequence %d is full: it holds %d tokens, %d of them from this batch, and a "
                           "sequence holds at most n_ctx = %d",
                           i, s, c->seq_next[s], c->seq_next[s] - c->seq_len[s], c->n_ctx);
        c->seq_next[s]++;
        if (!want_logits || want_logits[i]) n_rows++;
    }
    if (n_rows && !logits_out)
        return bn_fail(&c->err, BITNET_ERR_INVALID_ARGUMENT, "%d items ask for logits but logits_out is NULL", n_rows);

    /* Run: positions are each sequence's length before the batch plus the
     * items of that sequence that come earlier in the batch. */
    memcpy(c->seq_next, c->seq_len, (size_t)c->n_seq * sizeof *c->seq_next);
    int32_t row = 0, last0_row = -1;
    bool has0 = false;
    for (int32_t done = 0; done < n; done += c->n_batch) {
        const int32_t step = n - done < c->n_batch ? n - done : c->n_batch;
        int32_t rows = 0;
        for (int32_t t = 0; t < step; t++) {
            const int32_t s = seq_ids[done + t];
            c->tok_seq[t] = s;
            c->tok_pos[t] = c->seq_next[s]++;
            c->tok_want[t] = !want_logits || want_logits[done + t];
            if (s == 0) {
                has0 = true;
                last0_row = c->tok_want[t] ? row + rows : -1;
            }
            rows += c->tok_want[t];
        }
        forward(c, tokens + done, step, rows ? logits_out + (size_t)row * n_vocab : NULL);
        row += rows;
    }
    memcpy(c->seq_len, c->seq_next, (size_t)c->n_seq * sizeof *c->seq_len);
    /* Keep bitnet_context_logits() the logits after sequence 0's last token. */
    if (has0) {
        c->has_logits = last0_row >= 0;
        if (c->has_logits)
            memcpy(c->logits, logits_out + (size_t)last0_row * n_vocab, (size_t)n_vocab * sizeof(float));
    }
    return BITNET_OK;
}

void bn_context_seq_reset(struct bitnet_context *c, int32_t seq) {
    for (int32_t s = 0; s < c->n_seq; s++)
        if (seq < 0 || s == seq) c->seq_len[s] = 0;
    if (seq <= 0) c->has_logits = false;
}
