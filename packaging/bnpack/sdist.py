"""The `sdist` target: libbitnet-VERSION.tar.gz, everything `pip install` needs to build the wheel.

Checked here: twine's metadata check, the version, that every C source and header git tracks is in
it with the default model, and that no build output slipped in. That it builds a working wheel by
itself is the `wheel` target's first step.
"""
from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path

from .common import REPO, Artifact, ReleaseError, log, run, version
from .pytools import module_cmd

# Build outputs that must never ship: a stale extension or cffi's generated C would be built
# against instead of the sources.
FORBIDDEN_SUFFIXES = (".so", ".o", ".a", ".pyc", ".pyd", ".dll")
FORBIDDEN_NAMES = {"bindings_py/bitnet/_bitnet.c"}


def build(out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"libbitnet-{version()}.tar.gz"
    path.unlink(missing_ok=True)
    run([*module_cmd("build"), "--sdist", "--outdir", out_dir, REPO])
    if not path.is_file():
        raise ReleaseError(f"python -m build did not write {path}")
    return path


def _tracked_sources() -> set[str]:
    """C sources, headers and build files git tracks: each must be in the sdist."""
    out = subprocess.run(["git", "ls-files", "core_c", "bindings_c", "cmake", "CMakeLists.txt", "setup.py",
                          "pyproject.toml", "LICENSE", "bindings_py/bitnet"],
                         cwd=REPO, check=True, stdout=subprocess.PIPE, text=True).stdout
    return {line for line in out.splitlines() if line}


def check_contents(sdist: Path) -> None:
    prefix = f"libbitnet-{version()}/"
    with tarfile.open(sdist) as tar:
        members = {m.name[len(prefix):] for m in tar.getmembers() if m.isfile() and m.name.startswith(prefix)}
    missing = sorted(_tracked_sources() - members)
    if missing:
        raise ReleaseError(f"{sdist.name} lacks {len(missing)} tracked files, e.g. {missing[:5]}: fix MANIFEST.in")
    bad = sorted(m for m in members if m.endswith(FORBIDDEN_SUFFIXES) or m in FORBIDDEN_NAMES or "__pycache__" in m)
    if bad:
        raise ReleaseError(f"{sdist.name} carries build outputs: {bad[:5]}")
    log(f"{sdist.name}: {len(members)} files, every tracked source present, no build outputs")


def build_and_check(out_dir: Path) -> list[Artifact]:
    sdist = build(out_dir)
    run([*module_cmd("twine"), "check", "--strict", sdist])
    check_contents(sdist)
    return [Artifact(sdist, ["twine check --strict", "every git-tracked C source, header and model inside",
                             "no build outputs inside"])]
