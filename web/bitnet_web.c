/* Small C helpers for the WebAssembly build (web/build.py links this file
 * into libbitnet.wasm next to the engine). They exist so JavaScript never
 * has to know the layout of the public parameter structs (struct_size,
 * padding before the uint64_t seed, ...): each takes plain scalars, fills
 * the struct with the *_params_init defaults plus the given values, and
 * calls the public API (bindings_c/include/bitnet.h). On failure they return
 * NULL and bitnet_last_error() says why. Only the public API is used. */
#include <emscripten.h>
#include <stddef.h>
#include <stdint.h>

#include "bitnet.h"

/* Load a GGUF image from wasm memory (copied by the engine: the caller may
 * free `data` afterwards). kernel: NULL or "" = auto (wasm_simd when the
 * build has SIMD128, else scalar), or "scalar" / "wasm_simd". */
EMSCRIPTEN_KEEPALIVE bitnet_model *bnw_model_load(const void *data, size_t size, const char *kernel) {
    bitnet_model_params p;
    bitnet_model_params_init(&p);
    p.kernel = (kernel && *kernel) ? kernel : "auto";
    bitnet_model *m = NULL;
    if (bitnet_model_load_from_memory(data, size, &p, &m) != BITNET_OK) return NULL;
    return m;
}

/* A context on one thread (the wasm build has no threads). n_ctx, n_batch:
 * 0 = the engine's defaults. kv_f32: nonzero for a float32 KV cache. */
EMSCRIPTEN_KEEPALIVE bitnet_context *bnw_context_create(bitnet_model *model, int32_t n_ctx, int32_t n_batch,
                                                        int32_t kv_f32) {
    bitnet_context_params p;
    bitnet_context_params_init(&p);
    p.n_ctx = n_ctx;
    p.n_threads = 1;
    p.n_batch = n_batch;
    p.kv_type = kv_f32 ? BITNET_KV_F32 : BITNET_KV_F16;
    bitnet_context *ctx = NULL;
    if (bitnet_context_create(model, &p, &ctx) != BITNET_OK) return NULL;
    return ctx;
}

/* A sampler; the 64-bit seed comes as two halves (no BigInt needed). */
EMSCRIPTEN_KEEPALIVE bitnet_sampler *bnw_sampler_create(float temperature, int32_t top_k, float top_p, float min_p,
                                                        float repeat_penalty, int32_t repeat_last_n,
                                                        uint32_t seed_lo, uint32_t seed_hi,
                                                        float frequency_penalty, float presence_penalty) {
    bitnet_sampler_params p;
    bitnet_sampler_params_init(&p);
    p.temperature = temperature;
    p.top_k = top_k;
    p.top_p = top_p;
    p.min_p = min_p;
    p.repeat_penalty = repeat_penalty;
    p.repeat_last_n = repeat_last_n;
    p.seed = ((uint64_t)seed_hi << 32) | seed_lo;
    p.frequency_penalty = frequency_penalty;
    p.presence_penalty = presence_penalty;
    bitnet_sampler *s = NULL;
    if (bitnet_sampler_create(&p, &s) != BITNET_OK) return NULL;
    return s;
}

/* A context on n_threads threads (the pthreads build, libbitnet-mt; on the
 * single-thread builds only 1 works). The threads come from emscripten's
 * preloaded worker pool: asking for more than the pool holds gives fewer
 * (bnw_context_n_threads says how many). */
EMSCRIPTEN_KEEPALIVE bitnet_context *bnw_context_create_mt(bitnet_model *model, int32_t n_ctx, int32_t n_batch,
                                                           int32_t kv_f32, int32_t n_threads) {
    bitnet_context_params p;
    bitnet_context_params_init(&p);
    p.n_ctx = n_ctx;
    p.n_threads = n_threads > 0 ? n_threads : 1;
    p.n_batch = n_batch;
    p.kv_type = kv_f32 ? BITNET_KV_F32 : BITNET_KV_F16;
    bitnet_context *ctx = NULL;
    if (bitnet_context_create(model, &p, &ctx) != BITNET_OK) return NULL;
    return ctx;
}

/* The threads a context really runs on, the caller's included. */
EMSCRIPTEN_KEEPALIVE int32_t bnw_context_n_threads(const bitnet_context *ctx) { return bitnet_context_n_threads(ctx); }
