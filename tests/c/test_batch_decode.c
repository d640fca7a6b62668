/* bitnet_decode_batch against bitnet_decode, bit for bit, under ASan + UBSan.
 *
 * Builds a tiny float32 llama-arch model in memory (2 layers, 4 query heads
 * over 2 KV heads, so attention groups and the per-sequence cache offsets
 * are exercised), then for the scalar and the default kernels, 1 and 2
 * threads, f16 and f32 KV caches and n_batch 512 and 3 (batches split into
 * several forward passes):
 *   - several sequences with different prompt lengths, joining at different
 *     steps, prompts prefilled in chunks interleaved with other sequences'
 *     decode tokens: every logits row asked for equals (memcmp) the row
 *     bitnet_decode gives for that sequence alone in a context of its own;
 *   - 16 sequences, then two slots reset and reused;
 *   - failing batches (bad sequence id, bad token id, overflow, logits_out
 *     NULL) leave every sequence as it was: the next batch's logits equal
 *     the reference;
 *   - one call at a time per context: a token callback that calls back into
 *     its own context (decode, decode_batch, seq_reset, generate) gets
 *     "in use" instead of corrupting the KV cache, and the context works
 *     normally after the call returns.
 * Prints "N passed, N failed"; exits 0 only if nothing failed. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet.h"
#include "gguf_build.h"

/* ---- a tiny float32 llama GGUF in memory ------------------------------------------ */

#define N_EMBD 32
#define N_FF 48
#define N_VOCAB 40
#define N_HEAD 4
#define N_HEAD_KV 2
#define N_LAYER 2
#define HEAD_DIM (N_EMBD / N_HEAD)
#define N_CTX 24

typedef struct tdesc {
    char name[40];
    uint64_t ne0, ne1; /* ne1 = 0: 1-D */
} tdesc;

static buf build_model(void) {
    tdesc t[3 + 9 * N_LAYER];
    int n = 0;
    t[n++] = (tdesc){"token_embd.weight", N_EMBD, N_VOCAB};
    t[n++] = (tdesc){"output_norm.weight", N_EMBD, 0};
    t[n++] = (tdesc){"output.weight", N_EMBD, N_VOCAB};
    for (int il = 0; il < N_LAYER; il++) {
        static const struct {
            const char *name;
            uint64_t ne0, ne1;
        } per_layer[] = {{"attn_norm", N_EMBD, 0},
                         {"ffn_norm", N_EMBD, 0},
                         {"attn_q", N_EMBD, N_EMBD},
                         {"attn_k", N_EMBD, N_HEAD_KV * HEAD_DIM},
                         {"attn_v", N_EMBD, N_HEAD_KV * HEAD_DIM},
                         {"attn_output", N_EMBD, N_EMBD},
                         {"ffn_gate", N_EMBD, N_FF},
                         {"ffn_up", N_EMBD, N_FF},
                         {"ffn_down", N_FF, N_EMBD}};
        for (size_t i = 0; i < sizeof per_layer / sizeof per_layer[0]; i++) {
            snprintf(t[n].name, sizeof t[n].name, "blk.%d.%s.weight", il, per_layer[i].name);
            t[n].ne0 = per_layer[i].ne0;
            t[n].ne1 = per_layer[i].ne1;
            n++;
        }
    }
    buf b = {0};
    put(&b, "GGUF", 4);
    put_u32(&b, 3);
    put_u64(&b, (uint64_t)n);
    put_u64(&b, 9);
    kv_str(&b, "general.architecture", "llama");
    kv_u32(&b, "llama.context_length", 64);
    kv_u32(&b, "llama.embedding_length", N_EMBD);
    kv_u32(&b, "llama.block_count", N_LAYER);
    kv_u32(&b, "llama.feed_forward_length", N_FF);
    kv_u32(&b, "llama.attention.head_count", N_HEAD);
    kv_u32(&b, "llama.attention.head_count_kv", N_HEAD_KV);
    kv_f32(&b, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    kv_f32(&b, "llama.rope.freq_base", 10000.0f);
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        put_str(&b, t[i].name);
        put_u32(&b, t[i].ne1 ? 2 : 1);
        put_u64(&b, t[i].ne0);
        if (t[i].ne1) put_u64(&b, t[i].ne1);
        put_u32(&b, 0); /* F32 */
        put_u64(&b, off);
        off += (t[i].ne0 * (t[i].ne1 ? t[i].ne1 : 1) * 4 + 31) / 32 * 32;
    }
    const uint8_t zero[32] = {0};
    put(&b, zero, (32 - b.len % 32) % 32);
    uint32_t rng = 777;
    for (int i = 0; i < n; i++) {
        const uint64_t count = t[i].ne0 * (t[i].ne1 ? t[i].ne1 : 1);
        for (uint64_t j = 0; j < count; j++) {
            rng = rng * 1664525u + 1013904223u;
            /* large enough weights that attention is far from uniform */
            const float v = t[i].ne1 ? ((float)(rng >> 8) / 16777216.0f - 0.5f) * 1.5f : 1.0f;
            put(&b, &v, 4);
        }
        put(&b, zero, (32 - (count * 4) % 32) % 32);
    }
    return b;
}

/* ---- helpers ------------------------------------------------------------------------ */

typedef struct config {
    const char *kernel; /* NULL: the default variant */
    int32_t n_threads, kv_type, n_batch;
} config;

static buf g_model_image;

static bitnet_model *load(const config *cf) {
    bitnet_model_params mp;
    bitnet_model_params_init(&mp);
    mp.kernel = cf->kernel ? cf->kernel : "auto";
    bitnet_model *m = NULL;
    if (bitnet_model_load_from_memory(g_model_image.p, g_model_image.len, &mp, &m) != BITNET_OK) {
        printf("load failed: %s\n", bitnet_last_error());
        return NULL;
    }
    return m;
}

static bitnet_context *make_ctx(bitnet_model *m, const config *cf, int32_t n_seq) {
    bitnet_context_params cp;
    bitnet_context_params_init(&cp);
    cp.n_ctx = N_CTX;
    cp.n_threads = cf->n_threads;
    cp.kv_type = cf->kv_type;
    cp.n_batch = cf->n_batch;
    cp.n_seq_max = n_seq;
    bitnet_context *c = NULL;
    if (bitnet_context_create(m, &cp, &c) != BITNET_OK) printf("context failed: %s\n", bitnet_last_error());
    return c;
}

static uint32_t g_rng = 99;
static int32_t rnd(int32_t n) {
    g_rng = g_rng * 1664525u + 1013904223u;
    return (int32_t)((g_rng >> 8) % (uint32_t)n);
}

#define MAX_SEQ 16
#define MAX_LEN N_CTX

typedef struct seqs {
    int n;
    int32_t len[MAX_SEQ], prompt[MAX_SEQ], start[MAX_SEQ];
    int32_t tok[MAX_SEQ][MAX_LEN];
    float *ref[MAX_SEQ]; /* len x N_VOCAB: each sequence alone through bitnet_decode */
} seqs;

static void make_seqs(seqs *s, int n, int32_t n_decode) {
    memset(s, 0, sizeof *s);
    s->n = n;
    for (int i = 0; i < n; i++) {
        s->prompt[i] = 1 + rnd(MAX_LEN - n_decode - 2);
        s->len[i] = s->prompt[i] + n_decode;
        s->start[i] = rnd(3);
        for (int32_t p = 0; p < MAX_LEN; p++) s->tok[i][p] = rnd(N_VOCAB);
    }
}

static int reference(bitnet_model *m, const config *cf, seqs *s) {
    bitnet_context *c = make_ctx(m, cf, 1);
    if (!c) return 0;
    for (int i = 0; i < s->n; i++) {
        s->ref[i] = malloc((size_t)s->len[i] * N_VOCAB * sizeof(float));
        bitnet_context_reset(c);
        if (!s->ref[i] || bitnet_decode(c, s->tok[i], s->len[i], s->ref[i]) != BITNET_OK) {
            printf("reference decode failed: %s\n", bitnet_context_last_error(c));
            bitnet_context_free(c);
            return 0;
        }
    }
    bitnet_context_free(c);
    return 1;
}

static void free_seqs(seqs *s) {
    for (int i = 0; i < s->n; i++) free(s->ref[i]);
}

/* Run every sequence to its end in server-like batches; compare each row. */
static void run_schedule(bitnet_context *c, const seqs *s, const char *label) {
    int32_t done[MAX_SEQ] = {0};
    enum { CAP = MAX_SEQ * MAX_LEN };
    static int32_t tok[CAP], sid[CAP], pos[CAP];
    static int8_t want[CAP];
    static float out[CAP * N_VOCAB];
    int mismatches = 0, rows_checked = 0, batch_failures = 0;
    for (int step = 0;; step++) {
        /* each active sequence's items for this step, then interleaved */
        int32_t take[MAX_SEQ] = {0}, left = 0;
        int active = 0;
        for (int i = 0; i < s->n; i++) {
            if (step < s->start[i] || done[i] >= s->len[i]) continue;
            active++;
            take[i] = done[i] < s->prompt[i] ? 1 + rnd(s->prompt[i] - done[i]) : 1;
            left += take[i];
        }
        if (!active) {
            int all = 1;
            for (int i = 0; i < s->n; i++) all &= done[i] >= s->len[i];
            if (all) break;
            continue;
        }
        int32_t n = 0, n_rows = 0;
        while (left) {
            int i = rnd(s->n);
            if (!take[i]) continue;
            tok[n] = s->tok[i][done[i]];
            sid[n] = i;
            pos[n] = done[i];
            want[n] = (int8_t)(done[i] >= s->prompt[i] - 1 || rnd(5) == 0);
            n_rows += want[n];
            done[i]++;
            take[i]--;
            left--;
            n++;
        }
        if (bitnet_decode_batch(c, tok, sid, want, n, out) != BITNET_OK) {
            printf("%s: batch failed: %s\n", label, bitnet_context_last_error(c));
            batch_failures++;
            break;
        }
        int32_t r = 0;
        for (int32_t k = 0; k < n; k++) {
            if (!want[k]) continue;
            rows_checked++;
            mismatches += memcmp(out + (size_t)r * N_VOCAB, s->ref[sid[k]] + (size_t)pos[k] * N_VOCAB,
                                 N_VOCAB * sizeof(float)) != 0;
            r++;
        }
        (void)n_rows;
    }
    int lengths_ok = 1;
    for (int i = 0; i < s->n; i++) lengths_ok &= bitnet_seq_length(c, i) == s->len[i];
    char what[200];
    snprintf(what, sizeof what, "%s: %d of %d rows differ from each sequence alone, lengths %s", label, mismatches,
             rows_checked, lengths_ok ? "ok" : "wrong");
    check(!batch_failures && !mismatches && rows_checked > 0 && lengths_ok, what);
}

/* ---- the checks ---------------------------------------------------------------------- */

static void test_config(const config *cf) {
    char label[160];
    snprintf(label, sizeof label, "kernel %s, %d threads, kv %s, n_batch %d", cf->kernel ? cf->kernel : "default",
             cf->n_threads, cf->kv_type == BITNET_KV_F16 ? "f16" : "f32", cf->n_batch);
    bitnet_model *m = load(cf);
    if (!m) {
        check(0, label);
        return;
    }
    seqs s;
    make_seqs(&s, 5, 4);
    bitnet_context *c = make_ctx(m, cf, 5);
    if (c && reference(m, cf, &s)) run_schedule(c, &s, label);
    else check(0, label);
    bitnet_context_free(c);
    free_seqs(&s);
    bitnet_model_free(m);
}

static void test_sixteen_and_reuse(void) {
    const config cf = {NULL, 2, BITNET_KV_F16, 0};
    bitnet_model *m = load(&cf);
    seqs s;
    make_seqs(&s, 16, 3);
    bitnet_context *c = m ? make_ctx(m, &cf, 16) : NULL;
    if (!c || !reference(m, &cf, &s)) {
        check(0, "16 sequences: setup");
        free_seqs(&s);
        bitnet_context_free(c);
        bitnet_model_free(m);
        return;
    }
    run_schedule(c, &s, "16 sequences");
    /* Free slots 2 and 9 and start new sequences there; the others go on. */
    seqs s2;
    make_seqs(&s2, 2, 0);
    check(reference(m, &cf, &s2), "16 sequences: reference of the new ones");
    check(bitnet_seq_reset(c, 2) == BITNET_OK && bitnet_seq_reset(c, 9) == BITNET_OK, "seq_reset");
    check(bitnet_seq_length(c, 2) == 0 && bitnet_seq_length(c, 9) == 0 && bitnet_seq_length(c, 3) == s.len[3],
          "seq_reset empties only its slot");
    int32_t tok[2 * MAX_LEN], sid[2 * MAX_LEN];
    int8_t want[2 * MAX_LEN];
    int32_t n = 0;
    for (int i = 0; i < 2; i++)
        for (int32_t p = 0; p < s2.len[i]; p++) {
            tok[n] = s2.tok[i][p];
            sid[n] = i ? 9 : 2;
            want[n] = (int8_t)(p == s2.len[i] - 1);
            n++;
        }
    float out[2 * N_VOCAB];
    check(bitnet_decode_batch(c, tok, sid, want, n, out) == BITNET_OK &&
              !memcmp(out, s2.ref[0] + (size_t)(s2.len[0] - 1) * N_VOCAB, sizeof(float) * N_VOCAB) &&
              !memcmp(out + N_VOCAB, s2.ref[1] + (size_t)(s2.len[1] - 1) * N_VOCAB, sizeof(float) * N_VOCAB),
          "a reset slot starts a fresh sequence");
    free_seqs(&s2);
    free_seqs(&s);
    bitnet_context_free(c);
    bitnet_model_free(m);
}

static void test_errors_change_nothing(void) {
    const config cf = {"scalar", 1, BITNET_KV_F32, 0};
    bitnet_model *m = load(&cf);
    seqs s;
    make_seqs(&s, 3, 0);
    s.len[0] = 6; /* 5 before the failures, one after */
    s.len[1] = 3;
    s.len[2] = N_CTX;
    bitnet_context *c = m ? make_ctx(m, &cf, 3) : NULL;
    if (!c || !reference(m, &cf, &s)) {
        check(0, "errors: setup");
        free_seqs(&s);
        bitnet_context_free(c);
        bitnet_model_free(m);
        return;
    }
    /* seq 0: 5 tokens, seq 1: 2, seq 2: N_CTX - 1 (one free position) */
    int32_t tok[MAX_LEN + 8], sid[MAX_LEN + 8];
    int32_t n = 0;
    for (int32_t p = 0; p < N_CTX - 1; p++) {
        if (p < 5) tok[n] = s.tok[0][p], sid[n++] = 0;
        if (p < 2) tok[n] = s.tok[1][p], sid[n++] = 1;
        tok[n] = s.tok[2][p], sid[n++] = 2;
    }
    check(bitnet_decode_batch(c, tok, sid, NULL, n, NULL) == BITNET_ERR_INVALID_ARGUMENT,
          "logits for every item (NULL flags) need logits_out");
    int8_t none[MAX_LEN + 8] = {0};
    check(bitnet_decode_batch(c, tok, sid, none, n, NULL) == BITNET_OK, "prefill without logits");
    const int32_t before[3] = {5, 2, N_CTX - 1};

    static const struct {
        int32_t n, tok[4], sid[4];
        int null_out;
        bitnet_status st;
        const char *msg;
    } bad[] = {
        {2, {1, 2}, {0, 3}, 0, BITNET_ERR_INVALID_ARGUMENT, "item 1: sequence id 3 is out of range [0, 3)"},
        {2, {1, 2}, {-1, 0}, 0, BITNET_ERR_INVALID_ARGUMENT, "item 0: sequence id -1"},
        {3, {1, N_VOCAB, 2}, {0, 1, 2}, 0, BITNET_ERR_INVALID_ARGUMENT, "item 1: token id 40 (sequence 1)"},
        {4, {1, 2, 3, 4}, {0, 2, 1, 2}, 0, BITNET_ERR_CONTEXT_FULL, "item 3: sequence 2 is full"},
        {2, {1, 2}, {0, 1}, 1, BITNET_ERR_INVALID_ARGUMENT, "logits_out is NULL"},
        {0, {0}, {0}, 0, BITNET_ERR_INVALID_ARGUMENT, "no tokens"},
    };
    float out[4 * N_VOCAB];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        bitnet_status st = bitnet_decode_batch(c, bad[i].tok, bad[i].sid, NULL, bad[i].n, bad[i].null_out ? NULL : out);
        const char *msg = bitnet_context_last_error(c);
        int same = 1;
        for (int k = 0; k < 3; k++) same &= bitnet_seq_length(c, k) == before[k];
        char what[300];
        snprintf(what, sizeof what, "bad batch %zu: status %d (want %d), \"%s\" (want \"%s\"), sequences %s", i, st,
                 bad[i].st, msg, bad[i].msg, same ? "unchanged" : "CHANGED");
        check(st == bad[i].st && strstr(msg, bad[i].msg) && !strcmp(msg, bitnet_last_error()) && same, what);
    }
    check(bitnet_decode_batch(NULL, tok, sid, NULL, 1, out) == BITNET_ERR_INVALID_ARGUMENT, "NULL ctx");
    check(bitnet_seq_reset(c, 3) == BITNET_ERR_INVALID_ARGUMENT && bitnet_seq_length(c, 3) == -1 &&
              bitnet_seq_length(c, -1) == -1 && bitnet_seq_length(NULL, 0) == -1,
          "sequence ids out of range");
    /* The failures left nothing behind: the next tokens give the reference logits. */
    const int32_t t3[3] = {s.tok[2][N_CTX - 1], s.tok[0][5], s.tok[1][2]}, s3[3] = {2, 0, 1};
    check(bitnet_decode_batch(c, t3, s3, NULL, 3, out) == BITNET_OK &&
              !memcmp(out, s.ref[2] + (size_t)(N_CTX - 1) * N_VOCAB, sizeof(float) * N_VOCAB) &&
              !memcmp(out + N_VOCAB, s.ref[0] + 5 * N_VOCAB, sizeof(float) * N_VOCAB) &&
              !memcmp(out + 2 * N_VOCAB, s.ref[1] + 2 * N_VOCAB, sizeof(float) * N_VOCAB),
          "after failed batches the sequences go on exactly as without them");
    /* bitnet_context_logits follows sequence 0; bitnet_decode appends to it. */
    const float *l = bitnet_context_logits(c);
    check(l && !memcmp(l, s.ref[0] + 5 * N_VOCAB, sizeof(float) * N_VOCAB) && bitnet_context_n_past(c) == 6,
          "bitnet_context_logits and n_past follow sequence 0");
    check(bitnet_decode(c, &s.tok[2][0], 1, NULL) == BITNET_OK && bitnet_context_n_past(c) == 7 &&
              bitnet_seq_length(c, 1) == 3 && bitnet_seq_length(c, 2) == N_CTX,
          "bitnet_decode appends to sequence 0 only");
    bitnet_context_reset(c);
    check(bitnet_seq_length(c, 0) == 0 && bitnet_seq_length(c, 1) == 0 && bitnet_seq_length(c, 2) == 0 &&
              !bitnet_context_logits(c),
          "bitnet_context_reset empties every sequence");
    free_seqs(&s);
    bitnet_context_free(c);
    bitnet_model_free(m);
}

/* ---- one call at a time per context ------------------------------------------------- */

typedef struct reentry {
    bitnet_context *ctx;
    bitnet_sampler *sampler;
    int calls, refused;
} reentry;

static int refused_as_in_use(bitnet_status st) {
    return st == BITNET_ERR_INVALID_ARGUMENT && strstr(bitnet_last_error(), "in use") != NULL;
}

static int call_back_into_the_context(void *user_data, int32_t token) {
    reentry *r = user_data;
    int32_t tok = token, seq = 0, out[2], n_out = 0;
    int8_t want = 1;
    float logits[N_VOCAB];
    r->calls++;
    r->refused += refused_as_in_use(bitnet_decode(r->ctx, &tok, 1, NULL));
    r->refused += refused_as_in_use(bitnet_decode_batch(r->ctx, &tok, &seq, &want, 1, logits));
    r->refused += refused_as_in_use(bitnet_seq_reset(r->ctx, 0));
    r->refused += refused_as_in_use(bitnet_generate_tokens(r->ctx, r->sampler, &tok, 1, 2, 0, out, &n_out));
    return 0;
}

static void test_one_call_at_a_time(void) {
    const config cf = {"scalar", 1, BITNET_KV_F32, 0};
    bitnet_model *m = load(&cf);
    bitnet_context *c = m ? make_ctx(m, &cf, 1) : NULL;
    bitnet_sampler_params sp;
    bitnet_sampler_params_init(&sp);
    sp.temperature = 0.0f;
    bitnet_sampler *smp = NULL;
    if (!c || bitnet_sampler_create(&sp, &smp) != BITNET_OK) {
        check(0, "one call at a time: setup");
    } else {
        reentry r = {c, smp, 0, 0};
        const int32_t prompt[3] = {1, 2, 3};
        bitnet_status st = bitnet_generate_tokens_cb(c, smp, prompt, 3, 4, 0, call_back_into_the_context, &r);
        check(st == BITNET_OK && r.calls > 0, "a generation whose callback re-enters its context completes");
        check(r.refused == 4 * r.calls, "each re-entering call is refused with 'in use'");
        check(bitnet_seq_length(c, 0) == 3 + r.calls - 1, "the refused calls changed nothing");
        const int32_t more = 5;
        check(bitnet_decode(c, &more, 1, NULL) == BITNET_OK, "the context works again after the call returns");
    }
    bitnet_sampler_free(smp);
    bitnet_context_free(c);
    bitnet_model_free(m);
}

static void test_params(void) {
    const config cf = {"scalar", 1, BITNET_KV_F16, 0};
    bitnet_model *m = load(&cf);
    bitnet_context *c = m ? make_ctx(m, &cf, 0) : NULL;
    check(c && bitnet_context_n_seq_max(c) == 1, "n_seq_max 0 means 1");
    bitnet_context_free(c);
    bitnet_context_params cp;
    bitnet_context_params_init(&cp);
    cp.n_seq_max = -1;
    c = NULL;
    check(m && bitnet_context_create(m, &cp, &c) == BITNET_ERR_INVALID_ARGUMENT && !c &&
              strstr(bitnet_last_error(), "n_seq_max -1"),
          "negative n_seq_max is refused");
    /* A caller built against the header before n_seq_max (a shorter struct) gets one sequence. */
    cp.n_seq_max = 7;
    cp.struct_size = offsetof(bitnet_context_params, n_seq_max);
    cp.n_ctx = 8;
    check(m && bitnet_context_create(m, &cp, &c) == BITNET_OK && bitnet_context_n_seq_max(c) == 1,
          "an older, shorter params struct gets one sequence");
    bitnet_context_free(c);
    bitnet_model_free(m);
}

int main(void) {
    g_model_image = build_model();
    const char *kernels[2] = {"scalar", NULL};
    for (int k = 0; k < 2; k++)
        for (int32_t th = 1; th <= 2; th++)
            for (int kv = 0; kv < 2; kv++)
                for (int nb = 0; nb < 2; nb++) {
                    const config cf = {kernels[k], th, kv ? BITNET_KV_F32 : BITNET_KV_F16, nb ? 3 : 0};
                    test_config(&cf);
                }
    test_sixteen_and_reuse();
    test_errors_change_nothing();
    test_one_call_at_a_time();
    test_params();
    free(g_model_image.p);
    printf("%d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}
