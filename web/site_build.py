"""Assemble the demo site in dist/web (``python web/build.py --demo`` calls :func:`assemble`).

Next to the engine (libbitnet*.mjs/.wasm, bitnet.js) it writes:

- ``libbitnet_web-VERSION-py3-none-any.whl``: the ``bitnet`` Python package as
  pure Python (every .py file of bindings_py/bitnet, without the cffi
  extension, its build script and the embedded model). Under Pyodide it runs
  on the wasm engine (bitnet/_browser.py); install it with
  ``pyodide.unpackArchive(bytes, "wheel", {extractDir: site-packages})``
  (web/bitnet_pyodide.mjs);
- ``pyodide/``: the Pyodide runtime from the npm package (``npm ci --prefix web``);
  served by us, no CDN;
- ``models/bitnet-english-i2_s.gguf``: the embedded default model;
- the page: web/demo/* and web/bitnet_pyodide.mjs, and ``site.json`` naming
  the wheel and the model for it.

Standard library only. The wheel is reproducible (fixed timestamps, sorted entries).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WEB = ROOT / "web"
PACKAGE = ROOT / "bindings_py" / "bitnet"
PYODIDE = WEB / "node_modules" / "pyodide"
PYODIDE_FILES = ["pyodide.mjs", "pyodide.js", "pyodide.asm.mjs", "pyodide.asm.wasm", "python_stdlib.zip",
                 "pyodide-lock.json", "package.json"]
DEFAULT_MODEL = PACKAGE / "models" / "bitnet-english-i2_s.gguf"
DIST_NAME = "libbitnet_web"
EXCLUDE = {"_ffi_build.py"}
ZIP_DATE = (2020, 1, 1, 0, 0, 0)


def version() -> str:
    header = (ROOT / "bindings_c" / "include" / "bitnet.h").read_text()
    return re.search(r'#define BITNET_VERSION_STRING "([^"]+)"', header).group(1)


def wheel_files() -> list[tuple[str, bytes]]:
    """(path in the wheel, bytes) of the package's pure-Python files."""
    files = []
    for p in sorted(PACKAGE.rglob("*")):
        rel = p.relative_to(PACKAGE)
        if not p.is_file() or "__pycache__" in rel.parts or rel.parts[0] == "models" or p.name in EXCLUDE:
            continue
        if p.suffix == ".py" or p.name == "py.typed":
            files.append(("bitnet/" + rel.as_posix(), p.read_bytes()))
    return files


def build_wheel(out: Path) -> Path:
    """Write the pure-Python wheel into out; returns its path."""
    ver = version()
    info = f"{DIST_NAME}-{ver}.dist-info"
    files = wheel_files()
    files.append((f"{info}/METADATA", (
        f"Metadata-Version: 2.1\nName: {DIST_NAME}\nVersion: {ver}\n"
        "Summary: bitnet (BitNet b1.58 inference) for Pyodide, on the WebAssembly engine (web/bitnet.js)\n"
        "License: MIT\nRequires-Python: >=3.10\n").encode()))
    files.append((f"{info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: bitnet web/site_build.py\n"
                                   b"Root-Is-Purelib: true\nTag: py3-none-any\n"))
    record = []
    for name, data in files:
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    files.append((f"{info}/RECORD", ("\n".join(record) + "\n").encode()))
    path = out / f"{DIST_NAME}-{ver}-py3-none-any.whl"
    for old in out.glob(f"{DIST_NAME}-*.whl"):
        old.unlink()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files:
            zi = zipfile.ZipInfo(name, ZIP_DATE)
            zi.external_attr = 0o644 << 16
            zi.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(zi, data)
    return path


def _copy(src: Path, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if not dst.exists() or dst.stat().st_mtime < src.stat().st_mtime or dst.stat().st_size != src.stat().st_size:
        shutil.copyfile(src, dst)
    return dst


def assemble(out: Path) -> list[Path]:
    """The whole site in out (the engine must be built there already: web/build.py)."""
    if not (PYODIDE / "pyodide.mjs").is_file():
        raise RuntimeError(f"{PYODIDE} is missing: run `npm ci --prefix web` (Pyodide from npm, pinned in "
                           "web/package-lock.json)")
    out.mkdir(parents=True, exist_ok=True)
    files = [build_wheel(out)]
    files += [_copy(PYODIDE / f, out / "pyodide" / f) for f in PYODIDE_FILES]
    files += [_copy(p, out / p.name) for p in sorted((WEB / "demo").iterdir()) if p.is_file()]
    files.append(_copy(WEB / "bitnet_pyodide.mjs", out / "bitnet_pyodide.mjs"))
    files.append(_copy(DEFAULT_MODEL, out / "models" / DEFAULT_MODEL.name))
    site = {"version": version(), "wheel": files[0].name, "model": f"models/{DEFAULT_MODEL.name}"}
    (out / "site.json").write_text(json.dumps(site, indent=1) + "\n")
    files.append(out / "site.json")
    return files


if __name__ == "__main__":
    for f in assemble(ROOT / "dist" / "web"):
        print(f)
