"""``bitnet.system_info()``: what this build and CPU offer."""

from __future__ import annotations

from ._lib import ffi, lib


def system_info() -> str:
    """One line: the kernel variants this build and CPU run and the CPU's SIMD
    features, e.g. ``"kernels: scalar avx2 (default avx2); cpu: avx2 fma f16c"``."""
    needed = int(lib.bitnet_system_info(ffi.NULL, 0))
    buf = ffi.new("char[]", needed + 1)
    lib.bitnet_system_info(buf, needed + 1)
    return ffi.string(buf).decode("utf-8", errors="replace")
