#!/usr/bin/env python3
"""Install upstream llama.cpp (llama-cpp-python, pinned) into this Python, built from source.

    .venv/bin/python crossval/install_llama_cpp.py          # build once (cached), then install
    .venv/bin/python crossval/install_llama_cpp.py --check  # exit 0 if installed and current

1. Reads the pinned version and sdist sha256 from crossval/requirements.txt.
2. Downloads the sdist from PyPI (``pip download --no-deps --no-binary :all:``) into the
   cache and checks its sha256; a mismatch deletes the file and fails.
3. Builds a wheel from it (``pip wheel``) with the CMake options in ``CMAKE_ARGS`` below:
   CPU only, no tools/tests/examples/server, no llava/mtmd, no `common` library.
4. Installs that wheel into this Python (``sys.executable``) with its runtime
   dependencies, constrained by the repository's requirements.txt (numpy, jinja2 pins).

Cache: ``--cache-dir``, else ``$BITNET_CROSSVAL_CACHE``, else
``$XDG_CACHE_HOME/bitnet-crossval`` (``~/.cache/bitnet-crossval``). A wheel is reused
when its key (sdist sha256, CMake options, platform) matches; ``--force`` rebuilds.
Build output goes to ``<cache>/logs/``; ``<cache>/wheels/<key>/build.json`` records
the options and the build time. Standard library only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PIN_FILE = HERE / "requirements.txt"
SKIP_COMMON = HERE / "cmake" / "skip_llama_common.cmake"

# GGML_NATIVE=OFF: no -march=native, so the wheel runs on any x86-64 CPU with AVX2/FMA/F16C
# (ggml's defaults when native is off; the golden data was made on such a CPU, and our
# kernels follow ggml's AVX2 summation order) and the result does not depend on the CPU
# that built it. Everything else only removes code the Python bindings never load:
# llama-cpp-python builds llama.cpp as a subproject, so tools/tests/examples/server are
# already off by default (they are named anyway, so a future default cannot add them);
# LLAVA_BUILD=OFF drops libmtmd (imported lazily, only for multimodal chat handlers);
# SKIP_COMMON (added by cmake_args()) drops llama-common, see that file; no OpenSSL/curl.
CMAKE_ARGS = [
    "-DGGML_NATIVE=OFF",
    "-DGGML_CUDA=OFF", "-DGGML_VULKAN=OFF", "-DGGML_METAL=OFF", "-DGGML_BLAS=OFF", "-DGGML_RPC=OFF",
    "-DLLAVA_BUILD=OFF",
    "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_TOOLS=OFF",
    "-DLLAMA_BUILD_SERVER=OFF", "-DLLAMA_BUILD_APP=OFF", "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_CURL=OFF", "-DLLAMA_OPENSSL=OFF",
]
# llama-cpp-python's only runtime dependency not already pinned in requirements.txt
EXTRA_DEPS = ["diskcache==5.6.3"]


def log(msg: str) -> None:
    print(f"[install_llama_cpp] {msg}", file=sys.stderr, flush=True)


def read_pin(path: Path = PIN_FILE) -> tuple[str, str, str]:
    """(package, version, sdist sha256) from the one requirement line of ``path``."""
    for line in path.read_text().splitlines():
        m = re.match(r"^\s*([A-Za-z0-9_.-]+)==(\S+)\s+--hash=sha256:([0-9a-f]{64})\s*$", line)
        if m:
            return m.group(1), m.group(2), m.group(3)
    raise SystemExit(f"{path}: no 'package==version --hash=sha256:...' line")


def default_cache_dir() -> Path:
    if os.environ.get("BITNET_CROSSVAL_CACHE"):
        return Path(os.environ["BITNET_CROSSVAL_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "bitnet-crossval"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cmake_args() -> list[str]:
    return [*CMAKE_ARGS, f"-DCMAKE_PROJECT_llama.cpp_INCLUDE={SKIP_COMMON}"]


def build_key(sdist_sha256: str) -> dict:
    """What the wheel depends on; its hash names the wheel's cache folder (the include
    file by content, not path, so every checkout shares one wheel)."""
    return {"sdist_sha256": sdist_sha256, "cmake_args": CMAKE_ARGS,
            "skip_common_cmake": SKIP_COMMON.read_text(), "machine": platform.machine(), "platform": sys.platform}


def run_logged(cmd: list[str], logfile: Path, env: dict | None = None) -> None:
    log("$ " + " ".join(cmd) + f"   (log: {logfile})")
    with open(logfile, "a") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)
    if r.returncode != 0:
        sys.stderr.write("".join(logfile.read_text(errors="replace").splitlines(keepends=True)[-40:]))
        raise SystemExit(f"command failed ({r.returncode}): {' '.join(cmd)}; see {logfile}")


def fetch_sdist(pkg: str, version: str, sha256: str, cache: Path) -> Path:
    src = cache / "sdist"
    src.mkdir(parents=True, exist_ok=True)
    sdist = src / f"{pkg.replace('-', '_')}-{version}.tar.gz"
    if not sdist.exists():
        run_logged([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                    f"{pkg}=={version}", "-d", str(src)], cache / "logs" / "pip-download.log")
    digest = sha256_file(sdist)
    if digest != sha256:
        sdist.unlink()
        raise SystemExit(f"{sdist}: sha256 {digest} != pinned {sha256} (deleted)")
    log(f"{sdist.name}: sha256 {digest} (pinned, ok)")
    return sdist


def build_wheel(sdist: Path, key: dict, wheel_dir: Path, jobs: int, cache: Path) -> Path:
    logfile = cache / "logs" / f"build-{wheel_dir.name}.log"
    logfile.write_text("")
    env = dict(os.environ)
    env["CMAKE_ARGS"] = shlex.join(cmake_args())       # read (shlex-split) by scikit-build-core
    env["CMAKE_BUILD_PARALLEL_LEVEL"] = str(jobs)    # cmake --build -j (ninja would take all cores + 2)
    env.pop("FORCE_CMAKE", None)
    t0 = time.time()
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        run_logged([sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w", tmp, str(sdist)], logfile, env)
        wheels = list(Path(tmp).glob("*.whl"))
        if len(wheels) != 1:
            raise SystemExit(f"pip wheel made {len(wheels)} wheels in {tmp}; see {logfile}")
        wheel_dir.mkdir(parents=True, exist_ok=True)
        for old in wheel_dir.glob("*.whl"):
            old.unlink()
        wheel = wheel_dir / wheels[0].name
        shutil.move(str(wheels[0]), wheel)
    secs = round(time.time() - t0)
    stamp = {**key, "wheel": wheel.name, "wheel_sha256": sha256_file(wheel), "build_seconds": secs, "jobs": jobs,
             "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "compiler": _first_line(["c++", "--version"]),
             "cmake": _first_line(["cmake", "--version"]), "cpu_count": os.cpu_count()}
    (wheel_dir / "build.json").write_text(json.dumps(stamp, indent=2) + "\n")
    log(f"built {wheel.name} in {secs} s with {jobs} jobs")
    return wheel


def _first_line(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True).stdout.splitlines()[0]
    except (OSError, IndexError):
        return "unknown"


def cached_wheel(wheel_dir: Path, key: dict) -> Path | None:
    stamp = wheel_dir / "build.json"
    if not stamp.exists():
        return None
    have = json.loads(stamp.read_text())
    wheel = wheel_dir / str(have.get("wheel", ""))
    if all(have.get(k) == v for k, v in key.items()) and wheel.is_file() \
            and sha256_file(wheel) == have.get("wheel_sha256"):
        log(f"cached: {wheel} (built {have.get('built_at')} in {have.get('build_seconds')} s)")
        return wheel
    return None


def installed_from(pkg: str) -> tuple[str | None, str | None]:
    """(version, local wheel path it was installed from) of ``pkg`` in this Python."""
    from importlib import metadata

    try:
        dist = metadata.distribution(pkg)
    except metadata.PackageNotFoundError:
        return None, None
    direct = dist.read_text("direct_url.json")  # PEP 610: pip writes it for installs from a file
    url = json.loads(direct).get("url", "") if direct else ""
    return dist.version, (unquote(urlparse(url).path) if url.startswith("file:") else None)


def install(wheel: Path, pkg: str, version: str) -> None:
    have_version, have_path = installed_from(pkg)
    pip = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check"]
    if have_version == version and have_path and Path(have_path).resolve() == wheel.resolve():
        log(f"{pkg} {version} already installed from {wheel}")
    else:
        if have_version:
            log(f"replacing installed {pkg} {have_version} (from {have_path or 'an index'})")
        subprocess.run(pip + ["--no-deps", "--force-reinstall", str(wheel)], check=True)
    # dependencies (numpy, jinja2, typing-extensions, diskcache), held to the repo's pins
    subprocess.run(pip + ["-q", "-c", str(ROOT / "requirements.txt"), str(wheel), *EXTRA_DEPS], check=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache-dir", type=Path, default=None, help="default: $BITNET_CROSSVAL_CACHE or "
                    "~/.cache/bitnet-crossval")
    ap.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1, help="parallel compile jobs "
                    "(default: every core)")
    ap.add_argument("--force", action="store_true", help="rebuild the wheel even when cached")
    ap.add_argument("--no-install", action="store_true", help="only build (or find) the wheel; print its path")
    ap.add_argument("--check", action="store_true", help="exit 0 if the cached wheel is what is installed")
    args = ap.parse_args(argv)
    pkg, version, sha256 = read_pin()
    cache = (args.cache_dir or default_cache_dir()).resolve()
    (cache / "logs").mkdir(parents=True, exist_ok=True)
    key = build_key(sha256)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    wheel_dir = cache / "wheels" / f"{pkg}-{version}-{digest}"
    wheel = None if args.force else cached_wheel(wheel_dir, key)
    if args.check:
        have_version, have_path = installed_from(pkg)
        ok = wheel is not None and have_path is not None and Path(have_path).resolve() == wheel.resolve()
        print(f"{pkg} {have_version or 'not installed'}" + (f" from {have_path}" if have_path else "")
              + ("" if ok else " (not the current crossval build)"))
        return 0 if ok else 1
    if wheel is None:
        wheel = build_wheel(fetch_sdist(pkg, version, sha256, cache), key, wheel_dir, max(1, args.jobs), cache)
    if args.no_install:
        print(wheel)
        return 0
    install(wheel, pkg, version)
    print(f"{pkg} {version}: {wheel}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
