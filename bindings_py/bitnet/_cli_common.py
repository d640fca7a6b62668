"""Arguments and helpers shared by the generating commands (run, chat,
tokenize, perplexity): the MODEL argument, model options, sampling options.

``resolve_model_path`` is the one place that decides which GGUF a command
runs, so that MODEL can later become optional (an embedded default model)
without touching each command.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from .cli import PROG

KERNELS = ("auto", "scalar", "avx2", "avx512", "neon", "wasm_simd")


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer: {text!r}") from None


def positive_int(text: str) -> int:
    value = _int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def non_negative_int(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def add_model_argument(p: argparse.ArgumentParser) -> None:
    """The optional MODEL positional (see :func:`resolve_model_path`).

    It may be left out even before another positional: argparse gives a lone
    argument to the required one (``bitnet run "Once upon a time"``)."""
    p.add_argument("model", metavar="MODEL", nargs="?", default=None,
                   help="a GGUF model file (default: the embedded default model)")


def resolve_model_path(arg: str | None) -> str:
    """The GGUF file for a command's MODEL argument.

    A given MODEL names a file (a missing one is reported when the model is
    opened: exit 1); an omitted one is the embedded default model
    (``$BITNET_DEFAULT_MODEL`` overrides it).
    """
    if arg is None:
        from .default_model import default_model_path

        return os.fspath(default_model_path())
    return os.fspath(arg)


def require_after_model(args: argparse.Namespace, name: str, metavar: str) -> None:
    """With MODEL left out argparse gives a lone argument to ``name``. When
    that argument is a GGUF file the user meant it as MODEL and forgot
    ``metavar``: a usage error (exit 2), not a run of the default model on a
    file name."""
    value = getattr(args, name)
    if args.model is None and isinstance(value, str) and value.lower().endswith(".gguf") and os.path.isfile(value):
        print(f"{PROG}: error: the following arguments are required: {metavar} "
              f"({value} is a model: give the {metavar} after it)", file=sys.stderr)
        raise SystemExit(2)


def add_model_options(p: argparse.ArgumentParser, *, n_ctx_help: str | None = None) -> None:
    """-t/--threads, -c/--n-ctx, --kernel: how the model is opened."""
    g = p.add_argument_group("model options")
    g.add_argument("-t", "--threads", type=positive_int, default=None, metavar="N",
                   help="threads (default: every core)")
    g.add_argument("-c", "--n-ctx", type=positive_int, default=None, metavar="N",
                   help=n_ctx_help or "context size in tokens (default: the model's, at most 4096)")
    g.add_argument("--kernel", choices=KERNELS, default=None,
                   help="kernel variant (default: the best this CPU runs)")


def open_model(args: argparse.Namespace, n_ctx: int | None = None) -> Any:
    """bitnet.Model for args.model with the model options."""
    import bitnet

    return bitnet.Model(
        resolve_model_path(args.model),
        n_ctx=n_ctx if n_ctx is not None else args.n_ctx,
        n_threads=args.threads,
        kernel=args.kernel,
        progress=True if sys.stderr.isatty() else None,
    )


def add_sampling_options(p: argparse.ArgumentParser, *, max_tokens_default: int | None) -> None:
    """-n/--max-tokens, --temperature, --top-k, --top-p, --min-p,
    --repeat-penalty, --seed, --stop. Defaults as llama.cpp's (temperature
    0.8, a random seed); --temperature 0 is greedy and repeatable."""
    g = p.add_argument_group("sampling")
    default = "until the end of the answer or the context" if max_tokens_default is None else max_tokens_default
    g.add_argument("-n", "--max-tokens", type=non_negative_int, default=max_tokens_default, metavar="N",
                   help=f"most tokens to generate (default: {default})")
    g.add_argument("--temperature", "--temp", type=float, default=0.8, metavar="T",
                   help="sampling temperature; 0 = greedy (default: 0.8)")
    g.add_argument("--top-k", type=int, default=40, metavar="K", help="top-k filter, <= 0 off (default: 40)")
    g.add_argument("--top-p", type=float, default=0.95, metavar="P", help="top-p filter, >= 1 off (default: 0.95)")
    g.add_argument("--min-p", type=float, default=0.05, metavar="P", help="min-p filter, <= 0 off (default: 0.05)")
    g.add_argument("--repeat-penalty", type=float, default=1.0, metavar="R",
                   help="repetition penalty, 1 = off (default: 1.0)")
    g.add_argument("--frequency-penalty", type=float, default=0.0, metavar="F",
                   help="subtracted from a token's logit per time it occurs in the last 64 tokens (default: 0)")
    g.add_argument("--presence-penalty", type=float, default=0.0, metavar="P",
                   help="subtracted once from the logit of a token among the last 64 (default: 0)")
    g.add_argument("--seed", type=int, default=None, metavar="S", help="random seed (default: a random one)")
    g.add_argument("--stop", action="append", default=[], metavar="TEXT",
                   help="end the text before TEXT (may be given several times)")


def sampling_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The sampling keyword arguments of Model.stream/chat_stream from the options."""
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(8), "little")
    return dict(
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        min_p=args.min_p,
        repeat_penalty=args.repeat_penalty,
        frequency_penalty=args.frequency_penalty,
        presence_penalty=args.presence_penalty,
        seed=seed,
    )


def fail(message: str) -> int:
    """Report an error the user caused (cli.py's format) and return exit status 1."""
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 1
