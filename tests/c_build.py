"""What the C test modules share: where the engine's sources are, the flags every build of them
uses, finding (cross) tools, and running a build step with its output on failure.

Used by test_c_unit.py (native, plain and sanitized), test_cross_aarch64.py (qemu),
test_c_windows.py (mingw-w64 + wine) and test_c_bigendian.py (s390x + qemu).
"""
from __future__ import annotations

import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
INCLUDES = ["-I", str(ROOT / "core_c"), "-I", str(ROOT / "bindings_c" / "include"), "-I", str(ROOT / "bindings_c" / "src")]
DEFINES = ["-DBITNET_BUILD", "-D_POSIX_C_SOURCE=200809L"]
STRICT = os.environ.get("BITNET_CI") == "1"  # .ci/run: a missing tool is a failure, not a skip


def engine_sources() -> list[Path]:
    """Every C source of the engine and its public API (what libbitnet is made of)."""
    return sorted(set(ROOT.glob("core_c/**/*.c")) | set(ROOT.glob("bindings_c/src/**/*.c")))


def find_tool(env: str, names: list[str]) -> str | None:
    """$env when set (a name on PATH or a file), else the first of `names` on PATH."""
    explicit = os.environ.get(env)
    if explicit:
        return shutil.which(explicit) or (explicit if Path(explicit).is_file() else None)
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    return None


def require_tools(what: str, found: dict[str, str | None]) -> list[str]:
    """The found paths, in order; skips (fails under BITNET_CI=1) naming every missing tool.
    `found` maps a description with its Debian package to the path find_tool gave (or None)."""
    missing = [hint for hint, path in found.items() if not path]
    if missing:
        (pytest.fail if STRICT else pytest.skip)(f"{what} needs " + " and ".join(missing))
    return [path for path in found.values() if path]


def run_checked(cmd: list[str], what: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run a build step; on failure raise with the command and all of its output."""
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {proc.returncode}):\n$ {' '.join(cmd)}\n{proc.stdout}{proc.stderr}")
    return proc


def build_engine_archive(cc: str, flags: list[str], out_dir: Path, label: str, *, ar: str = "ar",
                         jobs: int | None = None) -> Path:
    """Compile every engine source with `flags` (in parallel) into out_dir/libengine.a, archived
    with `ar` (a cross build's own ar: the host's may not index foreign objects). `label` names
    the build in error messages."""
    out_dir.mkdir(parents=True, exist_ok=True)

    def compile_one(i_src: tuple[int, Path]) -> Path:
        i, src = i_src
        obj = out_dir / f"{i:03d}_{src.stem}.o"
        run_checked([cc, *flags, "-c", str(src), "-o", str(obj)], f"compiling {src.relative_to(ROOT)} ({label})")
        return obj

    with ThreadPoolExecutor(max_workers=jobs or os.cpu_count() or 2) as pool:
        objects = list(pool.map(compile_one, enumerate(engine_sources())))
    archive = out_dir / "libengine.a"
    archive.unlink(missing_ok=True)
    run_checked([ar, "rcs", str(archive), *map(str, objects)], f"archiving the engine ({label})")
    return archive
