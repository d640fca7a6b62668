"""libbitnet as a C user gets it: CMake build, install, and three consumers.

One CMake build per session (shared + static, examples off), installed into a
temporary prefix with ``cmake --install --prefix`` and a multiarch-style
libdir (lib/<triplet>), so the installed bitnet.pc and CMake package must find
the library where it really is. Then:

(a) pkg-config: ``cc prog.c $(pkg-config --cflags --libs bitnet)``;
(b) CMake: bindings_c/examples/ as a standalone project with
    ``find_package(bitnet)`` (CMAKE_PREFIX_PATH = the prefix);
(c) static: the same programs linked against libbitnet.a (no libbitnet.so
    in the result), through pkg-config --static and bitnet::bitnet_static.

The programs: a version check (needs no model), generate_ids (explicit API,
greedy from token ids: any model, no tokenizer needed; its ids must equal the
Python binding's) and simple (the four-call API: needs a model with a
tokenizer).
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "bindings_c" / "examples"
HEADER = ROOT / "bindings_c" / "include" / "bitnet.h"
VERSION = re.search(r'#define BITNET_VERSION_STRING "([^"]+)"', HEADER.read_text()).group(1)


def _multiarch_libdir() -> str:
    """lib/<triplet> where the compiler has one (Debian, Ubuntu), else lib64:
    a libdir other than lib/ proves bitnet.pc and the CMake package hard-code
    nothing, and find_package still searches it."""
    cc = shutil.which("cc")
    triplet = subprocess.run([cc, "-print-multiarch"], capture_output=True, text=True).stdout.strip() if cc else ""
    return f"lib/{triplet}" if triplet else "lib64"


LIBDIR = _multiarch_libdir()
STRICT = os.environ.get("BITNET_CI") == "1"  # .ci/run: missing tools fail instead of skipping
PROMPT_IDS = [1, 2, 3, 4, 5]
N_NEW = 8

VERSION_C = r"""
#include <stdio.h>
#include <string.h>
#include <bitnet.h>
int main(void) {
    printf("%s\n", bitnet_version());
    if (strcmp(bitnet_version(), BITNET_VERSION_STRING) != 0) return 1;
    if (bitnet_version_number() != BITNET_VERSION_NUMBER) return 1;
    /* errors are values, never an abort: a missing file gives NULL + message */
    BitNetModel *m = bitnet_load_model("/nonexistent/model.gguf");
    if (m != NULL || bitnet_last_error()[0] == '\0') return 1;
    printf("%s\n", bitnet_last_error());
    return 0;
}
"""


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        (pytest.fail if STRICT else pytest.skip)(f"{tool} is not installed")
    return path


def _run(cmd, *, env=None, cwd=None, timeout=900, check=True) -> subprocess.CompletedProcess:
    cmd = [str(c) for c in cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)
    if check and proc.returncode != 0:
        pytest.fail(f"$ {' '.join(cmd)}\nexit {proc.returncode}\n{proc.stdout[-8000:]}{proc.stderr[-8000:]}",
                    pytrace=False)
    return proc


# ---- the installed library ------------------------------------------------------


@pytest.fixture(scope="session")
def prefix(tmp_path_factory) -> Path:
    cmake = _need("cmake")
    _need("cc")
    base = tmp_path_factory.mktemp("c_library")
    build, prefix = base / "build", base / "prefix"
    jobs = str(os.cpu_count() or 2)
    _run([cmake, "-S", ROOT, "-B", build, "-DCMAKE_BUILD_TYPE=Release", "-DBITNET_BUILD_EXAMPLES=OFF",
          f"-DCMAKE_INSTALL_LIBDIR={LIBDIR}"])
    _run([cmake, "--build", build, "--parallel", jobs])
    # --prefix at install time (not the configure-time default) must be honoured by bitnet.pc too.
    _run([cmake, "--install", build, "--prefix", prefix])
    return prefix


@pytest.fixture(scope="session")
def pkg_env(prefix) -> dict[str, str]:
    _need("pkg-config")
    return {**os.environ, "PKG_CONFIG_PATH": str(prefix / LIBDIR / "pkgconfig")}


def _pkg_config(env, *args) -> list[str]:
    return _run(["pkg-config", *args, "bitnet"], env=env).stdout.split()


def test_install_layout(prefix):
    lib = prefix / LIBDIR
    assert (prefix / "include" / "bitnet.h").is_file()
    assert (lib / "libbitnet.a").is_file()
    if sys.platform.startswith("linux"):
        major = VERSION.split(".")[0]
        assert (lib / f"libbitnet.so.{VERSION}").is_file()
        assert (lib / f"libbitnet.so.{major}").is_symlink()
        assert (lib / "libbitnet.so").is_symlink()
        soname = _run(["objdump", "-p", lib / "libbitnet.so"], check=False).stdout if shutil.which("objdump") else ""
        if soname:
            assert f"SONAME               libbitnet.so.{major}" in soname
    for name in ("bitnetConfig.cmake", "bitnetConfigVersion.cmake", "bitnetTargets.cmake"):
        assert (lib / "cmake" / "bitnet" / name).is_file(), name
    assert (lib / "pkgconfig" / "bitnet.pc").is_file()


def test_shared_library_exports_only_the_api(prefix):
    nm = shutil.which("nm")
    if nm is None or not sys.platform.startswith("linux"):
        pytest.skip("needs nm on Linux")
    out = _run([nm, "-D", "--defined-only", prefix / LIBDIR / "libbitnet.so"]).stdout
    exported = {line.split()[-1] for line in out.splitlines() if line.split()[-2:-1] == ["T"]}
    declared = set(re.findall(r"BITNET_API[^;(]*?\b(bitnet_\w+)\s*\(", HEADER.read_text()))
    assert exported, "libbitnet.so exports no functions"
    assert exported <= declared, f"exported but not in bitnet.h: {sorted(exported - declared)}"
    missing = declared - exported
    assert not missing, f"declared in bitnet.h but not exported: {sorted(missing)}"


def test_pkg_config_metadata(prefix, pkg_env):
    assert _run(["pkg-config", "--modversion", "bitnet"], env=pkg_env).stdout.strip() == VERSION
    libdir = _run(["pkg-config", "--variable=libdir", "bitnet"], env=pkg_env).stdout.strip()
    assert Path(libdir) == prefix / LIBDIR
    assert f"-I{prefix / 'include'}" in _pkg_config(pkg_env, "--cflags")
    static_libs = _pkg_config(pkg_env, "--static", "--libs")
    assert "-lm" in static_libs


# ---- consumers -------------------------------------------------------------------


def _cc_pkg_config(pkg_env, src: Path, exe: Path, *, static: bool) -> Path:
    cflags = _pkg_config(pkg_env, "--cflags")
    libdir = _run(["pkg-config", "--variable=libdir", "bitnet"], env=pkg_env).stdout.strip()
    if static:
        libs = [str(Path(libdir) / "libbitnet.a") if a == "-lbitnet" else a
                for a in _pkg_config(pkg_env, "--static", "--libs")]
    else:
        libs = _pkg_config(pkg_env, "--libs") + [f"-Wl,-rpath,{libdir}"]
    _run(["cc", "-std=c11", "-O2", *cflags, src, "-o", exe, *libs])
    return exe


def _assert_static(exe: Path) -> None:
    if shutil.which("readelf") and sys.platform.startswith("linux"):
        dyn = _run(["readelf", "-d", exe]).stdout
        assert "libbitnet" not in dyn, f"{exe.name} should not need libbitnet.so:\n{dyn}"


@pytest.fixture(scope="session")
def pkg_config_programs(prefix, pkg_env, tmp_path_factory) -> dict[str, Path]:
    """name -> executable, built with pkg-config, shared and static."""
    out = tmp_path_factory.mktemp("pkg_config_consumers")
    (out / "version_check.c").write_text(VERSION_C)
    sources = {"version_check": out / "version_check.c", "simple": EXAMPLES / "simple.c",
               "generate_ids": EXAMPLES / "generate_ids.c"}
    progs = {}
    for name, src in sources.items():
        progs[name] = _cc_pkg_config(pkg_env, src, out / name, static=False)
        progs[name + "_static"] = _cc_pkg_config(pkg_env, src, out / (name + "_static"), static=True)
    return progs


@pytest.fixture(scope="session")
def cmake_programs(prefix, tmp_path_factory) -> dict[str, Path]:
    """name -> executable, bindings_c/examples built with find_package(bitnet)."""
    cmake = _need("cmake")
    progs = {}
    for static in (False, True):
        build = tmp_path_factory.mktemp("cmake_consumer_static" if static else "cmake_consumer")
        _run([cmake, "-S", EXAMPLES, "-B", build, "-DCMAKE_BUILD_TYPE=Release", f"-DCMAKE_PREFIX_PATH={prefix}",
              f"-DBITNET_EXAMPLES_STATIC={'ON' if static else 'OFF'}"])
        _run([cmake, "--build", build])
        for name in ("simple", "generate_ids"):
            progs[name + ("_static" if static else "")] = build / name
    return progs


def test_pkg_config_consumer_version(pkg_config_programs):
    for name in ("version_check", "version_check_static"):
        proc = _run([pkg_config_programs[name]])
        assert proc.stdout.splitlines()[0] == VERSION
    _assert_static(pkg_config_programs["version_check_static"])


def test_find_package_consumer_builds(cmake_programs):
    for exe in cmake_programs.values():
        assert exe.is_file()
    _assert_static(cmake_programs["generate_ids_static"])
    _assert_static(cmake_programs["simple_static"])


def test_find_package_version_check(prefix, tmp_path):
    """A consumer asking for an incompatible version must not get this one."""
    cmake = _need("cmake")
    (tmp_path / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.16)\nproject(v LANGUAGES C)\n"
        "find_package(bitnet 99 CONFIG QUIET)\nif(bitnet_FOUND)\n  message(FATAL_ERROR \"version 99 accepted\")\nendif()\n"
        f"find_package(bitnet {VERSION} CONFIG REQUIRED)\n"
        "if(NOT TARGET bitnet::bitnet OR NOT TARGET bitnet::bitnet_static)\n  message(FATAL_ERROR \"targets missing\")\nendif()\n")
    _run([cmake, "-S", tmp_path, "-B", tmp_path / "b", f"-DCMAKE_PREFIX_PATH={prefix}"])


def test_simple_reports_errors(pkg_config_programs, cmake_programs, tmp_path):
    """simple.c prints bitnet_last_error() and exits 1 on a file that is not a model."""
    bad = tmp_path / "not_a_model.gguf"
    bad.write_bytes(b"this is not a GGUF file")
    for exe in (pkg_config_programs["simple"], pkg_config_programs["simple_static"], cmake_programs["simple"]):
        proc = _run([exe, bad, "Hello", "4"], check=False)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert proc.stderr.startswith("error: ") and len(proc.stderr.strip()) > len("error: ")


# ---- generating with a real (tiny) model -----------------------------------------------


def _model_factory():
    """tests/reference/model_factory.py, or None while it does not exist."""
    if not (ROOT / "tests" / "reference" / "model_factory.py").is_file():
        return None
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return importlib.import_module("tests.reference.model_factory")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny bitnet-b1.58 GGUF (random ternary weights, no tokenizer)."""
    path = tmp_path_factory.mktemp("tiny_model") / "tiny.gguf"
    _run([sys.executable, ROOT / "tools" / "synth_model.py", path, "--shape", "tiny", "--format", "F32",
          "--embd-format", "F32", "--seed", "1"])
    return path


@pytest.fixture(scope="session")
def tiny_model_with_tokenizer(tmp_path_factory) -> Path:
    factory = _model_factory()
    if factory is None or not hasattr(factory, "tiny_model_with_tokenizer"):
        pytest.skip("needs tests/reference/model_factory.py with a tokenizer-bearing tiny model (not there yet)")
    return Path(factory.tiny_model_with_tokenizer(tmp_path_factory.mktemp("tok_model")))


def _ids(proc: subprocess.CompletedProcess) -> list[int]:
    return [int(x) for x in proc.stdout.split()]


def test_generate_ids_all_consumers_agree(pkg_config_programs, cmake_programs, tiny_model):
    args = [tiny_model, N_NEW, *PROMPT_IDS]
    results = {}
    for label, exe in [("pkg-config", pkg_config_programs["generate_ids"]),
                       ("pkg-config static", pkg_config_programs["generate_ids_static"]),
                       ("find_package", cmake_programs["generate_ids"]),
                       ("find_package static", cmake_programs["generate_ids_static"])]:
        results[label] = _ids(_run([exe, *args]))
    first = next(iter(results.values()))
    assert len(first) == N_NEW
    assert all(r == first for r in results.values()), results


def test_generate_ids_matches_python_binding(pkg_config_programs, tiny_model):
    bitnet = pytest.importorskip("bitnet")
    c_ids = _ids(_run([pkg_config_programs["generate_ids"], tiny_model, N_NEW, *PROMPT_IDS]))
    with bitnet.Model(tiny_model) as m:
        py_ids = m.generate_tokens(PROMPT_IDS, N_NEW, ignore_eos=True)
    assert c_ids == list(py_ids)


def test_four_call_api_generates_text(pkg_config_programs, cmake_programs, tiny_model_with_tokenizer):
    outputs = []
    for exe in (pkg_config_programs["simple"], pkg_config_programs["simple_static"], cmake_programs["simple"],
                cmake_programs["simple_static"]):
        proc = _run([exe, tiny_model_with_tokenizer, "Hello", "8"])
        assert proc.stdout.startswith("Hello")
        outputs.append(proc.stdout)
    assert all(o == outputs[0] for o in outputs), outputs
