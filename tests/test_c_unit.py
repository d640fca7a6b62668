"""Build and run every standalone C test program, tests/c/test_*.c.

Each program links the engine's sources directly (an archive of every .c under
core_c/ and bindings_c/src/, so a program only pulls in what it uses) and
returns 0 from main when all its checks passed. Each runs twice:

- ``plain``: -O2, as the library ships;
- ``asan``: -O1 -fsanitize=address,undefined -fno-sanitize-recover=all, so a
  buffer overrun, use-after-free, leak or undefined behaviour fails the test.

Outside pytest: ``python tests/test_c_unit.py [plain|asan] [test_name ...]``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import c_build
from c_build import DEFINES, INCLUDES, STRICT, run_checked

ROOT = Path(__file__).resolve().parents[1]
C_TESTS = sorted((ROOT / "tests" / "c").glob("test_*.c"))
MODES = {
    "plain": ["-O2"],
    "asan": ["-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"],
}
RUN_ENV = {
    "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:halt_on_error=1:strict_string_checks=1",
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
}
RUN_TIMEOUT_S = 600


def _cc() -> str:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        (pytest.fail if STRICT else pytest.skip)("no C compiler (cc, gcc or clang) on PATH")
    return cc


def build_engine_archive(cc: str, mode: str, out_dir: Path) -> Path:
    """Compile the engine sources with the mode's flags into libengine.a."""
    flags = ["-std=c11", "-ffp-contract=off", *MODES[mode], *DEFINES, *INCLUDES, "-pthread"]
    return c_build.build_engine_archive(cc, flags, out_dir, mode)


def build_and_run(cc: str, mode: str, archive: Path, test_c: Path, out_dir: Path) -> subprocess.CompletedProcess:
    exe = out_dir / f"{test_c.stem}_{mode}"
    flags = ["-std=c11", "-ffp-contract=off", *MODES[mode], *DEFINES, *INCLUDES, "-pthread"]
    run_checked([cc, *flags, str(test_c), str(archive), "-o", str(exe), "-lm"], f"building {test_c.name} ({mode})")
    env = {**os.environ, **RUN_ENV}
    return subprocess.run([str(exe)], capture_output=True, text=True, cwd=ROOT, env=env, timeout=RUN_TIMEOUT_S)


@pytest.fixture(scope="session")
def engine_archives(tmp_path_factory):
    """mode -> archive, built once per session and mode, on first use."""
    cache: dict[str, Path | Exception] = {}
    base = tmp_path_factory.mktemp("c_unit")

    def get(mode: str) -> Path:
        if mode not in cache:
            try:
                cache[mode] = build_engine_archive(_cc(), mode, base / mode)
            except RuntimeError as exc:
                cache[mode] = exc
        result = cache[mode]
        if isinstance(result, Exception):
            pytest.fail(str(result), pytrace=False)
        return result

    get.base = base  # type: ignore[attr-defined]
    return get


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("test_c", C_TESTS, ids=[p.stem for p in C_TESTS])
def test_c_program(test_c: Path, mode: str, engine_archives) -> None:
    archive = engine_archives(mode)
    try:
        proc = build_and_run(_cc(), mode, archive, test_c, engine_archives.base / mode)
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{test_c.name} ({mode}) ran longer than {RUN_TIMEOUT_S} s", pytrace=False)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-20000:]
        pytest.fail(f"{test_c.name} ({mode}) exited with {proc.returncode}:\n{tail}", pytrace=False)


def main(argv: list[str]) -> int:
    modes = [a for a in argv if a in MODES] or list(MODES)
    names = [a for a in argv if a not in MODES]
    tests = [t for t in C_TESTS if not names or t.stem in names or t.name in names]
    cc = os.environ.get("CC") or shutil.which("cc") or "gcc"
    failed = 0
    with tempfile.TemporaryDirectory(prefix="bitnet_c_unit_") as tmp:
        for mode in modes:
            archive = build_engine_archive(cc, mode, Path(tmp) / mode)
            for t in tests:
                proc = build_and_run(cc, mode, archive, t, Path(tmp) / mode)
                sys.stdout.write(proc.stdout + proc.stderr)
                status = "ok" if proc.returncode == 0 else f"FAILED (exit {proc.returncode})"
                print(f"== {t.name} [{mode}]: {status}")
                failed += proc.returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
