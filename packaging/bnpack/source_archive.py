"""The release source archive ``dist/bitnet-VERSION.tar.gz``: what Homebrew, the .deb and the
Windows build start from.

It holds the files git tracks plus untracked files git does not ignore (so a change not yet
committed is packaged as it is), with fixed owners, modes and mtimes: the same tree gives the same
bytes, so the sha256 written into the Homebrew formula and the Chocolatey script is stable.
"""
from __future__ import annotations

import gzip
import io
import subprocess
import tarfile
from pathlib import Path

from .common import DIST, REPO, Artifact, ReleaseError, log, sha256_file, version

# Not needed to build the C library, the CLI or the Python package: tests, tools, benchmarks
# and the recipes of other package managers stay in the repository.
EXCLUDED_TOP = {".ci", "tests", "benchmarks", "crossval", "fuzz", "tools", "homebrew", "chocolatey", "snap"}


def _files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=REPO, check=True, stdout=subprocess.PIPE).stdout
    names = sorted({n for n in out.decode("utf-8").split("\0") if n})
    return [n for n in names if n.split("/", 1)[0] not in EXCLUDED_TOP and (REPO / n).is_file()]


def _mtime() -> int:
    """The time of the last commit that touched an archived file, so the archive does not change
    with the clock, nor with commits to the excluded folders (such as the Homebrew formula)."""
    excludes = [f":(exclude){top}" for top in sorted(EXCLUDED_TOP)]
    out = subprocess.run(["git", "log", "-1", "--format=%ct", "--", ".", *excludes], cwd=REPO, check=True,
                         stdout=subprocess.PIPE, text=True).stdout.strip()
    return int(out or 0)


def build(out_dir: Path = DIST) -> Path:
    """Write ``bitnet-VERSION.tar.gz`` (top folder ``bitnet-VERSION/``) and return its path."""
    prefix = f"bitnet-{version()}"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{prefix}.tar.gz"
    mtime = _mtime()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in _files():
            src = REPO / name
            info = tarfile.TarInfo(f"{prefix}/{name}")
            info.size = src.stat().st_size
            info.mtime = mtime
            info.mode = 0o755 if src.stat().st_mode & 0o111 else 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            with open(src, "rb") as f:
                tar.addfile(info, f)
    # gzip with mtime 0 and no file name: the bytes depend on the contents only.
    with open(path, "wb") as f, gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0, compresslevel=9) as gz:
        gz.write(raw.getvalue())
    log(f"source archive {path} ({path.stat().st_size / 1e6:.2f} MB)")
    return path


def build_and_check(out_dir: Path) -> list[Artifact]:
    """The `source` target: build the archive twice and require the same bytes."""
    first = build(out_dir)
    digest = sha256_file(first)
    if sha256_file(build(out_dir)) != digest:
        raise ReleaseError(f"{first.name}: two builds of the same tree differ")
    return [Artifact(first, ["same sha256 when built twice"])]
