/* libFuzzer target: the tokenizer on arbitrary bytes.
 *
 * Two fixed vocabularies, loaded once at start-up from tests/data/tokenizer
 * (or $BITNET_FUZZ_VOCAB_DIR): ggml-vocab-llama-spm.gguf (SentencePiece,
 * 32000 tokens with byte fallback) and ggml-vocab-llama-bpe.gguf (LLaMA-3
 * byte-level BPE, 128256 tokens). The first input byte picks the vocabulary and
 * the flags, the rest is the text.
 *
 * Checked on every input:
 *   - tokenize succeeds exactly when the text is valid UTF-8 (an independent
 *     strict decoder here is the oracle); invalid UTF-8 gives
 *     BITNET_ERR_INVALID_ARGUMENT and a message naming the byte offset;
 *   - the size query (cap = 0) and the real call agree; every id is in range;
 *   - special = 0, add_bos = 0: detokenize(tokenize(x)) == x byte for byte (both
 *     vocabularies cover every byte: SPM through <0xXX> byte tokens, BPE through
 *     its byte alphabet; tests/test_tokenizer.py asserts the same on its texts),
 *     and the concatenated token_to_piece bytes equal detokenize's (apart from
 *     the SentencePiece leading space, which detokenize drops);
 *   - with special = 1 / add_bos = 1 only that nothing crashes and ids are in range;
 *   - detokenize of the input read as int32 ids (out-of-range ones included):
 *     an error or text, never a crash. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet.h"

#ifndef BITNET_FUZZ_VOCAB_DIR
#define BITNET_FUZZ_VOCAB_DIR "tests/data/tokenizer"
#endif

static bitnet_tokenizer *vocab[2];
static const char *const vocab_names[2] = {"ggml-vocab-llama-spm.gguf", "ggml-vocab-llama-bpe.gguf"};

static void die(const char *what, const char *detail) {
    fprintf(stderr, "fuzz_tokenizer: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    const char *dir = getenv("BITNET_FUZZ_VOCAB_DIR");
    if (!dir || !*dir) dir = BITNET_FUZZ_VOCAB_DIR;
    for (int i = 0; i < 2; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, vocab_names[i]);
        if (bitnet_tokenizer_load(path, &vocab[i]) != BITNET_OK) die("cannot load vocabulary", path);
    }
    return 0;
}

/* Strict UTF-8 (RFC 3629): no overlongs, no surrogates, nothing past U+10FFFF. */
static int utf8_valid(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t len;
        uint32_t cp, min;
        if (c < 0x80) { i++; continue; }
        else if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; min = 0x80; }
        else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; min = 0x800; }
        else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; min = 0x10000; }
        else return 0;
        if (n - i < len) return 0;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
        i += len;
    }
    return 1;
}

static void check_detokenize_ids(const bitnet_tokenizer *tok, const uint8_t *data, size_t size) {
    int32_t ids[64];
    int32_t n = (int32_t)(size / 4 < 64 ? size / 4 : 64);
    memcpy(ids, data, (size_t)n * 4);
    char buf[512];
    size_t need = 0;
    bitnet_status st = bitnet_detokenize(tok, ids, n, buf, sizeof buf, &need);
    if (st == BITNET_OK && need > sizeof buf) die("detokenize: OK but needed > cap", NULL);
    for (int32_t i = 0; i < n; i++) {
        need = 0;
        st = bitnet_token_to_piece(tok, ids[i], buf, sizeof buf, &need);
        if (st == BITNET_OK && need > sizeof buf) die("token_to_piece: OK but needed > cap", NULL);
        (void)bitnet_token_type_of(tok, ids[i]);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const uint8_t mode = data[0];
    const bitnet_tokenizer *tok = vocab[mode & 1];
    const int special = (mode >> 1) & 1, add_bos = (mode >> 2) & 1, ids_mode = (mode >> 3) & 1;
    const char *text = (const char *)data + 1;
    const size_t len = size - 1;
    const int32_t n_vocab = bitnet_tokenizer_n_vocab(tok);

    if (ids_mode) {
        check_detokenize_ids(tok, data + 1, len);
        return 0;
    }

    int32_t need = -1;
    bitnet_status st = bitnet_tokenize(tok, text, len, add_bos, special, NULL, 0, &need);
    const int valid = utf8_valid(data + 1, len);
    if (!valid) {
        if (st != BITNET_ERR_INVALID_ARGUMENT) die("invalid UTF-8 not rejected", NULL);
        const char *msg = bitnet_tokenizer_last_error(tok);
        if (!msg || !strstr(msg, "invalid UTF-8")) die("invalid UTF-8: message does not say so", msg);
        return 0;
    }
    if (st != BITNET_OK && st != BITNET_ERR_BUFFER_TOO_SMALL) die("valid UTF-8 rejected", bitnet_tokenizer_last_error(tok));
    if (need < 0 || (len > 0 && need == 0 && !add_bos)) die("tokenize: bad count", NULL);
    if (need == 0) return 0;

    int32_t *ids = malloc((size_t)need * sizeof *ids);
    if (!ids) return 0;
    int32_t n = -1;
    st = bitnet_tokenize(tok, text, len, add_bos, special, ids, need, &n);
    if (st != BITNET_OK || n != need) die("tokenize: second call disagrees with the size query", NULL);
    for (int32_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= n_vocab) die("tokenize: id out of range", NULL);

    if (!special && !add_bos) {
        size_t dneed = 0;
        st = bitnet_detokenize(tok, ids, n, NULL, 0, &dneed);
        if (st != BITNET_OK && st != BITNET_ERR_BUFFER_TOO_SMALL) die("detokenize failed", bitnet_tokenizer_last_error(tok));
        char *back = malloc(dneed + 1);
        char *pieces = malloc(dneed + 64);
        if (back && pieces) {
            size_t got = 0;
            st = bitnet_detokenize(tok, ids, n, back, dneed, &got);
            if (st != BITNET_OK || got != dneed) die("detokenize: second call disagrees with the size query", NULL);
            if (got != len || memcmp(back, text, len) != 0) die("round trip: detokenize(tokenize(x)) != x", NULL);
            /* token_to_piece, concatenated */
            size_t off = 0;
            int ok = 1;
            for (int32_t i = 0; i < n && ok; i++) {
                size_t pn = 0;
                char piece[256];
                if (bitnet_token_to_piece(tok, ids[i], piece, sizeof piece, &pn) != BITNET_OK || pn > sizeof piece)
                    die("token_to_piece failed on an id tokenize gave", NULL);
                if (off + pn > dneed + 64) { ok = 0; break; }
                memcpy(pieces + off, piece, pn);
                off += pn;
            }
            /* SentencePiece: the pieces carry the space prefix detokenize removes */
            const char *p = pieces;
            if (ok && off == got + 1 && pieces[0] == ' ') { p++; off--; }
            if (!ok || off != got || memcmp(p, back, got) != 0) die("token_to_piece bytes != detokenize", NULL);
        }
        free(back);
        free(pieces);
    }
    free(ids);
    return 0;
}
