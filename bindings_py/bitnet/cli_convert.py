"""``bitnet convert SRC -o OUT.gguf [--outtype i2_s]``: a Hugging Face checkpoint
directory (or a GGUF file, to re-quantize it) -> GGUF. What is converted and how:
``bitnet.convert``."""

from __future__ import annotations

import argparse
import sys
import warnings
from typing import Any

from .convert import OUTTYPES


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "convert",
        help="convert a Hugging Face BitNet/ternary checkpoint (or a GGUF) to GGUF",
        description="Convert a Hugging Face model directory (config.json, *.safetensors, tokenizer.json or "
        "tokenizer.model) of BitNet-b1.58-2B-4T (bf16 master or packed), 1bitLLM bitnet_b1_58 or a ternary "
        "LLaMA to a GGUF file; a GGUF source is re-quantized. Needs: pip install 'libbitnet[convert]'.",
    )
    p.add_argument("src", help="Hugging Face model directory, or a .gguf file")
    p.add_argument("-o", "--out", required=True, metavar="OUT.gguf", help="output file (overwritten)")
    p.add_argument("--outtype", choices=list(OUTTYPES), default="i2_s",
                   help="type of the linear weights (default: i2_s); embeddings stay f16 (f32 for f32)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def run(args: argparse.Namespace) -> int:
    from .convert import convert, summary

    with warnings.catch_warnings(record=True) as caught:  # printed as one line each, not with a source line
        warnings.simplefilter("always")
        out = convert(args.src, args.out, outtype=args.outtype, progress=not args.no_progress and sys.stderr.isatty())
    for w in caught:
        print(f"bitnet: warning: {w.message}", file=sys.stderr)
    s = summary(out)
    types = ", ".join(f"{n} {name}" for name, n in sorted(s["types"].items(), key=lambda kv: -kv[1]))
    print(f"wrote {out}: {s['bytes'] / 1e6:.1f} MB, {s['tensors']} tensors ({types}), linear weights {args.outtype}")
    return 0
