/* Token sampling: greedy, or repetition penalty -> top-k -> top-p -> min-p ->
 * temperature -> a draw from a seeded RNG (the order llama.cpp's default chain uses). */
#ifndef BN_SAMPLER_H
#define BN_SAMPLER_H

#include <stdbool.h>
#include <stdint.h>

#include "bitnet.h"
#include "bn_error.h"

struct bitnet_sampler {
    bitnet_sampler_params p;
    uint64_t rng[4];       /* xoshiro256** state */
    int32_t *history;      /* ring buffer of the last repeat_last_n accepted tokens */
    int32_t *sorted;       /* scratch: a sorted copy of history, to count each token once */
    int32_t history_len, history_pos;
};

bitnet_status bn_sampler_create(const bitnet_sampler_params *p, struct bitnet_sampler **out, bn_error *err);
void bn_sampler_destroy(struct bitnet_sampler *s);
void bn_sampler_reset(struct bitnet_sampler *s, uint64_t seed);
void bn_sampler_accept(struct bitnet_sampler *s, int32_t token);
bitnet_status bn_sampler_sample(struct bitnet_sampler *s, const float *logits, int32_t n_vocab, int32_t *out,
                                bn_error *err);

/* Index of the largest value (the first one on ties). */
int32_t bn_argmax(const float *v, int32_t n);

#endif
