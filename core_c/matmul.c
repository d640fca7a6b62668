#include "matmul.h"

#include <stdatomic.h>

/* Activation buffers are placed at multiples of this in the scratch. */
#define BN_ACT_ALIGN 64

static size_t align_up(size_t n) { return (n + BN_ACT_ALIGN - 1) / BN_ACT_ALIGN * BN_ACT_ALIGN; }

/* Where weight i's prepared activations live in the scratch: the offset of
 * the first weight with the same activation format. Returns the total size. */
static size_t act_layout(const bn_weight *const *ws, int nw, int64_t n_tokens, size_t offset[]) {
    size_t total = 0;
    for (int i = 0; i < nw; i++) {
        offset[i] = total;
        for (int j = 0; j < i; j++)
            if (ws[j]->type->act == ws[i]->type->act) {
                offset[i] = offset[j];
                break;
            }
        if (offset[i] == total) total += align_up((size_t)n_tokens * bn_act_row_bytes(ws[i]->type->act, ws[i]->n_in));
    }
    return total;
}

size_t bn_matmul_scratch_bytes(const bn_weight *const *ws, int nw, int64_t n_tokens) {
    size_t offset[BN_MATMUL_MAX_WEIGHTS];
    return act_layout(ws, nw, n_tokens, offset) + BN_ACT_ALIGN; /* slack to align the scratch itself */
}

typedef struct matmul_job {
    const bn_kernels *k;
    const bn_weight *const *ws;
    float *const *ys;
    int nw;
    const float *x;
    int64_t n_tokens;
    uint8_t *act[BN_MATMUL_MAX_WEIGHTS];
    size_t act_row_bytes[BN_MATMUL_MAX_WEIGHTS];
    bool quantize_here[BN_MATMUL_MAX_WEIGHTS]; /* first weight of its activation format */
    int64_t chunk_rows[BN_MATMUL_MAX_WEIGHTS];
    int64_t first_chunk[BN_MATMUL_MAX_WEIGHTS + 1]; /* prefix sums of chunk counts */
    atomic_llong next_chunk;
} matmul_job;

/* Quantize the input rows for every activation format, tokens split by thread. */
static void quantize_task(void *arg, int ith, int nth) {
    matmul_job *j = arg;
    for (int i = 0; i < j->nw; i++) {
        if (!j->quantize_here[i]) continue;
        const bn_weight *w = j->ws[i];
        const bn_act_quantize_fn q = j->k->quantize[w->type->act];
        for (int64_t t = ith; t < j->n_tokens; t += nth)
            q(j->x + t * w->n_in, j->act[i] + (size_t)t * j->act_row_bytes[i], w->n_in);
    }
}

/* Take chunks of rows until none are left (dynamic split: a thread the OS
 * preempts does not hold the others back). */
static void multiply_task(void *arg, int ith, int nth) {
    (void)ith;
    (void)nth;
    matmul_job *j = arg;
    const int64_t total = j->first_chunk[j->nw];
    for (;;) {
        const int64_t c = atomic_fetch_add_explicit(&j->next_chunk, 1, memory_order_relaxed);
        if (c >= total) return;
        int i = 0;
        while (c >= j->first_chunk[i + 1]) i++;
        const bn_weight *w = j->ws[i];
        const int64_t r0 = (c - j->first_chunk[i]) * j->chunk_rows[i];
        const int64_t r1 = r0 + j->chunk_rows[i] < w->n_out ? r0 + j->chunk_rows[i] : w->n_out;
        float *y = j->ys[i];
        j->k->mul_mat[w->type->type](w->n_in, w->data + (size_t)r0 * w->row_bytes, w->row_bytes, r1 - r0, j->act[i],
                                     j->act_row_bytes[i], j->n_tokens, y + r0, w->n_out);
        /* The same two float operations the scalar path always did. */
        for (int64_t t = 0; t < j->n_tokens; t++) {
            float *yt = y + t * w->n_out;
            for (int64_t r = r0; r < r1; r++) yt[r] = yt[r] * w->scale + (w->bias ? w->bias[r] : 0.0f);
        }
    }
}

/* Rows per chunk: about four chunks per thread, in multiples of 16 rows. */
static int64_t rows_per_chunk(int64_t n_out, int nth) {
    if (nth == 1) return n_out;
    int64_t rows = (n_out + 4 * nth - 1) / (4 * nth);
    rows = (rows + 15) / 16 * 16;
    return rows > 0 ? rows : 16;
}

void bn_matmul(const bn_kernels *k, bn_threadpool *pool, const bn_weight *const *ws, float *const *ys, int nw,
               const float *x, int64_t n_tokens, void *scratch) {
    matmul_job j = {.k = k, .ws = ws, .ys = ys, .nw = nw, .x = x, .n_tokens = n_tokens};
    size_t offset[BN_MATMUL_MAX_WEIGHTS];
    act_layout(ws, nw, n_tokens, offset);
    uint8_t *base = (uint8_t *)(((uintptr_t)scratch + BN_ACT_ALIGN - 1) / BN_ACT_ALIGN * BN_ACT_ALIGN);
    const int nth = bn_threadpool_size(pool);
    j.first_chunk[0] = 0;
    for (int i = 0; i < nw; i++) {
        j.act[i] = base + offset[i];
        j.act_row_bytes[i] = bn_act_row_bytes(ws[i]->type->act, ws[i]->n_in);
        j.quantize_here[i] = true;
        for (int p = 0; p < i; p++)
            if (offset[p] == offset[i]) j.quantize_here[i] = false;
        j.chunk_rows[i] = rows_per_chunk(ws[i]->n_out, nth);
        j.first_chunk[i + 1] = j.first_chunk[i] + (ws[i]->n_out + j.chunk_rows[i] - 1) / j.chunk_rows[i];
    }
    atomic_init(&j.next_chunk, 0);
    /* One decode token quantizes in microseconds: not worth a fork-join. */
    if (n_tokens >= 2 * nth)
        bn_threadpool_run(pool, quantize_task, &j);
    else
        quantize_task(&j, 0, 1);
    bn_threadpool_run(pool, multiply_task, &j);
}

void bn_weight_get_row(const bn_weight *w, int64_t row, float *out) {
    w->type->to_float(w->data + (size_t)row * w->row_bytes, out, w->n_in);
    if (w->scale != 1.0f)
        for (int64_t i = 0; i < w->n_in; i++) out[i] *= w->scale;
}
