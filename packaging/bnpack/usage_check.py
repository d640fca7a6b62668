"""What every package's smoke test runs: the prompt, a C program over the installed library, and
the reference text the Python binding generates from the same default model.

Greedy decoding gives the same bits on every kernel, compiler and OS, so a package's bitnet-cli
must print exactly `reference_text()`: the strongest check a package can get without a model
download.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile

from .common import ReleaseError

PROMPT = "And God said"
N_TOKENS = 16

# A C program for the install checks: the header and the library it links agree on the version,
# and the four-call API generates text with the packaged default model (argv[1]) from argv[2].
USE_C = r"""
#include <stdio.h>
#include <string.h>
#include <bitnet.h>

int main(int argc, char **argv) {
    if (argc != 3) return 2;
    printf("%s\n", bitnet_version());
    if (strcmp(bitnet_version(), BITNET_VERSION_STRING) != 0) return 3;
    BitNetModel *model = bitnet_load_model(argv[1]);
    if (!model) { fprintf(stderr, "error: %s\n", bitnet_last_error()); return 1; }
    char *text = bitnet_generate(model, argv[2], 8);
    if (!text) { fprintf(stderr, "error: %s\n", bitnet_last_error()); bitnet_free_model(model); return 1; }
    printf("%s%s\n", argv[2], text);
    bitnet_free_string(text);
    bitnet_free_model(model);
    return 0;
}
"""


def reference_text(prompt: str = PROMPT, n_tokens: int = N_TOKENS) -> str:
    """What the Python binding generates greedily from the default model (run in a subprocess from
    a neutral folder, so it is the installed `bitnet` of this interpreter)."""
    code = ("import bitnet, json; "
            f"print(json.dumps(bitnet.Model().generate({prompt!r}, max_tokens={n_tokens}, temperature=0)))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tempfile.gettempdir())
    if proc.returncode != 0:
        raise ReleaseError(f"the Python binding (the reference for the greedy check) failed under {sys.executable}: "
                           f"{proc.stderr.strip()[-2000:]}\n(pip install . into this interpreter)")
    return json.loads(proc.stdout)
