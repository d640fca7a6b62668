#!/usr/bin/env python3
"""Decode speed of the WebAssembly build vs the native engine, single thread.

    python benchmarks/wasm/bench_wasm.py [--tokens 32] [--model PATH] [--keep]

Writes a synthetic I2_S model (tools/synth_model.py's generator with a ~0.4B
shape: n_embd 1536, n_ff 4096, 16 layers, vocab 32000, F16 tied embeddings,
about 200 MB) unless --model is given, builds web/ (web/build.py, cached in
tests/.cache/web), then measures decode tokens/s (tokens after the first;
prompt processing excluded) for:

- wasm SIMD128 (node, libbitnet.wasm, kernel wasm_simd),
- wasm SIMD128 on 2 threads (node, the pthreads build libbitnet-mt.wasm),
- wasm scalar (node, libbitnet-scalar.wasm),
- native scalar and native AVX2 (the Python binding, n_threads=1, kernel=...).

Prints a table with ratios to native AVX2 (and the 2-thread speed-up). Not a test: one run, numbers vary.
Needs emcc, node and the built Python package.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CACHE = ROOT / "tests" / ".cache"
PROMPT = [1, 100, 200, 300, 400, 500, 600, 700]


def synth_model(out: Path) -> Path:
    if out.exists():
        return out
    sys.path.insert(0, str(ROOT / "tools"))
    import synth_model as sm  # tools/synth_model.py

    sm.SHAPES["bench-0.4b"] = sm.Shape(1536, 4096, 16, 16, 4, 32000, 2048)
    tmp = out.with_suffix(".tmp")
    sm.main([str(tmp), "--shape", "bench-0.4b", "--format", "I2_S"])
    tmp.replace(out)
    return out


def native(model: Path, kernel: str, n: int) -> dict:
    import bitnet

    with bitnet.Model(str(model), n_threads=1, kernel=kernel, n_ctx=256) as m:
        m.generate_tokens(PROMPT, 2, ignore_eos=True)  # warm-up
        t0 = time.perf_counter()
        m.generate_tokens(PROMPT, 1, ignore_eos=True)
        t1 = time.perf_counter()
        m.generate_tokens(PROMPT, n, ignore_eos=True)
        t2 = time.perf_counter()
        return {"kernel": m.kernel, "decode_tok_s": (n - 1) / ((t2 - t1) - (t1 - t0))}


def wasm(dist: Path, build: str, model: Path, n: int, threads: int = 1) -> dict:
    env = dict(os.environ)
    proc = subprocess.run(["node", str(HERE / "bench_node.mjs"), str(dist), build, str(model), str(n), str(threads)],
                          capture_output=True, text=True, env=env, check=False)
    if proc.returncode:
        raise RuntimeError(proc.stdout + proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokens", type=int, default=32, help="tokens to generate per run (default 32)")
    ap.add_argument("--model", type=Path, help="an existing GGUF instead of the synthetic one")
    args = ap.parse_args()

    model = args.model or synth_model(CACHE / "bench" / "synth-0.4b-i2_s.gguf")
    print(f"model: {model} ({model.stat().st_size / 1e6:.0f} MB)")
    sys.path.insert(0, str(ROOT / "web"))
    import build as web_build

    dist = CACHE / "web"
    web_build.build(dist)

    rows = [
        ("wasm SIMD128 (node)", wasm(dist, "simd", model, args.tokens)),
        ("wasm SIMD128 2 thr", wasm(dist, "mt", model, args.tokens, 2)),
        ("wasm scalar (node)", wasm(dist, "scalar", model, max(8, args.tokens // 2))),
        ("native scalar", native(model, "scalar", max(8, args.tokens // 2))),
        ("native AVX2", native(model, "avx2", args.tokens)),
    ]
    ref = rows[-1][1]["decode_tok_s"]
    print(f"\ndecode (1 thread unless said), {args.tokens} tokens (scalar runs: half), node {subprocess.run(['node', '--version'], capture_output=True, text=True).stdout.strip()}")
    print(f"{'engine':<22} {'kernel':<10} {'tok/s':>8} {'x AVX2':>8}")
    for name, r in rows:
        print(f"{name:<22} {r['kernel']:<10} {r['decode_tok_s']:8.2f} {r['decode_tok_s'] / ref:8.2f}")
    by_name = dict(rows)
    simd = by_name["wasm SIMD128 (node)"]["decode_tok_s"]
    mt = by_name["wasm SIMD128 2 thr"]
    print(f"\nwasm SIMD 2 threads / 1 thread: {mt['decode_tok_s'] / simd:.2f}x ({mt.get('threads')} threads ran)")
    print(f"wasm SIMD / wasm scalar: {simd / by_name['wasm scalar (node)']['decode_tok_s']:.2f}x; goal wasm SIMD >= 0.5x native AVX2: "
          f"{'met' if simd >= 0.5 * ref else 'NOT met'} ({simd / ref:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
