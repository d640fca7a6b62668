"""``bitnet run MODEL PROMPT``: complete a prompt, streaming the new text to
stdout as it is generated; the speed goes to stderr at the end (-q: not).

PROMPT ``-`` reads the prompt from stdin. Sampling defaults are llama.cpp's
(temperature 0.8, a random seed); ``--temperature 0`` is greedy.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ._cli_common import (
    add_model_argument,
    add_model_options,
    add_sampling_options,
    fail,
    open_model,
    require_after_model,
    sampling_kwargs,
)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "run",
        help="complete a prompt, streaming the text",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_argument(p)
    p.add_argument("prompt", metavar="PROMPT", help="the text to continue ('-': read it from stdin)")
    add_sampling_options(p, max_tokens_default=256)
    p.add_argument("--ignore-eos", action="store_true", help="go on past end-of-text tokens")
    add_model_options(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no speed report on stderr")
    return p


def run(args: argparse.Namespace) -> int:
    require_after_model(args, "prompt", "PROMPT")
    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    with open_model(args) as model:
        try:
            stream = model.stream(prompt, args.max_tokens, stop=args.stop, ignore_eos=args.ignore_eos,
                                  **sampling_kwargs(args))
        except ValueError as exc:
            return fail(str(exc))
        with stream:
            for piece in stream:
                sys.stdout.write(piece)
                sys.stdout.flush()
        sys.stdout.write("\n")
        sys.stdout.flush()
        if not args.quiet:
            print(speed_report(stream), file=sys.stderr)
    return 0


def speed_report(stream: Any) -> str:
    """One line: prompt and generation token counts and speeds."""
    prompt_tps = stream.n_prompt_tokens / stream.prompt_seconds if stream.prompt_seconds > 0 else 0.0
    return (
        f"{stream.n_prompt_tokens} prompt tokens ({prompt_tps:.1f} tokens/s), "
        f"{stream.n_tokens} generated ({stream.tokens_per_second:.1f} tokens/s), "
        f"finish: {stream.finish_reason}"
    )
