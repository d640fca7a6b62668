"""What every target shares: the repository, the version, dist/, running commands, artifacts."""
from __future__ import annotations

import hashlib
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

REPO = Path(__file__).resolve().parents[2]
HEADER = REPO / "bindings_c" / "include" / "bitnet.h"
DIST = REPO / "dist"


def version() -> str:
    """The single source of the version: BITNET_VERSION_STRING in bitnet.h (setup.py and CMake read it too)."""
    match = re.search(r'#define BITNET_VERSION_STRING "([^"]+)"', HEADER.read_text(encoding="utf-8"))
    if match is None:
        raise SystemExit(f"{HEADER}: no BITNET_VERSION_STRING")
    return match.group(1)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_sha256sums(out_dir: Path) -> Path:
    """``OUT/SHA256SUMS``: every other file in ``out_dir`` (not in its subfolders), sorted, in
    ``sha256sum`` format, so ``sha256sum -c SHA256SUMS`` checks a downloaded release and the
    install scripts verify what they fetch. Rewritten from the folder's contents on each run."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "SHA256SUMS"
    lines = [f"{sha256_file(f)}  {f.name}\n" for f in sorted(out_dir.iterdir())
             if f.is_file() and not f.is_symlink() and f.name != path.name and not f.name.startswith(".")]
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(lines), encoding="utf-8")
    tmp.replace(path)
    return path


def human_size(n: int) -> str:
    """``3.31 MB``, ``12.4 kB``, ``980 B``: decimal units, as pip and twine print them."""
    if n >= 1_000_000:
        return f"{n / 1e6:.2f} MB"
    return f"{n / 1e3:.1f} kB" if n >= 1000 else f"{n} B"


def log(message: str) -> None:
    print(f"==> {message}", file=sys.stderr, flush=True)


def run(cmd: Sequence[str | os.PathLike[str]], *, cwd: Path | None = None,
        env: Mapping[str, str] | None = None, capture: bool = False,
        input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command, echoing it first; a non-zero exit raises CommandFailed (with the output when
    captured: otherwise the tool has already written it to stderr)."""
    args = [str(a) for a in cmd]
    log("$ " + shlex.join(args) + (f"   (in {cwd})" if cwd else ""))
    full_env = None if env is None else {**os.environ, **env}
    # Tools write to our stderr: stdout is kept for the summary of what was made.
    proc = subprocess.run(args, cwd=cwd, env=full_env, text=True, input=input,
                          stdout=subprocess.PIPE if capture else sys.stderr,
                          stderr=subprocess.STDOUT if capture else None)
    if proc.returncode != 0:
        raise CommandFailed(args, proc.returncode, proc.stdout or "")
    return proc


class CommandFailed(RuntimeError):
    def __init__(self, args: list[str], returncode: int, output: str) -> None:
        super().__init__(f"{shlex.join(args)} exited with {returncode}\n{output[-4000:]}")
        self.returncode = returncode
        self.output = output


@dataclass
class Artifact:
    """One file a target made, and the checks it passed (shown in the summary)."""
    path: Path
    checked_by: list[str] = field(default_factory=list)

    def summary_row(self) -> str:
        return (f"{self.path.name}  {human_size(self.path.stat().st_size)}  sha256 {sha256_file(self.path)}\n"
                f"    checked by: {', '.join(self.checked_by) or 'nothing'}")


SUMMARY_ROW = re.compile(r"^(\S+)  [\d.]+ (?:MB|kB|B)  sha256 ([0-9a-f]{64})\n    checked by: (.*)$", re.M)


def parse_summary(stdout: str) -> dict[str, tuple[str, str]]:
    """The inverse of Artifact.summary_row over release.py's stdout: {file name: (sha256, checks)}."""
    return {name: (digest, checks) for name, digest, checks in SUMMARY_ROW.findall(stdout)}


class ReleaseError(RuntimeError):
    """A check failed or a tool is missing: the message says which and what to do."""


def require_tool(name: str, package: str) -> str:
    """The path of a program on PATH, or a ReleaseError naming the package that provides it."""
    import shutil

    path = shutil.which(name)
    if path is None:
        raise ReleaseError(f"`{name}` not found: install {package}")
    return path
