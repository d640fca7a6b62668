"""cffi builder for ``bitnet._bitnet`` (out-of-line API mode, abi3).

The cdef is the public header itself: the text of ``bindings_c/include/bitnet.h``
between the ``BITNET_CDEF_BEGIN`` and ``BITNET_CDEF_END`` markers, with the
``BITNET_API`` export macro removed, plus the ``extern "Python"`` callbacks
(``PYTHON_CALLBACKS``). The extension compiles the same C sources as CMake
(every ``.c`` under ``core_c/`` and ``bindings_c/src/``), so the Python
package needs no separately installed libbitnet.

Used by setup.py (``cffi_modules``). For an in-place development build:
``python bindings_py/bitnet/_ffi_build.py``.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

from cffi import FFI

ROOT = Path(__file__).resolve().parents[2]
HEADER = ROOT / "bindings_c" / "include" / "bitnet.h"
INCLUDE_DIRS = ["bindings_c/include", "core_c", "bindings_c/src"]
SOURCE_GLOBS = ["core_c/**/*.c", "bindings_c/src/**/*.c"]


def _rel(path: Path, relative: bool) -> str:
    """Under setuptools the build runs from the project root: relative paths
    keep object files inside build/. cffi's own compile() changes directory,
    so the development build uses absolute paths."""
    if relative:
        try:
            return path.relative_to(Path.cwd().resolve()).as_posix()
        except ValueError:
            pass
    return str(path)


# Python functions C calls back (cffi "extern Python", defined with
# @ffi.def_extern): the token callback of bitnet_generate_tokens_cb
# (bitnet/_generation.py) and the load progress callback (bitnet/_progress.py).
PYTHON_CALLBACKS = (
    'extern "Python" int _bitnet_on_token(void *, int32_t);\n'
    'extern "Python" int _bitnet_on_progress(float, void *);\n'
)


def cdef_text(header: Path = HEADER) -> str:
    text = header.read_text(encoding="utf-8")
    m = re.search(r"/\* BITNET_CDEF_BEGIN \*/(.*)/\* BITNET_CDEF_END \*/", text, re.S)
    if m is None:
        raise RuntimeError(f"{header}: BITNET_CDEF_BEGIN/END markers not found")
    return m.group(1).replace("BITNET_API ", "")


def sources(relative: bool = True) -> list[str]:
    found = sorted({p for pattern in SOURCE_GLOBS for p in ROOT.glob(pattern)})
    if not found:
        raise RuntimeError(f"no C sources under {ROOT}/core_c")
    return [_rel(p, relative) for p in found]


def _compile_args() -> tuple[list[str], list[str], list[tuple[str, str | None]], list[str]]:
    """(extra_compile_args, extra_link_args, define_macros, libraries)."""
    macros: list[tuple[str, str | None]] = [("BITNET_BUILD", None)]
    if sys.platform == "win32":
        return ["/O2", "/std:c11"], [], macros, []
    if sys.platform.startswith("linux") or "bsd" in sys.platform:
        macros.append(("_POSIX_C_SOURCE", "200809L"))
    # -O2 after distutils' own flags wins; never -march=native (wheels run
    # on other machines; kernels pick SIMD at run time). -ffp-contract=off:
    # the kernels spell out every fused multiply-add they want (GCC's -std=c11
    # default already; clang would fuse a*b+c on its own).
    return ["-O2", "-std=c11", "-ffp-contract=off", "-pthread"], ["-pthread"], macros, ["m"]


def make_ffibuilder(relative: bool = True) -> FFI:
    builder = FFI()
    builder.cdef(cdef_text() + PYTHON_CALLBACKS)
    cflags, ldflags, macros, libs = _compile_args()
    builder.set_source(
        "bitnet._bitnet",
        '#include "bitnet.h"\n',
        sources=sources(relative),
        include_dirs=[_rel(ROOT / d, relative) for d in INCLUDE_DIRS],
        define_macros=macros,
        extra_compile_args=cflags,
        extra_link_args=ldflags,
        libraries=libs,
        py_limited_api=True,
    )
    return builder


ffibuilder = make_ffibuilder()

if __name__ == "__main__":
    # In-place build for development: bindings_py/bitnet/_bitnet.abi3.so, so
    # that PYTHONPATH=bindings_py imports the package from the source tree.
    tmpdir = ROOT / "build" / "cffi"
    so = make_ffibuilder(relative=False).compile(tmpdir=str(tmpdir), verbose=True)
    target = Path(__file__).resolve().parent / Path(so).name
    # Copy then rename: a process that has the old module loaded keeps its
    # mapping of the old file instead of seeing it rewritten under it.
    partial = target.with_name(target.name + ".partial")
    shutil.copyfile(so, partial)
    os.replace(partial, target)
    print(f"wrote {target}")
