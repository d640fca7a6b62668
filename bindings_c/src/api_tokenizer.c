/* bitnet.h section 5 while the C tokenizer is not built yet (issue 4): every
 * call fails with BITNET_ERR_UNSUPPORTED and says so, so programs written
 * against the final API compile, link and get a clear error today. */
#include <stddef.h>

#include "api_internal.h"
#include "bitnet.h"

static const char no_tokenizer[] = "this build of libbitnet has no tokenizer yet: pass token ids";

static bitnet_status unsupported(void) {
    bn_api_set_last_error(no_tokenizer);
    return BITNET_ERR_UNSUPPORTED;
}

bitnet_status bitnet_tokenizer_load(const char *path, bitnet_tokenizer **out) {
    (void)path;
    if (out) *out = NULL;
    return unsupported();
}
void bitnet_tokenizer_free(bitnet_tokenizer *tok) { (void)tok; }
const bitnet_tokenizer *bitnet_model_tokenizer(const bitnet_model *model) {
    (void)model;
    return NULL;
}
const char *bitnet_tokenizer_last_error(const bitnet_tokenizer *tok) {
    (void)tok;
    return no_tokenizer;
}
int32_t bitnet_tokenizer_n_vocab(const bitnet_tokenizer *tok) { (void)tok; return 0; }
int32_t bitnet_tokenizer_bos(const bitnet_tokenizer *tok) { (void)tok; return -1; }
int32_t bitnet_tokenizer_eos(const bitnet_tokenizer *tok) { (void)tok; return -1; }
int32_t bitnet_tokenizer_eot(const bitnet_tokenizer *tok) { (void)tok; return -1; }
int bitnet_tokenizer_add_bos(const bitnet_tokenizer *tok) { (void)tok; return 0; }

bitnet_status bitnet_tokenize(const bitnet_tokenizer *tok, const char *text, size_t text_len, int add_bos,
                              int special, int32_t *out, int32_t cap, int32_t *n_out) {
    (void)tok; (void)text; (void)text_len; (void)add_bos; (void)special; (void)out; (void)cap;
    if (n_out) *n_out = 0;
    return unsupported();
}

bitnet_status bitnet_detokenize(const bitnet_tokenizer *tok, const int32_t *ids, int32_t n_ids, char *buf,
                                size_t cap, size_t *needed) {
    (void)tok; (void)ids; (void)n_ids; (void)buf; (void)cap;
    if (needed) *needed = 0;
    return unsupported();
}

bitnet_status bitnet_token_to_piece(const bitnet_tokenizer *tok, int32_t id, char *buf, size_t cap,
                                    size_t *needed) {
    (void)tok; (void)id; (void)buf; (void)cap;
    if (needed) *needed = 0;
    return unsupported();
}
