"""The standalone C tests (tests/c/test_*.c) under valgrind memcheck.

A third build of the programs of tests/test_c_unit.py: -O1 -g, no sanitizers,
each run under ``valgrind --error-exitcode=99 --leak-check=full
--errors-for-leak-kinds=definite,indirect``. This catches what ASan does not:
reads of uninitialised memory (MemorySanitizer needs clang and an instrumented
libc; valgrind needs neither), and it checks the binary as compiled without
sanitizer runtimes. A program passes when it exits 0 (its own checks passed)
and valgrind reported no error and no definite or indirect leak.

Valgrind runs code 20-50x slower; the whole set takes about a minute on 2 cores
(two programs at a time). Under valgrind the CPU reports no AVX-512, so the
kernel tests cover the scalar and AVX2 variants. test_kernels_neon_smoke is
aarch64-only and is left out on other machines.

Skipped when valgrind or a C compiler is missing, except under .ci/run
(BITNET_CI=1), where that is a failure. Outside pytest:
``python tests/test_valgrind.py [test_name ...]``.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import test_c_unit as cu  # noqa: E402  (its test list and compiler choice)
import c_build  # noqa: E402
from c_build import DEFINES, INCLUDES, ROOT, STRICT, run_checked  # noqa: E402

FLAGS = ["-std=c11", "-ffp-contract=off", "-O1", "-g", *DEFINES, *INCLUDES, "-pthread"]
VALGRIND_ARGS = ["--error-exitcode=99", "--leak-check=full", "--errors-for-leak-kinds=definite,indirect",
                 "--track-origins=yes", "--num-callers=30"]
RUN_TIMEOUT_S = 400

PROGRAMS = [p for p in cu.C_TESTS if not (p.stem == "test_kernels_neon_smoke" and platform.machine() not in ("aarch64", "arm64"))]


def _valgrind() -> str:
    vg = shutil.which("valgrind")
    if not vg:
        (pytest.fail if STRICT else pytest.skip)("valgrind not on PATH (Debian: apt-get install valgrind)")
    return vg


def build(cc: str, out_dir: Path, tests: list[Path]) -> dict[str, Path]:
    """libengine.a at -O1 -g, then every test program; returns stem -> executable."""
    archive = c_build.build_engine_archive(cc, FLAGS, out_dir, "valgrind")

    def link(test_c: Path) -> tuple[str, Path]:
        exe = out_dir / test_c.stem
        run_checked([cc, *FLAGS, str(test_c), str(archive), "-o", str(exe), "-lm"], f"building {test_c.name} (valgrind)")
        return test_c.stem, exe

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        return dict(pool.map(link, tests))


def run_under_valgrind(vg: str, exe: Path) -> subprocess.CompletedProcess:
    return subprocess.run([vg, *VALGRIND_ARGS, str(exe)], capture_output=True, text=True, cwd=ROOT,
                          timeout=RUN_TIMEOUT_S)


@pytest.fixture(scope="module")
def valgrind_results(tmp_path_factory):
    """Build once, then run every program under valgrind, two at a time; stem -> result."""
    vg = _valgrind()
    cc = cu._cc()
    try:
        exes = build(cc, tmp_path_factory.mktemp("valgrind"), PROGRAMS)
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)

    def one(item: tuple[str, Path]):
        stem, exe = item
        try:
            return stem, run_under_valgrind(vg, exe)
        except subprocess.TimeoutExpired:
            return stem, None

    # longest first, so the two workers finish together
    order = ["test_kernels_float", "test_gguf_hostile", "test_batch_decode", "test_kernels_ternary"]
    items = sorted(exes.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order))
    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(one, items))


@pytest.mark.parametrize("test_c", PROGRAMS, ids=[p.stem for p in PROGRAMS])
def test_valgrind_memcheck(test_c: Path, valgrind_results) -> None:
    proc = valgrind_results[test_c.stem]
    if proc is None:
        pytest.fail(f"{test_c.name} ran longer than {RUN_TIMEOUT_S} s under valgrind", pytrace=False)
    out = proc.stdout + proc.stderr
    if proc.returncode == 99:
        pytest.fail(f"valgrind found errors or leaks in {test_c.name}:\n{out[-20000:]}", pytrace=False)
    if proc.returncode != 0:
        pytest.fail(f"{test_c.name} under valgrind exited with {proc.returncode}:\n{out[-20000:]}", pytrace=False)
    assert "ERROR SUMMARY: 0 errors" in proc.stderr, proc.stderr[-5000:]


def main(argv: list[str]) -> int:
    vg = shutil.which("valgrind")
    if not vg:
        print("valgrind not on PATH", file=sys.stderr)
        return 2
    tests = [t for t in PROGRAMS if not argv or t.stem in argv or t.name in argv]
    cc = os.environ.get("CC") or shutil.which("cc") or "gcc"
    failed = 0
    with tempfile.TemporaryDirectory(prefix="bitnet_valgrind_") as tmp:
        exes = build(cc, Path(tmp), tests)
        for stem, exe in exes.items():
            proc = run_under_valgrind(vg, exe)
            sys.stdout.write(proc.stdout[-2000:] + proc.stderr[-4000:])
            print(f"== {stem} [valgrind]: {'ok' if proc.returncode == 0 else f'FAILED (exit {proc.returncode})'}")
            failed += proc.returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
