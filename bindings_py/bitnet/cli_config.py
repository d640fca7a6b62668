"""``bitnet config validate FILE``: check a server config (TOML) before serving it.

Parses the file as ``bitnet serve FILE`` would (``bitnet.server.config``):
unknown keys, bad values and missing model files are errors naming the key.
``--load`` also opens every model file, so a file that is not a loadable GGUF
is caught too. Prints what would be served; exit status 0 when the file is
good, 1 when not.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from ._cli_common import fail


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "config",
        help="check a `bitnet serve` config file",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = p.add_subparsers(title="actions", metavar="ACTION", required=True)
    v = actions.add_parser("validate", help="check a TOML server config", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    v.add_argument("file", metavar="FILE", help="the TOML config")
    v.add_argument("--load", action="store_true", help="also load every model file")
    return p


def run(args: argparse.Namespace) -> int:
    from .server.config import ConfigError, load_config

    try:
        config = load_config(args.file)
    except ConfigError as exc:
        return fail(str(exc))
    for i, spec in enumerate(config.model_specs()):
        total = sum(v.weight for v in spec.variants)
        default = " (default)" if i == 0 else ""
        n_ctx = spec.n_ctx or "the model's"
        print(f"model {spec.name}{default}: {spec.n_slots} slots, n_ctx {n_ctx}")
        for variant in spec.variants:
            size = os.path.getsize(variant.path) / 1e6
            share = f", {100 * variant.weight / total:.0f}% of requests" if len(spec.variants) > 1 else ""
            print(f"  {variant.name}: {variant.path} ({size:.1f} MB{share})")
            if args.load:
                problem = _load_problem(variant.path)
                if problem:
                    return fail(f"{args.file}: model {spec.name} variant {variant.name}: {problem}")
                print("    loads")
    print(f"{args.file}: OK")
    return 0


def _load_problem(path: str) -> str | None:
    from . import Model
    from ._errors import BitNetError

    try:
        with Model(path, n_ctx=8, n_threads=1):
            return None
    except (BitNetError, OSError, ValueError) as exc:
        return str(exc)
