/* libFuzzer target: arbitrary bytes as a GGUF image.
 *
 * 1. The GGUF reader (core_c/gguf.c) directly: bn_gguf_open_memory, then every
 *    key/value (array elements and strings included) and every tensor's first
 *    and last data byte are read, so an offset or length the reader let through
 *    unchecked shows up as an AddressSanitizer report.
 * 2. The public loader, bitnet_model_load_from_memory: on success the metadata
 *    (bitnet_model_meta_json for every key), the description, the tokenizer
 *    (tokenize + detokenize a short text) and, for tiny models only, one
 *    bitnet_decode of two tokens on one thread.
 *
 * Must never crash, leak (LeakSanitizer runs after every input) or hang.
 * Build: fuzz/build.sh; run: see fuzz/README.md. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet.h"
#include "bn_error.h"
#include "gguf.h"

static volatile uint8_t sink;

static void touch(const void *p, uint64_t n) {
    if (n == 0) return;
    const uint8_t *b = p;
    sink ^= b[0];
    sink ^= b[n - 1];
}

static void walk_gguf(const uint8_t *data, size_t size) {
    bn_gguf *g = NULL;
    bn_error err = {0};
    if (bn_gguf_open_memory(data, size, &g, &err) != BITNET_OK) return;
    for (uint64_t i = 0; i < g->n_kv; i++) {
        const bn_gguf_kv *kv = &g->kv[i];
        sink ^= (uint8_t)strlen(kv->key);
        if (kv->type == BN_GGUF_STRING) {
            touch(kv->v.str.ptr, kv->v.str.len);
        } else if (kv->type == BN_GGUF_ARRAY) {
            const bn_gguf_array *a = &kv->v.arr;
            if (a->type == BN_GGUF_STRING) {
                for (uint64_t j = 0; j < a->n; j++) touch(a->strings[j].ptr, a->strings[j].len);
            } else if (a->n > 0) {
                sink ^= (uint8_t)bn_gguf_arr_i64(a, 0);
                sink ^= (uint8_t)bn_gguf_arr_i64(a, a->n - 1);
                sink ^= (uint8_t)(bn_gguf_arr_f64(a, a->n - 1) != 0.0);
            }
        }
        /* the lookup path on the same key */
        if (bn_gguf_find_kv(g, kv->key) == NULL) abort();
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const bn_gguf_tensor *t = &g->tensors[i];
        touch(t->data, t->size);
        if (bn_gguf_find_tensor(g, t->name) == NULL) abort();
    }
    bn_gguf_close(g);
}

static void use_model(bitnet_model *model) {
    char buf[256];
    size_t need = 0;
    const int32_t n_meta = bitnet_model_meta_count(model);
    for (int32_t i = 0; i < n_meta; i++) {
        const char *key = bitnet_model_meta_key(model, i);
        if (key) sink ^= (uint8_t)strlen(key);
        if (bitnet_model_meta_json(model, i, NULL, 0, &need) == BITNET_OK ||
            bitnet_model_meta_json(model, i, buf, sizeof buf, &need) == BITNET_OK)
            sink ^= (uint8_t)need;
    }
    const char *desc = bitnet_model_desc(model);
    if (desc) sink ^= (uint8_t)strlen(desc);

    const bitnet_tokenizer *tok = bitnet_model_tokenizer(model);
    if (tok) {
        static const char text[] = "Hello, world! <s> \xc3\xa9\xe2\x82\xac";
        int32_t ids[64], n = 0;
        if (bitnet_tokenize(tok, text, sizeof text - 1, 1, 1, ids, 64, &n) == BITNET_OK && n <= 64) {
            char out[256];
            if (bitnet_detokenize(tok, ids, n, out, sizeof out, &need) == BITNET_OK) sink ^= (uint8_t)need;
        }
    }

    /* one small forward pass, only where it is cheap */
    const int32_t n_vocab = bitnet_model_n_vocab(model);
    if (bitnet_model_n_embd(model) <= 256 && bitnet_model_n_layer(model) <= 4 && n_vocab > 0 && n_vocab <= 4096) {
        bitnet_context_params cp;
        bitnet_context_params_init(&cp);
        cp.n_ctx = 8;
        cp.n_threads = 1;
        bitnet_context *ctx = NULL;
        if (bitnet_context_create(model, &cp, &ctx) == BITNET_OK) {
            const int32_t toks[2] = {0, n_vocab - 1};
            if (bitnet_decode(ctx, toks, 2, NULL) == BITNET_OK) {
                const float *logits = bitnet_context_logits(ctx);
                if (logits) sink ^= (uint8_t)(logits[n_vocab - 1] > 0.0f);
            }
            bitnet_context_free(ctx);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    walk_gguf(data, size);

    bitnet_model_params mp;
    bitnet_model_params_init(&mp);
    mp.use_mmap = 0;
    bitnet_model *model = NULL;
    if (bitnet_model_load_from_memory(data, size, &mp, &model) == BITNET_OK) {
        use_model(model);
        bitnet_model_free(model);
    } else if (model != NULL) {
        abort(); /* a failed load must not hand out a model */
    }
    return 0;
}
