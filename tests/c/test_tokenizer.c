/* Tests for the tokenizer (core_c/tokenizer.c) through the public API of
 * bitnet.h section 5.
 *
 *   1. Golden pairs from llama.cpp (tests/data/tokenizer/ggml-vocab-*.gguf with
 *      .inp texts and .out ids): every text tokenizes to exactly the ids
 *      llama.cpp (and Hugging Face tokenizers) give, with add_bos = 0 and
 *      special = 0.
 *   2. Round trips: detokenize(tokenize(x)) == x for every golden text and a
 *      few more; the concatenated token_to_piece bytes equal detokenize.
 *   3. Special tokens parsed only with special = 1; BOS/EOS/EOT and add_bos
 *      from the GGUF; size reporting (cap = 0); invalid UTF-8 and bad ids give
 *      BITNET_ERR_INVALID_ARGUMENT with a message naming the offset.
 *   4. Load time of the 128k LLaMA-3 vocabulary (printed).
 *
 * Run from the repository root (the data paths are relative to it).
 * Build: gcc -std=c11 -O2 -Icore_c -Ibindings_c/include -Ibindings_c/src
 *        tests/c/test_tokenizer.c, every .c of core_c and bindings_c/src, -lm -pthread
 * Prints one line per check and "N passed, N failed"; exit status 0 when
 * everything passed. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bitnet.h"

#define DATA "tests/data/tokenizer/"

typedef struct tally {
    int passed, failed;
} tally;

static int check(tally *t, int ok, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("%s ", ok ? "ok  " : "FAIL");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    if (ok) t->passed++;
    else t->failed++;
    return ok;
}

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[n] = '\0';
        *len = (size_t)n;
    }
    return buf;
}

static double now_s(void) {
#ifndef TIME_UTC /* MinGW with msvcrt has no C11 timespec_get; clock() is wall time there */
    return (double)clock() / CLOCKS_PER_SEC;
#else
    struct timespec ts;
    timespec_get(&ts, TIME_UTC);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
#endif
}

/* Tokenize into a malloc'd array (sized by a first cap = 0 call). */
static int32_t *tokenize(const bitnet_tokenizer *tok, const char *s, size_t len, int add_bos, int special, int32_t *n,
                         bitnet_status *st_out) {
    int32_t need = -1;
    bitnet_status st = bitnet_tokenize(tok, s, len, add_bos, special, NULL, 0, &need);
    if (st != BITNET_OK && st != BITNET_ERR_BUFFER_TOO_SMALL) {
        if (st_out) *st_out = st;
        return NULL;
    }
    int32_t *ids = malloc(((size_t)need + 1) * sizeof *ids);
    st = bitnet_tokenize(tok, s, len, add_bos, special, ids, need, n);
    if (st_out) *st_out = st;
    if (st) {
        free(ids);
        return NULL;
    }
    return ids;
}

static char *detokenize(const bitnet_tokenizer *tok, const int32_t *ids, int32_t n, size_t *len) {
    size_t need = 0;
    bitnet_status st = bitnet_detokenize(tok, ids, n, NULL, 0, &need);
    if (st != BITNET_OK && st != BITNET_ERR_BUFFER_TOO_SMALL) return NULL;
    char *buf = malloc(need + 1);
    if (bitnet_detokenize(tok, ids, n, buf, need, len) != BITNET_OK) {
        free(buf);
        return NULL;
    }
    buf[*len] = '\0';
    return buf;
}

static void print_ids(const char *label, const int32_t *ids, int32_t n) {
    printf("      %s:", label);
    for (int32_t i = 0; i < n && i < 64; i++) printf(" %d", ids[i]);
    printf("%s\n", n > 64 ? " ..." : "");
}

/* Round trip and streaming pieces for one text. */
static void round_trip(tally *t, const bitnet_tokenizer *tok, const char *name, const char *s, size_t len) {
    int32_t n = 0;
    int32_t *ids = tokenize(tok, s, len, 0, 0, &n, NULL);
    size_t dlen = 0;
    char *back = ids ? detokenize(tok, ids, n, &dlen) : NULL;
    check(t, back && dlen == len && memcmp(back, s, len) == 0, "%s: detokenize(tokenize(x)) == x (%zu bytes)", name, len);
    /* streaming: pieces concatenated */
    char *cat = calloc(1, dlen + 64 + len * 2);
    size_t o = 0;
    int ok = ids != NULL;
    for (int32_t i = 0; ids && i < n; i++) {
        size_t need = 0;
        if (bitnet_token_to_piece(tok, ids[i], cat + o, 64 + len * 2 - o, &need) != BITNET_OK) ok = 0;
        o += need;
    }
    /* SentencePiece: the pieces keep the prefix space that detokenize strips */
    const char *c = cat;
    if (o == dlen + 1 && cat[0] == ' ') {
        c++;
        o--;
    }
    check(t, ok && back && o == dlen && memcmp(c, back, dlen) == 0, "%s: token_to_piece pieces == detokenize", name);
    free(cat);
    free(back);
    free(ids);
}

static void golden(tally *t, const char *vocab, const bitnet_tokenizer *tok) {
    char path[512];
    size_t in_len = 0, out_len = 0;
    snprintf(path, sizeof path, DATA "%s.inp", vocab);
    char *inp = read_file(path, &in_len);
    snprintf(path, sizeof path, DATA "%s.out", vocab);
    char *out = read_file(path, &out_len);
    if (!check(t, inp && out, "%s: read .inp and .out", vocab)) {
        free(inp);
        free(out);
        return;
    }
    static const char sep[] = "\n__ggml_vocab_test__\n";
    const size_t sep_len = sizeof sep - 1;
    char *p = inp, *q = out;
    int n_texts = 0, n_same = 0;
    for (;;) {
        char *end = strstr(p, sep);
        char *nl = strchr(q, '\n');
        if (!end || !nl) break;
        size_t len = (size_t)(end - p);
        *nl = '\0';
        /* expected ids */
        int32_t want[4096];
        int32_t n_want = 0;
        for (char *r = q; *r;) {
            char *e;
            long v = strtol(r, &e, 10);
            if (e == r) break;
            want[n_want++] = (int32_t)v;
            r = e;
        }
        int32_t n = 0;
        bitnet_status st;
        int32_t *ids = tokenize(tok, p, len, 0, 0, &n, &st);
        int same = ids && n == n_want && memcmp(ids, want, (size_t)n * sizeof *ids) == 0;
        n_texts++;
        n_same += same;
        char label[64], shown[48];
        snprintf(label, sizeof label, "%s text %d", vocab, n_texts);
        size_t k = 0;
        for (size_t i = 0; i < len && k + 3 < sizeof shown; i++) /* control characters as '.' */
            shown[k++] = (unsigned char)p[i] < 0x20 ? '.' : p[i];
        shown[k] = '\0';
        if (!check(t, same, "%s: \"%s\"%s", label, shown, k < len ? "..." : "")) {
            print_ids("want", want, n_want);
            if (ids) print_ids("got ", ids, n);
            else printf("      error: %s\n", bitnet_last_error());
        }
        free(ids);
        char saved = p[len];
        p[len] = '\0';
        round_trip(t, tok, label, p, len);
        p[len] = saved;
        p = end + sep_len;
        q = nl + 1;
    }
    check(t, n_texts == 46, "%s: %d of %d golden texts identical", vocab, n_same, n_texts);
    free(inp);
    free(out);
}

static int same_ids(const int32_t *a, int32_t na, const int32_t *b, int32_t nb) {
    return a && na == nb && memcmp(a, b, (size_t)na * sizeof *a) == 0;
}

static void llama3_extra(tally *t, const bitnet_tokenizer *tok) {
    check(t, bitnet_tokenizer_n_vocab(tok) == 128256, "llama-bpe: n_vocab %d", bitnet_tokenizer_n_vocab(tok));
    check(t, bitnet_tokenizer_bos(tok) == 128000 && bitnet_tokenizer_eos(tok) == 128001,
          "llama-bpe: bos %d eos %d", bitnet_tokenizer_bos(tok), bitnet_tokenizer_eos(tok));
    check(t, bitnet_tokenizer_eot(tok) == 128009, "llama-bpe: eot found by text <|eot_id|>: %d", bitnet_tokenizer_eot(tok));
    check(t, bitnet_tokenizer_add_bos(tok) == 1, "llama-bpe: add_bos (llama-bpe default)");

    /* special tokens */
    const char *s = "<|begin_of_text|>Hello<|eot_id|>";
    int32_t n1 = 0, n0 = 0;
    int32_t *sp = tokenize(tok, s, strlen(s), 0, 1, &n1, NULL);
    int32_t *tx = tokenize(tok, s, strlen(s), 0, 0, &n0, NULL);
    const int32_t want1[] = {128000, 9906, 128009};
    check(t, same_ids(sp, n1, want1, 3), "llama-bpe: special=1 parses <|begin_of_text|> and <|eot_id|> as tokens");
    check(t, tx && n0 > 6, "llama-bpe: special=0 tokenizes them as text (%d tokens)", n0);
    size_t dl = 0;
    char *back = sp ? detokenize(tok, sp, n1, &dl) : NULL;
    check(t, back && dl == strlen(s) && memcmp(back, s, dl) == 0, "llama-bpe: special tokens detokenize to their text");
    free(back);
    free(sp);
    free(tx);

    /* add_bos */
    int32_t n = 0;
    int32_t *ids = tokenize(tok, "Hello", 5, 1, 0, &n, NULL);
    const int32_t want_bos[] = {128000, 9906};
    check(t, same_ids(ids, n, want_bos, 2), "llama-bpe: add_bos prepends 128000");
    free(ids);

    /* size reporting */
    int32_t need = -1, one[1];
    bitnet_status st = bitnet_tokenize(tok, "Hello world", 11, 0, 0, NULL, 0, &need);
    check(t, st == BITNET_ERR_BUFFER_TOO_SMALL && need == 2, "llama-bpe: cap 0 reports %d ids needed", need);
    st = bitnet_tokenize(tok, "Hello world", 11, 0, 0, one, 1, &need);
    check(t, st == BITNET_ERR_BUFFER_TOO_SMALL && need == 2 && one[0] == 9906, "llama-bpe: cap 1 gets the first id");
    st = bitnet_tokenize(tok, NULL, 0, 0, 0, NULL, 0, &need);
    check(t, st == BITNET_OK && need == 0, "llama-bpe: empty text, no ids");

    /* invalid UTF-8 */
    const char *bad[] = {"abc\xff", "ab\xc3", "\xed\xa0\x80", "x\xc0\xaf", "ok \xf4\x90\x80\x80", "\xe2\x82"};
    const size_t bad_off[] = {3, 2, 0, 1, 3, 0};
    for (int i = 0; i < 6; i++) {
        need = -1;
        st = bitnet_tokenize(tok, bad[i], strlen(bad[i]), 0, 0, NULL, 0, &need);
        char want[64];
        snprintf(want, sizeof want, "byte offset %zu", bad_off[i]);
        check(t, st == BITNET_ERR_INVALID_ARGUMENT && strstr(bitnet_last_error(), want) &&
                     strstr(bitnet_tokenizer_last_error(tok), want),
              "llama-bpe: invalid UTF-8 case %d rejected: %s", i, bitnet_last_error());
    }
    /* bad ids */
    int32_t bad_ids[] = {9906, 128256};
    size_t needed = 0;
    st = bitnet_detokenize(tok, bad_ids, 2, NULL, 0, &needed);
    check(t, st == BITNET_ERR_INVALID_ARGUMENT, "llama-bpe: detokenize rejects id 128256: %s", bitnet_last_error());
    st = bitnet_token_to_piece(tok, -1, NULL, 0, &needed);
    check(t, st == BITNET_ERR_INVALID_ARGUMENT, "llama-bpe: token_to_piece rejects id -1");

    /* streaming pieces of a multi-byte character split over byte tokens */
    const char *emoji = "\xf0\x9f\xa6\x99 \xe2\x80\x8d";
    round_trip(t, tok, "llama-bpe emoji", emoji, strlen(emoji));
    /* a long run of whitespace and one long word (heap path) */
    size_t big = 20000;
    char *long_text = malloc(big + 1);
    for (size_t i = 0; i < big; i++) long_text[i] = i < big / 2 ? ' ' : (char)('a' + (i * 7) % 26);
    long_text[big] = '\0';
    round_trip(t, tok, "llama-bpe long runs", long_text, big);
    free(long_text);
}

static void spm_extra(tally *t, const bitnet_tokenizer *tok) {
    check(t, bitnet_tokenizer_n_vocab(tok) == 32000, "llama-spm: n_vocab %d", bitnet_tokenizer_n_vocab(tok));
    check(t, bitnet_tokenizer_bos(tok) == 1 && bitnet_tokenizer_eos(tok) == 2 && bitnet_tokenizer_add_bos(tok) == 1,
          "llama-spm: bos 1, eos 2, add_bos");
    const char *s = "<s>Hello</s> world";
    int32_t n1 = 0;
    int32_t *sp = tokenize(tok, s, strlen(s), 0, 1, &n1, NULL);
    check(t, sp && n1 >= 3 && sp[0] == 1, "llama-spm: special=1 parses <s>");
    size_t dl = 0;
    char *back = sp ? detokenize(tok, sp, n1, &dl) : NULL;
    check(t, back && dl == strlen(s) && memcmp(back, s, dl) == 0, "llama-spm: round trip with special tokens: '%s'",
          back ? back : "(null)");
    free(back);
    free(sp);
    int32_t n = 0;
    int32_t *ids = tokenize(tok, "Hello", 5, 1, 0, &n, NULL);
    check(t, ids && n == 2 && ids[0] == 1 && ids[1] == 15043, "llama-spm: add_bos + \"Hello\" = 1 15043");
    free(ids);
    /* byte fallback: a character outside the vocabulary */
    const char *rare = "\xf0\x9f\xa6\x99";
    ids = tokenize(tok, rare, 4, 0, 0, &n, NULL);
    check(t, ids && n == 5 && ids[0] == 29871 && ids[1] == 0xF0 + 3, "llama-spm: byte fallback <0xF0>..");
    free(ids);
    round_trip(t, tok, "llama-spm byte fallback", rare, 4);
}

/* ---- random texts ------------------------------------------------------- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

static int put_utf8(uint32_t cp, char *o) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* A code point from a mix that exercises the pre-tokenizer: ASCII letters,
 * digits, punctuation, apostrophes, every kind of whitespace, Latin-1,
 * combining marks, CJK, emoji, anything valid. */
static uint32_t random_cp(void) {
    static const uint32_t ws[] = {' ', ' ', ' ', '\n', '\r', '\t', 0x0B, 0x0C, 0x85, 0xA0, 0x1680, 0x2000, 0x2028, 0x3000};
    switch (rnd() % 10) {
    case 0: case 1: case 2: return 'a' + rnd() % 26 - (rnd() % 4 == 0 ? 32 : 0);
    case 3: return ws[rnd() % (sizeof ws / sizeof ws[0])];
    case 4: return "0123456789'.,!?-_()[]{}<>|$+=^~`\"#@"[rnd() % 36];
    case 5: return 0x80 + rnd() % 0x180;
    case 6: return 0x300 + rnd() % 0x70;
    case 7: return 0x4E00 + rnd() % 0x5000;
    case 8: return 0x1F300 + rnd() % 0x300;
    default: {
        uint32_t c = rnd() % 0x110000;
        return (c >= 0xD800 && c <= 0xDFFF) ? 0xFFFD : c;
    }
    }
}

static void random_texts(tally *t, const bitnet_tokenizer *tok, const char *name) {
    char buf[4 * 256 + 1];
    int n_ok = 0, n_texts = 2000, n_bytes_ok = 0, n_raw = 2000;
    for (int k = 0; k < n_texts; k++) {
        size_t len = 0, n_cp = rnd() % 256;
        for (size_t i = 0; i < n_cp; i++) len += (size_t)put_utf8(random_cp(), buf + len);
        int32_t n = 0;
        int32_t *ids = tokenize(tok, buf, len, 0, 0, &n, NULL);
        size_t dl = 0;
        char *back = ids ? detokenize(tok, ids, n, &dl) : NULL;
        if (back && dl == len && memcmp(back, buf, len) == 0) n_ok++;
        else if (k - n_ok <= 3) printf("      round trip failed: text %d of %zu bytes\n", k, len);
        free(back);
        free(ids);
    }
    check(t, n_ok == n_texts, "%s: %d of %d random texts round trip", name, n_ok, n_texts);
    /* random bytes: valid UTF-8 or a clean error, never a crash */
    for (int k = 0; k < n_raw; k++) {
        size_t len = rnd() % 64;
        for (size_t i = 0; i < len; i++) buf[i] = (char)(rnd() % 4 ? 0x80 + rnd() % 0x80 : rnd() % 0x80);
        int32_t need = 0;
        bitnet_status st = bitnet_tokenize(tok, buf, len, 1, 1, NULL, 0, &need);
        if (st == BITNET_ERR_INVALID_ARGUMENT && strstr(bitnet_last_error(), "invalid UTF-8")) n_bytes_ok++;
        else if (st == BITNET_OK || st == BITNET_ERR_BUFFER_TOO_SMALL) n_bytes_ok++;
    }
    check(t, n_bytes_ok == n_raw, "%s: %d of %d random byte strings tokenized or rejected as invalid UTF-8", name,
          n_bytes_ok, n_raw);
}

int main(void) {
    tally t = {0, 0};
    static const char *const vocabs[] = {"ggml-vocab-llama-bpe.gguf", "ggml-vocab-llama-spm.gguf"};
    for (int v = 0; v < 2; v++) {
        char path[512];
        snprintf(path, sizeof path, DATA "%s", vocabs[v]);
        bitnet_tokenizer *tok = NULL;
        double t0 = now_s();
        bitnet_status st = bitnet_tokenizer_load(path, &tok);
        double dt = now_s() - t0;
        if (!check(&t, st == BITNET_OK && tok, "%s: load (%.1f ms)", vocabs[v], dt * 1e3)) {
            printf("      %s\n", bitnet_last_error());
            continue;
        }
        golden(&t, vocabs[v], tok);
        if (v == 0) llama3_extra(&t, tok);
        else spm_extra(&t, tok);
        random_texts(&t, tok, vocabs[v]);
        bitnet_tokenizer_free(tok);
    }
    bitnet_tokenizer *none = NULL;
    bitnet_status st = bitnet_tokenizer_load(DATA "does-not-exist.gguf", &none);
    check(&t, st != BITNET_OK && !none && strstr(bitnet_last_error(), "does-not-exist"), "missing file: %s",
          bitnet_last_error());
    bitnet_tokenizer_free(NULL);
    printf("%d passed, %d failed\n", t.passed, t.failed);
    return t.failed ? 1 : 0;
}
