#include "matmul.h"

size_t bn_matmul_scratch_bytes(const bn_weight *w, int64_t n_tokens) {
    return (size_t)n_tokens * bn_act_row_bytes(w->type->act, w->n_in);
}

void bn_matmul(const bn_weight *w, const float *x, int64_t n_tokens, float *y, void *scratch) {
    const bn_type_traits *tt = w->type;
    const size_t act_bytes = bn_act_row_bytes(tt->act, w->n_in);
    uint8_t *act = scratch;
    for (int64_t t = 0; t < n_tokens; t++) bn_act_quantize_row(tt->act, x + t * w->n_in, act + t * act_bytes, w->n_in);

    /* Rows outer, tokens inner: each weight row is read once for all tokens. */
    for (int64_t o = 0; o < w->n_out; o++) {
        const uint8_t *row = w->data + (size_t)o * w->row_bytes;
        const float b = w->bias ? w->bias[o] : 0.0f;
        for (int64_t t = 0; t < n_tokens; t++)
            y[t * w->n_out + o] = tt->vec_dot(w->n_in, row, act + t * act_bytes) * w->scale + b;
    }
}

void bn_weight_get_row(const bn_weight *w, int64_t row, float *out) {
    w->type->to_float(w->data + (size_t)row * w->row_bytes, out, w->n_in);
    if (w->scale != 1.0f)
        for (int64_t i = 0; i < w->n_in; i++) out[i] *= w->scale;
}
