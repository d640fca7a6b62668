/* Shared by the C tests that build GGUF images in memory (test_gguf_hostile.c,
 * test_batch_decode.c): a pass/fail tally, and a byte writer with the GGUF
 * value types they need. Header-only: each test program is one .c file. */
#ifndef BITNET_TESTS_GGUF_BUILD_H
#define BITNET_TESTS_GGUF_BUILD_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int n_pass, n_fail;

static inline void check(int ok, const char *what) {
    if (ok) {
        n_pass++;
    } else {
        n_fail++;
        printf("FAIL %s\n", what);
    }
}

/* GGUF value type ids (gguf_type). */
enum { T_UINT32 = 4, T_FLOAT32 = 6, T_STRING = 8, T_ARRAY = 9 };

typedef struct buf {
    uint8_t *p;
    size_t len, cap;
} buf;

static inline void put(buf *b, const void *src, size_t n) {
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        if (!b->p) abort(); /* the test itself, not the library */
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
}
static inline void put_u32(buf *b, uint32_t v) { put(b, &v, 4); }
static inline void put_u64(buf *b, uint64_t v) { put(b, &v, 8); }
static inline void put_str(buf *b, const char *s) {
    put_u64(b, strlen(s));
    put(b, s, strlen(s));
}
static inline void kv_u32(buf *b, const char *k, uint32_t v) {
    put_str(b, k);
    put_u32(b, T_UINT32);
    put_u32(b, v);
}
static inline void kv_f32(buf *b, const char *k, float v) {
    put_str(b, k);
    put_u32(b, T_FLOAT32);
    put(b, &v, 4);
}
static inline void kv_str(buf *b, const char *k, const char *v) {
    put_str(b, k);
    put_u32(b, T_STRING);
    put_str(b, v);
}

#endif
