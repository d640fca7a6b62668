/* bitnet.h section 5: the tokenizer. Thin wrappers over core_c/tokenizer.h:
 * argument checks, and on failure the message goes both to the tokenizer's
 * own last error and to this thread's bitnet_last_error(). */
#include <stddef.h>

#include "api_internal.h"
#include "bitnet.h"
#include "gguf.h"
#include "model.h"
#include "tokenizer.h"

/* Record a failure of a call on tok (may be NULL) and return its status.
 * BITNET_ERR_BUFFER_TOO_SMALL is a normal answer to a sizing call: it is
 * recorded too, as every failing status is. */
static bitnet_status fail_on(const bitnet_tokenizer *tok, const bn_error *e) {
    bn_error *slot = bn_tokenizer_error_slot(bn_tokenizer_from_public(tok));
    if (slot && slot != e) *slot = *e;
    return bn_api_fail(e);
}

bitnet_status bitnet_tokenizer_load(const char *path, bitnet_tokenizer **out) {
    bn_error e = {0};
    if (out) *out = NULL;
    if (!path || !out) {
        bn_fail(&e, BITNET_ERR_INVALID_ARGUMENT, "bitnet_tokenizer_load: path or out is NULL");
        return bn_api_fail(&e);
    }
    bn_gguf *g = NULL;
    bitnet_status st = bn_gguf_open_file(path, 1, &g, &e);
    if (st) return bn_api_fail(&e); /* the message names the file */
    bn_tokenizer *t = NULL;
    st = bn_tokenizer_create(g, &t, &e);
    bn_gguf_close(g);
    if (st) {
        bn_error_prefix(&e, "%s: tokenizer", path);
        return bn_api_fail(&e);
    }
    *out = (bitnet_tokenizer *)bn_tokenizer_to_public(t);
    return BITNET_OK;
}

void bitnet_tokenizer_free(bitnet_tokenizer *tok) { bn_tokenizer_free((bn_tokenizer *)bn_tokenizer_from_public(tok)); }

const bitnet_tokenizer *bitnet_model_tokenizer(const bitnet_model *model) {
    if (!model || !model->tokenizer) return NULL;
    return bn_tokenizer_to_public(model->tokenizer);
}

const char *bitnet_tokenizer_last_error(const bitnet_tokenizer *tok) {
    const bn_error *e = bn_tokenizer_error_slot(bn_tokenizer_from_public(tok));
    return e ? e->msg : "";
}

int32_t bitnet_tokenizer_n_vocab(const bitnet_tokenizer *tok) { return bn_tokenizer_n_vocab(bn_tokenizer_from_public(tok)); }
int32_t bitnet_tokenizer_bos(const bitnet_tokenizer *tok) { return bn_tokenizer_bos(bn_tokenizer_from_public(tok)); }
int32_t bitnet_tokenizer_eos(const bitnet_tokenizer *tok) { return bn_tokenizer_eos(bn_tokenizer_from_public(tok)); }
int32_t bitnet_tokenizer_eot(const bitnet_tokenizer *tok) { return bn_tokenizer_eot(bn_tokenizer_from_public(tok)); }
int bitnet_tokenizer_add_bos(const bitnet_tokenizer *tok) { return bn_tokenizer_add_bos(bn_tokenizer_from_public(tok)); }

bitnet_status bitnet_tokenize(const bitnet_tokenizer *tok, const char *text, size_t text_len, int add_bos,
                              int special, int32_t *out, int32_t cap, int32_t *n_out) {
    bn_error e = {0};
    bitnet_status st =
        bn_tokenize(bn_tokenizer_from_public(tok), text, text_len, add_bos, special, out, cap, n_out, &e);
    return st ? fail_on(tok, &e) : BITNET_OK;
}

bitnet_status bitnet_detokenize(const bitnet_tokenizer *tok, const int32_t *ids, int32_t n_ids, char *buf,
                                size_t cap, size_t *needed) {
    bn_error e = {0};
    bitnet_status st = bn_detokenize(bn_tokenizer_from_public(tok), ids, n_ids, buf, cap, needed, &e);
    return st ? fail_on(tok, &e) : BITNET_OK;
}

int bitnet_token_type_of(const bitnet_tokenizer *tok, int32_t id) {
    return tok ? bn_tokenizer_token_type(bn_tokenizer_from_public(tok), id) : -1;
}

bitnet_status bitnet_token_to_piece(const bitnet_tokenizer *tok, int32_t id, char *buf, size_t cap,
                                    size_t *needed) {
    bn_error e = {0};
    bitnet_status st = bn_token_to_piece(bn_tokenizer_from_public(tok), id, buf, cap, needed, &e);
    return st ? fail_on(tok, &e) : BITNET_OK;
}
