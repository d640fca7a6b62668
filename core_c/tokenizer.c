/* Tokenizer: byte-level BPE ("gpt2") and SentencePiece BPE ("llama") from the
 * GGUF tokenizer.ggml.* keys. See tokenizer.h for what it does; the comments
 * here say how.
 *
 * Byte-level BPE works on raw bytes: each vocabulary entry is decoded once at
 * load time from the GPT-2 byte-to-unicode alphabet back to the bytes it
 * stands for, so the pre-tokenizer's pieces are looked up and merged without
 * re-encoding the text. Merges are a hash map from a pair of token ids to
 * (rank, merged id). A piece starts as one symbol per byte; the pair with the
 * lowest rank (leftmost on ties) is merged until no pair has a rank, using a
 * binary heap of candidate pairs (stale entries are skipped when popped).
 *
 * SentencePiece BPE: one symbol per UTF-8 character; the adjacent pair whose
 * concatenation is a token with the highest score (leftmost on ties) is
 * merged until none is; symbols that are not tokens fall back to <0xXX> byte
 * tokens.
 *
 * The pre-tokenizer regexes are written as code: at each position the
 * alternatives are tried in order exactly as a backtracking regex engine would,
 * with character classes from unicode_tables.c. */
#include "tokenizer.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unicode.h"

/* GGUF token types (tokenizer.ggml.token_type). */
enum {
    TT_UNDEFINED = 0,
    TT_NORMAL = 1,
    TT_UNKNOWN = 2,
    TT_CONTROL = 3,
    TT_USER_DEFINED = 4,
    TT_UNUSED = 5,
    TT_BYTE = 6,
};

typedef enum vocab_kind { VOCAB_SPM, VOCAB_BPE } vocab_kind;

typedef enum pre_kind {
    PRE_NONE,    /* SentencePiece: no pre-tokenizer */
    PRE_LLAMA3,  /* LLaMA-3 regex, numbers in groups of up to 3 */
    PRE_QWEN2,   /* LLaMA-3 regex, single digits */
    PRE_GPT2,    /* GPT-2 regex */
    PRE_DEFAULT, /* llama.cpp's default: punctuation runs, GPT-2, numbers, 3 digits */
    PRE_FALCON,  /* punctuation runs (with `), GPT-2, 3 digits */
    PRE_STARCODER, /* single digits, then GPT-2 */
} pre_kind;

#define NO_KEY UINT32_MAX

struct bn_tokenizer {
    vocab_kind kind;
    pre_kind pre;
    char pre_name[32];
    int32_t n_vocab;
    bool add_bos, add_space_prefix, ignore_merges;
    int32_t bos, eos, eot, unk;

    uint8_t *type;  /* [n_vocab] GGUF token type */
    float *score;   /* [n_vocab] SentencePiece scores (NULL for BPE) */
    char *text;     /* token texts as in the GGUF, concatenated */
    uint32_t *text_off; /* [n_vocab + 1] */
    char *piece;    /* what each token stands for (detokenization), concatenated */
    uint32_t *piece_off; /* [n_vocab + 1] */
    char *key;      /* lookup key of each token: decoded bytes (BPE) or the text (SPM) */
    uint32_t *key_off;   /* [n_vocab] offset into key, NO_KEY when the token has none */
    uint32_t *key_len;   /* [n_vocab] */

    /* key -> id: open addressing, power-of-two size, -1 = empty */
    int32_t *map_id;
    uint32_t *map_hash;
    uint32_t map_mask;

    /* (left id, right id) -> (rank, merged id) */
    struct merge_slot *merges;
    uint32_t merge_mask;
    uint32_t n_merges;

    int32_t byte_token[256]; /* token of one byte, -1 if none */

    /* special tokens to match in the text: grouped by first byte, longest first */
    int32_t *special;       /* ids */
    uint32_t special_start[257];
    uint32_t n_user_defined; /* of them, user-defined (matched even when special = 0) */

    bn_error err; /* last error of a public call on this tokenizer */
};

typedef struct merge_slot {
    uint64_t key; /* (left + 1) << 32 | (right + 1); 0 = empty */
    int32_t rank;
    int32_t id;
} merge_slot;

/* ---- hashing ---------------------------------------------------------------- */

static inline uint64_t mix64(uint64_t h) {
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

static inline uint32_t hash_bytes(const void *data, size_t n) {
    const uint8_t *p = data;
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (uint64_t)n;
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        h = (h ^ v) * 0x100000001b3ull;
        h ^= h >> 29;
        p += 8;
        n -= 8;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
    return (uint32_t)mix64(h ^ v);
}

static int32_t map_find(const bn_tokenizer *t, const void *s, size_t n) {
    uint32_t h = hash_bytes(s, n);
    for (uint32_t i = h & t->map_mask;; i = (i + 1) & t->map_mask) {
        int32_t id = t->map_id[i];
        if (id < 0) return -1;
        if (t->map_hash[i] == h && t->key_len[id] == n && memcmp(t->key + t->key_off[id], s, n) == 0) return id;
    }
}

/* Insert id under its key; keeps the first id when two tokens share a key. */
static void map_insert(bn_tokenizer *t, int32_t id) {
    const char *s = t->key + t->key_off[id];
    size_t n = t->key_len[id];
    uint32_t h = hash_bytes(s, n);
    for (uint32_t i = h & t->map_mask;; i = (i + 1) & t->map_mask) {
        int32_t other = t->map_id[i];
        if (other < 0) {
            t->map_id[i] = id;
            t->map_hash[i] = h;
            return;
        }
        if (t->map_hash[i] == h && t->key_len[other] == n && memcmp(t->key + t->key_off[other], s, n) == 0) return;
    }
}

static inline uint64_t merge_key(int32_t a, int32_t b) { return ((uint64_t)(uint32_t)(a + 1) << 32) | (uint32_t)(b + 1); }

static const merge_slot *merge_find(const bn_tokenizer *t, int32_t a, int32_t b) {
    if (!t->merges) return NULL;
    uint64_t k = merge_key(a, b);
    for (uint32_t i = (uint32_t)mix64(k) & t->merge_mask;; i = (i + 1) & t->merge_mask) {
        const merge_slot *s = &t->merges[i];
        if (s->key == k) return s;
        if (s->key == 0) return NULL;
    }
}

static void merge_insert(bn_tokenizer *t, int32_t a, int32_t b, int32_t rank, int32_t id) {
    uint64_t k = merge_key(a, b);
    for (uint32_t i = (uint32_t)mix64(k) & t->merge_mask;; i = (i + 1) & t->merge_mask) {
        merge_slot *s = &t->merges[i];
        if (s->key == k) return; /* a repeated pair keeps its first (lowest) rank */
        if (s->key == 0) {
            s->key = k;
            s->rank = rank;
            s->id = id;
            t->n_merges++;
            return;
        }
    }
}

/* ---- GPT-2 byte <-> unicode alphabet ------------------------------------------- */

/* Bytes 0x21-0x7E, 0xA1-0xAC, 0xAE-0xFF stand for themselves; the other 68 map,
 * in order, to U+0100.. . */
static void byte_alphabet(uint32_t byte_cp[256], int16_t cp_byte[324]) {
    for (int i = 0; i < 324; i++) cp_byte[i] = -1;
    int extra = 0;
    for (int b = 0; b < 256; b++) {
        bool self = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        byte_cp[b] = self ? (uint32_t)b : (uint32_t)(256 + extra++);
        cp_byte[byte_cp[b]] = (int16_t)b;
    }
}

/* Decode a byte-level token text into the bytes it stands for. out has room
 * for n bytes (decoding never grows). Returns the decoded length, or -1 when
 * the text has a character outside the alphabet (or is not UTF-8); with
 * lenient set, such characters are copied as they are instead. */
static long bytelevel_decode(const int16_t cp_byte[324], const char *s, size_t n, char *out, bool lenient) {
    size_t i = 0, o = 0;
    while (i < n) {
        uint32_t cp;
        int len = bn_utf8_decode((const unsigned char *)s + i, n - i, &cp);
        if (len == 0) {
            if (!lenient) return -1;
            out[o++] = s[i++];
            continue;
        }
        if (cp < 324 && cp_byte[cp] >= 0) {
            out[o++] = (char)cp_byte[cp];
        } else {
            if (!lenient) return -1;
            memcpy(out + o, s + i, (size_t)len);
            o += (size_t)len;
        }
        i += (size_t)len;
    }
    return (long)o;
}

/* ---- loading ------------------------------------------------------------------ */

static uint32_t pow2_at_least(uint64_t n) {
    uint32_t c = 16;
    while (c < n) c <<= 1;
    return c;
}

static bool is_special_type(uint8_t ty) { return ty == TT_CONTROL || ty == TT_USER_DEFINED || ty == TT_UNKNOWN; }

static int32_t optional_id(const bn_gguf *g, const char *key, int32_t n_vocab, int32_t dflt) {
    int64_t v;
    if (bn_gguf_get_i64(g, key, &v, NULL) != BITNET_OK) return dflt;
    if (v < 0 || v >= n_vocab) return dflt;
    return (int32_t)v;
}

static bool str_is(bn_str s, const char *lit) { return bn_str_eq(s, lit); }

/* tokenizer.ggml.pre name -> pre-tokenizer (the names llama.cpp's converter writes). */
static bool pre_from_name(bn_str name, pre_kind *pre, bool *ignore_merges, bool *add_bos) {
    static const char *const llama3[] = {"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "falcon_e",
                                         "pixtral", "midm-2.0", "lfm2", "dbrx", "smaug-bpe", NULL};
    static const char *const gpt2[] = {"gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es",
                                       "jina-v2-de", "mpt", "olmo", "jais", "exaone4", "trillion",
                                       "a.x-4.0", "mellum", NULL};
    static const char *const qwen2[] = {"qwen2", "deepseek-r1-qwen", "stablelm2", "megrez", "hunyuan", NULL};
    for (int i = 0; llama3[i]; i++)
        if (str_is(name, llama3[i])) {
            *pre = PRE_LLAMA3;
            /* dbrx and smaug use the LLaMA-3 regex without its merge shortcut and BOS */
            bool full = i < 9;
            *ignore_merges = full;
            *add_bos = full;
            return true;
        }
    for (int i = 0; gpt2[i]; i++)
        if (str_is(name, gpt2[i])) {
            *pre = PRE_GPT2;
            return true;
        }
    for (int i = 0; qwen2[i]; i++)
        if (str_is(name, qwen2[i])) {
            *pre = PRE_QWEN2;
            return true;
        }
    if (str_is(name, "default")) {
        *pre = PRE_DEFAULT;
        return true;
    }
    if (str_is(name, "falcon")) {
        *pre = PRE_FALCON;
        return true;
    }
    static const char *const starcoder[] = {"starcoder", "refact", "command-r", "smollm", "codeshell", "exaone",
                                            "minerva-7b", NULL};
    for (int i = 0; starcoder[i]; i++)
        if (str_is(name, starcoder[i])) {
            *pre = PRE_STARCODER;
            return true;
        }
    return false;
}

static const char *pre_kind_name(pre_kind p) {
    switch (p) {
    case PRE_LLAMA3: return "llama-bpe";
    case PRE_QWEN2: return "qwen2";
    case PRE_GPT2: return "gpt-2";
    case PRE_DEFAULT: return "default";
    case PRE_FALCON: return "falcon";
    case PRE_STARCODER: return "starcoder";
    default: return "";
    }
}

static bool token_is(const bn_gguf_array *toks, int64_t id, const char *lit) {
    return id >= 0 && (uint64_t)id < toks->n && bn_str_eq(toks->strings[id], lit);
}

/* LLaMA-3's vocabulary: 128000 BPE tokens, then <|begin_of_text|>, <|end_of_text|>. */
static bool is_llama3_vocab(const bn_gguf_array *toks) {
    return toks->n >= 128256 && token_is(toks, 128000, "<|begin_of_text|>") &&
           token_is(toks, 128001, "<|end_of_text|>") && token_is(toks, 0, "!") && token_is(toks, 198, "\xc4\x8a");
}

static int cmp_special(const void *pa, const void *pb, void *ctx);

/* qsort has no context argument in C11: sort special ids with a small
 * insertion-merge sort instead (the list is short: hundreds of ids). */
static void sort_special(bn_tokenizer *t, int32_t *ids, uint32_t n) {
    for (uint32_t i = 1; i < n; i++) {
        int32_t x = ids[i];
        uint32_t j = i;
        while (j > 0 && cmp_special(&ids[j - 1], &x, t) > 0) {
            ids[j] = ids[j - 1];
            j--;
        }
        ids[j] = x;
    }
}

/* first byte ascending, then longer first, then lower id first */
static int cmp_special(const void *pa, const void *pb, void *ctx) {
    const bn_tokenizer *t = ctx;
    int32_t a = *(const int32_t *)pa, b = *(const int32_t *)pb;
    uint32_t la = t->text_off[a + 1] - t->text_off[a], lb = t->text_off[b + 1] - t->text_off[b];
    unsigned char fa = (unsigned char)t->text[t->text_off[a]], fb = (unsigned char)t->text[t->text_off[b]];
    if (fa != fb) return fa < fb ? -1 : 1;
    if (la != lb) return la > lb ? -1 : 1;
    return a < b ? -1 : (a > b);
}

/* Two hex digits -> 0..255, or -1. */
static int hex2(const char *s) {
    int v = 0;
    for (int k = 0; k < 2; k++) {
        char c = s[k];
        int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

static bitnet_status load(bn_tokenizer *t, const bn_gguf *g, bn_error *err) {
    bn_str model;
    bitnet_status st = bn_gguf_get_str(g, "tokenizer.ggml.model", &model, NULL);
    if (st == BITNET_ERR_NOT_FOUND) return bn_fail(err, BITNET_ERR_NOT_FOUND, "the GGUF has no tokenizer.ggml.model");
    if (st) return bn_fail(err, BITNET_ERR_FORMAT, "tokenizer.ggml.model is not a string");
    if (str_is(model, "gpt2")) {
        t->kind = VOCAB_BPE;
    } else if (str_is(model, "llama")) {
        t->kind = VOCAB_SPM;
    } else {
        return bn_fail(err, BITNET_ERR_UNSUPPORTED, "tokenizer.ggml.model \"%.*s\" is not supported (gpt2 and llama are)",
                       (int)(model.len > 64 ? 64 : model.len), model.ptr);
    }

    const bn_gguf_array *toks;
    st = bn_gguf_get_arr(g, "tokenizer.ggml.tokens", BN_GGUF_STRING, &toks, NULL);
    if (st == BITNET_ERR_NOT_FOUND) return bn_fail(err, BITNET_ERR_FORMAT, "tokenizer.ggml.tokens is missing");
    if (st) return bn_fail(err, BITNET_ERR_FORMAT, "tokenizer.ggml.tokens is not an array of strings");
    if (toks->n == 0 || toks->n > (1u << 24))
        return bn_fail(err, BITNET_ERR_FORMAT, "tokenizer.ggml.tokens has %llu entries (1 to 16777216 expected)",
                       (unsigned long long)toks->n);
    const int32_t n = (int32_t)toks->n;
    t->n_vocab = n;

    const bn_gguf_array *types = NULL, *scores = NULL, *merges = NULL;
    st = bn_gguf_get_arr(g, "tokenizer.ggml.token_type", BN_GGUF_TYPE_COUNT, &types, NULL);
    if (st == BITNET_ERR_NOT_FOUND) types = NULL;
    else if (st || types->type == BN_GGUF_STRING || types->type == BN_GGUF_FLOAT32 || types->type == BN_GGUF_FLOAT64 ||
             types->n < toks->n)
        return bn_fail(err, BITNET_ERR_FORMAT, "tokenizer.ggml.token_type must be an integer array of %d entries", n);
    st = bn_gguf_get_arr(g, "tokenizer.ggml.scores", BN_GGUF_TYPE_COUNT, &scores, NULL);
    if (st == BITNET_ERR_NOT_FOUND) scores = NULL;
    else if (st || scores->type == BN_GGUF_STRING || scores->n < toks->n)
        return bn_fail(err, BITNET_ERR_FORMAT, "tokenizer.ggml.scores must be a numeric array of %d entries", n);
    if (t->kind == VOCAB_BPE) {
        st = bn_gguf_get_arr(g, "tokenizer.ggml.merges", BN_GGUF_STRING, &merges, NULL);
        if (st == BITNET_ERR_NOT_FOUND) return bn_fail(err, BITNET_ERR_FORMAT, "tokenizer.ggml.merges is missing (gpt2 tokenizer)");
        if (st) return bn_fail(err, BITNET_ERR_FORMAT, "tokenizer.ggml.merges is not an array of strings");
    }

    /* pre-tokenizer and defaults, as llama.cpp */
    if (t->kind == VOCAB_BPE) {
        bn_str pre;
        t->add_space_prefix = false;
        t->bos = t->eos = 11;
        t->unk = -1;
        st = bn_gguf_get_str(g, "tokenizer.ggml.pre", &pre, NULL);
        if (st == BITNET_OK) {
            if (!pre_from_name(pre, &t->pre, &t->ignore_merges, &t->add_bos))
                return bn_fail(err, BITNET_ERR_UNSUPPORTED,
                               "tokenizer.ggml.pre \"%.*s\" is not supported (llama-bpe, qwen2, gpt-2, falcon, starcoder, "
                               "default and their aliases are)",
                               (int)(pre.len > 64 ? 64 : pre.len), pre.ptr);
        } else if (is_llama3_vocab(toks)) {
            t->pre = PRE_LLAMA3;
            t->ignore_merges = true;
            t->add_bos = true;
            fprintf(stderr, "bitnet: tokenizer: no tokenizer.ggml.pre in the GGUF; the vocabulary is LLaMA-3's, "
                            "using the llama-bpe pre-tokenizer\n");
        } else {
            t->pre = PRE_DEFAULT;
            fprintf(stderr, "bitnet: tokenizer: no tokenizer.ggml.pre in the GGUF; using the default "
                            "pre-tokenizer (output may differ from the model's own tokenizer)\n");
        }
    } else {
        t->pre = PRE_NONE;
        t->add_space_prefix = true;
        t->add_bos = true;
        t->bos = 1;
        t->eos = 2;
        t->unk = 0;
    }
    snprintf(t->pre_name, sizeof t->pre_name, "%s", pre_kind_name(t->pre));
    bool flag;
    if (bn_gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &flag, NULL) == BITNET_OK) t->add_space_prefix = flag;

    /* token texts, types, scores */
    uint64_t total = 0;
    for (int32_t i = 0; i < n; i++) total += toks->strings[i].len;
    if (total > UINT32_MAX / 2) return bn_fail(err, BITNET_ERR_FORMAT, "tokenizer.ggml.tokens: %llu bytes of text is too much",
                                               (unsigned long long)total);
    t->type = malloc((size_t)n);
    t->text = malloc(total + 1);
    t->text_off = malloc(((size_t)n + 1) * sizeof *t->text_off);
    t->piece = malloc(total + 1);
    t->piece_off = malloc(((size_t)n + 1) * sizeof *t->piece_off);
    t->key = malloc(total + 1);
    t->key_off = malloc((size_t)n * sizeof *t->key_off);
    t->key_len = malloc((size_t)n * sizeof *t->key_len);
    if (t->kind == VOCAB_SPM) t->score = malloc((size_t)n * sizeof *t->score);
    if (!t->type || !t->text || !t->text_off || !t->piece || !t->piece_off || !t->key || !t->key_off || !t->key_len ||
        (t->kind == VOCAB_SPM && !t->score))
        return bn_fail(err, BITNET_ERR_OUT_OF_MEMORY, "out of memory for a vocabulary of %d tokens", n);

    uint32_t byte_cp[256];
    int16_t cp_byte[324];
    byte_alphabet(byte_cp, cp_byte);

    uint32_t to = 0, po = 0, ko = 0;
    for (int32_t i = 0; i < n; i++) {
        bn_str s = toks->strings[i];
        int64_t ty = types ? bn_gguf_arr_i64(types, (uint64_t)i) : TT_NORMAL;
        t->type[i] = (uint8_t)(ty >= 0 && ty <= 6 ? ty : TT_UNDEFINED);
        if (t->score) t->score[i] = scores ? (float)bn_gguf_arr_f64(scores, (uint64_t)i) : 0.0f;
        t->text_off[i] = to;
        memcpy(t->text + to, s.ptr, s.len);
        to += (uint32_t)s.len;

        const char *src = s.ptr;
        size_t len = s.len;
        t->piece_off[i] = po;
        t->key_off[i] = NO_KEY;
        t->key_len[i] = 0;
        if (len == 0) continue; /* an empty token is never produced nor matched */
        if (t->kind == VOCAB_BPE) {
            long k = bytelevel_decode(cp_byte, src, len, t->key + ko, false);
            if (k >= 0) {
                t->key_off[i] = ko;
                t->key_len[i] = (uint32_t)k;
                ko += (uint32_t)k;
            }
            if (is_special_type(t->type[i])) {
                memcpy(t->piece + po, src, len);
                po += (uint32_t)len;
            } else {
                po += (uint32_t)bytelevel_decode(cp_byte, src, len, t->piece + po, true);
            }
        } else {
            memcpy(t->key + ko, src, len);
            t->key_off[i] = ko;
            t->key_len[i] = (uint32_t)len;
            ko += (uint32_t)len;
            int hi = len == 6 ? hex2(src + 3) : -1;
            if (t->type[i] == TT_BYTE && hi >= 0 && memcmp(src, "<0x", 3) == 0 && src[5] == '>') {
                t->piece[po++] = (char)hi;
            } else if (is_special_type(t->type[i])) {
                memcpy(t->piece + po, src, len);
                po += (uint32_t)len;
            } else {
                /* U+2581 -> space */
                for (size_t j = 0; j < len;) {
                    if (j + 3 <= len && memcmp(src + j, "\xe2\x96\x81", 3) == 0) {
                        t->piece[po++] = ' ';
                        j += 3;
                    } else {
                        t->piece[po++] = src[j++];
                    }
                }
            }
        }
    }
    t->text_off[n] = to;
    t->piece_off[n] = po;

    /* key -> id map */
    uint32_t cap = pow2_at_least((uint64_t)n * 2);
    t->map_mask = cap - 1;
    t->map_id = malloc((size_t)cap * sizeof *t->map_id);
    t->map_hash = malloc((size_t)cap * sizeof *t->map_hash);
    if (!t->map_id || !t->map_hash) return bn_fail(err, BITNET_ERR_OUT_OF_MEMORY, "out of memory for the vocabulary map");
    memset(t->map_id, 0xff, (size_t)cap * sizeof *t->map_id);
    for (int32_t i = 0; i < n; i++)
        if (t->key_off[i] != NO_KEY) map_insert(t, i);

    /* byte tokens */
    for (int b = 0; b < 256; b++) {
        if (t->kind == VOCAB_BPE) {
            char c = (char)b;
            t->byte_token[b] = map_find(t, &c, 1);
        } else {
            char hex[7];
            snprintf(hex, sizeof hex, "<0x%02X>", b);
            int32_t id = map_find(t, hex, 6);
            if (id < 0) {
                char c = (char)b;
                id = map_find(t, &c, 1);
            }
            t->byte_token[b] = id;
        }
    }

    /* merges: "left right", each side a byte-level token text */
    if (merges) {
        if (merges->n > (1u << 26))
            return bn_fail(err, BITNET_ERR_FORMAT, "tokenizer.ggml.merges has %llu entries (at most 2^26)",
                           (unsigned long long)merges->n);
        uint32_t mcap = pow2_at_least(merges->n + merges->n / 3 + 2); /* load factor <= 3/4 */
        t->merges = calloc(mcap, sizeof *t->merges);
        if (!t->merges) return bn_fail(err, BITNET_ERR_OUT_OF_MEMORY, "out of memory for %llu merges",
                                       (unsigned long long)merges->n);
        t->merge_mask = mcap - 1;
        char *buf = NULL;
        size_t buf_cap = 0;
        for (uint64_t i = 0; i < merges->n; i++) {
            bn_str m = merges->strings[i];
            if (m.len + 1 > buf_cap) {
                buf_cap = (m.len + 1) * 2;
                char *nb = realloc(buf, buf_cap);
                if (!nb) {
                    free(buf);
                    return bn_fail(err, BITNET_ERR_OUT_OF_MEMORY, "out of memory reading merges");
                }
                buf = nb;
            }
            const char *sp = m.len > 1 ? memchr(m.ptr + 1, ' ', m.len - 1) : NULL;
            if (!sp) continue;
            size_t l1 = (size_t)(sp - m.ptr), l2 = m.len - l1 - 1;
            long d1 = bytelevel_decode(cp_byte, m.ptr, l1, buf, false);
            if (d1 <= 0) continue;
            long d2 = bytelevel_decode(cp_byte, sp + 1, l2, buf + d1, false);
            if (d2 <= 0) continue;
            int32_t a = map_find(t, buf, (size_t)d1), c = map_find(t, buf + d1, (size_t)d2);
            int32_t ab = map_find(t, buf, (size_t)(d1 + d2));
            if (a < 0 || c < 0 || ab < 0) continue; /* a merge whose tokens are not all in the vocabulary */
            merge_insert(t, a, c, (int32_t)i, ab);
        }
        free(buf);
    }

    /* special tokens */
    t->bos = optional_id(g, "tokenizer.ggml.bos_token_id", n, t->bos < n ? t->bos : -1);
    t->eos = optional_id(g, "tokenizer.ggml.eos_token_id", n, t->eos < n ? t->eos : -1);
    t->unk = optional_id(g, "tokenizer.ggml.unknown_token_id", n, t->unk < n ? t->unk : -1);
    t->eot = optional_id(g, "tokenizer.ggml.eot_token_id", n, -1);
    if (t->eot < 0) {
        static const char *const eot_texts[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
                                                "<EOT>", "_<EOT>", NULL};
        for (int k = 0; eot_texts[k] && t->eot < 0; k++) {
            size_t l = strlen(eot_texts[k]);
            for (int32_t i = 0; i < n; i++)
                if (t->text_off[i + 1] - t->text_off[i] == l && memcmp(t->text + t->text_off[i], eot_texts[k], l) == 0) {
                    t->eot = i;
                    break;
                }
        }
    }
    if (bn_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &flag, NULL) == BITNET_OK) t->add_bos = flag;
    if (t->add_bos && t->bos < 0) t->add_bos = false;

    uint32_t n_special = 0;
    for (int32_t i = 0; i < n; i++)
        if (is_special_type(t->type[i]) && t->text_off[i + 1] > t->text_off[i]) n_special++;
    t->special = malloc(((size_t)n_special + 1) * sizeof *t->special);
    if (!t->special) return bn_fail(err, BITNET_ERR_OUT_OF_MEMORY, "out of memory");
    n_special = 0;
    for (int32_t i = 0; i < n; i++)
        if (is_special_type(t->type[i]) && t->text_off[i + 1] > t->text_off[i]) {
            t->special[n_special++] = i;
            t->n_user_defined += t->type[i] == TT_USER_DEFINED;
        }
    sort_special(t, t->special, n_special);
    uint32_t k = 0;
    for (int c = 0; c < 256; c++) {
        t->special_start[c] = k;
        while (k < n_special && (unsigned char)t->text[t->text_off[t->special[k]]] == c) k++;
    }
    t->special_start[256] = k;
    return BITNET_OK;
}

bitnet_status bn_tokenizer_create(const bn_gguf *g, bn_tokenizer **out, bn_error *err) {
    *out = NULL;
    if (!g) return bn_fail(err, BITNET_ERR_INVALID_ARGUMENT, "no GGUF");
    bn_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return bn_fail(err, BITNET_ERR_OUT_OF_MEMORY, "out of memory");
    bitnet_status st = load(t, g, err);
    if (st) {
        bn_tokenizer_free(t);
        return st;
    }
    *out = t;
    return BITNET_OK;
}

void bn_tokenizer_free(bn_tokenizer *t) {
    if (!t) return;
    free(t->type);
    free(t->score);
    free(t->text);
    free(t->text_off);
    free(t->piece);
    free(t->piece_off);
    free(t->key);
    free(t->key_off);
    free(t->key_len);
    free(t->map_id);
    free(t->map_hash);
    free(t->merges);
    free(t->special);
    free(t);
}

/* ---- queries -------------------------------------------------------------------- */

int32_t bn_tokenizer_n_vocab(const bn_tokenizer *t) { return t ? t->n_vocab : 0; }
int32_t bn_tokenizer_bos(const bn_tokenizer *t) { return t ? t->bos : -1; }
int32_t bn_tokenizer_eos(const bn_tokenizer *t) { return t ? t->eos : -1; }
int32_t bn_tokenizer_eot(const bn_tokenizer *t) { return t ? t->eot : -1; }
int bn_tokenizer_add_bos(const bn_tokenizer *t) { return t && t->add_bos; }
const char *bn_tokenizer_model_name(const bn_tokenizer *t) { return !t ? "" : t->kind == VOCAB_BPE ? "gpt2" : "llama"; }
const char *bn_tokenizer_pre_name(const bn_tokenizer *t) { return t ? t->pre_name : ""; }
bn_error *bn_tokenizer_error_slot(const bn_tokenizer *t) { return t ? (bn_error *)&t->err : NULL; }

const char *bn_tokenizer_token_text(const bn_tokenizer *t, int32_t id, size_t *len) {
    if (!t || id < 0 || id >= t->n_vocab) return NULL;
    if (len) *len = t->text_off[id + 1] - t->text_off[id];
    return t->text + t->text_off[id];
}

int bn_tokenizer_is_special(const bn_tokenizer *t, int32_t id) {
    return t && id >= 0 && id < t->n_vocab && is_special_type(t->type[id]);
}

int bn_tokenizer_token_type(const bn_tokenizer *t, int32_t id) {
    return t && id >= 0 && id < t->n_vocab ? t->type[id] : -1;
}

/* ---- per-call workspace ------------------------------------------------------------ */

typedef struct sym {
    int32_t id;
    int32_t prev, next;
    uint32_t start, len;
} sym;

typedef struct cand {
    uint64_t key; /* priority: smaller pops first */
    int32_t left, right;
    uint32_t size;
    int32_t id;
} cand;

typedef struct span {
    uint32_t a, b; /* character indices [a, b) */
} span;

typedef struct work {
    const bn_tokenizer *t;
    int32_t *ids;
    size_t n_ids, cap_ids;
    /* the current text fragment, decoded */
    uint32_t *cp, *fl, *off;
    size_t cap_cp;
    const unsigned char *frag;
    sym *syms;
    size_t cap_syms;
    cand *heap;
    size_t n_heap, cap_heap;
    span *sp[2];
    size_t n_sp[2], cap_sp[2];
    char *buf;
    size_t cap_buf;
    bool oom;
} work;

static void work_free(work *w) {
    free(w->ids);
    free(w->cp);
    free(w->fl);
    free(w->off);
    free(w->syms);
    free(w->heap);
    free(w->sp[0]);
    free(w->sp[1]);
    free(w->buf);
}

static bool grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return true;
    size_t c = *cap ? *cap : 16;
    while (c < need) c *= 2;
    void *np = realloc(*p, c * elem);
    if (!np) return false;
    *p = np;
    *cap = c;
    return true;
}

static inline void push_id(work *w, int32_t id) {
    if (w->n_ids == w->cap_ids && !grow((void **)&w->ids, &w->cap_ids, w->n_ids + 1, sizeof *w->ids)) {
        w->oom = true;
        return;
    }
    w->ids[w->n_ids++] = id;
}

static void heap_push(work *w, cand c) {
    if (w->n_heap == w->cap_heap && !grow((void **)&w->heap, &w->cap_heap, w->n_heap + 1, sizeof *w->heap)) {
        w->oom = true;
        return;
    }
    size_t i = w->n_heap++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (w->heap[p].key <= c.key) break;
        w->heap[i] = w->heap[p];
        i = p;
    }
    w->heap[i] = c;
}

static cand heap_pop(work *w) {
    cand top = w->heap[0];
    cand last = w->heap[--w->n_heap];
    size_t n = w->n_heap, i = 0;
    for (;;) {
        size_t l = 2 * i + 1;
        if (l >= n) break;
        size_t m = (l + 1 < n && w->heap[l + 1].key < w->heap[l].key) ? l + 1 : l;
        if (w->heap[m].key >= last.key) break;
        w->heap[i] = w->heap[m];
        i = m;
    }
    if (n) w->heap[i] = last;
    return top;
}

/* ---- byte-level BPE on one piece ---------------------------------------------------- */

static void bpe_candidate(work *w, int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    const sym *a = &w->syms[l], *b = &w->syms[r];
    if (a->id < 0 || b->id < 0) return;
    const merge_slot *m = merge_find(w->t, a->id, b->id);
    if (!m) return;
    cand c = {((uint64_t)(uint32_t)m->rank << 32) | (uint32_t)l, l, r, a->len + b->len, m->id};
    heap_push(w, c);
}

static void bpe_piece(work *w, const unsigned char *s, size_t n) {
    const bn_tokenizer *t = w->t;
    if (n == 0) return;
    if (n == 1) {
        if (t->byte_token[s[0]] >= 0) push_id(w, t->byte_token[s[0]]);
        return;
    }
    if (t->ignore_merges) {
        int32_t id = map_find(t, s, n);
        if (id >= 0) {
            push_id(w, id);
            return;
        }
    }
    if (!grow((void **)&w->syms, &w->cap_syms, n, sizeof *w->syms)) {
        w->oom = true;
        return;
    }
    sym *sy = w->syms;
    for (size_t i = 0; i < n; i++) {
        sy[i].id = t->byte_token[s[i]];
        sy[i].prev = (int32_t)i - 1;
        sy[i].next = i + 1 < n ? (int32_t)i + 1 : -1;
        sy[i].start = (uint32_t)i;
        sy[i].len = 1;
    }
    w->n_heap = 0;
    for (size_t i = 0; i + 1 < n; i++) bpe_candidate(w, (int32_t)i, (int32_t)i + 1);
    while (w->n_heap && !w->oom) {
        cand c = heap_pop(w);
        sym *a = &sy[c.left], *b = &sy[c.right];
        if (a->len == 0 || b->len == 0 || a->next != c.right || a->len + b->len != c.size) continue; /* stale */
        a->id = c.id;
        a->len += b->len;
        b->len = 0;
        a->next = b->next;
        if (b->next >= 0) sy[b->next].prev = c.left;
        bpe_candidate(w, a->prev, c.left);
        bpe_candidate(w, c.left, a->next);
    }
    for (int32_t i = 0; i >= 0; i = sy[i].next)
        if (sy[i].id >= 0) push_id(w, sy[i].id);
}

/* ---- pre-tokenizers ------------------------------------------------------------------ */

#define F_L BN_UCD_L
#define F_N BN_UCD_N
#define F_WS BN_UCD_WS

static inline bool is_crlf(uint32_t c) { return c == '\r' || c == '\n'; }
/* [^\s\p{L}\p{N}] */
static inline bool is_other(uint32_t f) { return !(f & (F_L | F_N | F_WS)); }

static inline uint32_t fold_ascii(uint32_t c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

/* 's 't 're 've 'm 'll 'd at i (case-insensitive when fold), or 0. */
static size_t match_contraction(const uint32_t *cp, size_t i, size_t n, bool fold) {
    if (cp[i] != '\'' || i + 1 >= n) return 0;
    uint32_t c1 = fold ? fold_ascii(cp[i + 1]) : cp[i + 1];
    if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return 2;
    if (i + 2 >= n) return 0;
    uint32_t c2 = fold ? fold_ascii(cp[i + 2]) : cp[i + 2];
    if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) return 3;
    return 0;
}

/* Whitespace at i (fl[i] has F_WS): the three whitespace alternatives shared by
 * the regexes. with_newline: try \s*[\r\n]+ first (LLaMA-3 family). */
static size_t match_space(const uint32_t *cp, const uint32_t *fl, size_t i, size_t n, bool with_newline) {
    size_t k = i;
    size_t last_nl = SIZE_MAX;
    while (k < n && (fl[k] & F_WS)) {
        if (is_crlf(cp[k])) last_nl = k;
        k++;
    }
    if (with_newline && last_nl != SIZE_MAX) return last_nl + 1 - i; /* \s*[\r\n]+ */
    if (k == n || k - i == 1) return k - i;                          /* \s+(?!\S) at the end, or \s+ */
    return k - i - 1;                                                /* \s+(?!\S): leave the last one */
}

/* (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,D}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 * (D = 3 for LLaMA-3, 1 for Qwen2). Returns the match length at i (always >= 1). */
static size_t match_llama3(const uint32_t *cp, const uint32_t *fl, size_t i, size_t n, size_t max_digits) {
    size_t m = match_contraction(cp, i, n, true);
    if (m) return m;
    uint32_t c = cp[i], f = fl[i];
    /* [^\r\n\p{L}\p{N}]?\p{L}+ */
    size_t j = i;
    if (!(f & (F_L | F_N)) && !is_crlf(c) && i + 1 < n && (fl[i + 1] & F_L)) j = i + 1;
    if (fl[j] & F_L) {
        size_t k = j + 1;
        while (k < n && (fl[k] & F_L)) k++;
        return k - i;
    }
    /* \p{N}{1,D} */
    if (f & F_N) {
        size_t k = i + 1;
        while (k < n && k - i < max_digits && (fl[k] & F_N)) k++;
        return k - i;
    }
    /*  ?[^\s\p{L}\p{N}]+[\r\n]* */
    j = (c == ' ' && i + 1 < n && is_other(fl[i + 1])) ? i + 1 : i;
    if (is_other(fl[j])) {
        size_t k = j + 1;
        while (k < n && is_other(fl[k])) k++;
        while (k < n && is_crlf(cp[k])) k++;
        return k - i;
    }
    return match_space(cp, fl, i, n, true);
}

/* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
static size_t match_gpt2(const uint32_t *cp, const uint32_t *fl, size_t i, size_t n) {
    size_t m = match_contraction(cp, i, n, false);
    if (m) return m;
    size_t j = (cp[i] == ' ' && i + 1 < n && !(fl[i + 1] & F_WS)) ? i + 1 : i;
    uint32_t f = fl[j];
    size_t k = j + 1;
    if (f & F_L) {
        while (k < n && (fl[k] & F_L)) k++;
        return k - i;
    }
    if (f & F_N) {
        while (k < n && (fl[k] & F_N)) k++;
        return k - i;
    }
    if (is_other(f)) {
        while (k < n && is_other(fl[k])) k++;
        return k - i;
    }
    return match_space(cp, fl, i, n, false);
}

/* [\p{P}\$\+<=>\^~\|]+ (with ` for Falcon); 0 when no match at i */
static size_t match_punct_run(const uint32_t *cp, const uint32_t *fl, size_t i, size_t n, bool backtick) {
    size_t k = i;
    while (k < n) {
        uint32_t c = cp[k];
        bool in = (fl[k] & BN_UCD_P) || c == '$' || c == '+' || c == '<' || c == '=' || c == '>' || c == '^' ||
                  c == '~' || c == '|' || (backtick && c == '`');
        if (!in) break;
        k++;
    }
    return k - i;
}

static size_t match_numbers(const uint32_t *cp, const uint32_t *fl, size_t i, size_t n) {
    (void)cp;
    size_t k = i;
    while (k < n && (fl[k] & F_N)) k++;
    return k - i;
}

static size_t match_3digits(const uint32_t *cp, const uint32_t *fl, size_t i, size_t n) {
    (void)fl;
    if (i + 3 <= n && cp[i] - '0' < 10 && cp[i + 1] - '0' < 10 && cp[i + 2] - '0' < 10) return 3;
    return 0;
}

static size_t match_digit(const uint32_t *cp, const uint32_t *fl, size_t i, size_t n) {
    (void)cp;
    (void)n;
    return (fl[i] & F_N) ? 1 : 0;
}

typedef enum stage { ST_PUNCT, ST_PUNCT_BT, ST_GPT2, ST_NUMBERS, ST_3DIGITS, ST_DIGIT } stage;

static size_t stage_match(stage s, const uint32_t *cp, const uint32_t *fl, size_t i, size_t n) {
    switch (s) {
    case ST_PUNCT: return match_punct_run(cp, fl, i, n, false);
    case ST_PUNCT_BT: return match_punct_run(cp, fl, i, n, true);
    case ST_GPT2: return match_gpt2(cp, fl, i, n);
    case ST_NUMBERS: return match_numbers(cp, fl, i, n);
    case ST_3DIGITS: return match_3digits(cp, fl, i, n);
    case ST_DIGIT: return match_digit(cp, fl, i, n);
    }
    return 0;
}

static void add_span(work *w, int which, uint32_t a, uint32_t b) {
    if (!grow((void **)&w->sp[which], &w->cap_sp[which], w->n_sp[which] + 1, sizeof(span))) {
        w->oom = true;
        return;
    }
    w->sp[which][w->n_sp[which]++] = (span){a, b};
}

/* Split every span by a regex, keeping the matches and the text between them
 * as pieces (llama.cpp's sequence of regexes). Each span is its own string. */
static void split_stage(work *w, stage s, int from) {
    int to = !from;
    w->n_sp[to] = 0;
    for (size_t k = 0; k < w->n_sp[from]; k++) {
        span sp = w->sp[from][k];
        const uint32_t *cp = w->cp + sp.a, *fl = w->fl + sp.a;
        size_t n = sp.b - sp.a, i = 0, last = 0;
        while (i < n) {
            size_t m = stage_match(s, cp, fl, i, n);
            if (m == 0) {
                i++;
                continue;
            }
            if (last < i) add_span(w, to, sp.a + (uint32_t)last, sp.a + (uint32_t)i);
            add_span(w, to, sp.a + (uint32_t)i, sp.a + (uint32_t)(i + m));
            i += m;
            last = i;
        }
        if (last < n) add_span(w, to, sp.a + (uint32_t)last, sp.b);
    }
}

/* Decode a valid UTF-8 fragment into code points, classes and byte offsets. */
static bool decode_fragment(work *w, const unsigned char *s, size_t len, size_t *n_out) {
    if (!grow((void **)&w->cp, &w->cap_cp, len + 1, sizeof(uint32_t))) return false;
    size_t c3 = 0, c4 = 0;
    /* cp, fl and off share a capacity: grow the other two to the same size */
    if (!grow((void **)&w->fl, &c3, w->cap_cp, sizeof(uint32_t)) || !grow((void **)&w->off, &c4, w->cap_cp, sizeof(uint32_t)))
        return false;
    size_t n = 0, i = 0;
    while (i < len) {
        uint32_t c;
        int l = bn_utf8_decode(s + i, len - i, &c);
        if (l == 0) { /* not reached: the text was validated */
            c = 0xFFFD;
            l = 1;
        }
        w->cp[n] = c;
        w->fl[n] = bn_ucd_flags(c);
        w->off[n] = (uint32_t)i;
        n++;
        i += (size_t)l;
    }
    w->off[n] = (uint32_t)len;
    *n_out = n;
    return true;
}

static void bpe_fragment(work *w, const unsigned char *s, size_t len) {
    const bn_tokenizer *t = w->t;
    size_t n;
    if (!decode_fragment(w, s, len, &n)) {
        w->oom = true;
        return;
    }
    if (t->pre == PRE_LLAMA3 || t->pre == PRE_QWEN2 || t->pre == PRE_GPT2) {
        size_t max_digits = t->pre == PRE_LLAMA3 ? 3 : 1;
        for (size_t i = 0; i < n && !w->oom;) {
            size_t m = t->pre == PRE_GPT2 ? match_gpt2(w->cp, w->fl, i, n) : match_llama3(w->cp, w->fl, i, n, max_digits);
            bpe_piece(w, s + w->off[i], w->off[i + m] - w->off[i]);
            i += m;
        }
        return;
    }
    static const stage def[] = {ST_PUNCT, ST_GPT2, ST_NUMBERS, ST_3DIGITS};
    static const stage falcon[] = {ST_PUNCT_BT, ST_GPT2, ST_3DIGITS};
    static const stage starcoder[] = {ST_DIGIT, ST_GPT2};
    const stage *stages = def;
    int n_stages = 4;
    if (t->pre == PRE_FALCON) {
        stages = falcon;
        n_stages = 3;
    } else if (t->pre == PRE_STARCODER) {
        stages = starcoder;
        n_stages = 2;
    }
    w->n_sp[0] = 0;
    add_span(w, 0, 0, (uint32_t)n);
    int cur = 0;
    for (int k = 0; k < n_stages && !w->oom; k++) {
        split_stage(w, stages[k], cur);
        cur = !cur;
    }
    for (size_t k = 0; k < w->n_sp[cur] && !w->oom; k++) {
        span sp = w->sp[cur][k];
        bpe_piece(w, s + w->off[sp.a], w->off[sp.b] - w->off[sp.a]);
    }
}

/* ---- SentencePiece BPE ----------------------------------------------------------------- */

/* A float's bits as an unsigned integer with the same order. */
static inline uint32_t float_order(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

static void spm_candidate(work *w, const unsigned char *s, int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    const sym *a = &w->syms[l], *b = &w->syms[r];
    int32_t id = map_find(w->t, s + a->start, a->len + b->len);
    if (id < 0) return;
    /* highest score first, then leftmost */
    uint64_t key = ((uint64_t)(~float_order(w->t->score[id])) << 32) | (uint32_t)l;
    cand c = {key, l, r, a->len + b->len, id};
    heap_push(w, c);
}

/* s: the text with spaces already turned into U+2581 */
static void spm_text(work *w, const unsigned char *s, size_t len) {
    const bn_tokenizer *t = w->t;
    if (len == 0) return;
    if (!grow((void **)&w->syms, &w->cap_syms, len, sizeof *w->syms)) {
        w->oom = true;
        return;
    }
    sym *sy = w->syms;
    int32_t n = 0;
    for (size_t i = 0; i < len;) {
        uint32_t c;
        int l = bn_utf8_decode(s + i, len - i, &c);
        if (l == 0) l = 1;
        sy[n] = (sym){-1, n - 1, -1, (uint32_t)i, (uint32_t)l};
        if (n > 0) sy[n - 1].next = n;
        n++;
        i += (size_t)l;
    }
    w->n_heap = 0;
    for (int32_t i = 0; i + 1 < n; i++) spm_candidate(w, s, i, i + 1);
    while (w->n_heap && !w->oom) {
        cand c = heap_pop(w);
        sym *a = &sy[c.left], *b = &sy[c.right];
        if (a->len == 0 || b->len == 0 || a->next != c.right || a->len + b->len != c.size) continue;
        a->id = c.id;
        a->len += b->len;
        b->len = 0;
        a->next = b->next;
        if (b->next >= 0) sy[b->next].prev = c.left;
        spm_candidate(w, s, a->prev, c.left);
        spm_candidate(w, s, c.left, a->next);
    }
    for (int32_t i = 0; i >= 0; i = sy[i].next) {
        int32_t id = sy[i].id >= 0 ? sy[i].id : map_find(t, s + sy[i].start, sy[i].len);
        if (id >= 0) {
            push_id(w, id);
            continue;
        }
        for (uint32_t k = 0; k < sy[i].len; k++) { /* byte fallback */
            int32_t b = t->byte_token[s[sy[i].start + k]];
            if (b < 0) b = t->unk;
            if (b >= 0) push_id(w, b);
        }
    }
}

static void spm_fragment(work *w, const unsigned char *s, size_t len, bool prefix_space) {
    size_t need = 3 * (len + 1);
    if (!grow((void **)&w->buf, &w->cap_buf, need, 1)) {
        w->oom = true;
        return;
    }
    size_t o = 0;
    if (prefix_space) {
        memcpy(w->buf + o, "\xe2\x96\x81", 3);
        o += 3;
    }
    for (size_t i = 0; i < len; i++) {
        if (s[i] == ' ') {
            memcpy(w->buf + o, "\xe2\x96\x81", 3);
            o += 3;
        } else {
            w->buf[o++] = (char)s[i];
        }
    }
    spm_text(w, (const unsigned char *)w->buf, o);
}

/* ---- tokenize ---------------------------------------------------------------------------- */

/* The longest special token starting at s[0..n), or -1. */
static int32_t special_at(const bn_tokenizer *t, const unsigned char *s, size_t n, bool all) {
    uint32_t a = t->special_start[s[0]], b = t->special_start[s[0] + 1];
    for (uint32_t k = a; k < b; k++) {
        int32_t id = t->special[k];
        size_t l = t->text_off[id + 1] - t->text_off[id];
        if (l > n) continue;
        if (!all && t->type[id] != TT_USER_DEFINED) continue;
        if (memcmp(t->text + t->text_off[id], s, l) == 0) return id;
    }
    return -1;
}

/* A stretch of text between special tokens. SentencePiece puts a space
 * before it when it starts the text or follows a special token. */
static void text_fragment(work *w, const unsigned char *s, size_t len, bool after_special) {
    if (len == 0) return;
    if (w->t->kind == VOCAB_BPE) bpe_fragment(w, s, len);
    else spm_fragment(w, s, len, w->t->add_space_prefix && after_special);
}

bitnet_status bn_tokenize(const bn_tokenizer *t, const char *text, size_t text_len, int add_bos, int special,
                          int32_t *out, int32_t cap, int32_t *n_out, bn_error *err) {
    if (n_out) *n_out = 0;
    if (!t || !n_out || (!text && text_len) || cap < 0 || (cap > 0 && !out))
        return bn_fail(err, BITNET_ERR_INVALID_ARGUMENT, "tokenize: NULL tokenizer, text, n_out or out, or negative cap");
    if (text_len > (size_t)INT32_MAX - 16)
        return bn_fail(err, BITNET_ERR_INVALID_ARGUMENT, "tokenize: text of %zu bytes is too long (2 GiB at most)", text_len);
    size_t valid = bn_utf8_valid_prefix(text, text_len);
    if (valid != text_len)
        return bn_fail(err, BITNET_ERR_INVALID_ARGUMENT, "tokenize: invalid UTF-8 at byte offset %zu (byte 0x%02x)", valid,
                       (unsigned)(unsigned char)text[valid]);

    work w = {.t = t};
    if (add_bos && t->bos >= 0) push_id(&w, t->bos);
    const unsigned char *s = (const unsigned char *)text;
    bool has_special = special ? t->special_start[256] > 0 : t->n_user_defined > 0;
    bool after_special = true;
    size_t start = 0;
    for (size_t i = 0; i < text_len && has_special && !w.oom;) {
        if (t->special_start[s[i]] == t->special_start[s[i] + 1]) {
            i++;
            continue;
        }
        int32_t id = special_at(t, s + i, text_len - i, special != 0);
        if (id < 0) {
            i++;
            continue;
        }
        text_fragment(&w, s + start, i - start, after_special);
        push_id(&w, id);
        after_special = true;
        i += t->text_off[id + 1] - t->text_off[id];
        start = i;
    }
    if (!w.oom) text_fragment(&w, s + start, text_len - start, after_special);

    bitnet_status st = BITNET_OK;
    if (w.oom) {
        st = bn_fail(err, BITNET_ERR_OUT_OF_MEMORY, "tokenize: out of memory");
    } else if (w.n_ids > INT32_MAX) {
        st = bn_fail(err, BITNET_ERR_INVALID_ARGUMENT, "tokenize: more than 2^31 tokens");
    } else {
        *n_out = (int32_t)w.n_ids;
        size_t k = w.n_ids < (size_t)cap ? w.n_ids : (size_t)cap;
        if (k) memcpy(out, w.ids, k * sizeof *out);
        if (w.n_ids > (size_t)cap)
            st = bn_fail(err, BITNET_ERR_BUFFER_TOO_SMALL, "tokenize: %zu tokens do not fit in %d", w.n_ids, cap);
    }
    work_free(&w);
    return st;
}

/* ---- detokenize ------------------------------------------------------------------------------ */

bitnet_status bn_token_to_piece(const bn_tokenizer *t, int32_t id, char *buf, size_t cap, size_t *needed,
                                bn_error *err) {
    if (needed) *needed = 0;
    if (!t || !needed || (cap && !buf))
        return bn_fail(err, BITNET_ERR_INVALID_ARGUMENT, "token_to_piece: NULL tokenizer, buf or needed");
    if (id < 0 || id >= t->n_vocab)
        return bn_fail(err, BITNET_ERR_INVALID_ARGUMENT, "token_to_piece: token id %d is out of range (vocabulary of %d)",
                       id, t->n_vocab);
    size_t len = t->piece_off[id + 1] - t->piece_off[id];
    *needed = len;
    if (len > cap) return bn_fail(err, BITNET_ERR_BUFFER_TOO_SMALL, "token_to_piece: %zu bytes do not fit in %zu", len, cap);
    if (len) memcpy(buf, t->piece + t->piece_off[id], len);
    return BITNET_OK;
}

bitnet_status bn_detokenize(const bn_tokenizer *t, const int32_t *ids, int32_t n_ids, char *buf, size_t cap,
                            size_t *needed, bn_error *err) {
    if (needed) *needed = 0;
    if (!t || !needed || n_ids < 0 || (n_ids > 0 && !ids) || (cap && !buf))
        return bn_fail(err, BITNET_ERR_INVALID_ARGUMENT, "detokenize: NULL tokenizer, ids, buf or needed, or negative count");
    size_t total = 0;
    /* SentencePiece: tokenization put a space before the text and after each
     * special token; take it off again */
    bool strip = t->kind == VOCAB_SPM && t->add_space_prefix;
    for (int32_t i = 0; i < n_ids; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= t->n_vocab)
            return bn_fail(err, BITNET_ERR_INVALID_ARGUMENT, "detokenize: token id %d (at %d) is out of range (vocabulary of %d)",
                           id, i, t->n_vocab);
        const char *p = t->piece + t->piece_off[id];
        size_t len = t->piece_off[id + 1] - t->piece_off[id];
        bool sp = t->type[id] == TT_CONTROL || t->type[id] == TT_USER_DEFINED;
        if (strip && !sp && len > 0) {
            if (p[0] == ' ') {
                p++;
                len--;
            }
            strip = false;
        }
        if (sp) strip = t->kind == VOCAB_SPM && t->add_space_prefix;
        if (total < cap) memcpy(buf + total, p, len <= cap - total ? len : cap - total);
        total += len;
    }
    *needed = total;
    if (total > cap) return bn_fail(err, BITNET_ERR_BUFFER_TOO_SMALL, "detokenize: %zu bytes do not fit in %zu", total, cap);
    return BITNET_OK;
}
