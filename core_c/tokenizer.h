/* Tokenizer: text <-> token ids, from a GGUF's tokenizer.ggml.* keys (issue 4).
 *
 * Two vocabulary kinds, both identical in output to Hugging Face tokenizers
 * (and llama.cpp) on the vocabularies they cover:
 * - "gpt2": byte-level BPE. The text is split by a pre-tokenizer (the regex
 *   named by tokenizer.ggml.pre, written here as code: llama-bpe/LLaMA-3,
 *   qwen2, gpt-2, falcon, default), each piece is mapped byte by byte and
 *   merged by rank (tokenizer.ggml.merges). A GGUF without tokenizer.ggml.pre
 *   whose vocabulary is LLaMA-3's gets llama-bpe (noted on stderr).
 * - "llama": SentencePiece BPE (merges by token score) with byte fallback;
 *   spaces become U+2581 and a space is put before the text (and after each
 *   special token) when add_space_prefix is on (the default).
 *
 * Special tokens (control, user-defined, unknown) in the text are parsed as
 * single tokens when `special` is set; user-defined tokens always are.
 *
 * A bn_tokenizer is read-only after creation except for its last-error slot
 * (written by the public API on failure), so one tokenizer may be used from
 * several threads. */
#ifndef BN_TOKENIZER_H
#define BN_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "bn_error.h"
#include "gguf.h"

typedef struct bn_tokenizer bn_tokenizer;

/* Build a tokenizer from the GGUF's metadata. Copies everything it needs: the
 * gguf may be closed afterwards. BITNET_ERR_NOT_FOUND (with a message) when
 * the GGUF has no tokenizer.ggml.model; BITNET_ERR_UNSUPPORTED for a model or
 * pre-tokenizer type this build does not implement; BITNET_ERR_FORMAT for
 * malformed keys. */
bitnet_status bn_tokenizer_create(const bn_gguf *g, bn_tokenizer **out, bn_error *err);
void bn_tokenizer_free(bn_tokenizer *t);

int32_t bn_tokenizer_n_vocab(const bn_tokenizer *t);
int32_t bn_tokenizer_bos(const bn_tokenizer *t); /* -1 when absent */
int32_t bn_tokenizer_eos(const bn_tokenizer *t);
int32_t bn_tokenizer_eot(const bn_tokenizer *t);
int bn_tokenizer_add_bos(const bn_tokenizer *t);
/* "gpt2" or "llama". */
const char *bn_tokenizer_model_name(const bn_tokenizer *t);
/* The pre-tokenizer in use: "llama-bpe", "qwen2", "gpt-2", "falcon", "default"
 * ("" for SentencePiece). */
const char *bn_tokenizer_pre_name(const bn_tokenizer *t);
/* The token's text as stored in the GGUF (not NUL-terminated), NULL if id is out of range. */
const char *bn_tokenizer_token_text(const bn_tokenizer *t, int32_t id, size_t *len);
/* 1 for control tokens (BOS, EOS, <|eot_id|>, ...), unknown and user-defined tokens. */
int bn_tokenizer_is_special(const bn_tokenizer *t, int32_t id);
/* The GGUF token type of id (tokenizer.ggml.token_type: 1 normal, 2 unknown,
 * 3 control, 4 user-defined, 5 unused, 6 byte; 0 undefined), -1 out of range. */
int bn_tokenizer_token_type(const bn_tokenizer *t, int32_t id);

/* Tokenize text_len bytes of UTF-8 (text may be NULL when text_len is 0).
 * Writes up to cap ids to out and the count needed to *n_out; returns
 * BITNET_ERR_BUFFER_TOO_SMALL when that is more than cap. Invalid UTF-8:
 * BITNET_ERR_INVALID_ARGUMENT naming the byte offset. */
bitnet_status bn_tokenize(const bn_tokenizer *t, const char *text, size_t text_len, int add_bos, int special,
                          int32_t *out, int32_t cap, int32_t *n_out, bn_error *err);

/* The text of ids: the concatenated pieces, special tokens as their text, and
 * for SentencePiece the space that tokenization puts at the start (and after
 * control/user-defined tokens) removed again, so detokenize(tokenize(x)) == x.
 * Writes up to cap bytes (no NUL) and the size needed to *needed;
 * BITNET_ERR_BUFFER_TOO_SMALL when that is more than cap. An id out of range:
 * BITNET_ERR_INVALID_ARGUMENT. */
bitnet_status bn_detokenize(const bn_tokenizer *t, const int32_t *ids, int32_t n_ids, char *buf, size_t cap,
                            size_t *needed, bn_error *err);

/* The bytes one token stands for (possibly part of a UTF-8 sequence): byte
 * tokens give their byte, byte-level BPE tokens their decoded bytes,
 * SentencePiece U+2581 a space, special tokens their text. Same size protocol. */
bitnet_status bn_token_to_piece(const bn_tokenizer *t, int32_t id, char *buf, size_t cap, size_t *needed,
                                bn_error *err);

/* Where the public API keeps the last error of a call on this tokenizer. */
bn_error *bn_tokenizer_error_slot(const bn_tokenizer *t);

/* The public bitnet_tokenizer handle is a bn_tokenizer: convert between them. */
static inline const bitnet_tokenizer *bn_tokenizer_to_public(const bn_tokenizer *t) {
    return (const bitnet_tokenizer *)(const void *)t;
}
static inline const bn_tokenizer *bn_tokenizer_from_public(const bitnet_tokenizer *t) {
    return (const bn_tokenizer *)(const void *)t;
}

#endif
