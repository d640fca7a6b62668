"""The Windows release zip ``bitnet-VERSION-windows-x86_64.zip``: libbitnet.dll and bitnet-cli.exe
cross-built with mingw-w64 from the source archive, and smoke-tested under wine. The Chocolatey
package (choco.py) downloads it; anyone can unzip it anywhere.

Build: CMake with ``cmake/toolchains/mingw-w64-x86_64.cmake``, Release, linked with ``-static`` so
that libgcc (and winpthreads, were it used) are inside the DLL and the exe, installed (stripped)
into a staging prefix under the zip's top folder ``bitnet-VERSION-windows-x86_64/``::

    bin/bitnet-cli.exe  bin/libbitnet.dll
    include/bitnet.h
    lib/libbitnet.dll.a (import library)  lib/libbitnet.a (static)
    lib/pkgconfig/bitnet.pc (relocatable: prefix=${pcfiledir}/../..)  lib/cmake/bitnet/*.cmake
    share/bitnet/bitnet-english-i2_s.gguf (the default model bitnet-cli finds at bin/../share/bitnet)
    share/man/man1/bitnet-cli.1  LICENSE.txt  README.txt

The zip is reproducible: sorted entries, one fixed date (the source archive's, also the PE time
stamps, through SOURCE_DATE_EPOCH), build paths mapped away (-ffile-prefix-map), stripped binaries.

Checks, all on the tree unzipped from the zip itself:

1. its files are exactly the list above;
2. every .exe and .dll imports only Windows system DLLs (objdump -p) or DLLs the zip ships;
3. under wine (a temporary WINEPREFIX, or $BITNET_WINEPREFIX to reuse one):
   ``bitnet-cli.exe --version`` prints what the native Linux bitnet-cli (built from the same
   archive) prints, and ``bitnet-cli.exe -p "And God said" -n 16 --temp 0`` with no -m (the
   default model found through share/bitnet) prints exactly the native greedy text;
4. a C program compiled with mingw against the zip, once with the flags of its bitnet.pc and once
   through its CMake package (find_package(bitnet CONFIG)), runs under wine and prints what the
   same program linked natively prints (bitnet_version(), and text from bitnet_generate).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from . import source_archive
from .common import Artifact, ReleaseError, log, require_tool, run, sha256_file, version
from .deb import unpack_source
from .usage_check import PROMPT, USE_C

TRIPLET = "x86_64-w64-mingw32"
TOOLCHAIN = "cmake/toolchains/mingw-w64-x86_64.cmake"
MODEL = "bitnet-english-i2_s.gguf"
CLI_ARGS = ["-p", PROMPT, "-n", "16", "--temp", "0"]

# (program, Debian package that provides it)
TOOLS = (
    ("cmake", "cmake"),
    ("cc", "gcc"),
    (f"{TRIPLET}-gcc", "gcc-mingw-w64-x86-64"),
    (f"{TRIPLET}-objdump", "binutils-mingw-w64-x86-64"),
    ("pkg-config", "pkg-config"),
    ("wine", "wine and wine64"),
)

# DLLs every 64-bit Windows has (matched case-insensitively; * is a wildcard). A DLL that is not
# here must be shipped in the zip's bin/.
SYSTEM_DLLS = ("kernel32.dll", "msvcrt.dll", "ucrtbase.dll", "api-ms-win-crt-*.dll", "api-ms-win-core-*.dll",
               "ntdll.dll", "shell32.dll", "advapi32.dll", "user32.dll", "ole32.dll", "ws2_32.dll",
               "bcrypt.dll")


def zip_name(ver: str) -> str:
    return f"bitnet-{ver}-windows-x86_64.zip"


def top_folder(ver: str) -> str:
    return f"bitnet-{ver}-windows-x86_64"


def expected_files() -> set[str]:
    """The zip's files, relative to its top folder."""
    cmake = "lib/cmake/bitnet"
    return {
        "bin/bitnet-cli.exe", "bin/libbitnet.dll", "include/bitnet.h",
        "lib/libbitnet.dll.a", "lib/libbitnet.a", "lib/pkgconfig/bitnet.pc",
        f"{cmake}/bitnetConfig.cmake", f"{cmake}/bitnetConfigVersion.cmake",
        f"{cmake}/bitnetTargets.cmake", f"{cmake}/bitnetTargets-release.cmake",
        f"share/bitnet/{MODEL}", "share/man/man1/bitnet-cli.1", "LICENSE.txt", "README.txt",
    }


README = """\
bitnet {ver} for Windows x86_64
{underline}

An inference engine for BitNet b1.58 (ternary-weight) language models in
GGUF files. https://github.com/bitnet-engine/bitnet

  bin\\bitnet-cli.exe          generate text from a prompt:
                              bin\\bitnet-cli.exe -p "And God said" -n 16 --temp 0
                              (bitnet-cli.exe --help lists the flags)
  bin\\libbitnet.dll           the library bitnet-cli.exe uses
  share\\bitnet\\{model}
                              the default model (found through bin\\..\\share\\bitnet;
                              -m MODEL.gguf picks another)
  include\\bitnet.h            the C API
  lib\\libbitnet.dll.a         import library of libbitnet.dll (MinGW; define
                              BITNET_SHARED when compiling against the DLL)
  lib\\libbitnet.a             static library (MinGW)
  lib\\pkgconfig\\bitnet.pc     pkg-config file (relocatable)
  lib\\cmake\\bitnet\\           CMake package: find_package(bitnet CONFIG),
                              targets bitnet::bitnet and bitnet::bitnet_static

Built with mingw-w64 (GCC) against msvcrt; the DLL and the program need only
DLLs that come with Windows. The SIMD kernels pick themselves at run time.

License: MIT (LICENSE.txt).
"""


# ---- build -------------------------------------------------------------------------------------

def _jobs() -> str:
    return str(os.cpu_count() or 2)


def cross_build(src: Path, build: Path, prefix: Path, mtime: int) -> None:
    """Configure, build and install (stripped) the Windows library and CLI from ``src`` into ``prefix``.
    The PE time stamps are ``mtime``: strip writes SOURCE_DATE_EPOCH (else the clock) into them."""
    link = "-static -Wl,--no-insert-timestamp"
    env = {"SOURCE_DATE_EPOCH": str(mtime)}
    run(["cmake", "-S", src, "-B", build, f"-DCMAKE_TOOLCHAIN_FILE={src / TOOLCHAIN}",
         "-DCMAKE_BUILD_TYPE=Release", "-DBITNET_BUILD_EXAMPLES=OFF", "-DBITNET_BUILD_CLI=ON",
         "-DBITNET_BUILD_SHARED=ON", "-DBITNET_BUILD_STATIC=ON", "-DBITNET_INSTALL_DEFAULT_MODEL=ON",
         f"-DCMAKE_C_FLAGS=-ffile-prefix-map={src}=.", f"-DCMAKE_SHARED_LINKER_FLAGS={link}",
         f"-DCMAKE_EXE_LINKER_FLAGS={link}"], env=env)
    run(["cmake", "--build", build, "-j", _jobs()], env=env)
    run(["cmake", "--install", build, "--prefix", prefix, "--strip"], env=env)


def native_build(src: Path, build: Path) -> Path:
    """The Linux bitnet-cli and libbitnet.a from the same sources, the reference for the wine runs;
    returns the build folder (bitnet-cli, libbitnet.a)."""
    run(["cmake", "-S", src, "-B", build, "-DCMAKE_BUILD_TYPE=Release", "-DBITNET_BUILD_EXAMPLES=OFF",
         "-DBITNET_BUILD_SHARED=OFF", "-DBITNET_BUILD_STATIC=ON", "-DBITNET_BUILD_CLI=ON",
         "-DBITNET_INSTALL=OFF"])
    run(["cmake", "--build", build, "-j", _jobs()])
    return build


def _crlf(text: str) -> bytes:
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")


def finish_tree(tree: Path, src: Path, ver: str) -> None:
    """What CMake's install does not do for a zip: a relocatable bitnet.pc, LICENSE.txt, README.txt."""
    pc = tree / "lib" / "pkgconfig" / "bitnet.pc"
    text, n = re.subn(r"(?m)^prefix=.*$", "prefix=${pcfiledir}/../..", pc.read_text(encoding="utf-8"))
    if n != 1:
        raise ReleaseError(f"{pc}: no prefix= line to make relocatable")
    pc.write_text(text, encoding="utf-8")
    (tree / "LICENSE.txt").write_bytes(_crlf((src / "LICENSE").read_text(encoding="utf-8")))
    title = f"bitnet {ver} for Windows x86_64"
    (tree / "README.txt").write_bytes(_crlf(README.format(ver=ver, underline="=" * len(title), model=MODEL)))


def write_zip(root: Path, top: str, dest: Path, mtime: int) -> None:
    """Zip ``root``'s files under ``top/``: sorted, one date, DOS attributes, deflate level 9."""
    date_time = time.gmtime(max(mtime, 315532800))[:6]  # zip dates start in 1980
    files = sorted((p for p in root.rglob("*") if p.is_file()), key=lambda p: p.relative_to(root).as_posix())
    tmp = dest.with_name(dest.name + ".tmp")
    with zipfile.ZipFile(tmp, "w") as zf:
        for path in files:
            info = zipfile.ZipInfo(f"{top}/{path.relative_to(root).as_posix()}", date_time)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 0  # MS-DOS/Windows attributes
            info.external_attr = 0x20  # FILE_ATTRIBUTE_ARCHIVE
            zf.writestr(info, path.read_bytes(), compresslevel=9)
    tmp.replace(dest)


def unzip(path: Path, dest: Path) -> Path:
    """Unpack the zip (names checked: no absolute paths, no ..) and return its top folder."""
    with zipfile.ZipFile(path) as zf:
        tops = set()
        for name in zf.namelist():
            parts = name.split("/")
            if name.startswith("/") or ".." in parts or "\\" in name:
                raise ReleaseError(f"{path.name}: bad entry name {name!r}")
            tops.add(parts[0])
        if len(tops) != 1:
            raise ReleaseError(f"{path.name}: expected one top folder, found {sorted(tops)}")
        zf.extractall(dest)
    return dest / tops.pop()


# ---- checks ------------------------------------------------------------------------------------

def check_contents(tree: Path) -> None:
    found = {p.relative_to(tree).as_posix() for p in tree.rglob("*") if p.is_file()}
    missing, extra = expected_files() - found, found - expected_files()
    if missing or extra:
        raise ReleaseError(f"zip contents differ: missing {sorted(missing)}, unexpected {sorted(extra)}")


def dll_imports(binary: Path) -> list[str]:
    """The DLL names in a PE file's import table (objdump -p)."""
    out = run([f"{TRIPLET}-objdump", "-p", binary], capture=True).stdout
    return re.findall(r"^\s*DLL Name: (\S+)\s*$", out, re.M)


def disallowed_imports(imports: dict[str, list[str]], shipped: set[str]) -> list[str]:
    """``binary: DLL`` for each import that is neither a Windows system DLL nor shipped in the zip."""
    import fnmatch

    allowed = {name.lower() for name in shipped}
    bad = []
    for binary, names in sorted(imports.items()):
        for name in names:
            low = name.lower()
            if low not in allowed and not any(fnmatch.fnmatchcase(low, pat) for pat in SYSTEM_DLLS):
                bad.append(f"{binary}: {name}")
    return bad


def check_imports(tree: Path) -> dict[str, list[str]]:
    binaries = sorted(p for p in tree.rglob("*") if p.suffix.lower() in (".exe", ".dll"))
    imports = {b.relative_to(tree).as_posix(): dll_imports(b) for b in binaries}
    for binary, names in imports.items():
        log(f"{binary} imports {', '.join(names)}")
    bad = disallowed_imports(imports, {p.name for p in (tree / "bin").glob("*.dll")})
    if bad:
        raise ReleaseError("binaries import DLLs that are neither Windows' nor in the zip "
                           "(link them statically):\n" + "\n".join(bad))
    return imports


def win_path(path: Path) -> str:
    """A Linux path as wine's programs see it (drive Z: is /)."""
    return "Z:" + str(path.resolve()).replace("/", "\\")


@dataclass
class Wine:
    """Runs Windows programs under wine in one WINEPREFIX; ``close()`` stops its wineserver.

    The programs' output goes to files, never pipes: wine's own processes (wineserver, services.exe,
    winedevice.exe) inherit the descriptors and outlive the program, so reading a pipe to its end
    would wait for them."""
    prefix: Path

    def env(self, **extra: str) -> dict[str, str]:
        # mscoree/mshtml off: no Mono/Gecko installer when the prefix is created. Wine passes the
        # environment on: without BITNET_DEFAULT_MODEL, bitnet-cli.exe must find its model itself.
        env = {k: v for k, v in os.environ.items() if k != "BITNET_DEFAULT_MODEL"}
        return {**env, "WINEPREFIX": str(self.prefix), "WINEDEBUG": "-all",
                "WINEDLLOVERRIDES": "mscoree,mshtml=", **extra}

    def run(self, exe: Path, args: list[str], *, cwd: Path, timeout: float = 60,
            winepath: Path | None = None) -> subprocess.CompletedProcess[bytes]:
        """Run ``exe args`` (stdout and stderr kept apart); a non-zero exit raises ReleaseError."""
        extra = {"WINEPATH": win_path(winepath)} if winepath else {}
        cmd = [shutil.which("wine") or "wine", str(exe), *args]
        log("$ " + " ".join(cmd) + f"   (wine, in {cwd})")
        start = time.monotonic()
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            try:
                proc = subprocess.run(cmd, cwd=cwd, env=self.env(**extra), stdin=subprocess.DEVNULL,
                                      stdout=out, stderr=err, timeout=timeout)
            except subprocess.TimeoutExpired as exc:
                raise ReleaseError(f"wine {exe.name}: no exit after {timeout:.0f} s") from exc
            out.seek(0)
            err.seek(0)
            result = subprocess.CompletedProcess(cmd, proc.returncode, out.read(), err.read())
        log(f"wine {exe.name}: exit {result.returncode} in {time.monotonic() - start:.1f} s")
        if result.returncode != 0:
            raise ReleaseError(f"wine {exe.name} {' '.join(args)} exited {result.returncode}\n"
                               f"{result.stdout.decode(errors='replace')}{result.stderr.decode(errors='replace')}")
        return result

    def close(self) -> None:
        """Stop this prefix's wineserver and the wine processes it serves (it would linger 3 s)."""
        server = shutil.which("wineserver") or "/usr/lib/wine/wineserver"
        subprocess.run([server, "-k"], env=self.env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=60, check=False)

USE_CMAKE = """\
cmake_minimum_required(VERSION 3.16)
project(use_bitnet LANGUAGES C)
find_package(bitnet {ver} CONFIG REQUIRED)
add_executable(use_cmake use.c)
target_link_libraries(use_cmake PRIVATE bitnet::bitnet)
"""


def build_consumers(tree: Path, work: Path, src: Path, ver: str) -> dict[str, Path]:
    """The C program compiled with mingw against the unzipped tree: through bitnet.pc, and through
    the CMake package. Both must link the DLL (import libbitnet.dll)."""
    (work / "use.c").write_text(USE_C, encoding="utf-8")
    flags = run(["pkg-config", "--cflags", "--libs", "bitnet"], capture=True,
                env={"PKG_CONFIG_LIBDIR": str(tree / "lib" / "pkgconfig"), "PKG_CONFIG_PATH": ""}).stdout.split()
    if not any(f.startswith("-I") and Path(f[2:]).resolve() == (tree / "include").resolve() for f in flags):
        raise ReleaseError(f"bitnet.pc in the zip does not point into the zip: {flags}")
    use_pc = work / "use_pc.exe"
    run([f"{TRIPLET}-gcc", "-std=c11", "-Wall", "-Werror", "-DBITNET_SHARED", work / "use.c", "-o", use_pc, *flags])

    (work / "CMakeLists.txt").write_text(USE_CMAKE.format(ver=ver), encoding="utf-8")
    build = work / "build"
    run(["cmake", "-S", work, "-B", build, f"-DCMAKE_TOOLCHAIN_FILE={src / TOOLCHAIN}",
         f"-Dbitnet_DIR={tree / 'lib' / 'cmake' / 'bitnet'}", "-DCMAKE_BUILD_TYPE=Release"])
    run(["cmake", "--build", build])
    use_cmake = build / "use_cmake.exe"
    for exe in (use_pc, use_cmake):
        if "libbitnet.dll" not in [n.lower() for n in dll_imports(exe)]:
            raise ReleaseError(f"{exe.name} does not link libbitnet.dll")
    return {"pkg-config": use_pc, "CMake package": use_cmake}


def native_consumer(native: Path, src: Path, work: Path) -> Path:
    exe = work / "use_native"
    run(["cc", "-std=c11", "-Wall", "-Werror", f"-I{src / 'bindings_c' / 'include'}", work / "use.c",
         native / "libbitnet.a", "-lm", "-pthread", "-o", exe])
    return exe


def smoke_test(tree: Path, native: Path, src: Path, ver: str, wine: Wine, work: Path) -> None:
    """The wine runs of the docstring's checks 3 and 4."""
    model = src / "bindings_py" / "bitnet" / "models" / MODEL
    cli = tree / "bin" / "bitnet-cli.exe"
    start = time.monotonic()
    said = wine.run(cli, ["--version"], cwd=work, timeout=300).stdout.decode()  # the first run makes the prefix
    log(f"first wine run (creates the prefix when new): {time.monotonic() - start:.1f} s")
    want = run([native / "bitnet-cli", "--version"], capture=True).stdout
    if said.replace("\r\n", "\n") != want:
        raise ReleaseError(f"bitnet-cli.exe --version printed {said!r}, the native one {want!r}")
    if want.strip() != f"bitnet-cli {ver}":
        raise ReleaseError(f"bitnet-cli --version printed {want!r}, not the version {ver}")

    # No -m: the model must be found at bin\..\share\bitnet of the unzipped tree.
    text = wine.run(cli, CLI_ARGS, cwd=work).stdout
    native_text = subprocess.run([native / "bitnet-cli", "-m", model, *CLI_ARGS], check=True,
                                 capture_output=True).stdout
    if text != native_text:
        raise ReleaseError(f"bitnet-cli.exe {' '.join(CLI_ARGS)} printed {text!r}; the native bitnet-cli "
                           f"{native_text!r}")
    log(f"bitnet-cli.exe greedy text == native: {text.decode()!r}")

    consumers = build_consumers(tree, work, src, ver)
    reference = subprocess.run([native_consumer(native, src, work), str(model), PROMPT], check=True,
                               capture_output=True).stdout
    for how, exe in consumers.items():
        out = wine.run(exe, [win_path(model), PROMPT], cwd=work, winepath=tree / "bin").stdout
        if out.replace(b"\r\n", b"\n") != reference:
            raise ReleaseError(f"the C program built with {how} printed {out!r} under wine; natively {reference!r}")
    log(f"C program (pkg-config, CMake package) under wine == native: {reference.decode()!r}")


# ---- the target --------------------------------------------------------------------------------

def build(out_dir: Path) -> tuple[Path, list[str]]:
    """Build, zip and check the Windows zip; returns it and the checks it passed."""
    for tool, package in TOOLS:
        require_tool(tool, package)
    ver = version()
    archive = source_archive.build(out_dir)
    zip_path = out_dir / zip_name(ver)
    with tempfile.TemporaryDirectory(prefix="bitnet-win-") as tmp_name:
        tmp = Path(tmp_name)
        src, mtime = unpack_source(archive, tmp / "src")
        stage = tmp / "stage" / top_folder(ver)
        cross_build(src, tmp / "build-win", stage, mtime)
        finish_tree(stage, src, ver)
        write_zip(stage, top_folder(ver), zip_path, mtime)
        log(f"{zip_path.name}: {zip_path.stat().st_size / 1e6:.2f} MB, sha256 {sha256_file(zip_path)}")

        tree = unzip(zip_path, tmp / "unzipped")
        check_contents(tree)
        imports = check_imports(tree)
        native = native_build(src, tmp / "build-native")
        own_prefix = not os.environ.get("BITNET_WINEPREFIX")
        wine = Wine(Path(os.environ.get("BITNET_WINEPREFIX") or tmp / "wineprefix"))
        work = tmp / "work"
        work.mkdir()
        try:
            smoke_test(tree, native, src, ver, wine, work)
        finally:
            if own_prefix:
                wine.close()
    dlls = sorted({n for names in imports.values() for n in names} - {"libbitnet.dll"})
    return zip_path, [
        f"contents ({len(expected_files())} files)",
        f"imports only system DLLs ({', '.join(dlls)})",
        "wine: bitnet-cli.exe --version and greedy text == native bitnet-cli",
        "wine: C program via bitnet.pc and via the CMake package == native",
    ]


def build_and_check(out_dir: Path) -> list[Artifact]:
    zip_path, checks = build(out_dir)
    return [Artifact(zip_path, checks)]
