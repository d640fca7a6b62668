#!/usr/bin/env python3
"""Build the peer engines (outside this repository) for benchmarks/peers.

    python benchmarks/peers/build_peers.py --ik-src /work/peers/src/ik_llama.cpp \\
        --bitnet-src /work/peers/src/BitNet

Peers, each built into PREFIX/<name> (binaries in PREFIX/<name>/bin):

  upstream  llama.cpp vendored in the llama-cpp-python 0.3.36 sdist from PyPI. This
            script downloads it (pip download --no-deps --no-binary :all:) into
            --src-dir and checks its sha256 against crossval/requirements.txt (the crossval pin).
  ik        ik_llama.cpp (github ikawrakow/ik_llama.cpp): a source tree given by
            --ik-src (or $IK_SRC).
  bitnet    bitnet.cpp (github microsoft/BitNet) with its llama.cpp fork in
            3rdparty/llama.cpp (github Eddie-Wang1120/llama.cpp, branch merge-dev):
            a source tree given by --bitnet-src (or $BITNET_SRC). Built for I2_S
            with -DBITNET_X86_TL2=OFF / -DBITNET_ARM_TL1=OFF and clang (its
            CMakeLists refuses other compilers), without setup_env.py: the only
            codegen output the build needs, include/bitnet-lut-kernels.h, is only
            used by the TL1/TL2 kernels, so when the tree has none an empty stub
            is written there (the fork's CMakeLists lists it as a source file, so
            it has to be in the tree; this is what setup_env.py's codegen would
            have created). OpenMP with clang needs libomp (apt-get install
            libomp-14-dev); without it ggml falls back to its own thread pool.
  bitnet-main  the same build of a second bitnet.cpp tree (--bitnet-main-src or
            $BITNET_MAIN_SRC), e.g. a newer microsoft/BitNet whose submodule came
            from elsewhere (see README.md).

Targets: llama-bench, llama-quantize, llama-cli (upstream: llama-completion). A peer whose PREFIX/<name>/build.json
matches the source and options is skipped (cached); --force rebuilds.
Prints the versions/commits at the end (--info prints them without building).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time

# The same pinned llama-cpp-python sdist as crossval/ (crossval/requirements.txt: version and sha256).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "crossval"))
from install_llama_cpp import read_pin, sha256_file  # noqa: E402

UPSTREAM_PKG, UPSTREAM_VERSION, UPSTREAM_SHA256 = read_pin()
UPSTREAM_SDIST = f"llama_cpp_python-{UPSTREAM_VERSION}.tar.gz"
TARGETS = ["llama-bench", "llama-quantize", "llama-cli"]
# upstream's llama-cli is now a client of the server (needs LLAMA_BUILD_SERVER and the web UI);
# llama-completion is its classic command-line generator.
PEER_TARGETS = {"upstream": ["llama-bench", "llama-quantize", "llama-completion"]}
PEERS = ["upstream", "ik", "bitnet", "bitnet-main"]

COMMON_CMAKE = ["-DCMAKE_BUILD_TYPE=Release", "-DGGML_NATIVE=ON", "-DBUILD_SHARED_LIBS=OFF"]
CMAKE_ARGS = {
    "upstream": COMMON_CMAKE + ["-DLLAMA_OPENSSL=OFF", "-DLLAMA_CURL=OFF", "-DLLAMA_BUILD_TESTS=OFF",
                                "-DLLAMA_BUILD_SERVER=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_UI=OFF",
                                "-DLLAMA_USE_PREBUILT_UI=OFF"],
    # GGML_IQK_FA_ALL_QUANTS only adds flash-attention kernels for quantized KV caches (not used here)
    "ik": COMMON_CMAKE + ["-DLLAMA_CURL=OFF", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_SERVER=OFF",
                          "-DGGML_IQK_FA_ALL_QUANTS=OFF"],
    "bitnet": COMMON_CMAKE + ["-DBITNET_X86_TL2=OFF", "-DBITNET_ARM_TL1=OFF", "-DLLAMA_CURL=OFF",
                              "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_SERVER=OFF",
                              "-DCMAKE_C_COMPILER=clang", "-DCMAKE_CXX_COMPILER=clang++"],
}
CMAKE_ARGS["bitnet-main"] = CMAKE_ARGS["bitnet"]


def log(msg: str) -> None:
    print(f"[build_peers] {msg}", file=sys.stderr, flush=True)


def run(cmd: list[str], logfile: str, cwd: str | None = None) -> None:
    log("$ " + " ".join(cmd) + f"   (log: {logfile})")
    with open(logfile, "a") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        r = subprocess.run(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        with open(logfile, errors="replace") as f:
            tail = f.readlines()[-30:]
        sys.stderr.write("".join(tail))
        raise SystemExit(f"command failed ({r.returncode}): {' '.join(cmd)}; see {logfile}")


def source_commit(src: str) -> str:
    """git HEAD of a work tree, else where an export_git_tree.py export came from
    (owner/name@commit[:path], from its .export-info), else 'unknown'."""
    try:
        out = subprocess.run(["git", "-C", src, "rev-parse", "HEAD"], capture_output=True, text=True)
        if out.returncode == 0 and os.path.exists(os.path.join(src, ".git")):
            return out.stdout.strip()
    except OSError:
        pass
    info = os.path.join(src, ".export-info")
    if os.path.exists(info):
        kv = dict(line.rstrip("\n").split(" ", 1) for line in open(info) if not line.startswith("skipped "))
        repo = os.path.basename(os.path.dirname(kv.get("git_dir", "").rstrip("/"))).replace("+", "/")
        return f"{repo}@{kv.get('commit', '?')}" + (f":{kv['path']}" if kv.get("path") else "")
    return "unknown"


def fetch_upstream(src_dir: str) -> tuple[str, dict]:
    os.makedirs(src_dir, exist_ok=True)
    sdist = os.path.join(src_dir, UPSTREAM_SDIST)
    if not os.path.exists(sdist):
        run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
             f"{UPSTREAM_PKG}=={UPSTREAM_VERSION}", "-d", src_dir], os.path.join(src_dir, "pip-download.log"))
    digest = sha256_file(sdist)
    if digest != UPSTREAM_SHA256:
        raise SystemExit(f"{sdist}: sha256 {digest} != pinned {UPSTREAM_SHA256}")
    root = os.path.join(src_dir, f"llama_cpp_python-{UPSTREAM_VERSION}")
    vendor = os.path.join(root, "vendor", "llama.cpp")
    if not os.path.exists(os.path.join(vendor, "CMakeLists.txt")):
        log(f"extracting {sdist}")
        with tarfile.open(sdist) as t:
            t.extractall(src_dir, filter="data")
    # the sdist carries the submodule's git data (.git/modules/vendor/llama.cpp): its commit
    return vendor, {"source": f"PyPI {UPSTREAM_PKG}=={UPSTREAM_VERSION} sdist, vendor/llama.cpp",
                    "sdist_sha256": digest, "commit": source_commit(vendor)}


def write_lut_stub(src: str) -> str:
    path = os.path.join(src, "include", "bitnet-lut-kernels.h")
    with open(path, "w") as f:
        f.write("/* empty stub by bitnet's benchmarks/peers/build_peers.py: TL1/TL2 kernels are off (I2_S build) */\n"
                "#pragma once\n")
    return path


def build_one(name: str, src: str, meta: dict, prefix: str, jobs: int, force: bool) -> dict:
    build_dir = os.path.join(prefix, name)
    os.makedirs(build_dir, exist_ok=True)
    stamp = os.path.join(build_dir, "build.json")
    args = list(CMAKE_ARGS[name])
    if name.startswith("bitnet"):
        if not os.path.exists(os.path.join(src, "3rdparty", "llama.cpp", "CMakeLists.txt")):
            raise SystemExit(f"{src}/3rdparty/llama.cpp is empty: put the Eddie-Wang1120/llama.cpp submodule there")
        for cc in ("clang", "clang++"):
            if shutil.which(cc) is None:
                raise SystemExit(f"bitnet.cpp needs {cc} (e.g. apt-get install clang)")
        lut = os.path.join(src, "include", "bitnet-lut-kernels.h")
        if not os.path.exists(lut):
            log(f"{name}: no {lut}: writing an empty stub (TL1/TL2 off)")
            write_lut_stub(src)
        meta["bitnet_lut_kernels_h"] = "stub" if "empty stub by" in open(lut).read() else "from the tree"
    targets = PEER_TARGETS.get(name, TARGETS)
    want = {"name": name, "src": os.path.abspath(src), "cmake_args": args, "targets": targets, **meta}
    bins = [os.path.join(build_dir, "bin", t) for t in targets]
    if not force and os.path.exists(stamp) and all(os.path.exists(b) for b in bins):
        have = json.load(open(stamp))
        if all(have.get(k) == v for k, v in want.items()):
            log(f"{name}: cached in {build_dir} (built {have.get('built_at')}, {have.get('build_seconds')} s)")
            return have
    logfile = os.path.join(build_dir, "build.log")
    open(logfile, "w").close()
    t0 = time.time()
    run(["cmake", "-S", src, "-B", build_dir, *args], logfile)
    run(["cmake", "--build", build_dir, "--config", "Release", f"-j{jobs}", "--target", *targets], logfile)
    secs = round(time.time() - t0)
    missing = [b for b in bins if not os.path.exists(b)]
    if missing:
        raise SystemExit(f"{name}: built, but missing {missing}")
    want.update(built_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"), build_seconds=secs, jobs=jobs,
                compiler=compiler_version(build_dir))
    with open(stamp, "w") as f:
        json.dump(want, f, indent=2)
    log(f"{name}: built in {secs} s")
    return want


def compiler_version(build_dir: str) -> str:
    cache = os.path.join(build_dir, "CMakeCache.txt")
    cxx = "c++"
    if os.path.exists(cache):
        for line in open(cache, errors="replace"):
            if line.startswith("CMAKE_CXX_COMPILER:"):
                cxx = line.split("=", 1)[1].strip()
    try:
        return subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    except (OSError, IndexError):
        return "unknown"


def print_info(results: dict) -> None:
    for name, info in results.items():
        extra = " ".join(x for x in (info.get("sdist_sha256"), info.get("commit")) if x)
        sub = f" submodule {info['submodule_commit']}" if info.get("submodule_commit") else ""
        print(f"{name:9s} {info.get('source', info.get('src'))} {extra}{sub}  "
              f"[{info.get('build_seconds', '?')} s, {info.get('compiler', '?')}]")
        print(f"{'':9s} bin: {os.path.join(os.path.dirname(info.get('stamp', '')), 'bin')}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prefix", default="/work/peers/build", help="build root (default: /work/peers/build)")
    ap.add_argument("--src-dir", default="/work/peers/src", help="where the upstream sdist is downloaded/extracted")
    ap.add_argument("--ik-src", default=os.environ.get("IK_SRC"), help="ik_llama.cpp source tree ($IK_SRC)")
    ap.add_argument("--bitnet-src", default=os.environ.get("BITNET_SRC"),
                    help="microsoft/BitNet source tree with 3rdparty/llama.cpp filled in ($BITNET_SRC)")
    ap.add_argument("--bitnet-main-src", default=os.environ.get("BITNET_MAIN_SRC"),
                    help="a second bitnet.cpp tree, built as peer bitnet-main ($BITNET_MAIN_SRC)")
    ap.add_argument("--peers", default=",".join(PEERS), help=f"comma-separated subset of {','.join(PEERS)}")
    ap.add_argument("-j", "--jobs", type=int, default=2, help="parallel compile jobs (default: 2)")
    ap.add_argument("--force", action="store_true", help="rebuild even when cached")
    ap.add_argument("--info", action="store_true", help="only print what is built (no building)")
    args = ap.parse_args(argv)
    peers = [p for p in args.peers.split(",") if p]
    bad = [p for p in peers if p not in PEERS]
    if bad:
        ap.error(f"unknown peer(s) {bad}")
    results: dict[str, dict] = {}
    for name in peers:
        stamp = os.path.join(args.prefix, name, "build.json")
        if args.info:
            if os.path.exists(stamp):
                results[name] = {**json.load(open(stamp)), "stamp": stamp}
            else:
                print(f"{name:9s} not built ({stamp} missing)")
            continue
        if name == "upstream":
            src, meta = fetch_upstream(args.src_dir)
        else:
            src = {"ik": args.ik_src, "bitnet": args.bitnet_src, "bitnet-main": args.bitnet_main_src}[name]
            if not src:
                log(f"{name}: no source tree given (--{name}-src), skipped")
                continue
            meta = {"source": {"ik": "github ikawrakow/ik_llama.cpp"}.get(name, "github microsoft/BitNet"),
                    "commit": source_commit(src)}
            if name.startswith("bitnet"):
                meta["submodule_commit"] = source_commit(os.path.join(src, "3rdparty", "llama.cpp"))
        results[name] = {**build_one(name, src, meta, args.prefix, args.jobs, args.force), "stamp": stamp}
    print_info(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
