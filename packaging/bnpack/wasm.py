"""The `wasm` target: ``bitnet-VERSION-web.zip``, the engine for browsers and node.

The bundle: ``libbitnet.{mjs,wasm}`` (SIMD128), ``libbitnet-scalar.{mjs,wasm}`` (engines without
SIMD), ``libbitnet-mt.{mjs,wasm}`` + ``libbitnet-mt.worker.js`` (SIMD128 with pthreads, for pages
served cross-origin isolated), ``bitnet.js`` (the JS API that picks one), the default model and a
README. Built by
``web/build.py`` (emscripten), then checked in node from the unzipped bundle: each build picks
its kernel set at run time and generates, from the default model, exactly the greedy text of
the native Python binding.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from .common import REPO, Artifact, ReleaseError, log, require_tool, version
from .usage_check import PROMPT, N_TOKENS, reference_text

WEB = REPO / "web"
DEFAULT_MODEL = REPO / "bindings_py" / "bitnet" / "models" / "bitnet-english-i2_s.gguf"
FIXED_TIME = (2020, 1, 1, 0, 0, 0)  # zip entries carry no clock time: the bytes depend on the files


def _web_build():
    sys.path.insert(0, str(WEB))
    try:
        import build as web_build  # web/build.py
    finally:
        sys.path.pop(0)
    return web_build


def bundle_files(build_dir: Path) -> dict[str, Path]:
    """Name in the zip -> file: what a page needs, nothing of the build's object cache."""
    files = {p.name: p for p in sorted(build_dir.iterdir()) if p.is_file() and p.suffix in (".mjs", ".wasm", ".js")}
    files["models/" + DEFAULT_MODEL.name] = DEFAULT_MODEL
    files["README.md"] = WEB / "README.md"
    files["LICENSE"] = REPO / "LICENSE"
    for needed in ("libbitnet.mjs", "libbitnet.wasm", "libbitnet-scalar.mjs", "libbitnet-scalar.wasm",
                   "libbitnet-mt.mjs", "libbitnet-mt.wasm", "libbitnet-mt.worker.js", "bitnet.js"):
        if needed not in files:
            raise ReleaseError(f"web/build.py did not produce {needed} in {build_dir}")
    return files


def write_zip(files: dict[str, Path], dest: Path, top: str) -> None:
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for name in sorted(files):
            info = zipfile.ZipInfo(f"{top}/{name}", date_time=FIXED_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, files[name].read_bytes())


def check_in_node(tree: Path, expected: str) -> list[str]:
    """web/test/test_engine.mjs on each build of the unzipped bundle, default model only."""
    passed = []
    for build, kernel in (("simd", "wasm_simd"), ("scalar", "scalar")):
        spec = {"dist": str(tree), "build": build, "kernel": kernel, "golden": [], "tokenizer": [],
                "default_model": {"path": str(tree / "models" / DEFAULT_MODEL.name), "prompt": PROMPT,
                                  "max_tokens": N_TOKENS, "text": expected}}
        spec_path = tree.parent / f"spec-{build}.json"
        spec_path.write_text(json.dumps(spec), encoding="utf-8")
        proc = subprocess.run(["node", str(WEB / "test" / "test_engine.mjs"), str(spec_path)],
                              capture_output=True, text=True, timeout=300)
        sys.stderr.write(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            raise ReleaseError(f"node test_engine.mjs on the {build} build of the bundle failed:\n{proc.stdout[-3000:]}")
        passed.append(f"node: the {build} build picks {kernel} and generates the native greedy text")
    return passed


def build_and_check(out_dir: Path) -> list[Artifact]:
    require_tool("node", "nodejs")
    web_build = _web_build()
    if web_build.find_emcc() is None:
        raise ReleaseError("`emcc` not found: install emscripten")
    expected = reference_text()
    top = f"bitnet-{version()}-web"
    with tempfile.TemporaryDirectory(prefix="bitnet-wasm-") as tmp:
        build_dir = Path(tmp) / "build"
        log(f"web/build.py --out {build_dir}")
        web_build.build(build_dir, force=True)
        dest = out_dir / f"{top}.zip"
        out_dir.mkdir(parents=True, exist_ok=True)
        write_zip(bundle_files(build_dir), dest, top)
        with zipfile.ZipFile(dest) as z:
            z.extractall(Path(tmp) / "unzipped")
        checks = check_in_node(Path(tmp) / "unzipped" / top, expected)
    return [Artifact(dest, ["emscripten build (SIMD128 and scalar)", *checks])]
