#include "sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- RNG: splitmix64 seeding, xoshiro256** draws ------------------------------ */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t next_u64(uint64_t s[4]) {
    const uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* Uniform in [0, 1) with 53 random bits. */
static double next_unit(uint64_t s[4]) { return (double)(next_u64(s) >> 11) * (1.0 / 9007199254740992.0); }

/* ---- lifecycle --------------------------------------------------------------------- */

bitnet_status bn_sampler_create(const bitnet_sampler_params *p, struct bitnet_sampler **out, bn_error *err) {
    *out = NULL;
    if (!(p->temperature == p->temperature) || !(p->top_p == p->top_p) || !(p->min_p == p->min_p) ||
        !(p->repeat_penalty > 0.0f) || p->repeat_last_n < 0 || p->repeat_last_n > (1 << 20) ||
        !isfinite(p->frequency_penalty) || !isfinite(p->presence_penalty))
        return bn_fail(err, BITNET_ERR_INVALID_ARGUMENT,
                       "invalid sampler parameters (temperature %g, top_p %g, min_p %g, repeat_penalty %g, "
                       "repeat_last_n %d, frequency_penalty %g, presence_penalty %g)",
                       (double)p->temperature, (double)p->top_p, (double)p->min_p, (double)p->repeat_penalty,
                       p->repeat_last_n, (double)p->frequency_penalty, (double)p->presence_penalty);
    struct bitnet_sampler *s = calloc(1, sizeof *s);
    if (!s) return bn_fail(err, BITNET_ERR_OUT_OF_MEMORY, "out of memory");
    s->p = *p;
    if (p->repeat_last_n > 0) {
        s->history = calloc((size_t)p->repeat_last_n, sizeof *s->history);
        s->sorted = calloc((size_t)p->repeat_last_n, sizeof *s->sorted);
        if (!s->history || !s->sorted) {
            bn_sampler_destroy(s);
            return bn_fail(err, BITNET_ERR_OUT_OF_MEMORY, "out of memory");
        }
    }
    bn_sampler_reset(s, p->seed);
    *out = s;
    return BITNET_OK;
}

void bn_sampler_destroy(struct bitnet_sampler *s) {
    if (!s) return;
    free(s->history);
    free(s->sorted);
    free(s);
}

void bn_sampler_reset(struct bitnet_sampler *s, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) s->rng[i] = splitmix64(&x);
    s->history_len = s->history_pos = 0;
}

void bn_sampler_accept(struct bitnet_sampler *s, int32_t token) {
    if (s->p.repeat_last_n <= 0) return;
    s->history[s->history_pos] = token;
    s->history_pos = (s->history_pos + 1) % s->p.repeat_last_n;
    if (s->history_len < s->p.repeat_last_n) s->history_len++;
}

/* ---- sampling ------------------------------------------------------------------------ */

int32_t bn_argmax(const float *v, int32_t n) {
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return best;
}

typedef struct cand {
    float v;
    int32_t id;
} cand;

static int cmp_cand_desc(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->v != y->v) return x->v < y->v ? 1 : -1;
    return x->id - y->id;
}

static int cmp_i32(const void *a, const void *b) {
    const int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* The penalties on the tokens of the window, each distinct token once (as
 * llama.cpp's penalties sampler): repeat_penalty divides a positive logit
 * and multiplies a negative one; then k occurrences subtract
 * k * frequency_penalty + presence_penalty. Sorting a copy of the window
 * costs O(h log h) per token instead of O(n_vocab * h). */
static void apply_penalties(struct bitnet_sampler *s, cand *c, int32_t n_vocab) {
    const bitnet_sampler_params *p = &s->p;
    if (!s->history_len ||
        (p->repeat_penalty == 1.0f && p->frequency_penalty == 0.0f && p->presence_penalty == 0.0f))
        return;
    memcpy(s->sorted, s->history, (size_t)s->history_len * sizeof *s->sorted);
    qsort(s->sorted, (size_t)s->history_len, sizeof *s->sorted, cmp_i32);
    for (int32_t i = 0; i < s->history_len;) {
        const int32_t id = s->sorted[i];
        int32_t k = 1;
        while (i + k < s->history_len && s->sorted[i + k] == id) k++;
        i += k;
        if (id < 0 || id >= n_vocab) continue; /* accepted by the caller, but not a token of these logits */
        float v = c[id].v;
        if (p->repeat_penalty != 1.0f) v = v > 0 ? v / p->repeat_penalty : v * p->repeat_penalty;
        v -= (float)k * p->frequency_penalty + p->presence_penalty;
        c[id].v = v;
    }
}

bitnet_status bn_sampler_sample(struct bitnet_sampler *s, const float *logits, int32_t n_vocab, int32_t *out,
                                bn_error *err) {
    if (!logits || n_vocab <= 0) return bn_fail(err, BITNET_ERR_INVALID_ARGUMENT, "no logits to sample from");
    cand *c = malloc((size_t)n_vocab * sizeof *c);
    if (!c) return bn_fail(err, BITNET_ERR_OUT_OF_MEMORY, "out of memory");
    for (int32_t i = 0; i < n_vocab; i++) {
        float v = logits[i];
        if (v != v) v = -INFINITY; /* NaN never wins */
        c[i].v = v;
        c[i].id = i;
    }
    apply_penalties(s, c, n_vocab);
    if (s->p.temperature <= 0.0f) {
        int32_t best = 0;
        for (int32_t i = 1; i < n_vocab; i++)
            if (c[i].v > c[best].v) best = i;
        *out = best;
        free(c);
        return BITNET_OK;
    }
    qsort(c, (size_t)n_vocab, sizeof *c, cmp_cand_desc);
    int32_t n = n_vocab;
    if (s->p.top_k > 0 && s->p.top_k < n) n = s->p.top_k;

    /* Probabilities at temperature 1 for top-p / min-p (as llama.cpp filters before temperature). */
    double sum = 0.0;
    for (int32_t i = 0; i < n; i++) sum += exp((double)c[i].v - c[0].v);
    if (s->p.top_p < 1.0f) {
        double acc = 0.0;
        int32_t keep = n;
        for (int32_t i = 0; i < n; i++) {
            acc += exp((double)c[i].v - c[0].v) / sum;
            if (acc >= s->p.top_p) {
                keep = i + 1;
                break;
            }
        }
        n = keep;
    }
    if (s->p.min_p > 0.0f) {
        /* keep tokens with p >= min_p * p_max, i.e. logit >= max + log(min_p) */
        const double cut = c[0].v + log((double)s->p.min_p);
        int32_t keep = 1;
        while (keep < n && c[keep].v >= cut) keep++;
        n = keep;
    }
    double total = 0.0;
    for (int32_t i = 0; i < n; i++) total += exp(((double)c[i].v - c[0].v) / s->p.temperature);
    double r = next_unit(s->rng) * total, acc = 0.0;
    int32_t pick = c[n - 1].id;
    for (int32_t i = 0; i < n; i++) {
        acc += exp(((double)c[i].v - c[0].v) / s->p.temperature);
        if (r < acc) {
            pick = c[i].id;
            break;
        }
    }
    *out = pick;
    free(c);
    return BITNET_OK;
}
