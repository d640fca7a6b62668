"""The `choco` release target: ``packaging/release.py choco`` cross-builds the Windows zip with
mingw-w64, smoke-tests it under wine, renders the Chocolatey package (nuspec + chocolateyinstall.ps1
carrying the zip's sha256) into OUT/chocolatey/, checks it (XSD, tree-sitter PowerShell parse,
checksum) and packs OUT/bitnet.VERSION.nupkg.

The orchestrator runs as a subprocess, exactly as a release is made; this test then checks what it
left with its own means (the zip's names, the checksum read back with a regex, the DLL imports) and
runs the unzipped bitnet-cli.exe under wine once more, against the Python package's greedy text.
The checks themselves are also run on small broken inputs, to show that they fail when they should.
One WINEPREFIX serves the whole session. Skipped without the tools (mingw-w64, wine, cmake,
pkg-config; lxml, tree-sitter-powershell), except under .ci/run (BITNET_CI=1), where that fails.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RELEASE = ROOT / "packaging" / "release.py"
HEADER = ROOT / "bindings_c" / "include" / "bitnet.h"
VERSION = re.search(r'#define BITNET_VERSION_STRING "([^"]+)"', HEADER.read_text()).group(1)
STRICT = os.environ.get("BITNET_CI") == "1"  # .ci/run: missing tools fail instead of skipping
ZIP = f"bitnet-{VERSION}-windows-x86_64.zip"
TOP = f"bitnet-{VERSION}-windows-x86_64"
PROMPT = "And God said"

sys.path.insert(0, str(ROOT / "packaging"))
from bnpack import choco, windows_zip  # noqa: E402
from bnpack.common import ReleaseError, parse_summary  # noqa: E402


def _missing(what: str) -> None:
    (pytest.fail if STRICT else pytest.skip)(what)


def _need_python_tools() -> None:
    for module in ("lxml", "tree_sitter", "tree_sitter_powershell"):
        if importlib.util.find_spec(module) is None:
            _missing(f"python module {module} is not installed (pip install -r packaging/requirements.txt)")


def _need_tools() -> None:
    _need_python_tools()
    for tool, package in windows_zip.TOOLS:
        if shutil.which(tool) is None:
            _missing(f"{tool} is not installed (apt package {package})")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---- fast: the checks on small inputs ----------------------------------------------------------

@pytest.fixture
def package(tmp_path):
    """A rendered package for a small stand-in zip: (package folder, nuspec, script, zip)."""
    _need_python_tools()
    fake_zip = tmp_path / ZIP
    with zipfile.ZipFile(fake_zip, "w") as zf:
        zf.writestr(f"{TOP}/bin/bitnet-cli.exe", b"MZ stand-in")
    nuspec = choco.render_package(tmp_path / "chocolatey", VERSION, fake_zip)
    return tmp_path / "chocolatey", nuspec, tmp_path / "chocolatey" / choco.INSTALL_SCRIPT, fake_zip


def test_rendered_package_passes_every_check(package):
    pkg, nuspec, script, fake_zip = package
    for path in (nuspec, script):
        assert not choco.PLACEHOLDER.search(path.read_text()), path
    assert sorted(p.relative_to(pkg).as_posix() for p in pkg.rglob("*") if p.is_file()) == [
        "bitnet.nuspec", "tools/chocolateyinstall.ps1"]
    choco.check_nuspec(nuspec, VERSION)
    choco.check_powershell(script)
    choco.check_install_script(script.read_bytes(), script.name, fake_zip, VERSION)
    entries, commands = choco.install_args(script.read_bytes())
    assert entries["url64bit"] == f"https://github.com/bitnet-engine/bitnet/releases/download/v{VERSION}/{ZIP}"
    assert entries["checksum64"] == _sha256(fake_zip)
    assert commands[-1] == "Install-ChocolateyZipPackage @packageArgs"


@pytest.mark.parametrize("old, new, error", [
    ("<owners>", "<owner>x</owner><owners>", "owner': This element is not expected"),  # not a nuspec element
    ("<requireLicenseAcceptance>false<", "<requireLicenseAcceptance>no<", "not a valid value"),  # xs:boolean
    ("<authors>The bitnet authors</authors>", "", "Missing child element"),  # required
    ("2015/06/nuspec.xsd", "2099/01/nuspec.xsd", "root element"),  # unknown namespace
])
def test_a_bad_nuspec_fails_the_xsd_check(package, old, new, error):
    _, nuspec, _, _ = package
    text = nuspec.read_text()
    assert old in text
    nuspec.write_text(text.replace(old, new, 1))
    with pytest.raises(ReleaseError, match=re.escape(error)):
        choco.check_nuspec(nuspec, VERSION)


def test_a_nuspec_of_another_version_fails(package):
    _, nuspec, _, _ = package
    with pytest.raises(ReleaseError, match="version"):
        choco.check_nuspec(nuspec, "9.9.9")


@pytest.mark.parametrize("old, new", [
    ("checksumType64 = 'sha256'\n}", "checksumType64 = 'sha256'\n"),  # the hashtable is never closed
    ("Install-ChocolateyZipPackage @packageArgs", "Install-ChocolateyZipPackage @packageArgs)"),
    ("$toolsDir = \"$(Split-Path", "$toolsDir = \"$(Split-Path ("),
])
def test_a_ps1_with_a_syntax_error_fails_the_parse_check(package, old, new):
    _, _, script, _ = package
    text = script.read_text()
    assert old in text
    script.write_text(text.replace(old, new, 1))
    with pytest.raises(ReleaseError, match="does not parse as PowerShell"):
        choco.check_powershell(script)


def test_a_script_whose_checksum_is_another_zips_fails(package, tmp_path):
    _, _, script, fake_zip = package
    other = tmp_path / "other" / ZIP
    other.parent.mkdir()
    other.write_bytes(fake_zip.read_bytes() + b"\0")
    with pytest.raises(ReleaseError, match="checksum64 = '[0-9a-f]{64}', expected"):
        choco.check_install_script(script.read_bytes(), script.name, other, VERSION)


def test_a_script_with_a_computed_checksum_fails(package):
    _, _, script, fake_zip = package
    text = script.read_text().replace(f"'{_sha256(fake_zip)}'", f"('{_sha256(fake_zip)}')")
    with pytest.raises(ReleaseError, match="checksum64 = None"):  # only a literal counts
        choco.check_install_script(text.encode(), script.name, fake_zip, VERSION)


def test_nupkg_round_trip_and_tampering(package, tmp_path):
    pkg, nuspec, script, fake_zip = package
    nupkg = choco.pack_nupkg(pkg, nuspec, tmp_path)
    assert nupkg.name == f"bitnet.{VERSION}.nupkg"
    choco.check_nupkg(nupkg, VERSION, fake_zip, script)
    with zipfile.ZipFile(nupkg) as zf:
        names = zf.namelist()
        assert {"_rels/.rels", "[Content_Types].xml", "bitnet.nuspec", "tools/chocolateyinstall.ps1"} <= set(names)
        assert any(re.fullmatch(r"package/services/metadata/core-properties/[0-9a-f]{32}\.psmdcp", n) for n in names)
        assert b"<files>" not in zf.read("bitnet.nuspec")
        entries = {n: zf.read(n) for n in names}
    assert choco.pack_nupkg(pkg, nuspec, tmp_path).read_bytes() == nupkg.read_bytes()  # reproducible
    # A part with no content type, and a script that is not the checked one, are both refused.
    for name, data in (("tools/extra.bin", b"x"), ("tools/chocolateyinstall.ps1", b"Write-Host hi\n")):
        bad = tmp_path / "bad.nupkg"
        with zipfile.ZipFile(bad, "w") as zf:
            for n, d in {**entries, name: data}.items():
                zf.writestr(n, d)
        with pytest.raises(ReleaseError, match="content type|not the checked script"):
            choco.check_nupkg(bad, VERSION, fake_zip, script)


def test_only_system_dlls_or_shipped_ones_are_allowed():
    imports = {
        "bin/bitnet-cli.exe": ["KERNEL32.dll", "msvcrt.dll", "SHELL32.dll", "libbitnet.dll"],
        "bin/libbitnet.dll": ["KERNEL32.dll", "api-ms-win-crt-runtime-l1-1-0.dll", "libgcc_s_seh-1.dll",
                              "libwinpthread-1.dll"],
    }
    assert windows_zip.disallowed_imports(imports, {"libbitnet.dll"}) == [
        "bin/libbitnet.dll: libgcc_s_seh-1.dll", "bin/libbitnet.dll: libwinpthread-1.dll"]
    assert windows_zip.disallowed_imports(imports, set()) == [
        "bin/bitnet-cli.exe: libbitnet.dll", "bin/libbitnet.dll: libgcc_s_seh-1.dll",
        "bin/libbitnet.dll: libwinpthread-1.dll"]


def test_the_zip_is_written_reproducibly(tmp_path):
    tree = tmp_path / "tree"
    for name, data in (("bin/b.exe", b"MZ"), ("README.txt", b"hi\r\n"), ("bin/a.dll", b"MZ2")):
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_bytes(data)
    first, second = tmp_path / "1.zip", tmp_path / "2.zip"
    windows_zip.write_zip(tree, TOP, first, 1_800_000_000)
    os.utime(tree / "README.txt", (0, 0))
    windows_zip.write_zip(tree, TOP, second, 1_800_000_000)
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(first) as zf:
        assert zf.namelist() == [f"{TOP}/README.txt", f"{TOP}/bin/a.dll", f"{TOP}/bin/b.exe"]
        assert {i.date_time for i in zf.infolist()} == {(2027, 1, 15, 8, 0, 0)}
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr(f"{TOP}/../evil.txt", b"x")
    with pytest.raises(ReleaseError, match="bad entry name"):
        windows_zip.unzip(bad, tmp_path / "out")


# ---- slow: the whole target --------------------------------------------------------------------

@pytest.fixture(scope="session")
def wineprefix(tmp_path_factory):
    """One WINEPREFIX for the session (creating one takes seconds); its wineserver is stopped after."""
    prefix = tmp_path_factory.mktemp("wine") / "prefix"
    yield prefix
    windows_zip.Wine(prefix).close()


@pytest.fixture(scope="module")
def release(tmp_path_factory, wineprefix):
    _need_tools()
    out = tmp_path_factory.mktemp("choco")
    proc = subprocess.run([sys.executable, RELEASE, "choco", "--out", out], capture_output=True, text=True,
                          timeout=900, env={**os.environ, "BITNET_WINEPREFIX": str(wineprefix)})
    if proc.returncode != 0:
        pytest.fail(f"release.py choco exited {proc.returncode}\n{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}")
    return out, proc


def test_choco_target_ran_its_checks(release):
    out, proc = release
    rows = {name: checks for name, (_, checks) in parse_summary(proc.stdout).items()}
    assert set(rows) == {ZIP, "bitnet.nuspec", "chocolateyinstall.ps1", f"bitnet.{VERSION}.nupkg"}, proc.stdout
    for check in ("imports only system DLLs", "greedy text == native", "bitnet.pc", "CMake package"):
        assert check in rows[ZIP]
    assert "XSD" in rows["bitnet.nuspec"]
    assert "tree-sitter-powershell" in rows["chocolateyinstall.ps1"]
    assert f"checksum64 == sha256 of {ZIP}" in rows["chocolateyinstall.ps1"]
    log = proc.stderr
    assert "bitnet-cli.exe greedy text == native" in log
    assert "C program (pkg-config, CMake package) under wine == native" in log


def test_script_checksum_is_the_zip_sha256(release):
    out, _ = release
    script = (out / "chocolatey" / "tools" / "chocolateyinstall.ps1").read_text()
    assert re.findall(r"^\s*checksum64\s*=\s*'([0-9a-f]{64})'$", script, re.M) == [_sha256(out / ZIP)]
    assert re.findall(r"^\s*checksumType64\s*=\s*'(\w+)'$", script, re.M) == ["sha256"]
    assert re.findall(r"^\s*url64bit\s*=\s*'(\S+)'$", script, re.M) == [
        f"https://github.com/bitnet-engine/bitnet/releases/download/v{VERSION}/{ZIP}"]
    nuspec = (out / "chocolatey" / "bitnet.nuspec").read_text()
    assert f"<version>{VERSION}</version>" in nuspec and "<id>bitnet</id>" in nuspec
    with zipfile.ZipFile(out / f"bitnet.{VERSION}.nupkg") as zf:
        assert zf.read("tools/chocolateyinstall.ps1").decode() == script


def test_zip_contents(release):
    out, _ = release
    with zipfile.ZipFile(out / ZIP) as zf:
        infos = zf.infolist()
        names = [i.filename for i in infos]
        assert names == sorted(names)
        assert set(names) == {f"{TOP}/{name}" for name in (
            "bin/bitnet-cli.exe", "bin/libbitnet.dll", "include/bitnet.h", "lib/libbitnet.dll.a", "lib/libbitnet.a",
            "lib/pkgconfig/bitnet.pc", "lib/cmake/bitnet/bitnetConfig.cmake",
            "lib/cmake/bitnet/bitnetConfigVersion.cmake", "lib/cmake/bitnet/bitnetTargets.cmake",
            "lib/cmake/bitnet/bitnetTargets-release.cmake", "share/bitnet/bitnet-english-i2_s.gguf",
            "share/man/man1/bitnet-cli.1", "LICENSE.txt", "README.txt")}
        assert len({i.date_time for i in infos}) == 1
        assert zf.read(f"{TOP}/include/bitnet.h") == HEADER.read_bytes()
        model = ROOT / "bindings_py" / "bitnet" / "models" / "bitnet-english-i2_s.gguf"
        assert zf.read(f"{TOP}/share/bitnet/bitnet-english-i2_s.gguf") == model.read_bytes()
        assert "prefix=${pcfiledir}/../..\n" in zf.read(f"{TOP}/lib/pkgconfig/bitnet.pc").decode()
        for name in ("bin/bitnet-cli.exe", "bin/libbitnet.dll"):
            assert zf.read(f"{TOP}/{name}")[:2] == b"MZ"


@pytest.fixture(scope="module")
def unzipped(release, tmp_path_factory):
    out, _ = release
    dest = tmp_path_factory.mktemp("unzipped")
    with zipfile.ZipFile(out / ZIP) as zf:
        zf.extractall(dest)
    return dest / TOP


def test_binaries_import_only_system_dlls(unzipped):
    for binary in ("bin/bitnet-cli.exe", "bin/libbitnet.dll"):
        out = subprocess.run([f"{windows_zip.TRIPLET}-objdump", "-p", unzipped / binary], capture_output=True,
                             text=True, check=True).stdout
        dlls = {name.lower() for name in re.findall(r"DLL Name: (\S+)", out)}
        assert dlls, binary
        assert dlls <= {"kernel32.dll", "msvcrt.dll", "shell32.dll", "libbitnet.dll"}, (binary, dlls)


def test_wine_greedy_text_equals_python(unzipped, wineprefix):
    """The strong form: the Windows build under wine prints, bit for bit, the Python package's greedy
    text (another compiler, another C runtime, another OS)."""
    try:
        import bitnet
    except ImportError:
        _missing("the bitnet Python package is not installed (pip install .)")
    want = bitnet.Model().generate(PROMPT, max_tokens=16, temperature=0)
    wine = windows_zip.Wine(wineprefix)
    cli = unzipped / "bin" / "bitnet-cli.exe"
    version = wine.run(cli, ["--version"], cwd=unzipped, timeout=300).stdout
    assert version.replace(b"\r\n", b"\n") == f"bitnet-cli {VERSION}\n".encode()
    # From another folder, with no -m: the default model is found through bin\..\share\bitnet.
    proc = wine.run(cli, ["-p", PROMPT, "-n", "16", "--temp", "0"], cwd=unzipped.parent)
    assert proc.stdout == (want + "\n").encode("utf-8")
    assert re.search(rb"16 generated .*finish: length", proc.stderr), proc.stderr


def test_default_model_missing_is_reported(unzipped, wineprefix, tmp_path):
    """Without share\\bitnet next to bin\\, bitnet-cli.exe says where it looked (and exits 1)."""
    bare = tmp_path / "bare" / "bin"
    shutil.copytree(unzipped / "bin", bare)
    wine = windows_zip.Wine(wineprefix)
    with pytest.raises(ReleaseError, match=r"exited 1\n.*no default model found") as info:
        wine.run(bare / "bitnet-cli.exe", ["-p", PROMPT, "-n", "4"], cwd=tmp_path)
    assert "share\\bitnet\\bitnet-english-i2_s.gguf" in str(info.value)
