/* GGUF v2/v3 reader: parse and validate the whole header before anything
 * else looks at the file. See gguf.h for the contract. */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include "gguf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor_types.h"

#if !defined(_WIN32) && !defined(__EMSCRIPTEN__)
#define BN_HAVE_MMAP 1
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

#define GGUF_MAGIC "GGUF"
#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_ALIGNMENT (1u << 20)
#define GGUF_MAX_KEY_LEN 65535

/* ---- bounded cursor over the file image ---------------------------------- */

typedef struct cursor {
    const uint8_t *base;
    uint64_t size;
    uint64_t pos;
    bn_error *err;
} cursor;

static uint64_t cur_left(const cursor *c) { return c->size - c->pos; }

static bitnet_status cur_truncated(cursor *c, const char *what, uint64_t need) {
    return bn_fail(c->err, BITNET_ERR_FORMAT,
                   "file truncated: %s needs %llu bytes at offset %llu but only %llu remain", what,
                   (unsigned long long)need, (unsigned long long)c->pos, (unsigned long long)cur_left(c));
}

static bitnet_status cur_read(cursor *c, void *dst, uint64_t n, const char *what) {
    if (n > cur_left(c)) return cur_truncated(c, what, n);
    memcpy(dst, c->base + c->pos, (size_t)n);
    c->pos += n;
    return BITNET_OK;
}

static bitnet_status cur_u32(cursor *c, uint32_t *v, const char *what) { return cur_read(c, v, 4, what); }
static bitnet_status cur_u64(cursor *c, uint64_t *v, const char *what) { return cur_read(c, v, 8, what); }

static bitnet_status cur_str(cursor *c, bn_str *s, const char *what) {
    uint64_t len = 0;
    bitnet_status st = cur_u64(c, &len, what);
    if (st) return st;
    if (len > cur_left(c))
        return bn_fail(c->err, BITNET_ERR_FORMAT,
                       "%s: string length %llu at offset %llu runs past the end of the file (%llu bytes left)", what,
                       (unsigned long long)len, (unsigned long long)(c->pos - 8), (unsigned long long)cur_left(c));
    s->ptr = (const char *)c->base + c->pos;
    s->len = len;
    c->pos += len;
    return BITNET_OK;
}

/* A NUL-terminated copy of a key or tensor name; rejects embedded NULs. */
static bitnet_status dup_name(cursor *c, bn_str s, const char *what, char **out) {
    if (s.len == 0) return bn_fail(c->err, BITNET_ERR_FORMAT, "%s is empty", what);
    if (s.len > GGUF_MAX_KEY_LEN)
        return bn_fail(c->err, BITNET_ERR_FORMAT, "%s is %llu bytes long (limit %d)", what,
                       (unsigned long long)s.len, GGUF_MAX_KEY_LEN);
    if (memchr(s.ptr, '\0', (size_t)s.len))
        return bn_fail(c->err, BITNET_ERR_FORMAT, "%s contains a NUL byte", what);
    char *p = malloc((size_t)s.len + 1);
    if (!p) return bn_fail(c->err, BITNET_ERR_OUT_OF_MEMORY, "out of memory reading %s", what);
    memcpy(p, s.ptr, (size_t)s.len);
    p[s.len] = '\0';
    *out = p;
    return BITNET_OK;
}

/* ---- values ----------------------------------------------------------------- */

static const char *const type_names[BN_GGUF_TYPE_COUNT] = {
    "uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
    "bool",  "string", "array", "uint64", "int64", "float64",
};

static size_t scalar_size(bn_gguf_type t) {
    switch (t) {
    case BN_GGUF_UINT8: case BN_GGUF_INT8: case BN_GGUF_BOOL: return 1;
    case BN_GGUF_UINT16: case BN_GGUF_INT16: return 2;
    case BN_GGUF_UINT32: case BN_GGUF_INT32: case BN_GGUF_FLOAT32: return 4;
    case BN_GGUF_UINT64: case BN_GGUF_INT64: case BN_GGUF_FLOAT64: return 8;
    default: return 0;
    }
}

/* Decode one little-endian scalar at p into kv's union. */
static void decode_scalar(bn_gguf_type t, const uint8_t *p, bn_gguf_kv *kv) {
    switch (t) {
    case BN_GGUF_UINT8: kv->v.u64 = p[0]; break;
    case BN_GGUF_INT8: kv->v.i64 = (int8_t)p[0]; break;
    case BN_GGUF_BOOL: kv->v.b = p[0] != 0; break;
    case BN_GGUF_UINT16: { uint16_t x; memcpy(&x, p, 2); kv->v.u64 = x; break; }
    case BN_GGUF_INT16: { int16_t x; memcpy(&x, p, 2); kv->v.i64 = x; break; }
    case BN_GGUF_UINT32: { uint32_t x; memcpy(&x, p, 4); kv->v.u64 = x; break; }
    case BN_GGUF_INT32: { int32_t x; memcpy(&x, p, 4); kv->v.i64 = x; break; }
    case BN_GGUF_FLOAT32: { float x; memcpy(&x, p, 4); kv->v.f64 = x; break; }
    case BN_GGUF_UINT64: { uint64_t x; memcpy(&x, p, 8); kv->v.u64 = x; break; }
    case BN_GGUF_INT64: { int64_t x; memcpy(&x, p, 8); kv->v.i64 = x; break; }
    case BN_GGUF_FLOAT64: { double x; memcpy(&x, p, 8); kv->v.f64 = x; break; }
    default: break;
    }
}

static bitnet_status read_value(cursor *c, bn_gguf_kv *kv) {
    const char *key = kv->key;
    if (kv->type == BN_GGUF_STRING) {
        char what[96];
        snprintf(what, sizeof what, "value of key '%.60s'", key);
        return cur_str(c, &kv->v.str, what);
    }
    if (kv->type == BN_GGUF_ARRAY) {
        uint32_t et;
        uint64_t n;
        bitnet_status st = cur_u32(c, &et, "array element type");
        if (st) return st;
        if (et >= BN_GGUF_TYPE_COUNT)
            return bn_fail(c->err, BITNET_ERR_FORMAT, "key '%s': array of unknown value type %u", key, et);
        if (et == BN_GGUF_ARRAY)
            return bn_fail(c->err, BITNET_ERR_UNSUPPORTED, "key '%s': nested arrays are not supported", key);
        if ((st = cur_u64(c, &n, "array length"))) return st;
        bn_gguf_array *a = &kv->v.arr;
        a->type = (bn_gguf_type)et;
        a->n = n;
        if (et == BN_GGUF_STRING) {
            /* every string takes at least its 8-byte length: bound n before allocating */
            if (n > cur_left(c) / 8)
                return bn_fail(c->err, BITNET_ERR_FORMAT,
                               "key '%s': array of %llu strings cannot fit in the %llu bytes left", key,
                               (unsigned long long)n, (unsigned long long)cur_left(c));
            a->strings = calloc(n ? (size_t)n : 1, sizeof(bn_str));
            if (!a->strings)
                return bn_fail(c->err, BITNET_ERR_OUT_OF_MEMORY, "key '%s': out of memory for %llu strings", key,
                               (unsigned long long)n);
            for (uint64_t i = 0; i < n; i++) {
                /* the label is built only on failure: vocabularies have 10^5 strings */
                if ((st = cur_str(c, &a->strings[i], "string"))) {
                    bn_error_prefix(c->err, "key '%s' element %llu", key, (unsigned long long)i);
                    return st;
                }
            }
            return BITNET_OK;
        }
        size_t es = scalar_size(a->type);
        if (n > cur_left(c) / es)
            return bn_fail(c->err, BITNET_ERR_FORMAT,
                           "key '%s': array of %llu %s values runs past the end of the file", key,
                           (unsigned long long)n, type_names[et]);
        a->data = c->base + c->pos;
        c->pos += n * es;
        return BITNET_OK;
    }
    size_t sz = scalar_size(kv->type);
    if (sz > cur_left(c)) return cur_truncated(c, "metadata value", sz);
    decode_scalar(kv->type, c->base + c->pos, kv);
    c->pos += sz;
    return BITNET_OK;
}

/* ---- whole file -------------------------------------------------------------- */

static int cmp_tensor_offset(const void *a, const void *b) {
    const bn_gguf_tensor *x = *(const bn_gguf_tensor *const *)a, *y = *(const bn_gguf_tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static bitnet_status parse_tensor_info(cursor *c, bn_gguf *g, uint64_t i) {
    bn_gguf_tensor *t = &g->tensors[i];
    bn_str name;
    char what[64];
    snprintf(what, sizeof what, "name of tensor %llu", (unsigned long long)i);
    bitnet_status st = cur_str(c, &name, what);
    if (st) return st;
    if ((st = dup_name(c, name, what, &t->name))) return st;
    if ((st = cur_u32(c, &t->n_dims, "tensor dimension count"))) return st;
    if (t->n_dims < 1 || t->n_dims > BN_GGUF_MAX_DIMS)
        return bn_fail(c->err, BITNET_ERR_FORMAT, "tensor %s: %u dimensions (must be 1..%d)", t->name, t->n_dims,
                       BN_GGUF_MAX_DIMS);
    int64_t n_el = 1;
    for (int d = 0; d < BN_GGUF_MAX_DIMS; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        uint64_t ne;
        if ((st = cur_u64(c, &ne, "tensor dimension"))) return st;
        if (ne == 0 || ne > (uint64_t)INT64_MAX)
            return bn_fail(c->err, BITNET_ERR_FORMAT, "tensor %s: dimension %u is %llu", t->name, d,
                           (unsigned long long)ne);
        if ((uint64_t)n_el > (uint64_t)INT64_MAX / ne)
            return bn_fail(c->err, BITNET_ERR_FORMAT, "tensor %s: element count overflows (dimension %u = %llu)",
                           t->name, d, (unsigned long long)ne);
        t->ne[d] = (int64_t)ne;
        n_el *= (int64_t)ne;
    }
    t->n_elements = n_el;
    if ((st = cur_u32(c, &t->type, "tensor type"))) return st;
    if ((st = cur_u64(c, &t->offset, "tensor offset"))) return st;

    const bn_type_traits *tt = bn_type_get(t->type);
    if (!tt) return bn_fail(c->err, BITNET_ERR_UNSUPPORTED, "tensor %s: unknown tensor type %u", t->name, t->type);
    if (t->ne[0] % tt->block_size != 0)
        return bn_fail(c->err, BITNET_ERR_FORMAT, "tensor %s: row length %lld is not a multiple of %s's block size %lld",
                       t->name, (long long)t->ne[0], tt->name, (long long)tt->block_size);
    uint64_t row = bn_type_row_bytes(tt, t->ne[0]);
    uint64_t n_rows = (uint64_t)(n_el / t->ne[0]);
    if (row == 0 || n_rows > (UINT64_MAX - tt->tensor_tail_bytes) / row)
        return bn_fail(c->err, BITNET_ERR_FORMAT, "tensor %s: byte size overflows", t->name);
    t->size = row * n_rows + tt->tensor_tail_bytes;
    return BITNET_OK;
}

static bitnet_status validate_tensor_data(bn_gguf *g, bn_error *err) {
    uint64_t data_size = g->size - g->data_offset;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        bn_gguf_tensor *t = &g->tensors[i];
        if (t->offset % g->alignment != 0)
            return bn_fail(err, BITNET_ERR_FORMAT, "tensor %s: data offset %llu is not a multiple of the alignment %llu",
                           t->name, (unsigned long long)t->offset, (unsigned long long)g->alignment);
        if (t->offset > data_size || t->size > data_size - t->offset)
            return bn_fail(err, BITNET_ERR_FORMAT,
                           "tensor %s: data (offset %llu, %llu bytes) ends past the end of the file (data section is "
                           "%llu bytes)",
                           t->name, (unsigned long long)t->offset, (unsigned long long)t->size,
                           (unsigned long long)data_size);
        t->data = g->base + g->data_offset + t->offset;
    }
    if (g->n_tensors < 2) return BITNET_OK;
    bn_gguf_tensor **order = malloc((size_t)g->n_tensors * sizeof *order);
    if (!order) return bn_fail(err, BITNET_ERR_OUT_OF_MEMORY, "out of memory checking tensor overlap");
    for (uint64_t i = 0; i < g->n_tensors; i++) order[i] = &g->tensors[i];
    qsort(order, (size_t)g->n_tensors, sizeof *order, cmp_tensor_offset);
    bitnet_status st = BITNET_OK;
    for (uint64_t i = 0; i + 1 < g->n_tensors; i++) {
        if (order[i]->offset + order[i]->size > order[i + 1]->offset) {
            st = bn_fail(err, BITNET_ERR_FORMAT, "tensors %s and %s overlap (offsets %llu+%llu and %llu)",
                         order[i]->name, order[i + 1]->name, (unsigned long long)order[i]->offset,
                         (unsigned long long)order[i]->size, (unsigned long long)order[i + 1]->offset);
            break;
        }
    }
    free(order);
    return st;
}

static bitnet_status check_unique_names(bn_gguf *g, bn_error *err) {
    /* O(n^2) over short lists is fine for kv; tensors can be ~1000: still fine. */
    for (uint64_t i = 0; i < g->n_kv; i++)
        for (uint64_t j = i + 1; j < g->n_kv; j++)
            if (strcmp(g->kv[i].key, g->kv[j].key) == 0)
                return bn_fail(err, BITNET_ERR_FORMAT, "metadata key '%s' appears twice", g->kv[i].key);
    for (uint64_t i = 0; i < g->n_tensors; i++)
        for (uint64_t j = i + 1; j < g->n_tensors; j++)
            if (strcmp(g->tensors[i].name, g->tensors[j].name) == 0)
                return bn_fail(err, BITNET_ERR_FORMAT, "tensor '%s' appears twice", g->tensors[i].name);
    return BITNET_OK;
}

static bitnet_status parse(bn_gguf *g, bn_error *err) {
    cursor c = {g->base, g->size, 0, err};
    char magic[4];
    bitnet_status st;
    if (g->size < 4 || memcmp(g->base, GGUF_MAGIC, 4) != 0)
        return bn_fail(err, BITNET_ERR_FORMAT, "not a GGUF file (bad magic)");
    c.pos = 4;
    (void)magic;
    if ((st = cur_u32(&c, &g->version, "version"))) return st;
    if (g->version == 1)
        return bn_fail(err, BITNET_ERR_UNSUPPORTED, "GGUF version 1 is not supported (convert the file to v3)");
    if (g->version != 2 && g->version != 3)
        return bn_fail(err, BITNET_ERR_UNSUPPORTED, "unsupported GGUF version %u (this reader knows 2 and 3)",
                       g->version);
    if ((st = cur_u64(&c, &g->n_tensors, "tensor count"))) return st;
    if ((st = cur_u64(&c, &g->n_kv, "metadata count"))) return st;
    /* Minimal sizes: a kv is >= 8 (key len) + 1 + 4 (type) + 1 bytes, a tensor info >= 8+1+4+8+4+8. */
    if (g->n_kv > cur_left(&c) / 14)
        return bn_fail(err, BITNET_ERR_FORMAT, "metadata count %llu cannot fit in a %llu-byte file",
                       (unsigned long long)g->n_kv, (unsigned long long)g->size);
    if (g->n_tensors > cur_left(&c) / 33)
        return bn_fail(err, BITNET_ERR_FORMAT, "tensor count %llu cannot fit in a %llu-byte file",
                       (unsigned long long)g->n_tensors, (unsigned long long)g->size);

    g->kv = calloc(g->n_kv ? (size_t)g->n_kv : 1, sizeof *g->kv);
    g->tensors = calloc(g->n_tensors ? (size_t)g->n_tensors : 1, sizeof *g->tensors);
    if (!g->kv || !g->tensors) return bn_fail(err, BITNET_ERR_OUT_OF_MEMORY, "out of memory for the GGUF index");

    for (uint64_t i = 0; i < g->n_kv; i++) {
        bn_gguf_kv *kv = &g->kv[i];
        bn_str key;
        uint32_t type;
        char what[64];
        snprintf(what, sizeof what, "key of metadata entry %llu", (unsigned long long)i);
        if ((st = cur_str(&c, &key, what))) return st;
        if ((st = dup_name(&c, key, what, &kv->key))) return st;
        if ((st = cur_u32(&c, &type, "metadata value type"))) return st;
        if (type >= BN_GGUF_TYPE_COUNT)
            return bn_fail(err, BITNET_ERR_FORMAT, "key '%s': unknown value type %u", kv->key, type);
        kv->type = (bn_gguf_type)type;
        if ((st = read_value(&c, kv))) return st;
    }

    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    const bn_gguf_kv *al = bn_gguf_find_kv(g, "general.alignment");
    if (al) {
        if (al->type != BN_GGUF_UINT32 && al->type != BN_GGUF_UINT64 && al->type != BN_GGUF_INT32)
            return bn_fail(err, BITNET_ERR_FORMAT, "general.alignment has type %s (must be an integer)",
                           type_names[al->type]);
        uint64_t a = al->type == BN_GGUF_INT32 ? (uint64_t)al->v.i64 : al->v.u64;
        if (a == 0 || (a & (a - 1)) != 0 || a > GGUF_MAX_ALIGNMENT)
            return bn_fail(err, BITNET_ERR_FORMAT, "general.alignment is %llu (must be a power of two <= %u)",
                           (unsigned long long)a, GGUF_MAX_ALIGNMENT);
        g->alignment = a;
    }

    for (uint64_t i = 0; i < g->n_tensors; i++)
        if ((st = parse_tensor_info(&c, g, i))) return st;
    if ((st = check_unique_names(g, err))) return st;

    uint64_t pad = (g->alignment - c.pos % g->alignment) % g->alignment;
    if (g->n_tensors > 0 && pad > cur_left(&c))
        return bn_fail(err, BITNET_ERR_FORMAT, "file truncated before the tensor data section");
    g->data_offset = g->n_tensors > 0 ? c.pos + pad : c.pos;
    if (g->data_offset > g->size) g->data_offset = g->size;
    return validate_tensor_data(g, err);
}

static int host_is_little_endian(void) {
    const uint16_t one = 1;
    uint8_t b;
    memcpy(&b, &one, 1);
    return b == 1;
}

static bitnet_status finish_open(bn_gguf *g, bn_gguf **out, bn_error *err) {
    bitnet_status st = parse(g, err);
    if (st) {
        bn_gguf_close(g);
        return st;
    }
    *out = g;
    return BITNET_OK;
}

bitnet_status bn_gguf_open_memory(const void *data, size_t size, bn_gguf **out, bn_error *err) {
    *out = NULL;
    if (!host_is_little_endian())
        return bn_fail(err, BITNET_ERR_UNSUPPORTED, "big-endian hosts are not supported");
    if (!data && size) return bn_fail(err, BITNET_ERR_INVALID_ARGUMENT, "data is NULL");
    bn_gguf *g = calloc(1, sizeof *g);
    if (!g) return bn_fail(err, BITNET_ERR_OUT_OF_MEMORY, "out of memory");
    g->owned_buf = malloc(size ? size : 1);
    if (!g->owned_buf) {
        free(g);
        return bn_fail(err, BITNET_ERR_OUT_OF_MEMORY, "out of memory copying a %zu-byte GGUF image", size);
    }
    if (size) memcpy(g->owned_buf, data, size);
    g->base = g->owned_buf;
    g->size = size;
    return finish_open(g, out, err);
}

static bitnet_status read_whole_file(FILE *f, const char *path, uint64_t size, const bn_progress *progress,
                                     bn_gguf *g, bn_error *err) {
    if (size > (uint64_t)SIZE_MAX - 1)
        return bn_fail(err, BITNET_ERR_OUT_OF_MEMORY, "%s: file too large to read into memory", path);
    g->owned_buf = malloc(size ? (size_t)size : 1);
    if (!g->owned_buf)
        return bn_fail(err, BITNET_ERR_OUT_OF_MEMORY, "%s: out of memory reading %llu bytes", path,
                       (unsigned long long)size);
    /* In steps of about 1% (at least 1 MiB), so a progress bar moves smoothly
     * and a cancel is noticed soon. */
    const int report = progress && progress->fn;
    size_t step = report ? (size_t)(size / 100) : (size_t)size;
    if (step < ((size_t)1 << 20)) step = (size_t)1 << 20;
    for (size_t done = 0; done < size;) {
        size_t n = size - done < step ? (size_t)(size - done) : step;
        if (fread((uint8_t *)g->owned_buf + done, 1, n, f) != n) return bn_fail(err, BITNET_ERR_IO, "%s: read failed", path);
        done += n;
        if (report && done < size && progress->fn((float)((double)done / (double)size), progress->user_data))
            return bn_fail(err, BITNET_ERR_CANCELLED, "%s: loading cancelled by the progress callback", path);
    }
    g->base = g->owned_buf;
    g->size = size;
    return BITNET_OK;
}

bitnet_status bn_gguf_open_file(const char *path, int use_mmap, bn_gguf **out, bn_error *err) {
    return bn_gguf_open_file_progress(path, use_mmap, NULL, out, err);
}

bitnet_status bn_gguf_open_file_progress(const char *path, int use_mmap, const bn_progress *progress, bn_gguf **out,
                                         bn_error *err) {
    *out = NULL;
    if (!path) return bn_fail(err, BITNET_ERR_INVALID_ARGUMENT, "path is NULL");
    if (!host_is_little_endian())
        return bn_fail(err, BITNET_ERR_UNSUPPORTED, "big-endian hosts are not supported");
    bn_gguf *g = calloc(1, sizeof *g);
    if (!g) return bn_fail(err, BITNET_ERR_OUT_OF_MEMORY, "out of memory");
#if BN_HAVE_MMAP
    if (use_mmap) {
        int fd = open(path, O_RDONLY);
        if (fd < 0) {
            int e = errno;
            free(g);
            return bn_fail(err, e == ENOENT ? BITNET_ERR_NOT_FOUND : BITNET_ERR_IO, "%s: %s", path, strerror(e));
        }
        struct stat sb;
        if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
            close(fd);
            free(g);
            return bn_fail(err, BITNET_ERR_IO, "%s: not a regular file", path);
        }
        g->size = (uint64_t)sb.st_size;
        if (g->size > 0) {
            void *addr = mmap(NULL, (size_t)g->size, PROT_READ, MAP_PRIVATE, fd, 0);
            if (addr == MAP_FAILED) {
                int e = errno;
                close(fd);
                free(g);
                return bn_fail(err, BITNET_ERR_IO, "%s: mmap failed: %s", path, strerror(e));
            }
            g->map_addr = addr;
            g->map_len = (size_t)g->size;
            g->base = addr;
        } else {
            g->base = (const uint8_t *)"";
        }
        close(fd);
        return finish_open(g, out, err);
    }
#else
    (void)use_mmap; /* no mmap here: the file is read into memory */
#endif
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        free(g);
        return bn_fail(err, e == ENOENT ? BITNET_ERR_NOT_FOUND : BITNET_ERR_IO, "%s: %s", path, strerror(e));
    }
    bitnet_status st = BITNET_OK;
    long long size = -1;
#if defined(_WIN32)
    /* long is 32 bits on Windows: ftell would fail past 2 GiB. */
    if (_fseeki64(f, 0, SEEK_END) == 0) size = _ftelli64(f);
#else
    if (fseek(f, 0, SEEK_END) == 0) size = ftell(f);
#endif
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0)
        st = bn_fail(err, BITNET_ERR_IO, "%s: cannot determine the file size", path);
    else
        st = read_whole_file(f, path, (uint64_t)size, progress, g, err);
    fclose(f);
    if (st) {
        bn_gguf_close(g);
        return st;
    }
    return finish_open(g, out, err);
}

void bn_gguf_close(bn_gguf *g) {
    if (!g) return;
    if (g->kv) {
        for (uint64_t i = 0; i < g->n_kv; i++) {
            free(g->kv[i].key);
            if (g->kv[i].type == BN_GGUF_ARRAY) free(g->kv[i].v.arr.strings);
        }
        free(g->kv);
    }
    if (g->tensors) {
        for (uint64_t i = 0; i < g->n_tensors; i++) free(g->tensors[i].name);
        free(g->tensors);
    }
#if BN_HAVE_MMAP
    if (g->map_addr) munmap(g->map_addr, g->map_len);
#endif
    free(g->owned_buf);
    free(g);
}

/* ---- look-ups ---------------------------------------------------------------- */

const bn_gguf_kv *bn_gguf_find_kv(const bn_gguf *g, const char *key) {
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (g->kv[i].key && strcmp(g->kv[i].key, key) == 0) return &g->kv[i];
    return NULL;
}

const bn_gguf_tensor *bn_gguf_find_tensor(const bn_gguf *g, const char *name) {
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (g->tensors[i].name && strcmp(g->tensors[i].name, name) == 0) return &g->tensors[i];
    return NULL;
}

static bool is_unsigned(bn_gguf_type t) {
    return t == BN_GGUF_UINT8 || t == BN_GGUF_UINT16 || t == BN_GGUF_UINT32 || t == BN_GGUF_UINT64;
}
static bool is_signed(bn_gguf_type t) {
    return t == BN_GGUF_INT8 || t == BN_GGUF_INT16 || t == BN_GGUF_INT32 || t == BN_GGUF_INT64;
}

static bitnet_status find_or_missing(const bn_gguf *g, const char *key, const bn_gguf_kv **kv, bn_error *err) {
    *kv = bn_gguf_find_kv(g, key);
    if (!*kv) return bn_fail(err, BITNET_ERR_NOT_FOUND, "metadata key '%s' is missing", key);
    return BITNET_OK;
}

static bitnet_status wrong_type(const bn_gguf_kv *kv, const char *want, bn_error *err) {
    return bn_fail(err, BITNET_ERR_FORMAT, "metadata key '%s' has type %s (expected %s)", kv->key,
                   type_names[kv->type], want);
}

bitnet_status bn_gguf_get_i64(const bn_gguf *g, const char *key, int64_t *out, bn_error *err) {
    const bn_gguf_kv *kv;
    bitnet_status st = find_or_missing(g, key, &kv, err);
    if (st) return st;
    if (is_signed(kv->type)) {
        *out = kv->v.i64;
        return BITNET_OK;
    }
    if (is_unsigned(kv->type)) {
        if (kv->v.u64 > (uint64_t)INT64_MAX)
            return bn_fail(err, BITNET_ERR_FORMAT, "metadata key '%s' is out of range", key);
        *out = (int64_t)kv->v.u64;
        return BITNET_OK;
    }
    return wrong_type(kv, "an integer", err);
}

bitnet_status bn_gguf_get_u32(const bn_gguf *g, const char *key, uint32_t *out, bn_error *err) {
    int64_t v;
    bitnet_status st = bn_gguf_get_i64(g, key, &v, err);
    if (st) return st;
    if (v < 0 || v > (int64_t)UINT32_MAX)
        return bn_fail(err, BITNET_ERR_FORMAT, "metadata key '%s' is %lld (must be 0..%u)", key, (long long)v,
                       UINT32_MAX);
    *out = (uint32_t)v;
    return BITNET_OK;
}

bitnet_status bn_gguf_get_f32(const bn_gguf *g, const char *key, float *out, bn_error *err) {
    const bn_gguf_kv *kv;
    bitnet_status st = find_or_missing(g, key, &kv, err);
    if (st) return st;
    if (kv->type == BN_GGUF_FLOAT32 || kv->type == BN_GGUF_FLOAT64) *out = (float)kv->v.f64;
    else if (is_signed(kv->type)) *out = (float)kv->v.i64;
    else if (is_unsigned(kv->type)) *out = (float)kv->v.u64;
    else return wrong_type(kv, "a number", err);
    return BITNET_OK;
}

bitnet_status bn_gguf_get_bool(const bn_gguf *g, const char *key, bool *out, bn_error *err) {
    const bn_gguf_kv *kv;
    bitnet_status st = find_or_missing(g, key, &kv, err);
    if (st) return st;
    if (kv->type == BN_GGUF_BOOL) *out = kv->v.b;
    else if (is_signed(kv->type)) *out = kv->v.i64 != 0;
    else if (is_unsigned(kv->type)) *out = kv->v.u64 != 0;
    else return wrong_type(kv, "a bool", err);
    return BITNET_OK;
}

bitnet_status bn_gguf_get_str(const bn_gguf *g, const char *key, bn_str *out, bn_error *err) {
    const bn_gguf_kv *kv;
    bitnet_status st = find_or_missing(g, key, &kv, err);
    if (st) return st;
    if (kv->type != BN_GGUF_STRING) return wrong_type(kv, "string", err);
    *out = kv->v.str;
    return BITNET_OK;
}

bitnet_status bn_gguf_get_arr(const bn_gguf *g, const char *key, bn_gguf_type elem_type, const bn_gguf_array **out,
                              bn_error *err) {
    const bn_gguf_kv *kv;
    bitnet_status st = find_or_missing(g, key, &kv, err);
    if (st) return st;
    if (kv->type != BN_GGUF_ARRAY) return wrong_type(kv, "array", err);
    if (elem_type != BN_GGUF_TYPE_COUNT && kv->v.arr.type != elem_type)
        return bn_fail(err, BITNET_ERR_FORMAT, "metadata key '%s' is an array of %s (expected %s)", key,
                       type_names[kv->v.arr.type], type_names[elem_type]);
    *out = &kv->v.arr;
    return BITNET_OK;
}

int64_t bn_gguf_arr_i64(const bn_gguf_array *a, uint64_t i) {
    bn_gguf_kv tmp;
    decode_scalar(a->type, a->data + i * scalar_size(a->type), &tmp);
    if (is_unsigned(a->type)) return (int64_t)tmp.v.u64;
    if (is_signed(a->type)) return tmp.v.i64;
    if (a->type == BN_GGUF_BOOL) return tmp.v.b;
    /* a float out of int64's range (or NaN) would be UB to convert: saturate (found by fuzz_gguf_load) */
    if (!(tmp.v.f64 == tmp.v.f64)) return 0;
    if (tmp.v.f64 >= 9223372036854775807.0) return INT64_MAX;
    if (tmp.v.f64 <= -9223372036854775807.0) return INT64_MIN;
    return (int64_t)tmp.v.f64;
}

double bn_gguf_arr_f64(const bn_gguf_array *a, uint64_t i) {
    bn_gguf_kv tmp;
    decode_scalar(a->type, a->data + i * scalar_size(a->type), &tmp);
    if (a->type == BN_GGUF_FLOAT32 || a->type == BN_GGUF_FLOAT64) return tmp.v.f64;
    if (is_unsigned(a->type)) return (double)tmp.v.u64;
    if (is_signed(a->type)) return (double)tmp.v.i64;
    return tmp.v.b;
}

bool bn_str_eq(bn_str s, const char *lit) {
    size_t n = strlen(lit);
    return s.len == n && memcmp(s.ptr, lit, n) == 0;
}
