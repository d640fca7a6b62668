"""``bitnet inspect FILE``: what a GGUF file holds: its metadata (key, type,
value) and its tensor table (name, type, shape, bytes).

Reads only the header, with a small reader of its own, so it works on any
GGUF, including files the engine would refuse (an unknown architecture or
tensor type) and vocab-only files. Long arrays (vocabularies, merges) show
their first elements; ``--full`` shows all of them. ``--json`` prints one
JSON object.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from ._cli_common import fail, resolve_model_path

HEAD = 8  # array elements shown without --full


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "inspect",
        help="show a GGUF file's metadata and tensors",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", metavar="FILE", help="a GGUF file")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--full", action="store_true", help="show long arrays in full")
    p.add_argument("--no-tensors", action="store_true", help="metadata only")
    return p


def _short(value: Any, full: bool) -> Any:
    """A long array cut to its first elements (JSON: an object saying so)."""
    if isinstance(value, list) and len(value) > HEAD and not full:
        return {"length": len(value), "head": value[:HEAD]}
    return value


def _format_value(value: Any, vtype: str, full: bool) -> str:
    if isinstance(value, list):
        items = value if full else value[:HEAD]
        text = ", ".join(_format_value(v, vtype[6:-1], full) for v in items)
        more = "" if full or len(value) <= HEAD else f", ... ({len(value)} elements)"
        return f"[{text}{more}]"
    if vtype == "f32" and isinstance(value, float):
        return f"{value:.7g}"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(value)


def run(args: argparse.Namespace) -> int:
    from ._gguf_index import read_gguf, type_name

    try:
        header = read_gguf(resolve_model_path(args.file))
    except ValueError as exc:  # not a GGUF, truncated header
        return fail(str(exc))
    tensors = [] if args.no_tensors else header.tensors
    if args.json:
        out = {
            "path": header.path,
            "version": header.version,
            "file_size": header.file_size,
            "alignment": header.alignment,
            "data_offset": header.data_offset,
            "metadata": {k: _short(v, args.full) for k, v in header.metadata.items()},
            "metadata_types": header.value_types,
            "tensors": [
                {"name": t.name, "type": type_name(t.type_id), "type_id": t.type_id, "shape": list(t.shape),
                 "bytes": t.nbytes, "offset": t.offset}
                for t in tensors
            ],
        }
        print(json.dumps(out, ensure_ascii=False, indent=2))
        return 0
    print(f"{header.path}: GGUF v{header.version}, {header.file_size} bytes, "
          f"{len(header.metadata)} metadata keys, {len(header.tensors)} tensors")
    print("\nmetadata:")
    key_w = max((len(k) for k in header.metadata), default=0)
    type_w = max((len(t) for t in header.value_types.values()), default=0)
    for key, value in header.metadata.items():
        vtype = header.value_types.get(key, "?")
        print(f"  {key:<{key_w}}  {vtype:<{type_w}}  {_format_value(value, vtype, args.full)}")
    if tensors:
        rows = [(t.name, type_name(t.type_id), " x ".join(map(str, t.shape)), str(t.nbytes)) for t in tensors]
        widths = [max(len(r[i]) for r in rows + [("name", "type", "shape", "bytes")]) for i in range(4)]
        print("\ntensors:")
        print(f"  {'name':<{widths[0]}}  {'type':<{widths[1]}}  {'shape':<{widths[2]}}  {'bytes':>{widths[3]}}")
        for r in rows:
            print(f"  {r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]:>{widths[3]}}")
        print(f"\n  {len(tensors)} tensors, {sum(t.nbytes for t in tensors)} bytes of tensor data")
    return 0
