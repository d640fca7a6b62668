/* Matrix times activations: the one place where weights meet activations.
 * The seam for fast kernels and threads (issue 5): everything above this
 * call is format-agnostic. */
#ifndef BN_MATMUL_H
#define BN_MATMUL_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

/* Bytes of activation scratch bn_matmul needs for n_tokens rows into w. */
size_t bn_matmul_scratch_bytes(const bn_weight *w, int64_t n_tokens);

/* y[t * w->n_out + o] = w->scale * dot(row o of w, x[t]) + bias[o]  for t < n_tokens.
 * x holds n_tokens rows of w->n_in floats. Each activation row is first
 * quantized the way the weight's format expects (tensor_types.h); `scratch`
 * holds bn_matmul_scratch_bytes(w, n_tokens) bytes. */
void bn_matmul(const bn_weight *w, const float *x, int64_t n_tokens, float *y, void *scratch);

/* Row `row` of w dequantized to n_in floats (embedding look-up). */
void bn_weight_get_row(const bn_weight *w, int64_t row, float *out);

#endif
