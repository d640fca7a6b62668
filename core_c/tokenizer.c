/* Placeholder until the C tokenizer lands (issue 4): no vocabulary is read. */
#include "tokenizer.h"

#include <stddef.h>

bitnet_status bn_tokenizer_create(const bn_gguf *g, bn_tokenizer **out, bn_error *err) {
    (void)g;
    *out = NULL;
    return bn_fail(err, BITNET_ERR_NOT_FOUND, "this build has no tokenizer yet");
}

void bn_tokenizer_free(bn_tokenizer *t) { (void)t; }
