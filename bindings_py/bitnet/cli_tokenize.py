"""``bitnet tokenize MODEL TEXT``: the token ids of TEXT and the piece of text
each stands for, one per line (``--json``: a JSON list of id, piece and
the piece's bytes in hex).

BOS comes first when the GGUF asks for it, as for a prompt (``--no-bos``:
never). Any GGUF with a vocabulary works, vocab-only files too. A piece that
is not valid UTF-8 on its own (part of a character) is shown as bytes.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ._cli_common import add_model_argument, require_after_model, resolve_model_path


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "tokenize",
        help="show the tokens of a text",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_argument(p)
    p.add_argument("text", metavar="TEXT", help="the text ('-': read it from stdin)")
    p.add_argument("--no-bos", action="store_true", help="no BOS token in front")
    p.add_argument("--special", action="store_true",
                   help="parse control-token text such as <|eot_id|> as those tokens")
    p.add_argument("--json", action="store_true", help='print [{"id": ..., "piece": ..., "bytes": "<hex>"}, ...]')
    return p


def run(args: argparse.Namespace) -> int:
    require_after_model(args, "text", "TEXT")
    import bitnet

    text = sys.stdin.read() if args.text == "-" else args.text
    with bitnet.Tokenizer(resolve_model_path(args.model)) as tok:
        add_bos = tok.add_bos and not args.no_bos
        ids = tok.tokenize(text, add_bos=add_bos, special=args.special)  # bad UTF-8: BitNetError, exit 1
        raw = [tok.token_to_piece(i) for i in ids]
    if args.json:
        rows = [{"id": i, "piece": b.decode("utf-8", errors="backslashreplace"), "bytes": b.hex()}
                for i, b in zip(ids, raw)]
        print(json.dumps(rows, ensure_ascii=False))
        return 0
    width = len(str(max(ids))) if ids else 1
    for i, b in zip(ids, raw):
        print(f"{i:>{width}} {_show(b)}")
    return 0


def _show(piece: bytes) -> str:
    """A piece as a quoted string, or as a bytes literal when it is part of a character."""
    try:
        return json.dumps(piece.decode("utf-8"), ensure_ascii=False)
    except UnicodeDecodeError:
        return repr(piece)
