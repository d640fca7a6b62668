"""Cross-compile the engine and its C tests for 64-bit Windows (mingw-w64) and run them under wine.

This is how a Linux machine checks that the engine builds and behaves on Windows (no mmap: the
file is read into memory; Win32 threads in the pool; MinGW's C runtime):

1. every tests/c/test_*.c that tests/test_c_unit.py runs natively is built with
   x86_64-w64-mingw32-gcc against an archive of all engine sources (core_c/**/*.c and
   bindings_c/src/**/*.c, compiled as CMake compiles the Windows library: -O2 -std=c11
   -ffp-contract=off -DBITNET_BUILD, and here -Wall -Wextra -Werror), linked with -static (no
   DLL but Windows' own; checked with objdump), and run under wine from the repository root
   like test_c_unit runs them; each must exit 0;
2. bindings_c/examples/generate_ids.c, linked against the same archive, reproduces the golden
   greedy ids (tests/data/golden) of a few cases with the kernels the engine picks under wine
   (AVX2 on x86-64) and with BITNET_KERNEL=scalar, and a case with K-quant and TQ2_0 tensors
   gives the native Python binding's ids with both;
3. bindings_c/cli/bitnet_cli.c built the same way: ``bitnet-cli.exe -p "And God said" -n 16
   --temp 0`` prints what the native ``bitnet.Model().generate("And God said", max_tokens=16,
   temperature=0)`` returns, and ``--info`` names the kernel the native build picks (and
   ``scalar`` under BITNET_KERNEL=scalar, so the variable reaches the program).

Wine runs in a WINEPREFIX of its own under the session's temporary directory (creating it takes
a few seconds; it is made while the sources compile) with WINEDEBUG=-all; a program's output goes
to files, never pipes (wine's own processes inherit the descriptors and outlive the program;
see ``Wine`` in packaging/bnpack/windows_zip.py, whose environment and shutdown this reuses).

Needs the Debian packages gcc-mingw-w64-x86-64 (with binutils-mingw-w64-x86-64), wine and wine64
(packaging/apt-packages.txt lists them for the Windows zip). Without them the tests skip, except
under BITNET_CI=1 (.ci/run), where a missing tool is a failure. Overrides: BITNET_MINGW_CC,
BITNET_WINE.

Outside pytest: ``python tests/test_c_windows.py [test_name ...]`` (the C tests only).
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
from c_build import INCLUDES, STRICT, find_tool, require_tools, run_checked

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "packaging"))
from bnpack.windows_zip import TRIPLET, Wine, disallowed_imports, win_path  # noqa: E402

C_TESTS = sorted((ROOT / "tests" / "c").glob("test_*.c"))
# As CMake compiles the Windows library (cmake/BitnetCompileOptions.cmake: no _POSIX_C_SOURCE on
# Windows); -Werror so a warning that only MinGW's headers bring out fails here.
ENGINE_CFLAGS = ["-std=c11", "-ffp-contract=off", "-O2", "-Wall", "-Wextra", "-Werror", "-DBITNET_BUILD", *INCLUDES]
PROGRAM_CFLAGS = ["-std=c11", "-ffp-contract=off", "-O2", "-DBITNET_BUILD", *INCLUDES, "-pthread"]
LDFLAGS = ["-static"]  # libgcc and winpthreads inside the .exe: it needs no DLL but Windows' own
RUN_TIMEOUT_S = 300
JOBS = min(2, os.cpu_count() or 1)
# Programs that make no sense on Windows, with the reason.
SKIP: dict[str, str] = {
    "test_kernels_neon_smoke": "aarch64 Linux only (NEON kernels, mmap guard pages); on x86-64 it is a stub "
                               "that prints 'skipped' (tests/test_cross_aarch64.py runs it)",
}
EXAMPLES = {"generate_ids": ROOT / "bindings_c" / "examples" / "generate_ids.c",
            "bitnet-cli": ROOT / "bindings_c" / "cli" / "bitnet_cli.c"}
# Golden cases (tests/data/golden/cases.json) whose 32 greedy ids the native engine reproduces
# exactly: (case id, BITNET_KERNEL or None for the engine's choice). IQ2_BN: the ternary
# kernels; F16 with a 100-token prompt: the float kernels and a longer attention.
GOLDEN = [("ik-b158-A-IQ2_BN-p12", None), ("ik-tern-llama-A-F16-p100", None), ("ik-b158-A-IQ2_BN-p12", "scalar")]
# Against the native engine rather than the golden (which it does not follow exactly): TQ2_0
# layers with Q6_K/Q4_K embedding and output, the scalar K-quant kernels' fused multiply-adds.
NATIVE = [("upstream-tern-llama-A-tq2_0-upstream-p12", None), ("upstream-tern-llama-A-tq2_0-upstream-p12", "scalar")]
PROMPT = "And God said"


def mingw_cc() -> str | None:
    return find_tool("BITNET_MINGW_CC", [f"{TRIPLET}-gcc", f"{TRIPLET}-gcc-win32", f"{TRIPLET}-gcc-posix"])


def wine() -> str | None:
    return find_tool("BITNET_WINE", ["wine", "wine64"])


def _tools() -> tuple[str, str]:
    cc, emu = require_tools("the Windows C tests", {
        f"{TRIPLET}-gcc (Debian: gcc-mingw-w64-x86-64)": mingw_cc(),
        "wine (Debian: wine wine64)": wine(),
    })
    return cc, emu


def _binutil(cc: str, tool: str) -> str:
    prefix = cc[: cc.rfind("-gcc") + 1] if "-gcc" in Path(cc).name else f"{TRIPLET}-"
    return shutil.which(prefix + tool) or shutil.which(f"{TRIPLET}-{tool}") or tool


def build_engine_archive(cc: str, out_dir: Path) -> Path:
    """Compile every engine source for Windows into libengine.a."""
    return c_build.build_engine_archive(cc, ENGINE_CFLAGS, out_dir, "Windows", ar=_binutil(cc, "ar"), jobs=JOBS)


def build_program(cc: str, archive: Path, source: Path, out_dir: Path, name: str | None = None) -> Path:
    exe = out_dir / f"{name or source.stem}.exe"
    run_checked([cc, *PROGRAM_CFLAGS, *LDFLAGS, str(source), str(archive), "-o", str(exe), "-lm"],
         f"mingw-compiling {source.relative_to(ROOT)}")
    return exe


def run_wine(emu: str, prefix: Wine, exe: Path | str, args: list[str], *, env: dict[str, str | None] | None = None,
             timeout: float = RUN_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    """Run ``exe args`` under wine from the repository root; stdout and stderr through files."""
    full = prefix.env()
    full.pop("BITNET_KERNEL", None)  # the engine's own choice unless a caller sets it
    for k, v in (env or {}).items():
        if v is None:
            full.pop(k, None)
        else:
            full[k] = v
    cmd = [emu, str(exe), *args]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.run(cmd, cwd=ROOT, env=full, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                              timeout=timeout)
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(cmd, proc.returncode, out.read().decode("utf-8", "replace"),
                                           err.read().decode("utf-8", "replace"))


class _Session:
    """Makes the wine prefix while the engine compiles; then builds every wanted program and runs
    the C tests JOBS at a time; each test waits for its own result."""

    def __init__(self, base: Path, wanted: list[Path]):
        self.base = base
        self.wanted = wanted
        self.lock = threading.Lock()
        self.started = False
        self.failure: str | None = None
        self.wine = Wine(base / "wineprefix")
        self.emu = ""
        self.pool: ThreadPoolExecutor | None = None
        self.builds: dict[str, Future] = {}
        self.runs: dict[str, Future] = {}
        self.timings: dict[str, float] = {}

    def _timed(self, key: str, fn, *args):
        t0 = time.monotonic()
        try:
            return fn(*args)
        finally:
            self.timings[key] = time.monotonic() - t0

    def _start(self, cc: str, emu: str) -> None:
        self.emu = emu
        self.pool = ThreadPoolExecutor(max_workers=JOBS)
        # wine's first run creates the prefix (several seconds, mostly waiting): overlap it with the build
        prefix_ready = threading.Thread(
            target=lambda: self._timed("wine prefix", run_wine, emu, self.wine, "cmd", ["/c", "exit", "0"]), daemon=True)
        prefix_ready.start()
        try:
            archive = self._timed("engine archive", build_engine_archive, cc, self.base / "engine")
        except RuntimeError as exc:
            self.failure = str(exc)
            return
        programs = {t.stem: t for t in self.wanted}
        programs.update(EXAMPLES)
        for name, src in programs.items():
            self.builds[name] = self.pool.submit(build_program, cc, archive, src, self.base, name)
        prefix_ready.join()
        for t in self.wanted:  # builds are queued first, so a waiting run never starves them
            self.runs[t.stem] = self.pool.submit(
                lambda b=self.builds[t.stem], n=t.stem: self._timed(n, run_wine, emu, self.wine, b.result(), []))

    def ensure(self) -> None:
        cc, emu = _tools()
        with self.lock:
            if not self.started:
                self.started = True
                self._start(cc, emu)
        if self.failure:
            pytest.fail(self.failure, pytrace=False)

    def program(self, name: str) -> Path:
        self.ensure()
        try:
            return self.builds[name].result()
        except RuntimeError as exc:
            pytest.fail(str(exc), pytrace=False)

    def c_test(self, test_c: Path) -> subprocess.CompletedProcess:
        self.ensure()
        if test_c.stem not in self.runs:  # not collected up front (should not happen)
            exe = self.program(test_c.stem) if test_c.stem in self.builds else build_program(
                mingw_cc(), self.base / "engine" / "libengine.a", test_c, self.base)  # type: ignore[arg-type]
            self.runs[test_c.stem] = self.pool.submit(run_wine, self.emu, self.wine, exe, [])  # type: ignore[union-attr]
        return self.runs[test_c.stem].result()

    def run(self, name: str, args: list[str], env: dict[str, str | None] | None = None) -> subprocess.CompletedProcess:
        exe = self.program(name)
        return run_wine(self.emu, self.wine, exe, args, env=env)

    def close(self) -> None:
        if self.pool:
            self.pool.shutdown(wait=True, cancel_futures=True)
        if self.started and self.emu:
            self.wine.close()


@pytest.fixture(scope="session")
def win_session(request, tmp_path_factory):
    wanted = [item.callspec.params["test_c"] for item in request.session.items
              if getattr(item, "originalname", None) == "test_c_program_windows" and hasattr(item, "callspec")]
    wanted = [t for t in dict.fromkeys(wanted) if t.stem not in SKIP]
    session = _Session(tmp_path_factory.mktemp("c_windows"), wanted)
    yield session
    session.close()
    if session.timings:
        print("\ntest_c_windows timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in session.timings.items()))


# ---- 1. the C tests under wine ---------------------------------------------------------------

@pytest.mark.parametrize("test_c", C_TESTS, ids=[p.stem for p in C_TESTS])
def test_c_program_windows(test_c: Path, win_session: _Session) -> None:
    if test_c.stem in SKIP:
        pytest.skip(SKIP[test_c.stem])
    try:
        proc = win_session.c_test(test_c)
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{test_c.name}.exe (wine) ran longer than {RUN_TIMEOUT_S} s", pytrace=False)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-20000:]
        pytest.fail(f"{test_c.name}.exe (wine) exited with {proc.returncode}:\n{tail}", pytrace=False)


def test_programs_import_only_windows_dlls(win_session: _Session) -> None:
    """-static: libgcc and winpthreads are inside; a program needs only DLLs every Windows has."""
    cc, _ = _tools()
    objdump = _binutil(cc, "objdump")
    if not shutil.which(objdump):
        (pytest.fail if STRICT else pytest.skip)(f"{TRIPLET}-objdump (Debian: binutils-mingw-w64-x86-64) is missing")
    names = [t.stem for t in win_session.wanted] + list(EXAMPLES)
    imports = {}
    for name in names:
        out = run_checked([objdump, "-p", str(win_session.program(name))], f"objdump -p {name}.exe").stdout
        imports[name] = [line.split(":", 1)[1].strip() for line in out.splitlines() if "DLL Name:" in line]
    bad = disallowed_imports(imports, set())
    assert not bad, f"programs import DLLs Windows does not have: {bad}"


# ---- 2. golden greedy ids ----------------------------------------------------------------------

def _case(case_id: str) -> dict:
    from reference import golden

    return next(c for c in golden.cases() if c["id"] == case_id)


def _generate_ids(win_session: _Session, case: dict, kernel: str | None) -> list[int]:
    from reference import golden

    model = golden.model_path(case["model"])
    n = len(case["greedy_ids"])
    proc = win_session.run("generate_ids", [win_path(model), str(n), *map(str, case["prompt_ids"])],
                           env={"BITNET_KERNEL": kernel})
    assert proc.returncode == 0, f"generate_ids.exe exited with {proc.returncode}:\n{proc.stdout}{proc.stderr}"
    return [int(x) for x in proc.stdout.split()]


@pytest.mark.parametrize("case_id,kernel", GOLDEN, ids=[f"{c}-{k or 'auto'}" for c, k in GOLDEN])
def test_windows_golden_greedy_ids(case_id: str, kernel: str | None, win_session: _Session) -> None:
    case = _case(case_id)
    got = _generate_ids(win_session, case, kernel)
    assert got == case["greedy_ids"], f"{case_id} (BITNET_KERNEL={kernel}): wine {got}, golden {case['greedy_ids']}"


@pytest.mark.parametrize("case_id,kernel", NATIVE, ids=[f"{c}-{k or 'auto'}" for c, k in NATIVE])
def test_windows_greedy_ids_match_native(case_id: str, kernel: str | None, win_session: _Session) -> None:
    bitnet = pytest.importorskip("bitnet", reason="the bitnet engine package is not importable (not built yet?)")
    from reference import golden

    case = _case(case_id)
    got = _generate_ids(win_session, case, kernel)
    with bitnet.Model(str(golden.model_path(case["model"])), n_ctx=512) as m:
        want = m.generate_tokens(case["prompt_ids"], len(case["greedy_ids"]), temperature=0.0, ignore_eos=True)
    assert got == want, f"{case_id} (BITNET_KERNEL={kernel}): wine {got}, native {want}"


# ---- 3. bitnet-cli.exe -------------------------------------------------------------------------

def test_windows_cli_greedy_text_matches_python(win_session: _Session) -> None:
    bitnet = pytest.importorskip("bitnet", reason="the bitnet engine package is not importable (not built yet?)")
    with bitnet.Model() as m:
        want = m.generate(PROMPT, max_tokens=16, temperature=0)
        model, kernel = bitnet.default_model_path(), m.kernel
    proc = win_session.run("bitnet-cli", ["-m", win_path(Path(model)), "-p", PROMPT, "-n", "16", "--temp", "0"])
    assert proc.returncode == 0, f"bitnet-cli.exe exited with {proc.returncode}:\n{proc.stdout}{proc.stderr}"
    assert proc.stdout.replace("\r\n", "\n") == want + "\n", f"wine {proc.stdout!r}, Python binding {want!r}"

    for env_kernel, expect in ((None, kernel), ("scalar", "scalar")):
        info = win_session.run("bitnet-cli", ["-m", win_path(Path(model)), "--info"], env={"BITNET_KERNEL": env_kernel})
        assert info.returncode == 0, f"bitnet-cli.exe --info exited with {info.returncode}:\n{info.stdout}{info.stderr}"
        lines = [ln.split(":", 1)[1].strip() for ln in info.stdout.splitlines() if ln.startswith("kernel:")]
        assert lines == [expect], f"BITNET_KERNEL={env_kernel}: --info says kernel {lines}, expected {expect}"


def main(argv: list[str]) -> int:
    tests = [t for t in C_TESTS if (not argv or t.stem in argv or t.name in argv)]
    cc, emu = mingw_cc(), wine()
    if not cc or not emu:
        print(f"missing tools: mingw compiler {cc!r}, wine {emu!r}")
        return 2
    failed = 0
    with tempfile.TemporaryDirectory(prefix="bitnet_c_windows_") as tmp:
        prefix = Wine(Path(tmp) / "wineprefix")
        try:
            t0 = time.monotonic()
            archive = build_engine_archive(cc, Path(tmp) / "engine")
            print(f"== engine archive: {time.monotonic() - t0:.1f} s")
            for t in tests:
                if t.stem in SKIP:
                    print(f"== {t.name}: skipped ({SKIP[t.stem]})")
                    continue
                exe = build_program(cc, archive, t, Path(tmp))
                t1 = time.monotonic()
                proc = run_wine(emu, prefix, exe, [])
                sys.stdout.write(proc.stdout + proc.stderr)
                status = "ok" if proc.returncode == 0 else f"FAILED (exit {proc.returncode})"
                print(f"== {t.name} [wine, {time.monotonic() - t1:.1f} s]: {status}")
                failed += proc.returncode != 0
        finally:
            prefix.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
