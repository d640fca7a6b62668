/* simple.c: load a GGUF model and print a completion with the four-call API.
 *
 *   simple MODEL.gguf "prompt" [max_tokens]
 *
 * Build against an installed libbitnet:
 *   cc simple.c $(pkg-config --cflags --libs bitnet) -o simple */
#include <stdio.h>
#include <stdlib.h>

#include <bitnet.h>

int main(int argc, char **argv) {
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: %s MODEL.gguf \"prompt\" [max_tokens]\n", argv[0]);
        return 2;
    }
    int max_tokens = argc == 4 ? atoi(argv[3]) : 64;

    BitNetModel *model = bitnet_load_model(argv[1]);
    if (!model) {
        fprintf(stderr, "error: %s\n", bitnet_last_error());
        return 1;
    }
    char *text = bitnet_generate(model, argv[2], max_tokens);
    if (!text) {
        fprintf(stderr, "error: %s\n", bitnet_last_error());
        bitnet_free_model(model);
        return 1;
    }
    printf("%s%s\n", argv[2], text);
    bitnet_free_string(text);
    bitnet_free_model(model);
    return 0;
}
