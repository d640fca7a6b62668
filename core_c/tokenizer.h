/* The tokenizer seam: built from a GGUF's tokenizer.ggml.* keys (issue 4).
 *
 * Until the C tokenizer lands this build has none: bn_tokenizer_create
 * reports BITNET_ERR_NOT_FOUND, so models load and run on token ids, and the
 * text calls of bitnet.h report BITNET_ERR_UNSUPPORTED with a message. */
#ifndef BN_TOKENIZER_H
#define BN_TOKENIZER_H

#include "bn_error.h"
#include "gguf.h"

typedef struct bn_tokenizer bn_tokenizer;

/* Build a tokenizer from g (copies what it needs). BITNET_ERR_NOT_FOUND when
 * the GGUF has no tokenizer (or, for now, always: see above). */
bitnet_status bn_tokenizer_create(const bn_gguf *g, bn_tokenizer **out, bn_error *err);
void bn_tokenizer_free(bn_tokenizer *t);

#endif
