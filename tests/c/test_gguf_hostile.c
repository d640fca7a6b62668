/* Hostile and malformed GGUF images against the loader and the model.
 *
 * Builds a tiny valid llama-arch model in memory, then breaks it in every
 * way the issue lists (truncation at every header byte and across the data,
 * bad magic/version, huge counts, string lengths and offsets past the end,
 * misaligned and overlapping data, overflowing dimensions, unknown types,
 * missing or mis-shaped tensors, unknown arch, bad alignment, random byte
 * flips). Every case must fail with the expected status and a message that
 * names the problem, or (random flips) load and run without crashing. Run
 * under AddressSanitizer + UBSan by tests/test_c_unit.py.
 *
 * Prints "N passed, N failed"; exits 0 only if nothing failed. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet.h"
#include "gguf_build.h"

/* ---- a tiny valid model, and the ways to break it -------------------------------- */

/* What to break. Each field's zero value means "write it correctly". */
typedef struct mutation {
    const char *magic;
    uint32_t version;        /* 0 = 3 */
    uint64_t n_tensors_add;  /* added to the true count */
    uint64_t n_kv_override;
    const char *arch;        /* general.architecture */
    int bad_key_len;         /* first key's length claims 2^40 bytes */
    int alignment;           /* write general.alignment = this (when nonzero) */
    int tensor;              /* which tensor the per-tensor mutations hit */
    uint32_t type_override;  /* tensor type id */
    uint64_t offset_add;     /* added to its offset */
    int offset_same_as_prev; /* give it the previous tensor's offset */
    int swap_dims;           /* write its dims reversed */
    int overflow_dims;       /* write 4 dims of 2^40 */
    const char *rename;      /* write it under this name */
    int nested_array;        /* add a key holding an array of arrays */
    int huge_array;          /* add a key holding an array claiming 2^60 uint32 */
} mutation;

#define N_EMBD 32
#define N_FF 64
#define N_VOCAB 16
#define N_HEAD 2
#define N_HEAD_KV 1
#define HEAD_DIM (N_EMBD / N_HEAD)

typedef struct tdesc {
    const char *name;
    uint64_t ne0, ne1; /* ne1 = 0: 1-D */
} tdesc;

static const tdesc tensors[] = {
    {"token_embd.weight", N_EMBD, N_VOCAB},
    {"output_norm.weight", N_EMBD, 0},
    {"blk.0.attn_norm.weight", N_EMBD, 0},
    {"blk.0.ffn_norm.weight", N_EMBD, 0},
    {"blk.0.attn_q.weight", N_EMBD, N_EMBD},
    {"blk.0.attn_k.weight", N_EMBD, N_HEAD_KV * HEAD_DIM},
    {"blk.0.attn_v.weight", N_EMBD, N_HEAD_KV * HEAD_DIM},
    {"blk.0.attn_output.weight", N_EMBD, N_EMBD},
    {"blk.0.ffn_gate.weight", N_EMBD, N_FF},
    {"blk.0.ffn_up.weight", N_EMBD, N_FF},
    {"blk.0.ffn_down.weight", N_FF, N_EMBD},
};
#define N_TENSORS (sizeof tensors / sizeof tensors[0])

static uint64_t n_floats(const tdesc *t) { return t->ne0 * (t->ne1 ? t->ne1 : 1); }


static buf build(const mutation *m) {
    buf b = {0};
    put(&b, m->magic ? m->magic : "GGUF", 4);
    put_u32(&b, m->version ? m->version : 3);
    put_u64(&b, N_TENSORS + m->n_tensors_add);
    uint64_t n_kv = 9 + (m->alignment != 0) + (m->nested_array != 0) + (m->huge_array != 0);
    put_u64(&b, m->n_kv_override ? m->n_kv_override : n_kv);
    if (m->bad_key_len) {
        put_u64(&b, 1ull << 40);
        put(&b, "general.architecture", 20);
    } else {
        kv_str(&b, "general.architecture", m->arch ? m->arch : "llama");
    }
    const char *a = "llama.";
    char key[96];
#define KEY(s) (snprintf(key, sizeof key, "%s%s", a, s), key)
    kv_u32(&b, KEY("context_length"), 64);
    kv_u32(&b, KEY("embedding_length"), N_EMBD);
    kv_u32(&b, KEY("block_count"), 1);
    kv_u32(&b, KEY("feed_forward_length"), N_FF);
    kv_u32(&b, KEY("attention.head_count"), N_HEAD);
    kv_u32(&b, KEY("attention.head_count_kv"), N_HEAD_KV);
    kv_f32(&b, KEY("attention.layer_norm_rms_epsilon"), 1e-5f);
    kv_f32(&b, KEY("rope.freq_base"), 10000.0f);
#undef KEY
    if (m->alignment) kv_u32(&b, "general.alignment", (uint32_t)m->alignment);
    if (m->nested_array) {
        put_str(&b, "bad.nested");
        put_u32(&b, T_ARRAY);
        put_u32(&b, T_ARRAY);
        put_u64(&b, 1);
    }
    if (m->huge_array) {
        put_str(&b, "bad.huge");
        put_u32(&b, T_ARRAY);
        put_u32(&b, T_UINT32);
        put_u64(&b, 1ull << 60);
    }

    uint64_t offsets[N_TENSORS], off = 0;
    for (size_t i = 0; i < N_TENSORS; i++) {
        offsets[i] = off;
        off += (n_floats(&tensors[i]) * 4 + 31) / 32 * 32;
    }
    for (size_t i = 0; i < N_TENSORS; i++) {
        const tdesc *t = &tensors[i];
        const int hit = (int)i == m->tensor;
        put_str(&b, hit && m->rename ? m->rename : t->name);
        if (hit && m->overflow_dims) {
            put_u32(&b, 4);
            for (int d = 0; d < 4; d++) put_u64(&b, 1ull << 40);
        } else if (t->ne1) {
            put_u32(&b, 2);
            put_u64(&b, hit && m->swap_dims ? t->ne1 : t->ne0);
            put_u64(&b, hit && m->swap_dims ? t->ne0 : t->ne1);
        } else {
            put_u32(&b, 1);
            put_u64(&b, t->ne0);
        }
        put_u32(&b, hit && m->type_override ? m->type_override : 0 /* F32 */);
        uint64_t o = offsets[i];
        if (hit && m->offset_same_as_prev && i > 0) o = offsets[i - 1];
        if (hit) o += m->offset_add;
        put_u64(&b, o);
    }
    uint8_t zero[32] = {0};
    put(&b, zero, (32 - b.len % 32) % 32);
    /* data: deterministic small values, norms near 1 */
    uint32_t rng = 12345;
    for (size_t i = 0; i < N_TENSORS; i++) {
        const tdesc *t = &tensors[i];
        for (uint64_t j = 0; j < n_floats(t); j++) {
            rng = rng * 1664525u + 1013904223u;
            float v = t->ne1 ? ((float)(rng >> 8) / 16777216.0f - 0.5f) * 0.5f : 1.0f;
            put(&b, &v, 4);
        }
        put(&b, zero, (32 - (n_floats(t) * 4) % 32) % 32);
    }
    return b;
}

/* ---- expectations ------------------------------------------------------------------- */

static bitnet_status load(const buf *b, bitnet_model **out) {
    return bitnet_model_load_from_memory(b->p, b->len, NULL, out);
}

/* Load must fail with `want` and a message containing `needle`. */
static void expect_fail(const char *what, const mutation *m, bitnet_status want, const char *needle) {
    buf b = build(m);
    bitnet_model *model = NULL;
    bitnet_status st = load(&b, &model);
    const char *msg = bitnet_last_error();
    char label[256];
    snprintf(label, sizeof label, "%s: status %d (want %d), message \"%s\" (want \"%s\")", what, st, want, msg,
             needle);
    check(st == want && model == NULL && strstr(msg, needle) != NULL, label);
    bitnet_model_free(model);
    free(b.p);
}

/* Decode a few tokens; everything must stay finite for the valid model. */
static int run_model(bitnet_model *model, int require_finite) {
    bitnet_context *ctx = NULL;
    bitnet_context_params cp;
    bitnet_context_params_init(&cp);
    cp.n_ctx = 16;
    if (bitnet_context_create(model, &cp, &ctx) != BITNET_OK) return !require_finite;
    int32_t ids[3] = {1, 5, 9};
    int ok = bitnet_decode(ctx, ids, 3, NULL) == BITNET_OK;
    if (ok && require_finite) {
        const float *l = bitnet_context_logits(ctx);
        for (int i = 0; i < bitnet_model_n_vocab(model); i++) ok &= isfinite(l[i]) != 0;
    }
    bitnet_context_free(ctx);
    return ok || !require_finite;
}

int main(void) {
    const mutation none = {0};
    buf good = build(&none);
    bitnet_model *model = NULL;
    bitnet_status st = load(&good, &model);
    check(st == BITNET_OK, "the unbroken image loads");
    if (st != BITNET_OK) printf("  error: %s\n", bitnet_last_error());
    if (model) {
        check(run_model(model, 1), "the unbroken model decodes to finite logits");
        bitnet_model_free(model);
    }

    /* Truncation: every byte of the header, then a stride through the data. */
    {
        int bad = 0;
        for (size_t i = 0; i < good.len; i++) {
            if (i > 2048 && i % 97 != 0) continue;
            bitnet_model *m = NULL;
            st = bitnet_model_load_from_memory(good.p, i, NULL, &m);
            if (st == BITNET_OK || m != NULL || bitnet_last_error()[0] == '\0') {
                if (bad++ < 5) printf("  truncated at %zu: status %d, message \"%s\"\n", i, st, bitnet_last_error());
            }
            bitnet_model_free(m);
        }
        check(bad == 0, "every truncation fails with a message");
    }

    mutation m;
#define CASE(what, want, needle, ...)                                                                   \
    do {                                                                                                \
        m = (mutation){__VA_ARGS__};                                                                    \
        expect_fail(what, &m, want, needle);                                                            \
    } while (0)
    CASE("bad magic", BITNET_ERR_FORMAT, "not a GGUF file", .magic = "GGML");
    CASE("version 1", BITNET_ERR_UNSUPPORTED, "version 1", .version = 1);
    CASE("version 4", BITNET_ERR_UNSUPPORTED, "unsupported GGUF version 4", .version = 4);
    CASE("huge tensor count", BITNET_ERR_FORMAT, "tensor count", .n_tensors_add = (1ull << 62));
    CASE("huge key count", BITNET_ERR_FORMAT, "metadata count", .n_kv_override = UINT64_MAX);
    CASE("key string length past the end", BITNET_ERR_FORMAT, "past the end", .bad_key_len = 1);
    CASE("array of 2^60 values", BITNET_ERR_FORMAT, "bad.huge", .huge_array = 1);
    CASE("nested array", BITNET_ERR_UNSUPPORTED, "nested arrays", .nested_array = 1);
    CASE("tensor offset past the end", BITNET_ERR_FORMAT, "ends past the end of the file", .tensor = 10,
         .offset_add = 1ull << 40);
    CASE("misaligned tensor offset", BITNET_ERR_FORMAT, "not a multiple of the alignment", .tensor = 3,
         .offset_add = 4);
    CASE("overlapping tensors", BITNET_ERR_FORMAT, "overlap", .tensor = 5, .offset_same_as_prev = 1);
    CASE("dimension product overflows", BITNET_ERR_FORMAT, "overflows", .tensor = 4, .overflow_dims = 1);
    CASE("unknown tensor type", BITNET_ERR_UNSUPPORTED, "unknown tensor type 99", .tensor = 4,
         .type_override = 99);
    CASE("row not a multiple of the block", BITNET_ERR_FORMAT, "block size", .tensor = 4,
         .type_override = 35 /* TQ2_0: 256 */);
    CASE("missing tensor", BITNET_ERR_FORMAT, "required tensor blk.0.ffn_up.weight is missing", .tensor = 9,
         .rename = "blk.0.ffn_upp.weight");
    CASE("duplicate tensor name", BITNET_ERR_FORMAT, "appears twice", .tensor = 9,
         .rename = "blk.0.ffn_gate.weight");
    CASE("wrongly shaped tensor", BITNET_ERR_FORMAT, "blk.0.attn_k.weight has shape [16 x 32], expected [32 x 16]",
         .tensor = 5, .swap_dims = 1);
    CASE("unknown architecture", BITNET_ERR_UNSUPPORTED, "unknown architecture 'gpt-17'", .arch = "gpt-17");
    CASE("alignment 2^31 - 1", BITNET_ERR_FORMAT, "power of two", .alignment = 0x7fffffff);
    CASE("alignment 3", BITNET_ERR_FORMAT, "power of two", .alignment = 3);
#undef CASE

    /* Random byte flips: load may succeed or fail, but never crash; a model
     * that loads must decode without crashing (values may be garbage). */
    {
        uint32_t rng = 777;
        int loaded = 0, failed_silently = 0;
        uint8_t *copy = malloc(good.len);
        for (int trial = 0; trial < 3000; trial++) {
            memcpy(copy, good.p, good.len);
            int flips = 1 + trial % 4;
            for (int f = 0; f < flips; f++) {
                rng = rng * 1664525u + 1013904223u;
                size_t pos = (rng >> 8) % (trial % 2 ? good.len : 1200);
                rng = rng * 1664525u + 1013904223u;
                copy[pos] ^= (uint8_t)(1u << ((rng >> 16) % 8));
            }
            bitnet_model *mm = NULL;
            st = bitnet_model_load_from_memory(copy, good.len, NULL, &mm);
            if (st == BITNET_OK) {
                loaded++;
                run_model(mm, 0);
            } else if (bitnet_last_error()[0] == '\0') {
                failed_silently++;
            }
            bitnet_model_free(mm);
        }
        free(copy);
        printf("random flips: %d of 3000 images still loaded\n", loaded);
        check(failed_silently == 0, "every rejected random flip has a message");
    }

    /* API misuse never crashes. */
    {
        bitnet_model *mm = NULL;
        check(bitnet_model_load(NULL, NULL, &mm) == BITNET_ERR_INVALID_ARGUMENT, "NULL path");
        check(bitnet_model_load("/nonexistent/model.gguf", NULL, &mm) == BITNET_ERR_NOT_FOUND &&
                  strstr(bitnet_last_error(), "/nonexistent/model.gguf") != NULL,
              "missing file names the path");
        check(bitnet_model_load_from_memory("", 0, NULL, &mm) == BITNET_ERR_FORMAT, "empty image");
        check(bitnet_context_create(NULL, NULL, NULL) == BITNET_ERR_INVALID_ARGUMENT, "NULL out");
        check(bitnet_decode(NULL, NULL, 0, NULL) == BITNET_ERR_INVALID_ARGUMENT, "NULL context");
        check(bitnet_load_model("/nonexistent.gguf") == NULL && bitnet_last_error()[0] != '\0',
              "simple API: missing file gives NULL and a message");
    }

    /* Decode-time errors leave the context as it was. */
    if (load(&good, &model) == BITNET_OK) {
        bitnet_context *ctx = NULL;
        bitnet_context_params cp;
        bitnet_context_params_init(&cp);
        cp.n_ctx = 4;
        check(bitnet_context_create(model, &cp, &ctx) == BITNET_OK, "context of 4 tokens");
        int32_t ids[5] = {1, 2, 3, 4, 5};
        check(bitnet_decode(ctx, ids, 5, NULL) == BITNET_ERR_CONTEXT_FULL && bitnet_context_n_past(ctx) == 0,
              "5 tokens into 4: context full, nothing kept");
        int32_t bad_id = N_VOCAB;
        check(bitnet_decode(ctx, &bad_id, 1, NULL) == BITNET_ERR_INVALID_ARGUMENT &&
                  strstr(bitnet_context_last_error(ctx), "out of range") != NULL,
              "token id out of range");
        check(bitnet_decode(ctx, ids, 4, NULL) == BITNET_OK && bitnet_context_n_past(ctx) == 4, "4 tokens fit");
        cp.n_threads = -1;
        bitnet_context *bad = NULL;
        check(bitnet_context_create(model, &cp, &bad) == BITNET_ERR_INVALID_ARGUMENT && bad == NULL,
              "negative thread count");
        bitnet_context_free(ctx);
        bitnet_model_free(model);
    }

    free(good.p);
    printf("%d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}
