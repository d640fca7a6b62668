#!/usr/bin/env python3
"""Build the WebAssembly engine: dist/web/libbitnet{,-scalar,-mt}.{mjs,wasm}.

    python web/build.py                # all three builds, into dist/web (skipped when up to date)
    python web/build.py --out DIR      # somewhere else
    python web/build.py --only simd    # one build: simd | scalar | mt
    python web/build.py --force        # rebuild everything
    python web/build.py --demo         # also the demo site: Pyodide, the bitnet wheel, the page (web/site_build.py)

Compiles core_c/*.c, bindings_c/src/*.c and web/bitnet_web.c with emcc
(emscripten; Debian: ``apt-get install emscripten``) three times:

- ``libbitnet.mjs`` + ``libbitnet.wasm``: ``-O3 -msimd128``, the wasm_simd
  kernel set (core_c/kernels_wasm_simd.c), chosen automatically at run time;
- ``libbitnet-scalar.mjs`` + ``libbitnet-scalar.wasm``: no SIMD, for browsers
  without SIMD128 (the scalar kernels);
- ``libbitnet-mt.mjs`` + ``.wasm`` + ``libbitnet-mt.worker.js``: ``-O3 -msimd128
  -pthread`` (shared memory), for cross-origin isolated pages and node; built
  for ``web,worker,node`` so the node test runs this very artifact. bitnet.js
  loads it only for ``BitNet.load({threads})`` on a crossOriginIsolated page.

Both are ES modules (``-sMODULARIZE -sEXPORT_ES6``) whose default export is a
factory: ``const Module = await createBitNetModule({wasmBinary?})``. Built for
``web,worker``: in node, pass ``wasmBinary`` (the bytes of the .wasm file), as
web/test/*.mjs do. web/bitnet.js (copied next to them) is the JS API and picks
a build with ``WebAssembly.validate`` on a tiny SIMD module.

Objects are cached per build under ``<out>/.obj-<name>/`` and recompiled when
their source, any header or this script is newer; the link is skipped when
the outputs are newer than every input. Standard library only.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WEB = ROOT / "web"
DEFAULT_OUT = ROOT / "dist" / "web"

INCLUDES = ["-I", str(ROOT / "core_c"), "-I", str(ROOT / "bindings_c" / "include"), "-I", str(ROOT / "bindings_c" / "src")]
# As the native builds: C11 without contraction (the kernels' exactness contract, kernels.h).
CFLAGS = ["-std=c11", "-ffp-contract=off", "-Wall", "-Wextra", "-DBITNET_BUILD", "-D_POSIX_C_SOURCE=200809L", *INCLUDES]

EXPORTED_FUNCTIONS = [
    "_malloc", "_free",
    "_bitnet_version", "_bitnet_status_str", "_bitnet_last_error", "_bitnet_system_info",
    "_bitnet_model_load_from_memory", "_bitnet_model_free",
    "_bitnet_model_arch", "_bitnet_model_n_vocab", "_bitnet_model_n_ctx_train", "_bitnet_model_n_embd",
    "_bitnet_model_n_layer", "_bitnet_model_token_bos", "_bitnet_model_token_eos", "_bitnet_model_token_eot",
    "_bitnet_model_desc", "_bitnet_model_kernel",
    "_bitnet_model_meta_count", "_bitnet_model_meta_key", "_bitnet_model_meta_json",
    "_bitnet_context_free", "_bitnet_context_last_error", "_bitnet_context_n_ctx", "_bitnet_context_n_past",
    "_bitnet_context_reset", "_bitnet_decode", "_bitnet_context_logits",
    "_bitnet_sampler_free", "_bitnet_sampler_accept", "_bitnet_sampler_sample",
    "_bitnet_generate_tokens", "_bitnet_generate_tokens_cb",
    "_bitnet_model_tokenizer", "_bitnet_tokenizer_load", "_bitnet_tokenizer_free", "_bitnet_tokenizer_last_error",
    "_bitnet_tokenizer_n_vocab", "_bitnet_tokenizer_bos", "_bitnet_tokenizer_eos", "_bitnet_tokenizer_eot",
    "_bitnet_tokenizer_add_bos", "_bitnet_tokenize", "_bitnet_detokenize", "_bitnet_token_to_piece",
    "_bitnet_token_type_of",
    # web/bitnet_web.c
    "_bnw_model_load", "_bnw_context_create", "_bnw_context_create_mt", "_bnw_context_n_threads",
    "_bnw_sampler_create",
]
RUNTIME_METHODS = ["HEAPU8", "HEAP32", "HEAPU32", "addFunction", "removeFunction", "UTF8ToString", "stringToUTF8", "lengthBytesUTF8", "FS"]

LDFLAGS = [
    "-sMODULARIZE=1", "-sEXPORT_ES6=1", "-sEXPORT_NAME=createBitNetModule",
    "-sENVIRONMENT=web,worker",
    "-sALLOW_MEMORY_GROWTH=1", "-sMAXIMUM_MEMORY=4GB", "-sALLOW_TABLE_GROWTH=1",
    "-sEXPORTED_FUNCTIONS=" + ",".join(EXPORTED_FUNCTIONS),
    "-sEXPORTED_RUNTIME_METHODS=" + ",".join(RUNTIME_METHODS),
]

# The pthreads build (for cross-origin isolated pages, and node): the worker
# pool is preloaded before the factory's promise resolves, sized by the
# factory's argument ``bnPoolSize`` (web/bitnet.js passes threads - 1), since a
# thread started later would only run once the main thread returns to the event
# loop and the engine's fork-join pool would wait for it forever. With
# PTHREAD_POOL_SIZE_STRICT=2 a thread beyond the pool fails to start (EAGAIN)
# and the engine keeps the threads it got. ``node`` is in ENVIRONMENT so the
# node tests run this very artifact (worker_threads).
MT_LDFLAGS = [
    "-sENVIRONMENT=web,worker,node",
    "-sPTHREAD_POOL_SIZE=Module.bnPoolSize||1", "-sPTHREAD_POOL_SIZE_STRICT=2",
    "-sINITIAL_MEMORY=64MB", "-Wno-pthreads-mem-growth",  # growth: bitnet.js refreshes its heap views
]

BUILDS = {
    "simd": {"basename": "libbitnet", "flags": ["-O3", "-msimd128"]},
    "scalar": {"basename": "libbitnet-scalar", "flags": ["-O3"]},
    "mt": {"basename": "libbitnet-mt", "flags": ["-O3", "-msimd128", "-pthread"], "ldflags": MT_LDFLAGS,
           "extra": ["libbitnet-mt.worker.js"]},
}


def find_emcc() -> str | None:
    return os.environ.get("EMCC") or shutil.which("emcc")


def emcc_env() -> dict[str, str]:
    env = dict(os.environ)
    # Debian's emscripten needs its node modules (acorn, for -O2/-O3 JS passes).
    if not env.get("NODE_PATH") and Path("/usr/share/nodejs").is_dir():
        env["NODE_PATH"] = "/usr/share/nodejs"
    return env


def sources() -> list[Path]:
    srcs = sorted(ROOT.glob("core_c/*.c")) + sorted(ROOT.glob("bindings_c/src/*.c")) + [WEB / "bitnet_web.c"]
    return srcs


def headers() -> list[Path]:
    return sorted(ROOT.glob("core_c/*.h")) + sorted(ROOT.glob("bindings_c/src/*.h")) + sorted(
        ROOT.glob("bindings_c/include/*.h"))


def _mtime(p: Path) -> float:
    try:
        return p.stat().st_mtime
    except FileNotFoundError:
        return -1.0


def _run(cmd: list[str], env: dict[str, str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0 or proc.stderr.strip():
        out = f"$ {' '.join(cmd)}\n{proc.stdout}{proc.stderr}"
        if proc.returncode != 0:
            raise RuntimeError(f"emcc failed (exit {proc.returncode}):\n{out}")
        sys.stderr.write(out)  # warnings: show them (the native builds are warning-free, this should be too)


def build_one(name: str, out: Path, emcc: str, force: bool = False, jobs: int | None = None) -> list[Path]:
    """Compile and link one build; returns its output files."""
    spec = BUILDS[name]
    env = emcc_env()
    mjs, wasm = out / f"{spec['basename']}.mjs", out / f"{spec['basename']}.wasm"
    extra = [out / e for e in spec.get("extra", [])]
    srcs = sources()
    dep_time = max(_mtime(p) for p in [*headers(), Path(__file__)])
    newest_input = max(dep_time, *(_mtime(s) for s in srcs))
    if not force and min(_mtime(p) for p in [mjs, wasm, *extra]) > newest_input:
        return [mjs, wasm, *extra]
    obj_dir = out / f".obj-{name}"
    obj_dir.mkdir(parents=True, exist_ok=True)
    flags = [*CFLAGS, *spec["flags"]]

    def compile_one(src: Path) -> Path:
        obj = obj_dir / f"{src.parent.name}_{src.stem}.o"
        if force or _mtime(obj) <= max(dep_time, _mtime(src)):
            _run([emcc, *flags, "-c", str(src), "-o", str(obj)], env)
        return obj

    with ThreadPoolExecutor(max_workers=jobs or os.cpu_count() or 2) as pool:
        objs = list(pool.map(compile_one, srcs))
    ldflags = LDFLAGS
    if spec.get("ldflags"):  # later -s settings win; drop the overridden ENVIRONMENT
        ldflags = [f for f in LDFLAGS if not f.startswith("-sENVIRONMENT=")] + spec["ldflags"]
    _run([emcc, *spec["flags"], *ldflags, *map(str, objs), "-o", str(mjs)], env)
    return [mjs, wasm, *extra]


def build(out: Path = DEFAULT_OUT, only: str | None = None, force: bool = False) -> list[Path]:
    emcc = find_emcc()
    if not emcc:
        raise RuntimeError("emcc not found: install emscripten (Debian: apt-get install emscripten) or set EMCC")
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for name in ([only] if only else list(BUILDS)):
        files += build_one(name, out, emcc, force)
    dst = out / "bitnet.js"
    if force or _mtime(dst) < _mtime(WEB / "bitnet.js"):
        shutil.copyfile(WEB / "bitnet.js", dst)
    files.append(dst)
    return files


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory (default dist/web)")
    ap.add_argument("--only", choices=sorted(BUILDS), help="build only this variant")
    ap.add_argument("--force", action="store_true", help="rebuild even when up to date")
    ap.add_argument("--demo", action="store_true",
                    help="also assemble the demo site (Pyodide, the bitnet wheel, web/demo, the default model; web/site_build.py)")
    args = ap.parse_args(argv)
    try:
        files = build(args.out, args.only, args.force)
        if args.demo:
            sys.path.insert(0, str(WEB))
            import site_build  # web/site_build.py

            files += site_build.assemble(args.out)
    except RuntimeError as e:
        print(f"web/build.py: {e}", file=sys.stderr)
        return 1
    for f in files:
        print(f"{f} ({f.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
