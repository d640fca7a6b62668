/* GGUF v2/v3 reader.
 *
 * The file is untrusted input: every count, offset, size, string length and
 * dimension product is checked against the file before it is used, with
 * overflow-safe arithmetic. Strings and tensor data point into the mapped (or
 * read) file image; nothing is copied except the small index arrays.
 *
 * Strings in GGUF are not NUL-terminated: use bn_str (pointer + length).
 * Keys and tensor names are additionally validated to contain no NUL byte and
 * are copied to NUL-terminated C strings (`key` / `name`) for convenience. */
#ifndef BN_GGUF_H
#define BN_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bn_error.h"

typedef enum bn_gguf_type {
    BN_GGUF_UINT8 = 0,
    BN_GGUF_INT8 = 1,
    BN_GGUF_UINT16 = 2,
    BN_GGUF_INT16 = 3,
    BN_GGUF_UINT32 = 4,
    BN_GGUF_INT32 = 5,
    BN_GGUF_FLOAT32 = 6,
    BN_GGUF_BOOL = 7,
    BN_GGUF_STRING = 8,
    BN_GGUF_ARRAY = 9,
    BN_GGUF_UINT64 = 10,
    BN_GGUF_INT64 = 11,
    BN_GGUF_FLOAT64 = 12,
    BN_GGUF_TYPE_COUNT
} bn_gguf_type;

typedef struct bn_str {
    const char *ptr; /* into the file image; not NUL-terminated */
    uint64_t len;
} bn_str;

typedef struct bn_gguf_array {
    bn_gguf_type type;   /* element type (never ARRAY: nested arrays are rejected) */
    uint64_t n;          /* element count */
    const uint8_t *data; /* scalar elements, little-endian, packed (not for STRING) */
    bn_str *strings;     /* STRING elements (owned by the bn_gguf) */
} bn_gguf_array;

typedef struct bn_gguf_kv {
    char *key; /* NUL-terminated copy */
    bn_gguf_type type;
    union {
        uint64_t u64;  /* UINT8/16/32/64 */
        int64_t i64;   /* INT8/16/32/64 */
        double f64;    /* FLOAT32/64 */
        bool b;        /* BOOL */
        bn_str str;    /* STRING */
        bn_gguf_array arr;
    } v;
} bn_gguf_kv;

#define BN_GGUF_MAX_DIMS 4

typedef struct bn_gguf_tensor {
    char *name;          /* NUL-terminated copy */
    uint32_t n_dims;
    int64_t ne[BN_GGUF_MAX_DIMS]; /* ne[0] = row length (contiguous), unused dims = 1 */
    int64_t n_elements;
    uint32_t type;       /* GGUF type id (see tensor_types.h) */
    uint64_t offset;     /* relative to the data section */
    uint64_t size;       /* bytes, from the type table */
    const uint8_t *data; /* into the file image */
} bn_gguf_tensor;

typedef struct bn_gguf {
    uint32_t version;
    uint64_t n_kv;
    bn_gguf_kv *kv;
    uint64_t n_tensors;
    bn_gguf_tensor *tensors;
    uint64_t alignment;   /* general.alignment, default 32 */
    uint64_t data_offset; /* start of the tensor data section in the file */
    const uint8_t *base;  /* file image */
    uint64_t size;        /* file size */
    /* private: how the image is held */
    void *owned_buf;      /* malloc'd copy (read fallback / memory load), or NULL */
    void *map_addr;       /* mmap'd address, or NULL */
    size_t map_len;
} bn_gguf;

/* Open and validate a GGUF file. use_mmap = 0 reads it into memory. */
bitnet_status bn_gguf_open_file(const char *path, int use_mmap, bn_gguf **out, bn_error *err);

/* A load's progress callback (bitnet_model_params.progress_callback). */
typedef struct bn_progress {
    int (*fn)(float progress, void *user_data); /* NULL: none */
    void *user_data;
} bn_progress;

/* bn_gguf_open_file reporting the fraction of the file read to progress
 * (only when the file is read, not mapped); a nonzero return from it
 * cancels: BITNET_ERR_CANCELLED. progress may be NULL. */
bitnet_status bn_gguf_open_file_progress(const char *path, int use_mmap, const bn_progress *progress, bn_gguf **out,
                                         bn_error *err);

/* Parse a GGUF image in memory. The bytes are copied (the caller keeps its buffer). */
bitnet_status bn_gguf_open_memory(const void *data, size_t size, bn_gguf **out, bn_error *err);

void bn_gguf_close(bn_gguf *g);

const bn_gguf_kv *bn_gguf_find_kv(const bn_gguf *g, const char *key);
const bn_gguf_tensor *bn_gguf_find_tensor(const bn_gguf *g, const char *name);

/* Typed getters. Each returns BITNET_ERR_NOT_FOUND when the key is absent and
 * BITNET_ERR_FORMAT (with a message naming the key) when it has a type that
 * cannot represent the request (negative into unsigned, out of range, ...). */
bitnet_status bn_gguf_get_u32(const bn_gguf *g, const char *key, uint32_t *out, bn_error *err);
bitnet_status bn_gguf_get_i64(const bn_gguf *g, const char *key, int64_t *out, bn_error *err);
bitnet_status bn_gguf_get_f32(const bn_gguf *g, const char *key, float *out, bn_error *err);
bitnet_status bn_gguf_get_bool(const bn_gguf *g, const char *key, bool *out, bn_error *err);
bitnet_status bn_gguf_get_str(const bn_gguf *g, const char *key, bn_str *out, bn_error *err);
/* An array of the given element type (pass BN_GGUF_TYPE_COUNT for any). */
bitnet_status bn_gguf_get_arr(const bn_gguf *g, const char *key, bn_gguf_type elem_type,
                              const bn_gguf_array **out, bn_error *err);

/* Element i of a numeric array as int64 / double (no bounds check beyond i < n). */
int64_t bn_gguf_arr_i64(const bn_gguf_array *a, uint64_t i);
double bn_gguf_arr_f64(const bn_gguf_array *a, uint64_t i);

/* Is `s` equal to the NUL-terminated `lit`? */
bool bn_str_eq(bn_str s, const char *lit);

#endif
