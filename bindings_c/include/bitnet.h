/* bitnet.h: the public C API of libbitnet, an inference engine for BitNet
 * b1.58 (ternary-weight) language models stored as GGUF files.
 *
 * Read it top to bottom:
 *   1. version
 *   2. status codes and error messages
 *   3. the simple API: four calls load a model and generate text
 *   4. models, contexts and samplers: the explicit API
 *   5. tokenizer
 *
 * Conventions
 * - Every fallible call returns a bitnet_status (0 = OK, negative = error).
 *   The message of the last failure is available from bitnet_last_error()
 *   (per thread) and, for calls on a context, bitnet_context_last_error().
 * - Objects are opaque and come in create/free pairs. free(NULL) is a no-op.
 * - Params structs begin with `struct_size`: fill them with the matching
 *   *_params_init() call, which sets defaults and struct_size, then change
 *   the fields you care about. New fields are only ever appended, so a
 *   program built against an older header keeps working with a newer library.
 * - A model is read-only once loaded: several contexts (and threads) may
 *   share one model. A context is used by one thread at a time (all its
 *   sequences included: a server batches them into bitnet_decode_batch calls
 *   from one thread). A call that changes a context (decode, decode_batch,
 *   seq_reset, generate_tokens, generate_tokens_cb) while another is inside
 *   it, from a second thread or from a token callback, fails with
 *   BITNET_ERR_INVALID_ARGUMENT and "in use" in bitnet_last_error() instead
 *   of racing on the KV cache.
 * - The library never aborts or exits the host process.
 *
 * This header is kept free of macros in declarations so that cffi's cdef()
 * can parse the part between the BITNET_CDEF_BEGIN/END markers. */
#ifndef BITNET_H
#define BITNET_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32) && defined(BITNET_SHARED)
#  if defined(BITNET_BUILD)
#    define BITNET_API __declspec(dllexport)
#  else
#    define BITNET_API __declspec(dllimport)
#  endif
#elif defined(__GNUC__) && defined(BITNET_BUILD)
#  define BITNET_API __attribute__((visibility("default")))
#else
#  define BITNET_API
#endif

#define BITNET_VERSION_MAJOR 0
#define BITNET_VERSION_MINOR 1
#define BITNET_VERSION_PATCH 0
#define BITNET_VERSION_STRING "0.1.0"
#define BITNET_VERSION_NUMBER (BITNET_VERSION_MAJOR * 10000 + BITNET_VERSION_MINOR * 100 + BITNET_VERSION_PATCH)

#ifdef __cplusplus
extern "C" {
#endif

/* BITNET_CDEF_BEGIN */

/* ---- 1. version ------------------------------------------------------ */

/* "MAJOR.MINOR.PATCH" of the library actually linked. */
BITNET_API const char *bitnet_version(void);
/* MAJOR*10000 + MINOR*100 + PATCH of the library actually linked. */
BITNET_API int bitnet_version_number(void);

/* ---- 2. status codes and errors --------------------------------------- */

typedef enum bitnet_status {
    BITNET_OK = 0,
    BITNET_ERR_INVALID_ARGUMENT = -1, /* a NULL handle, a bad size, a token id out of range */
    BITNET_ERR_IO = -2,               /* the file cannot be opened or read */
    BITNET_ERR_FORMAT = -3,           /* the file is malformed (truncated, inconsistent, hostile) */
    BITNET_ERR_UNSUPPORTED = -4,      /* a well-formed file using something this build does not run */
    BITNET_ERR_OUT_OF_MEMORY = -5,
    BITNET_ERR_CONTEXT_FULL = -6,     /* more tokens than the context holds */
    BITNET_ERR_BUFFER_TOO_SMALL = -7, /* the *_needed output says how much is needed */
    BITNET_ERR_NOT_FOUND = -8,        /* no such file, key or token */
    BITNET_ERR_INTERNAL = -9,
    BITNET_ERR_CANCELLED = -10        /* a callback asked to stop (e.g. a load's progress callback) */
} bitnet_status;

/* A static English name for a status ("format error", ...). Never NULL. */
BITNET_API const char *bitnet_status_str(bitnet_status status);

/* The message of the most recent failed call made by this thread, e.g.
 * "model.gguf: tensor blk.3.ffn_down.weight: data (offset 1024, 4096 bytes)
 * ends past the end of the file". "" if none. Valid until the thread's next
 * failing call. */
BITNET_API const char *bitnet_last_error(void);

/* ---- 3. the simple API ------------------------------------------------- */

typedef struct BitNetModel BitNetModel;

/* Load a GGUF model. NULL on failure; the reason is in bitnet_last_error(). */
BITNET_API BitNetModel *bitnet_load_model(const char *path);

/* Generate up to max_tokens tokens after `prompt` (greedy, BOS added when the
 * model asks for it) and return the new text: NUL-terminated valid UTF-8
 * (bytes that form no valid sequence become U+FFFD), to be freed with
 * bitnet_free_string(). NULL on failure (see bitnet_last_error()). */
BITNET_API char *bitnet_generate(BitNetModel *model, const char *prompt, int max_tokens);

BITNET_API void bitnet_free_string(char *s);
BITNET_API void bitnet_free_model(BitNetModel *model);

/* ---- 4. models, contexts, samplers -------------------------------------- */

typedef struct bitnet_model bitnet_model;
typedef struct bitnet_context bitnet_context;
typedef struct bitnet_sampler bitnet_sampler;

/* Receives a model load's progress: the fraction done, 0 to 1. Return 0 to go
 * on, nonzero to cancel the load. */
typedef int (*bitnet_progress_callback)(float progress, void *user_data);

typedef struct bitnet_model_params {
    size_t struct_size; /* sizeof(bitnet_model_params), set by bitnet_model_params_init */
    int use_mmap;       /* 1 (default): map the file read-only; 0: read it into memory */
    /* Kernel variant: NULL (default) takes the BITNET_KERNEL environment
     * variable if set, else "auto": the fastest variant this CPU runs that
     * has been tested on real hardware (AVX-512 only when named); or one of
     * "scalar", "avx2", "avx512", "neon", "wasm_simd". A variant this CPU
     * cannot run is an error (BITNET_ERR_UNSUPPORTED), never a crash. */
    const char *kernel;
    /* Called while the file is read (use_mmap = 0, or no mmap on this
     * platform: about every 1%, with progress_user_data) and once with 1.0
     * when the model is ready (that call cannot cancel). A nonzero return
     * before then cancels the load, which fails with BITNET_ERR_CANCELLED and
     * frees everything. A mapped file is not read at load time, so with
     * use_mmap = 1 only the final call comes. NULL (default): no calls. */
    bitnet_progress_callback progress_callback;
    void *progress_user_data;
} bitnet_model_params;

BITNET_API void bitnet_model_params_init(bitnet_model_params *params);

/* Load a model. params may be NULL (defaults). On success *out owns the model. */
BITNET_API bitnet_status bitnet_model_load(const char *path, const bitnet_model_params *params,
                                           bitnet_model **out);
/* Load a model from a GGUF image in memory. The bytes are copied only when
 * they must be; the caller may free `data` after the call returns. */
BITNET_API bitnet_status bitnet_model_load_from_memory(const void *data, size_t size,
                                                       const bitnet_model_params *params,
                                                       bitnet_model **out);
BITNET_API void bitnet_model_free(bitnet_model *model);

/* general.architecture, e.g. "bitnet-b1.58". */
BITNET_API const char *bitnet_model_arch(const bitnet_model *model);
BITNET_API int32_t bitnet_model_n_vocab(const bitnet_model *model);
BITNET_API int32_t bitnet_model_n_ctx_train(const bitnet_model *model);
BITNET_API int32_t bitnet_model_n_embd(const bitnet_model *model);
BITNET_API int32_t bitnet_model_n_layer(const bitnet_model *model);
/* Special token ids from the GGUF, -1 when absent. EOT (end of turn) is
 * tokenizer.ggml.eot_token_id, or else the token whose text is an end-of-turn
 * marker (<|eot_id|>, <|im_end|>, <|end|>, <end_of_turn>, <|endoftext|>, ...)
 * as bitnet_tokenizer_eot() finds it. */
BITNET_API int32_t bitnet_model_token_bos(const bitnet_model *model);
BITNET_API int32_t bitnet_model_token_eos(const bitnet_model *model);
BITNET_API int32_t bitnet_model_token_eot(const bitnet_model *model);
/* Human-readable one-line description: arch, size, formats. */
BITNET_API const char *bitnet_model_desc(const bitnet_model *model);
/* The kernel variant the model runs: "scalar", "avx2", ... */
BITNET_API const char *bitnet_model_kernel(const bitnet_model *model);

/* What this build and CPU offer, one line, e.g.
 * "kernels: scalar avx2 (default avx2); cpu: avx2 fma f16c".
 * Writes at most cap bytes including the NUL; returns the length the full
 * line needs (without the NUL), as snprintf does. */
BITNET_API int32_t bitnet_system_info(char *buf, size_t cap);

/* GGUF metadata: `count` key/value pairs. Each value is rendered as JSON
 * (numbers, strings, booleans, arrays) into buf; *needed receives the bytes
 * required including the NUL, so a caller may first pass cap = 0. */
BITNET_API int32_t bitnet_model_meta_count(const bitnet_model *model);
BITNET_API const char *bitnet_model_meta_key(const bitnet_model *model, int32_t index);
BITNET_API bitnet_status bitnet_model_meta_json(const bitnet_model *model, int32_t index,
                                                char *buf, size_t cap, size_t *needed);

typedef struct bitnet_context_params {
    size_t struct_size; /* sizeof(bitnet_context_params), set by bitnet_context_params_init */
    int32_t n_ctx;      /* tokens the KV cache holds; 0 = min(model's context_length, 4096) */
    int32_t n_threads;  /* 0 = all cores */
    int32_t n_batch;    /* tokens (of a long prompt, or bitnet_decode_batch items) per forward step; 0 = 512 */
    int32_t kv_type;    /* BITNET_KV_F16 (default, as llama.cpp) or BITNET_KV_F32 */
    /* Sequences the context holds (for bitnet_decode_batch); 0 = 1, at most
     * 4096. Each has its own KV cache of n_ctx tokens, so the cache takes
     * n_seq_max times the memory of a one-sequence context. */
    int32_t n_seq_max;
} bitnet_context_params;

/* KV cache element types for bitnet_context_params.kv_type. */
#define BITNET_KV_F16 0
#define BITNET_KV_F32 1

BITNET_API void bitnet_context_params_init(bitnet_context_params *params);

/* Create a context (KV cache + scratch) over a model. The model must outlive
 * the context. params may be NULL. A KV cache larger than the memory this
 * process may use (physical memory, or the cgroup limit of a container) is
 * refused with BITNET_ERR_OUT_OF_MEMORY and a message giving the n_ctx that
 * would fit, before anything is allocated. */
BITNET_API bitnet_status bitnet_context_create(bitnet_model *model, const bitnet_context_params *params,
                                               bitnet_context **out);
BITNET_API void bitnet_context_free(bitnet_context *ctx);

/* The message of the last failed call on this context. */
BITNET_API const char *bitnet_context_last_error(const bitnet_context *ctx);
BITNET_API int32_t bitnet_context_n_ctx(const bitnet_context *ctx);
/* Threads the context computes on, the caller's included (n_threads as resolved: 0 gives every core). */
BITNET_API int32_t bitnet_context_n_threads(const bitnet_context *ctx);
/* Tokens currently held in the KV cache of sequence 0. */
BITNET_API int32_t bitnet_context_n_past(const bitnet_context *ctx);
/* Forget every sequence (empty KV caches). */
BITNET_API void bitnet_context_reset(bitnet_context *ctx);

/* Run the model over n_tokens tokens placed after the ones already in
 * sequence 0. Afterwards bitnet_context_logits() holds the logits of the last
 * token. If logits_all is not NULL it receives n_tokens * n_vocab floats,
 * row i being the logits after token i. On failure the context keeps the
 * sequence it had before the call. */
BITNET_API bitnet_status bitnet_decode(bitnet_context *ctx, const int32_t *tokens, int32_t n_tokens,
                                       float *logits_all);

/* Logits (n_vocab floats) after the last decoded token of sequence 0; NULL
 * before any, after a reset of sequence 0, and after a bitnet_decode_batch
 * whose last item for sequence 0 did not ask for logits. */
BITNET_API const float *bitnet_context_logits(const bitnet_context *ctx);

/* Sequences (bitnet_context_params.n_seq_max) this context holds. */
BITNET_API int32_t bitnet_context_n_seq_max(const bitnet_context *ctx);
/* Tokens held by sequence seq_id; -1 for an id out of range or a NULL ctx. */
BITNET_API int32_t bitnet_seq_length(const bitnet_context *ctx, int32_t seq_id);
/* Empty sequence seq_id so the slot can start a new one; the others are
 * untouched. BITNET_ERR_INVALID_ARGUMENT for an id out of range. */
BITNET_API bitnet_status bitnet_seq_reset(bitnet_context *ctx, int32_t seq_id);

/* Append tokens[i] to sequence seq_ids[i], for i < n_tokens, in one forward
 * pass per n_batch items: the weights are read once for all of them, and
 * each token attends only to its own sequence. Items of one sequence are
 * taken in array order, so a batch can mix one sequence's whole prompt with
 * other sequences' single decode tokens. The logits of a token are bit for
 * bit those bitnet_decode gives for the same sequence in a context of its own.
 * want_logits[i] != 0 asks for item i's logits (NULL: every item); logits_out
 * receives one row of n_vocab floats per item asked for, in item order, and
 * may be NULL only when none is. All arrays stay the caller's. On failure (a
 * sequence id out of range, a bad token id, a sequence that would exceed
 * n_ctx) the message names the item, and every sequence is as it was. */
BITNET_API bitnet_status bitnet_decode_batch(bitnet_context *ctx, const int32_t *tokens, const int32_t *seq_ids,
                                             const int8_t *want_logits, int32_t n_tokens, float *logits_out);

typedef struct bitnet_sampler_params {
    size_t struct_size;   /* sizeof(bitnet_sampler_params), set by bitnet_sampler_params_init */
    float temperature;    /* <= 0: greedy (argmax). Default 0.8 */
    int32_t top_k;        /* <= 0: off. Default 40 */
    float top_p;          /* >= 1: off. Default 0.95 */
    float min_p;          /* <= 0: off. Default 0.05 */
    float repeat_penalty; /* 1: off. Default 1.0 */
    int32_t repeat_last_n;/* window of past tokens the penalties look at. Default 64 */
    uint64_t seed;        /* RNG seed. Default 0xB17E7 */
    /* OpenAI's penalties, as llama.cpp applies them after repeat_penalty: a
     * token seen k > 0 times in the window loses k * frequency_penalty +
     * presence_penalty from its logit. 0: off (the defaults). */
    float frequency_penalty;
    float presence_penalty;
} bitnet_sampler_params;

BITNET_API void bitnet_sampler_params_init(bitnet_sampler_params *params);
BITNET_API bitnet_status bitnet_sampler_create(const bitnet_sampler_params *params, bitnet_sampler **out);
BITNET_API void bitnet_sampler_free(bitnet_sampler *sampler);
/* Forget accepted tokens and reseed. */
BITNET_API void bitnet_sampler_reset(bitnet_sampler *sampler, uint64_t seed);
/* Record a token as part of the sequence (for the repetition penalty). */
BITNET_API void bitnet_sampler_accept(bitnet_sampler *sampler, int32_t token);
/* Pick a token from n_vocab logits (the array is not modified). */
BITNET_API bitnet_status bitnet_sampler_sample(bitnet_sampler *sampler, const float *logits, int32_t n_vocab,
                                               int32_t *token_out);

/* Flags for bitnet_generate_tokens. */
#define BITNET_GENERATE_IGNORE_EOS 1

/* Decode the prompt, then sample up to max_tokens new tokens, each fed back
 * through the context, stopping after EOS/EOT unless BITNET_GENERATE_IGNORE_EOS
 * is set (the EOS token itself is returned). The new tokens go to out
 * (capacity max_tokens), their count to *n_out. The sampler accepts the
 * prompt and every new token. The whole loop runs in C. */
BITNET_API bitnet_status bitnet_generate_tokens(bitnet_context *ctx, bitnet_sampler *sampler,
                                                const int32_t *prompt, int32_t n_prompt, int32_t max_tokens,
                                                int32_t flags, int32_t *out, int32_t *n_out);

/* Receives each new token of bitnet_generate_tokens_cb, in order, right after
 * it is sampled. Return 0 to go on, nonzero to stop generation there. */
typedef int (*bitnet_token_callback)(void *user_data, int32_t token);

/* bitnet_generate_tokens for streaming: the same loop (prompt, sampler,
 * EOS/EOT, flags, context full), but each new token is handed to
 * callback(user_data, token) as soon as it is sampled instead of collected,
 * so a caller can show text as it comes and stop early (e.g. on a stop
 * string) by returning nonzero; the call then returns BITNET_OK at once.
 * The callback runs on the calling thread, inside this call: it must not use
 * ctx or sampler. user_data is passed through untouched and stays the
 * caller's. The last token handed out is never decoded into the context (as
 * with bitnet_generate_tokens). On failure (the prompt does not fit, invalid
 * ids, a NULL callback) the status says why; tokens already handed out stay
 * handed out. */
BITNET_API bitnet_status bitnet_generate_tokens_cb(bitnet_context *ctx, bitnet_sampler *sampler,
                                                   const int32_t *prompt, int32_t n_prompt, int32_t max_tokens,
                                                   int32_t flags, bitnet_token_callback callback, void *user_data);

/* ---- 5. tokenizer ------------------------------------------------------ */

typedef struct bitnet_tokenizer bitnet_tokenizer;

/* Load only the tokenizer of a GGUF (vocab-only files work). */
BITNET_API bitnet_status bitnet_tokenizer_load(const char *path, bitnet_tokenizer **out);
BITNET_API void bitnet_tokenizer_free(bitnet_tokenizer *tok);
/* The tokenizer of a loaded model (owned by the model; do not free). NULL if
 * the GGUF has none. */
BITNET_API const bitnet_tokenizer *bitnet_model_tokenizer(const bitnet_model *model);
/* The message of the last failed call on this tokenizer. */
BITNET_API const char *bitnet_tokenizer_last_error(const bitnet_tokenizer *tok);

BITNET_API int32_t bitnet_tokenizer_n_vocab(const bitnet_tokenizer *tok);
BITNET_API int32_t bitnet_tokenizer_bos(const bitnet_tokenizer *tok);
BITNET_API int32_t bitnet_tokenizer_eos(const bitnet_tokenizer *tok);
BITNET_API int32_t bitnet_tokenizer_eot(const bitnet_tokenizer *tok);
/* 1 when the GGUF asks for BOS at the start of a prompt. */
BITNET_API int bitnet_tokenizer_add_bos(const bitnet_tokenizer *tok);

/* Tokenize text_len bytes of UTF-8. Up to cap ids go to out; *n_out receives
 * the count needed (so pass cap = 0 to size a buffer). add_bos: prepend BOS.
 * special: parse control tokens like "<|eot_id|>" as single tokens.
 * Invalid UTF-8 gives BITNET_ERR_INVALID_ARGUMENT with the byte offset. */
BITNET_API bitnet_status bitnet_tokenize(const bitnet_tokenizer *tok, const char *text, size_t text_len,
                                         int add_bos, int special, int32_t *out, int32_t cap,
                                         int32_t *n_out);

/* Turn ids back into UTF-8 text (exact inverse where the vocabulary allows).
 * Up to cap bytes go to buf (not NUL-terminated); *needed receives the bytes
 * required. */
BITNET_API bitnet_status bitnet_detokenize(const bitnet_tokenizer *tok, const int32_t *ids, int32_t n_ids,
                                           char *buf, size_t cap, size_t *needed);

/* The raw bytes one token stands for (byte tokens give their byte; SentencePiece
 * "▁" becomes a space). May be an incomplete UTF-8 sequence: streaming callers
 * keep bytes until a sequence completes. */
BITNET_API bitnet_status bitnet_token_to_piece(const bitnet_tokenizer *tok, int32_t id, char *buf, size_t cap,
                                               size_t *needed);

/* GGUF token types (tokenizer.ggml.token_type). */
typedef enum bitnet_token_type {
    BITNET_TOKEN_UNDEFINED = 0,
    BITNET_TOKEN_NORMAL = 1,
    BITNET_TOKEN_UNKNOWN = 2,
    BITNET_TOKEN_CONTROL = 3, /* BOS, EOS, <|eot_id|>, ...: generated text usually hides them */
    BITNET_TOKEN_USER_DEFINED = 4,
    BITNET_TOKEN_UNUSED = 5,
    BITNET_TOKEN_BYTE = 6
} bitnet_token_type;

/* The type of token id (a bitnet_token_type value), or -1 when id is out of
 * range or tok is NULL. */
BITNET_API int bitnet_token_type_of(const bitnet_tokenizer *tok, int32_t id);

/* BITNET_CDEF_END */

#ifdef __cplusplus
}
#endif

#endif /* BITNET_H */
