/* generate_ids.c: greedy generation from token ids with the explicit API
 * (model, context, sampler). Needs no tokenizer, so it runs on any model.
 *
 *   generate_ids MODEL.gguf N_NEW ID [ID ...]
 *
 * Prints the new token ids on one line, separated by spaces. */
#include <stdio.h>
#include <stdlib.h>

#include <bitnet.h>

static int fail(const char *what, bitnet_status st, const char *msg) {
    fprintf(stderr, "error: %s: %s: %s\n", what, bitnet_status_str(st), msg);
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL.gguf N_NEW ID [ID ...]\n", argv[0]);
        return 2;
    }
    int32_t n_new = (int32_t)atoi(argv[2]);
    int32_t n_prompt = (int32_t)(argc - 3);
    if (n_new < 1) {
        fprintf(stderr, "error: N_NEW must be at least 1\n");
        return 2;
    }
    int32_t *prompt = malloc(sizeof(int32_t) * (size_t)n_prompt);
    int32_t *out = malloc(sizeof(int32_t) * (size_t)n_new);
    if (!prompt || !out) {
        fprintf(stderr, "error: out of memory\n");
        return 1;
    }
    for (int32_t i = 0; i < n_prompt; i++) prompt[i] = (int32_t)atoi(argv[3 + i]);

    int rc = 1;
    bitnet_model *model = NULL;
    bitnet_context *ctx = NULL;
    bitnet_sampler *sampler = NULL;
    bitnet_status st = bitnet_model_load(argv[1], NULL, &model);
    if (st != BITNET_OK) {
        rc = fail("load", st, bitnet_last_error());
        goto done;
    }
    bitnet_context_params cparams;
    bitnet_context_params_init(&cparams);
    cparams.n_threads = 1;
    st = bitnet_context_create(model, &cparams, &ctx);
    if (st != BITNET_OK) {
        rc = fail("context", st, bitnet_last_error());
        goto done;
    }
    bitnet_sampler_params sparams;
    bitnet_sampler_params_init(&sparams);
    sparams.temperature = 0.0f; /* greedy */
    st = bitnet_sampler_create(&sparams, &sampler);
    if (st != BITNET_OK) {
        rc = fail("sampler", st, bitnet_last_error());
        goto done;
    }
    int32_t n_out = 0;
    st = bitnet_generate_tokens(ctx, sampler, prompt, n_prompt, n_new, BITNET_GENERATE_IGNORE_EOS, out, &n_out);
    if (st != BITNET_OK) {
        rc = fail("generate", st, bitnet_context_last_error(ctx));
        goto done;
    }
    for (int32_t i = 0; i < n_out; i++) printf(i ? " %d" : "%d", (int)out[i]);
    printf("\n");
    rc = 0;
done:
    bitnet_sampler_free(sampler);
    bitnet_context_free(ctx);
    bitnet_model_free(model);
    free(prompt);
    free(out);
    return rc;
}
