/* Matrix times activations: the one place where weights meet activations.
 * Everything above this call is format-agnostic; below it are the kernel
 * sets (kernels.h) and the thread pool (threadpool.h). */
#ifndef BN_MATMUL_H
#define BN_MATMUL_H

#include <stddef.h>
#include <stdint.h>

#include "kernels.h"
#include "model.h"
#include "threadpool.h"

/* The most weights one bn_matmul call takes (q, k, v share one input). */
#define BN_MATMUL_MAX_WEIGHTS 4

/* Bytes of activation scratch a bn_matmul over these weights with n_tokens
 * input rows needs (weights that take the same activation format share it). */
size_t bn_matmul_scratch_bytes(const bn_weight *const *ws, int nw, int64_t n_tokens);

/* For every weight w = ws[i] and token t < n_tokens:
 *     ys[i][t * w->n_out + o] = w->scale * dot(row o of w, x[t]) + bias[o]
 * x holds n_tokens rows of n_in floats (all ws[i] have the same n_in). Each
 * activation row is quantized once per activation format (tensor_types.h);
 * the rows of all the weights are then split over the pool's threads, so a
 * group (q, k, v or gate, up) costs one fork-join, not one per weight.
 * `scratch` holds bn_matmul_scratch_bytes(ws, nw, n_tokens) bytes. */
void bn_matmul(const bn_kernels *k, bn_threadpool *pool, const bn_weight *const *ws, float *const *ys, int nw,
               const float *x, int64_t n_tokens, void *scratch);

/* Row `row` of w dequantized to n_in floats (embedding look-up). */
void bn_weight_get_row(const bn_weight *w, int64_t row, float *out);

#endif
