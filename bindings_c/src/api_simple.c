/* The simple API: four calls from load to text (bitnet.h section 3), built
 * only on the public explicit API so it doubles as its usage example. */
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"
#include "bitnet.h"
#include "unicode.h"

struct BitNetModel {
    bitnet_model *model;
};

BitNetModel *bitnet_load_model(const char *path) {
    bitnet_model *m = NULL;
    if (bitnet_model_load(path, NULL, &m) != BITNET_OK) return NULL;
    BitNetModel *w = malloc(sizeof *w);
    if (!w) {
        bitnet_model_free(m);
        bn_api_set_last_error("out of memory");
        return NULL;
    }
    w->model = m;
    return w;
}

void bitnet_free_model(BitNetModel *w) {
    if (!w) return;
    bitnet_model_free(w->model);
    free(w);
}

void bitnet_free_string(char *s) { free(s); }

/* Tokenize with a buffer sized by a first counting call. */
static int32_t *tokenize_alloc(const bitnet_tokenizer *tok, const char *text, int32_t *n) {
    size_t len = strlen(text);
    int add_bos = bitnet_tokenizer_add_bos(tok);
    bitnet_status st = bitnet_tokenize(tok, text, len, add_bos, 0, NULL, 0, n);
    if (st != BITNET_OK && st != BITNET_ERR_BUFFER_TOO_SMALL) return NULL;
    int32_t *ids = malloc(((size_t)*n + 1) * sizeof *ids);
    if (!ids) {
        bn_api_set_last_error("out of memory");
        return NULL;
    }
    if (bitnet_tokenize(tok, text, len, add_bos, 0, ids, *n, n) != BITNET_OK) {
        free(ids);
        return NULL;
    }
    return ids;
}

/* A NUL-terminated copy of s[0..n) in which every byte that does not start a
 * valid UTF-8 sequence becomes U+FFFD: the simple API always returns text. */
static char *utf8_sanitized(const char *s, size_t n) {
    char *out = malloc(3 * n + 1);
    if (!out) {
        bn_api_set_last_error("out of memory");
        return NULL;
    }
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int len = bn_utf8_decode((const unsigned char *)s + i, n - i, &cp);
        if (len > 0) {
            memcpy(out + o, s + i, (size_t)len);
            o += (size_t)len;
            i += (size_t)len;
        } else {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        }
    }
    out[o] = '\0';
    return out;
}

/* The text of a continuation: its tokens' pieces joined (not bitnet_detokenize,
 * which drops the leading space SentencePiece puts at the start of a text). */
static char *continuation_alloc(const bitnet_tokenizer *tok, const int32_t *ids, int32_t n) {
    size_t len = 0, cap = 64;
    char *text = malloc(cap), *clean = NULL;
    if (!text) goto oom;
    for (int32_t i = 0; i < n; i++) {
        size_t need = 0;
        bitnet_status st = bitnet_token_to_piece(tok, ids[i], text + len, cap - len, &need);
        if (st == BITNET_ERR_BUFFER_TOO_SMALL) {
            cap = 2 * (len + need);
            char *grown = realloc(text, cap);
            if (!grown) goto oom;
            text = grown;
            st = bitnet_token_to_piece(tok, ids[i], text + len, cap - len, &need);
        }
        if (st != BITNET_OK) goto done; /* the tokenizer set the error */
        len += need;
    }
    clean = utf8_sanitized(text, len);
    goto done;
oom:
    bn_api_set_last_error("out of memory");
done:
    free(text);
    return clean;
}

char *bitnet_generate(BitNetModel *w, const char *prompt, int max_tokens) {
    if (!w || !prompt || max_tokens < 0) {
        bn_api_set_last_error("bitnet_generate: model or prompt is NULL, or max_tokens is negative");
        return NULL;
    }
    const bitnet_tokenizer *tok = bitnet_model_tokenizer(w->model);
    if (!tok) {
        bn_api_set_last_error("bitnet_generate: the model file has no tokenizer");
        return NULL;
    }
    char *text = NULL;
    int32_t n_prompt = 0, n_new = 0;
    int32_t *prompt_ids = tokenize_alloc(tok, prompt, &n_prompt);
    int32_t *new_ids = malloc(((size_t)max_tokens + 1) * sizeof *new_ids);
    bitnet_context *ctx = NULL;
    bitnet_sampler *smp = NULL;
    if (!prompt_ids || !new_ids) goto done;

    bitnet_context_params cp;
    bitnet_context_params_init(&cp);
    int64_t want = (int64_t)n_prompt + max_tokens;
    int32_t train = bitnet_model_n_ctx_train(w->model);
    cp.n_ctx = (int32_t)(want < train ? (want > 0 ? want : 1) : train);
    bitnet_sampler_params sp;
    bitnet_sampler_params_init(&sp);
    sp.temperature = 0.0f; /* greedy: the simple API is deterministic */
    if (bitnet_context_create(w->model, &cp, &ctx) != BITNET_OK) goto done;
    if (bitnet_sampler_create(&sp, &smp) != BITNET_OK) goto done;
    if (n_prompt > 0 &&
        bitnet_generate_tokens(ctx, smp, prompt_ids, n_prompt, max_tokens, 0, new_ids, &n_new) != BITNET_OK)
        goto done;
    text = continuation_alloc(tok, new_ids, n_new);
done:
    bitnet_sampler_free(smp);
    bitnet_context_free(ctx);
    free(new_ids);
    free(prompt_ids);
    return text;
}
