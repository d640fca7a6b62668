/* The public API (bitnet.h) over the core: argument checks, error
 * bookkeeping (per-thread and per-context messages), params with a
 * struct_size prefix. No engine logic lives here. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"
#include "bitnet.h"
#include "context.h"
#include "gguf.h"
#include "model.h"
#include "sampler.h"

/* ---- errors -------------------------------------------------------------------- */

#if defined(_MSC_VER)
#define BN_THREAD_LOCAL __declspec(thread)
#else
#define BN_THREAD_LOCAL _Thread_local
#endif

static BN_THREAD_LOCAL char tls_last_error[BN_ERROR_MSG_MAX];

void bn_api_set_last_error(const char *msg) {
    snprintf(tls_last_error, sizeof tls_last_error, "%s", msg ? msg : "");
}

bitnet_status bn_api_fail(const bn_error *err) {
    bn_api_set_last_error(err->msg);
    return err->status;
}

static bitnet_status api_invalid(const char *msg) {
    bn_api_set_last_error(msg);
    return BITNET_ERR_INVALID_ARGUMENT;
}

const char *bitnet_last_error(void) { return tls_last_error; }

const char *bitnet_status_str(bitnet_status status) {
    switch (status) {
    case BITNET_OK: return "ok";
    case BITNET_ERR_INVALID_ARGUMENT: return "invalid argument";
    case BITNET_ERR_IO: return "I/O error";
    case BITNET_ERR_FORMAT: return "malformed file";
    case BITNET_ERR_UNSUPPORTED: return "unsupported";
    case BITNET_ERR_OUT_OF_MEMORY: return "out of memory";
    case BITNET_ERR_CONTEXT_FULL: return "context full";
    case BITNET_ERR_BUFFER_TOO_SMALL: return "buffer too small";
    case BITNET_ERR_NOT_FOUND: return "not found";
    case BITNET_ERR_INTERNAL: return "internal error";
    case BITNET_ERR_CANCELLED: return "cancelled";
    }
    return "unknown status";
}

const char *bitnet_version(void) { return BITNET_VERSION_STRING; }
int bitnet_version_number(void) { return BITNET_VERSION_NUMBER; }

/* Copy the caller's params over the defaults, reading no more than the
 * caller's struct_size (so older callers with shorter structs work). */
static void merge_params(void *dst, size_t dst_size, const void *src) {
    if (!src) return;
    size_t n;
    memcpy(&n, src, sizeof n);
    if (n < sizeof(size_t)) return;
    if (n > dst_size) n = dst_size;
    memcpy((char *)dst + sizeof(size_t), (const char *)src + sizeof(size_t), n - sizeof(size_t));
}

/* ---- models -------------------------------------------------------------------- */

void bitnet_model_params_init(bitnet_model_params *p) {
    if (!p) return;
    memset(p, 0, sizeof *p);
    p->struct_size = sizeof *p;
    p->use_mmap = 1;
}

/* The kernel variant a load asks for: params.kernel, else $BITNET_KERNEL,
 * else the best one. */
static bitnet_status pick_isa(const bitnet_model_params *p, bn_isa *isa, bn_error *err) {
    const char *name = p->kernel;
    const char *source = "bitnet_model_params.kernel";
    if (!name) {
        name = getenv("BITNET_KERNEL");
        source = "BITNET_KERNEL";
    }
    bitnet_status st = bn_isa_parse(name, isa, err);
    if (st) bn_error_prefix(err, "%s", source);
    return st;
}

static bitnet_status finish_model_load(bn_gguf *g, bitnet_status st, bn_isa isa, bn_error *err, const char *what,
                                       const bitnet_model_params *p, bitnet_model **out) {
    if (st == BITNET_OK) {
        st = bn_model_create(g, isa, out, err);
        if (st) bn_gguf_close(g);
    }
    if (st) {
        bn_error_prefix(err, "%s", what);
        return bn_api_fail(err);
    }
    if (p->progress_callback) (void)p->progress_callback(1.0f, p->progress_user_data);
    return BITNET_OK;
}

bitnet_status bitnet_model_load(const char *path, const bitnet_model_params *params, bitnet_model **out) {
    if (!out) return api_invalid("bitnet_model_load: out is NULL");
    *out = NULL;
    if (!path) return api_invalid("bitnet_model_load: path is NULL");
    bitnet_model_params p;
    bitnet_model_params_init(&p);
    merge_params(&p, sizeof p, params);
    bn_error err = {0};
    bn_isa isa;
    if (pick_isa(&p, &isa, &err)) return bn_api_fail(&err);
    bn_gguf *g = NULL;
    const bn_progress progress = {p.progress_callback, p.progress_user_data};
    bitnet_status st = bn_gguf_open_file_progress(path, p.use_mmap, &progress, &g, &err);
    if (st) {
        /* open_file's messages already start with the path where it matters */
        if (st != BITNET_ERR_NOT_FOUND && st != BITNET_ERR_IO) bn_error_prefix(&err, "%s", path);
        return bn_api_fail(&err);
    }
    return finish_model_load(g, st, isa, &err, path, &p, out);
}

bitnet_status bitnet_model_load_from_memory(const void *data, size_t size, const bitnet_model_params *params,
                                            bitnet_model **out) {
    if (!out) return api_invalid("bitnet_model_load_from_memory: out is NULL");
    *out = NULL;
    bitnet_model_params p;
    bitnet_model_params_init(&p);
    merge_params(&p, sizeof p, params);
    bn_error err = {0};
    bn_isa isa;
    if (pick_isa(&p, &isa, &err)) return bn_api_fail(&err);
    bn_gguf *g = NULL;
    bitnet_status st = bn_gguf_open_memory(data, size, &g, &err);
    return finish_model_load(g, st, isa, &err, "GGUF image", &p, out);
}

void bitnet_model_free(bitnet_model *model) { bn_model_destroy(model); }

const char *bitnet_model_arch(const bitnet_model *m) { return m ? m->arch_name : ""; }
int32_t bitnet_model_n_vocab(const bitnet_model *m) { return m ? m->hp.n_vocab : 0; }
int32_t bitnet_model_n_ctx_train(const bitnet_model *m) { return m ? m->hp.n_ctx_train : 0; }
int32_t bitnet_model_n_embd(const bitnet_model *m) { return m ? m->hp.n_embd : 0; }
int32_t bitnet_model_n_layer(const bitnet_model *m) { return m ? m->hp.n_layer : 0; }
int32_t bitnet_model_token_bos(const bitnet_model *m) { return m ? m->token_bos : -1; }
int32_t bitnet_model_token_eos(const bitnet_model *m) { return m ? m->token_eos : -1; }
int32_t bitnet_model_token_eot(const bitnet_model *m) { return m ? m->token_eot : -1; }
const char *bitnet_model_desc(const bitnet_model *m) { return m ? m->desc : ""; }
const char *bitnet_model_kernel(const bitnet_model *m) { return m ? m->kernels.name : ""; }

int32_t bitnet_system_info(char *buf, size_t cap) {
    char variants[96] = "", features[128];
    for (int i = 0; i < BN_ISA_COUNT; i++) {
        if (!bn_isa_supported((bn_isa)i)) continue;
        if (*variants) strcat(variants, " ");
        strcat(variants, bn_isa_name((bn_isa)i));
    }
    bn_cpu_features(features, sizeof features);
    char line[320];
    int n = snprintf(line, sizeof line, "kernels: %s (default %s); cpu: %s", variants, bn_isa_name(bn_isa_best()),
                     *features ? features : "no SIMD features detected");
    if (buf && cap) {
        size_t len = strlen(line) < cap - 1 ? strlen(line) : cap - 1;
        memcpy(buf, line, len);
        buf[len] = '\0';
    }
    return n < 0 ? 0 : n;
}

/* ---- metadata as JSON -------------------------------------------------------------- */

typedef struct jbuf {
    char *buf;
    size_t cap, len; /* len counts every byte wanted, even past cap */
} jbuf;

static void jput(jbuf *j, const char *s, size_t n) {
    if (j->len < j->cap) {
        size_t room = j->cap - j->len;
        memcpy(j->buf + j->len, s, n < room ? n : room);
    }
    j->len += n;
}

static void jprintf(jbuf *j, const char *fmt, double v) {
    char tmp[64];
    int n = snprintf(tmp, sizeof tmp, fmt, v);
    if (n > 0) jput(j, tmp, (size_t)n);
}

static void jstring(jbuf *j, bn_str s) {
    jput(j, "\"", 1);
    for (uint64_t i = 0; i < s.len; i++) {
        unsigned char ch = (unsigned char)s.ptr[i];
        if (ch == '"' || ch == '\\') {
            char e[2] = {'\\', (char)ch};
            jput(j, e, 2);
        } else if (ch < 0x20) {
            char e[8];
            snprintf(e, sizeof e, "\\u%04x", ch);
            jput(j, e, 6);
        } else {
            jput(j, (const char *)&ch, 1); /* UTF-8 passes through; Python decodes with errors="replace" */
        }
    }
    jput(j, "\"", 1);
}

static void jnumber(jbuf *j, bn_gguf_type t, int64_t i, uint64_t u, double f, bool b) {
    char tmp[40];
    int n = 0;
    switch (t) {
    case BN_GGUF_UINT8: case BN_GGUF_UINT16: case BN_GGUF_UINT32: case BN_GGUF_UINT64:
        n = snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)u);
        break;
    case BN_GGUF_INT8: case BN_GGUF_INT16: case BN_GGUF_INT32: case BN_GGUF_INT64:
        n = snprintf(tmp, sizeof tmp, "%lld", (long long)i);
        break;
    case BN_GGUF_BOOL: n = snprintf(tmp, sizeof tmp, "%s", b ? "true" : "false"); break;
    default:
        if (f != f || f - f != 0) { /* NaN / inf are not JSON */
            n = snprintf(tmp, sizeof tmp, "null");
            break;
        }
        jprintf(j, "%.17g", f);
        return;
    }
    jput(j, tmp, (size_t)n);
}

static void jvalue(jbuf *j, const bn_gguf_kv *kv) {
    if (kv->type == BN_GGUF_STRING) {
        jstring(j, kv->v.str);
    } else if (kv->type == BN_GGUF_ARRAY) {
        const bn_gguf_array *a = &kv->v.arr;
        jput(j, "[", 1);
        for (uint64_t i = 0; i < a->n; i++) {
            if (i) jput(j, ",", 1);
            if (a->type == BN_GGUF_STRING) {
                jstring(j, a->strings[i]);
            } else {
                int64_t iv = bn_gguf_arr_i64(a, i);
                double fv = bn_gguf_arr_f64(a, i);
                jnumber(j, a->type, iv, (uint64_t)iv, fv, iv != 0);
            }
        }
        jput(j, "]", 1);
    } else {
        /* v.b only when the union holds a bool: reading it otherwise is UB (found by fuzz_gguf_load) */
        jnumber(j, kv->type, kv->v.i64, kv->v.u64, kv->v.f64, kv->type == BN_GGUF_BOOL && kv->v.b);
    }
}

int32_t bitnet_model_meta_count(const bitnet_model *m) {
    return m ? (int32_t)(m->gguf->n_kv > INT32_MAX ? INT32_MAX : m->gguf->n_kv) : 0;
}

const char *bitnet_model_meta_key(const bitnet_model *m, int32_t index) {
    if (!m || index < 0 || (uint64_t)index >= m->gguf->n_kv) return NULL;
    return m->gguf->kv[index].key;
}

bitnet_status bitnet_model_meta_json(const bitnet_model *m, int32_t index, char *buf, size_t cap, size_t *needed) {
    if (!m || index < 0 || (uint64_t)index >= m->gguf->n_kv)
        return api_invalid("bitnet_model_meta_json: no such metadata index");
    if (!buf) cap = 0;
    jbuf j = {buf, cap, 0};
    jvalue(&j, &m->gguf->kv[index]);
    jput(&j, "", 1); /* NUL */
    if (cap && j.len > cap) buf[cap - 1] = '\0';
    if (needed) *needed = j.len;
    if (j.len > cap) {
        bn_api_set_last_error("bitnet_model_meta_json: buffer too small");
        return BITNET_ERR_BUFFER_TOO_SMALL;
    }
    return BITNET_OK;
}

/* ---- contexts -------------------------------------------------------------------------- */

void bitnet_context_params_init(bitnet_context_params *p) {
    if (!p) return;
    memset(p, 0, sizeof *p);
    p->struct_size = sizeof *p;
}

#define BN_DEFAULT_N_CTX 4096
#define BN_DEFAULT_N_BATCH 512
#define BN_MAX_THREADS 1024
#define BN_MAX_SEQ 4096

bitnet_status bitnet_context_create(bitnet_model *model, const bitnet_context_params *params, bitnet_context **out) {
    if (!out) return api_invalid("bitnet_context_create: out is NULL");
    *out = NULL;
    if (!model) return api_invalid("bitnet_context_create: model is NULL");
    bitnet_context_params p;
    bitnet_context_params_init(&p);
    merge_params(&p, sizeof p, params);
    if (p.n_ctx < 0 || p.n_batch < 0 || p.n_threads < 0 || p.n_threads > BN_MAX_THREADS ||
        (p.kv_type != BITNET_KV_F16 && p.kv_type != BITNET_KV_F32) || p.n_seq_max < 0 || p.n_seq_max > BN_MAX_SEQ) {
        char msg[240];
        snprintf(msg, sizeof msg, "bitnet_context_create: n_ctx %d, n_batch %d, n_threads %d, kv_type %d or n_seq_max %d "
                 "out of range (use 0 for defaults; at most %d threads, %d sequences)", p.n_ctx, p.n_batch, p.n_threads,
                 p.kv_type, p.n_seq_max, BN_MAX_THREADS, BN_MAX_SEQ);
        return api_invalid(msg);
    }
    int32_t n_ctx = p.n_ctx ? p.n_ctx : model->hp.n_ctx_train;
    if (!p.n_ctx && n_ctx > BN_DEFAULT_N_CTX) n_ctx = BN_DEFAULT_N_CTX;
    int32_t n_batch = p.n_batch ? p.n_batch : BN_DEFAULT_N_BATCH;
    bn_error err = {0};
    bitnet_status st = bn_context_create(model, n_ctx, n_batch, p.n_threads, p.kv_type == BITNET_KV_F16,
                                         p.n_seq_max ? p.n_seq_max : 1, out, &err);
    return st ? bn_api_fail(&err) : BITNET_OK;
}

void bitnet_context_free(bitnet_context *ctx) { bn_context_destroy(ctx); }

const char *bitnet_context_last_error(const bitnet_context *ctx) { return ctx ? ctx->err.msg : ""; }
int32_t bitnet_context_n_ctx(const bitnet_context *ctx) { return ctx ? ctx->n_ctx : 0; }
int32_t bitnet_context_n_threads(const bitnet_context *ctx) { return ctx ? ctx->n_threads : 0; }
int32_t bitnet_context_n_past(const bitnet_context *ctx) { return ctx ? ctx->seq_len[0] : 0; }
int32_t bitnet_context_n_seq_max(const bitnet_context *ctx) { return ctx ? ctx->n_seq : 0; }

/* A context is used by one thread at a time (bitnet.h). The calls that
 * change it enter it first, so a second thread, or a token callback calling
 * back into its own context, gets an error instead of a data race on the KV
 * cache. The error goes to bitnet_last_error(): the context's own message
 * belongs to the thread inside it. */
static bool context_enter(bitnet_context *ctx) {
    return atomic_exchange_explicit(&ctx->in_use, 1, memory_order_acquire) == 0;
}

static void context_leave(bitnet_context *ctx) { atomic_store_explicit(&ctx->in_use, 0, memory_order_release); }

static bitnet_status context_busy(const char *fn) {
    char msg[256];
    snprintf(msg, sizeof msg,
             "%s: the context is in use by another call (another thread, or the token callback of a call on it); "
             "a context is used by one thread at a time: give each thread its own context",
             fn);
    return api_invalid(msg);
}

void bitnet_context_reset(bitnet_context *ctx) {
    if (ctx) bn_context_seq_reset(ctx, -1);
}

int32_t bitnet_seq_length(const bitnet_context *ctx, int32_t seq_id) {
    return ctx && seq_id >= 0 && seq_id < ctx->n_seq ? ctx->seq_len[seq_id] : -1;
}

bitnet_status bitnet_seq_reset(bitnet_context *ctx, int32_t seq_id) {
    if (!ctx) return api_invalid("bitnet_seq_reset: ctx is NULL");
    if (seq_id < 0 || seq_id >= ctx->n_seq) {
        bn_fail(&ctx->err, BITNET_ERR_INVALID_ARGUMENT, "bitnet_seq_reset: sequence id %d is out of range [0, %d)",
                seq_id, ctx->n_seq);
        return bn_api_fail(&ctx->err);
    }
    if (!context_enter(ctx)) return context_busy("bitnet_seq_reset");
    bn_context_seq_reset(ctx, seq_id);
    context_leave(ctx);
    return BITNET_OK;
}

static bitnet_status decode_entered(bitnet_context *ctx, const int32_t *tokens, int32_t n_tokens, float *logits_all) {
    bitnet_status st = bn_context_decode(ctx, tokens, n_tokens, logits_all);
    return st ? bn_api_fail(&ctx->err) : BITNET_OK;
}

bitnet_status bitnet_decode(bitnet_context *ctx, const int32_t *tokens, int32_t n_tokens, float *logits_all) {
    if (!ctx) return api_invalid("bitnet_decode: ctx is NULL");
    if (!context_enter(ctx)) return context_busy("bitnet_decode");
    bitnet_status st = decode_entered(ctx, tokens, n_tokens, logits_all);
    context_leave(ctx);
    return st;
}

bitnet_status bitnet_decode_batch(bitnet_context *ctx, const int32_t *tokens, const int32_t *seq_ids,
                                  const int8_t *want_logits, int32_t n_tokens, float *logits_out) {
    if (!ctx) return api_invalid("bitnet_decode_batch: ctx is NULL");
    if (!context_enter(ctx)) return context_busy("bitnet_decode_batch");
    bitnet_status st = bn_context_decode_batch(ctx, tokens, seq_ids, want_logits, n_tokens, logits_out);
    if (st) bn_error_prefix(&ctx->err, "bitnet_decode_batch");
    context_leave(ctx);
    return st ? bn_api_fail(&ctx->err) : BITNET_OK;
}

const float *bitnet_context_logits(const bitnet_context *ctx) {
    return ctx && ctx->has_logits ? ctx->logits : NULL;
}

/* ---- samplers --------------------------------------------------------------------------- */

void bitnet_sampler_params_init(bitnet_sampler_params *p) {
    if (!p) return;
    memset(p, 0, sizeof *p);
    p->struct_size = sizeof *p;
    p->temperature = 0.8f;
    p->top_k = 40;
    p->top_p = 0.95f;
    p->min_p = 0.05f;
    p->repeat_penalty = 1.0f;
    p->repeat_last_n = 64;
    p->seed = 0xB17E7;
}

bitnet_status bitnet_sampler_create(const bitnet_sampler_params *params, bitnet_sampler **out) {
    if (!out) return api_invalid("bitnet_sampler_create: out is NULL");
    *out = NULL;
    bitnet_sampler_params p;
    bitnet_sampler_params_init(&p);
    merge_params(&p, sizeof p, params);
    bn_error err = {0};
    bitnet_status st = bn_sampler_create(&p, out, &err);
    return st ? bn_api_fail(&err) : BITNET_OK;
}

void bitnet_sampler_free(bitnet_sampler *s) { bn_sampler_destroy(s); }
void bitnet_sampler_reset(bitnet_sampler *s, uint64_t seed) {
    if (s) bn_sampler_reset(s, seed);
}
void bitnet_sampler_accept(bitnet_sampler *s, int32_t token) {
    if (s) bn_sampler_accept(s, token);
}

bitnet_status bitnet_sampler_sample(bitnet_sampler *s, const float *logits, int32_t n_vocab, int32_t *token_out) {
    if (!s || !token_out) return api_invalid("bitnet_sampler_sample: sampler or token_out is NULL");
    bn_error err = {0};
    bitnet_status st = bn_sampler_sample(s, logits, n_vocab, token_out, &err);
    return st ? bn_api_fail(&err) : BITNET_OK;
}

/* ---- the generation loop --------------------------------------------------------------- */

typedef struct {
    int32_t *out;
    int32_t n;
} array_sink;

static int to_array(void *sink, int32_t token) {
    array_sink *a = sink;
    a->out[a->n++] = token;
    return 0;
}

/* The one generation loop behind both public calls (arguments already
 * checked). Each new token goes to emit(sink, token): an array for
 * bitnet_generate_tokens, the caller's callback for bitnet_generate_tokens_cb.
 * A nonzero return from emit stops the loop. */
static bitnet_status generate_loop(bitnet_context *ctx, bitnet_sampler *sampler, const int32_t *prompt,
                                   int32_t n_prompt, int32_t max_tokens, int32_t flags, bitnet_token_callback emit,
                                   void *sink, const char *fn) {
    const struct bitnet_model *m = ctx->model;
    bitnet_status st;
    if (n_prompt > 0) {
        if ((st = decode_entered(ctx, prompt, n_prompt, NULL))) return st;
        for (int32_t i = 0; i < n_prompt; i++) bn_sampler_accept(sampler, prompt[i]);
    }
    if (max_tokens == 0) return BITNET_OK;
    if (!ctx->has_logits) {
        char msg[120];
        snprintf(msg, sizeof msg, "%s: empty prompt and nothing decoded yet", fn);
        return api_invalid(msg);
    }
    for (int32_t i = 0; i < max_tokens; i++) {
        int32_t tok;
        if ((st = bn_sampler_sample(sampler, ctx->logits, m->hp.n_vocab, &tok, &ctx->err))) return bn_api_fail(&ctx->err);
        bn_sampler_accept(sampler, tok);
        if (emit(sink, tok)) break; /* the caller has what it wants */
        const bool is_end = tok == m->token_eos || tok == m->token_eot;
        if (is_end && !(flags & BITNET_GENERATE_IGNORE_EOS)) break;
        if (i + 1 == max_tokens) break;
        if (ctx->seq_len[0] >= ctx->n_ctx) break; /* context full: stop with what we have */
        if ((st = decode_entered(ctx, &tok, 1, NULL))) return st;
    }
    return BITNET_OK;
}

bitnet_status bitnet_generate_tokens(bitnet_context *ctx, bitnet_sampler *sampler, const int32_t *prompt,
                                     int32_t n_prompt, int32_t max_tokens, int32_t flags, int32_t *out,
                                     int32_t *n_out) {
    if (!ctx || !sampler || !n_out || (max_tokens > 0 && !out) || n_prompt < 0 || max_tokens < 0 ||
        (n_prompt > 0 && !prompt))
        return api_invalid("bitnet_generate_tokens: invalid arguments");
    array_sink sink = {out, 0};
    if (!context_enter(ctx)) {
        *n_out = 0;
        return context_busy("bitnet_generate_tokens");
    }
    bitnet_status st = generate_loop(ctx, sampler, prompt, n_prompt, max_tokens, flags, to_array, &sink,
                                     "bitnet_generate_tokens");
    context_leave(ctx);
    *n_out = sink.n;
    return st;
}

bitnet_status bitnet_generate_tokens_cb(bitnet_context *ctx, bitnet_sampler *sampler, const int32_t *prompt,
                                        int32_t n_prompt, int32_t max_tokens, int32_t flags,
                                        bitnet_token_callback callback, void *user_data) {
    if (!ctx || !sampler || !callback || n_prompt < 0 || max_tokens < 0 || (n_prompt > 0 && !prompt))
        return api_invalid("bitnet_generate_tokens_cb: invalid arguments (NULL ctx, sampler, callback or prompt, "
                           "or a negative count)");
    if (!context_enter(ctx)) return context_busy("bitnet_generate_tokens_cb");
    bitnet_status st = generate_loop(ctx, sampler, prompt, n_prompt, max_tokens, flags, callback, user_data,
                                     "bitnet_generate_tokens_cb");
    context_leave(ctx);
    return st;
}
