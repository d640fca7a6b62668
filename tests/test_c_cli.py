"""bitnet-cli, the native C command-line program (bindings_c/cli/bitnet_cli.c),
as an OS package installs it.

One CMake build per module (shared library, no examples), installed into a
temporary prefix with a multiarch-style libdir. Then the installed program:

- ``--version``/``--help`` and the install layout (binary, man page, default
  model under share/bitnet, an $ORIGIN-relative RUNPATH);
- the default model found through ``<bindir>/../share/bitnet/`` with a cleared
  environment (no LD_LIBRARY_PATH: the RUNPATH must do), ``BITNET_DEFAULT_MODEL``
  overriding it, ``-m`` overriding both, and a relocated prefix without
  share/ failing with a message saying to pass -m;
- its text, byte for byte the Python binding's for the same model, prompt
  and settings: greedy, and sampled with a seed (both run the same C sampler);
- bad input: usage errors exit 2, runtime errors exit 1 with the library's
  message, and nothing ever dies of a signal.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEADER = ROOT / "bindings_c" / "include" / "bitnet.h"
VERSION = re.search(r'#define BITNET_VERSION_STRING "([^"]+)"', HEADER.read_text()).group(1)
MODEL_FILE = "bitnet-english-i2_s.gguf"
SOURCE_MODEL = ROOT / "bindings_py" / "bitnet" / "models" / MODEL_FILE
STRICT = os.environ.get("BITNET_CI") == "1"  # .ci/run: missing tools fail instead of skipping
EXE = "bitnet-cli.exe" if sys.platform == "win32" else "bitnet-cli"
N = 24


def _multiarch_libdir() -> str:
    """lib/<triplet> where the compiler has one, else lib64: the RUNPATH must
    follow CMAKE_INSTALL_LIBDIR, not assume lib/."""
    cc = shutil.which("cc")
    triplet = subprocess.run([cc, "-print-multiarch"], capture_output=True, text=True).stdout.strip() if cc else ""
    return f"lib/{triplet}" if triplet else "lib64"


LIBDIR = _multiarch_libdir()


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        (pytest.fail if STRICT else pytest.skip)(f"{tool} is not installed")
    return path


def _build_step(cmd) -> None:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        pytest.fail(f"$ {' '.join(map(str, cmd))}\nexit {proc.returncode}\n{proc.stdout[-6000:]}{proc.stderr[-6000:]}",
                    pytrace=False)


def _clean_env(**extra: str) -> dict[str, str]:
    """PATH only (plus BITNET_KERNEL when the run sets one, so that C and
    Python use the same kernel): no LD_LIBRARY_PATH, no BITNET_DEFAULT_MODEL."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    if sys.platform == "win32":
        env["SYSTEMROOT"] = os.environ.get("SYSTEMROOT", "")
    if os.environ.get("BITNET_KERNEL"):
        env["BITNET_KERNEL"] = os.environ["BITNET_KERNEL"]
    env.update(extra)
    return env


def cli(exe: Path, *args, env=None, input: bytes | None = None, cwd=None) -> subprocess.CompletedProcess:
    """Run bitnet-cli; stdout/stderr as bytes. It must never die of a signal."""
    proc = subprocess.run([str(exe), *map(str, args)], capture_output=True, input=input,
                          env=_clean_env() if env is None else env, cwd=cwd, timeout=120)
    assert proc.returncode >= 0, f"killed by signal {-proc.returncode}: {proc.stderr.decode(errors='replace')}"
    return proc


# ---- the installed program ------------------------------------------------------


@pytest.fixture(scope="module")
def prefix(tmp_path_factory) -> Path:
    cmake = _need("cmake")
    _need("cc")
    base = tmp_path_factory.mktemp("c_cli")
    build, prefix = base / "build", base / "prefix"
    _build_step([cmake, "-S", ROOT, "-B", build, "-DCMAKE_BUILD_TYPE=Release", "-DBITNET_BUILD_EXAMPLES=OFF",
                 "-DBITNET_BUILD_STATIC=OFF", f"-DCMAKE_INSTALL_LIBDIR={LIBDIR}",
                 "-DBITNET_DEFAULT_MODEL_PATH="])  # no compile-time fallback: the prefix's share/ or nothing
    _build_step([cmake, "--build", build, "--parallel", str(os.cpu_count() or 2)])
    _build_step([cmake, "--install", build, "--prefix", prefix])
    return prefix


@pytest.fixture(scope="module")
def exe(prefix) -> Path:
    return prefix / "bin" / EXE


@pytest.fixture(scope="module")
def model_path(prefix) -> Path:
    return prefix / "share" / "bitnet" / MODEL_FILE


@pytest.fixture(scope="module")
def py_model(model_path):
    bitnet = pytest.importorskip("bitnet")
    with bitnet.Model(model_path) as m:
        yield m


def test_install_layout(prefix, model_path):
    assert (prefix / "bin" / EXE).is_file()
    assert (prefix / "share" / "man" / "man1" / "bitnet-cli.1").is_file()
    assert model_path.read_bytes() == SOURCE_MODEL.read_bytes()
    if sys.platform.startswith("linux") and shutil.which("readelf"):
        dyn = subprocess.run(["readelf", "-d", prefix / "bin" / EXE], capture_output=True, text=True).stdout
        assert f"[$ORIGIN/../{LIBDIR}]" in dyn, dyn


def test_version(exe):
    proc = cli(exe, "--version")
    assert proc.returncode == 0
    assert proc.stdout.decode() == f"bitnet-cli {VERSION}\n"


def test_help(exe):
    proc = cli(exe, "--help")
    assert proc.returncode == 0
    text = proc.stdout.decode()
    assert text.startswith("usage: bitnet-cli")
    for flag in ("-m, --model", "-p, --prompt", "-f, --file", "-n, --n-predict", "-c, --ctx-size", "-t, --threads",
                 "--temp", "--top-k", "--top-p", "--min-p", "--repeat-penalty", "--frequency-penalty",
                 "--presence-penalty", "-s, --seed", "--echo",
                 "--tokenize", "--info", "--system-info", "--version", "-h, --help"):
        assert flag in text, flag
    assert cli(exe, "-h").stdout == proc.stdout


def test_system_info_and_info(exe, py_model):
    import bitnet

    proc = cli(exe, "--system-info")
    assert proc.returncode == 0 and proc.stdout.decode() == bitnet.system_info() + "\n"
    info = cli(exe, "--info")
    assert info.returncode == 0, info.stderr
    lines = info.stdout.decode().splitlines()
    assert lines[0] == f"bitnet-cli {VERSION}"
    assert f"kernel:  {py_model.kernel}" in lines


# ---- which model ---------------------------------------------------------------------


def test_default_model_from_prefix(exe, model_path, tmp_path, py_model):
    """No -m, no BITNET_DEFAULT_MODEL, no LD_LIBRARY_PATH, another working directory,
    found on PATH: the installed model through <bindir>/../share/bitnet."""
    env = _clean_env(PATH=f"{exe.parent}{os.pathsep}{os.environ.get('PATH', '')}")
    assert "LD_LIBRARY_PATH" not in env and "BITNET_DEFAULT_MODEL" not in env
    proc = cli(EXE, "-p", "In the beginning", "-n", N, "--temp", "0", env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode() == py_model.generate("In the beginning", max_tokens=N, temperature=0) + "\n"


def test_bitnet_model_env_overrides_default(exe, model_path, tmp_path):
    bad = tmp_path / "env-named.gguf"
    bad.write_bytes(model_path.read_bytes()[:1000])
    proc = cli(exe, "-p", "x", "-n", 2, env=_clean_env(BITNET_DEFAULT_MODEL=str(bad)))
    assert proc.returncode == 1
    assert str(bad) in proc.stderr.decode()
    good = tmp_path / "copy.gguf"
    shutil.copyfile(model_path, good)
    assert cli(exe, "-p", "x", "-n", 2, env=_clean_env(BITNET_DEFAULT_MODEL=str(good))).returncode == 0
    # -m wins over the environment
    assert cli(exe, "-m", good, "-p", "x", "-n", 2, env=_clean_env(BITNET_DEFAULT_MODEL=str(bad))).returncode == 0


def test_relocated_prefix_without_default_model(prefix, model_path, tmp_path):
    """The prefix copied elsewhere without share/: the library still loads
    (relative RUNPATH), and no -m is a clear error, exit 1."""
    moved = tmp_path / "moved"
    shutil.copytree(prefix, moved, symlinks=True, ignore=lambda d, names: ["share"] if Path(d) == prefix else [])
    exe = moved / "bin" / EXE
    proc = cli(exe, "-p", "x")
    assert proc.returncode == 1
    err = proc.stderr.decode()
    assert err.startswith("bitnet-cli: error: ") and "-m" in err and "BITNET_DEFAULT_MODEL" in err, err
    assert str(moved / "share" / "bitnet" / MODEL_FILE) in err
    assert cli(exe, "-m", model_path, "-p", "x", "-n", 2).returncode == 0


# ---- the text: the Python binding's, byte for byte ---------------------------------------


@pytest.mark.parametrize("prompt", ["In the beginning", "And God said unto Moses,", "", "J\u00e9rusalem \u2014 the"])
def test_greedy_matches_python(exe, model_path, py_model, prompt):
    proc = cli(exe, "-m", model_path, "-p", prompt, "-n", N, "--temp", "0")
    assert proc.returncode == 0, proc.stderr
    expected = py_model.generate(prompt, max_tokens=N, temperature=0)
    assert proc.stdout == (expected + "\n").encode()


@pytest.mark.parametrize("settings", [
    dict(temperature=0.9, seed=42, top_k=20, top_p=0.9),
    dict(temperature=1.3, seed=7, top_k=0, top_p=1.0, min_p=0.0, repeat_penalty=1.2, repeat_last_n=16),
    dict(temperature=0.7, seed=2**64 - 1),
    dict(temperature=0.8, seed=11, frequency_penalty=0.7, presence_penalty=0.4, repeat_last_n=32),
    dict(temperature=0, frequency_penalty=1.5, presence_penalty=-0.5),  # the penalties steer greedy too
])
def test_sampled_matches_python(exe, model_path, py_model, settings):
    flags = {"temperature": "--temp", "seed": "--seed", "top_k": "--top-k", "top_p": "--top-p", "min_p": "--min-p",
             "repeat_penalty": "--repeat-penalty", "repeat_last_n": "--repeat-last-n",
             "frequency_penalty": "--frequency-penalty", "presence_penalty": "--presence-penalty"}
    args = [x for k, v in settings.items() for x in (flags[k], v)]
    proc = cli(exe, "-m", model_path, "-p", "And the LORD", "-n", 40, *args)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (py_model.generate("And the LORD", max_tokens=40, **settings) + "\n").encode()
    if settings["temperature"] > 0:  # greedy draws nothing, so it names no seed
        assert f"seed {settings['seed']}" in proc.stderr.decode()


def test_stats_tokenize_echo_and_stdin(exe, model_path, py_model):
    import bitnet

    prompt = "In the beginning God created"
    with bitnet.Tokenizer(model_path) as tok:
        ids = tok.tokenize(prompt, add_bos=tok.add_bos)
    proc = cli(exe, "-m", model_path, "--tokenize", "-p", prompt)
    assert proc.returncode == 0 and proc.stdout.decode().split() == [str(i) for i in ids]

    greedy = cli(exe, "-m", model_path, "-p", prompt, "-n", N, "--temp", "0")
    stats = greedy.stderr.decode().strip().splitlines()[-1]
    m = re.fullmatch(r"(\d+) prompt tokens \([\d.]+ tokens/s\), (\d+) generated \([\d.]+ tokens/s\), "
                     r"finish: (stop|length|context full)", stats)
    assert m, stats
    assert int(m.group(1)) == len(ids)
    n_gen = len(py_model.generate_tokens(ids, N))
    assert int(m.group(2)) == n_gen

    echo = cli(exe, "-m", model_path, "-p", prompt, "-n", N, "--temp", "0", "--echo")
    assert echo.stdout == prompt.encode() + greedy.stdout
    piped = cli(exe, "-m", model_path, "-f", "-", "-n", N, "--temp", "0", input=prompt.encode())
    assert piped.stdout == greedy.stdout


# ---- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize("args", [
    ["--bogus"], ["-n", "abc"], ["-n", "-5"], ["-n", "99999999999"], ["-m"], ["--temp", "x"], ["--temp", "nan"],
    ["--seed", "-1"], ["--top-k", "1.5"], ["-t", "-2"], ["--repeat-penalty", "0"], ["--frequency-penalty", "nan"],
    ["--presence-penalty", "x"], ["-p", "a", "-f", "b"],
    ["stray"], ["--version=1"],
])
def test_usage_errors_exit_2(exe, args):
    proc = cli(exe, *args)
    assert proc.returncode == 2, (args, proc.stderr)
    err = proc.stderr.decode()
    assert err.startswith("bitnet-cli: error: ") and "--help" in err, err
    assert proc.stdout == b""


def test_runtime_errors_exit_1(exe, model_path, tmp_path):
    missing = tmp_path / "no-such-model.gguf"
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(model_path.read_bytes()[:1000])
    garbage = tmp_path / "garbage.gguf"
    garbage.write_bytes(bytes(range(256)) * 64)
    bad_utf8 = tmp_path / "prompt.txt"
    bad_utf8.write_bytes(b"In the beginning \xff\xfe")
    cases = [
        (["-m", missing, "-p", "x"], str(missing)),
        (["-m", truncated, "-p", "x"], str(truncated)),
        (["-m", garbage, "-p", "x"], str(garbage)),
        (["-m", tmp_path, "-p", "x"], str(tmp_path)),
        (["-m", model_path, "-f", tmp_path / "no-such-prompt.txt"], "no-such-prompt.txt"),
        (["-m", model_path, "-f", bad_utf8], "UTF-8"),
        (["-m", model_path, "-c", "4", "-p", "In the beginning God created the heaven"], "context"),
        (["-m", model_path, "--kernel", "no-such-kernel", "-p", "x"], "no-such-kernel"),
    ]
    for args, needle in cases:
        proc = cli(exe, *args)
        err = proc.stderr.decode()
        assert proc.returncode == 1, (args, err)
        assert err.startswith("bitnet-cli: error: ") and needle in err, (args, err)
