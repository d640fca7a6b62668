"""Big-endian hosts are refused with a clear error: checked on s390x under qemu-user.

GGUF files are little-endian and the engine reads them in place (memory-mapped weights,
memcpy'd scalars), so core_c/gguf.c refuses a big-endian host before it parses anything:
status BITNET_ERR_UNSUPPORTED ("unsupported"), message "PATH: big-endian hosts are not
supported" ("GGUF image: ..." for an image in memory). This module proves that on a real
big-endian machine, emulated:

1. every engine source (core_c/**/*.c, bindings_c/src/**/*.c) is cross-compiled for
   s390x-linux-gnu with the library's own warning flags (-Wall -Wextra, as
   cmake/BitnetCompileOptions.cmake) and must compile without a warning: the code stays
   portable to a target it does not run on;
2. bindings_c/examples/generate_ids.c and a small program that tries every entry point that
   opens a GGUF (bitnet_model_load with and without mmap, bitnet_model_load_from_memory,
   bitnet_tokenizer_load, the simple API's bitnet_load_model), linked statically against those
   objects, run under qemu-s390x on the default model (bitnet-english-i2_s.gguf): each must exit 1
   (an error, not a crash or a signal) with status "unsupported" and the message above from
   bitnet_last_error().

Needs the Debian packages gcc-s390x-linux-gnu, libc6-dev-s390x-cross (the smallest big-endian
cross toolchain in Debian 12, about 32 MB to download) and qemu-user-static (or qemu-user).
Without them the tests skip, except under BITNET_CI=1 (.ci/run), where a missing tool is a
failure. Overrides: BITNET_BE_CC (compiler), BITNET_QEMU_BE (emulator; the compiler must match
it).

Outside pytest: ``python tests/test_c_bigendian.py``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from c_build import DEFINES, INCLUDES, engine_sources, find_tool, require_tools, run_checked

ROOT = Path(__file__).resolve().parents[1]
CFLAGS = ["-std=c11", "-ffp-contract=off", "-O2", "-Wall", "-Wextra", *DEFINES, *INCLUDES, "-pthread"]
MODEL = ROOT / "bindings_py" / "bitnet" / "models" / "bitnet-english-i2_s.gguf"
MESSAGE = "big-endian hosts are not supported"
RUN_TIMEOUT_S = 120
JOBS = min(2, os.cpu_count() or 1)

# Tries every public entry point that opens a GGUF; one line per entry point, exit 0 only if all
# of them loaded (a little-endian host), 1 if any was refused.
REFUSAL_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bitnet.h>

static int refused;

static void report(const char *what, bitnet_status st, const char *msg) {
    printf("%s: %s: %s\n", what, bitnet_status_str(st), st == BITNET_OK ? "loaded" : msg);
    if (st != BITNET_OK) refused = 1;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s MODEL.gguf\n", argv[0]);
        return 2;
    }
    const char *path = argv[1];
    for (int mmap = 1; mmap >= 0; mmap--) {
        bitnet_model_params p;
        bitnet_model_params_init(&p);
        p.use_mmap = mmap;
        bitnet_model *m = NULL;
        bitnet_status st = bitnet_model_load(path, &p, &m);
        report(mmap ? "bitnet_model_load (mmap)" : "bitnet_model_load (read)", st, bitnet_last_error());
        bitnet_model_free(m);
    }

    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return 2;
    }
    size_t cap = 1 << 20, n = 0, got;
    unsigned char *buf = malloc(cap);
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            unsigned char *more = realloc(buf, cap *= 2);
            if (!more) free(buf);
            buf = more;
        }
    }
    fclose(f);
    if (!buf) {
        fprintf(stderr, "out of memory\n");
        return 2;
    }
    bitnet_model *m = NULL;
    bitnet_status st = bitnet_model_load_from_memory(buf, n, NULL, &m);
    report("bitnet_model_load_from_memory", st, bitnet_last_error());
    bitnet_model_free(m);
    free(buf);

    bitnet_tokenizer *tok = NULL;
    st = bitnet_tokenizer_load(path, &tok);
    report("bitnet_tokenizer_load", st, bitnet_last_error());
    bitnet_tokenizer_free(tok);

    BitNetModel *simple = bitnet_load_model(path);
    report("bitnet_load_model", simple ? BITNET_OK : BITNET_ERR_UNSUPPORTED, bitnet_last_error());
    if (simple) bitnet_free_model(simple);
    return refused;
}
"""


def cross_cc() -> str | None:
    return find_tool("BITNET_BE_CC", ["s390x-linux-gnu-gcc", "s390x-linux-gnu-gcc-12"])


def qemu() -> str | None:
    return find_tool("BITNET_QEMU_BE", ["qemu-s390x-static", "qemu-s390x"])


def _tools() -> tuple[str, str]:
    cc, emu = require_tools("the big-endian test", {
        "s390x-linux-gnu-gcc (Debian: gcc-s390x-linux-gnu libc6-dev-s390x-cross)": cross_cc(),
        "qemu-s390x or qemu-s390x-static (Debian: qemu-user-static)": qemu(),
    })
    return cc, emu


def build(cc: str, out: Path) -> tuple[dict[str, Path], dict[str, str]]:
    """The engine archive and the two programs; returns them and each source's warnings."""
    out.mkdir(parents=True, exist_ok=True)
    prefix = cc[: -len("gcc")] if cc.endswith("gcc") else ""
    ar = (prefix and shutil.which(prefix + "ar")) or shutil.which("s390x-linux-gnu-ar") or "ar"

    def compile_one(i_src: tuple[int, Path]) -> tuple[Path, str]:
        i, src = i_src
        obj = out / f"{i:03d}_{src.stem}.o"
        proc = run_checked([cc, *CFLAGS, "-c", str(src), "-o", str(obj)], f"cross-compiling {src.relative_to(ROOT)}")
        return obj, proc.stderr

    sources = engine_sources()
    with ThreadPoolExecutor(max_workers=JOBS) as pool:
        results = list(pool.map(compile_one, enumerate(sources)))
    warnings = {str(src.relative_to(ROOT)): err for src, (_, err) in zip(sources, results) if err.strip()}
    archive = out / "libengine.a"
    archive.unlink(missing_ok=True)
    run_checked([ar, "rcs", str(archive), *(str(obj) for obj, _ in results)], "archiving the s390x engine")

    (out / "refusal.c").write_text(REFUSAL_C, encoding="utf-8")
    programs = {}
    for name, src in (("generate_ids", ROOT / "bindings_c" / "examples" / "generate_ids.c"),
                      ("refusal", out / "refusal.c")):
        programs[name] = out / name
        run_checked([cc, *CFLAGS, "-Werror", "-static", str(src), str(archive), "-o", str(programs[name]), "-lm"],
             f"cross-compiling {name}")
    return programs, warnings


def run_program(emu: str, exe: Path, args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([emu, str(exe), *args], capture_output=True, text=True, cwd=ROOT, timeout=RUN_TIMEOUT_S)


@pytest.fixture(scope="module")
def be_build(tmp_path_factory):
    cc, emu = _tools()
    try:
        programs, warnings = build(cc, tmp_path_factory.mktemp("bigendian"))
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    return emu, programs, warnings


def test_library_compiles_for_s390x_without_warnings(be_build) -> None:
    _, _, warnings = be_build
    assert not warnings, "warnings compiling for big-endian s390x:\n" + "\n".join(
        f"--- {src}\n{err}" for src, err in warnings.items())


def test_s390x_is_big_endian(be_build) -> None:
    """The toolchain really targets a big-endian machine (else the tests below prove nothing)."""
    cc, _ = _tools()
    macros = run_checked([cc, "-dM", "-E", "-x", "c", os.devnull], "listing the cross compiler's macros").stdout
    assert "#define __BYTE_ORDER__ __ORDER_BIG_ENDIAN__" in macros


def test_generate_ids_is_refused_with_a_clear_error(be_build) -> None:
    emu, programs, _ = be_build
    proc = run_program(emu, programs["generate_ids"], [str(MODEL), "4", "1", "2", "3"])
    assert proc.returncode == 1, f"exit {proc.returncode} (1 expected: an error, not a crash)\n{proc.stdout}{proc.stderr}"
    assert proc.stdout == ""
    assert proc.stderr == f"error: load: unsupported: {MODEL}: {MESSAGE}\n"


def test_every_entry_point_is_refused(be_build) -> None:
    emu, programs, _ = be_build
    proc = run_program(emu, programs["refusal"], [str(MODEL)])
    assert proc.returncode == 1, f"exit {proc.returncode} (1 expected: an error, not a crash)\n{proc.stdout}{proc.stderr}"
    assert proc.stdout.splitlines() == [
        f"bitnet_model_load (mmap): unsupported: {MODEL}: {MESSAGE}",
        f"bitnet_model_load (read): unsupported: {MODEL}: {MESSAGE}",
        f"bitnet_model_load_from_memory: unsupported: GGUF image: {MESSAGE}",
        f"bitnet_tokenizer_load: unsupported: {MESSAGE}",  # (the tokenizer's messages do not name the file)
        f"bitnet_load_model: unsupported: {MODEL}: {MESSAGE}",
    ], proc.stderr


def main() -> int:
    cc, emu = cross_cc(), qemu()
    if not cc or not emu:
        print(f"missing tools: cross compiler {cc!r}, qemu {emu!r}")
        return 2
    with tempfile.TemporaryDirectory(prefix="bitnet_bigendian_") as tmp:
        programs, warnings = build(cc, Path(tmp))
        for src, err in warnings.items():
            print(f"== warning in {src}:\n{err}")
        rc = 0
        for name, args in (("generate_ids", [str(MODEL), "4", "1", "2", "3"]), ("refusal", [str(MODEL)])):
            proc = run_program(emu, programs[name], args)
            sys.stdout.write(proc.stdout + proc.stderr)
            print(f"== {name}: exit {proc.returncode}")
            rc |= proc.returncode != 1
    return 1 if rc or warnings else 0


if __name__ == "__main__":
    sys.exit(main())
