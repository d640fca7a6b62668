"""``bitnet info [MODEL]``: library version, kernel variants and CPU features;
with a model, also what the engine makes of it."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "info",
        help="show the library version, kernels and CPU features (and a model's summary)",
        description=__doc__,
    )
    p.add_argument("model", nargs="?", help="a GGUF model file (optional)")
    p.add_argument("--kernel", default=None, help="kernel variant to load the model with (default: the best)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def run(args: argparse.Namespace) -> int:
    import bitnet

    info: dict[str, Any] = {"version": bitnet.__version__, "system_info": bitnet.system_info()}
    if args.model:
        with bitnet.Model(args.model, n_ctx=1, kernel=args.kernel) as m:
            info["model"] = {
                "path": m.path,
                "size_bytes": os.path.getsize(m.path),
                "description": m.description,
                "arch": m.arch,
                "kernel": m.kernel,
                "n_vocab": m.n_vocab,
                "n_ctx_train": m.n_ctx_train,
                "name": m.metadata.get("general.name"),
            }
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"bitnet {info['version']}")
    print(f"system: {info['system_info']}")
    model = info.get("model")
    if model:
        print(f"model:  {model['path']} ({model['size_bytes']} bytes)")
        print(f"        {model['description']}")
        print(f"kernel: {model['kernel']}")
    return 0
