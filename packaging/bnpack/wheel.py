"""The `wheel` target: the abi3 cffi wheel, built from the sdist alone, repaired to a manylinux tag.

Checks, in order:
1. the sdist builds it in a clean folder (so the sdist is complete);
2. ``auditwheel repair`` gives it a manylinux tag (no library outside the manylinux policy);
3. ``abi3audit --strict``: the extension uses only the stable ABI of CPython 3.9, so one wheel
   serves every CPython >= 3.9;
4. ``twine check --strict``;
5. installed into a fresh venv, the test suite passes against it with a PATH that holds no C
   compiler (so nothing is compiled at install or import time), and ``import bitnet`` comes from
   the venv, not the source tree. Tests that build C or drive other toolchains are left out
   (NEEDS_OTHER_TOOLS): a wheel user has none of them.
"""
from __future__ import annotations

import os
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path

from . import sdist as sdist_target
from .common import REPO, Artifact, ReleaseError, log, run, version
from .pytools import module_cmd, tool_env

# Test modules that compile C, drive other toolchains (emscripten, wine, qemu, a browser, sh) or
# run this orchestrator; every other test module runs against the wheel.
NEEDS_OTHER_TOOLS = ["test_c_*.py", "test_cross_aarch64.py", "test_fuzz_smoke.py", "test_valgrind.py",
                     "test_crossval.py", "test_wasm.py", "test_web_page.py", "test_install_scripts.py",
                     "test_packaging_*.py", "test_deploy.py"]


def build_from_sdist(sdist: Path, work: Path) -> Path:
    src = work / "sdist-src"
    with tarfile.open(sdist) as tar:
        tar.extractall(src, filter="data")
    (tree,) = src.iterdir()
    raw = work / "raw"
    run([*module_cmd("build"), "--wheel", "--outdir", raw, tree])
    (wheel,) = raw.glob("*.whl")
    if "-cp39-abi3-" not in wheel.name:
        raise ReleaseError(f"{wheel.name}: expected a cp39-abi3 wheel (setup.py's py_limited_api)")
    return wheel


def repair(wheel: Path, out_dir: Path) -> Path:
    before = set(out_dir.glob("*.whl"))
    run([*module_cmd("auditwheel"), "repair", "--wheel-dir", out_dir, wheel], env=tool_env())
    made = sorted(set(out_dir.glob(f"libbitnet-{version()}-*manylinux*.whl")) - before)
    if len(made) != 1:
        # A rebuild into the same folder overwrites: take the newest matching file.
        made = sorted(out_dir.glob(f"libbitnet-{version()}-*manylinux*.whl"), key=lambda p: p.stat().st_mtime)[-1:]
    if not made:
        raise ReleaseError(f"auditwheel repair wrote no manylinux wheel into {out_dir}")
    return made[0]


def test_in_fresh_venv(wheel: Path, work: Path) -> int:
    """Install the wheel and the test requirements into a new venv; run the suite against it."""
    venv = work / "venv"
    run([sys.executable, "-m", "venv", venv])
    py = venv / "bin" / "python"
    run([py, "-m", "pip", "install", "--disable-pip-version-check", "-q", wheel, "-r", REPO / "requirements-dev.txt"])
    # The PATH has the venv's bin only: no cc, no cmake. The tests and bitnet must not need them.
    env = {k: v for k, v in os.environ.items() if k not in ("BITNET_CI", "PYTHONPATH")}
    env["PATH"] = str(venv / "bin")
    if shutil.which("cc", path=env["PATH"]) or shutil.which("gcc", path=env["PATH"]):
        raise ReleaseError("a C compiler is on the test PATH")
    where = run([py, "-c", "import bitnet, sys; print(bitnet.__file__)"], cwd=work, env=env, capture=True).stdout.strip()
    if not where.startswith(str(venv)):
        raise ReleaseError(f"`import bitnet` found {where}, not the installed wheel")
    # pytest takes --ignore-glob relative to the working folder: give absolute patterns.
    ignores = [f"--ignore-glob={REPO / 'tests' / name}" for name in NEEDS_OTHER_TOOLS]
    result = run([py, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *ignores, REPO / "tests"],
                 cwd=work, env=env, capture=True)
    summary = result.stdout.strip().splitlines()[-1]
    log(f"tests against the installed wheel: {summary}")
    return int(summary.split(" passed")[0].split()[-1]) if " passed" in summary else 0


def build_and_check(out_dir: Path) -> list[Artifact]:
    sdist = sdist_target.build(out_dir)
    with tempfile.TemporaryDirectory(prefix="bitnet-wheel-") as tmp:
        work = Path(tmp)
        raw = build_from_sdist(sdist, work)
        wheel = repair(raw, out_dir)
        run([*module_cmd("abi3audit"), "--strict", "--verbose", wheel])
        run([*module_cmd("twine"), "check", "--strict", wheel])
        passed = test_in_fresh_venv(wheel, work)
    return [Artifact(wheel, ["built from the sdist alone", "auditwheel repair (manylinux tag)",
                             "abi3audit --strict (cp39 stable ABI)", "twine check --strict",
                             f"{passed} tests passed against it in a fresh venv with no C compiler on PATH"])]
