"""``bitnet perplexity MODEL FILE``: the perplexity of a text file, computed as
llama.cpp's ``llama-perplexity`` does: chunks of N tokens (``-c``, default
512), BOS as each chunk's first token when the model asks for BOS, the second
half of each chunk scored. The file needs at least 2*N tokens.

Prints ``PPL = ...`` and bits per byte (which, unlike perplexity, compares
models with different vocabularies), or one JSON object with ``--json`` (no progress bar then).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from typing import Any

from ._cli_common import (
    add_model_argument,
    add_model_options,
    fail,
    open_model,
    require_after_model,
    resolve_model_path,
)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "perplexity",
        help="measure the perplexity of a text file (like llama-perplexity)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_argument(p)
    p.add_argument("file", metavar="FILE", help="a UTF-8 text file ('-': stdin)")
    add_model_options(p, n_ctx_help="tokens per chunk (default: 512, or the model's context if smaller)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


def run(args: argparse.Namespace) -> int:
    require_after_model(args, "file", "FILE")
    from .perplexity import DEFAULT_N_CTX, compute_perplexity

    if args.file == "-":
        data = sys.stdin.buffer.read()
    else:
        with open(args.file, "rb") as f:
            data = f.read()
    # The context holds exactly one chunk: 512 tokens unless -c, fewer when the
    # model was trained on a shorter context.
    n_ctx = args.n_ctx or min(DEFAULT_N_CTX, _trained_context(resolve_model_path(args.model)))
    with open_model(args, n_ctx=n_ctx) as model:
        try:
            result = compute_perplexity(model, data, n_ctx, progress=not (args.json or args.quiet))
        except ValueError as exc:
            return fail(str(exc))
    if args.json:
        print(json.dumps({"model": args.model, "file": args.file, **asdict(result)}))
    else:
        print(f"PPL = {result.ppl:.4f} ({result.n_chunks} chunks of {result.n_ctx} tokens, "
              f"{result.n_scored} tokens scored; {result.bits_per_byte:.4f} bits per byte)")
    return 0


def _trained_context(path: str) -> int:
    """``<arch>.context_length`` from the GGUF header (a large number when absent
    or unreadable: the engine reports a bad file when it opens it)."""
    from ._gguf_index import read_gguf

    try:
        meta = read_gguf(path, arrays=False).metadata
    except (OSError, ValueError):
        return 1 << 30
    value = meta.get(f"{meta.get('general.architecture')}.context_length")
    return value if isinstance(value, int) and value > 0 else 1 << 30
