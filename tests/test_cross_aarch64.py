"""Cross-compile the C test programs for aarch64 and run them under qemu-user.

This is how an x86-64 machine checks the NEON kernels (core_c/kernels_neon.c)
and everything else in the engine on a 64-bit ARM CPU: every tests/c/test_*.c
is built with aarch64-linux-gnu-gcc against an archive of all engine sources
(core_c/**/*.c and bindings_c/src/**/*.c, -O2, as the library ships), linked
statically, and run twice under qemu-aarch64:

- ``max``: qemu's most capable CPU, which has the dot-product instructions,
  so the engine picks the SDOT kernels;
- ``cortex-a57``: an ARMv8.0 core without them, so it picks the plain NEON
  kernels (the run-time check in bn_kernels_fill_neon).

On aarch64 bn_isa_best() is BN_ISA_NEON, so the kernel test programs compare
the NEON set with the scalar one. The programs run from the repository root,
like tests/test_c_unit.py runs them, so their data paths resolve.

Needs the Debian packages gcc-aarch64-linux-gnu, libc6-dev-arm64-cross and
qemu-user-static (or qemu-user). Without them the tests skip, except under
BITNET_CI=1 (.ci/run), where a missing tool is a failure. Overrides:
BITNET_CROSS_CC (compiler), BITNET_QEMU_AARCH64 (emulator).

Outside pytest: ``python tests/test_cross_aarch64.py [max|cortex-a57] [test_name ...]``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

import c_build
from c_build import DEFINES, INCLUDES, find_tool, require_tools, run_checked

ROOT = Path(__file__).resolve().parents[1]
C_TESTS = sorted((ROOT / "tests" / "c").glob("test_*.c"))
CFLAGS = ["-std=c11", "-ffp-contract=off", "-O2", *DEFINES, *INCLUDES, "-pthread"]
# qemu CPU models: (name, whether the engine should see the dot-product extension)
CPUS = {"max": True, "cortex-a57": False}
RUN_TIMEOUT_S = 300
# Programs that cannot run under user-mode emulation, with the reason. None so far.
SKIP: dict[str, str] = {}
JOBS = min(2, os.cpu_count() or 1)  # shared CI machines: keep it modest


def cross_cc() -> str | None:
    return find_tool("BITNET_CROSS_CC", ["aarch64-linux-gnu-gcc", "aarch64-linux-gnu-gcc-12"])


def qemu() -> str | None:
    return find_tool("BITNET_QEMU_AARCH64", ["qemu-aarch64-static", "qemu-aarch64"])


def _tools() -> tuple[str, str]:
    cc, emu = require_tools("the aarch64 cross test", {
        "aarch64-linux-gnu-gcc (Debian: gcc-aarch64-linux-gnu libc6-dev-arm64-cross)": cross_cc(),
        "qemu-aarch64 or qemu-aarch64-static (Debian: qemu-user-static)": qemu(),
    })
    return cc, emu


def build_engine_archive(cc: str, out_dir: Path) -> Path:
    """Compile every engine source for aarch64 into libengine.a."""
    # the cross binutils' ar (the host's may not index aarch64 objects)
    prefix = cc[: -len("gcc")] if cc.endswith("gcc") else ""
    ar = (prefix and shutil.which(prefix + "ar")) or shutil.which("aarch64-linux-gnu-ar") or "ar"
    return c_build.build_engine_archive(cc, CFLAGS, out_dir, "aarch64", ar=ar, jobs=JOBS)


def build_program(cc: str, archive: Path, test_c: Path, out_dir: Path) -> Path:
    exe = out_dir / test_c.stem
    run_checked([cc, *CFLAGS, "-static", str(test_c), str(archive), "-o", str(exe), "-lm"], f"cross-compiling {test_c.name}")
    return exe


def run_program(emu: str, exe: Path, cpu: str) -> subprocess.CompletedProcess:
    # BITNET_EMULATED tells a program it runs under qemu (about 10-50x slower
    # than native); BITNET_EXPECT_DOTPROD what bn_cpu_features should report.
    env = {**os.environ, "BITNET_EMULATED": "1", "BITNET_EXPECT_DOTPROD": "1" if CPUS[cpu] else "0"}
    env.pop("BITNET_KERNEL", None)  # let each program choose its variants
    return subprocess.run([emu, "-cpu", cpu, str(exe)], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=RUN_TIMEOUT_S)


class _Session:
    """Builds the archive once, then every selected program, and runs the
    selected (program, CPU) pairs JOBS at a time; each test waits for its own."""

    def __init__(self, base: Path, wanted: list[tuple[Path, str]]):
        self.base = base
        self.wanted = wanted
        self.lock = threading.Lock()
        self.started = False
        self.failure: str | None = None
        self.runs: dict[tuple[str, str], Future] = {}
        self.pool: ThreadPoolExecutor | None = None

    def _start(self, cc: str, emu: str) -> None:
        try:
            archive = build_engine_archive(cc, self.base / "engine")
        except RuntimeError as exc:
            self.failure = str(exc)
            return
        self.pool = ThreadPoolExecutor(max_workers=JOBS)
        builds = {t: self.pool.submit(build_program, cc, archive, t, self.base) for t in dict.fromkeys(t for t, _ in self.wanted)}
        for test_c, cpu in self.wanted:  # builds are queued first, so a waiting run never starves them
            self.runs[(test_c.stem, cpu)] = self.pool.submit(lambda b=builds[test_c], c=cpu: run_program(emu, b.result(), c))

    def get(self, test_c: Path, cpu: str) -> subprocess.CompletedProcess:
        cc, emu = _tools()
        with self.lock:
            if not self.started:
                self.started = True
                self._start(cc, emu)
        if self.failure:
            pytest.fail(self.failure, pytrace=False)
        key = (test_c.stem, cpu)
        if key not in self.runs:  # not collected up front (should not happen)
            self.runs[key] = self.pool.submit(  # type: ignore[union-attr]
                lambda: run_program(emu, build_program(cc, self.base / "engine" / "libengine.a", test_c, self.base), cpu))
        return self.runs[key].result()

    def close(self) -> None:
        if self.pool:
            self.pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(scope="session")
def cross_session(request, tmp_path_factory):
    wanted = [(item.callspec.params["test_c"], item.callspec.params["cpu"]) for item in request.session.items
              if getattr(item, "originalname", None) == "test_c_program_aarch64" and hasattr(item, "callspec")]
    wanted = [(t, c) for t, c in wanted if t.stem not in SKIP]
    session = _Session(tmp_path_factory.mktemp("cross_aarch64"), wanted)
    yield session
    session.close()


@pytest.mark.parametrize("cpu", list(CPUS))
@pytest.mark.parametrize("test_c", C_TESTS, ids=[p.stem for p in C_TESTS])
def test_c_program_aarch64(test_c: Path, cpu: str, cross_session: _Session) -> None:
    if test_c.stem in SKIP:
        pytest.skip(SKIP[test_c.stem])
    try:
        proc = cross_session.get(test_c, cpu)
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{test_c.name} (qemu -cpu {cpu}) ran longer than {RUN_TIMEOUT_S} s", pytrace=False)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-20000:]
        pytest.fail(f"{test_c.name} (qemu -cpu {cpu}) exited with {proc.returncode}:\n{tail}", pytrace=False)


def main(argv: list[str]) -> int:
    cpus = [a for a in argv if a in CPUS] or list(CPUS)
    names = [a for a in argv if a not in CPUS]
    tests = [t for t in C_TESTS if not names or t.stem in names or t.name in names]
    cc, emu = cross_cc(), qemu()
    if not cc or not emu:
        print(f"missing tools: cross compiler {cc!r}, qemu {emu!r}")
        return 2
    failed = 0
    with tempfile.TemporaryDirectory(prefix="bitnet_cross_aarch64_") as tmp:
        t0 = time.monotonic()
        archive = build_engine_archive(cc, Path(tmp) / "engine")
        print(f"== engine archive: {time.monotonic() - t0:.1f} s")
        for t in tests:
            if t.stem in SKIP:
                print(f"== {t.name}: skipped ({SKIP[t.stem]})")
                continue
            exe = build_program(cc, archive, t, Path(tmp))
            for cpu in cpus:
                t1 = time.monotonic()
                proc = run_program(emu, exe, cpu)
                sys.stdout.write(proc.stdout + proc.stderr)
                status = "ok" if proc.returncode == 0 else f"FAILED (exit {proc.returncode})"
                print(f"== {t.name} [qemu -cpu {cpu}, {time.monotonic() - t1:.1f} s]: {status}")
                failed += proc.returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
